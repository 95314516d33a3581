"""(w, k) minimizers and the seed table that re-ranks and rescues embedding candidates.

Only forward-strand k-mers are indexed: the aligner queries the forward and the reverse-complement
read separately, so a seed hit's diagonal ``ref_pos - read_pos`` directly estimates where that
strand of the read starts. Everything is numpy over whole arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_INVALID = np.uint64(0xFFFFFFFFFFFFFFFF)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def kmer_hashes(codes: np.ndarray, k: int) -> np.ndarray:
    """Hash of every k-mer start ``(L - k + 1,)`` uint64; k-mers containing a non-ACGT base get
    the all-ones value so they are never chosen. The hash is an invertible mix of the 2-bit packed
    k-mer, so hash order is unrelated to lexicographic order (no poly-A bias)."""
    n = codes.shape[0] - k + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    c = codes.astype(np.uint64) & np.uint64(3)
    x = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        x = (x << np.uint64(2)) | c[j : j + n]
    x = (x ^ (x >> np.uint64(29))) * _MIX
    x ^= x >> np.uint64(32)
    bad = np.concatenate([[0], np.cumsum(codes >= 4)])
    x[(bad[k:] - bad[:-k]) > 0] = _INVALID
    return x


def minimizers(codes: np.ndarray, k: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, positions) of the (w, k) minimizers (leftmost minimum of each window of w k-mers)."""
    h = kmer_hashes(codes, k)
    if h.size == 0:
        return h, np.empty(0, dtype=np.int64)
    if h.size < w:
        pos = np.array([int(np.argmin(h))])
    else:
        pos = np.unique(np.argmin(sliding_window_view(h, w), axis=1) + np.arange(h.size - w + 1))
    keep = h[pos] != _INVALID
    return h[pos[keep]], pos[keep].astype(np.int64)


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


class SeedTable:
    """Sorted minimizer hashes and positions with a per-hash occurrence cap (repeats)."""

    def __init__(self, hashes: np.ndarray, positions: np.ndarray, k: int, w: int, max_occ: int = 64) -> None:
        self.hashes, self.positions, self.k, self.w, self.max_occ = hashes, positions, k, w, max_occ

    def diagonals(self, read: np.ndarray) -> np.ndarray:
        """Seed-hit diagonals ``ref_pos - read_pos`` (sorted int64) for one read strand."""
        h, qpos = minimizers(read, self.k, self.w)
        if h.size == 0:
            return np.empty(0, dtype=np.int64)
        lo = np.searchsorted(self.hashes, h, "left")
        hi = np.searchsorted(self.hashes, h, "right")
        cnt = hi - lo
        ok = (cnt > 0) & (cnt <= self.max_occ)
        lo, cnt, qpos = lo[ok], cnt[ok], qpos[ok]
        if cnt.sum() == 0:
            return np.empty(0, dtype=np.int64)
        # expand every [lo, lo+cnt) range without a Python loop
        idx = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
        d = self.positions[idx] - np.repeat(qpos, cnt)
        return np.sort(d)


def votes_in(diags: np.ndarray, lo: int, hi: int) -> int:
    """Number of seed hits with diagonal in ``[lo, hi]`` (diags sorted)."""
    return int(np.searchsorted(diags, hi, "right") - np.searchsorted(diags, lo, "left"))


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
