"""Bits per base of language models, scored on the positions the Markov baselines score."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bioseq.models.heads import IGNORE_INDEX, mask_tokens


@torch.no_grad()
def causal_bits(model, ids: torch.Tensor, nucleotide_ids: torch.Tensor) -> tuple[float, int]:
    """Total bits and count of next-token predictions at positions 1..L-1 whose target is one
    of ``nucleotide_ids`` (A/C/G/T), for a causal LM on ``ids (B, L)``."""
    logits = model(ids).logits.float()  # (B, L, V)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, L-1)
    ok = torch.isin(ids[:, 1:], nucleotide_ids.to(ids.device))
    return float((nll * ok).sum()) / math.log(2.0), int(ok.sum())


@torch.no_grad()
def masked_bits(model, ids: torch.Tensor, nucleotide_ids: torch.Tensor, mask_token_id: int,
                generator: torch.Generator, mlm_probability: float = 0.15) -> tuple[float, int]:
    """Total bits and count of masked-token predictions (BERT masking of A/C/G/T positions)."""
    ok = torch.isin(ids, nucleotide_ids.to(ids.device))
    masked, labels = mask_tokens(ids.cpu(), mask_token_id, ok.cpu(), nucleotide_ids.cpu(), mlm_probability, generator)
    logits = model(masked.to(ids.device)).logits.float()
    labels = labels.to(ids.device)
    nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none", ignore_index=IGNORE_INDEX)
    sel = labels != IGNORE_INDEX
    return float((nll * sel).sum()) / math.log(2.0), int(sel.sum())
