"""(w, k) minimizers and the seed table that re-ranks and rescues embedding candidates.

Only forward-strand k-mers are indexed: the aligner queries the forward and the reverse-complement
read separately, so a seed hit's diagonal ``ref_pos - read_pos`` directly estimates where that
strand of the read starts. Everything is numpy over whole arrays.
"""

from __future__ import annotations

import numpy as np

_INVALID = np.uint64(0xFFFFFFFFFFFFFFFF)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def pack_kmers(codes: np.ndarray, k: int) -> np.ndarray:
    """2-bit packed value of every k-mer start ``(L - k + 1,)`` uint64 (A=0 C=1 G=2 T=3, first
    base in the high bits; a non-ACGT base packs as its low two bits, see :func:`invalid_kmers`)."""
    n = codes.shape[0] - k + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    # 2-bit pack every k-mer by doubling (j-mers -> 2j-mers) rather than k shifts of the whole array
    c = codes.astype(np.uint64) & np.uint64(3)
    packs = {1: c}
    j = 1
    while 2 * j <= k:
        p = packs[j]
        packs[2 * j] = (p[: p.size - j] << np.uint64(2 * j)) | p[j:]
        j *= 2
    x, used = None, 0
    for j in sorted(packs, reverse=True):  # k as a sum of powers of two, largest first
        if used + j <= k:
            part = packs[j][used : used + n]
            x = part if x is None else (x << np.uint64(2 * j)) | part
            used += j
    return x


def invalid_kmers(codes: np.ndarray, k: int) -> np.ndarray:
    """True for every k-mer start ``(L - k + 1,)`` whose k-mer holds a non-ACGT base."""
    bad = np.concatenate([[0], np.cumsum(codes >= 4)])
    return (bad[k:] - bad[:-k]) > 0


def mix(x: np.ndarray) -> np.ndarray:
    """Invertible 64-bit mix of packed k-mers (hash order unrelated to lexicographic order)."""
    x = (x ^ (x >> np.uint64(29))) * _MIX
    return x ^ (x >> np.uint64(32))


def kmer_hashes(codes: np.ndarray, k: int) -> np.ndarray:
    """Hash of every k-mer start ``(L - k + 1,)`` uint64; k-mers containing a non-ACGT base get
    the all-ones value so they are never chosen. The hash is an invertible mix of the 2-bit packed
    k-mer, so hash order is unrelated to lexicographic order (no poly-A bias)."""
    x = pack_kmers(codes, k)
    if x.size == 0:
        return x
    x = mix(x)
    x[invalid_kmers(codes, k)] = _INVALID
    return x


def window_argmin(h: np.ndarray, w: int) -> np.ndarray:
    """Position of the leftmost minimum of every window of ``w`` consecutive values ``(h.size - w + 1,)``.
    A running (value, offset) pass per offset: contiguous vector work instead of a strided view."""
    n = h.size - w + 1
    best = h[:n].copy()
    arg = np.zeros(n, dtype=np.int64)
    for i in range(1, w):
        x = h[i : i + n]
        better = x < best  # strict: ties keep the leftmost
        np.copyto(best, x, where=better)
        arg[better] = i
    return arg + np.arange(n)


def minimizers(codes: np.ndarray, k: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, positions) of the (w, k) minimizers (leftmost minimum of each window of w k-mers)."""
    _, h, pos = batch_minimizers([codes], k, w)
    return h, pos


def build_table(codes: np.ndarray, k: int, w: int, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Minimizer table of a (concatenated) reference: hashes sorted ascending and their positions.
    Built in chunks (overlapping by k + w) so memory stays bounded on large genomes."""
    hs, ps = [], []
    n = codes.shape[0]
    for s in range(0, n, chunk):
        # windows that can elect a k-mer in [s, s + chunk) start w - 1 k-mers earlier and end
        # w - 1 k-mers later; each position is then reported by exactly one chunk
        b = max(0, s - (w - 1))
        e = min(n, s + chunk + (w - 1) + (k - 1))
        h, p = minimizers(codes[b:e], k, w)
        p = p + b
        keep = (p >= s) & (p < s + chunk)
        hs.append(h[keep])
        ps.append(p[keep])
    h, p = np.concatenate(hs), np.concatenate(ps)
    order = np.lexsort((p, h))
    return h[order], p[order]


