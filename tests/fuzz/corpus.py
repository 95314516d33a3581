"""A seeded generator of malformed sequence inputs (no corpus files are committed).

``generate(seed, n)`` returns ``n`` :class:`Case` objects cycling through every fault family below,
each built from a random *valid* FASTA/FASTQ file and then broken in one way that every reader
must reject. The same seed always gives the same bytes, so a failing case can be replayed with
``generate(seed, n)[i]``.

Families (``Case.family``):

* FASTA: empty file, blank lines only, sequence before the first header, invalid byte in a
  sequence (letters outside IUPAC, digits, controls, NUL, non-ASCII), duplicate record names, NUL
  in a name, CR-only (old Mac) line endings, binary garbage, a directory instead of a file, FASTQ
  where FASTA is expected (FASTA-only commands), an empty name in the last header.
* FASTQ: every FASTA family that applies, plus a missing '@', a missing or wrong '+' line, a
  ``+name`` that differs from its ``@name``, quality/sequence length mismatch, quality characters
  outside Phred+33, records cut short, multi-line records, an empty read name.
* Compression (either format): gzip/xz/bz2 cut short, gzip with a flipped body byte, BGZF without
  its end-of-file block or cut at a block boundary, gzip magic followed by garbage.
* Pairs: mate names that differ, one mate file shorter, one mate file malformed, a missing or
  directory mate.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
import zlib
from dataclasses import dataclass, field

BASES = "ACGT"
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
# bytes that are never IUPAC nucleotide codes, whitespace or a line start marker
BAD_SEQ_BYTES = [b"J", b"O", b"1", b"9", b"!", b"*", b"#", b"\x00", b"\x01", b"\x7f", b"\xff",
                 "é".encode(), b">", b"@", b"$", b"Z"]
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


@dataclass
class Case:
    """One malformed input.

    Attributes:
        id: ``<kind>-<family>-<index>``, stable for a given seed.
        kind: ``fasta``, ``fastq`` or ``pair`` (what the valid original was).
        family: the fault family.
        files: ``(file name, bytes)`` per input file; bytes None means "make a directory here";
            a pair case has two entries (mate 1, mate 2).
        located: the error should give a line or record (False for whole-file faults such as an
            empty file, a directory or a damaged compressed stream before any line).
        bad: index into ``files`` of the file the error must name.
        fasta_reads_ok: as *reads* (``bioseq align``), this input is acceptable (FASTA reads may
            have empty names); FASTA-only commands must still reject it.
    """

    id: str
    kind: str
    family: str
    files: list[tuple[str, bytes | None]]
    located: bool = True
    bad: int = 0
    fasta_reads_ok: bool = False
    notes: dict = field(default_factory=dict)


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_CHARS) for _ in range(rng.randint(3, 12))).lstrip("-") or "r"


def _seq(rng: random.Random, lo: int = 40, hi: int = 160) -> str:
    return "".join(rng.choice(BASES) for _ in range(rng.randint(lo, hi)))


def _fasta_records(rng: random.Random, n: int | None = None) -> list[tuple[str, str]]:
    names: list[str] = []
    for _ in range(n or rng.randint(1, 5)):
        nm = _name(rng)
        while nm in names:
            nm += "x"
        names.append(nm)
    return [(nm, _seq(rng)) for nm in names]


def fasta_text(recs: list[tuple[str, str]], width: int = 60, eol: str = "\n") -> bytes:
    out = []
    for nm, s in recs:
        out.append(f">{nm}{eol}")
        for i in range(0, len(s), width):
            out.append(s[i : i + width] + eol)
    return "".join(out).encode()


def _fastq_records(rng: random.Random, n: int | None = None, names: list[str] | None = None):
    names = names or [f"{_name(rng)}_{i}" for i in range(n or rng.randint(1, 5))]
    recs = []
    for nm in names:
        s = _seq(rng, 30, 120)
        q = "".join(chr(33 + rng.randint(2, 40)) for _ in s)
        recs.append((nm, s, q))
    return recs


def fastq_text(recs, eol: str = "\n") -> bytes:
    return "".join(f"@{n}{eol}{s}{eol}+{eol}{q}{eol}" for n, s, q in recs).encode()


def bgzf_blocks(data: bytes, block: int) -> list[bytes]:
    """BGZF blocks (gzip members with the 'BC' extra field) of ``block`` uncompressed bytes each."""
    out = []
    for i in range(0, len(data), block):
        raw = data[i : i + block]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(raw) + c.flush()
        bsize = 12 + 6 + len(body) + 8 - 1  # total block size - 1 (SAM spec section 4.1)
        head = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", 6) + b"BC" + struct.pack("<HH", 2, bsize)
        out.append(head + body + struct.pack("<II", zlib.crc32(raw), len(raw)))
    return out


# ---------------------------------------------------------------- faults on plain text

def _invalid_base(rng, text: bytes, fmt: str) -> tuple[bytes, bool]:
    lines = text.split(b"\n")
    seq_lines = [i for i, ln in enumerate(lines) if ln and (
        (fmt == "fasta" and not ln.startswith(b">")) or (fmt == "fastq" and i % 4 == 1))]
    i = rng.choice(seq_lines)
    ln = lines[i]
    pos = rng.randrange(len(ln))
    bad = rng.choice(BAD_SEQ_BYTES)
    if fmt == "fasta" and pos == 0 and bad in (b">",):
        pos = 1  # '>' at a line start would be a (valid) header
    lines[i] = ln[:pos] + bad + ln[pos + 1 :]
    return b"\n".join(lines), True


def fasta_fault(rng: random.Random, family: str) -> tuple[bytes | None, dict]:
    """(content, Case overrides) of one FASTA fault."""
    recs = _fasta_records(rng)
    good = fasta_text(recs, width=rng.choice([60, 70, 1000]))
    if family == "empty":
        return b"", {"located": False}
    if family == "blank-only":
        return b"\n" * rng.randint(1, 5) + b"  \n", {"located": False}
    if family == "seq-before-header":
        return _seq(rng).encode() + b"\n" + good, {}
    if family == "invalid-base":
        return _invalid_base(rng, good, "fasta")[0], {}
    if family == "duplicate-name":
        recs.append((recs[rng.randrange(len(recs))][0], _seq(rng)))
        return fasta_text(recs), {}
    if family == "nul-in-name":
        nm = recs[0][0]
        p = rng.randrange(1, len(nm) + 1)
        recs[0] = (nm[:p] + "\x00" + nm[p:], recs[0][1])
        return fasta_text(recs), {}
    if family == "cr-only":
        return fasta_text(recs, eol="\r"), {}
    if family == "garbage":
        n = rng.randint(1, 4000)
        data = bytes(rng.randrange(256) for _ in range(n))
        # never start like a header or a compressed stream, and carry at least one invalid byte
        return b"\x00" + data + b"\x01", {}
    if family == "directory":
        return None, {"located": False}
    if family == "empty-name-last":
        return good + b">\n", {"fasta_reads_ok": True}
    if family == "empty-name-first":
        return b">" + b" " * rng.randint(0, 2) + b"\n" + _seq(rng).encode() + b"\n" + good, {"fasta_reads_ok": True}
    if family == "gt-inside-sequence":
        lines = good.split(b"\n")
        i = next(i for i, ln in enumerate(lines) if ln and not ln.startswith(b">"))
        lines[i] = lines[i][:5] + b">" + lines[i][5:]
        return b"\n".join(lines), {}
    raise KeyError(family)


def fastq_fault(rng: random.Random, family: str) -> tuple[bytes | None, dict]:
    recs = _fastq_records(rng)
    good = fastq_text(recs)
    k = rng.randrange(len(recs))
    if family in ("empty", "blank-only", "garbage", "directory", "cr-only", "nul-in-name"):
        if family == "cr-only":
            return fastq_text(recs, eol="\r"), {}
        if family == "nul-in-name":
            n, s, q = recs[k]
            recs[k] = (n[:2] + "\x00" + n[2:], s, q)
            return fastq_text(recs), {}
        return fasta_fault(rng, family)
    if family == "invalid-base":
        return _invalid_base(rng, good, "fastq")[0], {}
    if family == "no-at":
        n, s, q = recs[k]
        recs[k] = (n, s, q)
        text = fastq_text(recs).split(b"\n")
        text[4 * k] = rng.choice([b"", b"#", b"X", b"\t"]) + text[4 * k][1:] if rng.random() < 0.5 else b"X" + text[4 * k]
        if not text[4 * k].strip():
            text[4 * k] = b"X"
        return b"\n".join(text), {}
    if family == "bad-plus":
        text = good.split(b"\n")
        text[4 * k + 2] = rng.choice([b"-", b"=", b"ACGT", b"x+"])
        return b"\n".join(text), {}
    if family == "plus-name-differs":
        text = good.split(b"\n")
        text[4 * k + 2] = b"+" + recs[k][0].encode() + b"_other"
        return b"\n".join(text), {}
    if family == "qual-length":
        n, s, q = recs[k]
        q = q[: -rng.randint(1, len(q) - 1)] if rng.random() < 0.5 else q + "I" * rng.randint(1, 5)
        recs[k] = (n, s, q)
        return fastq_text(recs), {}
    if family == "qual-char":
        n, s, q = recs[k]
        p = rng.randrange(len(q))
        recs[k] = (n, s, q[:p] + rng.choice([" ", "\x7f", "\x1f", "é"]) + q[p + 1 :])
        return fastq_text(recs), {}
    if family == "truncated-record":
        text = good.rstrip(b"\n").split(b"\n")
        cut = rng.choice([1, 2, 3])  # drop the last 1..3 lines of the last record
        return b"\n".join(text[:-cut]) + b"\n", {}
    if family == "multi-line":
        n, s, q = recs[k]
        h = len(s) // 2
        text = "".join(
            (f"@{a}\n{b[:h]}\n{b[h:]}\n+\n{c[:h]}\n{c[h:]}\n" if i == k else f"@{a}\n{b}\n+\n{c}\n")
            for i, (a, b, c) in enumerate(recs))
        return text.encode(), {}
    if family == "empty-name":
        text = good.split(b"\n")
        text[4 * k] = b"@"
        return b"\n".join(text), {}
    if family == "fasta-marker-mid":  # a FASTQ file that switches to FASTA
        return good + b">" + _name(rng).encode() + b"\nACGT\n", {}
    raise KeyError(family)


# ---------------------------------------------------------------- compression faults

def compression_fault(rng: random.Random, family: str, text: bytes) -> tuple[bytes, dict]:
    """Break a valid file's compressed form; ``text`` must be a valid, non-empty file."""
    whole = {"located": False}
    if family == "gzip-truncated":
        z = gzip.compress(text, mtime=0)
        return z[: rng.randint(10, len(z) - 1)], whole
    if family == "gzip-flipped":
        good = gzip.compress(text, mtime=0)
        while True:  # a flip in the final block's padding bits changes nothing: flip again
            z = bytearray(good)
            z[rng.randrange(10, len(z) - 8)] ^= 1 << rng.randrange(8)
            try:
                gzip.decompress(bytes(z))
            except (OSError, EOFError, zlib.error):
                return bytes(z), whole
    if family == "xz-truncated":
        z = lzma.compress(text)
        return z[: rng.randint(6, len(z) - 1)], whole
    if family == "bz2-truncated":
        z = bz2.compress(text)
        return z[: rng.randint(4, len(z) - 1)], whole
    if family == "bgzf-no-eof":
        return b"".join(bgzf_blocks(text, max(16, len(text) // 3))), whole
    if family == "bgzf-cut-at-block":
        blocks = bgzf_blocks(text, max(16, len(text) // 3))
        if len(blocks) > 1:
            blocks = blocks[: rng.randint(1, len(blocks) - 1)]
        return b"".join(blocks), whole
    if family == "gzip-magic-garbage":
        return b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))), whole
    raise KeyError(family)


FASTA_FAMILIES = ["empty", "blank-only", "seq-before-header", "invalid-base", "duplicate-name", "nul-in-name",
                  "cr-only", "garbage", "directory", "empty-name-last", "empty-name-first", "gt-inside-sequence"]
FASTQ_FAMILIES = ["empty", "garbage", "directory", "cr-only", "nul-in-name", "invalid-base", "no-at", "bad-plus",
                  "plus-name-differs", "qual-length", "qual-char", "truncated-record", "multi-line", "empty-name",
                  "fasta-marker-mid"]
COMPRESSION_FAMILIES = ["gzip-truncated", "gzip-flipped", "xz-truncated", "bz2-truncated", "bgzf-no-eof",
                        "bgzf-cut-at-block", "gzip-magic-garbage"]
PAIR_FAMILIES = ["name-mismatch", "mate2-shorter", "mate1-shorter", "mate2-malformed", "mate2-missing",
                 "mate2-directory"]
_EXT = {"gzip-truncated": ".gz", "gzip-flipped": ".gz", "xz-truncated": ".xz", "bz2-truncated": ".bz2",
        "bgzf-no-eof": ".gz", "bgzf-cut-at-block": ".gz", "gzip-magic-garbage": ".gz"}


def pair_fault(rng: random.Random, family: str) -> tuple[list[tuple[str, bytes | None]], dict]:
    n = rng.randint(2, 6)
    r1 = _fastq_records(rng, n)
    r2 = _fastq_records(rng, names=[x[0] for x in r1])
    f1, f2 = "r1.fq", "r2.fq"
    if family == "name-mismatch":
        k = rng.randrange(n)
        a, s, q = r2[k]
        r2[k] = (a + "_x", s, q)
        return [(f1, fastq_text(r1)), (f2, fastq_text(r2))], {"bad": 1}
    if family == "mate2-shorter":
        return [(f1, fastq_text(r1)), (f2, fastq_text(r2[: rng.randrange(1, n)]))], {"bad": 1}
    if family == "mate1-shorter":
        return [(f1, fastq_text(r1[: rng.randrange(1, n)])), (f2, fastq_text(r2))], {"bad": 0}
    if family == "mate2-malformed":
        sub = rng.choice([f for f in FASTQ_FAMILIES if f not in ("directory", "empty")])
        data, over = fastq_fault(rng, sub)
        return [(f1, fastq_text(r1)), (f2, data)], {"bad": 1, "located": over.get("located", True),
                                                   "notes": {"sub": sub}}
    if family == "mate2-missing":
        return [(f1, fastq_text(r1)), (f2 + ".missing", b"")], {"bad": 1, "located": False,
                                                               "notes": {"missing": True}}
    if family == "mate2-directory":
        return [(f1, fastq_text(r1)), (f2, None)], {"bad": 1, "located": False}
    raise KeyError(family)


def generate(seed: int, n: int) -> list[Case]:
    """``n`` malformed inputs, cycling through the families (FASTA, FASTQ, compressed, pairs)."""
    rng = random.Random(seed)
    plan: list[tuple[str, str]] = (
        [("fasta", f) for f in FASTA_FAMILIES] + [("fastq", f) for f in FASTQ_FAMILIES]
        + [("fasta-z", f) for f in COMPRESSION_FAMILIES] + [("fastq-z", f) for f in COMPRESSION_FAMILIES]
        + [("pair", f) for f in PAIR_FAMILIES]
    )
    cases = []
    for i in range(n):
        kind, family = plan[i % len(plan)]
        r = random.Random(rng.getrandbits(64))
        cid = f"{kind}-{family}-{i:05d}"
        if kind == "fasta":
            data, over = fasta_fault(r, family)
            cases.append(Case(cid, "fasta", family, [("in.fa", data)], **over))
        elif kind == "fastq":
            data, over = fastq_fault(r, family)
            cases.append(Case(cid, "fastq", family, [("in.fq", data)], **over))
        elif kind in ("fasta-z", "fastq-z"):
            fmt = kind[:5]
            text = fasta_text(_fasta_records(r)) if fmt == "fasta" else fastq_text(_fastq_records(r))
            data, over = compression_fault(r, family, text)
            name = ("in.fa" if fmt == "fasta" else "in.fq") + _EXT[family]
            cases.append(Case(cid, fmt, family, [(name, data)], **over))
        else:
            files, over = pair_fault(r, family)
            cases.append(Case(cid, "pair", family, files, **over))
    return cases
