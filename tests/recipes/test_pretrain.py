"""The pretraining recipe: every sanity config runs, resume is exact, 2 processes stay in sync."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bioseq.models import load_pretrained

ROOT = Path(__file__).resolve().parents[2]
SANITY = sorted((ROOT / "recipes" / "configs").glob("*/sanity_*.yaml"))


def _recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", ROOT / "recipes" / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_inprocess(config: Path, *overrides: str, resume: bool = False) -> None:
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    argv = ["--config", str(config), *overrides] + (["--resume"] if resume else [])
    cwd = os.getcwd()
    os.chdir(ROOT)  # configs name data/ relative to the repository root
    try:
        _recipe().main(argv)
    finally:
        os.chdir(cwd)


def train_losses(out: Path) -> dict[int, str]:
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return {int(r["step"]): r["loss"] for r in rows if r["split"] == "train"}  # later rows win


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    from bioseq.data import build_store

    path = tmp_path_factory.mktemp("store") / "genomes.zarr"
    build_store([ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz", ROOT / "data/genomes/lambda_NC_001416.fa.gz"], path)
    return str(path)


@pytest.mark.parametrize("config", SANITY, ids=[f"{c.parent.name}/{c.stem}" for c in SANITY])
def test_sanity_config_runs_and_exports(config, store, tmp_path):
    run_inprocess(config, f"output_dir={tmp_path}", f"data.store={store}", "eval.markov_baseline=false")
    losses = train_losses(tmp_path)
    assert len(losses) == 8
    model = load_pretrained(tmp_path / "final")  # the export the backbones' loader reads
    assert model.config.arch and (tmp_path / "final" / "tokenizer.json").exists()
    valid = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "valid"]
    assert valid and all(0.5 < float(r["bits_per_base"]) < 6 for r in valid)


def test_resume_after_kill_is_exact(store, tmp_path):
    cfg = ROOT / "recipes/configs/transformer/sanity_clm.yaml"
    common = [f"data.store={store}", "eval.markov_baseline=false", "train.max_steps=10", "checkpoint.every=3", "eval.every=0"]
    # uninterrupted reference
    run_inprocess(cfg, f"output_dir={tmp_path / 'ref'}", *common)
    # a run killed (SIGKILL, no clean-up) after its step-6 checkpoint, then resumed
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "recipes/pretrain.py", "--config", str(cfg), f"output_dir={killed}", *common],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        if "saved checkpoint step=6" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"
    assert not (killed / "final").exists()
    run_inprocess(cfg, f"output_dir={killed}", *common, resume=True)
    ref, res = train_losses(tmp_path / "ref"), train_losses(killed)
    assert sorted(res) == sorted(ref) == list(range(1, 11))
    assert res == ref  # every step's loss, to the logged 6 decimals


def test_two_processes_disjoint_windows_identical_weights(store, tmp_path):
    cfg = ROOT / "recipes/configs/transformer/sanity_clm.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # --multi_gpu with no GPU runs the processes on CPU with the gloo backend
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "recipes/pretrain.py", "--config", str(cfg),
           f"output_dir={tmp_path}", f"data.store={store}", "eval.markov_baseline=false", "+debug.dump_rank_state=true"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank_{i}.json").read_text()) for i in range(2)]
    w0, w1 = ({tuple(w) for w in rk["windows"]} for rk in ranks)
    assert len(w0) == len(ranks[0]["windows"]) == 8 * 4 * 2  # steps * batch * grad_accum
    assert not (w0 & w1), "ranks read overlapping windows"
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"], "replicas diverged"
