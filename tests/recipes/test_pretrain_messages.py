"""What the pretraining recipe tells a user: a missing genome names the setting to change, and a
run cut short by its time limit says the schedule did not finish."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> None:
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    spec = importlib.util.spec_from_file_location("pretrain_recipe_msgs", ROOT / "recipes" / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        mod.main(list(argv))
    finally:
        os.chdir(cwd)


def test_missing_genomes_name_the_setting(tmp_path):
    with pytest.raises(SystemExit, match=r"data\.fasta: .*MG1655-K12.fasta.gz does not exist .*demo\.yaml"):
        _run("--config", str(ROOT / "recipes/configs/transformer/tiny_clm.yaml"), f"output_dir={tmp_path}",
             f"data.store={tmp_path / 'none.zarr'}",
             f"data.fasta=[{tmp_path / 'shared/data/genomes/ecoli_K12_MG1655/MG1655-K12.fasta.gz'}]")


def test_time_limit_warns_that_the_schedule_did_not_finish(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="bioseq.pretrain"):
        _run("--config", str(ROOT / "recipes/configs/transformer/sanity_clm.yaml"), f"output_dir={tmp_path}",
             "train.time_limit_s=0.001", "train.max_steps=50")
    assert any("schedule did not finish" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "final" / "model.safetensors").exists()
