"""Integrated gradients over token embeddings, for any backbone with an ``embedding`` module.

For a scalar model output ``f`` (e.g. predicted dG), input embeddings ``x`` and a baseline ``x'``,
the attribution of token ``t`` is ``(x_t - x'_t) . integral_0^1 grad_{x_t} f(x' + a (x - x')) da``
summed over the embedding dimension (Sundararajan et al. 2017). The integral uses the trapezoid
rule over ``steps`` intervals, so attributions satisfy completeness --
``sum_t attr_t = f(x) - f(x')`` -- up to the quadrature error, which is returned as ``delta``.
Embeddings are substituted through a forward hook on ``embedding``, so the backbone code is
untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def integrated_gradients(
    forward_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    embedding: nn.Embedding,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    baseline_ids: torch.Tensor | None = None,
    steps: int = 32,
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions ``(L,)`` for ONE sequence ``input_ids (1, L)``, and the completeness error.

    Args:
        forward_fn: ``(ids (n, L), mask (n, L) | None) -> (n,)`` scalar output per row; it must
            look up ``embedding`` exactly once per call (as every backbone does).
        embedding: the backbone's token embedding (``backbone.embedding``).
        baseline_ids: ids whose embeddings form ``x'`` (e.g. [MASK] on residues, the original
            token elsewhere); None means the all-zero embedding.
        steps: trapezoid intervals along the straight path.

    Returns:
        ``(attributions (L,), delta)`` where ``delta = sum(attr) - (f(x) - f(x'))``.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"integrated_gradients takes one sequence (1, L), got {tuple(input_ids.shape)}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    with torch.no_grad():
        x = embedding(input_ids)[0].detach()  # (L, d)
        x0 = torch.zeros_like(x) if baseline_ids is None else embedding(baseline_ids.reshape(1, -1))[0].detach()
    alphas = torch.linspace(0.0, 1.0, steps + 1, device=x.device, dtype=x.dtype)
    w = torch.full_like(alphas, 1.0 / steps)
    w[0] = w[-1] = 0.5 / steps  # trapezoid weights
    total_grad = torch.zeros_like(x)
    f_ends = {}
    for s in range(0, len(alphas), batch_size):
        a = alphas[s : s + batch_size]
        path = (x0 + a[:, None, None] * (x - x0)).requires_grad_(True)  # (n, L, d)
        hook = embedding.register_forward_hook(lambda mod, inp, out, p=path: p)
        try:
            ids = input_ids.expand(len(a), -1)
            mask = None if attention_mask is None else attention_mask.expand(len(a), -1)
            out = forward_fn(ids, mask)  # (n,)
        finally:
            hook.remove()
        if out.shape != (len(a),):
            raise ValueError(f"forward_fn must return one scalar per row, got shape {tuple(out.shape)}")
        (g,) = torch.autograd.grad(out.sum(), path)
        total_grad += (g * w[s : s + batch_size, None, None]).sum(0)
        for k in (0, len(alphas) - 1):
            if s <= k < s + len(a):
                f_ends[k] = out[k - s].detach()
    attr = ((x - x0) * total_grad).sum(-1)  # (L,)
    delta = attr.sum() - (f_ends[len(alphas) - 1] - f_ends[0])
    return attr.detach(), delta.detach()
