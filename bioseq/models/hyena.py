"""HyenaDNA: pre-norm residual blocks whose token mixer is the Hyena operator.

The order-N Hyena operator (Poli et al. 2023; HyenaDNA, Nguyen et al. 2023) replaces attention by
gated long convolutions::

    x_0, x_1, ..., x_{N-1}, v = split(short_conv(in_proj(u)))      # N + 1 streams of width d
    for i in N-1 .. 1:  v = (x_i * v) conv h_i + D_i * (x_i * v)   # long causal convolution
    y = out_proj(x_0 * v)

Each long filter ``h_i`` (one per channel, as long as the sequence) is *implicit*: an MLP with sine
activations maps positional features of the lag ``t`` to ``d`` filter values, which an exponential
decay window then modulates, so the parameter count does not depend on the context length. The
convolution runs through the FFT, zero-padded to ``2L`` so it is linear (causal), not circular:
``O(L log L)`` time and ``O(L)`` memory, with no ``L x L`` matrix anywhere. Filters are generated
for the actual ``L`` of each batch; ``l_max`` only sets the time scale of the positional features
(a lag ``t`` always maps to the same filter value, whatever ``L`` is), so a model trained on 1k
tokens runs unchanged on 1M.

Padding: streams are zeroed at padded positions before every convolution, so padded tokens (left
or right) never change the outputs at real positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from bioseq.models.base import Backbone, gpt2_init_
from bioseq.models.config import BackboneConfig, ConfigError, register_backbone, register_module, register_size


@register_backbone("hyena")
@dataclass
class HyenaConfig(BackboneConfig):
    """HyenaDNA configuration.

    Attributes:
        order: Hyena recurrence depth N (N - 1 long convolutions, N + 1 projected streams).
        l_max: time scale of the filters' positional features (HyenaDNA's maximum sequence length);
            longer inputs still work, their filters simply extend past it.
        filter_order: width of the implicit filter MLP.
        filter_emb_dim: positional features fed to the filter MLP (odd: t plus sin/cos bands).
        filter_inner_mlps: hidden sine layers of the filter MLP.
        filter_sine_freq: initial frequency of the (trainable) sine activations.
        short_filter_order: kernel size of the depthwise short convolution.
        modulation_fast_decay, modulation_slow_decay, modulation_target, modulation_shift: the
            exponential window ``exp(-alpha * t / l_max) + shift``; channel rates ``alpha`` are spread
            so the window falls to ``target`` between ``fast`` and ``slow`` fractions of ``l_max``.
        mlp_ratio: width of the block MLP relative to d_model.
        embed_dropout, resid_dropout: dropout after the embedding and on residual branches.
        checkpoint_blocks: recompute each block's activations in the backward pass instead of
            storing them (activation checkpointing), for training at very long contexts.
    """

    order: int = 2
    l_max: int = 1024
    filter_order: int = 64
    filter_emb_dim: int = 5
    filter_inner_mlps: int = 2
    filter_sine_freq: float = 10.0
    short_filter_order: int = 3
    modulation_fast_decay: float = 0.3
    modulation_slow_decay: float = 1.5
    modulation_target: float = 1e-2
    modulation_shift: float = 0.0
    mlp_ratio: float = 4.0
    embed_dropout: float = 0.1
    resid_dropout: float = 0.0
    checkpoint_blocks: bool = False

    def validate(self) -> None:
        super().validate()
        if self.bidirectional:
            raise ConfigError("hyena: HyenaDNA is causal; bidirectional=True is not supported")
        if self.order < 2:
            raise ConfigError(f"hyena: order must be >= 2, got {self.order}")
        if self.filter_emb_dim < 3 or self.filter_emb_dim % 2 == 0:
            raise ConfigError(f"hyena: filter_emb_dim must be odd and >= 3 (t, cos, sin), got {self.filter_emb_dim}")
        if self.l_max < 1 or self.filter_order < 1 or self.short_filter_order < 1:
            raise ConfigError("hyena: l_max, filter_order and short_filter_order must be positive")
        if not 0 < self.modulation_fast_decay <= self.modulation_slow_decay:
            raise ConfigError("hyena: need 0 < modulation_fast_decay <= modulation_slow_decay")
        if not 0 < self.modulation_target < 1:
            raise ConfigError("hyena: modulation_target must lie in (0, 1)")
        for name in ("embed_dropout", "resid_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"hyena: {name} must lie in [0, 1)")


def fft_causal_conv(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y[..., t] = sum_{s <= t} k[..., s] * v[..., t - s]`` via the FFT.

    Args:
        v: ``(B, D, L)`` signal.
        k: ``(D, L)`` one filter per channel.

    Returns:
        ``(B, D, L)``; padding both to ``2L`` makes the FFT's circular convolution a linear one
        whose first ``L`` outputs are the causal ones.
    """
    L = v.shape[-1]
    n = 2 * L
    dtype = v.dtype
    # The FFT runs in fp32 even under autocast: bf16/fp16 FFTs lose too much over long filters.
    v_f = torch.fft.rfft(v.float(), n=n)  # (B, D, L + 1) complex
    k_f = torch.fft.rfft(k.float(), n=n)  # (D, L + 1)
    return torch.fft.irfft(v_f * k_f, n=n)[..., :L].to(dtype)


