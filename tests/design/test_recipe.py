"""The training recipe's sanity config runs in seconds and its checkpoints feed ``bioseq design``."""

from __future__ import annotations

import importlib.util

import pytest
from Bio import SeqIO
from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.design import FlowModel, load_module
from tests.conftest import ROOT


def test_sanity_config_trains_and_designs(tmp_path):
    spec = importlib.util.spec_from_file_location("train_dfm", ROOT / "recipes" / "train_dfm.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    m = recipe.main([str(ROOT / "recipes/configs/dfm/sanity.yaml"), f"output_dir={tmp_path}"])
    assert m["steps"] == 20 and m["classes"] == ["EI", "IE", "N"]
    # the recipe's default schedule: the last step runs at the floor, lr * min_lr_ratio, and the
    # saved weights are the EMA
    assert m["lr_last"] == pytest.approx(2e-3 * 0.01, rel=1e-12) and m["ema"]
    assert m["heldout_loss"] < 1.5  # below the uniform ln 4 = 1.386 + slack: finite and sane
    model = FlowModel.from_pretrained(tmp_path / "model")
    assert model.seq_len == 60 and model.decode == "argmax"
    assert load_module(tmp_path / "classifier").config["num_labels"] == 3
    assert FlowModel.from_pretrained(tmp_path / "distilled").kind == "distilled"
    out = tmp_path / "d.fa"
    r = CliRunner().invoke(app, ["design", "--model", str(tmp_path / "model"), "--n", "4", "--class", "IE", "--guidance", "1",
                                 "--classifier", str(tmp_path / "classifier"), "--steps", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert [len(rec.seq) for rec in SeqIO.parse(out, "fasta")] == [60] * 4
