"""The shared API: batching, padding, truncation, masks, save/load, registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq.tokenization import (
    ASSET_DIR,
    TokenizerError,
    available_tokenizers,
    get_tokenizer,
    load_tokenizer,
)

ROOT = Path(__file__).resolve().parents[2]
CODE_PRESETS = ["dna-char", "dna-char-iupac", "rna-char", "protein-esm", "multiomic", "dna-kmer-6", "dna-kmer-6-nonoverlap"]


def test_batch_padding_truncation_masks():
    tok = get_tokenizer("dna-char")
    enc = tok.encode_batch(["ACGTACGTAC", "GG", "T"], pad_to_multiple_of=8)
    assert enc.input_ids.shape == (3, 16)
    assert enc.attention_mask.sum(1).tolist() == [11, 3, 2]
    assert enc.input_ids[1, :3].tolist() == [9, 9, 1] and (enc.input_ids[1, 3:] == tok.pad_token_id).all()
    assert (enc.special_tokens_mask == (~enc.attention_mask | (enc.input_ids < 7))).all()
    enc = tok.encode_batch(["ACGTACGTAC", "GG"], padding="max_length", max_length=6, truncation=True, return_tensors="pt")
    assert isinstance(enc.input_ids, torch.Tensor) and enc.input_ids.dtype == torch.int64 and enc.attention_mask.dtype == torch.bool
    # truncation keeps the template's [SEP]
    assert enc.input_ids.tolist() == [[7, 8, 9, 10, 7, 1], [9, 9, 1, 4, 4, 4]]
    with pytest.raises(TokenizerError, match="max_length=4"):
        tok.encode_batch(["ACGTACGT"], padding="max_length", max_length=4)
    with pytest.raises(TokenizerError, match="padding=False"):
        tok.encode_batch(["ACG", "A"], padding=False)
    tok.padding_side = "left"
    enc = tok.encode_batch(["ACG", "A"])
    assert enc.input_ids.tolist() == [[7, 8, 9, 1], [4, 4, 7, 1]]
    assert tok.decode_batch(enc.input_ids, enc.attention_mask) == ["ACG", "A"]
    assert tok(["ACG", "A"]).input_ids.shape == (2, 4) and tok("AC").tolist() == [7, 8, 1]


def test_decode_renders_specials():
    tok = get_tokenizer("dna-char")
    assert tok.decode([0, 7, 3, 8, 1]) == "[CLS]A[MASK]C[SEP]"
    assert tok.decode([0, 7, 3, 8, 1], skip_special_tokens=True) == "AC"
    assert tok.convert_ids_to_tokens([7, 4]) == ["A", "[PAD]"]
    assert tok.convert_tokens_to_ids(["T", "[MASK]"]).tolist() == [10, 3]
    with pytest.raises(TokenizerError, match="use decode_batch"):
        tok.decode(np.array([[7, 8], [9, 10]]))


@pytest.mark.parametrize("name", CODE_PRESETS)
def test_save_load_round_trip(name, tmp_path):
    tok = get_tokenizer(name)
    path = tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok) and again.to_dict() == tok.to_dict()
    assert json.loads(path.read_text())["version"] == 1
    seq = "ACGTTGCAAC" * 5
    assert np.array_equal(again.encode(seq), tok.encode(seq))


@pytest.mark.parametrize("name", CODE_PRESETS)
def test_shipped_files_match_code(name):
    """The definition files in tokenizers/ and the package copies equal the presets built in code."""
    built = get_tokenizer(name).to_dict()
    packaged = json.loads((ASSET_DIR / f"{name}.json").read_text())
    assert packaged == built
    top = ROOT / "tokenizers" / f"{name}.json"
    if top.exists() or (ROOT / "tokenizers").is_dir():
        assert json.loads(top.read_text()) == built


def test_every_shipped_file_loads():
    names = available_tokenizers()
    assert set(CODE_PRESETS) <= set(names)
    for p in sorted(ASSET_DIR.glob("*.json")):
        tok = get_tokenizer(p.stem)
        assert tok.vocab_size == len(json.loads(p.read_text())["vocab"])
        if (ROOT / "tokenizers").is_dir():
            assert (ROOT / "tokenizers" / p.name).read_bytes() == p.read_bytes(), f"tokenizers/{p.name} differs from the package copy"


def test_bad_files_fail_clearly(tmp_path):
    good = get_tokenizer("dna-char").to_dict()
    cases = {
        "notjson.json": ("{", "not valid JSON"),
        "other.json": (json.dumps({"model": {}}), "not a bioseq tokenizer"),
        "future.json": (json.dumps({**good, "version": 99}), "version 99 is not supported"),
        "kind.json": (json.dumps({**good, "type": "wordpiece"}), "unknown tokenizer type"),
        "broken.json": (json.dumps({k: v for k, v in good.items() if k != "vocab"}), "malformed char tokenizer"),
    }
    for fname, (text, msg) in cases.items():
        (tmp_path / fname).write_text(text)
        with pytest.raises(TokenizerError, match=msg):
            load_tokenizer(tmp_path / fname)
    with pytest.raises(KeyError, match="unknown tokenizer 'nope'"):
        get_tokenizer("nope")


def test_save_is_atomic(tmp_path, monkeypatch):
    tok = get_tokenizer("dna-char")
    target = tmp_path / "t.json"
    tok.save(target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(RuntimeError):
        get_tokenizer("protein-esm").save(target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_installed_copy_works_without_repo_files(tmp_path):
    shutil.copy(ASSET_DIR / "dna-char.json", tmp_path / "x.json")
    assert get_tokenizer(str(tmp_path / "x.json")).encode("ACGT").tolist() == [7, 8, 9, 10, 1]


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.text(alphabet="ACGTNacgt", max_size=40), min_size=1, max_size=6),
    st.sampled_from(["dna-char", "dna-kmer-3", "dna-kmer-4-nonoverlap", "protein-esm"]),
    st.booleans(), st.booleans(), st.sampled_from(["right", "left"]), st.integers(3, 30), st.sampled_from([None, 1, 8]),
)
def test_batch_equals_per_row_encode(seqs, name, special, truncate, side, max_length, multiple):
    """The vectorised batch path gives, row by row, exactly what encode() gives."""
    tok = get_tokenizer(name)
    tok.padding_side = side
    if name == "protein-esm":
        seqs = [q.replace("N", "W").replace("n", "w") for q in seqs]
    enc = tok.encode_batch(seqs, add_special_tokens=special, truncation=truncate, max_length=max_length, pad_to_multiple_of=multiple)
    rows = [tok.encode(q, add_special_tokens=special, truncation=truncate, max_length=max_length) for q in seqs]
    width = max(map(len, rows))
    assert enc.input_ids.shape == (len(seqs), -(-width // (multiple or 1)) * (multiple or 1))
    for row, m, ref in zip(enc.input_ids, enc.attention_mask, rows, strict=True):
        assert np.array_equal(row[m], ref)
        assert (row[~m] == tok.pad_token_id).all()
        assert m.sum() == len(ref) and (m[::-1] if side == "left" else m)[: len(ref)].all()


def test_batch_error_names_sequence():
    with pytest.raises(TokenizerError, match=r"sequence 2: invalid dna character 'X' at position 1"):
        get_tokenizer("dna-char").encode_batch(["ACGT", "AC", "AXG"])
    with pytest.raises(TokenizerError, match=r"sequence 1: .*'J' at position 0"):
        get_tokenizer("dna-kmer-3").encode_batch(["ACGT", "JAC"])
