"""Order-k Markov models of DNA: the baseline every pretrained model must beat on bits per base.

A model of order k predicts base ``x_i`` from the k bases before it with additive (Lidstone)
smoothing. Counts for every order 0..k are kept so a position with only j < k bases of context
(the start of a window) is scored by the order-j model: neural models and the baseline are then
scored on exactly the same positions of the same windows.

Everything works on the uint8 codes of :mod:`bioseq.alphabet` (A0 C1 G2 T3, soft-mask bit
ignored); positions whose base or context contains an ambiguity code are skipped, both when
fitting and when scoring, and neural evaluations skip them too (see ``acgt_target_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bioseq.alphabet import CODE_MASK, reverse_complement_codes


def _kmer_index(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 index of the (k+1)-mer ending at each position i >= k, and whether it is all ACGT.

    Returns ``(idx, ok)`` of length ``len(codes) - k``: ``idx = context * 4 + base``.
    """
    c = (codes & CODE_MASK).astype(np.int64)
    n = len(c) - k
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    bad = c >= 4
    idx = np.zeros(n, np.int64)
    for j in range(k + 1):  # k+1 vectorised passes, not a loop over positions
        idx = idx * 4 + np.where(bad[j : j + n], 0, c[j : j + n])
    # a window is valid if no ambiguous base among its k+1 positions
    cs = np.concatenate([[0], np.cumsum(bad)])
    ok = (cs[k + 1 : k + 1 + n] - cs[:n]) == 0
    return idx, ok


