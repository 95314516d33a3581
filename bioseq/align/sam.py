"""SAM records and the SAM/BAM writer (SAM on stdout by default, BAM through pysam).

Conventions (SAM spec v1.6): 1-based POS; a reverse-strand hit stores the reverse-complemented
read in SEQ and the reversed QUAL; unmapped reads are kept (flag 4), placed at their mate's
position when the mate is mapped; MAPQ 0-60, never 255 for a mapped read.

Names follow the spec's rules so every file passes ``samtools view``: read names are sanitised by
:func:`qname` (characters outside ``[!-?A-~]`` become ``_``, at most 254 characters), reference
names are checked by :func:`check_rname` when an index is built (a bad contig name is an error:
renaming contigs would silently break coordinates shared with other tools).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from bioseq import alphabet
from bioseq.io.atomic import AtomicOutput

FLAG_PAIRED, FLAG_PROPER, FLAG_UNMAP, FLAG_MUNMAP = 0x1, 0x2, 0x4, 0x8
FLAG_REVERSE, FLAG_MREVERSE, FLAG_READ1, FLAG_READ2, FLAG_SECONDARY = 0x10, 0x20, 0x40, 0x80, 0x100


QNAME_MAX = 254
_QNAME_BAD = re.compile(r"[^!-?A-~]")
_RNAME = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*")


def qname(name: str) -> str:
    """A read name as SAM QNAME allows (``[!-?A-~]{1,254}``): other characters (space, '@',
    control, non-ASCII) become ``_``, longer names keep their first 254 characters, an empty name
    becomes ``*`` (SAM's "no name")."""
    if not name:
        return "*"
    return _QNAME_BAD.sub("_", name[:QNAME_MAX])


def check_rname(name: str) -> str | None:
    """Why ``name`` cannot be a SAM reference name (RNAME/@SQ SN rule), or None if it can."""
    if _RNAME.fullmatch(name):
        return None
    bad = next((c for c in name if not re.fullmatch(r"[0-9A-Za-z!#$%&*+./:;=?@^_|~-]", c)), None)
    if bad is not None:
        return f"contains {bad!r}, which SAM does not allow in reference names"
    return f"starts with {name[:1]!r}, which SAM does not allow at the start of a reference name"


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
            self._out = AtomicOutput(self.path)  # removed on failure, SIGTERM or SIGINT
            self.tmp = str(self._out.tmp)
        try:
            if self.bam:
                import pysam

                self.header = pysam.AlignmentHeader.from_text("\n".join(header) + "\n")
                self.fh = pysam.AlignmentFile(self.tmp, "wb", header=self.header)
            else:
                if self.path is not None:
                    self.fh = open(self.tmp, "w")  # noqa: SIM115 - closed by close()/abort()
                self.fh.write("\n".join(header) + "\n")
        except BaseException:
            if self.path is not None:
                self._out.abort()
            raise

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
        self._out.commit()

    def abort(self) -> None:
        if self.path is not None:
            try:
                self.fh.close()
            finally:
                self._out.abort()
