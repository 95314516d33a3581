"""Streamed FASTA encoding: slices join to exactly what encoding each whole record gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.io import read_fasta, write_fasta
from bioseq.tokenization import get_tokenizer
from bioseq.tokenization.stream import encode_fasta_stream, streamable

STREAMED = ["dna-char", "dna-char-iupac", "rna-char", "dna-kmer-6", "dna-kmer-6-nonoverlap"]


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    """Records of awkward lengths (0, < k, around slice sizes), with N runs, IUPAC and soft-masking."""
    rng = np.random.default_rng(5)
    recs = []
    for i, n in enumerate([0, 3, 5, 6, 7, 29, 30, 31, 64, 65, 1000, 4099]):
        s = "".join(rng.choice(list("ACGTACGTACGTNRacgt"), size=n))
        recs.append((f"r{i}", s))
    path = tmp_path_factory.mktemp("fa") / "x.fa"
    write_fasta(path, recs, line_width=13)
    return path


@pytest.mark.parametrize("name", STREAMED)
@pytest.mark.parametrize("piece", [1, 6, 7, 30, 1 << 20])
def test_slices_join_to_whole_record_encoding(fasta, name, piece):
    tok = get_tokenizer(name)
    assert streamable(tok)
    got, current = {}, None
    for rec, ids in encode_fasta_stream(tok, fasta, piece=piece):
        if rec is not None:
            current = rec
            got[rec] = []
        else:
            assert len(ids) <= max(piece, getattr(tok, "stride", 1)) + 6 or piece > 4099
            got[current].append(ids)
    for rec in read_fasta(fasta):
        whole = tok.encode_codes(rec.codes)
        assert np.array_equal(np.concatenate(got[rec.name]) if got[rec.name] else whole[:0], whole), (name, rec.name)


def test_not_streamable_tokenizers_are_said_so():
    assert not streamable(get_tokenizer("dna-bpe-4096"))
    assert not streamable(get_tokenizer("multiomic"))
    assert not streamable(get_tokenizer("protein-esm"))


@pytest.mark.parametrize("flags", [[], ["--json"], ["--tokens"], ["--json", "--tokens"], ["--no-special"]])
@pytest.mark.parametrize("name", ["dna-char", "dna-kmer-6"])
def test_cli_stream_output_equals_whole_record_output(fasta, monkeypatch, tmp_path, name, flags):
    """The CLI's streamed text is byte-identical to rendering each whole record's ids."""
    from bioseq.tokenization import stream

    monkeypatch.setattr(stream, "PIECE_BASES", 7)
    monkeypatch.setattr(stream.encode_fasta_stream, "__defaults__", (7,))
    tok = get_tokenizer(name)
    out = tmp_path / "o.txt"
    r = CliRunner().invoke(app, ["tokenize", "encode", str(fasta), "-t", name, "-o", str(out), *flags])
    assert r.exit_code == 0, r.output
    want = []
    for rec in read_fasta(fasta):
        ids = tok.encode_codes(rec.codes)
        ids = ids if "--no-special" in flags else tok.apply_template(ids)
        shown = tok.convert_ids_to_tokens(ids) if "--tokens" in flags else ids.tolist()
        if "--json" in flags:
            want.append(json.dumps({"name": rec.name, "tokens" if "--tokens" in flags else "ids": shown}))
        else:
            want += [f">{rec.name}", " ".join(map(str, shown))]
    assert out.read_text() == "\n".join(want) + "\n"


def test_stream_error_names_record_and_offset(tmp_path, monkeypatch):
    from bioseq.tokenization import stream

    monkeypatch.setattr(stream.encode_fasta_stream, "__defaults__", (8,))
    path = tmp_path / "bad.fa"
    write_fasta(path, [("ok", "ACGT"), ("chr2", "ACGTACGTACGTACGT-ACGT")])
    r = CliRunner().invoke(app, ["tokenize", "encode", str(path), "-t", "dna-char", "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "record 'chr2': " in r.output and "counted from base 16 of the record" in r.output and str(path) in r.output
    assert not (tmp_path / "o").exists()
