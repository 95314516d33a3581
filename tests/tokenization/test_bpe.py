"""BPE trained with HF tokenizers on real genomes, wrapped in bioseq's API."""

from __future__ import annotations

import numpy as np
import pytest

from bioseq import alphabet
from bioseq.tokenization import TokenizerError, get_tokenizer, load_tokenizer
from bioseq.tokenization.bpe import BPETokenizer, pseudo_sentences, train_bpe


@pytest.fixture(scope="module")
def lambda_bpe(lambda_genome) -> BPETokenizer:
    return train_bpe([alphabet.encode(lambda_genome)], vocab_size=300)


def test_pseudo_sentences_break_at_ambiguity_and_chunk():
    codes = alphabet.encode("A" * 30 + "N" + "c" * 25 + "R" + "G" * 5 + "T" * 50)
    assert list(pseudo_sentences([codes], chunk_length=20, min_length=10)) == ["A" * 20, "A" * 10, "C" * 20, "G" * 5 + "T" * 15, "T" * 20, "T" * 15]


def test_trained_layout_and_round_trip(lambda_bpe, lambda_genome, yeast_chr1):
    tok = lambda_bpe
    assert tok.vocab_size == 300
    assert tok.vocab[:12] == ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N"]
    assert tok.pad_token_id == 4 and tok.mask_token_id == 3
    assert all(set(tok.vocab[i]) <= set("ACGT") for i in tok.regular_token_ids) and len(tok.regular_token_ids) == 300 - 8
    # merges compress: fewer tokens than bases, and decoding gives the genome back
    for genome in (lambda_genome, yeast_chr1[:50_000]):
        ids = tok.encode(genome, add_special_tokens=False)
        assert len(ids) < len(genome) / 2.5
        assert tok.decode(ids) == genome
    ids = tok.encode("acgtNRacgu")
    assert ids[0] == 0 and ids[-1] == 1
    assert tok.decode(ids, skip_special_tokens=True) == "ACGTNNACGT"
    assert np.array_equal(tok.encode_codes(alphabet.encode("acgtNRacgu")), ids[1:-1])


def test_batch_uses_same_tokens(lambda_bpe, lambda_genome):
    windows = [lambda_genome[i : i + 500] for i in range(0, 5000, 500)]
    batch = lambda_bpe.encode_batch(windows, pad_to_multiple_of=8)
    for row, m, w in zip(batch.input_ids, batch.attention_mask, windows, strict=True):
        assert np.array_equal(row[m], lambda_bpe.encode(w))
    assert lambda_bpe.decode_batch(batch.input_ids, batch.attention_mask) == windows


def test_save_load_and_errors(lambda_bpe, tmp_path, lambda_genome):
    path = lambda_bpe.save(tmp_path / "bpe.json")
    again = load_tokenizer(path)
    assert isinstance(again, BPETokenizer) and again.vocab == lambda_bpe.vocab
    assert np.array_equal(again.encode(lambda_genome[:3000]), lambda_bpe.encode(lambda_genome[:3000]))
    with pytest.raises(TokenizerError, match=r"invalid dna character 'X' at position 3"):
        lambda_bpe.encode("ACGXT")
    with pytest.raises(TokenizerError, match="no reverse complement"):
        lambda_bpe.reverse_complement([7, 8])
    with pytest.raises(TypeError, match="1-D uint8"):
        lambda_bpe.encode_codes(alphabet.encode("ACGTACGT").reshape(2, 4))
    with pytest.raises(ValueError, match="vocab_size must be at least 12"):
        train_bpe([alphabet.encode("ACGT")], vocab_size=8)


def test_shipped_bpe(lambda_genome):
    tok = get_tokenizer("dna-bpe-4096")
    assert tok.vocab_size == 4096 and tok.vocab[11] == "N"
    ids = tok.encode(lambda_genome, add_special_tokens=False)
    assert tok.decode(ids) == lambda_genome
    assert len(lambda_genome) / len(ids) > 4  # E. coli-trained merges still compress a phage


@pytest.mark.slow
def test_shipped_bpe_is_reproducible(tmp_path, ecoli_fasta):
    """The shipped dna-bpe-4096 is exactly what `bioseq tokenize train-bpe` makes from the bundled E. coli."""
    import json

    from typer.testing import CliRunner

    from bioseq.cli import app
    from bioseq.tokenization import ASSET_DIR

    out = tmp_path / "bpe.json"
    r = CliRunner().invoke(app, ["tokenize", "train-bpe", str(ecoli_fasta), "--vocab-size", "4096", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == json.loads((ASSET_DIR / "dna-bpe-4096.json").read_text())
