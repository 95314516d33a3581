"""Checkpoint folders are checked before anything is built from them.

Damaged or hostile ``config.json`` / ``model.safetensors`` files give one clear error naming the
file and the key (never a raw SafetensorError, a TypeError, a hang or a terabyte allocation), and a
string ``backbone`` never reads a file outside the checkpoint's own folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from bioseq.models import CausalLM, build_backbone, load_config, load_pretrained
from bioseq.models.validation import CheckpointError
from bioseq.models.config import ConfigError
from bioseq.models.heads import SequenceClassifier


@pytest.fixture
def ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    model = CausalLM(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2))
    return model.save_pretrained(tmp_path / "ckpt")


def edit(ckpt: Path, change) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    change(cfg)
    (ckpt / "config.json").write_text(json.dumps(cfg))


def test_intact_checkpoint_loads_identically(ckpt):
    a, b = load_pretrained(ckpt), load_pretrained(ckpt)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("cut", [10, 4000, "header"])
def test_truncated_safetensors_is_a_clear_error(ckpt, cut):
    f = ckpt / "model.safetensors"
    raw = f.read_bytes()
    f.write_bytes(raw[:6] if cut == "header" else raw[:-cut])
    with pytest.raises(CheckpointError, match=r"model.safetensors: .*(truncated|bytes, its header lists)"):
        load_pretrained(ckpt)


def test_missing_or_corrupt_safetensors(ckpt):
    f = ckpt / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[12] = ord("#")  # inside the JSON header
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted safetensors header"):
        load_pretrained(ckpt)
    f.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        load_pretrained(ckpt)


@pytest.mark.parametrize("key,value,message", [
    ("vocab_size", 1e12, r"backbone: transformer: vocab_size must be an int, got 1000000000000.0"),
    ("vocab_size", 10**12, r"vocab_size = 1000000000000 is beyond the limit 16777216"),
    ("d_model", 10**9, r"d_model = 1000000000 is beyond the limit"),
    ("d_model", "128", r"d_model must be an int, got '128'"),
    ("n_layer", 10**6, r"n_layer = 1000000 is beyond the limit 1024"),
    ("dropout", "high", r"dropout must be a finite number, got 'high'"),
    ("bidirectional", 1, r"bidirectional must be true or false, got 1"),
    ("complement_map", [1, "x"], r"complement_map \[1\] must be an int"),
    ("n_head", 2**30, r"n_head = 1073741824 is beyond the limit"),
    ("d_model", 70000, r"d_model = 70000 is beyond the limit 65536"),
    ("colour", "blue", r"unknown config keys \['colour'\]"),
])
def test_bad_backbone_values_name_file_and_key(ckpt, key, value, message):
    edit(ckpt, lambda c: c["backbone"].__setitem__(key, value))
    with pytest.raises(CheckpointError, match=message) as e:
        load_pretrained(ckpt)
    assert str(e.value).startswith(str(ckpt / "config.json"))


def test_absurd_model_within_each_limit_is_refused_before_allocation(ckpt):
    """Every dimension allowed, but together 3 trillion parameters: counted on the meta device."""
    edit(ckpt, lambda c: c["backbone"].update(d_model=65536, n_layer=64, n_head=64))
    with pytest.raises(CheckpointError, match=r"describes a model of [\d,]+ parameters, above the limit"):
        load_pretrained(ckpt)


def test_bad_top_level_and_head(ckpt, tmp_path):
    edit(ckpt, lambda c: c.update(extra_key=1))
    with pytest.raises(CheckpointError, match=r"config.json: unknown keys \['extra_key'\]"):
        load_pretrained(ckpt)
    edit(ckpt, lambda c: (c.pop("extra_key"), c.update(model_type="nope")))
    with pytest.raises(CheckpointError, match="unknown model_type 'nope'"):
        load_pretrained(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_pretrained(ckpt)
    clf = SequenceClassifier(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2), num_labels=3)
    d = clf.save_pretrained(tmp_path / "clf")
    edit(d, lambda c: c["head"].update(num_labels=10**12))
    with pytest.raises(CheckpointError, match=r"head\.num_labels = 1000000000000 is beyond the limit"):
        load_pretrained(d)
    edit(d, lambda c: c["head"].update(num_labels=3, colour="red"))
    with pytest.raises(CheckpointError, match=r"head: unknown key 'colour' for SequenceClassifier"):
        load_pretrained(d)


@pytest.mark.parametrize("spec", ["../outside.json", "/etc/passwd", "sub/../../outside.json", "link.json", "cwd.json"])
def test_backbone_string_never_leaves_the_checkpoint_folder(ckpt, tmp_path, monkeypatch, spec):
    backbone = json.loads((ckpt / "config.json").read_text())["backbone"]
    (tmp_path / "outside.json").write_text(json.dumps(backbone))  # a valid config, but not ours to read
    (ckpt / "link.json").symlink_to(tmp_path / "outside.json")
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "cwd.json").write_text(json.dumps(backbone))
    monkeypatch.chdir(cwd)  # the old loader resolved strings against the working directory
    edit(ckpt, lambda c: c.__setitem__("backbone", spec))
    with pytest.raises(CheckpointError, match=r"backbone .*(inside the checkpoint folder|leads outside|no such file in)"):
        load_pretrained(ckpt)
    with pytest.raises(CheckpointError):
        load_config(ckpt)  # the config-only path applies the same rule


def test_backbone_string_inside_the_folder_or_a_size_name_loads(ckpt):
    ref = load_pretrained(ckpt)
    backbone = json.loads((ckpt / "config.json").read_text())["backbone"]
    (ckpt / "backbone.json").write_text(json.dumps(backbone))
    edit(ckpt, lambda c: c.__setitem__("backbone", "backbone.json"))
    got = load_pretrained(ckpt)
    assert all(torch.equal(x, y) for x, y in zip(ref.state_dict().values(), got.state_dict().values(), strict=True))
    assert load_config(ckpt).d_model == 32
    edit(ckpt, lambda c: c.__setitem__("backbone", "transformer-tiny"))  # a registered size: a name, not a path
    with pytest.raises(CheckpointError, match="does not match"):  # its shapes differ from the saved weights
        load_pretrained(ckpt)


def test_cli_reports_a_truncated_encoder_in_one_line(ckpt, tmp_path, lambda_fasta):
    from typer.testing import CliRunner

    from bioseq.cli import app
    from bioseq.models import Embedder

    enc = Embedder(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2, bidirectional=True,
                                  vocab_size=12), dim=32).save_pretrained(tmp_path / "enc")
    f = enc / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-500])
    r = CliRunner().invoke(app, ["index", str(lambda_fasta), "-o", str(tmp_path / "x.esa"), "--encoder", str(enc)])
    assert r.exit_code == 1 and "model.safetensors" in r.output and "truncated" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.esa").exists()


def test_config_error_is_one_line_for_config_files(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"arch": "transformer", "d_model": 1e9}))
    with pytest.raises(ConfigError, match=rf"{p}: transformer: d_model must be an int"):
        load_config(p)
    assert os.linesep not in str(ConfigError("x"))
