"""Evaluation utilities: bits per base, Markov baselines."""

import math

from bioseq.eval.markov import MarkovModel, acgt_target_mask, best_markov, best_order

LN2 = math.log(2.0)


def nats_to_bits(x: float) -> float:
    return x / LN2


__all__ = ["LN2", "MarkovModel", "acgt_target_mask", "best_markov", "best_order", "nats_to_bits"]