@dataclass
class MarkovModel:
    """Order-``k`` nucleotide Markov chain with Lidstone smoothing ``alpha``."""

    k: int
    alpha: float = 0.5
    counts: list[np.ndarray] = field(default_factory=list)  # order j: (4**j, 4)

    def __post_init__(self) -> None:
        if not 0 <= self.k <= 14:
            raise ValueError(f"Markov order k must be in 0..14, got {self.k}")
        if not self.counts:
            self.counts = [np.zeros((4**j, 4), np.float64) for j in range(self.k + 1)]

    def fit(self, sequences, both_strands: bool = True) -> MarkovModel:
        """Add counts from an iterable of code arrays (both strands by default).

        The (k+1)-mers are indexed and counted once, at the top order; every lower order j is
        the marginal of those counts over the k-j oldest context bases. That marginal misses
        only positions whose short context is all A/C/G/T but whose full k-base context is not
        (the first k bases of a sequence, and the k bases after an ambiguity code); those few
        are counted directly, so the counts equal indexing every order separately.
        """
        k = self.k
        self._cache = None  # log2 tables of the old counts
        top = np.zeros(4 ** (k + 1), np.int64)  # (k+1)-mer counts of all sequences, both strands
        for codes in sequences:
            codes = np.asarray(codes, np.uint8)
            strands = (codes, reverse_complement_codes(codes)) if both_strands else (codes,)
            for s in strands:
                idx, ok = _kmer_index(s, k)
                top += np.bincount(idx[ok], minlength=4 ** (k + 1))
                self._count_short_contexts(s)
        for j in range(k, -1, -1):  # the oldest context base is the most significant digit
            self.counts[j] += top.reshape(-1, 4)
            top = top.reshape(4, -1).sum(0)  # marginalise it out: order j -> j-1
        return self

    def _count_short_contexts(self, s: np.ndarray) -> None:
        """Add, for every order j < k, the positions whose last j+1 bases are all A/C/G/T but
        whose last k+1 are not (what the top-order marginal cannot see)."""
        k = self.k
        c = (s & CODE_MASK).astype(np.int64)
        pos = np.arange(len(c))
        last_bad = np.maximum.accumulate(np.where(c >= 4, pos, -1)) if len(c) else pos
        run = pos - last_bad  # A/C/G/T bases ending at each position, itself included
        cand = np.flatnonzero((run >= 1) & (run <= k))  # valid target, context cut short
        for j in range(k):
            p = cand[run[cand] >= j + 1]
            if len(p) == 0:
                continue
            idx = np.zeros(len(p), np.int64)
            for t in range(j + 1):
                idx = idx * 4 + c[p - j + t]
            self.counts[j] += np.bincount(idx, minlength=4 ** (j + 1)).reshape(-1, 4)

    def log2_probs(self, order: int) -> np.ndarray:
        c = self.counts[order] + self.alpha
        return np.log2(c / c.sum(1, keepdims=True))  # (4**order, 4)

    def _tables(self) -> list[np.ndarray]:
        """Flattened log2 tables of every order, computed once per fit (an order-12 table has
        67 M entries: rebuilding it per scored window would dominate everything else)."""
        if getattr(self, "_cache", None) is None:  # fit() clears it
            self._cache = [self.log2_probs(j).reshape(-1) for j in range(self.k + 1)]
        return self._cache

    def position_log2_probs(self, codes: np.ndarray) -> np.ndarray:
        """``(L,)`` log2 P(base_i | previous min(k, i) bases) of one sequence; NaN at position 0
        and where the base or the used context holds an ambiguity code (what a causal LM scores)."""
        codes = np.asarray(codes, np.uint8)
        out = np.full(len(codes), np.nan)
        tables = self._tables()
        for i in range(1, min(self.k, len(codes) - 1) + 1):  # the short-context head, order i
            idx, ok = _kmer_index(codes[: i + 1], i)
            if ok[0]:
                out[i] = tables[i][idx[0]]
        if len(codes) > self.k:
            idx, ok = _kmer_index(codes, self.k)
            lp = np.where(ok, tables[self.k][idx], np.nan)
            out[max(self.k, 1):] = lp[max(self.k, 1) - self.k:]
        return out

    def window_bits(self, windows: np.ndarray) -> tuple[float, int]:
        """Total bits and number of scored positions over ``windows (N, L)`` of codes.

        Position 0 of each window is not scored (a causal LM has no context for it either);
        position i >= 1 uses order ``min(k, i)``. Positions with an ambiguous base in the
        target or the used context are skipped.
        """
        windows = np.atleast_2d(np.asarray(windows, np.uint8))
        total, count = 0.0, 0
        tables = [self.log2_probs(j) for j in range(self.k + 1)]
        for w in windows:
            for i in range(1, min(self.k, len(w) - 1) + 1):  # the short-context head, order i
                idx, ok = _kmer_index(w[: i + 1], i)
                if ok[0]:
                    total -= tables[i].reshape(-1)[idx[0]]
                    count += 1
            if len(w) > self.k + 1:
                idx, ok = _kmer_index(w, self.k)
                # entry 0 is position k: scored above when k >= 1, unscored position 0 when k == 0
                idx, ok = idx[1:], ok[1:]
                total -= tables[self.k].reshape(-1)[idx[ok]].sum()
                count += int(ok.sum())
        return float(total), count

    def bits_per_base(self, windows: np.ndarray) -> float:
        bits, n = self.window_bits(windows)
        return bits / max(n, 1)


