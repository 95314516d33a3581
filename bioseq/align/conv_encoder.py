"""A dilated-CNN read/fragment encoder, reverse-complement invariant by construction.

    one-hot (B, 4, L) -> stem conv, kernel k (soft k-mer detectors)        -> (B, C, L - k + 1)
                      -> n x [LayerNorm -> dilated conv (3, d) -> GELU] + residual
                      -> 1x1 projection                                     -> (B, dim, L - k + 1)
                      -> sum over the windows that lie inside the sequence, both strands
                      -> L2 normalise                                       -> (B, dim)

Why this shape: a read and the reference fragment it came from share most of their local windows,
even at 15% divergence where few exact 10-mers survive. Features of local windows summed over the
sequence (a bag of soft k-mers) make the inner product of two embeddings count shared windows, the
quantity the k-mer sketch estimates with exact k-mers; the convolutions can learn to match windows
through substitutions. Summing the features of both strands makes the embedding of a sequence and
of its reverse complement identical, so reads of either strand match forward-strand fragments.

It costs about 0.1 M multiply-adds per base and direction (a Transformer of the same width costs
more and grows with length), so a bacterial genome's fragments embed in minutes on one core.

Checkpoints are ``config.json`` (``model_type: "conv_encoder"``) + ``model.safetensors``, loaded by
:func:`bioseq.align.encoder.load_encoder` like the network encoders.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

MODEL_TYPE = "conv_encoder"
#: token ids of A, C, G, T (the project's character vocabulary; N and padding are all-zero columns)
NUC_IDS = (7, 8, 9, 10)


@dataclass
class ConvEncoderConfig:
    channels: int = 96
    kernel: int = 11
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])
    dim: int = 256
    #: reference tile geometry the encoder was trained for (``bioseq index`` defaults)
    fragment_len: int = 300
    stride: int = 150

    def __post_init__(self) -> None:
        if self.channels < 1 or self.dim < 1 or self.kernel < 1 or not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"conv encoder: channels, dim, kernel and dilations must be positive ({self})")
        if not 0 < self.stride <= self.fragment_len:
            raise ValueError(f"conv encoder: need 0 < stride <= fragment_len, got {self.stride} / {self.fragment_len}")


class ConvEncoder(nn.Module):
    """See the module docstring. ``forward(input_ids, attention_mask)`` returns an object with
    ``.embeddings`` (B, dim), like :class:`bioseq.models.Embedder`."""

    def __init__(self, config: ConvEncoderConfig) -> None:
        super().__init__()
        self.config = config
        C = config.channels
        self.stem = nn.Conv1d(4, C, config.kernel)
        # per-position norms (over channels only): statistics over positions would make a window's
        # features depend on the sequence's length and padding
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in config.dilations)
        self.convs = nn.ModuleList(nn.Conv1d(C, C, 3, dilation=d, padding=d) for d in config.dilations)
        self.proj = nn.Conv1d(C, config.dim, 1)

    def one_hot(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, 4, L) float one-hot of A, C, G, T (N and padding: zeros)."""
        nuc = torch.tensor(NUC_IDS, device=input_ids.device)
        return (input_ids[:, None, :] == nuc[None, :, None]).float()

    def window_features(self, x: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """(B, 4, L) one-hot, (B, L - kernel + 1) windows inside the sequence -> (B, dim, L - kernel + 1)
        features of every window. Windows outside are zeroed before each dilated convolution, as
        its zero padding is at a sequence's ends, so a sequence's features do not depend on how far
        it was padded."""
        m = inside[:, None]
        h = F.gelu(self.stem(x)) * m
        for norm, conv in zip(self.norms, self.convs):
            h = h + F.gelu(conv(norm(h.transpose(1, 2)).transpose(1, 2) * m)) * m
        return self.proj(h)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        x = self.one_hot(input_ids)  # (B, 4, L)
        valid = torch.ones_like(input_ids, dtype=x.dtype) if attention_mask is None else attention_mask.to(x.dtype)
        k = self.config.kernel
        if x.shape[-1] < k:
            raise ValueError(f"conv encoder: sequences of {x.shape[-1]} positions are shorter than its kernel ({k})")
        # a window counts only if it lies wholly inside the sequence (not over its padding)
        inside = -F.max_pool1d(-valid[:, None], k, 1)[:, 0]  # (B, L - k + 1)
        # reverse complement in one-hot space: flip the channels (A<->T, C<->G) and the positions;
        # the flipped windows line up with the flipped mask, wherever the padding was
        rc = x.flip(1).flip(2)
        z = (self.window_features(x, inside) * inside[:, None]).sum(-1) \
            + (self.window_features(rc, inside.flip(1)) * inside.flip(1)[:, None]).sum(-1)  # (B, dim)
        return SimpleNamespace(embeddings=F.normalize(z.float(), dim=-1))

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` (fp32) into ``path`` (each file under a
        temporary name, then renamed)."""
        from safetensors.torch import save_file

        from bioseq.io.atomic import atomic_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {"model_type": MODEL_TYPE, **asdict(self.config)}
        with atomic_file(path / "config.json") as tmp:
            Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n")
        state = {k: v.detach().float().contiguous() for k, v in self.state_dict().items()}
        with atomic_file(path / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "model_type": MODEL_TYPE})

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ConvEncoder:
        from safetensors.torch import load_file

        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{path}: checkpoint is a {cfg.get('model_type')!r}, not a {MODEL_TYPE}")
        known = set(ConvEncoderConfig.__dataclass_fields__)
        model = cls(ConvEncoderConfig(**{k: v for k, v in cfg.items() if k in known}))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return model.eval()
