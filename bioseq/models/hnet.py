"""H-Net: hierarchical sequence model with dynamic chunking (Hwang, Wang & Gu 2025).

One stage of the hierarchy, on hidden states ``x (B, L, d_s)`` with a mask of real positions::

    h        = encoder(x)                                   # (B, L, d_s)   any backbone's blocks
    p_t      = (1 - cos(W_q h_t, W_k h_{t-1})) / 2, p_0 = 1 # routing: boundary probabilities
    b_t      = p_t >= 1/2                                   # boundary (chunk start) decisions
    z        = main([h_t for t with b_t])                   # (B, M, d_{s+1}) downsampled chunks;
                                                            # the main network is the next stage
                                                            # or, innermost, any backbone's blocks
    zbar_c   = P_c z_c + (1 - P_c) zbar_{c-1}               # smoothing: EMA over chunks, P_c the
                                                            # boundary probability of chunk c
    up_t     = zbar_{chunk(t)} * STE(c_t)                   # upsampling; c_t = p_t if b_t else
                                                            # 1 - p_t, forward value exactly 1,
                                                            # gradient straight through to p
    y        = decoder(residual_proj(h) + up)               # (B, L, d_s)

Every step is causal: ``p_t`` looks at ``t`` and ``t - 1`` only, chunk ``c`` starts at a boundary
``<= t`` for every position ``t`` it is copied back to, and the EMA and the inner networks are
causal (for causal configurations), so position ``t`` never sees a later token.

Chunk counts differ between sequences of a batch: chunks are packed to the left and
right-padded, with a chunk mask passed to the main network (which must ignore padded positions).

The ratio loss keeps the fraction of boundaries near ``1 / N`` (``N`` the target compression of
the stage): ``N / (N - 1) * ((N - 1) F G + (1 - F)(1 - G))`` with ``F`` the fraction of tokens
that are boundaries and ``G`` the mean boundary probability; its weighted sum over stages is
``aux_loss``, which the heads add to the task loss.

The encoder, main and decoder networks are any registered backbone that implements
``forward_hidden`` (see :mod:`bioseq.models.base`), named per stage in the config, e.g.
``{"arch": "hyena", "n_layer": 2}``; their token embeddings are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bioseq.models.base import Backbone
from bioseq.models.config import (
    BackboneConfig,
    ConfigError,
    load_config,
    module_class,
    register_backbone,
    register_module,
    register_size,
)

#: keys of an inner network spec that the H-Net config sets itself
_INHERITED = ("d_model", "vocab_size", "pad_token_id", "complement_map", "bidirectional")


@register_backbone("hnet")
@dataclass
class HNetConfig(BackboneConfig):
    """H-Net configuration. ``d_model`` is the outer (byte/nucleotide-level) width.

    Attributes:
        stage_d_model: width of each stage, outermost first (``[d_model]`` + one per chunking
            stage); non-decreasing, inner stages pad their input with learned dimensions.
        encoders: one inner network spec per chunking stage, outermost first; a spec is a backbone
            config dict without the keys H-Net sets (``d_model``, vocab, ``bidirectional``).
        main: the innermost network spec.
        decoders: one spec per chunking stage, outermost first.
        target_ratio: target compression ``N`` of each chunking stage (tokens per chunk, > 1).
        ratio_loss_weight: coefficient of the summed ratio losses in ``aux_loss``.
        n_layer: derived: total number of blocks across all inner networks.
    """

    stage_d_model: list[int] = field(default_factory=lambda: [128, 192])
    encoders: list[dict[str, Any]] = field(default_factory=lambda: [{"arch": "hyena", "n_layer": 1}])
    main: dict[str, Any] = field(default_factory=lambda: {"arch": "transformer", "n_layer": 2})
    decoders: list[dict[str, Any]] = field(default_factory=lambda: [{"arch": "hyena", "n_layer": 1}])
    target_ratio: list[float] = field(default_factory=lambda: [3.0])
    ratio_loss_weight: float = 0.03
    boundary_eps: float = 1e-4

    @property
    def n_stages(self) -> int:
        return len(self.encoders)

    def inner_config(self, spec: dict[str, Any], stage: int) -> BackboneConfig:
        """The backbone config of an inner network at ``stage`` (0 = outermost)."""
        return load_config({
            **spec,
            "d_model": self.stage_d_model[stage],
            "vocab_size": 8,  # inner networks read hidden states; their embedding is dropped
            "pad_token_id": 0,
            "complement_map": None,
            "bidirectional": self.bidirectional,
        })

    def inner_configs(self) -> list[tuple[str, BackboneConfig]]:
        out = []
        for s in range(self.n_stages):
            out.append((f"encoders[{s}]", self.inner_config(self.encoders[s], s)))
            out.append((f"decoders[{s}]", self.inner_config(self.decoders[s], s)))
        out.append(("main", self.inner_config(self.main, self.n_stages)))
        return out

    def validate(self) -> None:
        S = len(self.encoders)
        if S < 1 or len(self.decoders) != S or len(self.target_ratio) != S or len(self.stage_d_model) != S + 1:
            raise ConfigError(
                f"hnet: {S} encoder(s) need as many decoders and target_ratio entries and {S + 1} "
                f"stage_d_model widths; got {len(self.decoders)}, {len(self.target_ratio)}, {len(self.stage_d_model)}"
            )
        if self.stage_d_model[0] != self.d_model:
            raise ConfigError(f"hnet: stage_d_model[0] ({self.stage_d_model[0]}) must equal d_model ({self.d_model})")
        if any(b < a for a, b in zip(self.stage_d_model, self.stage_d_model[1:])):
            raise ConfigError(f"hnet: stage_d_model must be non-decreasing, got {self.stage_d_model}")
        if any(n <= 1 for n in self.target_ratio):
            raise ConfigError(f"hnet: every target_ratio must be > 1, got {self.target_ratio}")
        if self.ratio_loss_weight < 0 or not 0 < self.boundary_eps < 0.5:
            raise ConfigError("hnet: need ratio_loss_weight >= 0 and 0 < boundary_eps < 0.5")
        for name, spec in [("main", self.main)] + [(f"encoders[{i}]", e) for i, e in enumerate(self.encoders)] + [
            (f"decoders[{i}]", d) for i, d in enumerate(self.decoders)
        ]:
            if not isinstance(spec, dict) or "arch" not in spec:
                raise ConfigError(f"hnet: {name} must be a backbone config dict with an 'arch' key, got {spec!r}")
            clash = sorted(set(spec) & set(_INHERITED))
            if clash:
                raise ConfigError(f"hnet: {name} must not set {clash}; H-Net sets them (widths via stage_d_model)")
            if spec["arch"] == "hnet":
                raise ConfigError(f"hnet: {name} cannot be an hnet; add stages with more encoders/decoders")
        blocks = 0
        try:
            inner = self.inner_configs()
        except ConfigError as e:
            raise ConfigError(f"hnet: invalid inner network: {e}") from None
        for name, cfg in inner:
            if not module_class(cfg.arch).supports_forward_hidden():
                raise ConfigError(f"hnet: {name} backbone {cfg.arch!r} does not implement forward_hidden")
            blocks += cfg.n_layer
        self.n_layer = blocks
        super().validate()


def build_inner(cfg: BackboneConfig) -> Backbone:
    """An inner network: a registered backbone without its token embedding."""
    net = module_class(cfg.arch)(cfg)
    net.embedding = None  # runs on hidden states through forward_hidden only
    return net


def ste_ones(c: torch.Tensor) -> torch.Tensor:
    """Straight-through estimator: exactly 1 in the forward pass, gradient 1 w.r.t. ``c``."""
    return 1.0 + (c - c.detach())


def segsum(log_a: torch.Tensor) -> torch.Tensor:
    """``(..., T) -> (..., T, T)``: entry ``[i, j] = sum_{j < k <= i} log_a[k]`` for ``j <= i``,
    ``-inf`` above the diagonal (so ``exp`` gives the decay from ``j`` to ``i``). Built with a masked
    cumulative sum rather than a difference of cumsums, which would cancel catastrophically."""
    T = log_a.shape[-1]
    x = log_a[..., None].expand(*log_a.shape, T)  # x[..., i, j] = log_a[i]
    strict = torch.ones(T, T, dtype=torch.bool, device=log_a.device).tril(-1)
    x = x.masked_fill(~strict, 0.0).cumsum(dim=-2)
    return x.masked_fill(~strict.logical_or(torch.eye(T, dtype=torch.bool, device=log_a.device)), float("-inf"))


def linear_scan(u: torch.Tensor, log_a: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Solve ``y_c = exp(log_a_c) * y_{c-1} + u_c`` (``y_{-1} = 0``) for all ``c`` at once.

    Blocks of ``block`` steps are solved with a ``(block x block)`` decay matrix; the state
    carried between blocks obeys the same recurrence one level up and is solved recursively, so
    the cost is ``O(M * block * D)`` with no Python loop over time.

    Args:
        u: ``(B, M, D)`` inputs.
        log_a: ``(B, M)`` log decay factors (``<= 0``).
    """
    B, M, D = u.shape
    if M <= block:
        return torch.exp(segsum(log_a)) @ u  # (B, M, M) @ (B, M, D)
    nb = -(-M // block)
    pad = nb * block - M
    ub = F.pad(u, (0, 0, 0, pad)).view(B, nb, block, D)
    lb = F.pad(log_a, (0, pad)).view(B, nb, block)
    local = torch.exp(segsum(lb)) @ ub  # (B, nb, T, D): each block scanned from a zero state
    decay_in = lb.cumsum(-1)  # (B, nb, T): decay from the previous block's end to each position
    carry = linear_scan(local[:, :, -1], decay_in[:, :, -1], block)  # (B, nb, D): state at block ends
    carry = F.pad(carry, (0, 0, 1, 0))[:, :-1]  # state entering each block
    y = local + torch.exp(decay_in)[..., None] * carry[:, :, None]
    return y.reshape(B, nb * block, D)[:, :M]


@dataclass
class Routing:
    """Routing decisions of one stage: ``p`` probabilities and ``b`` boundaries, both ``(B, L)``."""

    p: torch.Tensor
    b: torch.Tensor


class RoutingModule(nn.Module):
    """Boundary probabilities from the cosine similarity of adjacent projected states."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        with torch.no_grad():  # identity init: boundaries start where adjacent states differ
            self.q_proj.weight.copy_(torch.eye(d))
            self.k_proj.weight.copy_(torch.eye(d))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> Routing:
        q = F.normalize(self.q_proj(h[:, 1:]), dim=-1)  # q_t, t >= 1
        k = F.normalize(self.k_proj(h[:, :-1]), dim=-1)  # k_{t-1}
        p = ((1 - (q * k).sum(-1)) / 2).clamp(0.0, 1.0)  # (B, L - 1)
        p = F.pad(p, (1, 0), value=1.0)  # (B, L): p_0 = 1
        # The first real token of each row starts a chunk (left padding shifts it from t = 0).
        first = mask & ~F.pad(mask[:, :-1], (1, 0), value=False)
        p = torch.where(first, torch.ones_like(p), p)
        return Routing(p=p, b=(p >= 0.5) & mask)


def downsample(h: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather boundary positions into left-packed, right-padded chunks.

    Returns:
        ``chunks (B, M, d)``, ``chunk_mask (B, M)`` and ``pos (B, M)`` the position of each chunk
        (0 for padding); ``M`` is the largest chunk count in the batch.
    """
    B, L, d = h.shape
    counts = b.sum(1)  # (B,)
    M = max(int(counts.max()), 1)
    chunk_idx = b.long().cumsum(1) - 1  # (B, L): chunk of each position
    slot = torch.where(b, chunk_idx, torch.full_like(chunk_idx, M))  # non-boundaries go to a dump slot
    pos = torch.zeros(B, M + 1, dtype=torch.long, device=h.device)
    pos.scatter_(1, slot, torch.arange(L, device=h.device).expand(B, L))
    pos = pos[:, :M]
    chunk_mask = torch.arange(M, device=h.device)[None] < counts[:, None]
    pos = pos.masked_fill(~chunk_mask, 0)
    chunks = h.gather(1, pos[..., None].expand(B, M, d))
    return chunks, chunk_mask, pos


class Stage(nn.Module):
    """One level of the hierarchy on ``(B, L, d_s)``; the innermost level is the main network."""

    def __init__(self, cfg: HNetConfig, s: int) -> None:
        super().__init__()
        self.s, self.eps = s, cfg.boundary_eps
        self.d, self.innermost = cfg.stage_d_model[s], s == cfg.n_stages
        self.pad_dims = None
        if s > 0 and self.d > cfg.stage_d_model[s - 1]:
            self.pad_dims = nn.Parameter(torch.zeros(self.d - cfg.stage_d_model[s - 1]))
        if self.innermost:
            self.main = build_inner(cfg.inner_config(cfg.main, s))
            return
        self.target = cfg.target_ratio[s]
        self.encoder = build_inner(cfg.inner_config(cfg.encoders[s], s))
        self.router = RoutingModule(self.d)
        self.main = Stage(cfg, s + 1)
        self.decoder = build_inner(cfg.inner_config(cfg.decoders[s], s))
        # Zero init: at the start the decoder sees the (upsampled) main network's output only,
        # so the main network gets the whole gradient signal.
        self.residual_proj = nn.Linear(self.d, self.d)
        nn.init.zeros_(self.residual_proj.weight)
        nn.init.zeros_(self.residual_proj.bias)

    def ratio_loss(self, r: Routing, mask: torch.Tensor) -> torch.Tensor:
        n = mask.sum().clamp_min(1)
        f = (r.b & mask).sum() / n  # fraction of boundaries (no gradient)
        g = (r.p * mask).sum() / n  # mean boundary probability (differentiable)
        N = self.target
        return N / (N - 1) * ((N - 1) * f * g + (1 - f) * (1 - g))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, out: dict[str, list]) -> torch.Tensor:
        """``x (B, L, d_in)`` -> ``(B, L, d_in)``; appends per-stage stats and losses to ``out``."""
        d_in = x.shape[-1]
        if self.pad_dims is not None:
            x = torch.cat([x, self.pad_dims.expand(*x.shape[:-1], -1)], dim=-1)  # (B, L, d)
        if self.innermost:
            return self.main.forward_hidden(x, mask)[..., :d_in]

        h = self.encoder.forward_hidden(x, mask)  # (B, L, d)
        r = self.router(h, mask)
        chunks, chunk_mask, pos = downsample(h, r.b)  # (B, M, d), (B, M), (B, M)
        z = self.main(chunks, chunk_mask, out)  # (B, M, d)
        z = z.masked_fill(~chunk_mask[..., None], 0.0)

        # Smoothing: EMA over chunks, weighted by each chunk's boundary probability.
        P = r.p.gather(1, pos).clamp(self.eps, 1 - self.eps)  # (B, M); padded chunks come last: harmless
        zbar = linear_scan(P[..., None] * z, torch.log1p(-P))  # (B, M, d)

        # Upsampling: every position takes its chunk's smoothed state.
        chunk_of = (r.b.long().cumsum(1) - 1).clamp_min(0)  # (B, L)
        up = zbar.gather(1, chunk_of[..., None].expand(-1, -1, self.d))  # (B, L, d)
        conf = torch.where(r.b, r.p, 1 - r.p)  # confidence in each routing decision
        y = self.residual_proj(h) + up * ste_ones(conf)[..., None]
        y = self.decoder.forward_hidden(y, mask)

        out["ratio_loss"].append(self.ratio_loss(r, mask))
        out["boundary_fraction"].append(((r.b & mask).sum() / mask.sum().clamp_min(1)).detach())
        out["routing"].append(Routing(p=r.p.detach(), b=r.b))
        return y[..., :d_in]


