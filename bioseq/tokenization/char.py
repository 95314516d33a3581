"""One token per character: DNA/RNA single-nucleotide and protein tokenizers.

Encoding is a single gather through a 256-entry lookup table (ASCII byte -> id), and decoding the
reverse gather, so a whole chromosome encodes at memory speed with no per-character Python.

Presets:

* :func:`dna_char` -- HyenaDNA's character layout (the default DNA vocabulary of bioseq)::

      [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11

  with configurable handling of IUPAC ambiguity codes (``ambiguity="n" | "keep" | "unk" |
  "error"``), ``U`` read as ``T`` and lowercase folded (or rejected). With ``ambiguity="keep"``
  the ten ambiguity codes get their own ids 12-21 after HyenaDNA's, which stay unchanged.
  :meth:`CharTokenizer.encode_codes` maps the Zarr store's ``uint8`` codes (:mod:`bioseq.alphabet`)
  straight to ids.
* :func:`rna_char` -- the same layout with ``U`` in place of ``T`` (``T`` is read as ``U``).
* :func:`protein_esm` -- ESM-2's alphabet, ids identical to ``esm.pretrained`` models::

      <cls>=0 <pad>=1 <eos>=2 <unk>=3 L A G V S E R T D I P K Q N F Y M H W C X B U Z O . - <null_1> <mask>=32
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bioseq import alphabet
from bioseq.tokenization.base import Tokenizer, TokenizerError, as_bytes, register_tokenizer

HYENA_SPECIALS = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
HYENA_ROLES = {"cls": "[CLS]", "sep": "[SEP]", "bos": "[BOS]", "eos": "[SEP]", "mask": "[MASK]", "pad": "[PAD]", "unk": "[UNK]"}
AMBIGUITY_CODES = "RYSWKMBDHV"
DNA_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "U": "A", "N": "N",
                  "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D"}

ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTDIPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>"]
ESM_ROLES = {"cls": "<cls>", "bos": "<cls>", "eos": "<eos>", "sep": "<eos>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"

_INVALID = -1
_REJECTED = -2  # a character the tokenizer knows but was told to refuse (lowercase, ambiguity codes)


@register_tokenizer
class CharTokenizer(Tokenizer):
    """A character tokenizer driven by lookup tables.

    Every vocabulary entry that is one character is a sequence token; longer entries (``[CLS]``,
    ``<null_1>``) are special. Args beyond :class:`~bioseq.tokenization.base.Tokenizer`'s:

    Args:
        molecule: ``"dna"``, ``"rna"`` or ``"protein"``; nucleotide tokenizers get
            :meth:`encode_codes` and a reverse complement.
        aliases: character -> token read in its place (``{"U": "T"}``, ``{"R": "N"}``,
            ``{"R": "[UNK]"}``).
        lowercase: ``"fold"`` reads ``a`` as ``A``; ``"error"`` rejects lowercase.
        unknown: characters outside vocabulary and aliases: ``"error"`` (naming the character and
            position) or ``"unk"``.
        reject: character -> reason; these raise even when ``unknown="unk"`` (used for
            ``ambiguity="error"``).
        complement: token -> complementary token (nucleotides only); must be an involution.
    """

    type_name = "char"

    def __init__(
        self,
        vocab: Sequence[str],
        special_tokens: dict[str, str],
        template: dict[str, list[str]] | None = None,
        regular_tokens: Sequence[str] | None = None,
        name: str = "",
        molecule: str = "dna",
        aliases: dict[str, str] | None = None,
        lowercase: str = "fold",
        unknown: str = "error",
        reject: dict[str, str] | None = None,
        complement: dict[str, str] | None = None,
    ) -> None:
        super().__init__(vocab, special_tokens, template, regular_tokens, name)
        if molecule not in ("dna", "rna", "protein"):
            raise ValueError(f"molecule must be dna, rna or protein, not {molecule!r}")
        if lowercase not in ("fold", "error"):
            raise ValueError(f"lowercase must be 'fold' or 'error', not {lowercase!r}")
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', not {unknown!r}")
        if unknown == "unk" and self.unk_token_id is None:
            raise ValueError("unknown='unk' needs an unk special token")
        self.molecule, self.lowercase, self.unknown = molecule, lowercase, unknown
        self.aliases = dict(aliases or {})
        self.reject = dict(reject or {})
        self.complement = dict(complement) if complement else None
        # multi-character entries ([RESERVED], <null_1>) are never sequence content
        self._is_special |= np.array([len(t) != 1 for t in self.vocab])
        self._build_tables()

    def _build_tables(self) -> None:
        lut = np.full(256, _INVALID, dtype=np.int64)
        self._reasons: dict[int, str] = {}
        dec = np.full(self.vocab_size, ord("?"), dtype=np.uint8)
        for i, tok in enumerate(self.vocab):
            if len(tok) == 1:
                if ord(tok) > 127:
                    raise ValueError(f"token {tok!r} is not ASCII")
                lut[ord(tok)] = i
                dec[i] = ord(tok)
        for src, dst in self.aliases.items():
            if len(src) != 1 or dst not in self.token_to_id:
                raise ValueError(f"alias {src!r} -> {dst!r}: source must be one character and target a token")
            lut[ord(src)] = self.token_to_id[dst]
        upper = np.arange(ord("A"), ord("Z") + 1)
        if self.lowercase == "fold":
            lower_free = lut[upper + 32] == _INVALID
            lut[upper[lower_free] + 32] = lut[upper[lower_free]]
        else:
            known = lut[upper] != _INVALID
            for b in upper[known] + 32:
                if lut[b] == _INVALID:
                    lut[b] = _REJECTED
                    self._reasons[int(b)] = "lowercase character (lowercase='error')"
        for ch, reason in self.reject.items():
            for b in {ord(ch), ord(ch.lower())}:
                lut[b] = _REJECTED
                self._reasons[b] = reason
        if self.unknown == "unk":
            lut[lut == _INVALID] = self.unk_token_id
        self._lut = lut
        self._may_fail = bool((lut < 0).any())  # skip the error scan when every byte maps
        self._dec = dec
        self._code_lut = self._build_code_lut() if self.molecule != "protein" else None
        self._cmap = self._build_complement() if self.complement is not None else None

    def _build_code_lut(self) -> np.ndarray:
        """``uint8`` store code (soft-mask bit ignored) -> id, through the character table so every
        policy (ambiguity, unknown, reject) applies identically to strings and codes."""
        code_lut = np.full(256, _INVALID, dtype=np.int64)
        letters = np.frombuffer(alphabet.BASES.encode(), dtype=np.uint8)
        n = len(letters)
        code_lut[:n] = self._lut[letters]
        code_lut[alphabet.SOFTMASK : alphabet.SOFTMASK + n] = self._lut[letters]
        return code_lut

    def _build_complement(self) -> np.ndarray:
        cmap = np.arange(self.vocab_size, dtype=np.int64)
        for a, b in self.complement.items():
            if a in self.token_to_id:
                if b not in self.token_to_id:
                    raise ValueError(f"complement of {a!r} is {b!r}, which is not in the vocabulary")
                cmap[self.token_to_id[a]] = self.token_to_id[b]
        if not np.array_equal(cmap[cmap], np.arange(self.vocab_size)):
            raise ValueError("complement map is not an involution (complement of complement != identity)")
        return cmap

    # ------------------------------------------------------------------ encode / decode
    def _raise_first_bad(self, raw: np.ndarray, ids: np.ndarray, what: str = "character") -> None:
        bad = ids < 0
        pos = int(np.argmax(bad))
        b = int(raw[pos])
        reason = self._reasons.get(b, f"invalid {self.molecule} {what}") if ids[pos] == _REJECTED else f"invalid {self.molecule} {what}"
        shown = repr(chr(b)) if what == "character" else str(b)
        raise TokenizerError(f"{reason} {shown} at position {pos} (tokenizer {self.name or self.type_name!r})")

    def _encode_body(self, seq: Any) -> np.ndarray:
        raw = as_bytes(seq)
        ids = np.take(self._lut, raw)
        if self._may_fail and (ids < 0).any():
            self._raise_first_bad(raw, ids)
        return ids

    def _encode_bodies(self, seqs) -> tuple[np.ndarray, np.ndarray]:
        # one lookup over the joined batch instead of one per row; on any error, redo row by row
        # so the message names the sequence and its own position
        if not all(isinstance(q, str) for q in seqs):
            return super()._encode_bodies(seqs)
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        try:
            raw = as_bytes("".join(seqs))
        except TokenizerError:
            return super()._encode_bodies(seqs)
        ids = np.take(self._lut, raw)
        if self._may_fail and (ids < 0).any():
            return super()._encode_bodies(seqs)
        return ids, lengths

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Map the genome store's ``uint8`` codes (:mod:`bioseq.alphabet`, any shape) to ids, the
        soft-mask bit ignored: the fast path from a Zarr window to model input (no specials)."""
        if self._code_lut is None:
            raise TokenizerError(f"tokenizer {self.name!r} is for {self.molecule}; nucleotide codes do not apply")
        codes = np.asarray(codes)
        if codes.dtype != np.uint8:
            raise TypeError(f"codes must be uint8 (bioseq.alphabet), got {codes.dtype}")
        ids = np.take(self._code_lut, codes)
        if (ids < 0).any():
            flat = ids.reshape(-1)
            self._raise_first_bad(codes.reshape(-1), flat, what="code")
        return ids

    def _decode_body(self, ids: np.ndarray) -> str:
        return self._dec[ids].tobytes().decode("ascii")

    @property
    def complement_map(self) -> list[int] | None:
        return None if self._cmap is None else self._cmap.tolist()

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            "regular_tokens": [self.vocab[i] for i in self._regular],
            "molecule": self.molecule,
            "aliases": self.aliases,
            "lowercase": self.lowercase,
            "unknown": self.unknown,
            "reject": self.reject,
            "complement": self.complement,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> CharTokenizer:
        return cls(
            cfg["vocab"], cfg["special_tokens"], cfg.get("template"), cfg.get("regular_tokens"), cfg.get("name", ""),
            molecule=cfg.get("molecule", "dna"), aliases=cfg.get("aliases"), lowercase=cfg.get("lowercase", "fold"),
            unknown=cfg.get("unknown", "error"), reject=cfg.get("reject"), complement=cfg.get("complement"),
        )