class Sine(nn.Module):
    """``sin(w * x)`` with one trainable frequency per channel (the implicit filter's activation)."""

    def __init__(self, dim: int, freq: float) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.full((dim,), float(freq)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """Long filters from positional features: ``z(t) -> sine MLP -> * exponential window``.

    Produces ``channels`` filters of any length ``L`` on the fly (nothing is stored per position).
    """

    def __init__(self, cfg: HyenaConfig, channels: int) -> None:
        super().__init__()
        self.l_max, self.emb_dim, self.shift = cfg.l_max, cfg.filter_emb_dim, cfg.modulation_shift
        w = cfg.filter_order
        layers: list[nn.Module] = [nn.Linear(cfg.filter_emb_dim, w), Sine(w, cfg.filter_sine_freq)]
        for _ in range(cfg.filter_inner_mlps):
            layers += [nn.Linear(w, w), Sine(w, cfg.filter_sine_freq)]
        layers.append(nn.Linear(w, channels, bias=False))
        self.mlp = nn.Sequential(*layers)
        # Decay rates alpha such that exp(-alpha * pct) = target for pct from slow to fast.
        log_target = math.log(cfg.modulation_target)
        self.register_buffer(
            "decay",
            torch.linspace(-log_target / cfg.modulation_slow_decay, -log_target / cfg.modulation_fast_decay, channels),
            persistent=False,
        )

    def positional_features(self, L: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (L, emb_dim)``: normalised time and ``(emb_dim - 1) / 2`` complex-exponential bands;
        ``t (L, 1)``: lag in units of ``l_max``."""
        t = torch.arange(L, device=device, dtype=torch.float32)[:, None] / self.l_max  # (L, 1)
        bands = (self.emb_dim - 1) // 2
        f = torch.linspace(1e-4, bands - 1, bands, device=device)[None, :]  # (1, bands)
        phase = 2 * math.pi * f * t  # (L, bands)
        return torch.cat([t, torch.cos(phase), -torch.sin(phase)], dim=-1), t

    def forward(self, L: int, device: torch.device) -> torch.Tensor:
        z, t = self.positional_features(L, device)
        h = self.mlp(z)  # (L, channels)
        h = h * (torch.exp(-t * self.decay) + self.shift)  # exponential decay window
        return h.transpose(0, 1)  # (channels, L)


class ShortConv(nn.Module):
    """Causal depthwise convolution with a short kernel, ``(B, C, L) -> (B, C, L)``.

    Written as a sum of ``K`` shifted products rather than ``nn.Conv1d(groups=C)``: on CPU the
    grouped convolution's backward pass is two orders of magnitude slower at long ``L``.
    Weights use ``nn.Conv1d``'s layout and default init.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)  # for its default init only
        self.weight = nn.Parameter(conv.weight.detach().squeeze(1).clone())  # (C, K)
        self.bias = nn.Parameter(conv.bias.detach().clone())  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, L = self.weight.shape[1], x.shape[-1]
        xp = F.pad(x, (K - 1, 0))  # (B, C, L + K - 1): zeros before the first token
        y = self.bias[:, None] + self.weight[:, K - 1 : K] * x  # tap on the current token
        for j in range(K - 1):
            y = y + self.weight[:, j : j + 1] * xp[..., j : j + L]  # tap on token t - (K - 1 - j)
        return y


class HyenaOperator(nn.Module):
    """The order-N Hyena mixer ``(B, L, d) -> (B, L, d)`` (causal)."""

    def __init__(self, cfg: HyenaConfig) -> None:
        super().__init__()
        d, self.order = cfg.d_model, cfg.order
        inner = d * (cfg.order + 1)
        self.in_proj = nn.Linear(d, inner)
        self.short_conv = ShortConv(inner, cfg.short_filter_order)
        self.filter = ImplicitFilter(cfg, d * (cfg.order - 1))
        self.D = nn.Parameter(torch.randn(d * (cfg.order - 1)))  # per-channel skip of the long conv
        self.out_proj = nn.Linear(d, d)

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, d = u.shape
        z = self.in_proj(u)  # (B, L, (N+1) d)
        if mask is not None:
            z = z * mask[..., None]
        z = self.short_conv(z.transpose(1, 2))  # (B, (N+1) d, L)
        if mask is not None:
            z = z * mask[:, None, :]
        *x, v = z.split(d, dim=1)  # N gates x_0..x_{N-1} and the value v, each (B, d, L)
        k = self.filter(L, u.device).view(self.order - 1, d, L)  # (N-1, d, L)
        D = self.D.view(self.order - 1, d, 1)
        for i, x_i in enumerate(reversed(x[1:])):
            v = v * x_i
            v = fft_causal_conv(v, k[i]) + D[i] * v  # (B, d, L)
        y = (v * x[0]).transpose(1, 2)  # (B, L, d)
        return self.out_proj(y)


class Block(nn.Module):
    """Pre-norm residual block: ``x + Hyena(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: HyenaConfig) -> None:
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.mixer = HyenaOperator(cfg)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(cfg.d_model, hidden)
        self.mlp.act = nn.GELU(approximate="tanh")
        self.mlp.fc2 = nn.Linear(hidden, cfg.d_model)
        self.drop = nn.Dropout(cfg.resid_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.norm1(x), mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class HyenaBackbone(Backbone):
    """HyenaDNA: embedding, ``n_layer`` Hyena blocks, final LayerNorm. Causal only."""

    def __init__(self, config: HyenaConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model)
        self.drop = nn.Dropout(config.embed_dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(config.d_model)
        gpt2_init_(self, config.n_layer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_hidden(self.drop(self.embedding(input_ids)), attention_mask)  # (B, L, d)

    def forward_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.to(hidden.dtype)  # (B, L), 1 at real tokens
        x = hidden
        for blk in self.blocks:
            if self.config.checkpoint_blocks and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, mask, use_reentrant=False)
            else:
                x = blk(x, mask)
        return self.norm_f(x)


register_module("hyena", HyenaBackbone)
# HyenaDNA's released sizes: tiny (1k-16k context), small (32k), medium (160k-450k), large (1M).
register_size("hyena-tiny", "hyena", d_model=128, n_layer=2, l_max=1024)
register_size("hyena-small", "hyena", d_model=256, n_layer=4, l_max=32768)
register_size("hyena-medium", "hyena", d_model=256, n_layer=8, l_max=160000)
register_size("hyena-large", "hyena", d_model=256, n_layer=8, l_max=1_000_000)
