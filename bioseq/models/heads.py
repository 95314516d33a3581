"""Task heads that plug onto any backbone, and ``save_pretrained`` / ``from_pretrained``.

A checkpoint folder holds ``config.json`` (``{"model_type", "backbone": {...}, "head": {...}}``)
and ``model.safetensors``; no pickle anywhere::

    model = CausalLM(build_backbone("hyena-tiny"))
    model.save_pretrained("ckpt/")
    model = load_pretrained("ckpt/")           # dispatches on model_type
    model = CausalLM.from_pretrained("ckpt/")  # or ask for the class directly
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from bioseq.models.base import Backbone, build_backbone
from bioseq.models.checkpoints import resolve as resolve_checkpoint
from bioseq.models.config import load_config

IGNORE_INDEX = -100
FORMAT_VERSION = 1
_HEADS: dict[str, type[PreTrainedModel]] = {}


@dataclass
class ModelOutput:
    """What every head returns. ``logits`` is None for :class:`Embedder`."""

    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None  # (B, L, d) backbone output
    embeddings: torch.Tensor | None = None  # (B, d) pooled, for Embedder / classifiers
    aux_loss: torch.Tensor | None = None


def _register(cls: type[PreTrainedModel]) -> type[PreTrainedModel]:
    _HEADS[cls.model_type] = cls
    return cls


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Pool ``(B, L, d)`` to ``(B, d)``: ``mean`` over real tokens, ``last`` real token, ``first``."""
    if mode == "first":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    if mode == "last":
        idx = attention_mask.long().sum(1).clamp_min(1) - 1  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
    raise ValueError(f"unknown pooling {mode!r}; use mean, last or first")


