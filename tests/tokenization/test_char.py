"""Single-nucleotide and protein tokenizers: known ids, round trips on real data, policies, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq import alphabet
from bioseq.tokenization import TokenizerError, dna_char, get_tokenizer, protein_esm, rna_char

HYENA = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N"]
ESM2 = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "D", "I", "P", "K", "Q",
        "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
IUPAC = "ACGTNRYSWKMBDHV"


def test_hyena_layout_exact():
    tok = get_tokenizer("dna-char")
    assert tok.vocab == HYENA and tok.vocab_size == 12
    assert (tok.cls_token_id, tok.sep_token_id, tok.bos_token_id, tok.mask_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 1, 2, 3, 4, 6)
    assert tok.complement_map == [0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11]
    assert tok.regular_token_ids.tolist() == [7, 8, 9, 10]
    # HyenaDNA's template appends [SEP] only
    assert tok.encode("ACGTN").tolist() == [7, 8, 9, 10, 11, 1]
    assert tok.encode("acgtn", add_special_tokens=False).tolist() == [7, 8, 9, 10, 11]
    assert tok.special_tokens_mask(np.arange(12)).tolist() == [True] * 7 + [False] * 5


def test_esm2_layout_exact():
    tok = get_tokenizer("protein-esm")
    assert tok.vocab == ESM2 and tok.vocab_size == 33
    assert (tok.cls_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3, 32)
    # ESM-2's batch converter: <cls> seq <eos>; M=20 K=15 A=5 L=4 W=22
    assert tok.encode("MKALW").tolist() == [0, 20, 15, 5, 4, 22, 2]
    assert sorted(tok.vocab[i] for i in tok.regular_token_ids) == sorted("ACDEFGHIKLMNPQRSTVWY")
    assert tok.complement_map is None
    with pytest.raises(TokenizerError, match="no reverse complement"):
        tok.reverse_complement([5, 6])


def test_real_genomes_round_trip_and_rc(lambda_genome, yeast_chr1):
    tok = get_tokenizer("dna-char")
    for genome in (lambda_genome, yeast_chr1):
        ids = tok.encode(genome, add_special_tokens=False)
        assert ids.shape == (len(genome),) and ids.dtype == np.int64
        assert tok.decode(ids) == genome.upper()
        # token-level RC equals tokenizing the string-level RC (bioseq.alphabet is the reference)
        assert np.array_equal(tok.reverse_complement(ids), tok.encode(alphabet.reverse_complement(genome), add_special_tokens=False))
        assert np.array_equal(tok.reverse_complement(tok.reverse_complement(ids)), ids)
        # the store's uint8 codes (with soft-masking) give the same ids as the string
        codes = alphabet.encode(genome[:5000].lower() + genome[5000:])
        assert np.array_equal(tok.encode_codes(codes), ids)


def test_real_proteins_round_trip(uniprot):
    tok = get_tokenizer("protein-esm")
    assert len(uniprot) == 20000
    batch = uniprot[:64]
    enc = tok.encode_batch(batch, pad_to_multiple_of=8)
    assert enc.input_ids.shape[1] % 8 == 0
    assert tok.decode_batch(enc.input_ids, enc.attention_mask) == batch
    total = 0
    for seq in uniprot:
        ids = tok.encode(seq)
        assert ids[0] == 0 and ids[-1] == 2
        assert tok.decode(ids, skip_special_tokens=True) == seq
        total += len(ids) - 2
    assert total == sum(map(len, uniprot))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=IUPAC + IUPAC.lower() + "Uu", max_size=300))
def test_iupac_policies(seq):
    up = seq.upper().replace("U", "T")
    keep, as_n, as_unk = dna_char("keep"), dna_char("n"), dna_char("unk")
    assert keep.decode(keep.encode(seq, add_special_tokens=False)) == up
    n_ids = as_n.encode(seq, add_special_tokens=False)
    assert as_n.decode(n_ids) == "".join(c if c in "ACGT" else "N" for c in up)
    unk_ids = as_unk.encode(seq, add_special_tokens=False)
    assert np.array_equal(unk_ids == 6, np.array([c not in "ACGTN" for c in up], dtype=bool))
    # ambiguity codes keep their own ids after HyenaDNA's, which do not move
    assert keep.vocab[:12] == HYENA and keep.vocab[12:] == list("RYSWKMBDHV")
    for tok in (keep, as_n):
        ids = tok.encode(seq, add_special_tokens=False)
        rc = tok.reverse_complement(ids)
        assert tok.decode(rc) == tok.decode(tok.encode(alphabet.reverse_complement(up), add_special_tokens=False))
        assert np.array_equal(tok.reverse_complement(rc), ids)
        # codes path agrees with the string path for every policy
        assert np.array_equal(tok.encode_codes(alphabet.encode(seq)), ids)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 11), max_size=200))
def test_complement_involution_on_any_ids(ids):
    tok = get_tokenizer("dna-char")
    cmap = np.array(tok.complement_map)
    assert np.array_equal(cmap[cmap], np.arange(12))
    assert tok.reverse_complement(tok.reverse_complement(ids)).tolist() == ids


def test_rna():
    tok = rna_char()
    assert tok.vocab[7:] == list("ACGUN")
    assert tok.encode("ACGUT", add_special_tokens=False).tolist() == [7, 8, 9, 10, 10]
    assert tok.decode(tok.reverse_complement(tok.encode("AACGU", add_special_tokens=False))) == "ACGUU"
    assert tok.encode_codes(alphabet.encode("ACGU")).tolist() == [7, 8, 9, 10]
    assert dna_char().encode("ACGU", add_special_tokens=False).tolist() == [7, 8, 9, 10]
    with pytest.raises(TokenizerError, match="'U' at position 2"):
        dna_char(u_to_t=False).encode("ACU")


def test_errors_name_position_and_character():
    with pytest.raises(TokenizerError, match=r"invalid dna character 'X' at position 3"):
        dna_char().encode("ACGXT")
    with pytest.raises(TokenizerError, match=r"ambiguity code.*'R' at position 1"):
        dna_char("error").encode("ARG")
    with pytest.raises(TokenizerError, match=r"lowercase.*'g' at position 2"):
        dna_char(lowercase="error").encode("ACgT")
    with pytest.raises(TokenizerError, match=r"invalid protein character '\*' at position 4"):
        protein_esm().encode("MKVL*")
    with pytest.raises(TokenizerError, match="non-ASCII"):
        dna_char().encode("ACGé")
    with pytest.raises(TokenizerError, match="code 99 at position 1"):
        dna_char().encode_codes(np.array([0, 99], dtype=np.uint8))
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        dna_char().decode([7, 12])
    # gap code 15 is not in HyenaDNA's vocabulary: [UNK] when asked
    assert dna_char(unknown="unk").encode_codes(np.array([0, 15, 0x83], dtype=np.uint8)).tolist() == [7, 6, 10]
    assert dna_char(unknown="unk").encode("A-*", add_special_tokens=False).tolist() == [7, 6, 6]
    # lowercase="error" still rejects lowercase when unknown characters become [UNK]
    with pytest.raises(TokenizerError, match="lowercase"):
        dna_char(lowercase="error", unknown="unk").encode("Aa")


def test_codes_keep_shape_and_ignore_softmask():
    tok = get_tokenizer("dna-char")
    codes = alphabet.encode("ACGTNacgtn" * 4).reshape(4, 10)
    ids = tok.encode_codes(codes)
    assert ids.shape == (4, 10)
    assert ids[0].tolist() == [7, 8, 9, 10, 11] * 2
    with pytest.raises(TypeError, match="uint8"):
        tok.encode_codes(codes.astype(np.int64))
    with pytest.raises(TokenizerError, match="nucleotide codes do not apply"):
        protein_esm().encode_codes(codes)
