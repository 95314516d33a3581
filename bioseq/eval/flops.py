"""Forward FLOPs per token of a model on real input, for equal-compute comparisons.

Counts come from ``torch.utils.flop_counter`` (matrix products and convolutions; 2 FLOPs per
multiply-add) with attention forced onto the math backend, whose score and value products are
plain matrix products and so are counted: a causal layer is charged for the full ``L x L`` score
matrix, as dense kernels compute it. FFTs (Hyena's long convolutions) and elementwise work (Mamba's
selective scan, the xLSTM cell's recurrence) are not counted, so for those models the figure is the
work of their projections only; compare them by measured tokens/s as well.

The count depends on the input for models whose work depends on the data: an H-Net's main
network runs on the chunks its router selects, so count it on held-out sequence, trained.
"""

from __future__ import annotations

import torch
from torch import nn


def forward_flops_per_token(model: nn.Module, input_ids: torch.Tensor, **kwargs) -> float:
    """Forward FLOPs of ``model(input_ids)`` divided by the number of tokens in ``input_ids (B, L)``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            model(input_ids, **kwargs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / input_ids.numel()