class PreTrainedModel(nn.Module):
    """A backbone plus a head, with HF-style persistence."""

    model_type: str = ""

    def __init__(self, backbone: Backbone, **head_config: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.head_config = head_config

    @property
    def config(self):
        return self.backbone.config

    def _backbone(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        self.backbone.aux_loss = None
        return self.backbone(input_ids, attention_mask=attention_mask)

    def _add_aux(self, loss: torch.Tensor | None) -> torch.Tensor | None:
        aux = self.backbone.aux_loss
        if loss is not None and aux is not None:
            return loss + aux
        return loss

    # -- persistence ---------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` atomically into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {
            "format": "bioseq-model",
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "backbone": self.backbone.config.to_dict(),
            "head": self.head_config,
        }
        for name, payload in (("config.json", None), ("model.safetensors", None)):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
            os.close(fd)
            try:
                if name == "config.json":
                    Path(tmp).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
                else:
                    save_model(self, tmp, metadata={"format": "pt", "model_type": self.model_type})
                os.replace(tmp, directory / name)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu", **head_overrides: Any):
        """Load a model saved by :meth:`save_pretrained`. ``cls`` may be a different head type
        than the saved one (e.g. a classifier from a pretrained LM): the backbone weights load,
        head weights missing from the file start fresh. ``directory`` may also name a shipped
        checkpoint (:mod:`bioseq.models.checkpoints`)."""
        from safetensors import SafetensorError

        from bioseq.models.validation import (
            CheckpointError,
            check_head_config,
            check_model_size,
            check_safetensors,
            read_checkpoint_config,
        )

        # Everything is checked before anything is built: config.json (keys, types, sizes, the
        # parameter count on the meta device), then that model.safetensors is complete.
        directory = resolve_checkpoint(directory)
        cfg_path = directory / "config.json"
        cfg = read_checkpoint_config(directory, FORMAT_VERSION)
        if cfg["model_type"] not in _HEADS:
            raise CheckpointError(f"{cfg_path}: unknown model_type {cfg['model_type']!r} (known: {', '.join(sorted(_HEADS))})")
        target = _HEADS[cfg["model_type"]] if cls is PreTrainedModel else cls
        head = dict(cfg.get("head", {})) if target.model_type == cfg["model_type"] else {}
        check_head_config(cfg_path, target, head)
        head.update(head_overrides)
        backbone_cfg = load_config(cfg["backbone"])
        check_model_size(cfg_path, lambda: target(build_backbone(backbone_cfg), **head))
        weights = directory / "model.safetensors"
        check_safetensors(weights)
        model = target(build_backbone(backbone_cfg), **head)
        strict = target.model_type == cfg["model_type"]
        try:
            missing, unexpected = load_model(model, str(weights), strict=strict, device=map_location)
        except SafetensorError as e:
            raise CheckpointError(f"{weights}: unreadable ({e})") from None
        except RuntimeError as e:  # shapes or names that do not match config.json
            msg = str(e).strip().splitlines()
            raise CheckpointError(f"{weights}: does not match {cfg_path} ({' '.join(msg[:3])[:300]})") from None
        if not strict:
            bad = [k for k in missing if k.startswith("backbone.")]
            if bad:
                raise ValueError(f"{directory}: checkpoint lacks backbone weights {bad[:5]}")
        model.source_dir = directory  # where it came from (a shipped name resolves to a folder)
        return model


def load_pretrained(directory: str | os.PathLike, map_location: str = "cpu") -> PreTrainedModel:
    """Load any saved bioseq model, dispatching on ``model_type`` in its ``config.json``.
    ``directory`` is a checkpoint folder or the name of a shipped checkpoint
    (``bioseq models list``)."""
    return PreTrainedModel.from_pretrained(directory, map_location=map_location)


class _LMHead(PreTrainedModel):
    def __init__(self, backbone: Backbone, tie_weights: bool = True) -> None:
        super().__init__(backbone, tie_weights=tie_weights)
        d, v = backbone.config.d_model, backbone.config.padded_vocab_size
        tied = backbone.embedding.weight
        if tie_weights and not isinstance(tied, nn.Parameter):
            # The embedding builds its weight from other parameters (e.g. the reverse-complement
            # equivariant one); tie by reading that weight at every call.
            self.lm_head = None
        else:
            self.lm_head = nn.Linear(d, v, bias=False)
            if tie_weights:
                self.lm_head.weight = tied

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # Padded vocab entries never occur as targets; mask them so sampling never picks them.
        if self.lm_head is None:
            logits = F.linear(hidden, self.backbone.embedding.weight)
        else:
            logits = self.lm_head(hidden)
        v = self.backbone.config.vocab_size
        if logits.shape[-1] > v:
            logits[..., v:] = float("-inf")
        return logits


@_register
class CausalLM(_LMHead):
    """Next-token prediction. ``labels`` default to ``input_ids``; pad positions are ignored."""

    model_type = "causal_lm"

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)  # (B, L, d)
        logits = self.logits(hidden)  # (B, L, V)
        loss = None
        if labels is not None:
            labels = labels.masked_fill(labels == self.config.pad_token_id, IGNORE_INDEX)
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
            loss = self._add_aux(loss)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden, aux_loss=self.backbone.aux_loss)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool = True,
        generator: torch.Generator | None = None,
        use_recurrent_state: bool | None = None,
        vocab_size: int | None = None,
    ) -> torch.Tensor:
        """Continue ``input_ids (B, L0)`` by ``max_new_tokens`` tokens -> ``(B, L0 + n)``.

        Backbones with recurrent decoding (Mamba, xLSTM) run token by token through their state,
        in constant memory; the others recompute the full forward pass per token. The padding id
        and ids at or above ``vocab_size`` (default: the config's, which the embedding pads up to
        a multiple of 8) are never sampled: pass ``tokenizer.vocab_size`` when the model was built
        with a larger vocabulary than its tokenizer, so every id decodes.
        """
        if not self.backbone.is_causal:
            raise ValueError("generate() needs a causal backbone (bidirectional=False)")
        if use_recurrent_state is None:
            use_recurrent_state = self.backbone.supports_recurrent_step
        self.eval()
        out = input_ids
        if use_recurrent_state:
            state = self.backbone.allocate_state(input_ids.shape[0], input_ids.device)
            for t in range(input_ids.shape[1]):
                h, state = self.backbone.step(input_ids[:, t], state)
        for _ in range(max_new_tokens):
            if use_recurrent_state:
                logits = self.logits(h)  # (B, V)
            else:
                logits = self.logits(self.backbone(out))[:, -1]
            logits = logits.clone()
            logits[..., self.config.pad_token_id] = float("-inf")
            if vocab_size is not None:
                logits[..., vocab_size:] = float("-inf")
            nxt = sample_next(logits, temperature, top_k, top_p, do_sample, generator)  # (B,)
            out = torch.cat([out, nxt[:, None]], dim=1)
            if use_recurrent_state:
                h, state = self.backbone.step(nxt, state)
        return out


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, do_sample=True, generator=None):
    """Pick next tokens from ``logits (B, V)``: greedy, or sampling with temperature/top-k/top-p."""
    logits = logits.float()
    if not do_sample or temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@_register