@dataclass
class ContextModel:
    """Two-sided context model: base ``x_i`` from the ``k`` bases on each side, Lidstone smoothing
    ``alpha``; the classical baseline of a masked LM, which also sees both sides.

    Counts are kept for every order ``j <= k``, so a position within
    ``k`` of a window edge is scored with the widest symmetric context that fits: every A/C/G/T
    position of a window is scored. Unlike a masked LM under evaluation, it always sees the true
    bases around the target, never masked ones.
    """

    k: int
    alpha: float = 0.5
    counts: list[np.ndarray] = field(default_factory=list)  # order j: (4**j left, 4**j right, 4)

    def __post_init__(self) -> None:
        if not 0 <= self.k <= 6:
            raise ValueError(f"two-sided context k must be in 0..6 (4**(2k+1) counts), got {self.k}")
        if not self.counts:
            self.counts = [np.zeros((4**j, 4**j, 4), np.float64) for j in range(self.k + 1)]

    @staticmethod
    def _split(idx: np.ndarray, j: int) -> np.ndarray:
        """(2j+1)-mer index (left bases most significant) -> flat index into (left, right, centre)."""
        right = idx % 4**j
        centre = (idx // 4**j) % 4
        left = idx // 4 ** (j + 1)
        return (left * 4**j + right) * 4 + centre

    def fit(self, sequences, both_strands: bool = True) -> ContextModel:
        """Add counts of every (2k+1)-mer of ``sequences`` (code arrays), both strands by default."""
        for codes in sequences:
            codes = np.asarray(codes, np.uint8)
            for st in (codes, reverse_complement_codes(codes)) if both_strands else (codes,):
                # every order counted on its own: near sequence ends and ambiguity codes a short
                # context exists where the top-order one does not
                for j in range(self.k + 1):
                    idx, ok = _kmer_index(st, 2 * j)
                    self.counts[j] += np.bincount(self._split(idx[ok], j), minlength=4 ** (2 * j + 1)).reshape(4**j, 4**j, 4)
        return self

    def window_bits(self, windows: np.ndarray, orders: int | None = None) -> tuple[float, int]:
        """Total bits and number of scored positions over ``windows (N, L)``, using context
        ``min(k, i, L - 1 - i)`` at position ``i`` (``orders`` caps k)."""
        k = self.k if orders is None else orders
        w = np.atleast_2d(np.asarray(windows, np.uint8))
        n, L = w.shape
        dist = np.minimum(np.arange(L), L - 1 - np.arange(L))  # bases available on the shorter side
        total, count = 0.0, 0
        flat = w.reshape(-1)
        for j in range(min(k, (L - 1) // 2) + 1):
            c = self.counts[j] + self.alpha
            table = np.log2(c / c.sum(-1, keepdims=True)).reshape(-1)
            cols = np.flatnonzero(dist == j) if j < k else np.flatnonzero(dist >= j)
            idx, ok = _kmer_index(flat, 2 * j)  # entry p: the (2j+1)-mer centred on p + j
            pos = (np.arange(n)[:, None] * L + cols[None, :]).reshape(-1) - j  # centred on window cols
            sel = ok[pos]
            total -= table[self._split(idx[pos][sel], j)].sum()
            count += int(sel.sum())
        return float(total), count

    def bits_per_base(self, windows: np.ndarray, orders: int | None = None) -> float:
        bits, n = self.window_bits(windows, orders)
        return bits / max(n, 1)


def best_context(model: ContextModel, valid_windows: np.ndarray) -> tuple[int, dict[int, float]]:
    """Score every order ``<= model.k`` of a fitted two-sided model; ``(best k, {k: bits/base})``."""
    scores = {j: model.bits_per_base(valid_windows, j) for j in range(model.k + 1)}
    return min(scores, key=scores.get), scores


def acgt_target_mask(windows: np.ndarray, k_context: int = 0) -> np.ndarray:
    """(N, L) bool: positions i >= 1 whose base is A/C/G/T (what both models score)."""
    w = np.asarray(windows) & CODE_MASK
    m = w < 4
    m[:, 0] = False
    return m


def best_markov(train_sequences, valid_windows: np.ndarray, orders=range(0, 13), alpha: float = 0.5):
    """Fit orders ``orders`` on ``train_sequences`` and pick the best on ``valid_windows``.

    Returns ``(best_model, {k: bits_per_base})``. Counts are computed once at the largest order
    and reused: a model of order k is the prefix of the counts list.
    """
    orders = list(orders)
    return best_order(MarkovModel(max(orders), alpha).fit(list(train_sequences)), valid_windows, orders)


def best_order(big: MarkovModel, valid_windows: np.ndarray, orders=None):
    """Score every order ``<= big.k`` of a fitted chain on ``valid_windows`` and pick the best.

    The counts of ``big`` are shared, not copied: fit once, then score several held-out sets.
    Returns ``(best_model, {k: bits_per_base})`` as :func:`best_markov`.
    """
    orders, alpha = list(range(big.k + 1) if orders is None else orders), big.alpha
    if max(orders) > big.k:
        raise ValueError(f"orders up to {max(orders)} need a chain of order >= {max(orders)}, got {big.k}")
    scores = {}
    for k in orders:
        m = MarkovModel(k, alpha, counts=big.counts[: k + 1])
        scores[k] = m.bits_per_base(valid_windows)
    kbest = min(scores, key=scores.get)
    return MarkovModel(kbest, alpha, counts=big.counts[: kbest + 1]), scores
