"""Damaged checkpoints, manifests and tokenizer files: one error line naming the file, no traceback."""

from __future__ import annotations

import json
import shutil

import pytest

READ = "@q1\nACGTACGTACGTACGTACGTACGTACGTACGTAC\n+\n" + "I" * 34 + "\n"


def _one_error(res, must_name: str) -> str:
    code, err, exc = res
    assert exc is None, repr(exc)
    assert code == 1, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and must_name in lines[0] and "internal error" not in lines[0], err
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated-weights", "garbage-config", "config-not-a-dict"])
def test_damaged_encoder(fuzz_env, invoke, tmp_path, damage):
    enc = tmp_path / "enc"
    shutil.copytree(fuzz_env.encoder, enc)
    if damage == "truncated-weights":
        w = enc / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        name = str(enc)
    elif damage == "garbage-config":
        (enc / "config.json").write_bytes(b"\x00\xffnot json")
        name = "config.json"
    else:
        (enc / "config.json").write_text("[1, 2]")
        name = str(enc)
    _one_error(invoke(["index", str(fuzz_env.reference), "-o", str(tmp_path / "x.esa"), "--encoder", str(enc)]), name)
    assert not (tmp_path / "x.esa").exists()


@pytest.mark.parametrize("damage", ["missing-key", "bad-json", "not-a-dict"])
def test_damaged_index_manifest(fuzz_env, invoke, tmp_path, damage):
    idx = tmp_path / "ref.esa"
    shutil.copytree(fuzz_env.index, idx)
    mf = idx / "manifest.json"
    m = json.loads(mf.read_text())
    if damage == "missing-key":
        del m["contigs"]
        mf.write_text(json.dumps(m))
    elif damage == "bad-json":
        mf.write_text(mf.read_text()[:50])
    else:
        mf.write_text("[]")
    fq = tmp_path / "r.fq"
    fq.write_text(READ)
    out = tmp_path / "out.sam"
    _one_error(invoke(["align", str(idx), str(fq), "-o", str(out), "--encoder", str(fuzz_env.encoder)]), str(idx))
    assert not out.exists()


@pytest.mark.parametrize("content", [b"\x89PNG\x00\x01", b"[1, 2, 3]", b'{"format": "bioseq-tokenizer"}',
                                     b'{"format": "bioseq-tokenizer", "version": 1, "type": "char"}', b""])
def test_bad_tokenizer_file(invoke, tmp_path, content):
    tok = tmp_path / "tok.json"
    tok.write_bytes(content)
    _one_error(invoke(["tokenize", "info", str(tok)]), str(tok))
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGT\n")
    _one_error(invoke(["tokenize", "encode", str(fa), "-t", str(tok), "-o", str(tmp_path / "ids.txt")]), str(tok))
    assert not (tmp_path / "ids.txt").exists()
