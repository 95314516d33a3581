"""Reading references and reads for the aligner, on top of :mod:`bioseq.io`.

Plain, gzip, bgzip, xz and stdin input; sequences as :mod:`bioseq.alphabet` uint8 codes. Malformed
input raises :class:`InputError` naming the file, the record and the problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bioseq import alphabet
from bioseq.io import SequenceFormatError, open_binary, read_fasta, read_fastq
from bioseq.io.compression import peek
from bioseq.io.errors import UserError


class InputError(UserError):
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


def read_reference(path: str | Path) -> list[Contig]:
    """All contigs of a FASTA file. Duplicate names, empty records and names that SAM does not
    allow as reference names are errors."""
    from bioseq.align.sam import check_rname

    contigs: list[Contig] = []
    seen: set[str] = set()
    try:
        for rec in read_fasta(path):
            if rec.name in seen:
                raise InputError(f"{path}: duplicate contig name {rec.name!r}")
            if len(rec.codes) == 0:
                raise InputError(f"{path}: record {rec.name!r} has no sequence")
            bad_name = check_rname(rec.name)
            if bad_name:
                raise InputError(f"{path}: record {rec.name!r}: the name {bad_name}; rename the contig")
            seen.add(rec.name)
            contigs.append(Contig(rec.name, rec.codes & alphabet.CODE_MASK))
    except (SequenceFormatError, FileNotFoundError) as e:
        raise InputError(str(e)) from None
    if not contigs:
        raise InputError(f"{path}: no FASTA records")
    return contigs


@dataclass
class Read:
    """A sequencing read. ``qual`` is the FASTQ quality string or ``None`` (FASTA input)."""

    name: str
    seq: str
    qual: str | None
    codes: np.ndarray


def read_reads(path: str | Path) -> Iterator[Read]:
    """Stream FASTQ or FASTA reads (format sniffed from the first byte; ``-`` is stdin).

    Names become SAM QNAMEs (:func:`bioseq.align.sam.qname`); FASTA reads with an empty name
    (``>`` alone) are named by their 1-based record number. An empty file is an error.
    """
    from bioseq.align.sam import qname

    try:
        stream = open_binary(path)
        first = peek(stream, 1, str(path))
        if not first:
            raise SequenceFormatError(path, "empty file: no reads")
        if first == b"@":
            for r in read_fastq(stream):
                yield Read(qname(_strip_mate(r.name)), alphabet.decode(r.codes), r.quality_string, r.codes)
        elif first == b">":
            for r in read_fasta(stream, empty_names="number"):
                yield Read(qname(_strip_mate(r.name)), alphabet.decode(r.codes), None, r.codes)
        else:
            raise InputError(f"{path}: line 1: expected '@' (FASTQ) or '>' (FASTA), got {first.decode(errors='replace')!r}")
    except (SequenceFormatError, FileNotFoundError) as e:
        msg = str(e).replace("<stream>", str(path)).replace("<stdin>", str(path))
        raise InputError(msg if str(path) in msg else f"{path}: {msg}") from None


def _strip_mate(name: str) -> str:
    # "read/1" and "read/2" name the same pair; SAM QNAME drops the suffix.
    return name[:-2] if len(name) > 2 and name[-2] == "/" and name[-1] in "12" else name
