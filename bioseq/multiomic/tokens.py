"""Encoding protein-nucleic-acid pairs with the project's joint multi-omic tokenizer.

The tokenizer (:func:`bioseq.tokenization.multiomic`) gives amino acids and nucleotides disjoint
ids and opens every segment with a modality tag; a pair reads
``[CLS] <protein> M K .. [SEP] <dna> A C .. [SEP]``. These helpers add what the interaction heads
need on top: where the protein residues sit in the token sequence, and padding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bioseq.tokenization import MultiOmicTokenizer, TokenizerError, get_tokenizer

__all__ = ["TokenizerError", "encode_pair", "encode_single", "get_joint_vocab", "na_modality", "pad_batch",
           "protein_token_mask"]


def get_joint_vocab() -> MultiOmicTokenizer:
    """The project's joint DNA/RNA/protein tokenizer."""
    return get_tokenizer("multiomic")


@lru_cache(maxsize=8)
def _protein_lut(tok: MultiOmicTokenizer) -> np.ndarray:
    return tok.modality_token_mask("protein")


def protein_token_mask(tok: MultiOmicTokenizer, ids):
    """Boolean mask of amino-acid tokens; ``ids`` a numpy array or a torch tensor."""
    lut = _protein_lut(tok)
    if isinstance(ids, np.ndarray):
        return lut[ids]
    import torch

    return torch.from_numpy(lut).to(ids.device)[ids]


def na_modality(na_type: str) -> str:
    """ProNAB's ``DNA`` / ``RNA`` / ``Other`` -> tag modality (modified or mixed strands read as DNA)."""
    return "rna" if na_type.upper() == "RNA" else "dna"


def encode_single(tok: MultiOmicTokenizer, seq: str, modality: str) -> np.ndarray:
    """``[CLS] <modality> body [SEP]`` ids."""
    return tok.encode_segments([(modality, seq)])[0]


def encode_pair(
    tok: MultiOmicTokenizer,
    protein: str,
    na: str,
    na_type: str = "DNA",
    na2: str = "",
    max_protein_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One tagged sequence ``[CLS] <protein> P.. [SEP] <dna> N.. [SEP] (<dna> N2.. [SEP])``.

    Returns ``(ids (L,), residue_index (L,))`` where ``residue_index`` is the 0-based protein
    residue behind each token and -1 for every other token (maps per-token outputs back to
    residues). Proteins longer than ``max_protein_len`` are cut to their first residues.
    """
    p = protein[:max_protein_len] if max_protein_len else protein
    mod = na_modality(na_type)
    segs = [("protein", p), (mod, na)] + ([(mod, na2)] if na2 else [])
    ids = tok.encode_segments(segs)[0].astype(np.int64)
    residue_index = np.full(len(ids), -1, dtype=np.int64)
    residue_index[2 : 2 + len(p)] = np.arange(len(p))
    return ids, residue_index


def pad_batch(seqs: list[np.ndarray], pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D arrays to ``(B, Lmax)``; returns ``(padded, mask)`` with mask True on tokens."""
    L = max(len(s) for s in seqs)
    out = np.full((len(seqs), L), pad_value, dtype=np.int64)
    mask = np.zeros((len(seqs), L), dtype=bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = True
    return out, mask
