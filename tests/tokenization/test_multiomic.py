"""Joint DNA/RNA/protein vocabulary with modality tags and segment ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq import alphabet
from bioseq.tokenization import TokenizerError, get_tokenizer


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("multiomic")


def test_layout(tok):
    assert tok.vocab[:15] == ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N", "<dna>", "<rna>", "<protein>"]
    assert tok.vocab_size == 40 and tok.pad_token_id == 4 and tok.mask_token_id == 3
    # DNA A and alanine differ; RNA shares the nucleotide tokens (U is T) under its own tag
    assert tok.encode("A", modality="dna", add_special_tokens=False).tolist() == [12, 7]
    assert tok.encode("A", modality="protein", add_special_tokens=False).tolist() == [14, 15]
    assert tok.encode("U", modality="rna", add_special_tokens=False).tolist() == [13, 10]
    assert tok.vocab[15] == "pA" and tok.vocab[39] == "pO"
    # tags are special (never masked), regular ids exclude N / X / B / Z / U / O
    assert tok.special_tokens_mask([12, 13, 14, 7, 15]).tolist() == [True, True, True, False, False]
    assert sorted(tok.regular_token_ids.tolist()) == [7, 8, 9, 10, *range(15, 35)]
    assert tok.modality_token_ids("dna").tolist() == [7, 8, 9, 10]
    assert tok.modality_token_ids("rna").tolist() == [7, 8, 9, 10]
    # DNA segments use dna-char ids
    dna = "ACGTNRacgt"
    assert np.array_equal(tok.encode_body(dna, "dna"), get_tokenizer("dna-char").encode(dna, add_special_tokens=False))


def test_same_ids_as_multiomic_joint_vocab(tok, uniprot, lambda_genome):
    """bioseq.multiomic's JointVocab / encode_pair use the same layout: this tokenizer can stand in."""
    tokens = pytest.importorskip("bioseq.multiomic.tokens")
    jv = tokens.get_joint_vocab()
    assert tok.vocab_size == jv.vocab_size
    for k in range(50):
        prot, na = uniprot[k][:400], lambda_genome[k * 100 : k * 100 + 60]
        for na_type in ("DNA", "RNA"):
            mod = tokens.na_modality(na_type)
            na_seq = na.replace("T", "U") if mod == "rna" else na
            ref, _ = tokens.encode_pair(jv, prot, na_seq, na_type)
            ids, _ = tok.encode_segments([("protein", prot), (mod, na_seq)])
            assert np.array_equal(ids, ref)
            assert tok.decode_segments(ids) == [("protein", prot), (mod, na_seq)]


def test_segments_and_batch(tok, uniprot, lambda_genome):
    prot, dna = uniprot[0], lambda_genome[:300]
    ids, seg = tok.encode_segments([("protein", prot), ("dna", dna)])
    assert ids[0] == tok.cls_token_id and ids[1] == 14 and ids[len(prot) + 3] == 12
    assert (seg[: len(prot) + 3] == 0).all() and (seg[len(prot) + 3 :] == 1).all()
    assert tok.decode_segments(ids) == [("protein", prot), ("dna", dna)]
    enc = tok.encode_batch([[("protein", prot), ("dna", dna)], [("dna", dna[:10])]], pad_to_multiple_of=16)
    assert enc.input_ids.shape[1] % 16 == 0
    assert enc.segment_ids[0].max() == 1 and enc.segment_ids[1].max() == 0
    assert np.array_equal(enc.input_ids[0, : len(ids)], ids)
    # truncation trims the longest body first and keeps every tag and [SEP]
    ids, seg = tok.encode_segments([("protein", prot), ("dna", dna)], truncation=True, max_length=105)
    assert len(ids) == 105
    parts = tok.decode_segments(ids)
    assert [m for m, _ in parts] == ["protein", "dna"] and len(parts[0][1]) + len(parts[1][1]) == 100
    assert len(parts[0][1]) == 50 and prot.startswith(parts[0][1])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["dna", "rna", "protein"]), st.text(alphabet="ACG", max_size=30)), min_size=1, max_size=4))
def test_segment_round_trip(segs):
    tok = get_tokenizer("multiomic")
    ids, seg = tok.encode_segments(segs)
    assert tok.decode_segments(ids) == segs
    assert seg.max() == len(segs) - 1 and (np.diff(seg) >= 0).all()


def test_codes_and_errors(tok):
    assert tok.encode_codes(alphabet.encode("ACGTn")).tolist() == [7, 8, 9, 10, 11]
    with pytest.raises(TokenizerError, match=r"segment 1 \(dna\): invalid dna character 'L' at position 2"):
        tok.encode_segments([("protein", "MKL"), ("dna", "ACL")])
    with pytest.raises(TokenizerError, match="unknown modality 'smiles'"):
        tok.encode_segments([("smiles", "CCO")])
