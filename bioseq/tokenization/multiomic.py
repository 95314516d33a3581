"""One vocabulary for DNA, RNA and protein, with modality tags.

DNA ``A`` and alanine ``A`` are different tokens (``A`` and ``protein:A``), and each segment starts with
its modality tag, so a model reading ``<protein> M K ... <dna> A C G T`` always knows what a letter
means. Default layout (ids)::

    0-6    [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK]    (HyenaDNA's specials)
    7-11   A C G T N                                        (nucleotides: DNA ids = dna-char ids)
    12-14  <dna> <rna> <protein>
    15-39  protein:A C D E F G H I K L M N P Q R S T V W Y X B Z U O

DNA and RNA share the nucleotide tokens (the tag tells them apart): RNA's ``U`` is token ``T``
and decodes back to ``U`` inside an RNA segment. DNA segment ids equal ``dna-char`` ids, so genome
store windows go through the same lookup table.

``encode_segments([("protein", "MKV"), ("dna", "ACGT")])`` gives
``[CLS] <protein> M K V [SEP] <dna> A C G T [SEP]`` and segment ids ``0 0 0 0 0 0 1 1 1 1 1 1``
(``[CLS]`` belongs to segment 0). Each modality reads its letters through its own
:class:`~bioseq.tokenization.char.CharTokenizer` (same ambiguity/U->T/lowercase rules), then a
``token_map`` lookup table sends those ids into the joint vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bioseq.tokenization.base import (
    BatchEncoding,
    Tokenizer,
    TokenizerError,
    register_tokenizer,
    tokenizer_from_dict,
)
from bioseq.tokenization.char import (
    HYENA_ROLES,
    HYENA_SPECIALS,
    STANDARD_AMINO_ACIDS,
    CharTokenizer,
    dna_char,
    rna_char,
)

JOINT_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWYXBZUO"
Segment = tuple[str, Any]


@register_tokenizer
class MultiOmicTokenizer(Tokenizer):
    """Joint nucleotide + peptide tokenizer with modality tags and segment ids.

    Args:
        modalities: modality name -> its character tokenizer (only its one-character tokens and
            its reading rules are used).
        name: label.
        default_modality: what ``encode("ACGT")`` assumes for a bare string.
    """

    type_name = "multiomic"

    def __init__(
        self,
        vocab: Sequence[str],
        modalities: dict[str, CharTokenizer],
        token_maps: dict[str, dict[str, str]],
        name: str = "multiomic",
        default_modality: str = "dna",
    ) -> None:
        if default_modality not in modalities:
            raise ValueError(f"default modality {default_modality!r} is not one of {list(modalities)}")
        if set(token_maps) != set(modalities):
            raise ValueError("token_maps must have one entry per modality")
        self.modalities = dict(modalities)
        self.token_maps = {m: dict(tm) for m, tm in token_maps.items()}
        self.default_modality = default_modality
        regular = []
        for m, sub in self.modalities.items():
            regular += [self.token_maps[m][sub.vocab[i]] for i in sub.regular_token_ids if sub.vocab[i] in self.token_maps[m]]
        super().__init__(vocab, HYENA_ROLES, {"prefix": ["cls"], "suffix": []}, list(dict.fromkeys(regular)), name)
        self.tag_ids = {m: self.token_to_id[f"<{m}>"] for m in self.modalities}
        self._is_special[list(self.tag_ids.values())] = True
        self._tag_to_modality = {v: k for k, v in self.tag_ids.items()}
        # per modality: sub-tokenizer id -> joint id (sub [UNK] -> joint [UNK]) and joint id -> letter
        self._remap: dict[str, np.ndarray] = {}
        self._mod_dec: dict[str, np.ndarray] = {}
        self._dec = np.full(self.vocab_size, ord("?"), dtype=np.uint8)
        for m, sub in self.modalities.items():
            remap = np.full(sub.vocab_size, -1, dtype=np.int64)
            dec = np.full(self.vocab_size, ord("?"), dtype=np.uint8)
            for letter, joint in self.token_maps[m].items():
                if letter not in sub.token_to_id or joint not in self.token_to_id:
                    raise ValueError(f"modality {m}: token map entry {letter!r} -> {joint!r} is not in the vocabularies")
                remap[sub.token_to_id[letter]] = self.token_to_id[joint]
                dec[self.token_to_id[joint]] = ord(letter)
            unmapped = [t for t in sub.vocab if len(t) == 1 and t not in self.token_maps[m]]
            if unmapped:
                raise ValueError(f"modality {m}: letters {unmapped} have no joint token")
            if sub.unk_token_id is not None:
                remap[sub.unk_token_id] = self.unk_token_id
            self._remap[m], self._mod_dec[m] = remap, dec
            # the generic decode table: first modality to claim a token names it
            free = (self._dec == ord("?")) & (dec != ord("?"))
            self._dec[free] = dec[free]

    # ------------------------------------------------------------------ per-modality pieces
    def _sub(self, modality: str) -> CharTokenizer:
        if modality not in self.modalities:
            raise TokenizerError(f"unknown modality {modality!r}; this tokenizer knows {list(self.modalities)}")
        return self.modalities[modality]

    def encode_body(self, seq: Any, modality: str) -> np.ndarray:
        """Ids of one segment's letters (no tag, no specials)."""
        sub = self._sub(modality)
        return self._remap[modality][sub._encode_body(seq)]

    def encode_codes(self, codes: np.ndarray, modality: str = "dna") -> np.ndarray:
        """Genome-store ``uint8`` codes -> joint ids of ``modality`` (no tag)."""
        sub = self._sub(modality)
        return self._remap[modality][sub.encode_codes(codes)]

    def modality_token_ids(self, modality: str) -> np.ndarray:
        """Regular (random-replacement) ids of one modality, e.g. to corrupt DNA only with DNA."""
        self._sub(modality)  # validates the name
        sub = self.modalities[modality]
        joint = [self.token_to_id[self.token_maps[modality][sub.vocab[i]]] for i in sub.regular_token_ids]
        return np.array(joint, dtype=np.int64)

    def modality_token_mask(self, modality: str) -> np.ndarray:
        """``(vocab_size,)`` bool: the tokens a ``modality`` segment can hold (its letters; shared
        nucleotide tokens count for both DNA and RNA). Index it with ids for a per-token mask."""
        self._sub(modality)  # validates the name
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[[self.token_to_id[t] for t in self.token_maps[modality].values()]] = True
        return mask

    def _encode_body(self, seq: Any) -> np.ndarray:
        return self.encode_body(seq, self.default_modality)

    def _decode_body(self, ids: np.ndarray) -> str:
        return self._dec[ids].tobytes().decode("ascii")

    # ------------------------------------------------------------------ segments
    def _segments(self, item: Any, modality: str | None) -> list[Segment]:
        if isinstance(item, (str, bytes, np.ndarray)):
            return [(modality or self.default_modality, item)]
        segs = list(item)
        for k, s in enumerate(segs):
            if not (isinstance(s, (tuple, list)) and len(s) == 2 and isinstance(s[0], str)):
                raise TokenizerError(f"segment {k} must be a (modality, sequence) pair, got {type(s).__name__}")
        return segs

    def _is_single(self, seqs: Any) -> bool:
        return bool(seqs) and all(isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str) and s[0] in self.modalities for s in seqs)

    def encode_segments(
        self,
        segments: Sequence[Segment] | str,
        *,
        modality: str | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``[(modality, seq), ...]`` into one tagged sequence.

        Returns:
            ``(ids, segment_ids)``, both ``(L,)`` int64. Layout ``[CLS] (<tag> body [SEP])*``;
            without special tokens ``(<tag> body)*`` (tags always stay: they carry the meaning).
            Truncation trims the longest bodies first until the total fits ``max_length``.
        """
        segs = self._segments(segments, modality)
        if not segs:
            raise TokenizerError("no segments to encode")
        bodies = []
        for k, (m, s) in enumerate(segs):
            try:
                bodies.append(self.encode_body(s, m))
            except TokenizerError as e:
                raise TokenizerError(f"segment {k} ({m}): {e}") from None
        n_fixed = len(segs) * (2 if add_special_tokens else 1) + (1 if add_special_tokens else 0)
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length")
            budget = max_length - n_fixed
            if budget < 0:
                raise ValueError(f"max_length={max_length} leaves no room for {n_fixed} tag/special tokens")
            keep = _longest_first(np.array([len(b) for b in bodies]), budget)
            bodies = [b[:n] for b, n in zip(bodies, keep, strict=True)]
        sep = [self.sep_token_id] if add_special_tokens else []
        parts, seg_ids = ([np.array([self.cls_token_id])] if add_special_tokens else []), []
        for k, ((m, _), body) in enumerate(zip(segs, bodies, strict=True)):
            part = np.concatenate([[self.tag_ids[m]], body, sep]).astype(np.int64)
            parts.append(part)
            seg_ids.append(np.full(len(part), k, dtype=np.int64))
        if add_special_tokens:
            seg_ids.insert(0, np.zeros(1, dtype=np.int64))
        return np.concatenate(parts), np.concatenate(seg_ids)

    def encode(self, seq: Any, *, modality: str | None = None, add_special_tokens: bool = True,
               max_length: int | None = None, truncation: bool = False) -> np.ndarray:
        """Ids of a bare sequence (``modality`` or the default) or a list of segments."""
        return self.encode_segments(seq, modality=modality, add_special_tokens=add_special_tokens, max_length=max_length, truncation=truncation)[0]

    def encode_batch(self, seqs: Sequence[Any], *, modality: str | None = None, add_special_tokens: bool = True,
                     padding: bool | str = "longest", max_length: int | None = None, truncation: bool = False,
                     pad_to_multiple_of: int | None = None, return_tensors: str | None = None) -> BatchEncoding:
        """Like :meth:`Tokenizer.encode_batch`, items being segment lists; fills ``segment_ids``."""
        pairs = [self.encode_segments(s, modality=modality, add_special_tokens=add_special_tokens, max_length=max_length, truncation=truncation) for s in seqs]
        return self.pad([p[0] for p in pairs], segment_rows=[p[1] for p in pairs], padding=padding, max_length=max_length,
                        pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors)

    def decode_segments(self, ids: Any) -> list[Segment]:
        """Split ids at modality tags: ``[(modality, text), ...]`` (specials dropped)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_ids(ids)
        tag_pos = [int(p) for p in np.flatnonzero(np.isin(ids, list(self.tag_ids.values())))]
        out = []
        for a, b in zip(tag_pos, tag_pos[1:] + [len(ids)], strict=True):
            body = ids[a + 1 : b]
            m = self._tag_to_modality[int(ids[a])]
            out.append((m, self._mod_dec[m][body[~self._is_special[body]]].tobytes().decode("ascii")))
        return out

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        subs = {}
        for m, sub in self.modalities.items():
            d = sub.to_dict()
            subs[m] = {k: d[k] for k in d if k not in ("format", "version")}
        return {"default_modality": self.default_modality, "modalities": subs, "token_maps": self.token_maps}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> MultiOmicTokenizer:
        from bioseq.tokenization.base import FORMAT, FORMAT_VERSION

        subs = {m: tokenizer_from_dict({"format": FORMAT, "version": FORMAT_VERSION, **d}, source=f"modality {m}") for m, d in cfg["modalities"].items()}
        return cls(cfg["vocab"], subs, cfg["token_maps"], cfg.get("name", "multiomic"), cfg.get("default_modality", "dna"))


def _longest_first(lengths: np.ndarray, budget: int) -> np.ndarray:
    """Per-segment lengths after trimming the longest first so that the sum fits ``budget``."""
    if lengths.sum() <= budget:
        return lengths
    # the largest cap t with sum(min(l, t)) <= budget, then hand out the remainder one by one
    lo, hi = 0, int(lengths.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(lengths, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    keep = np.minimum(lengths, lo)
    spare = budget - int(keep.sum())
    for i in np.flatnonzero(lengths > lo)[:spare]:
        keep[i] += 1
    return keep


def multiomic(ambiguity: str = "n", *, lowercase: str = "fold", unknown: str = "error") -> MultiOmicTokenizer:
    """The default joint DNA/RNA/protein tokenizer (layout in the module docstring)."""
    vocab = HYENA_SPECIALS + list("ACGTN") + ["<dna>", "<rna>", "<protein>"] + [f"protein:{a}" for a in JOINT_AMINO_ACIDS]
    protein = CharTokenizer(
        HYENA_SPECIALS + list(JOINT_AMINO_ACIDS), HYENA_ROLES, regular_tokens=list(STANDARD_AMINO_ACIDS), name="protein",
        molecule="protein", lowercase=lowercase, unknown=unknown,
    )
    return MultiOmicTokenizer(
        vocab,
        {"dna": dna_char(ambiguity, lowercase=lowercase, unknown=unknown), "rna": rna_char(ambiguity, lowercase=lowercase, unknown=unknown), "protein": protein},
        {"dna": {c: c for c in "ACGTN"}, "rna": {"A": "A", "C": "C", "G": "G", "U": "T", "N": "N"}, "protein": {a: f"protein:{a}" for a in JOINT_AMINO_ACIDS}},
    )
