import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseq import alphabet
from bioseq.align.conv_encoder import ConvEncoder, ConvEncoderConfig
from bioseq.align.encoder import load_encoder, tokens

ROOT = Path(__file__).resolve().parents[2]


def small(seed=0):
    torch.manual_seed(seed)
    return ConvEncoder(ConvEncoderConfig(channels=8, kernel=5, dilations=[1, 2], dim=16, fragment_len=64, stride=32)).eval()


def emb(model, seqs, length):
    ids, mask = tokens(seqs, length)
    with torch.no_grad():
        return model(torch.from_numpy(ids), torch.from_numpy(mask)).embeddings.numpy()


def test_reverse_complement_gives_the_same_embedding():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, 57).astype(np.uint8)
    e = emb(small(), [s, alphabet.reverse_complement_codes(s)], 80)
    np.testing.assert_allclose(e[0], e[1], atol=1e-6)
    assert abs(np.linalg.norm(e[0]) - 1) < 1e-5


def test_padding_and_batch_do_not_change_an_embedding():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 4, 40).astype(np.uint8)
    m = small()
    a = emb(m, [s], 40)[0]
    b = emb(m, [rng.integers(0, 4, 70).astype(np.uint8), s], 96)[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_embedding_is_the_sum_of_window_features_of_both_strands():
    """The module's maths written out: features of every full window, both strands, summed."""
    m = small()
    rng = np.random.default_rng(2)
    s = rng.integers(0, 4, 30).astype(np.uint8)
    x = torch.zeros(1, 4, 30)
    x[0, torch.from_numpy(s.astype(np.int64)), torch.arange(30)] = 1
    rc = torch.zeros(1, 4, 30)
    r = alphabet.reverse_complement_codes(s)
    rc[0, torch.from_numpy(r.astype(np.int64)), torch.arange(30)] = 1
    with torch.no_grad():
        ones = torch.ones(1, 26)
        z = m.window_features(x, ones).sum(-1) + m.window_features(rc, ones).sum(-1)
    want = torch.nn.functional.normalize(z, dim=-1)[0].numpy()
    np.testing.assert_allclose(emb(m, [s], 30)[0], want, atol=1e-5)


def test_n_bases_are_zero_columns_and_short_input_is_refused():
    m = small()
    s = np.array([0, 1, 2, 3] * 5 + [4] * 3 + [1] * 10, np.uint8)
    assert np.isfinite(emb(m, [s], 40)).all()
    with pytest.raises(ValueError, match="shorter than its kernel"):
        emb(m, [s[:3]], 3)


def test_save_load_roundtrip_through_load_encoder(tmp_path):
    m = small()
    m.save_pretrained(tmp_path / "enc")
    cfg = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert cfg["model_type"] == "conv_encoder" and cfg["fragment_len"] == 64
    enc = load_encoder(tmp_path / "enc")
    assert enc.dim == 16
    seqs = [np.random.default_rng(3).integers(0, 4, 50).astype(np.uint8)]
    np.testing.assert_allclose(enc.embed(seqs, 64), emb(m, seqs, 64), atol=1e-6)
    assert not list((tmp_path / "enc").glob("*.tmp*"))


def run_recipe(out, *extra):
    return subprocess.run([sys.executable, str(ROOT / "recipes" / "train_esa.py"), "--config",
                           str(ROOT / "recipes" / "configs" / "esa" / "conv_sanity.yaml"), f"out={out}", "steps=8",
                           "eval_every=100", "eval_pairs=16", f"data_root={ROOT}", *extra],
                          check=True, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_recipe_resume_continues_exactly(tmp_path):
    """A run paused after step 4 and resumed ends with the same weights as one run straight through
    (data = f(seed, step); weights, optimizer and schedule are checkpointed)."""
    from safetensors.torch import load_file

    run_recipe(tmp_path / "straight")
    p = run_recipe(tmp_path / "paused", "stop_at=4")
    assert "continue with --resume" in p.stdout and not (tmp_path / "paused" / "final").exists()
    subprocess.run([sys.executable, str(ROOT / "recipes" / "train_esa.py"), "--config",
                    str(ROOT / "recipes" / "configs" / "esa" / "conv_sanity.yaml"), f"out={tmp_path / 'paused'}",
                    "steps=8", "eval_every=100", "eval_pairs=16", f"data_root={ROOT}", "--resume"],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "paused" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "paused" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == [str(i) for i in range(1, 9)]


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path):
    """A run killed after its last checkpoint leaves log rows the resumed run will write again."""
    run_recipe(tmp_path / "r", "stop_at=4")
    log = tmp_path / "r" / "log.csv"
    log.write_text(log.read_text() + "5,9.9,0,0,,\n6,9.9,0,0,,\n")  # rows of steps never checkpointed
    subprocess.run([sys.executable, str(ROOT / "recipes" / "train_esa.py"), "--config",
                    str(ROOT / "recipes" / "configs" / "esa" / "conv_sanity.yaml"), f"out={tmp_path / 'r'}",
                    "steps=8", "eval_every=100", "eval_pairs=16", f"data_root={ROOT}", "--resume"],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    steps = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 9)] and "9.9" not in log.read_text()
