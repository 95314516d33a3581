"""The contract every bioseq tokenizer follows, and its ``tokenizer.json``-style file format.

A tokenizer maps a sequence to a 1-D ``int64`` id array and back. Subclasses implement only
``_encode_body`` (sequence -> ids, no special tokens), ``_decode_body`` (ids -> text) and
``_config`` (what ``save`` writes); this base class adds special tokens, truncation, batching with
padding and attention masks, and persistence, so every tokenizer behaves the same::

    tok = get_tokenizer("dna-char")
    ids = tok.encode("ACGTN")                          # (L,) int64, with the template's specials
    batch = tok.encode_batch(seqs, padding="longest", pad_to_multiple_of=8, return_tensors="pt")
    batch.input_ids, batch.attention_mask              # (B, L) long, (B, L) bool
    tok.save("my_tokenizer.json"); load_tokenizer("my_tokenizer.json")

File format (JSON, one object)::

    {"format": "bioseq.tokenizer", "version": 1, "type": "<registered type>", "name": "...",
     "vocab": [...], "special_tokens": {"pad": "[PAD]", ...},
     "template": {"prefix": ["cls"], "suffix": ["sep"]}, ...type-specific keys...}

Special tokens are named by role (``cls sep bos eos mask pad unk``); ``template`` lists the roles
added before and after a sequence when ``add_special_tokens=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bioseq.io.atomic import atomic_file
from bioseq.io.errors import UserError

FORMAT = "bioseq.tokenizer"
FORMAT_VERSION = 1
SPECIAL_ROLES = ("cls", "sep", "bos", "eos", "mask", "pad", "unk")

_TYPES: dict[str, type[Tokenizer]] = {}


class TokenizerError(UserError):
    """Input a tokenizer cannot encode (the message names the position and the character)."""


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make ``cls`` loadable from files whose ``type`` is ``cls.type_name``."""
    _TYPES[cls.type_name] = cls
    return cls


def as_bytes(seq: str | bytes | np.ndarray) -> np.ndarray:
    """View a sequence as a ``uint8`` array of ASCII bytes (no copy for bytes / arrays)."""
    if isinstance(seq, str):
        try:
            seq = seq.encode("ascii")
        except UnicodeEncodeError as e:
            raise TokenizerError(f"non-ASCII character {seq[e.start]!r} at position {e.start}") from None
    if isinstance(seq, (bytes, bytearray, memoryview)):
        return np.frombuffer(seq, dtype=np.uint8)
    arr = np.asarray(seq)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise TypeError(f"expected str, bytes or a 1-D uint8 array, got {arr.dtype} array of shape {arr.shape}")
    return arr


def first_bad(raw: np.ndarray, bad: np.ndarray, what: str) -> TokenizerError:
    """Build the error for the first ``True`` in ``bad``, naming its character and position."""
    pos = int(np.argmax(bad))
    return TokenizerError(f"{what} {chr(int(raw[pos]))!r} at position {pos}")


def per_row(fn, seqs: Sequence[Any]) -> list[Any]:
    """``[fn(s) for s in seqs]``, a :class:`TokenizerError` naming the failing sequence's index."""
    out = []
    for i, seq in enumerate(seqs):
        try:
            out.append(fn(seq))
        except TokenizerError as e:
            raise TokenizerError(f"sequence {i}: {e}") from None
    return out


@dataclass
class BatchEncoding:
    """A padded batch. ``input_ids`` ``(B, L)`` int64, ``attention_mask`` ``(B, L)`` bool (True =
    real token), ``special_tokens_mask`` ``(B, L)`` bool (True = special or padding: never mask these
    for MLM), ``segment_ids`` ``(B, L)`` int64 for multi-segment tokenizers (else None). Arrays are
    numpy, or torch tensors with ``return_tensors="pt"``."""

    input_ids: Any
    attention_mask: Any
    special_tokens_mask: Any
    segment_ids: Any = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [k for k in ("input_ids", "attention_mask", "special_tokens_mask", "segment_ids") if getattr(self, k) is not None]


