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


def final_tensors_equal(a: Path, b: Path) -> bool:
    """Every exported tensor bit-identical (the safetensors header's metadata order may vary)."""
    from safetensors.torch import load_file

    ta, tb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    return ta.keys() == tb.keys() and all(
        ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape
        and torch_bytes(ta[k]) == torch_bytes(tb[k]) for k in ta)


def torch_bytes(t) -> bytes:
    return t.contiguous().view(-1).numpy().tobytes()


def kill_and_resume(cfg: Path, out: Path, common: list[str], kill_after: int, delay: float) -> None:
    """Run the recipe in a subprocess, SIGKILL it ``delay`` s after its step-``kill_after`` checkpoint
    (possibly in the middle of writing the next one), then resume it in-process to the end."""
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        # a pause after each step: the remaining steps outlast the kill delay, however fast the machine
        [sys.executable, "recipes/pretrain.py", "--config", str(cfg), f"output_dir={out}", *common,
         "+debug.step_delay_s=0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        if f"saved checkpoint step={kill_after} " in line:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"
    assert not (out / "final").exists()
    run_inprocess(cfg, f"output_dir={out}", *common, resume=True)


RESUME_DEFAULT = {"hyena/sanity_clm"}  # dropout, sequence warm-up and accumulation; the rest run in -m slow


@pytest.mark.parametrize("config", [
    pytest.param(c, marks=[] if f"{c.parent.name}/{c.stem}" in RESUME_DEFAULT else [pytest.mark.slow])
    for c in SANITY], ids=[f"{c.parent.name}/{c.stem}" for c in SANITY])
def test_resume_after_kill_is_bit_identical(config, store, tmp_path):
    """kill -9 at a seeded random moment of a run that checkpoints every step, resume: the final
    weights are bit-identical to an uninterrupted run's, and so is every logged loss."""
    import random

    rng = random.Random(config.stem + config.parent.name)
    common = [f"data.store={store}", "eval.markov_baseline=false", "train.max_steps=12", "checkpoint.every=1",
              "checkpoint.keep_last=2"]
    run_inprocess(config, f"output_dir={tmp_path / 'ref'}", *common)
    kill_and_resume(config, tmp_path / "killed", common, kill_after=rng.randint(3, 9), delay=rng.uniform(0, 0.3))
    ref, res = train_losses(tmp_path / "ref"), train_losses(tmp_path / "killed")
    assert sorted(res) == sorted(ref) == list(range(1, 13))
    assert res == ref  # every step's loss, to the logged 6 decimals
    assert final_tensors_equal(tmp_path / "ref", tmp_path / "killed")


def test_checkpoints_appear_complete_and_torn_state_is_skipped(store, tmp_path):
    """Checkpoint folders appear only complete; one whose trainer_state.json is torn (or whose step
    disagrees with its name) is never resumed from, and a stale .partial folder is removed."""
    recipe = _recipe()
    cfg = ROOT / "recipes/configs/transformer/sanity_clm.yaml"
    common = [f"output_dir={tmp_path}", f"data.store={store}", "eval.markov_baseline=false", "eval.every=0",
              "train.max_steps=4", "checkpoint.every=1", "checkpoint.keep_last=3"]
    run_inprocess(cfg, *common)
    ckpt = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_2", "step_3", "step_4"]
    assert recipe.latest_checkpoint(ckpt).name == "step_4"
    (ckpt / "step_4" / "trainer_state.json").write_text("")  # a write cut short by a kill
    assert recipe.latest_checkpoint(ckpt).name == "step_3"
    (ckpt / "step_3" / "trainer_state.json").write_text('{"step": 7}')
    assert recipe.latest_checkpoint(ckpt).name == "step_2"
    (ckpt / ".step_5.partial").mkdir()
    run_inprocess(cfg, *common, "train.max_steps=5", resume=True)  # resumes from step_2, not 3 or 4
    assert not (ckpt / ".step_5.partial").exists()
    assert json.loads((ckpt / "step_5" / "trainer_state.json").read_text())["step"] == 5
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "train"]
    assert [r["step"] for r in rows][-3:] == ["3", "4", "5"]  # steps 3-5 redone after the resume


