"""Denoisers ``p(x1 | x_t, t, class)``: simplex points in, per-position logits out.

Every denoiser maps ``x (B, L, K)`` on the simplex, a time feature ``tau (B,)`` (the path's
:meth:`time_feature`, e.g. ``log(1 + t)`` for the Dirichlet path) and optional class ids
``cls (B,)`` to logits ``(B, L, K)``. The input features are ``[x, log x]`` (``2K`` channels): the
Bayes posterior of the Dirichlet path is a softmax of ``t log x`` plus data terms, so the log
coordinates make it easy to represent; the linear baseline gets the same features.

Class conditioning for classifier-free guidance: ``num_classes`` real classes plus one null class
(id ``num_classes``) that training substitutes with probability ``cfg_dropout``.

* :class:`DilatedCNN` -- the paper's denoiser: a width-9 convolution stack with dilations
  1, 1, 4, 16, 64, time and class added before every block, residual connections.
* :class:`MLPDenoiser` -- a per-position MLP with a position embedding (positions do not interact;
  meant for the toy task, whose positions are independent).
* :class:`BackboneDenoiser` -- any bidirectional backbone of :mod:`bioseq.models` that implements
  ``forward_hidden``: a linear input projection replaces its token embedding.
* :class:`NoisyClassifier` -- the CNN trunk pooled to class logits, trained on ``x_t`` for
  classifier guidance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_LOG_FLOOR = 1e-6


def simplex_features(x: torch.Tensor) -> torch.Tensor:
    """``(B, L, K) -> (B, L, 2K)``: the coordinates and their (floored) logarithms."""
    return torch.cat([x, torch.log(x.clamp_min(_LOG_FLOOR))], dim=-1)


def expanded_simplex(x: torch.Tensor, tau: torch.Tensor, pseudocount: float = 2.0) -> torch.Tensor:
    """``(B, L, K) -> (B, L, 2K)``: the paper's "expanded simplex" input ``[x (1 - w), x w]`` with
    ``w = c / (alpha + c - 1)``, ``alpha = exp(tau)`` (the Dirichlet path's ``1 + t`` when ``tau``
    is its time feature ``log(1 + t)``) and pseudocount ``c``: the same coordinates, weighted
    towards the second half while the point is still noisy."""
    w = (pseudocount / (torch.exp(tau.float()) + pseudocount - 1.0))[:, None, None]  # (B, 1, 1)
    return torch.cat([x * (1.0 - w), x * w], dim=-1)


_FEATURES = ("log", "expanded")


class TimeEmbedding(nn.Module):
    """Random Fourier features of the scalar time feature followed by an MLP (``(B,) -> (B, d)``).
    The frequencies are a fixed buffer, saved with the weights."""

    def __init__(self, d: int, scale: float = 2.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("freqs", torch.randn(d // 2, generator=g) * scale)
        self.mlp = nn.Sequential(nn.Linear(2 * (d // 2), d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        ang = 2 * math.pi * tau.float()[:, None] * self.freqs[None]  # (B, d/2)
        return self.mlp(torch.cat([ang.sin(), ang.cos()], dim=-1))  # (B, d)


class _Conditioning(nn.Module):
    """Time embedding plus an optional class embedding (null class = ``num_classes``)."""

    def __init__(self, d: int, num_classes: int) -> None:
        super().__init__()
        self.time = TimeEmbedding(d)
        self.num_classes = num_classes
        self.cls = nn.Embedding(num_classes + 1, d) if num_classes else None

    def forward(self, tau: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        c = self.time(tau)  # (B, d)
        if self.cls is not None:
            if cls is None:  # unconditional request on a conditional model: the null class
                cls = torch.full((tau.shape[0],), self.num_classes, dtype=torch.long, device=tau.device)
            c = c + self.cls(cls)
        return c


class Denoiser(nn.Module):
    """Base: keeps the constructor arguments as ``self.config`` for :func:`build_denoiser`."""

    arch = ""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = {"arch": self.arch, **config}
        self.K = config["K"]
        self.num_classes = config.get("num_classes", 0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _conv_same(conv: nn.Conv1d, h: torch.Tensor) -> torch.Tensor:
    """``conv(h)`` for a "same"-padded odd-width convolution, skipping the taps that can only ever
    read padding: with dilation ``dl`` a tap at offset ``j`` reaches data only if ``|j| dl < L``.
    On short sequences (the toy's ``L = 4``, the dilation-64 layer on 60-nt windows) most taps are
    such, and PyTorch would still multiply them with the zeros. Same result, up to rounding."""
    L, (width,), (dl,) = h.shape[-1], conv.kernel_size, conv.dilation
    half = width // 2
    reach = min(half, (L - 1) // dl)  # taps -reach..reach can touch data
    if reach == half:
        return conv(h)
    if reach == 0:  # a pointwise layer: a matrix product is cheaper than a 1-tap convolution
        return F.linear(h.transpose(1, 2), conv.weight[:, :, half], conv.bias).transpose(1, 2)
    w = conv.weight[:, :, half - reach : half + reach + 1]
    return F.conv1d(h, w, conv.bias, dilation=dl, padding=reach * dl)


class _CNNTrunk(nn.Module):
    DILATIONS = (1, 1, 4, 16, 64)

    def __init__(self, K: int, d: int, n_stacks: int, dropout: float, seq_len: int = 0, features: str = "log") -> None:
        super().__init__()
        if features not in _FEATURES:
            raise ValueError(f"features must be one of {_FEATURES}, got {features!r}")
        self.features = features
        self.inp = nn.Conv1d(2 * K, d, kernel_size=9, padding=4)
        # aligned windows (e.g. splice junctions at a fixed offset) carry signal in absolute
        # position, which zero-padded convolutions only see near the edges
        self.pos = nn.Parameter(torch.zeros(d, seq_len)) if seq_len else None
        dil = [dl for _ in range(n_stacks) for dl in self.DILATIONS]
        self.convs = nn.ModuleList(nn.Conv1d(d, d, kernel_size=9, dilation=dl, padding=4 * dl) for dl in dil)
        self.cond = nn.ModuleList(nn.Linear(d, d) for _ in dil)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in dil)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, c: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        feats = simplex_features(x) if self.features == "log" else expanded_simplex(x, tau)  # (B, L, 2K)
        h = _conv_same(self.inp, feats.transpose(1, 2))  # (B, d, L)
        if self.pos is not None:
            h = h + self.pos[:, : x.shape[1]]
        h = F.relu(h)
        for conv, cond, norm in zip(self.convs, self.cond, self.norms, strict=True):
            z = self.drop(h) + cond(c)[:, :, None]  # conditioning enters every block
            z = norm(z.transpose(1, 2)).transpose(1, 2)
            h = h + F.relu(_conv_same(conv, z))
        return h  # (B, d, L)


class DilatedCNN(Denoiser):
    """The paper's dilated CNN denoiser (own implementation).

    Args:
        K: alphabet size. d: channels. n_stacks: repeats of the 5-layer dilation block.
        num_classes: 0 for unconditional models. dropout: on the block inputs.
        seq_len: if > 0, a learned position embedding for sequences up to this length (for
            aligned windows such as splice junctions); 0 keeps the network translation-equivariant.
        features: ``"log"`` (``[x, log x]``, the default) or ``"expanded"`` (the paper's expanded
            simplex, :func:`expanded_simplex`).
    """

    arch = "cnn"

    def __init__(
        self, K: int = 4, d: int = 128, n_stacks: int = 1, num_classes: int = 0, dropout: float = 0.0,
        seq_len: int = 0, features: str = "log",
    ) -> None:
        super().__init__(K=K, d=d, n_stacks=n_stacks, num_classes=num_classes, dropout=dropout, seq_len=seq_len, features=features)
        self.cond = _Conditioning(d, num_classes)
        self.trunk = _CNNTrunk(K, d, n_stacks, dropout, seq_len, features)
        self.out = nn.Sequential(nn.Conv1d(d, d, 1), nn.ReLU(), nn.Conv1d(d, K, 1))

    def forward(self, x: torch.Tensor, tau: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x.float(), self.cond(tau, cls), tau)  # (B, d, L)
        return self.out(h).transpose(1, 2)  # (B, L, K)


class MLPDenoiser(Denoiser):
    """Per-position MLP with a learned position embedding; for tasks with independent positions."""

    arch = "mlp"

    def __init__(self, K: int = 4, d: int = 128, seq_len: int = 4, n_layer: int = 3, num_classes: int = 0) -> None:
        super().__init__(K=K, d=d, seq_len=seq_len, n_layer=n_layer, num_classes=num_classes)
        self.cond = _Conditioning(d, num_classes)
        self.pos = nn.Parameter(torch.zeros(seq_len, d))
        self.inp = nn.Linear(2 * K, d)
        # FiLM: the conditioning also scales the input projection, so products such as t * log x
        # (the Dirichlet path's log-likelihood of each vertex) are one layer away
        self.film = nn.Linear(d, d)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.layers = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)) for _ in range(n_layer))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, K))

    def forward(self, x: torch.Tensor, tau: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        c = self.cond(tau, cls)[:, None]  # (B, 1, d)
        h = self.inp(simplex_features(x.float())) * (1 + self.film(c)) + self.pos[: x.shape[1]] + c  # (B, L, d)
        for layer in self.layers:
            h = h + layer(h)
        return self.out(h)  # (B, L, K)


class BackboneDenoiser(Denoiser):
    """Any bidirectional :mod:`bioseq.models` backbone as a denoiser.

    The backbone's token embedding is bypassed: ``Linear(2K, d)`` projects the simplex features,
    time and class embeddings are added, and :meth:`Backbone.forward_hidden` runs the blocks.

    Args:
        backbone: a backbone config dict (``BackboneConfig.to_dict()``) or size name; it must be
            bidirectional and implement ``forward_hidden``.
    """

    arch = "backbone"

    def __init__(self, K: int = 4, backbone: dict | str = "transformer-tiny", num_classes: int = 0) -> None:
        from bioseq.models import build_backbone, load_config

        cfg = load_config(backbone) if isinstance(backbone, str) else load_config(dict(backbone))
        if not cfg.bidirectional:
            cfg = cfg.replace(bidirectional=True)  # a denoiser sees the whole sequence
        super().__init__(K=K, backbone=cfg.to_dict(), num_classes=num_classes)
        self.backbone = build_backbone(cfg)
        if not self.backbone.supports_forward_hidden():
            raise ValueError(f"backbone {cfg.arch!r} has no forward_hidden; it cannot run on simplex inputs")
        d = cfg.d_model
        self.cond = _Conditioning(d, num_classes)
        self.inp = nn.Linear(2 * K, d)
        self.out = nn.Linear(d, K)

    def forward(self, x: torch.Tensor, tau: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(simplex_features(x.float())) + self.cond(tau, cls)[:, None]  # (B, L, d)
        return self.out(self.backbone.forward_hidden(h))  # (B, L, K)


class NoisyClassifier(Denoiser):
    """Class logits ``(B, num_labels)`` from a noisy point ``x_t`` and its time, for guidance."""

    arch = "noisy_classifier"

    def __init__(self, K: int = 4, d: int = 64, n_stacks: int = 1, num_labels: int = 2, dropout: float = 0.1) -> None:
        super().__init__(K=K, d=d, n_stacks=n_stacks, num_labels=num_labels, dropout=dropout)
        self.cond = _Conditioning(d, 0)
        self.trunk = _CNNTrunk(K, d, n_stacks, dropout)
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, num_labels))

    def forward(self, x: torch.Tensor, tau: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        h = self.trunk(x.float(), self.cond(tau, None), tau)  # (B, d, L)
        return self.head(h.mean(-1))  # (B, num_labels)


_DENOISERS = {c.arch: c for c in (DilatedCNN, MLPDenoiser, BackboneDenoiser, NoisyClassifier)}


def build_denoiser(config: dict) -> Denoiser:
    """A denoiser from its ``config`` dict (``{"arch": ..., **constructor arguments}``)."""
    config = dict(config)
    arch = config.pop("arch", None)
    if arch not in _DENOISERS:
        raise ValueError(f"unknown denoiser arch {arch!r}; known: {sorted(_DENOISERS)}")
    return _DENOISERS[arch](**config)
