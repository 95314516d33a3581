"""Transformer baseline: pre-norm blocks, rotary position embeddings, SDPA attention.

``F.scaled_dot_product_attention`` dispatches to flash / memory-efficient kernels on GPU and to
the fused math kernel on CPU, so there is no separate fast path to maintain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bioseq.models.base import Backbone, gpt2_init_
from bioseq.models.config import BackboneConfig, ConfigError, register_backbone, register_module, register_size


@register_backbone("transformer")
@dataclass
class TransformerConfig(BackboneConfig):
    n_head: int = 4
    mlp_ratio: float = 4.0
    rope_base: float = 10000.0
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.d_model % self.n_head:
            raise ConfigError(f"transformer: d_model {self.d_model} not divisible by n_head {self.n_head}")
        if (self.d_model // self.n_head) % 2:
            raise ConfigError("transformer: head dim must be even for rotary embeddings")


def rope_cache(L: int, head_dim: int, base: float, device, dtype, positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    if positions is not None:  # (B, L) per-token positions -> (B, 1, L, hd/2), broadcast over heads
        ang = (positions.to(torch.float32)[..., None] * inv)[:, None]
    else:
        ang = torch.outer(torch.arange(L, device=device, dtype=torch.float32), inv)  # (L, hd/2)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def segment_positions(segment_ids: torch.Tensor) -> torch.Tensor:
    """Position of each token inside its segment: ``(B, L)`` ids -> ``(B, L)`` 0, 1, .. restarting
    wherever the id changes (packed sequences get the positions they would have alone)."""
    idx = torch.arange(segment_ids.shape[1], device=segment_ids.device).expand_as(segment_ids)
    new = torch.ones_like(segment_ids, dtype=torch.bool)
    new[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    start = torch.where(new, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (..., hd) with cos/sin broadcastable to (..., hd/2); rotate pairs (x1, x2) of the two halves
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.causal, self.p = cfg.n_head, not cfg.bidirectional, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, cos, sin, attention_mask=None):
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_head, D // self.n_head)  # (B, L, 3, H, hd)
        # rotate q and k together in the projection's own layout: one pass over contiguous memory
        # instead of two over strided (B, H, L, hd) views (the same products, so the same values)
        if cos.dim() == 2:  # (L, hd/2) -> (L, 1, 1, hd/2)
            c, s = cos[:, None, None], sin[:, None, None]
        else:  # per-token positions (B, 1, L, hd/2) -> (B, L, 1, 1, hd/2)
            c, s = cos.permute(0, 2, 1, 3)[:, :, None], sin.permute(0, 2, 1, 3)[:, :, None]
        # in the projection's dtype (bf16 under autocast): fp32 tables would promote q and k to fp32
        # and cost two full-size casts per layer
        c, s = c.to(qkv.dtype), s.to(qkv.dtype)
        q, k = apply_rope(qkv[:, :, :2], c, s).permute(2, 0, 3, 1, 4)  # 2 x (B, H, L, hd)
        v = qkv[:, :, 2].transpose(1, 2)  # (B, H, L, hd)
        mask = None
        if attention_mask is not None and attention_mask.dim() == 4:
            mask = attention_mask  # (B, 1, L, L) query x key mask, e.g. block-diagonal for packing
            if self.causal:
                mask = mask & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        elif attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, L): keys that exist
            if self.causal:
                mask = mask & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=self.causal and mask is None,
            dropout_p=self.p if self.training else 0.0,
        )  # (B, H, L, hd)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(cfg.d_model, hidden)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(hidden, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, attention_mask=None):
        x = x + self.drop(self.attn(self.norm1(x), cos, sin, attention_mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class TransformerBackbone(Backbone):
    """Pre-norm Transformer; causal unless ``config.bidirectional``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(config.d_model)
        gpt2_init_(self, config.n_layer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_hidden(self.embedding(input_ids), attention_mask, segment_ids)  # (B, L, D)

    def forward_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
                       segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``segment_ids (B, L)``: packed sequences, numbered 1.. (0 = padding). Tokens attend only
        within their segment and rotary positions restart per segment, so a packed row gives what
        separate forward passes would."""
        x, cfg = hidden, self.config  # (B, L, D)
        positions = None
        if segment_ids is not None:
            L = x.shape[1]
            same = segment_ids[:, :, None] == segment_ids[:, None, :]  # (B, L, L) block diagonal
            # padding (segment 0) attends among itself, so no query row is fully masked (NaN)
            attention_mask = (same | torch.eye(L, dtype=torch.bool, device=x.device))[:, None]
            positions = segment_positions(segment_ids)
        cos, sin = rope_cache(x.shape[1], cfg.d_model // cfg.n_head, cfg.rope_base, x.device, x.dtype, positions)
        for blk in self.blocks:
            x = blk(x, cos, sin, attention_mask)
        return self.norm_f(x)


register_module("transformer", TransformerBackbone)
register_size("transformer-tiny", "transformer", d_model=128, n_layer=2, n_head=4)
register_size("transformer-small", "transformer", d_model=256, n_layer=6, n_head=8)
register_size("transformer-base", "transformer", d_model=512, n_layer=12, n_head=8)
