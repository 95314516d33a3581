"""The fine-tuning recipe: the sanity config runs; splits, dedupe, header labels, budgets, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _recipe():
    spec = importlib.util.spec_from_file_location("finetune_recipe", ROOT / "recipes" / "finetune.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(config: str, *overrides: str) -> dict:
    cwd = os.getcwd()
    os.chdir(ROOT)  # configs name data/ relative to the repository root
    try:
        return _recipe().main(["--config", str(ROOT / config), "train.progress=false", *overrides])
    finally:
        os.chdir(cwd)


def test_sanity_config_runs_and_saves_everything(tmp_path):
    res = run("recipes/configs/finetune/sanity.yaml", f"output_dir={tmp_path}")
    assert res["n_sequences"] == 3000 and res["duplicates_removed"] == 184 and res["conflicting_removed"] == 1
    assert res["split"] == {"kind": "stratified", "train": 2400, "val": 300, "test": 300}
    assert res["steps"] == 20 and not res["cut_short_by_time_limit"]
    cm = np.array(res["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 300
    assert res["test"]["accuracy"] == pytest.approx(np.trace(cm) / 300)
    for f in ("history.csv", "results.json", "model/config.json", "model/tokenizer.json", "model/labels.json"):
        assert (tmp_path / f).exists(), f
    from bioseq.models import SequenceClassifier

    clf = SequenceClassifier.from_pretrained(tmp_path / "model")
    assert clf.num_labels == 3 and json.loads((tmp_path / "model/labels.json").read_text()) == ["ei", "ie", "n"]


def test_stratified_and_grouped_splits():
    rec = _recipe()
    y = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va, te = rec.split(y, None, {"split": "stratified", "test_fraction": 0.2, "val_fraction": 0.1}, seed=0)
    assert len(set(tr) | set(va) | set(te)) == 100 and not set(tr) & set(te) and not set(va) & set(te)
    assert [int((y[te] == c).sum()) for c in range(3)] == [10, 6, 4]  # class proportions kept
    groups = np.array([f"g{i % 10}" for i in range(100)])
    tr, va, te = rec.split(y, groups, {"split": "grouped", "test_fraction": 0.2, "val_fraction": 0.2}, seed=1)
    assert not set(groups[te]) & set(groups[tr]) and not set(groups[te]) & set(groups[va])
    assert not set(groups[va]) & set(groups[tr]) and len(te) >= 20
    with pytest.raises(rec.DataError, match="data.group"):
        rec.split(y, None, {"split": "grouped"}, seed=0)


def test_dedupe_keeps_one_copy_and_drops_conflicts():
    keep, n_dup, n_conflict = _recipe().dedupe(["AC", "ac", "GG", "TT", "TT"], ["a", "a", "b", "a", "b"], None)
    assert keep == [0, 2] and n_dup == 2 and n_conflict == 1


def test_fasta_header_labels_and_grouped_split(tmp_path):
    """Proteins labelled by a header field, grouped by another: test groups are unseen in training."""
    rng = np.random.default_rng(0)
    aa = list("ACDEFGHIKLMNPQRSTVWY")
    lines = []
    for i in range(60):
        label, genus = ("kinase", "transporter")[i % 2], f"Genus{i % 6}"
        lines.append(f">sp|P{i:05d}|X_{i} Some protein OS={genus} bacterium OX={i} GN=g{i} FN={label}\n"
                     + "".join(rng.choice(aa, 30 + i)) + "\n")
    fa = tmp_path / "prot.fa"
    fa.write_text("".join(lines))
    res = run("recipes/configs/finetune/sanity.yaml", f"output_dir={tmp_path / 'out'}", f"data.path={fa}",
              "data.format=fasta", "+data.label_field=FN", "data.group=OS", "data.split=grouped",
              "data.test_fraction=0.3", "model.tokenizer=protein-esm", "data.max_length=24", "train.max_steps=4")
    assert res["classes"] == ["kinase", "transporter"] and res["split"]["kind"] == "grouped"
    assert res["split"]["test"] >= 18 and sum(res["split"][k] for k in ("train", "val", "test")) == 60
    rec = _recipe()
    assert rec.header_field("OS", "x", "Some protein OS=Homo sapiens OX=9606 GN=TP53") == "Homo sapiens"
    assert rec.header_field("re:\\|(P\\d+)\\|", "sp|P00001|X", "") == "P00001"


def test_bad_data_path_and_pretrained_give_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="data.path: .*nope.csv does not exist"):
        run("recipes/configs/finetune/sanity.yaml", f"output_dir={tmp_path}", "data.path=nope.csv")
    with pytest.raises(SystemExit, match="model.pretrained=.*demo.sh"):
        run("recipes/configs/finetune/sanity.yaml", f"output_dir={tmp_path}", f"model.pretrained={tmp_path / 'none'}")
    with pytest.raises(SystemExit, match="no key"):
        run("recipes/configs/finetune/sanity.yaml", "train.not_a_key=1")


def test_crops_and_window_prediction():
    from bioseq.finetune import CropDataset, predict_windows
    from bioseq.models import SequenceClassifier, build_backbone
    from bioseq.tokenization import get_tokenizer

    tok = get_tokenizer("dna-char")
    ds = CropDataset(tok, ["ACGT" * 10, "AC"], [0, 1], max_length=9, random_crop=True, seed=0)
    ids, mask, y = ds[0]
    assert ids.shape == (9,) and bool(mask.all()) and int(ids[-1]) == tok.sep_token_id
    assert {tuple(ds[0][0].tolist()) for _ in range(20)} != {tuple(ids.tolist())}  # fresh crops
    ids2, mask2, _ = ds[1]
    assert int(mask2.sum()) == 3 and int(ids2[3]) == tok.pad_token_id
    torch.manual_seed(0)
    model = SequenceClassifier(build_backbone("transformer-tiny", vocab_size=12, d_model=16, n_layer=1, n_head=2), num_labels=2).eval()
    long = "ACGTTGCA" * 5  # 40 bases: windows of 8 bases + [SEP]
    lg = predict_windows(model, tok, [long, "ACGT"], max_length=9, overlap=0)
    windows = [long[i : i + 8] for i in range(0, 40, 8)]
    with torch.no_grad():
        each = torch.stack([model(torch.as_tensor(tok.encode(w))[None]).logits[0] for w in windows])
    np.testing.assert_allclose(lg[0], each.mean(0).numpy(), atol=1e-5)


def test_time_limit_is_checked_every_step(tmp_path):
    from bioseq.finetune import FinetuneConfig, encode_dataset, finetune
    from bioseq.models import SequenceClassifier, build_backbone
    from bioseq.tokenization import get_tokenizer

    tok = get_tokenizer("dna-char")
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(256)]
    data = encode_dataset(tok, seqs, rng.integers(0, 2, 256))
    model = SequenceClassifier(build_backbone("transformer-tiny", vocab_size=12, d_model=16, n_layer=1, n_head=2), num_labels=2)
    t0 = time.time()
    with pytest.warns(UserWarning, match="schedule did not finish"):
        res = finetune(model, data, data, FinetuneConfig(epochs=50, batch_size=8, time_limit_s=0.0, progress=False))
    assert res.cut_short and len(res.steps) == 1 and time.time() - t0 < 30  # one step, not one epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = finetune(model, data, data, FinetuneConfig(epochs=50, batch_size=8, max_steps=5, eval_every=2, progress=False))
    assert len(res.steps) == 5 and not res.cut_short and [r["step"] for r in res.history] == [2, 4, 5]


@pytest.mark.parametrize("config", sorted((ROOT / "recipes/configs/finetune").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_names_shipped_data_and_its_launch_command(config):
    from bioseq.utils.recipe_config import load_recipe_config

    cfg = load_recipe_config(config)
    assert (ROOT / cfg["data"]["path"]).exists()  # runs on what ships in data/
    head = config.read_text().splitlines()
    assert any(f"recipes/finetune.py --config recipes/configs/finetune/{config.name}" in ln for ln in head[:8])
    assert cfg["train"]["max_steps"] and cfg["train"]["time_limit_s"]