class Tokenizer:
    """Base class: vocabulary, special tokens, templates, batching and persistence.

    Args:
        vocab: token strings; a token's id is its index.
        special_tokens: role (``cls sep bos eos mask pad unk``) -> token string in ``vocab``.
        template: ``{"prefix": [roles], "suffix": [roles]}`` added by ``add_special_tokens=True``.
        regular_tokens: the tokens that stand for real sequence content (e.g. ``A C G T``); their
            ids are what BERT-style masking draws random replacements from.
        name: a label for messages and ``info``.
    """

    type_name: ClassVar[str] = ""

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: dict[str, str],
        template: dict[str, list[str]] | None = None,
        regular_tokens: Sequence[str] | None = None,
        name: str = "",
    ) -> None:
        self.vocab = list(vocab)
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            dup = sorted({t for t in self.vocab if self.vocab.count(t) > 1})
            raise ValueError(f"duplicate tokens in vocabulary: {dup}")
        for role, tok in special_tokens.items():
            if role not in SPECIAL_ROLES:
                raise ValueError(f"unknown special-token role {role!r}; roles are {SPECIAL_ROLES}")
            if tok not in self.token_to_id:
                raise ValueError(f"special token {role}={tok!r} is not in the vocabulary")
        self.special_tokens = dict(special_tokens)
        self.template = {"prefix": list((template or {}).get("prefix", [])), "suffix": list((template or {}).get("suffix", []))}
        for role in self.template["prefix"] + self.template["suffix"]:
            if role not in self.special_tokens:
                raise ValueError(f"template uses role {role!r} but the tokenizer has no {role} token")
        self._prefix = np.array([self.token_id(r) for r in self.template["prefix"]], dtype=np.int64)
        self._suffix = np.array([self.token_id(r) for r in self.template["suffix"]], dtype=np.int64)
        self._is_special = np.zeros(len(self.vocab), dtype=bool)
        self._is_special[[self.token_to_id[t] for t in set(self.special_tokens.values())]] = True
        regular = list(regular_tokens) if regular_tokens is not None else [t for i, t in enumerate(self.vocab) if not self._is_special[i]]
        missing = [t for t in regular if t not in self.token_to_id]
        if missing:
            raise ValueError(f"regular tokens not in the vocabulary: {missing}")
        self._regular = np.array([self.token_to_id[t] for t in regular], dtype=np.int64)
        self.name = name
        self.padding_side = "right"

    # ------------------------------------------------------------------ ids of special tokens
    def token_id(self, role: str) -> int:
        """Id of the special token with this role (``pad``, ``mask`` ...); KeyError if absent."""
        if role not in self.special_tokens:
            raise KeyError(f"tokenizer {self.name or self.type_name!r} has no {role} token")
        return self.token_to_id[self.special_tokens[role]]

    def _maybe_id(self, role: str) -> int | None:
        return self.token_to_id[self.special_tokens[role]] if role in self.special_tokens else None

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int | None:
        return self._maybe_id("pad")

    @property
    def mask_token_id(self) -> int | None:
        return self._maybe_id("mask")

    @property
    def unk_token_id(self) -> int | None:
        return self._maybe_id("unk")

    @property
    def cls_token_id(self) -> int | None:
        return self._maybe_id("cls")

    @property
    def sep_token_id(self) -> int | None:
        return self._maybe_id("sep")

    @property
    def bos_token_id(self) -> int | None:
        return self._maybe_id("bos")

    @property
    def eos_token_id(self) -> int | None:
        return self._maybe_id("eos")

    @property
    def regular_token_ids(self) -> np.ndarray:
        """Ids of real sequence tokens (no specials, no ambiguity codes): the pool BERT-style
        masking draws its random replacements from."""
        return self._regular.copy()

    @property
    def special_token_ids(self) -> np.ndarray:
        return np.flatnonzero(self._is_special).astype(np.int64)

    def special_tokens_mask(self, ids: np.ndarray) -> np.ndarray:
        """Boolean array, True where ``ids`` is a special token (never a masking target)."""
        return self._is_special[np.asarray(ids, dtype=np.int64)]

    # ------------------------------------------------------------------ subclass hooks
    def _encode_body(self, seq: Any) -> np.ndarray:
        """Sequence -> ``(L,)`` int64 ids, no special tokens."""
        raise NotImplementedError

    def _decode_body(self, ids: np.ndarray) -> str:
        """Ids of regular tokens (specials already removed or rendered) -> text."""
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        """Type-specific keys that ``save`` writes and ``from_config`` reads back."""
        return {}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError

    # ------------------------------------------------------------------ encode / decode
    def encode(
        self,
        seq: Any,
        *,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool = False,
    ) -> np.ndarray:
        """Encode one sequence to a ``(L,)`` int64 id array.

        Args:
            seq: the sequence (str, bytes or a uint8 ASCII array).
            add_special_tokens: add the template's prefix/suffix tokens.
            max_length, truncation: with ``truncation=True`` cut the body (from the right) so that
                the result, specials included, is at most ``max_length`` long.
        """
        body = self._encode_body(seq)
        return self._finish(body, add_special_tokens, max_length, truncation)

    def apply_template(self, body: np.ndarray, *, max_length: int | None = None, truncation: bool = False) -> np.ndarray:
        """Add the template's special tokens to already-encoded ids (e.g. from ``encode_codes``),
        truncating the body first when asked."""
        return self._finish(np.asarray(body, dtype=np.int64), True, max_length, truncation)

    def _finish(self, body: np.ndarray, add_special_tokens: bool, max_length: int | None, truncation: bool) -> np.ndarray:
        n_special = len(self._prefix) + len(self._suffix) if add_special_tokens else 0
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length")
            if max_length < n_special:
                raise ValueError(f"max_length={max_length} leaves no room for the {n_special} special tokens")
            body = body[: max_length - n_special]
        if not add_special_tokens:
            return body
        return np.concatenate([self._prefix, body, self._suffix])

    def __call__(self, seqs: Any, **kwargs: Any) -> np.ndarray | BatchEncoding:
        """``tok("ACGT")`` -> ids; ``tok(["ACGT", "AC"], padding=...)`` -> :class:`BatchEncoding`."""
        if isinstance(seqs, (list, tuple)) and not self._is_single(seqs):
            return self.encode_batch(seqs, **kwargs)
        return self.encode(seqs, **kwargs)

    def _is_single(self, seqs: Any) -> bool:
        return False

    def decode(self, ids: Any, *, skip_special_tokens: bool = False) -> str:
        """Ids -> text. Special tokens render as their strings (``[CLS]``) unless skipped; padding
        is always dropped when ``skip_special_tokens``."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim > 1:
            raise TokenizerError(f"decode takes one sequence of ids, got shape {ids.shape}; use decode_batch for a batch")
        self._check_ids(ids)
        special = self._rendered_special(ids)
        if skip_special_tokens:
            return self._decode_body(ids[~special])
        if not special.any():
            return self._decode_body(ids)
        # render runs of regular tokens with _decode_body, specials by name
        out, start = [], 0
        for pos in np.flatnonzero(special):
            if pos > start:
                out.append(self._decode_body(ids[start:pos]))
            out.append(self.vocab[ids[pos]])
            start = pos + 1
        if start < len(ids):
            out.append(self._decode_body(ids[start:]))
        return "".join(out)

    def _rendered_special(self, ids: np.ndarray) -> np.ndarray:
        """Which ids ``decode`` renders by name (or drops when skipping specials)."""
        return self._is_special[ids]

    def _check_ids(self, ids: np.ndarray) -> None:
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            pos = int(np.argmax(bad))
            raise TokenizerError(f"id {int(ids[pos])} at position {pos} is outside the vocabulary (size {self.vocab_size})")

    def decode_batch(self, ids: Any, attention_mask: Any = None, *, skip_special_tokens: bool = True) -> list[str]:
        """Decode each row of a padded ``(B, L)`` batch (padding removed via ``attention_mask``)."""
        ids = np.asarray(ids)
        mask = np.ones(ids.shape, dtype=bool) if attention_mask is None else np.asarray(attention_mask, dtype=bool)
        return [self.decode(row[m], skip_special_tokens=skip_special_tokens) for row, m in zip(ids, mask, strict=True)]

    def convert_ids_to_tokens(self, ids: Any) -> list[str]:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._check_ids(ids)
        return [self.vocab[i] for i in ids.tolist()]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> np.ndarray:
        unknown = [t for t in tokens if t not in self.token_to_id]
        if unknown:
            raise TokenizerError(f"tokens not in the vocabulary: {unknown[:5]}")
        return np.array([self.token_to_id[t] for t in tokens], dtype=np.int64)

    # ------------------------------------------------------------------ batching
    def encode_batch(
        self,
        seqs: Sequence[Any],
        *,
        add_special_tokens: bool = True,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """Encode many sequences into one padded batch.

        Args:
            seqs: the sequences.
            padding: ``"longest"`` (or True) pads to the longest row, ``"max_length"`` to
                ``max_length``; ``pad_to_multiple_of`` then rounds the length up (8 or 64 suit GPU
                kernels). ``False`` requires equal lengths.
            max_length, truncation: as in :meth:`encode`.
            return_tensors: None for numpy, ``"pt"`` for torch tensors.
        """
        flat, lengths = self._encode_bodies(seqs)
        return self._assemble(flat, lengths, add_special_tokens=add_special_tokens, padding=padding, max_length=max_length,
                              truncation=truncation, pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors)

    def _encode_bodies(self, seqs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """All bodies concatenated ``(sum L_i,)`` and their lengths ``(B,)``; subclasses with a
        lookup table do this in one pass over the joined input."""
        bodies = per_row(self._encode_body, seqs)
        lengths = np.array([len(b) for b in bodies], dtype=np.int64)
        return (np.concatenate(bodies) if bodies else np.zeros(0, dtype=np.int64)), lengths

    def pad(
        self,
        rows: Sequence[np.ndarray],
        *,
        padding: bool | str = "longest",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        segment_rows: Sequence[np.ndarray] | None = None,
    ) -> BatchEncoding:
        """Pad already-encoded rows (specials included) to one ``(B, L)`` batch."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        flat = np.concatenate(rows).astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
        segs = None
        if segment_rows is not None:
            segs = np.concatenate(segment_rows).astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
        return self._assemble(flat, lengths, add_special_tokens=False, padding=padding, max_length=max_length,
                              pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors, flat_segments=segs)

    def _assemble(
        self,
        flat: np.ndarray,
        lengths: np.ndarray,
        *,
        add_special_tokens: bool,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        flat_segments: np.ndarray | None = None,
    ) -> BatchEncoding:
        """Concatenated bodies + lengths -> padded batch, with truncation and template specials,
        all by array scatter (no per-row Python)."""
        B = len(lengths)
        n_pre = len(self._prefix) if add_special_tokens else 0
        n_suf = len(self._suffix) if add_special_tokens else 0
        keep = lengths
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length")
            if max_length < n_pre + n_suf:
                raise ValueError(f"max_length={max_length} leaves no room for the {n_pre + n_suf} special tokens")
            keep = np.minimum(lengths, max_length - n_pre - n_suf)
            if (keep < lengths).any():
                # position of every flat id inside its row; keep the first keep[r] of row r
                starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
                inside = np.arange(len(flat)) - starts < np.repeat(keep, lengths)
                flat = flat[inside]
                flat_segments = flat_segments[inside] if flat_segments is not None else None
        total = keep + n_pre + n_suf  # (B,) row lengths with specials
        longest = int(total.max()) if B else 0
        if padding in (True, "longest"):
            width = longest
        elif padding == "max_length":
            if max_length is None:
                raise ValueError('padding="max_length" needs max_length')
            if longest > max_length:
                raise TokenizerError(f"a row has {longest} tokens > max_length={max_length}; pass truncation=True")
            width = max_length
        elif padding in (False, None, "do_not_pad"):
            if len(set(total.tolist())) > 1:
                raise TokenizerError(f"rows have different lengths {sorted(set(total.tolist()))[:5]} and padding=False")
            width = longest
        else:
            raise ValueError(f"unknown padding {padding!r}; use 'longest', 'max_length' or False")
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        if (total < width).any() and self.pad_token_id is None:
            raise TokenizerError(f"tokenizer {self.name!r} has no pad token; cannot pad")
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        ids = np.full((B, width), pad_id, dtype=np.int64)
        col = np.arange(width)[None, :]  # (1, L)
        first = (width - total)[:, None] if self.padding_side == "left" else np.zeros((B, 1), dtype=np.int64)  # (B, 1)
        mask = (col >= first) & (col < first + total[:, None])  # (B, L) real tokens
        body = (col >= first + n_pre) & (col < first + n_pre + keep[:, None])
        ids[body] = flat  # row-major scatter keeps every row's order
        rows = np.arange(B)
        for j, t in enumerate(self._prefix[:n_pre]):
            ids[rows, first[:, 0] + j] = t
        for j, t in enumerate(self._suffix[:n_suf]):
            ids[rows, first[:, 0] + n_pre + keep + j] = t
        segs = None
        if flat_segments is not None:
            segs = np.zeros((B, width), dtype=np.int64)
            segs[body] = flat_segments
        special = np.take(self._is_special, ids) | ~mask  # take: faster than fancy indexing
        out = BatchEncoding(ids, mask, special, segs)
        if return_tensors == "pt":
            import torch

            out = BatchEncoding(*(None if a is None else torch.from_numpy(a) for a in (out.input_ids, out.attention_mask, out.special_tokens_mask, out.segment_ids)))
        elif return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be None, 'np' or 'pt', not {return_tensors!r}")
        return out

    # ------------------------------------------------------------------ nucleotide strand
    @property
    def complement_map(self) -> list[int] | None:
        """``id -> id`` of the reverse-complement token (an involution), or None where the
        tokenizer has no strand (protein, BPE)."""
        return None

    def reverse_complement(self, ids: Any) -> np.ndarray:
        """Token-level reverse complement along the last axis (specials map to themselves, so a
        ``[CLS] ... [SEP]`` row becomes ``[SEP] ... [CLS]``; reverse unpadded rows)."""
        cmap = self.complement_map
        if cmap is None:
            raise TokenizerError(f"tokenizer {self.name or self.type_name!r} has no reverse complement")
        return np.asarray(cmap, dtype=np.int64)[np.asarray(ids, dtype=np.int64)][..., ::-1].copy()

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "type": self.type_name,
            "name": self.name,
            "vocab": self.vocab,
            "special_tokens": self.special_tokens,
            "template": self.template,
            **self._config(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as one JSON file (atomically: temp name, then rename)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "tokenizer.json"
        with atomic_file(path) as tmp, open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load any tokenizer file (dispatches on its ``type``)."""
        return load_tokenizer(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer file written by :meth:`Tokenizer.save` (or a folder holding ``tokenizer.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"tokenizer file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: not valid JSON ({e})") from None
    except IsADirectoryError:
        raise TokenizerError(f"{path}: is a directory, not a tokenizer file") from None
    return tokenizer_from_dict(cfg, source=str(path))


def tokenizer_from_dict(cfg: dict[str, Any], source: str = "<dict>") -> Tokenizer:
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise TokenizerError(f"{source}: not a bioseq tokenizer file (expected \"format\": \"{FORMAT}\")")
    version = cfg.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise TokenizerError(f"{source}: tokenizer format version {version!r} is not supported (this bioseq reads versions 1..{FORMAT_VERSION})")
    kind = cfg.get("type")
    if kind not in _TYPES:
        raise TokenizerError(f"{source}: unknown tokenizer type {kind!r}; known: {sorted(_TYPES)}")
    try:
        return _TYPES[kind].from_config(cfg)
    except TokenizerError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise TokenizerError(f"{source}: malformed {kind} tokenizer ({type(e).__name__}: {e})") from None
