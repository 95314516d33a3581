"""Sequencing-error simulation on uint8 code arrays (training pairs and tests)."""

from __future__ import annotations

import numpy as np


def mutate_read(codes: np.ndarray, rng: np.random.Generator, sub_rate: float, indel_rate: float) -> np.ndarray:
    """Apply substitutions (to a different base) and 1-3 bp insertions/deletions.

    Args:
        codes: ``(L,)`` uint8 ACGT codes (0-3).
        rng: numpy random generator (the only source of randomness, so results are reproducible).
        sub_rate: per-base substitution probability.
        indel_rate: per-base probability of an indel event (half insertions, half deletions).

    Returns:
        a new ``(L',)`` uint8 array.
    """
    out = codes.copy()
    n = out.shape[0]
    sub = rng.random(n) < sub_rate
    # adding 1..3 modulo 4 to an ACGT code always gives a different base
    out[sub] = (out[sub].astype(np.int64) + rng.integers(1, 4, sub.sum())) % 4 * (out[sub] < 4) + out[sub] * (out[sub] >= 4)
    events = np.flatnonzero(rng.random(n) < indel_rate)
    if events.size == 0:
        return out
    pieces, prev = [], 0
    for pos in events:
        size = int(rng.integers(1, 4))
        pieces.append(out[prev:pos])
        if rng.random() < 0.5:
            pieces.append(rng.integers(0, 4, size).astype(np.uint8))
            prev = pos
        else:
            prev = min(pos + size, n)
    pieces.append(out[prev:])
    return np.concatenate(pieces).astype(np.uint8)
