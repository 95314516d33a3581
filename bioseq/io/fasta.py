"""Streaming FASTA reading and atomic FASTA writing.

The reader decompresses (plain, gzip, bgzip, xz, bz2; see :mod:`bioseq.io.compression`) and parses
in 4 MiB blocks; each contig's sequence is encoded with the byte code of :mod:`bioseq.alphabet`
(one ``uint8`` per base, soft-masked lowercase bases carry bit 0x80) by a numpy lookup table, so a
genome is never held as a Python string and no Python loop runs per base or per line.

Validation is strict: empty files, sequence before the first header, empty or duplicate record
names, NUL bytes in headers, carriage returns without a newline (old Mac OS line endings; CRLF is
fine), a BGZF file without its end-of-file block, a directory, and characters outside IUPAC raise :class:`~bioseq.io.errors.SequenceFormatError` naming the
file, record and line. Blank lines and spaces/tabs inside sequence lines are tolerated.
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

_WHITESPACE = b"\r\n \t"
_IS_WHITESPACE = np.zeros(256, dtype=bool)
_IS_WHITESPACE[list(_WHITESPACE)] = True


@dataclass
class FastaRecord:
    """One FASTA record.

    Attributes:
        name: the first whitespace-delimited word of the header (SAM's reference name).
        description: the rest of the header line ('' if none).
        codes: ``(length,)`` uint8 codes from :mod:`bioseq.alphabet`.
    """

    name: str
    description: str
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def sequence(self) -> str:
        """The sequence as a string (soft-masked bases in lowercase); fine for small records."""
        return decode(self.codes)


def _parse_header(reader: BlockReader, header: bytes, number: int, empty_names: str) -> tuple[str, str]:
    if b"\x00" in header:
        raise reader.error("NUL byte in the header line (a binary or damaged file?)", record=None)
    text = header[1:].decode("utf-8", errors="replace").strip()
    parts = text.split(None, 1)
    if not parts:
        if empty_names == "number":
            return str(number), ""
        raise reader.error("empty record name in header line '>'", record=None)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _encode_segment(reader: BlockReader, seg: bytes, first_line: int) -> np.ndarray:
    """Encode a run of sequence lines; on a bad byte, report its line and column."""
    codes = ENCODE_LUT[np.frombuffer(seg.translate(None, _WHITESPACE), dtype=np.uint8)]
    if codes.size and (codes == INVALID).any():
        raw = np.frombuffer(seg, dtype=np.uint8)
        bad = (ENCODE_LUT[raw] == INVALID) & ~_IS_WHITESPACE[raw]
        idx = int(np.argmax(bad))
        line = first_line + seg.count(b"\n", 0, idx)
        col = idx - (seg.rfind(b"\n", 0, idx) + 1) + 1
        raise reader.error(
            f"invalid character {chr(raw[idx])!r} at column {col}: not an IUPAC nucleotide code "
            "(ACGTU, RYSWKMBDHVN, '-' or '.', either case)",
            line=line,
        )
    return codes


def iter_fasta_pieces(
    path: str | os.PathLike | BinaryIO, *, block_bytes: int = 1 << 22, empty_names: str = "error"
) -> Iterator[tuple[str, str] | np.ndarray]:
    """The low-level stream: ``(name, description)`` at each header, then uint8 code pieces.

    Use it to process contigs larger than memory; :func:`read_fasta` assembles whole records.
    ``empty_names``: ``"error"`` (default) or ``"number"`` (see :func:`read_fasta`).
    """
    if empty_names not in ("error", "number"):
        raise ValueError(f"empty_names must be 'error' or 'number', got {empty_names!r}")
    with BlockReader(path, block_bytes) as reader:
        seen: dict[str, int] = {}
        n_bytes = 0
        line = 1  # line number of the first byte of the current block
        for block in reader.blocks():
            n_bytes += len(block)
            pos = 0
            while pos < len(block):
                if block[pos] == 0x3E:  # '>' at a line start: a header line
                    end = block.find(b"\n", pos)
                    end = len(block) if end < 0 else end
                    reader.line, reader.record = line, None
                    name, desc = _parse_header(reader, block[pos:end], len(seen) + 1, empty_names)
                    if name in seen:
                        raise reader.error(
                            f"duplicate record name {name!r} (first seen at line {seen[name]})",
                            record=name,
                        )
                    seen[name] = line
                    reader.record = name
                    yield name, desc
                    line += 1
                    pos = end + 1
                    continue
                nxt = block.find(b"\n>", pos)
                end = len(block) if nxt < 0 else nxt + 1
                seg = block[pos:end]
                if reader.record is None:
                    stripped = seg.translate(None, _WHITESPACE)
                    if stripped:
                        offset = seg.find(stripped[:1])
                        reader.line = line + seg.count(b"\n", 0, offset)
                        hint = " (this looks like FASTQ)" if stripped[:1] == b"@" else ""
                        raise reader.error(f"missing '>' header before sequence data{hint}")
                else:
                    codes = _encode_segment(reader, seg, line)
                    if codes.size:
                        yield codes
                line += seg.count(b"\n")
                pos = end
            reader.line = line
        if not seen:
            reader.line = None  # type: ignore[assignment]
            what = "empty file" if n_bytes == 0 else "no FASTA records (only blank lines)"
            raise reader.error(f"{what}: expected at least one '>' header")


def read_fasta(path: str | os.PathLike | BinaryIO, *, block_bytes: int = 1 << 22,
               empty_names: str = "error") -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain/gzip/bgzip/xz/bz2 detected from magic bytes).

    Args:
        path: a file path, ``"-"`` for stdin, or a binary stream.
        block_bytes: decompressed bytes parsed at a time.
        empty_names: a header with no name (``>`` alone) is an error (``"error"``, right for
            references), or the record is named by its 1-based record number (``"number"``:
            reads, e.g. short-read FASTA files written without names).

    Yields:
        :class:`FastaRecord` per record, in file order. Only the current record is in memory.

    Raises:
        SequenceFormatError: on any malformed input (see the module docstring).
    """
    name = desc = None
    pieces: list[np.ndarray] = []
    for item in iter_fasta_pieces(path, block_bytes=block_bytes, empty_names=empty_names):
        if isinstance(item, tuple):
            if name is not None:
                yield FastaRecord(name, desc, _concat(pieces))
            (name, desc), pieces = item, []
        else:
            pieces.append(item)
    if name is not None:
        yield FastaRecord(name, desc, _concat(pieces))


def _concat(pieces: list[np.ndarray]) -> np.ndarray:
    if not pieces:
        return np.zeros(0, dtype=np.uint8)
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _as_codes(seq: str | bytes | np.ndarray) -> np.ndarray:
    if isinstance(seq, np.ndarray):
        return seq.astype(np.uint8, copy=False)
    return encode(seq)


def _wrap(codes: np.ndarray, width: int) -> bytes:
    """ASCII lines of ``width`` bases each, newline-terminated, built without a per-line loop."""
    text = DECODE_LUT[codes]
    if width <= 0 or len(text) == 0:
        return text.tobytes() + b"\n"
    full, rest = divmod(len(text), width)
    body = np.empty((full, width + 1), dtype=np.uint8)
    body[:, :width] = text[: full * width].reshape(full, width)
    body[:, width] = 0x0A
    out = body.tobytes()
    if rest:
        out += text[full * width :].tobytes() + b"\n"
    return out


def _open_for_write(tmp: Path, final: Path):
    """A binary writer whose compression follows the final name: .gz/.bgz -> BGZF, .xz, .bz2."""
    suffix = final.suffix.lower()
    if suffix in (".gz", ".bgz", ".bgzf"):
        import pysam

        return pysam.BGZFile(str(tmp), "wb")
    if suffix == ".xz":
        import lzma

        return lzma.open(tmp, "wb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(tmp, "wb")
    return open(tmp, "wb")


def write_fasta(
    path: str | os.PathLike,
    records: Iterable[FastaRecord | tuple[str, str | bytes | np.ndarray]],
    *,
    line_width: int = 60,
) -> Path:
    """Write FASTA atomically; ``.gz`` names are written as BGZF (so they can be indexed).

    Args:
        path: output file; compression from the suffix (.gz/.bgz -> bgzip, .xz, .bz2, else plain).
        records: :class:`FastaRecord` or ``(name, sequence)`` pairs (str, bytes or uint8 codes).
        line_width: bases per line (0 = one line per record).

    Returns:
        the output path. Duplicate names raise ValueError and leave no file behind.
    """
    final = Path(path)
    seen: set[str] = set()
    with atomic_file(final) as tmp:
        with _open_for_write(tmp, final) as out:
            for rec in records:
                if isinstance(rec, FastaRecord):
                    name, desc, codes = rec.name, rec.description, rec.codes
                else:
                    (name, seq), desc = rec, ""
                    codes = _as_codes(seq)
                if not name or any(c.isspace() for c in name):
                    raise ValueError(f"{final}: record name {name!r} is empty or contains whitespace")
                if name in seen:
                    raise ValueError(f"{final}: duplicate record name {name!r}")
                seen.add(name)
                out.write(f">{name}{' ' + desc if desc else ''}\n".encode())
                out.write(_wrap(codes, line_width))
    return final