class HNetBackbone(Backbone):
    """H-Net with 1 or more chunking stages over any registered inner backbones.

    After each forward pass: ``aux_loss`` holds the weighted ratio loss, ``boundary_fraction``
    the fraction of positions chosen as chunk starts per stage (``1 / compression``) and
    ``routing`` the per-stage :class:`Routing` decisions (stage 0 first).
    """

    def __init__(self, config: HNetConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.padded_vocab_size, config.d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.stage = Stage(config, 0)
        self.boundary_fraction: list[torch.Tensor] = []
        self.routing: list[Routing] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_hidden(self.embedding(input_ids), attention_mask)  # (B, L, d)

    def forward_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        out: dict[str, list] = {"ratio_loss": [], "boundary_fraction": [], "routing": []}
        y = self.stage(hidden, attention_mask.bool(), out)
        # Stages append innermost first; report outermost first.
        self.routing = out["routing"][::-1]
        self.boundary_fraction = out["boundary_fraction"][::-1]
        self.aux_loss = self.config.ratio_loss_weight * torch.stack(out["ratio_loss"]).sum()
        return y


register_module("hnet", HNetBackbone)
register_size(
    "hnet-1stage-tiny", "hnet", d_model=128, stage_d_model=[128, 192],
    encoders=[{"arch": "hyena", "n_layer": 1}], main={"arch": "transformer", "n_layer": 2, "n_head": 4},
    decoders=[{"arch": "hyena", "n_layer": 1}], target_ratio=[3.0],
)
register_size(
    "hnet-2stage-tiny", "hnet", d_model=128, stage_d_model=[128, 192, 256],
    encoders=[{"arch": "hyena", "n_layer": 1}, {"arch": "hyena", "n_layer": 1}],
    main={"arch": "transformer", "n_layer": 2, "n_head": 4},
    decoders=[{"arch": "hyena", "n_layer": 1}, {"arch": "hyena", "n_layer": 1}], target_ratio=[3.0, 2.0],
)