def test_fresh_run_refuses_an_earlier_runs_folder(store, tmp_path, capsys):
    """A fresh run over an earlier run's checkpoints would leave them for a later --resume: refused
    with a message naming them; --overwrite deletes them and starts afresh."""
    cfg = ROOT / "recipes/configs/transformer/sanity_clm.yaml"
    common = [f"output_dir={tmp_path}", f"data.store={store}", "eval.markov_baseline=false", "eval.every=0",
              "train.max_steps=3", "checkpoint.every=1"]
    run_inprocess(cfg, *common)
    before = (tmp_path / "final" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match=r"holds an earlier run \(checkpoints/step_2, checkpoints/step_3, final.*--resume.*--overwrite"):
        run_inprocess(cfg, *common, "train.max_steps=2")
    assert (tmp_path / "final" / "model.safetensors").read_bytes() == before  # untouched
    run_inprocess(cfg, *common, "train.max_steps=2", "--overwrite")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_1", "step_2"]
    assert sorted(train_losses(tmp_path)) == [1, 2]  # a new metrics.csv, not appended to the old one


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


@pytest.fixture(scope="module")
def three_genome_store(tmp_path_factory) -> str:
    """E. coli (trains), phage lambda and a synthetic 80%-AT genome (two separate held-out sets)."""
    import numpy as np

    from bioseq.data import build_store

    d = tmp_path_factory.mktemp("store3")
    rng = np.random.default_rng(0)
    at_rich = "".join(rng.choice(list("ACGT"), size=20_000, p=[0.4, 0.1, 0.1, 0.4]))
    (d / "atrich.fa").write_text(">atrich_1\n" + at_rich + "\n")
    path = d / "genomes.zarr"
    build_store([ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz", ROOT / "data/genomes/lambda_NC_001416.fa.gz",
                 d / "atrich.fa"], path)
    return str(path)


def test_eval_sets_are_scored_separately(three_genome_store, tmp_path):
    """eval.sets: each held-out set gets its own bits/base and Markov rows, on its own windows."""
    import numpy as np
    import torch

    from bioseq.data import GenomeWindowDataset
    from bioseq.eval import best_markov
    from bioseq.eval.lm import causal_bits
    from bioseq.tokenization import load_tokenizer

    cfg = ROOT / "recipes/configs/transformer/sanity_clm.yaml"
    run_inprocess(cfg, f"output_dir={tmp_path}", f"data.store={three_genome_store}",
                  "data.holdout_genomes=[lambda_NC_001416, atrich]", "+eval.sets={phage: [lambda_NC_001416], atrich: [atrich]}",
                  "+debug.dump_rank_state=true")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    splits = {r["split"] for r in rows}
    assert {"valid:phage", "valid:atrich"} <= splits and "valid" not in splits
    assert {s.split(":")[-1] for s in splits if s.startswith("markov_k")} == {"phage", "atrich"}
    final = {r["split"]: float(r["bits_per_base"]) for r in rows if r["step"] == "8" and r["split"].startswith("valid")}

    # training read E. coli only: neither held-out set
    train = GenomeWindowDataset(three_genome_store, 256, split="train", holdout_genomes=["lambda_NC_001416", "atrich"])
    contigs = {w[0] for w in json.loads((tmp_path / "rank_0.json").read_text())["windows"]}
    assert contigs <= set(train.sampler.contig_ids.tolist())

    # each set's logged score is the exported model's score on that set's windows alone
    model = load_pretrained(tmp_path / "final").eval()
    tok = load_tokenizer(tmp_path / "final" / "tokenizer.json")
    nuc = torch.as_tensor(tok.encode_codes(np.arange(4, dtype=np.uint8)))
    train_seqs = [train.store.fetch(int(i)) for i in train.sampler.contig_ids]
    markov = {r["split"].split(":")[-1]: float(r["bits_per_base"]) for r in rows if r["split"].startswith("markov_k")}
    for name, genome in (("phage", "lambda_NC_001416"), ("atrich", "atrich")):
        ev = GenomeWindowDataset(three_genome_store, 256, seed=1, split="valid", rc=False, samples_per_epoch=8,
                                 holdout_genomes=[genome])
        assert ev.sampler.genomes == [genome]
        codes = ev.get_batch(list(range(len(ev))))["seq"].numpy()
        with torch.no_grad():
            bits, n = causal_bits(model, torch.as_tensor(tok.encode_codes(codes)), nuc)
        assert final[f"valid:{name}"] == pytest.approx(bits / n, abs=2e-5)
        mk, scores = best_markov(train_seqs, codes, orders=range(0, 5))
        assert markov[name] == pytest.approx(scores[mk.k], abs=2e-5)
    assert abs(markov["phage"] - markov["atrich"]) > 0.02  # two different sets, not one scored twice


