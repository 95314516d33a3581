"""Encoding FASTA files of any size in bounded memory.

:func:`encode_fasta_stream` reads a FASTA file piece by piece (:func:`bioseq.io.iter_fasta_pieces`)
and yields each record's ids in slices, so encoding a 50 Mb chromosome holds a few megabytes of
ids at a time instead of the whole record, its ids and their text. The slices join to exactly what
encoding the whole record gives:

- character tokenizers map each base on its own, so any cut is exact;
- k-mer tokenizers (``k``, ``stride``) are cut at a window start ``P`` (a multiple of the stride) and
  each slice is encoded with the ``k - stride`` bases after it, so it holds exactly the windows that
  start before ``P``, and the last slice ends the record with the usual single-base tail.

Tokenizers whose ids depend on the whole record (BPE merges, multi-omic segments) are not
streamable: :func:`streamable` says so and callers encode those per record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from bioseq.tokenization.base import Tokenizer, TokenizerError

#: bases encoded at a time (~8 MB of int64 ids)
PIECE_BASES = 1 << 20


def _overlap(tok: Tokenizer) -> int | None:
    """Bases a slice needs beyond its cut point, or None if the tokenizer cannot be streamed."""
    from bioseq.tokenization.char import CharTokenizer
    from bioseq.tokenization.kmer import KmerTokenizer

    if isinstance(tok, KmerTokenizer):
        return tok.k - tok.stride
    if isinstance(tok, CharTokenizer) and getattr(tok, "_code_lut", None) is not None:
        return 0
    return None


def streamable(tok: Tokenizer) -> bool:
    """Whether :func:`encode_fasta_stream` can encode with ``tok`` (exactly)."""
    return _overlap(tok) is not None


def encode_fasta_stream(tok: Tokenizer, path: str | os.PathLike, piece: int = PIECE_BASES
                        ) -> Iterator[tuple[str, None] | tuple[None, np.ndarray]]:
    """``(name, None)`` at each record, then ``(None, ids)`` slices of its body (no special tokens).

    Args:
        tok: a streamable tokenizer (:func:`streamable`).
        path: FASTA file (any compression bioseq.io reads, ``"-"`` for stdin).
        piece: bases per slice (rounded down to a multiple of a k-mer tokenizer's stride).

    Raises:
        TokenizerError: a base the tokenizer rejects, naming the record and where its slice starts.
        SequenceFormatError: malformed FASTA.
    """
    from bioseq.io import iter_fasta_pieces

    overlap = _overlap(tok)
    if overlap is None:
        raise TokenizerError(f"tokenizer {tok.name!r} cannot be streamed (its ids depend on the whole record)")
    stride = getattr(tok, "stride", 1)
    piece = max(stride, piece // stride * stride)
    name: str | None = None
    buf = np.zeros(0, dtype=np.uint8)
    offset = 0  # bases of the current record already encoded

    def encode(codes: np.ndarray) -> np.ndarray:
        try:
            return tok.encode_codes(codes)
        except TokenizerError as e:
            where = f" (positions counted from base {offset:,} of the record)" if offset else ""
            raise TokenizerError(f"record {name!r}: {e}{where}") from None

    for item in iter_fasta_pieces(path):
        if isinstance(item, tuple):
            if name is not None:
                yield None, encode(buf)
            name, buf, offset = item[0], np.zeros(0, dtype=np.uint8), 0
            yield name, None
            continue
        buf = item if not len(buf) else np.concatenate([buf, item])
        while len(buf) >= piece + overlap + 1:  # more than a slice: the record's end is not in it
            yield None, encode(buf[: piece + overlap])
            buf, offset = buf[piece:], offset + piece
    if name is not None:
        yield None, encode(buf)
