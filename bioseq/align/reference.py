"""Reading references and reads for the aligner: plain, gzip, bgzip, xz and stdin.

Sequences are returned as :mod:`bioseq.alphabet` uint8 codes. Errors name the file, the record and
the problem instead of surfacing a parser traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bioseq import alphabet


class InputError(ValueError):
    """Bad user input (file, record, problem)."""


@dataclass
class Contig:
    """One reference sequence: name, uint8 codes and the MD5 that SAM ``@SQ M5`` wants."""

    name: str
    codes: np.ndarray  # (L,) uint8, soft-mask bit cleared

    @property
    def length(self) -> int:
        return int(self.codes.shape[0])

    @property
    def md5(self) -> str:
        # SAM spec: MD5 of the upper-case sequence without whitespace.
        return hashlib.md5(alphabet.decode(self.codes, keep_case=False).encode()).hexdigest()


def open_text(path: str | Path) -> io.TextIOBase:
    """Open ``path`` (``-`` for stdin) as text, sniffing gzip/bgzip and xz from magic bytes."""
    if str(path) == "-":
        raw = sys.stdin.buffer
        head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
        stream = raw
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        with open(p, "rb") as fh:
            head = fh.read(6)
        stream = open(p, "rb")
    if head[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream)
    elif head[:6] == b"\xfd7zXZ\x00":
        stream = lzma.LZMAFile(stream)
    return io.TextIOWrapper(stream, encoding="ascii", errors="replace")


def _encode(seq: str, path, name: str) -> np.ndarray:
    try:
        return alphabet.encode(seq) & alphabet.CODE_MASK
    except alphabet.InvalidBaseError as e:
        raise InputError(f"{path}: record {name!r}: {e}") from None


def read_reference(path: str | Path) -> list[Contig]:
    """All contigs of a FASTA file. Duplicate names, empty records and non-IUPAC bytes are errors."""
    contigs: list[Contig] = []
    seen: set[str] = set()
    name, chunks, lineno = None, [], 0

    def flush() -> None:
        if name is None:
            return
        if name in seen:
            raise InputError(f"{path}: duplicate contig name {name!r} (line {lineno})")
        seq = "".join(chunks)
        if not seq:
            raise InputError(f"{path}: record {name!r} has no sequence")
        seen.add(name)
        contigs.append(Contig(name, _encode(seq, path, name)))

    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):  # noqa: B007
                line = line.strip()
                if not line:
                    continue
                if line.startswith(">"):
                    flush()
                    name, chunks = line[1:].split()[0] if line[1:].split() else "", []
                    if not name:
                        raise InputError(f"{path}: line {lineno}: header without a name")
                elif name is None:
                    raise InputError(f"{path}: line {lineno}: sequence before the first '>' header (not FASTA)")
                else:
                    chunks.append(line)
            flush()
    except (EOFError, OSError, lzma.LZMAError) as e:
        raise InputError(f"{path}: cannot read ({e}); truncated or corrupt compressed file?") from None
    if not contigs:
        raise InputError(f"{path}: no FASTA records")
    return contigs


@dataclass
class Read:
    """A sequencing read. ``qual`` is the FASTQ quality string or ``None`` (FASTA input)."""

    name: str
    seq: str
    qual: str | None


def read_reads(path: str | Path) -> Iterator[Read]:
    """Stream FASTQ or FASTA reads (format sniffed from the first byte), checking each record."""
    with open_text(path) as fh:
        first = fh.read(1)
        if not first:
            return
        if first not in "@>":
            raise InputError(f"{path}: line 1: expected '@' (FASTQ) or '>' (FASTA), got {first!r}")
        lines = _prepend(first, fh)
        if first == "@":
            yield from _fastq(path, lines)
        else:
            yield from _fasta_reads(path, lines)


def _prepend(first: str, fh) -> Iterator[str]:
    it = iter(fh)
    line = next(it, "")
    yield first + line
    yield from it


def _fastq(path, lines: Iterator[str]) -> Iterator[Read]:
    lineno = 0
    while True:
        try:
            head = next(lines)
        except StopIteration:
            return
        except (EOFError, OSError) as e:
            raise InputError(f"{path}: line {lineno + 1}: cannot read ({e}); truncated file?") from None
        lineno += 1
        if not head.strip():
            continue
        rec = [head]
        for _ in range(3):
            line = next(lines, None)
            if line is None:
                raise InputError(f"{path}: line {lineno}: truncated FASTQ record {head.strip()!r}")
            rec.append(line)
        lineno += 3
        head, seq, plus, qual = (x.rstrip("\r\n") for x in rec)
        if not head.startswith("@") or not plus.startswith("+"):
            raise InputError(f"{path}: line {lineno - 3}: malformed FASTQ record (expected '@name' / seq / '+' / qual)")
        name = head[1:].split()[0] if head[1:].split() else ""
        if not name:
            raise InputError(f"{path}: line {lineno - 3}: FASTQ record without a name")
        if len(qual) != len(seq):
            raise InputError(f"{path}: record {name!r} (line {lineno - 3}): quality length {len(qual)} != sequence length {len(seq)}")
        yield Read(_strip_mate(name), seq, qual)


def _fasta_reads(path, lines: Iterator[str]) -> Iterator[Read]:
    name, chunks = None, []
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if name is not None:
                yield Read(name, "".join(chunks), None)
            name, chunks = (line[1:].split() or [""])[0], []
            if not name:
                raise InputError(f"{path}: line {lineno}: FASTA record without a name")
        else:
            chunks.append(line)
    if name is not None:
        yield Read(name, "".join(chunks), None)


def _strip_mate(name: str) -> str:
    # "read/1" and "read/2" name the same pair; SAM QNAME drops the suffix.
    return name[:-2] if len(name) > 2 and name[-2] == "/" and name[-1] in "12" else name
