"""Interaction heads for protein-nucleic-acid pairs, usable on any backbone.

* :class:`PairRegressor` -- dG (kcal/mol) from ONE tagged sequence ``[CLS] <protein> P [SEP] <dna> N``;
* :class:`CrossAttentionPairRegressor` -- protein and nucleic acid encoded separately by the same
  backbone, nucleic-acid tokens attend over protein tokens, then dG;
* :class:`SiameseDDG` -- wild-type / mutant scoring with one shared dG regressor, trained with
  :func:`ddg_consistency_loss` (predicted mutant minus wild-type dG against measured ddG, plus
  both dG terms);
* :class:`BindingSiteClassifier` -- per-residue binding logits, loss only on protein tokens.

Regressors predict in kcal/mol: targets are standardised with ``target_mean`` / ``target_std``
(stored in the checkpoint's head config) and the loss is the MSE in standard units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bioseq.models.base import Backbone
from bioseq.models.heads import IGNORE_INDEX, ModelOutput, PreTrainedModel, _register, pool


def _mlp(d: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


@_register
class PairRegressor(PreTrainedModel):
    """Joint encoding: pooled hidden state of the tagged pair -> dG in kcal/mol ``(B,)``."""

    model_type = "pair_regression"

    def __init__(self, backbone: Backbone, pooling: str = "mean", hidden: int = 128, dropout: float = 0.1,
                 target_mean: float = 0.0, target_std: float = 1.0) -> None:
        super().__init__(backbone, pooling=pooling, hidden=hidden, dropout=dropout,
                         target_mean=target_mean, target_std=target_std)
        if target_std <= 0:
            raise ValueError(f"target_std must be positive, got {target_std}")
        self.pooling, self.mean, self.std = pooling, target_mean, target_std
        self.regressor = _mlp(backbone.config.d_model, hidden, dropout)

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)  # (B, L, d)
        pooled = pool(hidden, attention_mask, self.pooling)  # (B, d)
        z = self.regressor(pooled).squeeze(-1)  # (B,) standard units
        loss = None
        if labels is not None:
            loss = self._add_aux(F.mse_loss(z.float(), (labels.float() - self.mean) / self.std))
        return ModelOutput(logits=z * self.std + self.mean, loss=loss, hidden_states=hidden, embeddings=pooled)


@_register
class CrossAttentionPairRegressor(PreTrainedModel):
    """Separate encodings: nucleic-acid tokens (queries) attend over protein tokens (keys/values)
    with one multi-head cross-attention layer; the attended nucleic-acid summary and the pooled
    protein are concatenated and regressed to dG (kcal/mol)."""

    model_type = "pair_regression_xattn"

    def __init__(self, backbone: Backbone, n_head: int = 4, hidden: int = 128, dropout: float = 0.1,
                 target_mean: float = 0.0, target_std: float = 1.0) -> None:
        super().__init__(backbone, n_head=n_head, hidden=hidden, dropout=dropout,
                         target_mean=target_mean, target_std=target_std)
        if target_std <= 0:
            raise ValueError(f"target_std must be positive, got {target_std}")
        d = backbone.config.d_model
        if d % n_head:
            raise ValueError(f"d_model {d} not divisible by n_head {n_head}")
        self.mean, self.std = target_mean, target_std
        self.cross = nn.MultiheadAttention(d, n_head, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.regressor = _mlp(2 * d, hidden, dropout)

    def forward(self, protein_ids, protein_mask, na_ids, na_mask, labels=None) -> ModelOutput:
        hp = self._backbone(protein_ids, protein_mask)  # (B, Lp, d)
        aux_p = self.backbone.aux_loss
        hn = self._backbone(na_ids, na_mask)  # (B, Ln, d)
        att, _ = self.cross(hn, hp, hp, key_padding_mask=~protein_mask.bool(), need_weights=False)  # (B, Ln, d)
        na_summary = pool(self.norm(hn + att), na_mask, "mean")  # (B, d)
        pooled = torch.cat([na_summary, pool(hp, protein_mask, "mean")], dim=-1)  # (B, 2d)
        z = self.regressor(pooled).squeeze(-1)  # (B,)
        loss = None
        if labels is not None:
            loss = F.mse_loss(z.float(), (labels.float() - self.mean) / self.std)
            for aux in (aux_p, self.backbone.aux_loss):
                if aux is not None:
                    loss = loss + aux
        return ModelOutput(logits=z * self.std + self.mean, loss=loss, hidden_states=hn, embeddings=pooled)


def ddg_consistency_loss(dg_wt_pred: torch.Tensor, dg_mut_pred: torch.Tensor, dg_wt: torch.Tensor,
                         dg_mut: torch.Tensor, scale: float = 1.0, dg_weight: float = 1.0) -> torch.Tensor:
    """``MSE(pred_mut - pred_wt, dg_mut - dg_wt) + dg_weight * (MSE(pred_wt, dg_wt) + MSE(pred_mut, dg_mut))``,
    all in units of ``scale`` kcal/mol (pass the dG standard deviation to balance the terms)."""
    s = float(scale)
    ddg_term = F.mse_loss((dg_mut_pred - dg_wt_pred) / s, (dg_mut - dg_wt) / s)
    dg_term = F.mse_loss(dg_wt_pred / s, dg_wt / s) + F.mse_loss(dg_mut_pred / s, dg_mut / s)
    return ddg_term + dg_weight * dg_term


class SiameseDDG(nn.Module):
    """One dG regressor scores wild type and mutant (shared weights); ``ddG = dG_mut - dG_wt``.

    ``wt`` and ``mut`` are the keyword inputs of the wrapped regressor (``input_ids`` and
    ``attention_mask`` for :class:`PairRegressor`; the four tensors for
    :class:`CrossAttentionPairRegressor`). Both are run in one batch so batch-dependent layers
    see the pair together.
    """

    def __init__(self, regressor: PairRegressor | CrossAttentionPairRegressor, dg_weight: float = 1.0) -> None:
        super().__init__()
        self.regressor, self.dg_weight = regressor, dg_weight

    def forward(self, wt: dict[str, torch.Tensor], mut: dict[str, torch.Tensor],
                dg_wt: torch.Tensor | None = None, dg_mut: torch.Tensor | None = None) -> ModelOutput:
        B = next(iter(wt.values())).shape[0]
        both = {k: _cat_padded(wt[k], mut[k]) for k in wt}
        pred = self.regressor(**both).logits  # (2B,) kcal/mol
        p_wt, p_mut = pred[:B], pred[B:]
        loss = None
        if dg_wt is not None and dg_mut is not None:
            loss = ddg_consistency_loss(p_wt, p_mut, dg_wt.float(), dg_mut.float(), self.regressor.std, self.dg_weight)
        return ModelOutput(logits=p_mut - p_wt, loss=loss, embeddings=torch.stack([p_wt, p_mut], -1))


def _cat_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate two ``(B, L*)`` batches along B, right-padding the shorter with zeros (ids are
    masked by their attention mask, masks pad with False)."""
    L = max(a.shape[1], b.shape[1])
    pad = lambda t: F.pad(t, (0, L - t.shape[1]))  # noqa: E731
    return torch.cat([pad(a), pad(b)], dim=0)


