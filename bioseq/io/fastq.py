"""Streaming FASTQ reading and atomic FASTQ writing (four-line records, Phred+33 qualities).

Multi-line FASTQ (sequence or quality wrapped over several lines) is rejected with a clear error:
no current sequencer writes it and accepting it makes '@' in the quality line ambiguous.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bioseq.alphabet import DECODE_LUT, ENCODE_LUT, INVALID, decode, encode
from bioseq.io.atomic import atomic_file
from bioseq.io.compression import BlockReader
from bioseq.io.fasta import _open_for_write

PHRED_OFFSET = 33


@dataclass
class FastqRecord:
    """One read.

    Attributes:
        name: the first word of the header (without '@').
        description: the rest of the header line.
        codes: ``(length,)`` uint8 base codes from :mod:`bioseq.alphabet`.
        quality: ``(length,)`` uint8 Phred scores (ASCII minus 33).
    """

    name: str
    description: str
    codes: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def sequence(self) -> str:
        return decode(self.codes)

    @property
    def quality_string(self) -> str:
        return (self.quality + PHRED_OFFSET).astype(np.uint8).tobytes().decode("ascii")


def read_fastq(path: str | os.PathLike | BinaryIO, *, block_bytes: int = 1 << 22) -> Iterator[FastqRecord]:
    """Stream the reads of a FASTQ file (plain/gzip/bgzip/xz/bz2 detected from magic bytes).

    Args:
        path: a file path, ``"-"`` for stdin, or a binary stream.

    Raises:
        SequenceFormatError: empty file, a header not starting with '@', a missing '+' line, a
            '+name' line naming another read, a NUL byte in a header, old Mac OS (CR-only) line endings,
            invalid bases, quality length != sequence length, quality characters outside '!'..'~',
            a record cut short, or a damaged compressed stream; the message names file, read, line.
    """
    with BlockReader(path, block_bytes) as reader:
        lines = reader.lines()
        n = 0
        for header in lines:
            if not header.strip():
                continue  # blank lines between records (typically at the end)
            reader.record = None
            if header[:1] != b"@":
                hint = " (this looks like FASTA)" if header[:1] == b">" else ""
                raise reader.error(f"expected a FASTQ header line starting with '@'{hint}")
            if b"\x00" in header:
                raise reader.error("NUL byte in the header line (a binary or damaged file?)")
            text = header[1:].decode("utf-8", errors="replace").strip()
            parts = text.split(None, 1)
            if not parts:
                raise reader.error("empty read name in header line '@'")
            reader.record = name = parts[0]
            desc = parts[1] if len(parts) > 1 else ""
            seq = next(lines, None)
            plus = next(lines, None)
            qual = next(lines, None)
            if qual is None:
                missing = "sequence" if seq is None else "'+'" if plus is None else "quality"
                raise reader.error(f"truncated record: the file ends before its {missing} line")
            seq_line = reader.line - 2
            raw = np.frombuffer(seq.strip(b" \t"), dtype=np.uint8)
            codes = ENCODE_LUT[raw]
            if (codes == INVALID).any():
                col = int(np.argmax(codes == INVALID))
                raise reader.error(
                    f"invalid character {chr(raw[col])!r} at column {col + 1}: not an IUPAC "
                    "nucleotide code", line=seq_line,
                )
            if plus[:1] != b"+":
                raise reader.error(
                    f"expected the '+' separator line, found {plus[:20]!r} "
                    "(multi-line FASTQ is not supported)", line=seq_line + 1,
                )
            repeat = plus[1:].strip()
            if repeat and repeat != header[1:].strip() and repeat != name.encode():
                raise reader.error(
                    f"the '+' line names {repeat.decode(errors='replace')[:60]!r}, not this record's "
                    f"{name!r} (records out of step?)", line=seq_line + 1,
                )
            q = np.frombuffer(qual.strip(b" \t"), dtype=np.uint8)
            if len(q) != len(codes):
                raise reader.error(
                    f"quality length {len(q)} != sequence length {len(codes)}", line=reader.line
                )
            if q.size and (q.min() < 33 or q.max() > 126):
                raise reader.error("quality character outside '!'..'~' (Phred+33)", line=reader.line)
            n += 1
            yield FastqRecord(name, desc, codes, q - PHRED_OFFSET)
        if n == 0:
            reader.record = None
            raise reader.error("empty file: no FASTQ records", line=None)  # type: ignore[arg-type]


def write_fastq(
    path: str | os.PathLike,
    records: Iterable[FastqRecord | tuple[str, str | np.ndarray, str | np.ndarray]],
) -> Path:
    """Write FASTQ atomically; ``.gz`` names are written as BGZF.

    Args:
        records: :class:`FastqRecord` or ``(name, sequence, quality)`` with quality as a Phred+33
            string or an array of Phred scores.
    """
    final = Path(path)
    with atomic_file(final) as tmp, _open_for_write(tmp, final) as out:
        for rec in records:
            if isinstance(rec, FastqRecord):
                name, desc, codes, qual = rec.name, rec.description, rec.codes, rec.quality
            else:
                (name, seq, qual), desc = rec, ""
                codes = seq if isinstance(seq, np.ndarray) else encode(seq)
                if isinstance(qual, str):
                    qual = np.frombuffer(qual.encode("ascii"), dtype=np.uint8) - PHRED_OFFSET
            qual = np.asarray(qual)
            if len(qual) != len(codes):
                raise ValueError(f"{final}: read {name!r}: quality length {len(qual)} != sequence length {len(codes)}")
            out.write(f"@{name}{' ' + desc if desc else ''}\n".encode())
            out.write(DECODE_LUT[np.asarray(codes, dtype=np.uint8)].tobytes())
            out.write(b"\n+\n")
            out.write((qual.astype(np.int16) + PHRED_OFFSET).astype(np.uint8).tobytes())
            out.write(b"\n")
    return final
