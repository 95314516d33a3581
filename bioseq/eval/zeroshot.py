"""Zero-shot scoring with a pretrained DNA language model: bits per base of any genome and
log-likelihood ratios of variants, each beside an order-k Markov chain scored the same way.

    from bioseq.eval.zeroshot import LanguageModel, tile_windows, variant_scores
    lm = LanguageModel.load("runs/demo/final")
    windows = tile_windows([rec.codes for rec in read_fasta("genome.fa")], lm.window)
    lm.bits(windows)                               # (total bits, positions scored)
    variant_scores(lm, ref_codes, [Variant("chr1", 1233, "A", "G")])   # LLR alt vs ref, nats

Variant scores (log-likelihood ratio, natural log, alt minus ref; negative = the model finds the
alternative allele less likely):

- causal models: the reference window ``left + REF + right`` and the alternative window
  ``left + ALT + right`` share ``left``; the score is the sum of log P over every position from
  the first one that differs to the end of the window (earlier positions cancel exactly). SNVs,
  MNVs and short indels alike.
- masked models: the masked marginal: every position where REF and ALT differ is masked in the
  reference window and the score is ``sum log p(ALT_i) - log p(REF_i)`` there. Substitutions only
  (an indel changes the window's length; such records are reported as skipped).
- both strands: the same computation on the reverse complement of both windows; the two scores
  are averaged (a strand-symmetric score from a model that was not built strand-symmetric).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bioseq.alphabet import CODE_MASK, encode, reverse_complement_codes

LOG2 = math.log(2.0)


class ScoreError(ValueError):
    """Bad input to a scoring function (a model or tokenizer that cannot score bases)."""


@dataclass
class Variant:
    """A variant on the forward strand: ``pos`` is the 0-based start of ``ref`` on ``contig``."""

    contig: str
    pos: int
    ref: str
    alt: str

    @property
    def label(self) -> str:
        return f"{self.contig}:{self.pos + 1} {self.ref}>{self.alt}"


class LanguageModel:
    """A causal or masked DNA language model with a nucleotide tokenizer, ready to score bases."""

    def __init__(self, model, tokenizer, window: int, device=None, batch_size: int = 32) -> None:
        import torch

        if not hasattr(tokenizer, "encode_codes") or tokenizer.complement_map is None:
            raise ScoreError(f"tokenizer {tokenizer.name!r}: scoring bases needs a single-nucleotide DNA tokenizer")
        if not hasattr(model, "logits"):
            raise ScoreError(f"{type(model).__name__} has no language-model head (need a causal_lm or masked_lm checkpoint)")
        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tok, self.window, self.batch_size = tokenizer, int(window), batch_size
        self.causal = model.backbone.is_causal
        self.nuc_ids = np.asarray(tokenizer.encode_codes(np.arange(4, dtype=np.uint8)))  # ids of A, C, G, T
        try:
            self.mask_id = tokenizer.mask_token_id
        except KeyError:
            self.mask_id = None
        if not self.causal and self.mask_id is None:
            raise ScoreError(f"tokenizer {tokenizer.name!r} has no mask token: cannot score with a masked model")

    @classmethod
    def load(cls, model: Any, tokenizer: Any = None, window: int | None = None, **kw: Any) -> LanguageModel:
        """From a checkpoint folder or shipped name (tokenizer and window from the checkpoint)."""
        from bioseq.embeddings import load_model_and_tokenizer, training_window

        model, tok, source = load_model_and_tokenizer(model, tokenizer)
        return cls(model, tok, window or training_window(model, source), **kw)

    @property
    def kind(self) -> str:
        return "causal" if self.causal else "masked"

    # ------------------------------------------------------------------------------------------
    def bits(self, windows: np.ndarray, seed: int = 0) -> tuple[float, int]:
        """Total bits and positions scored on ``windows (N, L)`` of base codes: causal models
        score positions 1..L-1, masked models 15% of positions (BERT masking, seeded)."""
        from bioseq.eval.lm import causal_bits, masked_bits

        torch = self.torch
        nuc = torch.as_tensor(self.nuc_ids)
        gen = torch.Generator().manual_seed(seed)
        total, n = 0.0, 0
        for i in range(0, len(windows), self.batch_size):
            ids = torch.as_tensor(self.tok.encode_codes(np.asarray(windows[i : i + self.batch_size]))).to(self.device)
            b, c = causal_bits(self.model, ids, nuc) if self.causal else masked_bits(self.model, ids, nuc, self.mask_id, gen)
            total, n = total + b, n + c
        return total, n

    def _log_probs(self, rows: list[np.ndarray], masked_at: list[np.ndarray] | None = None):
        """Per-position log-probabilities ``(B, L, V)`` (float32, CPU) of right-padded id rows;
        with ``masked_at`` those positions of each row are replaced by the mask token first."""
        torch = self.torch
        L = max(len(r) for r in rows)
        ids = np.full((len(rows), L), self.tok.pad_token_id, np.int64)
        mask = np.zeros((len(rows), L), bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, True
            if masked_at is not None:
                ids[i, masked_at[i]] = self.mask_id
        with torch.inference_mode():
            t_ids, t_mask = torch.as_tensor(ids, device=self.device), torch.as_tensor(mask, device=self.device)
            logits = self.model(t_ids, attention_mask=t_mask).logits.float()
            return torch.log_softmax(logits, -1).cpu().numpy()

    def causal_llr(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``log P(alt) - log P(ref)`` (nats) of ``(ref_codes, alt_codes)`` windows that share a
        prefix: summed from the first differing position to each window's end."""
        out = np.zeros(len(pairs))
        for s in range(0, len(pairs), max(1, self.batch_size // 2)):
            chunk = pairs[s : s + max(1, self.batch_size // 2)]
            rows = [self.tok.encode_codes(x) for pair in chunk for x in pair]
            lp = self._log_probs(rows)
            for j, (ref, alt) in enumerate(chunk):
                n = min(len(ref), len(alt))
                diff = np.flatnonzero(ref[:n] != alt[:n])
                start = max(1, int(diff[0]) if len(diff) else n)
                ll = []
                for row, ids in ((2 * j, rows[2 * j]), (2 * j + 1, rows[2 * j + 1])):
                    ll.append(lp[row, np.arange(start - 1, len(ids) - 1), ids[start:]].sum())
                out[s + j] = ll[1] - ll[0]
        return out

    def masked_llr(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Masked marginal of equal-length ``(ref_codes, alt_codes)`` windows: mask the differing
        positions of the reference window; ``sum log p(alt) - log p(ref)`` there (nats)."""
        out = np.zeros(len(pairs))
        for s in range(0, len(pairs), self.batch_size):
            chunk = pairs[s : s + self.batch_size]
            rows = [self.tok.encode_codes(ref) for ref, _ in chunk]
            sites = [np.flatnonzero(ref != alt) for ref, alt in chunk]
            lp = self._log_probs(rows, masked_at=sites)
            for j, (_, alt) in enumerate(chunk):
                p = sites[j]
                a_ids, r_ids = self.tok.encode_codes(alt[p]), rows[j][p]
                out[s + j] = (lp[j, p, a_ids] - lp[j, p, r_ids]).sum()
        return out


# ----------------------------------------------------------------------------------------------
# bits per base
# ----------------------------------------------------------------------------------------------
def tile_windows(contigs: Sequence[np.ndarray], window: int, max_windows: int | None = None) -> np.ndarray:
    """Non-overlapping ``window``-base windows tiling every contig (the tail shorter than a window
    is left out), evenly thinned to at most ``max_windows``: ``(N, window)`` uint8 codes."""
    starts = [(c, s) for c, codes in enumerate(contigs) for s in range(0, len(codes) - window + 1, window)]
    if not starts:
        raise ScoreError(f"no sequence is at least one window ({window} bases) long")
    if max_windows and len(starts) > max_windows:
        keep = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in keep]
    return np.stack([np.asarray(contigs[c][s : s + window], np.uint8) for c, s in starts])


# ----------------------------------------------------------------------------------------------
# variants
# ----------------------------------------------------------------------------------------------
def check_variant(v: Variant, contigs: dict[str, np.ndarray], max_indel: int = 50) -> str | None:
    """Why ``v`` cannot be scored against ``contigs`` (None if it can)."""
    if v.contig not in contigs:
        return f"contig {v.contig!r} is not in the reference"
    if not v.alt or v.alt in (".", "*") or v.alt.startswith("<") or "[" in v.alt or "]" in v.alt:
        return f"symbolic or missing ALT {v.alt!r}"
    if set(v.ref.upper()) - set("ACGTN") or set(v.alt.upper()) - set("ACGT"):
        return f"REF/ALT {v.ref}>{v.alt}: only A/C/G/T alleles are scored"
    seq = contigs[v.contig]
    if v.pos < 0 or v.pos + len(v.ref) > len(seq):
        return f"position {v.pos + 1} is outside {v.contig} (length {len(seq)})"
    actual = "".join("ACGTN"[min(int(c) & CODE_MASK, 4)] for c in seq[v.pos : v.pos + len(v.ref)])
    if actual != v.ref.upper():
        return f"REF {v.ref} does not match the reference {actual} at {v.contig}:{v.pos + 1}"
    if abs(len(v.ref) - len(v.alt)) > max_indel:
        return f"indel longer than {max_indel} bases"
    return None


def variant_windows(v: Variant, seq: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ref_window, alt_window)`` codes: ``left + REF + right`` and ``left + ALT + right`` with
    flanks of about ``(window - len(REF)) / 2`` bases each (clipped at the contig's ends)."""
    flank = max(0, window - len(v.ref)) // 2
    left = np.asarray(seq[max(0, v.pos - flank) : v.pos], np.uint8) & CODE_MASK
    right = np.asarray(seq[v.pos + len(v.ref) : v.pos + len(v.ref) + flank], np.uint8) & CODE_MASK
    ref = np.concatenate([left, encode(v.ref.upper()), right])
    alt = np.concatenate([left, encode(v.alt.upper()), right])
    return ref, alt


def _both_strands(pairs: list[tuple[np.ndarray, np.ndarray]], both: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    if not both:
        return pairs
    return pairs + [(reverse_complement_codes(r), reverse_complement_codes(a)) for r, a in pairs]


def variant_scores(lm: LanguageModel, contigs: dict[str, np.ndarray], variants: Sequence[Variant],
                   both_strands: bool = True) -> np.ndarray:
    """LLR (nats, alt - ref) of each variant, both strands averaged. Variants must pass
    :func:`check_variant`; masked models take substitutions only (ScoreError otherwise)."""
    pairs = [variant_windows(v, contigs[v.contig], lm.window) for v in variants]
    if not lm.causal and any(len(r) != len(a) for r, a in pairs):
        raise ScoreError("masked models score substitutions only (an indel changes the window length)")
    allp = _both_strands(pairs, both_strands)
    s = lm.causal_llr(allp) if lm.causal else lm.masked_llr(allp)
    return 0.5 * (s[: len(pairs)] + s[len(pairs):]) if both_strands else s


def markov_variant_scores(markov, contigs: dict[str, np.ndarray], variants: Sequence[Variant], window: int,
                          both_strands: bool = True) -> np.ndarray:
    """The same LLR (nats) under an order-k Markov chain: log P summed over the positions whose
    base or k-base context changed (from the first differing position to the window's end)."""
    out = np.zeros(len(variants))
    for i, v in enumerate(variants):
        pairs = _both_strands([variant_windows(v, contigs[v.contig], window)], both_strands)
        scores = []
        for ref, alt in pairs:
            n = min(len(ref), len(alt))
            diff = np.flatnonzero(ref[:n] != alt[:n])
            start = int(diff[0]) if len(diff) else n
            lr, la = markov.position_log2_probs(ref)[start:], markov.position_log2_probs(alt)[start:]
            scores.append((np.nansum(la) - np.nansum(lr)) * LOG2)
        out[i] = np.mean(scores)
    return out


def read_reference(path: str | Path) -> dict[str, np.ndarray]:
    """All contigs of a reference FASTA as ``{name: uint8 codes}``."""
    from bioseq.io import read_fasta

    return {rec.name: rec.codes for rec in read_fasta(path)}


__all__ = ["LanguageModel", "ScoreError", "Variant", "check_variant", "markov_variant_scores", "read_reference",
           "tile_windows", "variant_scores", "variant_windows"]