def _nucleotide(
    letters: str, name: str, molecule: str, ambiguity: str, lowercase: str, unknown: str, aliases: dict[str, str],
    template: dict[str, list[str]] | None,
) -> CharTokenizer:
    if ambiguity not in ("n", "keep", "unk", "error"):
        raise ValueError(f"ambiguity must be 'n', 'keep', 'unk' or 'error', not {ambiguity!r}")
    vocab = HYENA_SPECIALS + list(letters)
    reject: dict[str, str] = {}
    if ambiguity == "keep":
        vocab += list(AMBIGUITY_CODES)
    elif ambiguity == "n":
        aliases.update({c: "N" for c in AMBIGUITY_CODES})
    elif ambiguity == "unk":
        aliases.update({c: "[UNK]" for c in AMBIGUITY_CODES})
    else:
        reject = {c: "IUPAC ambiguity code (ambiguity='error')" for c in AMBIGUITY_CODES}
    complement = {a: b for a, b in DNA_COMPLEMENT.items() if a in vocab and b in vocab}
    if molecule == "rna":
        complement.update({"A": "U", "U": "A"})
    return CharTokenizer(
        vocab, HYENA_ROLES, template if template is not None else {"prefix": [], "suffix": ["sep"]},
        regular_tokens=[c for c in letters if c != "N"], name=name, molecule=molecule, aliases=aliases,
        lowercase=lowercase, unknown=unknown, reject=reject, complement=complement,
    )


