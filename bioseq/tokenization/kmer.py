"""k-mer DNA tokenizers (DNABERT-style overlapping, Nucleotide-Transformer-style non-overlapping).

Vocabulary (ids)::

    0-6     [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK]     (HyenaDNA's specials)
    7-11    A C G T N                                         single nucleotides (tails)
    12-     the 4**k k-mers in lexicographic order: id = 12 + base-4 index (AAA..A = 12)

(for ``k = 1`` the k-mers are the single nucleotides, ids 7-10).

Windows start every ``stride`` bases (``stride=1`` overlapping, ``stride=k`` non-overlapping). The
bases after the last whole window become single-nucleotide tokens, so decoding always gives back
the sequence. A window holding anything but A/C/G/T becomes ``[UNK]`` (``n_policy="unk"``, decoded
as ``N`` * k) or raises (``n_policy="error"``). Encoding goes through :mod:`bioseq.alphabet` codes
and builds the base-4 index with k vectorised shift-adds over strided slices: no Python loop over
positions.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from bioseq import alphabet
from bioseq.tokenization.base import Tokenizer, TokenizerError, as_bytes, register_tokenizer
from bioseq.tokenization.char import HYENA_ROLES, HYENA_SPECIALS

MAX_K = 8
_SINGLE = 7  # id of single-nucleotide A; C G T N follow


@register_tokenizer
class KmerTokenizer(Tokenizer):
    """k-mer tokenizer (see the module docstring).

    Args:
        k: k-mer length, 1..8.
        stride: distance between window starts, 1 (overlapping) .. k (non-overlapping).
        n_policy: ``"unk"`` or ``"error"`` for windows containing non-ACGT bases.
        template: special tokens added by ``encode`` (default: ``[CLS] ... [SEP]`` like DNABERT).
        name: label.
    """

    type_name = "kmer"

    def __init__(self, k: int, stride: int = 1, n_policy: str = "unk", template: dict[str, list[str]] | None = None, name: str = "") -> None:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
        if not 1 <= stride <= k:
            raise ValueError(f"stride must be in 1..k={k}, got {stride}")
        if n_policy not in ("unk", "error"):
            raise ValueError(f"n_policy must be 'unk' or 'error', not {n_policy!r}")
        self.k, self.stride, self.n_policy = k, stride, n_policy
        kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)] if k > 1 else []
        vocab = HYENA_SPECIALS + list("ACGTN") + kmers
        self.kmer_offset = 12 if k > 1 else _SINGLE
        regular = kmers if k > 1 else list("ACGT")
        default_name = f"dna-kmer-{k}" + ("" if stride == 1 else "-nonoverlap" if stride == k else f"-stride{stride}")
        super().__init__(vocab, HYENA_ROLES, template if template is not None else {"prefix": ["cls"], "suffix": ["sep"]}, regular, name or default_name)
        self._build_tables()

    def _build_tables(self) -> None:
        k, n = self.k, self.vocab_size
        # decode table: (vocab, k) bytes and each token's length; [UNK] decodes to N * k
        self._tok_bytes = np.full((n, k), ord("N"), dtype=np.uint8)
        self._tok_len = np.ones(n, dtype=np.int64)
        for i, t in enumerate(self.vocab):
            if len(t) <= k and not self._is_special[i]:
                self._tok_bytes[i, : len(t)] = np.frombuffer(t.encode(), dtype=np.uint8)
                self._tok_len[i] = len(t)
        self._is_kmer = np.zeros(n, dtype=bool)
        self._is_kmer[self.kmer_offset : self.kmer_offset + 4**k] = True
        self._is_kmer[self.unk_token_id] = True
        self._tok_len[self._is_kmer] = k
        # complement: k-mer index -> index of its reverse complement (digits reversed, 3 - d)
        idx = np.arange(4**k, dtype=np.int64)
        rc = np.zeros_like(idx)
        for j in range(k):
            rc = rc * 4 + (3 - ((idx >> (2 * j)) & 3))
        cmap = np.arange(n, dtype=np.int64)
        cmap[_SINGLE : _SINGLE + 4] = _SINGLE + np.array([3, 2, 1, 0])
        cmap[self.kmer_offset : self.kmer_offset + 4**k] = self.kmer_offset + rc
        self._cmap = cmap

    # ------------------------------------------------------------------ encode
    def _encode_body(self, seq: Any) -> np.ndarray:
        raw = as_bytes(seq)
        try:
            codes = alphabet.encode(raw)
        except alphabet.InvalidBaseError as e:
            raise TokenizerError(f"{e} (tokenizer {self.name!r})") from None
        return self._encode_codes(codes)

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Genome-store ``uint8`` codes -> ids, no specials, soft-mask bit ignored. ``(L,)`` gives
        ``(T,)``; a batch of equal windows ``(B, L)`` gives ``(B, T)`` in one vectorised pass."""
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim not in (1, 2):
            raise TypeError(f"codes must be a 1-D or 2-D uint8 array (bioseq.alphabet), got {codes.dtype} {codes.shape}")
        bad = (codes & alphabet.CODE_MASK) > 15
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), codes.shape)
            row = f"row {where[0]}, " if codes.ndim == 2 else ""
            raise TokenizerError(f"invalid nucleotide code {int(codes[where])} at {row}position {where[-1]} (tokenizer {self.name!r})")
        return self._encode_codes(codes)

    def _encode_codes(self, codes: np.ndarray) -> np.ndarray:
        c = (codes & alphabet.CODE_MASK).astype(np.int64)  # (..., L) 0-3 ACGT, 4+ anything else
        L, k, s = c.shape[-1], self.k, self.stride
        n_win = (L - k) // s + 1 if L >= k else 0
        covered = (n_win - 1) * s + k if n_win else 0
        idx = np.zeros(c.shape[:-1] + (n_win,), dtype=np.int64)
        nonacgt = np.zeros(idx.shape, dtype=bool)
        for j in range(k):  # k shift-adds over strided views: column j of every window
            col = c[..., j : j + (n_win - 1) * s + 1 : s] if n_win else c[..., :0]
            idx = (idx << 2) | (col & 3)
            nonacgt |= col > 3
        ids = self.kmer_offset + idx
        if nonacgt.any():
            if self.n_policy == "error":
                *row, w = np.unravel_index(int(np.argmax(nonacgt)), nonacgt.shape)
                window = c[tuple(row)][w * s : w * s + k]
                pos = w * s + int(np.argmax(window > 3))
                base = alphabet.decode(codes[tuple(row)][pos : pos + 1])
                where = f"row {row[0]}, " if row else ""
                raise TokenizerError(
                    f"non-ACGT base {base!r} at {where}position {pos} in k-mer window {w} "
                    f"(tokenizer {self.name!r}, n_policy='error')"
                )
            ids[nonacgt] = self.unk_token_id
        tail_ids = _SINGLE + np.minimum(c[..., covered:], 4)  # leftover bases as A C G T N
        return np.concatenate([ids, tail_ids], axis=-1)

    # ------------------------------------------------------------------ decode
    def _rendered_special(self, ids: np.ndarray) -> np.ndarray:
        # [UNK] stands for a window of k bases: it decodes in place as N * k
        return self._is_special[ids] & (ids != self.unk_token_id)

    def _decode_body(self, ids: np.ndarray) -> str:
        if len(ids) == 0:
            return ""
        kmer = self._is_kmer[ids]
        length = self._tok_len[ids]
        # where each token starts in the output: a k-mer right after a k-mer is ``stride`` further
        # on (they overlap by k - stride); anything else starts where the previous token ends
        follows = kmer[1:] & kmer[:-1]
        advance = np.where(follows, self.stride, length[:-1])
        starts = np.concatenate([[0], np.cumsum(advance)])
        out = np.full(int(starts[-1] + length[-1]), ord("N"), dtype=np.uint8)
        # scatter every known token's bases; overlapping windows agree, so order does not matter and
        # a base hidden by one [UNK] window is recovered from any neighbour that covers it
        real = ids != self.unk_token_id
        col = np.arange(self.k)[None, :]
        take = col < length[real][:, None]
        pos = starts[real][:, None] + col
        out[pos[take]] = self._tok_bytes[ids[real]][take]
        return out.tobytes().decode("ascii")

    # ------------------------------------------------------------------ strand
    @property
    def complement_map(self) -> list[int]:
        return self._cmap.tolist()

    def reverse_complement(self, ids: Any) -> np.ndarray:
        """Token-level reverse complement. Exact when the body is all k-mers (no single-base tail:
        ``(L - k) % stride == 0``) or all single bases; mixed bodies raise, since their reverse is
        not the encoding of the reverse-complement sequence."""
        arr = np.asarray(ids, dtype=np.int64)
        kmer = self._is_kmer[arr] & (arr != self.unk_token_id)
        single = (arr >= _SINGLE) & (arr < _SINGLE + 5) & (self.k > 1)
        if kmer.any() and single.any():
            raise TokenizerError(
                f"reverse complement is not defined for a {self.k}-mer encoding with a single-nucleotide tail "
                f"(use lengths with (L - {self.k}) % {self.stride} == 0)"
            )
        return super().reverse_complement(arr)

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {"k": self.k, "stride": self.stride, "n_policy": self.n_policy}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> KmerTokenizer:
        tok = cls(cfg["k"], cfg.get("stride", 1), cfg.get("n_policy", "unk"), cfg.get("template"), cfg.get("name", ""))
        if cfg.get("vocab") is not None and cfg["vocab"] != tok.vocab:
            raise TokenizerError(f"k-mer tokenizer file: stored vocab does not match k={tok.k}")
        return tok


def kmer_tokenizer(k: int = 6, *, overlapping: bool = True, n_policy: str = "unk") -> KmerTokenizer:
    """Overlapping (stride 1, DNABERT) or non-overlapping (stride k, Nucleotide Transformer) k-mers."""
    return KmerTokenizer(k, 1 if overlapping else k, n_policy)
