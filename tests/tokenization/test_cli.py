"""``bioseq tokenize``: encode, train-bpe, info, list."""

from __future__ import annotations

import gzip
import json

from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.tokenization import load_tokenizer

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["tokenize", *args])


def test_encode_literal_and_tokens():
    r = run("encode", "ACGTN")
    assert r.exit_code == 0 and r.stdout.strip() == "7 8 9 10 11 1"
    r = run("encode", "--tokenizer", "protein-esm", "--tokens", "MKV")
    assert r.stdout.strip() == "<cls> M K V <eos>"
    r = run("encode", "-t", "multiomic", "-m", "protein", "--no-special", "MA")
    assert r.stdout.strip() == "14 25 15"  # <protein> M A


def test_encode_fasta_file(tmp_path):
    fa = tmp_path / "x.fa.gz"
    with gzip.open(fa, "wt") as fh:
        fh.write(">one desc\nACGT\nacg\n>two\nNNRA\n")
    r = run("encode", "-t", "dna-char", str(fa))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [">one", "7 8 9 10 7 8 9 1", ">two", "11 11 11 7 1"]
    out = tmp_path / "ids.jsonl"
    r = run("encode", "-t", "dna-kmer-3-nonoverlap", "--json", "--no-special", "-o", str(out), str(fa))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"name": "one", "ids": [12 + 6, 12 + 3 * 16 + 0 * 4 + 1, 9]}  # ACG, TAC, G


def test_errors_name_file_record_position(tmp_path):
    r = run("encode", "ACGXT")
    assert r.exit_code == 1 and "invalid dna character 'X' at position 3" in r.output
    fa = tmp_path / "p.fa"
    fa.write_text(">p1\nMKV\n>p2\nMK*V\n")
    r = run("encode", "-t", "protein-esm", str(fa))
    assert r.exit_code == 1 and f"{fa}: record 'p2': invalid protein character '*' at position 2" in r.output
    r = run("encode", str(tmp_path / "missing.fa.gz"))
    assert r.exit_code == 1 and "missing.fa.gz: no such file" in r.output
    r = run("encode", "-t", "nope", "ACGT")
    assert r.exit_code == 1 and "unknown tokenizer 'nope'" in r.output
    bad = tmp_path / "bad.fa"
    bad.write_text(">c\nACGTJ\n")
    r = run("encode", str(bad))
    assert r.exit_code == 1 and "bad.fa" in r.output and "'c'" in r.output


def test_train_bpe_and_info(tmp_path, shared):
    out = tmp_path / "bpe.json"
    r = run("train-bpe", str(shared / "genomes/lambda/lambda_virus.fa.gz"), "--vocab-size", "200", "-o", str(out))
    assert r.exit_code == 0, r.output
    tok = load_tokenizer(out)
    assert tok.vocab_size == 200 and tok.vocab[:12][-5:] == ["A", "C", "G", "T", "N"]
    r = run("info", str(out))
    assert r.exit_code == 0 and "vocab_size:    200" in r.stdout and "type:          bpe" in r.stdout
    r = run("info", "dna-char")
    assert "template:      <seq> [SEP]" in r.stdout and "reverse comp.: yes" in r.stdout
    r = run("info", "protein-esm", "--json")
    assert json.loads(r.stdout)["vocab"][32] == "<mask>"
    assert "dna-kmer-6" in run("list").stdout.split()


def test_export_matches_shipped(tmp_path):
    from bioseq.tokenization import ASSET_DIR

    r = run("export", "protein-esm", "-o", str(tmp_path / "p.json"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.json").read_bytes() == (ASSET_DIR / "protein-esm.json").read_bytes()