def test_eval_sets_must_be_held_out():
    from bioseq.utils.recipe_config import RecipeConfigError, eval_sets

    data = {"holdout_genomes": ["lambda"], "holdout_contigs": ["chrM"]}
    assert eval_sets({"data": data, "eval": {}}) == {"valid": data}
    assert eval_sets({"data": data, "eval": {"sets": {"phage": "lambda"}}}) == {
        "valid:phage": {"holdout_genomes": ["lambda"], "holdout_contigs": []}}
    with pytest.raises(RecipeConfigError, match="ecoli"):  # a genome training reads cannot be a held-out set
        eval_sets({"data": data, "eval": {"sets": {"other": ["ecoli"]}}})


@pytest.mark.parametrize("config", sorted((ROOT / "recipes" / "configs").glob("*/tiny_*lm.yaml")), ids=lambda c: f"{c.parent.name}/{c.stem}")
def test_tiny_config_eval_sets_name_its_genomes(config):
    from bioseq.data.store import default_genome_name
    from bioseq.utils.recipe_config import eval_sets, load_recipe_config

    cfg = load_recipe_config(config)
    genomes = {default_genome_name(f) for f in cfg["data"]["fasta"]}
    sets = eval_sets(cfg)
    assert set(cfg["data"]["holdout_genomes"]) <= genomes
    assert set().union(*(kw["holdout_genomes"] for kw in sets.values())) == set(cfg["data"]["holdout_genomes"])
    assert genomes - set(cfg["data"]["holdout_genomes"]), "nothing left to train on"


def test_mlm_run_logs_the_two_sided_context_baseline(store, tmp_path):
    """A masked LM sees both sides of a base: its run logs the best two-sided context model beside
    the Markov chain, fitted on the training genomes and scored on the same held-out windows."""
    from bioseq.data import GenomeWindowDataset
    from bioseq.eval.markov import ContextModel, best_context

    cfg = ROOT / "recipes/configs/transformer/sanity_mlm.yaml"
    run_inprocess(cfg, f"output_dir={tmp_path}", f"data.store={store}", "eval.markov_baseline=true", "+eval.context_max_order=3")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    ctx = [r for r in rows if r["split"].startswith("context_k")]
    markov = [r for r in rows if r["split"].startswith("markov_k")]
    assert len(ctx) == 1 and len(markov) == 1
    from bioseq.utils.recipe_config import eval_sets, load_recipe_config

    rc = load_recipe_config(str(cfg), [f"data.store={store}"])
    (kw,) = eval_sets(rc).values()
    train = GenomeWindowDataset(store, 256, split="train", holdout_genomes=rc["data"]["holdout_genomes"])
    ev = GenomeWindowDataset(store, rc["eval"]["window"], seed=rc["seed"] + 1, split="valid", rc=False,
                             samples_per_epoch=rc["eval"]["n_windows"], **kw)
    model = ContextModel(3).fit([train.store.fetch(int(i)) for i in train.sampler.contig_ids])
    k, scores = best_context(model, ev.get_batch(list(range(len(ev))))["seq"].numpy())
    assert ctx[0]["split"].startswith(f"context_k{k}")
    assert float(ctx[0]["bits_per_base"]) == pytest.approx(scores[k], abs=2e-5)
    assert scores[k] < float(markov[0]["bits_per_base"])  # two sides beat one on E. coli-like DNA


@pytest.mark.slow
def test_compiled_training_matches_eager(store, tmp_path):
    """train.compile=true trains the same model as eager (same data, same steps) up to float
    reassociation in the fused kernels."""
    import csv

    cfg = ROOT / "recipes" / "configs" / "transformer" / "sanity_clm.yaml"
    common = [f"data.store={store}", "eval.markov_baseline=false", "train.max_steps=6", "train.mixed_precision=no"]
    run_inprocess(cfg, f"output_dir={tmp_path / 'eager'}", *common)
    run_inprocess(cfg, f"output_dir={tmp_path / 'compiled'}", *common, "train.compile=true")
    loss = {}
    for name in ("eager", "compiled"):
        rows = [r for r in csv.DictReader(open(tmp_path / name / "metrics.csv")) if r["split"] == "train"]
        loss[name] = [float(r["loss"]) for r in rows]
    assert len(loss["eager"]) == len(loss["compiled"]) > 0
    for a, b in zip(loss["eager"], loss["compiled"]):
        assert a == pytest.approx(b, rel=1e-3)