class MaskedLM(_LMHead):
    """Masked-token prediction: ``labels`` hold the original id at masked positions and -100
    elsewhere (see :func:`bioseq.models.heads.mask_tokens`)."""

    model_type = "masked_lm"

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)
        logits = self.logits(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)
            loss = self._add_aux(loss)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden, aux_loss=self.backbone.aux_loss)


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    maskable: torch.Tensor,
    vocab_ids: torch.Tensor,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: of the selected ``mlm_probability`` positions (only where ``maskable``),
    80% become ``mask_token_id``, 10% a random id from ``vocab_ids``, 10% stay. Returns
    ``(masked_ids, labels)`` with labels -100 at unselected positions."""
    probs = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    selected = (probs < mlm_probability) & maskable
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    r = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    out = input_ids.clone()
    out[selected & (r < 0.8)] = mask_token_id
    rand_pos = selected & (r >= 0.8) & (r < 0.9)
    ridx = torch.randint(len(vocab_ids), input_ids.shape, generator=generator, device=input_ids.device)
    out[rand_pos] = vocab_ids.to(input_ids.device)[ridx[rand_pos]]
    return out, labels


@_register
class SequenceClassifier(PreTrainedModel):
    """Pooled hidden state -> ``num_labels`` logits (``num_labels=1``: regression with MSE).

    ``pooling`` is ``mean``, ``last`` or ``first`` (see :func:`pool`), or ``positions`` for
    fixed-length inputs whose labels depend on *where* a feature sits (a splice junction at a known
    offset, a promoter box): each of the ``seq_len`` tokens' hidden states is projected to
    ``position_dim`` features and the concatenation feeds the linear output layer, so every
    position gets its own weights (the neural analogue of a position-specific one-hot model).
    """

    model_type = "sequence_classification"

    def __init__(self, backbone: Backbone, num_labels: int = 2, pooling: str = "mean", dropout: float = 0.1,
                 seq_len: int | None = None, position_dim: int = 8) -> None:
        extra = {"seq_len": seq_len, "position_dim": position_dim} if pooling == "positions" else {}
        super().__init__(backbone, num_labels=num_labels, pooling=pooling, dropout=dropout, **extra)
        d = backbone.config.d_model
        if pooling == "positions":
            if not seq_len or seq_len < 1 or position_dim < 1:
                raise ValueError(f"pooling='positions' needs seq_len >= 1 (tokens per input) and position_dim >= 1, "
                                 f"got seq_len={seq_len}, position_dim={position_dim}")
            self.classifier = nn.Sequential(nn.Linear(d, position_dim), nn.Flatten(1), nn.Dropout(dropout),
                                            nn.Linear(seq_len * position_dim, num_labels))
        else:
            pool(torch.zeros(1, 1, 1), None, pooling)  # unknown modes fail here, not at the first batch
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_labels))
        self.num_labels, self.pooling, self.seq_len = num_labels, pooling, seq_len

    def head(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, num_labels), pooled features)`` from backbone output ``hidden (B, L, d)``."""
        if self.pooling != "positions":
            pooled = pool(hidden, attention_mask, self.pooling)  # (B, d)
            return self.classifier(pooled), pooled
        if hidden.shape[1] != self.seq_len:
            raise ValueError(f"pooling='positions' was built for {self.seq_len} tokens per input, got {hidden.shape[1]}")
        if attention_mask is not None:  # padding contributes nothing
            hidden = hidden * attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = self.classifier[1](self.classifier[0](hidden))  # (B, seq_len * position_dim)
        return self.classifier[3](self.classifier[2](pooled)), pooled

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)
        logits, pooled = self.head(hidden, attention_mask)  # (B, num_labels)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
            loss = self._add_aux(loss)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden, embeddings=pooled)


@_register
class TokenClassifier(PreTrainedModel):
    """Per-token labels (e.g. binding residues); ``labels`` -100 where there is no label."""

    model_type = "token_classification"

    def __init__(self, backbone: Backbone, num_labels: int = 2, dropout: float = 0.1) -> None:
        super().__init__(backbone, num_labels=num_labels, dropout=dropout)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.config.d_model, num_labels))
        self.num_labels = num_labels

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)
        logits = self.classifier(hidden)  # (B, L, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.num_labels).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)
            loss = self._add_aux(loss)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden)


@_register
class Embedder(PreTrainedModel):
    """Pooled, optionally projected, per-sequence L2-normalised embeddings ``(B, dim)``."""

    model_type = "embedder"

    def __init__(self, backbone: Backbone, dim: int | None = None, pooling: str = "mean", normalize: bool = True) -> None:
        super().__init__(backbone, dim=dim, pooling=pooling, normalize=normalize)
        self.proj = nn.Linear(backbone.config.d_model, dim) if dim else nn.Identity()
        self.pooling, self.normalize = pooling, normalize

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)
        emb = self.proj(pool(hidden, attention_mask, self.pooling))  # (B, dim)
        if self.normalize:
            emb = F.normalize(emb, dim=-1)  # per sequence, never across the batch
        return ModelOutput(hidden_states=hidden, embeddings=emb, aux_loss=self.backbone.aux_loss)