@_register
class BindingSiteClassifier(PreTrainedModel):
    """Per-token binding logit ``(B, L)``; ``labels (B, L)`` are 0/1 on protein residues and -100
    elsewhere (tags, nucleotides, padding, unannotated residues), so the loss only sees residues.
    Works on protein-only input or on a tagged protein-nucleic-acid pair."""

    model_type = "binding_site"

    def __init__(self, backbone: Backbone, hidden: int = 64, dropout: float = 0.1, pos_weight: float = 1.0) -> None:
        super().__init__(backbone, hidden=hidden, dropout=dropout, pos_weight=pos_weight)
        d = backbone.config.d_model
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.pos_weight = pos_weight

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self._backbone(input_ids, attention_mask)  # (B, L, d)
        logits = self.classifier(hidden).squeeze(-1)  # (B, L)
        loss = None
        if labels is not None:
            keep = labels != IGNORE_INDEX
            if attention_mask is not None:
                keep = keep & attention_mask.bool()
            pw = torch.tensor(self.pos_weight, device=logits.device)
            loss = F.binary_cross_entropy_with_logits(logits[keep].float(), labels[keep].float(), pos_weight=pw)
            loss = self._add_aux(loss)
        return ModelOutput(logits=logits, loss=loss, hidden_states=hidden)
