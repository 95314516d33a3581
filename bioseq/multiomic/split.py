"""Protein-disjoint splits: cluster proteins by sequence identity, then grouped K-fold.

Identity of two proteins is the number of identical aligned residues in their best local
alignment (Smith-Waterman, BLOSUM62, gap open 11 / extend 1, via parasail) divided by the length
of the SHORTER sequence -- CD-HIT's convention, so a domain contained in a longer protein counts
as near-identical. Proteins are linked when identity >= ``threshold`` (default
:data:`DEFAULT_IDENTITY`, 0.4) and clusters are the connected components (single linkage), which
guarantees that no train/test pair of proteins reaches the threshold when folds are unions of
clusters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_IDENTITY = 0.4
_GAP_OPEN, _GAP_EXTEND = 11, 1


def _profiles(seqs: Sequence[str]):
    import parasail

    return [parasail.profile_create_stats_16(s, parasail.blosum62) for s in seqs]


def identity(a: str, b: str) -> float:
    """Identity of two proteins (see the module docstring)."""
    import parasail

    r = parasail.sw_stats_striped_16(a, b, _GAP_OPEN, _GAP_EXTEND, parasail.blosum62)
    return r.matches / max(1, min(len(a), len(b)))


def pairwise_identity(seqs_a: Sequence[str], seqs_b: Sequence[str] | None = None) -> np.ndarray:
    """Identity matrix ``(len(a), len(b))``; with ``seqs_b`` None, the symmetric all-vs-all of
    ``seqs_a`` (upper triangle aligned once, diagonal 1). ~30 s for 750 proteins on one core."""
    import parasail

    sym = seqs_b is None
    b = seqs_a if sym else seqs_b
    out = np.zeros((len(seqs_a), len(b)), dtype=np.float32)
    for i, prof in enumerate(_profiles(seqs_a)):
        start = i + 1 if sym else 0
        for j in range(start, len(b)):
            if sym and seqs_a[i] == b[j]:
                out[i, j] = 1.0
                continue
            r = parasail.sw_stats_striped_profile_16(prof, b[j], _GAP_OPEN, _GAP_EXTEND)
            out[i, j] = r.matches / max(1, min(len(seqs_a[i]), len(b[j])))
    if sym:
        out = np.maximum(out, out.T)
        np.fill_diagonal(out, 1.0)
    return out


def identity_clusters(seqs: Sequence[str], threshold: float = DEFAULT_IDENTITY,
                      identity_matrix: np.ndarray | None = None) -> np.ndarray:
    """Single-linkage clusters of ``seqs`` at ``identity >= threshold`` -> cluster id per sequence
    (ids 0..k-1, numbered by first member)."""
    n = len(seqs)
    ident = pairwise_identity(seqs) if identity_matrix is None else identity_matrix
    if ident.shape != (n, n):
        raise ValueError(f"identity_matrix shape {ident.shape} does not match {n} sequences")
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(*np.nonzero(np.triu(ident >= threshold, 1)), strict=True):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def grouped_kfold(groups: Sequence[int], n_splits: int = 5, seed: int = 0,
                  weights: Sequence[float] | None = None) -> np.ndarray:
    """Assign every item a fold in ``0..n_splits-1`` so that all items of a group share a fold,
    balancing total weight (default: item count) across folds greedily, largest group first
    (ties broken by a seeded shuffle)."""
    groups = np.asarray(groups)
    w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=float)
    uniq, inv = np.unique(groups, return_inverse=True)
    if len(uniq) < n_splits:
        raise ValueError(f"{len(uniq)} groups cannot fill {n_splits} folds")
    gw = np.bincount(inv, weights=w, minlength=len(uniq))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-gw[order], kind="stable")]
    load = np.zeros(n_splits)
    gfold = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        gfold[g] = f
        load[f] += gw[g]
    return gfold[inv]


def protein_disjoint_folds(proteins: Sequence[str], n_splits: int = 5, threshold: float = DEFAULT_IDENTITY,
                           seed: int = 0, identity_matrix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Folds for items described by their protein sequence (several items may share one).

    Returns ``(fold per item, cluster per item)``. Unique sequences are clustered with
    :func:`identity_clusters` (``identity_matrix`` over the sorted unique sequences may be passed
    to reuse one), then clusters are spread over folds by :func:`grouped_kfold`.
    """
    uniq = sorted(set(proteins))
    index = {s: i for i, s in enumerate(uniq)}
    clusters = identity_clusters(uniq, threshold, identity_matrix)
    item_cluster = clusters[[index[p] for p in proteins]]
    return grouped_kfold(item_cluster, n_splits, seed), item_cluster


def max_cross_identity(train: Sequence[str], test: Sequence[str]) -> float:
    """Highest identity between any train protein and any test protein (0 if either is empty)."""
    train, test = sorted(set(train)), sorted(set(test))
    if not train or not test:
        return 0.0
    return float(pairwise_identity(test, train).max())


def drop_similar(candidates: Sequence[str], reference: Sequence[str], threshold: float = DEFAULT_IDENTITY) -> np.ndarray:
    """Boolean keep-mask over ``candidates``: False where a candidate reaches ``threshold``
    identity to any ``reference`` protein (used to hold out an external test set)."""
    uniq = sorted(set(candidates))
    ref = sorted(set(reference))
    if not ref:
        return np.ones(len(candidates), dtype=bool)
    ok = dict(zip(uniq, pairwise_identity(uniq, ref).max(1) < threshold, strict=True))
    return np.array([ok[c] for c in candidates], dtype=bool)
