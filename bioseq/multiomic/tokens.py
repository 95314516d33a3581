"""Joint tagged vocabulary for protein and nucleic-acid sequences, and pair encoding.

Amino-acid letters overlap nucleotide letters (A, C, G, T), so the two alphabets get disjoint
token ids; a modality tag (``<dna>``, ``<rna>``, ``<protein>``) opens every segment. Layout::

    0-6   [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK]   (as the default DNA vocabulary)
    7-11  A C G T N                                          (nucleotides; RNA's U reads as T)
    12-14 <dna> <rna> <protein>
    15-39 A C D E F G H I K L M N P Q R S T V W Y X B Z U O  (amino acids)

Everything downstream (heads, recipe, benchmark) talks to the small :class:`JointVocab`
interface -- ``encode``, ``tag_id``, ``residue_ids``, ``is_protein`` and the special ids -- so a
different joint tokenizer can be swapped in behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPECIALS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
NUCLEOTIDES = "ACGTN"
TAGS = ("<dna>", "<rna>", "<protein>")
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWYXBZUO"
MODALITIES = ("dna", "rna", "protein")


class TokenizationError(ValueError):
    """A sequence holds characters outside its modality's alphabet."""


@dataclass(frozen=True)
class JointVocab:
    """Character-level joint vocabulary (see the module docstring for the id layout)."""

    cls_token_id: int = 0
    sep_token_id: int = 1
    mask_token_id: int = 3
    pad_token_id: int = 4
    unk_token_id: int = 6

    @property
    def nucleotide_offset(self) -> int:
        return len(SPECIALS)

    @property
    def protein_offset(self) -> int:
        return len(SPECIALS) + len(NUCLEOTIDES) + len(TAGS)

    @property
    def vocab_size(self) -> int:
        return self.protein_offset + len(AMINO_ACIDS)

    @property
    def tokens(self) -> list[str]:
        return [*SPECIALS, *NUCLEOTIDES, *TAGS, *(f"p{a}" for a in AMINO_ACIDS)]

    def tag_id(self, modality: str) -> int:
        """Id of the tag opening a ``dna`` / ``rna`` / ``protein`` segment."""
        if modality not in MODALITIES:
            raise TokenizationError(f"unknown modality {modality!r}; use one of {MODALITIES}")
        return len(SPECIALS) + len(NUCLEOTIDES) + MODALITIES.index(modality)

    def residue_ids(self, modality: str | None = None) -> np.ndarray:
        """Ids of ordinary residues (no specials/tags): for MLM random replacement."""
        nuc = np.arange(self.nucleotide_offset, self.nucleotide_offset + 4)  # A C G T, not N
        prot = np.arange(self.protein_offset, self.protein_offset + 20)  # 20 standard amino acids
        if modality is None:
            return np.concatenate([nuc, prot])
        return prot if modality == "protein" else nuc

    def is_protein(self, ids: np.ndarray):
        """Boolean mask of amino-acid tokens (works on numpy arrays and torch tensors)."""
        return (ids >= self.protein_offset) & (ids < self.vocab_size)

    def encode(self, seq: str, modality: str, add_tag: bool = True) -> np.ndarray:
        """``seq`` -> int64 ids, optionally preceded by the modality tag. Case-insensitive."""
        s = np.frombuffer(seq.upper().encode("ascii", errors="replace"), dtype=np.uint8)
        table = _PROTEIN_TABLE if modality == "protein" else _NUC_TABLE
        if modality not in MODALITIES:
            raise TokenizationError(f"unknown modality {modality!r}; use one of {MODALITIES}")
        code = table[s]
        if (code < 0).any():
            bad = sorted({chr(c) for c in s[code < 0]})
            raise TokenizationError(f"{modality} sequence has characters {bad} outside its alphabet")
        off = self.protein_offset if modality == "protein" else self.nucleotide_offset
        ids = code.astype(np.int64) + off
        if add_tag:
            ids = np.concatenate([[self.tag_id(modality)], ids])
        return ids


def _table(alphabet: str, extra: dict[str, str] | None = None) -> np.ndarray:
    t = np.full(256, -1, dtype=np.int16)
    for i, c in enumerate(alphabet):
        t[ord(c)] = i
    for c, target in (extra or {}).items():
        t[ord(c)] = alphabet.index(target)
    return t


# U is read as T (RNA is written either way in the sources); IUPAC ambiguity codes become N.
_NUC_TABLE = _table(NUCLEOTIDES, {"U": "T", **{c: "N" for c in "RYSWKMBDHV"}})
_PROTEIN_TABLE = _table(AMINO_ACIDS)


def get_joint_vocab() -> JointVocab:
    """The project's joint multi-omic vocabulary."""
    return JointVocab()


def na_modality(na_type: str) -> str:
    """ProNAB's ``DNA`` / ``RNA`` / ``Other`` -> tag modality (modified or mixed strands read as DNA)."""
    return "rna" if na_type.upper() == "RNA" else "dna"


def encode_pair(
    vocab: JointVocab,
    protein: str,
    na: str,
    na_type: str = "DNA",
    na2: str = "",
    max_protein_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One tagged sequence ``[CLS] <protein> P.. [SEP] <dna> N.. [SEP] (N2.. [SEP])``.

    Returns ``(ids (L,), residue_index (L,))`` where ``residue_index`` is the 0-based protein
    residue behind each token and -1 for every other token (maps per-token outputs back to
    residues). Proteins longer than ``max_protein_len`` are cut to their first residues.
    """
    p = protein[:max_protein_len] if max_protein_len else protein
    mod = na_modality(na_type)
    parts = [np.array([vocab.cls_token_id]), vocab.encode(p, "protein"), np.array([vocab.sep_token_id]),
             vocab.encode(na, mod), np.array([vocab.sep_token_id])]
    if na2:
        parts += [vocab.encode(na2, mod, add_tag=False), np.array([vocab.sep_token_id])]
    ids = np.concatenate(parts).astype(np.int64)
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
