"""k-mer tokenizers against a plain-Python reference, on real genomes and random input."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq import alphabet
from bioseq.tokenization import TokenizerError, get_tokenizer
from bioseq.tokenization.kmer import KmerTokenizer


@functools.cache
def cached(k: int, stride: int) -> KmerTokenizer:
    return KmerTokenizer(k, stride)


def reference_ids(seq: str, k: int, stride: int) -> list[int]:
    """The obvious per-window loop: base-4 index of each window, [UNK]=6 for non-ACGT windows,
    leftover bases as single tokens A=7 C=8 G=9 T=10 N=11."""
    seq = seq.upper().replace("U", "T")
    offset = 12 if k > 1 else 7
    ids, pos = [], 0
    while pos + k <= len(seq):
        w = seq[pos : pos + k]
        ids.append(offset + sum("ACGT".index(c) * 4 ** (k - 1 - j) for j, c in enumerate(w)) if set(w) <= set("ACGT") else 6)
        pos += stride
    end = pos - stride + k if ids else 0
    ids += [7 + "ACGT".index(c) if c in "ACGT" else 11 for c in seq[end:]]
    return ids


@pytest.mark.parametrize("k", range(1, 9))
def test_real_genome_against_reference(k, lambda_genome, yeast_chr1):
    for stride in sorted({1, k}):
        tok = cached(k, stride)
        for genome in (lambda_genome, yeast_chr1):
            piece = genome[1000:1000 + 997]  # odd length: exercises the single-base tail
            ids = tok.encode(piece, add_special_tokens=False)
            assert ids.tolist() == reference_ids(piece, k, stride)
            whole = tok.encode(genome, add_special_tokens=False)
            assert tok.decode(whole) == genome
            assert tok.vocab_size == 12 + (4**k if k > 1 else 0)


def test_known_ids_and_vocab():
    tok = get_tokenizer("dna-kmer-6")
    assert tok.vocab_size == 12 + 4096 and tok.vocab[12] == "AAAAAA" and tok.vocab[-1] == "TTTTTT"
    assert tok.encode("AAAAAC").tolist() == [0, 13, 1]  # DNABERT-style [CLS] ... [SEP]
    assert tok.regular_token_ids.min() == 12 and len(tok.regular_token_ids) == 4096
    nono = get_tokenizer("dna-kmer-3-nonoverlap")
    assert nono.convert_ids_to_tokens(nono.encode("ACGTTTGA", add_special_tokens=False)) == ["ACG", "TTT", "G", "A"]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ACGTNacgtnRY", max_size=120), st.integers(1, 8), st.data())
def test_random_input_reference_and_decode(seq, k, data):
    stride = data.draw(st.integers(1, k))
    tok = cached(k, stride)
    ids = tok.encode(seq, add_special_tokens=False)
    assert ids.tolist() == reference_ids(alphabet.decode(alphabet.encode(seq) & alphabet.CODE_MASK).replace("R", "N").replace("Y", "N"), k, stride)
    assert np.array_equal(tok.encode_codes(alphabet.encode(seq)), ids)
    dec = tok.decode(ids)
    assert len(dec) == len(seq)
    # every base is recovered except where only [UNK] windows cover it
    up = seq.upper()
    assert all(d == c or d == "N" for d, c in zip(dec, up, strict=True))
    if set(up) <= set("ACGT"):
        assert dec == up


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ACGT", min_size=8, max_size=120), st.integers(1, 8), st.data())
def test_reverse_complement_exact_without_tail(seq, k, data):
    stride = data.draw(st.integers(1, k))
    seq = seq[: len(seq) - (len(seq) - k) % stride]  # no single-base tail
    tok = cached(k, stride)
    ids = tok.encode(seq, add_special_tokens=False)
    rc = tok.reverse_complement(ids)
    assert np.array_equal(rc, tok.encode(alphabet.reverse_complement(seq), add_special_tokens=False))
    assert np.array_equal(tok.reverse_complement(rc), ids)
    cmap = np.array(tok.complement_map)
    assert np.array_equal(cmap[cmap], np.arange(tok.vocab_size))


@pytest.mark.parametrize("k,stride", [(1, 1), (3, 1), (4, 4), (6, 4)])
def test_codes_batch_equals_rows(k, stride, lambda_genome):
    tok = cached(k, stride)
    codes = alphabet.encode(lambda_genome[: 8 * 101].lower()).reshape(8, 101)
    codes[3, 50] = alphabet.N_CODE
    batch = tok.encode_codes(codes)
    assert batch.shape[0] == 8
    for row, c in zip(batch, codes, strict=True):
        assert np.array_equal(row, tok.encode_codes(c))


def test_errors():
    tok = KmerTokenizer(4, 4, n_policy="error")
    with pytest.raises(TokenizerError, match=r"non-ACGT base 'N' at position 6 in k-mer window 1"):
        tok.encode("ACGTACNT")
    with pytest.raises(TokenizerError, match=r"invalid nucleotide 'Z' at position 2"):
        KmerTokenizer(3).encode("ACZ")
    with pytest.raises(TokenizerError, match="single-nucleotide tail"):
        KmerTokenizer(3, 3).reverse_complement(KmerTokenizer(3, 3).encode("ACGTA", add_special_tokens=False))
    with pytest.raises(TokenizerError, match=r"non-ACGT base 'N' at row 1, position 3 in k-mer window 0"):
        tok.encode_codes(alphabet.encode("ACGTACGTAC" + "GTANGTACGT").reshape(2, 10))
    with pytest.raises(ValueError, match="k must be in 1..8"):
        KmerTokenizer(9)
    with pytest.raises(ValueError, match="stride"):
        KmerTokenizer(3, 4)
