"""Evaluation utilities: bits per base, Markov baselines, FLOPs per token."""

import math

from bioseq.eval.flops import forward_flops_per_token
from bioseq.eval.markov import MarkovModel, acgt_target_mask, best_markov, best_order

LN2 = math.log(2.0)


def nats_to_bits(x: float) -> float:
    return x / LN2


__all__ = ["LN2", "MarkovModel", "acgt_target_mask", "best_markov", "best_order", "forward_flops_per_token", "nats_to_bits"]