def batch_minimizers(seqs: list[np.ndarray], k: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, k) minimizers of many sequences at once -> ``(seq index, hash, position in the sequence)``,
    sorted by sequence then position. Equal to :func:`minimizers` on each sequence separately: the
    sequences are concatenated with one N between them and a window counts only when all of its w
    k-mers lie inside one sequence, so nothing depends on which other sequences share the batch."""
    n = len(seqs)
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    nk = np.maximum(lens - k + 1, 0)  # k-mers per sequence
    empty = np.empty(0, dtype=np.int64)
    if nk.sum() == 0:
        return empty, np.empty(0, dtype=np.uint64), empty
    offs = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])  # start of each sequence in the concatenation
    cat = np.full(int(lens.sum() + n), 4, dtype=np.uint8)
    cat[np.repeat(offs, lens) + _ranges(lens)] = np.concatenate(seqs)
    h = kmer_hashes(cat, k)
    rid = np.full(h.size, -1, dtype=np.int64)  # sequence owning each k-mer start (-1: spans a separator)
    rid[np.repeat(offs, nk) + _ranges(nk)] = np.repeat(np.arange(n), nk)
    pos = empty
    if h.size >= w:
        ok = (rid[: h.size - w + 1] >= 0) & (rid[: h.size - w + 1] == rid[w - 1 :])
        pos = window_argmin(h, w)[ok]
    short = np.flatnonzero((nk > 0) & (nk < w))  # fewer than w k-mers: one window over all of them
    if short.size:
        extra = [offs[i] + int(np.argmin(h[offs[i] : offs[i] + nk[i]])) for i in short]
        pos = np.concatenate([pos, np.array(extra, dtype=np.int64)])
        pos = np.sort(pos)
    # leftmost window minima never move left as the window slides, so duplicates are adjacent
    pos = pos[np.concatenate([[True], np.diff(pos) != 0])] if pos.size else pos
    pos = pos[h[pos] != _INVALID]
    r = rid[pos]
    return r, h[pos], pos - offs[r]


def _ranges(n: np.ndarray) -> np.ndarray:
    """concatenate([arange(x) for x in n]) without a Python loop."""
    return np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)


class SeedTable:
    """Sorted minimizer hashes and positions with a per-hash occurrence cap (repeats)."""

    def __init__(self, hashes: np.ndarray, positions: np.ndarray, k: int, w: int, max_occ: int = 64) -> None:
        self.hashes, self.positions, self.k, self.w, self.max_occ = hashes, positions, k, w, max_occ

    def diagonals(self, read: np.ndarray) -> np.ndarray:
        """Seed-hit diagonals ``ref_pos - read_pos`` (sorted int64) for one read strand."""
        return self.batch_diagonals([read])[1]

    def batch_diagonals(self, seqs: list[np.ndarray], max_occ: int | None = None, every_kmer: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Seed-hit diagonals of many read strands -> ``(bounds (n + 1,), diagonals)``: the sorted
        diagonals of ``seqs[i]`` are ``diagonals[bounds[i]:bounds[i + 1]]``. Minimizers with more
        than ``max_occ`` (default: the table's) reference copies are skipped. With ``every_kmer``
        every k-mer of the read is looked up, not only its minimizers: a reference minimizer is then
        hit whenever its k-mer is intact in the read, even where nearby differences change which
        k-mer the read's own window elects (divergent reads)."""
        sid, h, qpos = batch_minimizers(seqs, self.k, 1 if every_kmer else self.w)
        order = np.argsort(h, kind="stable")  # sorted needles walk the table in order: ~4x fewer cache misses
        sid, h, qpos = sid[order], h[order], qpos[order]
        lo = np.searchsorted(self.hashes, h, "left")
        cnt = np.searchsorted(self.hashes, h, "right") - lo
        ok = (cnt > 0) & (cnt <= (max_occ or self.max_occ))
        lo, cnt, qpos, sid = lo[ok], cnt[ok], qpos[ok], sid[ok]
        # expand every [lo, lo+cnt) range without a Python loop
        d = self.positions[np.repeat(lo, cnt) + _ranges(cnt)] - np.repeat(qpos, cnt)
        sid = np.repeat(sid, cnt)
        order = np.lexsort((d, sid))
        bounds = np.searchsorted(sid[order], np.arange(len(seqs) + 1), "left")
        return bounds, d[order]


def votes_in(diags: np.ndarray, lo: int, hi: int) -> int:
    """Number of seed hits with diagonal in ``[lo, hi]`` (diags sorted)."""
    return int(np.searchsorted(diags, hi, "right") - np.searchsorted(diags, lo, "left"))


def batch_clusters(bounds: np.ndarray, diags: np.ndarray, top: int, gap: int = 16, span: bool = False
                   ) -> tuple[np.ndarray, ...]:
    """:func:`clusters` of every read strand at once, keeping the ``top`` best of each ->
    ``(strand index, votes, median diagonal)`` ordered by strand index, then as :func:`clusters`;
    with ``span`` also each cluster's smallest and largest diagonal (a cluster in a tandem repeat
    chains diagonals over many periods, and the read's true start can be anywhere in it)."""
    n = bounds.size - 1
    sid = np.repeat(np.arange(n), np.diff(bounds))
    if diags.size == 0:
        e = np.empty(0, dtype=np.int64)
        return (e,) * (5 if span else 3)
    cut = np.flatnonzero((np.diff(diags) > gap) | (np.diff(sid) != 0)) + 1
    a = np.concatenate([[0], cut])
    b = np.concatenate([cut, [diags.size]])
    cs, votes, med = sid[a], b - a, diags[(a + b) // 2]
    order = np.lexsort((med, -votes, cs))
    cs, votes, med = cs[order], votes[order], med[order]
    first = np.searchsorted(cs, cs, "left")  # rank of each cluster within its strand
    keep = np.arange(cs.size) - first < top
    if span:
        return cs[keep], votes[keep], med[keep], diags[a][order][keep], diags[b - 1][order][keep]
    return cs[keep], votes[keep], med[keep]


def clusters(diags: np.ndarray, gap: int = 16) -> list[tuple[int, int]]:
    """Group sorted diagonals closer than ``gap`` -> [(votes, median diagonal)], most votes first
    (ties: smaller diagonal first, so the order is deterministic)."""
    if diags.size == 0:
        return []
    cut = np.flatnonzero(np.diff(diags) > gap) + 1
    bounds = np.concatenate([[0], cut, [diags.size]])
    out = [(int(b - a), int(diags[(a + b) // 2])) for a, b in zip(bounds[:-1], bounds[1:])]
    out.sort(key=lambda t: (-t[0], t[1]))
    return out
