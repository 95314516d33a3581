"""Train a class-conditional Dirichlet flow matching model for DNA design (plus, optionally, the
noisy classifier for classifier guidance and a distilled one-step student).

    python recipes/train_dfm.py recipes/configs/dfm/sanity.yaml
    python recipes/train_dfm.py recipes/configs/dfm/splice_cnn.yaml train.steps=10000

Reads top to bottom: config -> data (held-out split per class) -> model -> flow matching ->
held-out loss -> noisy classifier -> distillation -> checkpoints. Each model folder holds
``config.json`` + ``model.safetensors``, ready for ``bioseq design --model DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bioseq.design import (  # noqa: E402
    DirichletPath,
    FlowModel,
    LinearPath,
    NoisyClassifier,
    build_denoiser,
    default_schedule,
    distill,
    save_module,
    teacher_pairs,
    train_flow,
    train_noisy_classifier,
)
from bioseq.design.data import load_sequence_csv, stratified_split  # noqa: E402
from bioseq.utils.recipe_config import load_recipe_config  # noqa: E402

log = logging.getLogger("train_dfm")


def resolve(p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else ROOT / q


@torch.no_grad()
def heldout_loss(model: FlowModel, ids: torch.Tensor, labels: torch.Tensor, seed: int, reps: int = 4) -> float:
    """Flow matching loss on held-out sequences, averaged over ``reps`` draws of (t, x_t) with a
    fixed seed so runs are comparable."""
    model.eval()
    torch.manual_seed(seed)
    return sum(float(model.loss(ids, labels)) for _ in range(reps)) / reps


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(__doc__)
    cfg = load_recipe_config(argv[0], argv[1:])
    tc = cfg["train"]
    torch.set_num_threads(int(tc["threads"]))
    out = resolve(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)

    # data: one copy of each sequence, a held-out fraction of every class
    ids, labels, names = load_sequence_csv(resolve(cfg["data"]["csv"]))
    tr, ho = stratified_split(labels, (1 - cfg["data"]["holdout"], cfg["data"]["holdout"]), seed=cfg["data"]["seed"])
    K, L = 4, ids.shape[1]

    # model: the path's end time and the decoding rule follow the alphabet size unless set
    t_max, decode = default_schedule(K)
    mc = cfg["model"]
    if mc["path"] == "dirichlet":
        path = DirichletPath(K=K, t_max=float(mc["t_max"] or t_max), time_scale=float(mc.get("time_scale") or 0.0))
    elif mc["path"] == "linear":
        path = LinearPath(K=K)
    else:
        raise SystemExit(f"{argv[0]}: model.path must be dirichlet or linear, got {mc['path']!r}")
    torch.manual_seed(tc["seed"])
    den_cfg = {**mc["denoiser"], "K": K, "num_classes": len(names)}
    if mc.get("position_embedding") and den_cfg.get("arch") == "cnn":
        den_cfg["seq_len"] = L  # splice windows are aligned on the junction: absolute position is signal
    den = build_denoiser(den_cfg)
    model = FlowModel(path, den, seq_len=L, class_names=names, decode=mc["decode"] or decode,
                      evidence=bool(mc.get("evidence", True)) and isinstance(path, DirichletPath))

    # every stage: cosine decay to lr * min_lr_ratio at its last step (or when max_seconds runs out)
    # and the EMA of the weights is what gets saved; the constant-rate last iterate was far worse
    fit = dict(batch_size=tc["batch_size"], lr=tc["lr"], seed=tc["seed"], max_seconds=tc["max_seconds"], log_every=tc["log_every"],
               min_lr_ratio=tc["min_lr_ratio"], warmup=tc["warmup"], ema_decay=tc["ema_decay"],
               mixed_precision=tc.get("mixed_precision", "auto"))
    t0 = time.time()
    res = train_flow(model, ids[tr], labels[tr], steps=tc["steps"], cfg_dropout=tc["cfg_dropout"], **fit)
    metrics = {
        "steps": res["steps"], "train_seconds": res["seconds"], "parameters": den.num_parameters(),
        "lr_first": res["lrs"][0], "lr_last": res["lrs"][-1], "ema": res["ema"],
        "train_loss_last100": sum(res["losses"][-100:]) / len(res["losses"][-100:]),
        "heldout_loss": heldout_loss(model, ids[ho], labels[ho], seed=tc["seed"]),
        "n_train": len(tr), "n_heldout": len(ho), "classes": names,
    }
    model.save_pretrained(out / "model")
    log.info("flow model: %s", metrics)

    if cfg["classifier"]["enabled"] and isinstance(path, DirichletPath):
        torch.manual_seed(tc["seed"])
        clf = NoisyClassifier(K=K, d=cfg["classifier"]["d"], num_labels=len(names))
        r = train_noisy_classifier(clf, path, ids[tr], labels[tr], steps=cfg["classifier"]["steps"], **fit)
        clf.eval()
        with torch.no_grad():
            torch.manual_seed(tc["seed"])
            t = path.sample_time(len(ho))
            acc = (clf(path.sample_xt(ids[ho], t), path.time_feature(t).float()).argmax(-1) == labels[ho]).float().mean()
        metrics["classifier"] = {"steps": r["steps"], "heldout_noisy_accuracy": float(acc)}
        save_module(clf, out / "classifier", {"model_type": "noisy_classifier", "denoiser": clf.config, "class_names": names})

    if cfg["distill"]["enabled"]:
        dc = cfg["distill"]
        classes = torch.arange(dc["pairs"]) % len(names)
        x0, targets = teacher_pairs(model, dc["pairs"], classes, steps=dc["teacher_steps"], seed=tc["seed"] + 1)
        torch.manual_seed(tc["seed"])
        student = FlowModel(path, build_denoiser(den.config), seq_len=L, class_names=names, kind="distilled", decode="argmax")
        r = distill(student, x0, targets, classes, steps=dc["steps"], **fit)
        metrics["distill"] = {"steps": r["steps"], "pairs": dc["pairs"], "final_loss": r["losses"][-1]}
        student.save_pretrained(out / "distilled")

    metrics["wall_seconds"] = time.time() - t0
    fd, tmp = tempfile.mkstemp(prefix=".metrics.", dir=out)
    with os.fdopen(fd, "w") as fh:
        json.dump({"config": cfg, "metrics": metrics}, fh, indent=2)
    os.replace(tmp, out / "metrics.json")
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    main()
