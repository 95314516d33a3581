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
    assert tok.vocab[15] == "protein:A" and tok.vocab[39] == "protein:O"
    prot = tok.modality_token_mask("protein")
    assert np.flatnonzero(prot).tolist() == list(range(15, 40))
    assert np.flatnonzero(tok.modality_token_mask("rna")).tolist() == [7, 8, 9, 10, 11]
    # tags are special (never masked), regular ids exclude N / X / B / Z / U / O
    assert tok.special_tokens_mask([12, 13, 14, 7, 15]).tolist() == [True, True, True, False, False]
    assert sorted(tok.regular_token_ids.tolist()) == [7, 8, 9, 10, *range(15, 35)]
    assert tok.modality_token_ids("dna").tolist() == [7, 8, 9, 10]
    assert tok.modality_token_ids("rna").tolist() == [7, 8, 9, 10]
    # DNA segments use dna-char ids
    dna = "ACGTNRacgt"
    assert np.array_equal(tok.encode_body(dna, "dna"), get_tokenizer("dna-char").encode(dna, add_special_tokens=False))


def test_encode_pair_layout(tok, uniprot, lambda_genome):
    """Protein + nucleic-acid pairs (the interaction heads' input) built by hand from the layout."""
    for k in range(50):
        prot, na = uniprot[k][:400], lambda_genome[k * 100 : k * 100 + 60]
        for mod in ("dna", "rna"):
            na_seq = na.replace("T", "U") if mod == "rna" else na
            ids, seg = tok.encode_segments([("protein", prot), (mod, na_seq)])
            aa = np.array([15 + "ACDEFGHIKLMNPQRSTVWYXBZUO".index(c) for c in prot])
            nuc = np.array(["ACGTN".index(c) + 7 for c in na])
            ref = np.concatenate([[0, 14], aa, [1, 12 if mod == "dna" else 13], nuc, [1]])
            assert np.array_equal(ids, ref)
            assert tok.decode_segments(ids) == [("protein", prot), (mod, na_seq)]


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