def dna_char(
    ambiguity: str = "n",
    *,
    u_to_t: bool = True,
    lowercase: str = "fold",
    unknown: str = "error",
    template: dict[str, list[str]] | None = None,
) -> CharTokenizer:
    """HyenaDNA-compatible single-nucleotide DNA tokenizer (see the module docstring).

    Args:
        ambiguity: IUPAC ambiguity codes (R Y S W K M B D H V) become ``N`` (``"n"``), keep their
            own tokens 12-21 (``"keep"``), become ``[UNK]`` (``"unk"``) or raise (``"error"``).
        u_to_t: read ``U`` as ``T`` (RNA input through the DNA vocabulary).
        lowercase: ``"fold"`` (soft-masked bases read as upper case) or ``"error"``.
        unknown: other characters (``-``, digits ...) raise (``"error"``) or become ``[UNK]``.
        template: special tokens added by ``encode``; default HyenaDNA's ``seq + [SEP]``.
    """
    aliases = {"U": "T"} if u_to_t else {}
    return _nucleotide("ACGTN", "dna-char" if ambiguity == "n" else f"dna-char-{ambiguity}", "dna", ambiguity, lowercase, unknown, aliases, template)


def rna_char(ambiguity: str = "n", *, lowercase: str = "fold", unknown: str = "error", template: dict[str, list[str]] | None = None) -> CharTokenizer:
    """Single-nucleotide RNA tokenizer: HyenaDNA's layout with ``U`` at id 10; ``T`` reads as ``U``."""
    return _nucleotide("ACGUN", "rna-char", "rna", ambiguity, lowercase, unknown, {"T": "U"}, template)


def protein_esm(*, lowercase: str = "fold", unknown: str = "error", template: dict[str, list[str]] | None = None) -> CharTokenizer:
    """ESM-2-compatible protein tokenizer (ids identical to the ESM-2 alphabet). ``encode`` adds
    ``<cls>`` and ``<eos>`` like ESM's batch converter; ``regular_token_ids`` are the 20 standard
    amino acids. ``X B U Z O``, ``.`` and ``-`` are tokens of their own."""
    return CharTokenizer(
        ESM_VOCAB, ESM_ROLES, template if template is not None else {"prefix": ["cls"], "suffix": ["eos"]},
        regular_tokens=list(STANDARD_AMINO_ACIDS), name="protein-esm", molecule="protein",
        lowercase=lowercase, unknown=unknown,
    )
