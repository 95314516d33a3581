"""Deterministic training windows: a pure function of (seed, epoch, index).

:class:`WindowSampler` maps every ``(epoch, index)`` to one window ``(genome, contig, start,
strand)`` of a :class:`~bioseq.data.store.GenomeStore`, with no state and no sequence reads:

- **uniform over windows**: a contig is drawn with weight ``length - window + 1`` (its number of
  windows), i.e. proportional to its length, then a start uniformly inside it;
- **mostly-N windows skipped**: a window with more than ``max_n_frac`` non-ACGT bases (computed
  from the store's ambiguous-run table, not from sequence) is redrawn from the same counter-based
  random stream with an attempt counter, so the retry is as deterministic as the first draw;
- **reverse-complement augmentation**: with ``rc=True`` half the windows are on strand ``"-"``;
- **held-out splits**: ``split="train"`` excludes ``holdout_genomes``/``holdout_contigs``,
  ``split="valid"`` keeps only them, ``split="all"`` uses everything.

Randomness is a SplitMix64 hash of ``(seed, epoch, index, attempt)``, vectorised in numpy: the
same index gives the same window in any process, worker count or resume point, which is what makes
distributed training disjoint and resumption exact (see :mod:`bioseq.data.dataset`).

Example::

    store = GenomeStore.open("genomes.zarr")
    sampler = WindowSampler(store, window=1024, seed=0, split="train", holdout_genomes=["lambda"])
    sampler.window_at(epoch=0, index=17)       # Window(genome='ecoli', contig='NC_000913.3', start=..., strand='-')
    w = sampler.windows(0, np.arange(256))   # Windows of arrays: contig ids, starts, minus flags
    batch = store.fetch_batch(w.contig, w.start, 1024, w.minus)   # (256, 1024) uint8
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bioseq.data.store import GenomeStore

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SPLITS = ("train", "valid", "all")


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def counter_hash(seed: int, epoch: int, index: np.ndarray, attempt: np.ndarray | int, stream: int) -> np.ndarray:
    """64 random bits per element, a pure function of all five arguments."""
    with np.errstate(over="ignore"):
        h = _splitmix(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)
        for v in (epoch, stream, attempt, index):
            h = _splitmix(h ^ (np.asarray(v, dtype=np.int64).astype(np.uint64) + _GOLDEN))
    return h


class Window(NamedTuple):
    """One training window: bases ``[start, start + window)`` of ``contig``, on ``strand``."""

    genome: str
    contig: str
    start: int
    strand: str


@dataclass
class Windows:
    """A batch of windows as arrays (what :meth:`GenomeStore.fetch_batch` takes).

    Attributes:
        contig: ``(N,)`` int64 store contig ids.
        start: ``(N,)`` int64 starts.
        minus: ``(N,)`` bool, True for the reverse-complement strand.
    """

    contig: np.ndarray
    start: np.ndarray
    minus: np.ndarray


class WindowSampler:
    """Windows of length ``window`` from a genome store, as a pure function of (seed, epoch, index).

    Args:
        store: a :class:`GenomeStore` or its path/URL.
        window: window length in bases; contigs shorter than this are never sampled.
        seed: the random seed.
        split: ``"train"``, ``"valid"`` or ``"all"``.
        holdout_genomes: genome names held out of training (they form ``"valid"``).
        holdout_contigs: contig names held out of training (in every genome that has them).
        rc: reverse-complement half the windows (strand ``"-"``).
        max_n_frac: redraw windows whose fraction of non-ACGT bases exceeds this (1.0 = never).
        max_tries: give up (RuntimeError) if a window is still mostly N after this many draws.
    """

    def __init__(
        self,
        store: GenomeStore | str,
        window: int,
        *,
        seed: int = 0,
        split: str = "all",
        holdout_genomes: Sequence[str] = (),
        holdout_contigs: Sequence[str] = (),
        rc: bool = True,
        max_n_frac: float = 0.5,
        max_tries: int = 100,
    ) -> None:
        self.store = store if isinstance(store, GenomeStore) else GenomeStore.open(store)
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= max_n_frac <= 1.0:
            raise ValueError(f"max_n_frac must be in [0, 1], got {max_n_frac}")
        self.window, self.seed, self.split, self.rc = window, seed, split, rc
        self.max_n_frac, self.max_tries = max_n_frac, max_tries
        contigs = self.store.contigs
        unknown = set(holdout_genomes) - set(self.store.genomes)
        if unknown:
            raise ValueError(f"holdout_genomes {sorted(unknown)} not in store (genomes: {self.store.genomes})")
        unknown = set(holdout_contigs) - {c.name for c in contigs}
        if unknown:
            raise ValueError(f"holdout_contigs {sorted(unknown)} not in store {self.store.url}")
        held = np.array([c.genome in holdout_genomes or c.name in holdout_contigs for c in contigs], dtype=bool)
        if split == "valid" and not held.any():
            raise ValueError("split='valid' needs holdout_genomes or holdout_contigs")
        in_split = ~held if split == "train" else held if split == "valid" else np.ones(len(contigs), bool)
        self.contig_ids = np.flatnonzero(in_split & (self.store.lengths >= window)).astype(np.int64)
        if len(self.contig_ids) == 0:
            raise ValueError(f"no contig of split {split!r} is at least {window} bases long in {self.store.url}")
        n_windows = self.store.lengths[self.contig_ids] - window + 1
        self.total_windows = int(n_windows.sum())
        self._cum_windows = np.cumsum(n_windows)  # (C,) windows in contigs [0..c]
        self._runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return (f"WindowSampler({self.store.url!r}, window={self.window}, split={self.split!r}, "
                f"contigs={len(self.contig_ids)}, windows={self.total_windows:,}, seed={self.seed})")

    @property
    def genomes(self) -> list[str]:
        """Genomes with at least one contig in this split."""
        return list(dict.fromkeys(self.store.contigs[i].genome for i in self.contig_ids))

    def _run_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All ambiguous runs in one global coordinate space (contigs laid end to end)."""
        if self._runs is None:
            offsets = np.concatenate([[0], np.cumsum(self.store.lengths[self.contig_ids])[:-1]])
            runs = [self.store.ambiguous_runs(int(i)) + off for i, off in zip(self.contig_ids, offsets, strict=True)]
            runs = np.concatenate(runs) if runs else np.zeros((0, 2), np.int64)
            lengths = runs[:, 1] - runs[:, 0]
            before = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # ambiguous bases before run j
            self._runs = (runs[:, 0], lengths, before)
            self._offsets = offsets
        return self._runs

    def _ambiguous_count(self, slot: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Non-ACGT bases in each window, from the run table (no sequence read)."""
        run_start, run_len, before = self._run_table()
        if len(run_start) == 0:
            return np.zeros(len(start), dtype=np.int64)
        g = self._offsets[slot] + start

        def upto(x: np.ndarray) -> np.ndarray:  # ambiguous bases at positions < x
            j = np.searchsorted(run_start, x, side="right") - 1
            jj = np.maximum(j, 0)
            inside = np.minimum(x - run_start[jj], run_len[jj])
            return np.where(j >= 0, before[jj] + inside, 0)

        return upto(g + self.window) - upto(g)

    def windows(self, epoch: int, indices: Sequence[int] | np.ndarray) -> Windows:
        """The windows of ``indices`` in ``epoch`` (vectorised; the same for any batch grouping)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        slot = np.empty(len(idx), dtype=np.int64)
        start = np.empty(len(idx), dtype=np.int64)
        todo = np.arange(len(idx))
        for attempt in range(self.max_tries):
            h = counter_hash(self.seed, epoch, idx[todo], attempt, stream=0)
            r = (h % np.uint64(self.total_windows)).astype(np.int64)
            s = np.searchsorted(self._cum_windows, r, side="right")
            slot[todo] = s
            start[todo] = r - np.where(s > 0, self._cum_windows[s - 1], 0)
            if self.max_n_frac >= 1.0:
                break
            too_many = self._ambiguous_count(slot[todo], start[todo]) > self.max_n_frac * self.window
            todo = todo[too_many]
            if len(todo) == 0:
                break
        else:
            raise RuntimeError(
                f"{self.store.url}: after {self.max_tries} draws, window {int(idx[todo[0]])} of epoch "
                f"{epoch} is still more than {self.max_n_frac:.0%} N; the split {self.split!r} is "
                "(almost) all N: raise max_n_frac or check the genomes"
            )
        if self.rc:
            minus = (counter_hash(self.seed, epoch, idx, 0, stream=1) >> np.uint64(63)).astype(bool)
        else:
            minus = np.zeros(len(idx), dtype=bool)
        return Windows(contig=self.contig_ids[slot], start=start, minus=minus)

    def window_at(self, epoch: int, index: int) -> Window:
        """One window as ``(genome, contig, start, strand)``."""
        w = self.windows(epoch, [index])
        info = self.store.contigs[int(w.contig[0])]
        return Window(info.genome, info.name, int(w.start[0]), "-" if w.minus[0] else "+")

    def fetch(self, epoch: int, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, Windows]:
        """Sample and read: ``(N, window)`` uint8 codes (minus strand reverse-complemented)."""
        w = self.windows(epoch, indices)
        return self.store.fetch_batch(w.contig, w.start, self.window, w.minus), w
