"""Downstream value of a shipped DNA checkpoint: fine-tuned from its weights vs the same architecture
from scratch at the same fine-tuning budget, beside one-hot and k-mer baselines, by stratified
k-fold cross-validation on the bundled labelled sets.

    python benchmarks/starter_downstream.py --model dna-clm-bacteria-tiny            # splice + promoters, 5 folds
    python benchmarks/starter_downstream.py --model DIR --tasks promoters --folds 5 --epochs 20

Every network run on a fold uses the same seed, folds, validation part (which picks the best
epoch) and schedule; only the initial weights differ. Reported: accuracy mean +- standard error
over folds for each model, and the paired pretrained - scratch difference with its standard error
(the target: a gain larger than one standard error). Writes ``benchmarks/results/starter_downstream.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin on shared cores

TASKS = {
    # name: (csv, pooling, head kwargs, batch size)
    "splice": (ROOT / "data/classification/splice_uci/uci_splice_junction_statlog.csv", "positions",
               {"position_dim": 8, "dropout": 0.3}, 32),
    "promoters": (ROOT / "data/classification/promoters_ecoli_uci/uci_ecoli_promotergene.csv", "mean",
                  {"dropout": 0.1}, 16),
}


def run_task(task: str, model_name: str, folds: int, epochs: int, lr: float, seed: int) -> dict:
    import numpy as np
    import torch
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from bioseq.design.data import load_sequence_csv
    from bioseq.finetune import FinetuneConfig, encode_dataset, finetune, predict
    from bioseq.models import SequenceClassifier, build_backbone, load_pretrained
    from bioseq.tokenization import get_tokenizer

    path, pooling, head_kw, bs = TASKS[task]
    codes, labels, classes = load_sequence_csv(path)
    seqs = np.array(["".join("ACGTN"[min(int(c), 4)] for c in row) for row in codes.tolist()])
    y = labels.numpy()
    tok = get_tokenizer("dna-char")
    backbone_cfg = load_pretrained(model_name).backbone.config
    cfg = FinetuneConfig(lr=lr, epochs=epochs, batch_size=bs, weight_decay=0.05, layer_lr_decay=0.9,
                         metric="accuracy", patience=None, seed=seed, progress=False)
    acc = {"pretrained": [], "scratch": [], "one-hot LR": [], "k-mer LR": []}
    seconds = {"pretrained": 0.0, "scratch": 0.0}
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(seqs, y)
    for k, (rest, te) in enumerate(splits):
        tr, va = train_test_split(rest, test_size=1 / 8, stratify=y[rest], random_state=seed + k)
        train, val, test = (encode_dataset(tok, seqs[i], y[i]) for i in (tr, va, te))
        head = dict(num_labels=len(classes), pooling=pooling, seq_len=train.tensors[0].shape[1], **head_kw)
        for name in ("pretrained", "scratch"):
            torch.manual_seed(seed + k)
            if name == "pretrained":
                model = SequenceClassifier.from_pretrained(model_name, **head)
            else:
                model = SequenceClassifier(build_backbone(backbone_cfg), **head)
            t0 = time.time()
            finetune(model, train, val, cfg)
            seconds[name] += time.time() - t0
            acc[name].append(float((predict(model, test).argmax(1) == y[te]).mean()))
        bases = np.array([list(s) for s in seqs])
        acc["one-hot LR"].append(float(make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression(C=0.5, max_iter=2000))
                                       .fit(bases[tr], y[tr]).score(bases[te], y[te])))
        acc["k-mer LR"].append(float(make_pipeline(CountVectorizer(analyzer="char", ngram_range=(1, 6), lowercase=False),
                                                   LogisticRegression(C=0.1, max_iter=2000)).fit(seqs[tr], y[tr]).score(seqs[te], y[te])))
        print(f"{task} fold {k}: " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in acc.items()), flush=True)
    diff = np.array(acc["pretrained"]) - np.array(acc["scratch"])
    return {"task": task, "n": len(y), "classes": list(classes), "folds": folds, "epochs": epochs, "acc": acc,
            "seconds": seconds, "diff_mean": float(diff.mean()), "diff_se": float(diff.std(ddof=1) / np.sqrt(folds))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="shipped checkpoint name or folder")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "starter_downstream.md")
    args = ap.parse_args()

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results = [run_task(t, args.model, args.folds, args.epochs, args.lr, args.seed) for t in args.tasks]
    lines = [f"# Downstream: `{args.model}` fine-tuned vs from scratch", "",
             f"`python benchmarks/starter_downstream.py --model {args.model} --folds {args.folds} --epochs {args.epochs}`: "
             f"stratified {args.folds}-fold cross-validation, each fold's training part minus 1/8 for validation "
             "(picks the best epoch), AdamW lr "
             f"{args.lr}, layer-wise decay 0.9, cosine schedule, the same seed for both networks. Accuracy on "
             "each fold's test part, mean +- standard error over folds.", "",
             "| task | n | pretrained | scratch | pretrained - scratch (paired) | one-hot LR | k-mer (1-6) LR | fine-tune s (pre / scratch) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        def ms(v):
            v = np.asarray(v)
            return f"{v.mean():.4f} +- {v.std(ddof=1) / np.sqrt(len(v)):.4f}"
        a = r["acc"]
        lines.append(f"| {r['task']} | {r['n']} | {ms(a['pretrained'])} | {ms(a['scratch'])} | "
                     f"{r['diff_mean']:+.4f} +- {r['diff_se']:.4f} | {ms(a['one-hot LR'])} | {ms(a['k-mer LR'])} | "
                     f"{r['seconds']['pretrained']:.0f} / {r['seconds']['scratch']:.0f} |")
    lines.append("")
    for r in results:
        verdict = "more than" if r["diff_mean"] > r["diff_se"] else "not more than"
        lines.append(f"- {r['task']}: pretraining changes accuracy by {r['diff_mean']:+.4f} ({verdict} one standard error, "
                     f"{r['diff_se']:.4f}).")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
