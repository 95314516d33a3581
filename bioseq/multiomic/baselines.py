"""Baselines measured beside the multi-omic model (see ``benchmarks/multiomic.py``).

* :func:`pair_kmer_features` -- amino-acid 1/2-mer and nucleotide 1..3-mer composition of a
  pair, for ridge regression or gradient boosting;
* :class:`DeePNAPLike` -- a small two-tower CNN in the spirit of DeePNAP (one-hot residues,
  convolutions with global max pooling per tower, an interaction MLP);
* :func:`residue_window_features` -- per-residue identity, window composition and relative
  position, the composition/position baseline for binding residues.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

AA20 = "ACDEFGHIKLMNPQRSTVWY"
NT4 = "ACGT"


def kmer_composition(seq: str, alphabet: str, k: int) -> np.ndarray:
    """Normalised counts of the ``len(alphabet)**k`` k-mers of ``seq`` in lexicographic order
    (k-mers holding other characters are skipped)."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[np.frombuffer(alphabet.encode(), dtype=np.uint8)] = np.arange(len(alphabet))
    codes = lut[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]
    n, a = len(codes) - k + 1, len(alphabet)
    v = np.zeros(a**k, dtype=np.float32)
    if n <= 0:
        return v
    win = np.lib.stride_tricks.sliding_window_view(codes, k)  # (n, k)
    ok = (win >= 0).all(1)
    idx = win[ok] @ (a ** np.arange(k - 1, -1, -1))
    v += np.bincount(idx, minlength=a**k).astype(np.float32)
    return v / max(1.0, v.sum())


def pair_kmer_features(protein: str, na: str, na2: str = "", na_is_rna: bool = False) -> np.ndarray:
    """Composition features of a protein-nucleic-acid pair (420 + 84 + 3 values)."""
    nuc = (na + na2).replace("U", "T")
    parts = [kmer_composition(protein, AA20, 1), kmer_composition(protein, AA20, 2)]
    parts += [kmer_composition(nuc, NT4, k) for k in (1, 2, 3)]
    parts.append(np.array([np.log(len(protein)), np.log(max(1, len(nuc))), float(na_is_rna)], dtype=np.float32))
    return np.concatenate(parts)


def one_hot(seq: str, alphabet: str, length: int) -> np.ndarray:
    """``(len(alphabet), length)`` one-hot, cut or zero-padded to ``length``."""
    out = np.zeros((len(alphabet), length), dtype=np.float32)
    lut = {c: i for i, c in enumerate(alphabet)}
    for j, c in enumerate(seq[:length]):
        i = lut.get(c)
        if i is not None:
            out[i, j] = 1.0
    return out


class DeePNAPLike(nn.Module):
    """Two convolutional towers over one-hot protein ``(B, 20, Lp)`` and nucleic acid
    ``(B, 5, Ln)`` (A C G T + an RNA flag channel), global max pooling, interaction MLP -> dG
    in standard units ``(B,)``."""

    def __init__(self, channels: int = 64, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.protein = nn.Sequential(nn.Conv1d(20, channels, 9, padding=4), nn.ReLU(),
                                     nn.Conv1d(channels, channels, 9, padding=4), nn.ReLU())
        self.na = nn.Sequential(nn.Conv1d(5, channels, 5, padding=2), nn.ReLU(),
                                nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU())
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.LeakyReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden // 2), nn.LeakyReLU(), nn.Linear(hidden // 2, 1))

    def forward(self, protein: torch.Tensor, na: torch.Tensor) -> torch.Tensor:
        p = self.protein(protein).amax(-1)  # (B, C)
        n = self.na(na).amax(-1)  # (B, C)
        return self.mlp(torch.cat([p, n], -1)).squeeze(-1)


def deepnap_inputs(proteins: Sequence[str], nas: Sequence[str], rna: Sequence[bool], lp: int = 800, ln: int = 80):
    """Tensors for :class:`DeePNAPLike`: ``(B, 20, lp)`` and ``(B, 5, ln)``."""
    P = np.stack([one_hot(p, AA20, lp) for p in proteins])
    N = np.stack([np.concatenate([one_hot(n.replace("U", "T"), NT4, ln), np.full((1, ln), float(r), np.float32)])
                  for n, r in zip(nas, rna, strict=True)])
    return torch.from_numpy(P), torch.from_numpy(N)


def fit_deepnap(proteins, nas, rna, y, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                lp: int = 800, ln: int = 80, device: str | torch.device = "cpu", channels: int = 64) -> tuple[DeePNAPLike, float, float]:
    """Train :class:`DeePNAPLike` on standardised targets; returns ``(model, mean, std)``."""
    torch.manual_seed(seed)
    y = np.asarray(y, dtype=np.float32)
    mu, sd = float(y.mean()), float(y.std() + 1e-6)
    P, N = (t.to(device) for t in deepnap_inputs(proteins, nas, rna, lp, ln))
    Y = torch.from_numpy((y - mu) / sd).to(device)
    model = DeePNAPLike(channels=channels, hidden=2 * channels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(Y), generator=g).to(device).split(batch_size):
            loss = F.mse_loss(model(P[idx], N[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), mu, sd


@torch.no_grad()
def predict_deepnap(model: DeePNAPLike, mu: float, sd: float, proteins, nas, rna, lp: int = 800, ln: int = 80,
                    device: str | torch.device = "cpu") -> np.ndarray:
    P, N = (t.to(device) for t in deepnap_inputs(proteins, nas, rna, lp, ln))
    return np.concatenate([model(P[i : i + 256], N[i : i + 256]).cpu().numpy() for i in range(0, len(P), 256)]) * sd + mu


def residue_window_features(protein: str, half_window: int = 7) -> np.ndarray:
    """``(L, 20 + 20 + 3)`` per residue: its one-hot identity, the amino-acid composition of the
    ``2*half_window+1`` window around it, relative position, distance to the nearer terminus
    (log) and log length."""
    L = len(protein)
    oh = one_hot(protein, AA20, L).T  # (L, 20)
    c = np.concatenate([np.zeros((1, 20), np.float32), np.cumsum(oh, 0)])  # prefix sums
    lo = np.clip(np.arange(L) - half_window, 0, L)
    hi = np.clip(np.arange(L) + half_window + 1, 0, L)
    comp = (c[hi] - c[lo]) / (hi - lo)[:, None]
    pos = np.arange(L, dtype=np.float32)
    extra = np.stack([pos / max(1, L - 1), np.log1p(np.minimum(pos, L - 1 - pos)), np.full(L, np.log(L))], 1)
    return np.concatenate([oh, comp, extra.astype(np.float32)], 1)
