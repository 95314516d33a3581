"""SAM records and the SAM/BAM writer (SAM on stdout by default, BAM through pysam).

Conventions (SAM spec v1.6): 1-based POS; a reverse-strand hit stores the reverse-complemented
read in SEQ and the reversed QUAL; unmapped reads are kept (flag 4), placed at their mate's
position when the mate is mapped; MAPQ 0-60, never 255 for a mapped read.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bioseq import alphabet

FLAG_PAIRED, FLAG_PROPER, FLAG_UNMAP, FLAG_MUNMAP = 0x1, 0x2, 0x4, 0x8
FLAG_REVERSE, FLAG_MREVERSE, FLAG_READ1, FLAG_READ2, FLAG_SECONDARY = 0x10, 0x20, 0x40, 0x80, 0x100


def header_lines(contigs: list[dict], program_cl: str, version: str) -> list[str]:
    """@HD, one @SQ per contig (with M5) and @PG."""
    lines = ["@HD\tVN:1.6\tSO:unsorted"]
    lines += [f"@SQ\tSN:{c['name']}\tLN:{c['length']}\tM5:{c['md5']}" for c in contigs]
    lines.append(f"@PG\tID:bioseq\tPN:bioseq\tVN:{version}\tCL:{program_cl}")
    return lines


def oriented(seq: str, qual: str | None, reverse: bool) -> tuple[str, str]:
    """SEQ and QUAL as SAM stores them for a hit on the given strand."""
    seq = seq.upper()
    if reverse:
        seq = alphabet.reverse_complement(seq)
        qual = qual[::-1] if qual is not None else None
    return seq or "*", qual if qual else "*"


def record(qname: str, flag: int, rname: str, pos: int, mapq: int, cigar: str, rnext: str, pnext: int,
           tlen: int, seq: str, qual: str, tags: list[str]) -> str:
    """One tab-separated SAM line (``pos``/``pnext`` 1-based, 0 = none)."""
    return "\t".join([qname, str(flag), rname, str(pos), str(mapq), cigar or "*", rnext, str(pnext),
                      str(tlen), seq, qual, *tags])


class SamWriter:
    """Write SAM to stdout (``path`` None or ``-``), a .sam file, or BAM when the name ends in .bam.
    Files are written under a temporary name and renamed on :meth:`close`; :meth:`abort` removes it."""

    def __init__(self, path: str | os.PathLike | None, header: list[str]) -> None:
        self.path = None if path in (None, "-") else Path(path)
        self.bam = self.path is not None and self.path.suffix == ".bam"
        self.tmp = None
        if self.path is None:
            self.fh = sys.stdout
        else:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            os.close(fd)
        if self.bam:
            import pysam

            self.header = pysam.AlignmentHeader.from_text("\n".join(header) + "\n")
            self.fh = pysam.AlignmentFile(self.tmp, "wb", header=self.header)
        else:
            if self.path is not None:
                self.fh = open(self.tmp, "w")
            self.fh.write("\n".join(header) + "\n")

    def write(self, lines: list[str]) -> None:
        if self.bam:
            import pysam

            for line in lines:
                self.fh.write(pysam.AlignedSegment.fromstring(line, self.header))
        elif lines:
            self.fh.write("\n".join(lines) + "\n")

    def close(self) -> None:
        if self.path is None:
            self.fh.flush()
            return
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.path is not None:
            try:
                self.fh.close()
            finally:
                if self.tmp and os.path.exists(self.tmp):
                    os.unlink(self.tmp)
