"""Byte-pair-encoding DNA tokenizers trained with the HF ``tokenizers`` library (DNABERT-2, METAGENE-1).

Training cuts genomes into pseudo-sentences (runs of A/C/G/T between ambiguous bases, chopped
into ``chunk_length``-base pieces): DNA has no spaces, so there is no whitespace pre-tokenisation
and merges may span any bases inside a piece. The specials come first so that ids 0-6 are
HyenaDNA's (``[CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK]``), then ``A C G T N``, then merges::

    tok = train_bpe(genome_code_arrays, vocab_size=4096)
    tok.save("tokenizers/dna-bpe-4096.json")

:class:`BPETokenizer` wraps the trained HF tokenizer in bioseq's API. Input is first normalised by
the same lookup table as ``dna-char`` (upper case, U -> T, IUPAC ambiguity -> N, errors naming the
position), so BPE sees only ``ACGTN``; encoding then runs in HF's Rust code (``encode_batch`` is
multi-threaded). Decoding gathers token bytes with numpy. Encode training-sized windows (kb to
tens of kb): without whitespace a whole chromosome is one BPE "word", which HF merges at well
under 1 MB/s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from bioseq import alphabet
from bioseq.tokenization.base import (
    Tokenizer,
    TokenizerError,
    as_bytes,
    per_row,
    register_tokenizer,
)
from bioseq.tokenization.char import HYENA_ROLES, HYENA_SPECIALS, dna_char

_ACGTN = np.frombuffer(b"ACGTN", dtype=np.uint8)


@register_tokenizer
class BPETokenizer(Tokenizer):
    """A trained HF BPE model behind bioseq's API (no reverse complement: merges are not
    strand-symmetric).

    Args:
        hf: a ``tokenizers.Tokenizer`` with a BPE model whose vocabulary starts with HyenaDNA's
            seven specials.
        template: specials added by ``encode`` (default DNABERT-2's ``[CLS] ... [SEP]``).
        name: label.
    """

    type_name = "bpe"

    def __init__(self, hf: Any, template: dict[str, list[str]] | None = None, name: str = "dna-bpe") -> None:
        vocab_map = hf.get_vocab(with_added_tokens=True)
        vocab = [None] * len(vocab_map)
        for tok, i in vocab_map.items():
            vocab[i] = tok
        if None in vocab or vocab[: len(HYENA_SPECIALS)] != HYENA_SPECIALS:
            raise TokenizerError(f"BPE vocabulary must start with {HYENA_SPECIALS} and have contiguous ids")
        regular = [t for t in vocab[len(HYENA_SPECIALS):] if set(t) <= set("ACGT")]
        super().__init__(vocab, HYENA_ROLES, template if template is not None else {"prefix": ["cls"], "suffix": ["sep"]}, regular, name)
        self.hf = hf
        # the HF object must not add its own specials or alter the text: bioseq does both
        self.hf.no_truncation()
        self.hf.no_padding()
        self._normalizer = dna_char("n")  # input validation + normalisation table
        self._norm_dec = self._normalizer._dec
        width = max(len(t) for t in vocab)
        self._tok_bytes = np.zeros((len(vocab), width), dtype=np.uint8)
        self._tok_len = np.zeros(len(vocab), dtype=np.int64)
        for i, t in enumerate(vocab):
            if not self._is_special[i]:
                self._tok_bytes[i, : len(t)] = np.frombuffer(t.encode(), dtype=np.uint8)
                self._tok_len[i] = len(t)

    def normalize(self, seq: Any) -> str:
        """Upper-case ``ACGTN`` text that the BPE model sees (raises on non-IUPAC input)."""
        return self._norm_dec[self._normalizer._encode_body(as_bytes(seq))].tobytes().decode("ascii")

    def _encode_body(self, seq: Any) -> np.ndarray:
        return np.asarray(self.hf.encode(self.normalize(seq), add_special_tokens=False).ids, dtype=np.int64)

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Genome-store ``uint8`` codes (1-D) -> ids, no specials. BPE rows differ in length, so
        a ``(B, L)`` batch goes through :meth:`encode_batch` (decode the codes first)."""
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 1:
            raise TypeError(f"BPE encode_codes takes one 1-D uint8 code array, got {codes.dtype} {codes.shape}")
        return self._encode_body(alphabet.decode(codes, keep_case=False))

    def _encode_bodies(self, seqs) -> tuple[np.ndarray, np.ndarray]:
        # HF's multi-threaded encode_batch does the BPE; bioseq pads and adds specials
        encs = self.hf.encode_batch(per_row(self.normalize, seqs), add_special_tokens=False)
        lengths = np.array([len(e.ids) for e in encs], dtype=np.int64)
        flat = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def _decode_body(self, ids: np.ndarray) -> str:
        take = np.arange(self._tok_bytes.shape[1])[None, :] < self._tok_len[ids][:, None]
        return self._tok_bytes[ids][take].tobytes().decode("ascii")

    def _config(self) -> dict[str, Any]:
        return {"hf_tokenizer": json.loads(self.hf.to_str())}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        tok = cls(HFTokenizer.from_str(json.dumps(cfg["hf_tokenizer"])), cfg.get("template"), cfg.get("name", "dna-bpe"))
        if cfg.get("vocab") is not None and cfg["vocab"] != tok.vocab:
            raise TokenizerError("BPE tokenizer file: stored vocab does not match the embedded HF model")
        return tok


def pseudo_sentences(code_arrays: Iterable[np.ndarray], chunk_length: int = 2000, min_length: int = 20) -> Iterator[str]:
    """Cut genomes (``uint8`` code arrays) into training text: maximal A/C/G/T runs (soft-mask
    ignored, anything ambiguous is a break), chopped into ``chunk_length`` pieces; pieces shorter
    than ``min_length`` are dropped (they teach nothing about merges)."""
    for codes in code_arrays:
        c = np.asarray(codes, dtype=np.uint8) & alphabet.CODE_MASK
        acgt = c < 4
        # boundaries of ACGT runs: +1 where a run starts, -1 where it ends
        edges = np.diff(np.concatenate([[0], acgt.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        text = _ACGTN[np.minimum(c, 4)].tobytes().decode("ascii")
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            for a in range(s, e, chunk_length):
                b = min(a + chunk_length, e)
                if b - a >= min_length:
                    yield text[a:b]


def train_bpe(
    code_arrays: Iterable[np.ndarray],
    vocab_size: int = 4096,
    *,
    chunk_length: int = 2000,
    min_frequency: int = 2,
    max_token_length: int | None = 32,
    name: str | None = None,
    show_progress: bool = False,
) -> BPETokenizer:
    """Train a DNA BPE tokenizer with HF ``tokenizers``.

    Args:
        code_arrays: genomes/contigs as ``uint8`` code arrays (e.g. ``rec.codes`` from
            :func:`bioseq.io.read_fasta`).
        vocab_size: final vocabulary size, specials and ``A C G T N`` included.
        chunk_length: pseudo-sentence length in bases.
        min_frequency: a pair must occur this often to be merged.
        max_token_length: longest token in bases (None: unlimited).
        name: label (default ``dna-bpe-<vocab_size>``).
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, trainers

    if vocab_size < len(HYENA_SPECIALS) + 5:
        raise ValueError(f"vocab_size must be at least {len(HYENA_SPECIALS) + 5} (specials + ACGTN), got {vocab_size}")
    hf = HFTokenizer(models.BPE(unk_token="[UNK]"))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=HYENA_SPECIALS + list("ACGTN"),  # fixed ids 0-11, as in the char layout
        initial_alphabet=[],
        limit_alphabet=5,
        max_token_length=max_token_length,
        show_progress=show_progress,
    )
    hf.train_from_iterator(pseudo_sentences(code_arrays, chunk_length), trainer=trainer)
    # A C G T N were added as "special" so their ids are fixed; make them ordinary tokens again so
    # the model splits text into them and HF decode/encode treat them as sequence
    spec = json.loads(hf.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in HYENA_SPECIALS]
    hf = HFTokenizer.from_str(json.dumps(spec))
    return BPETokenizer(hf, name=name or f"dna-bpe-{vocab_size}")
