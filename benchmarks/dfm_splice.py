"""Class-conditional design of 60-nt primate splice junctions (EI donor / IE acceptor / N).

Data: ``data/classification/splice_uci`` (UCI splice junctions, duplicates removed), split 80/20
per class with a fixed seed. Every generator is trained on the 80% part only, with the same number
of optimiser steps and batch size:

* Dirichlet FM (dilated CNN denoiser, null class dropped in w.p. 0.2), sampled without guidance,
  with classifier-free guidance, and with classifier guidance from a noisy classifier;
* linear FM on the simplex, same denoiser;
* a one-step student distilled from the unguided Dirichlet FM teacher;
* an autoregressive LM of similar size (``bioseq.models.CausalLM``, a 2-layer transformer-tiny backbone,
  a class token in front of the sequence).

Designs are scored by an independent CNN classifier trained on the same 80% of real sequences and
tested on the held-out 20%: the fraction classified as the requested class, the Frechet distance
of its embeddings to the held-out real sequences of that class (the reference "real" row: the
training sequences themselves, same sample size), and the splice-site dinucleotide check
(GT at 30-31 for donors, AG at 28-29 for acceptors). Speed: designs per second for the default (50 Heun steps),
10-step and one-step sampling, as ratios to the default sampler measured in the same run.

    nice -n 10 python benchmarks/dfm_splice.py                  # the reported run
    python benchmarks/dfm_splice.py --train-steps 30 --eval-steps 30 --n-per-class 20 --distill-pairs 30 \
        --teacher-steps 5 --steps 5 --speed-n 20 --out /tmp/dfm_smoke     # seconds-long smoke run

Writes ``benchmarks/results/dfm/splice.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bioseq.design import (
    DilatedCNN,
    DirichletPath,
    FlowModel,
    Guidance,
    LinearPath,
    NoisyClassifier,
    distill,
    fit,
    sample,
    teacher_pairs,
    train_flow,
    train_noisy_classifier,
)
from bioseq.design.data import load_sequence_csv, stratified_split

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "data" / "classification" / "splice_uci" / "uci_splice_junction_statlog.csv"
OUT = Path(__file__).resolve().parent / "results" / "dfm"


class EvalCNN(nn.Module):
    """Independent evaluation classifier on clean one-hot sequences: one convolution, then a
    position-aware dense layer (splice signals sit at fixed offsets from the junction)."""

    def __init__(self, n_classes: int = 3, L: int = 60, d: int = 32, emb: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(4, d, 7, padding=3), nn.ReLU(), nn.Dropout(0.2))
        self.emb = nn.Sequential(nn.Linear(d * L, emb), nn.ReLU())
        self.out = nn.Linear(emb, n_classes)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.one_hot(ids, 4).float().transpose(1, 2))  # (B, d, L)
        return self.emb(h.flatten(1))  # (B, emb)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(ids))


def train_eval_classifier(ids, labels, steps, seed):
    torch.manual_seed(seed)
    clf = EvalCNN()
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(ids), (64,), generator=g)
        loss = F.cross_entropy(clf(ids[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf.eval()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


# -- autoregressive baseline ------------------------------------------------------------------
# Default DNA vocabulary (A=7 C=8 G=9 T=10, pad 4) plus one token per class after it.
ACGT_IDS = torch.tensor([7, 8, 9, 10])


def build_ar(n_classes: int, d_model: int):
    from bioseq.models import CausalLM, build_backbone

    torch.manual_seed(0)
    return CausalLM(build_backbone("transformer-tiny", vocab_size=12 + n_classes, pad_token_id=4, d_model=d_model, n_head=4))


def train_ar(lm, ids, labels, steps, batch_size, lr, seed, max_seconds=None):
    """Next-token training with the same schedule and weight averaging as the flow models
    (:func:`bioseq.design.fit`); ``max_seconds`` gives it the flow model's training time."""
    seqs = torch.cat([(12 + labels)[:, None], ACGT_IDS[ids]], 1)  # (N, 1 + L): class token, bases
    lm.train()

    def loss_fn(idx):
        return lm(seqs[idx], labels=seqs[idx]).loss

    return fit(lm, loss_fn, len(seqs), steps, batch_size, lr, seed, max_seconds, 0, "ar")


@torch.no_grad()
def sample_ar(lm, n, cls, L, seed):
    """Ancestral sampling restricted to the four bases."""
    lm.eval()
    g = torch.Generator().manual_seed(seed)
    out = torch.full((n, 1), 12 + cls, dtype=torch.long)
    for _ in range(L):
        logits = lm(out).logits[:, -1, ACGT_IDS]  # (n, 4)
        nxt = torch.multinomial(logits.softmax(-1), 1, generator=g)
        out = torch.cat([out, ACGT_IDS[nxt]], 1)
    return out[:, 1:] - 7  # back to A0 C1 G2 T3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--d", type=int, default=32, help="CNN denoiser width")
    ap.add_argument("--no-pos-emb", action="store_true", help="no position embedding in the CNN denoisers")
    ap.add_argument("--features", default="expanded", choices=["expanded", "log"], help="CNN input features")
    ap.add_argument("--time-scale", type=float, default=2.0, help="Dirichlet training times t = s * Exp(1) (0: uniform on [0, 8])")
    ap.add_argument("--evidence", action=argparse.BooleanOptionalAction, default=True,
                    help="Dirichlet FM adds the path's exact log-likelihood t log x to the denoiser's logits")
    ap.add_argument("--ar-d", type=int, default=48, help="width of the autoregressive transformer (2 layers)")
    ap.add_argument("--n-per-class", type=int, default=300)
    ap.add_argument("--steps", type=int, default=50, help="integration steps for the flow models (Heun: 2 denoiser calls each)")
    ap.add_argument("--cfg-scale", type=float, default=3.0)
    ap.add_argument("--cg-scale", type=float, default=3.0)
    ap.add_argument("--distill-pairs", type=int, default=1500)
    ap.add_argument("--integrator", default="heun", choices=["heun", "euler"], help="ODE integrator of the flow models")
    ap.add_argument("--teacher-steps", type=int, default=50)
    ap.add_argument("--speed-n", type=int, default=300)
    ap.add_argument("--eval-steps", type=int, default=1500, help="training steps of the evaluation classifier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--dfm-only", action="store_true", help="train and score only Dirichlet FM (with and without CFG)")
    ap.add_argument("--save-models", type=Path, default=None, help="also save the trained models here")
    ap.add_argument("--no-cg", action="store_true", help="skip the noisy classifier and classifier guidance")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    ids, labels, names = load_sequence_csv(CSV)
    tr, te = stratified_split(labels, (0.8, 0.2), seed=args.seed)
    L, C = ids.shape[1], len(names)
    print(f"data: {len(ids)} sequences (train {len(tr)}, held out {len(te)}), classes {names}", flush=True)

    clf = train_eval_classifier(ids[tr], labels[tr], steps=args.eval_steps, seed=args.seed)
    with torch.no_grad():
        acc = float((clf(ids[te]).argmax(-1) == labels[te]).float().mean())
    print(f"evaluation classifier: held-out accuracy {acc:.3f}", flush=True)

    budget = dict(steps=args.train_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, log_every=0)
    timings: dict[str, float] = {}
    path = DirichletPath(K=4, t_max=8.0, time_scale=args.time_scale)
    torch.manual_seed(args.seed)
    cnn = dict(K=4, d=args.d, num_classes=C, seq_len=0 if args.no_pos_emb else L, features=args.features)
    dfm = FlowModel(path, DilatedCNN(**cnn), seq_len=L, class_names=names, evidence=args.evidence)
    timings["dfm"] = train_flow(dfm, ids[tr], labels[tr], cfg_dropout=0.2, **budget)["seconds"]
    print(f"Dirichlet FM trained ({timings['dfm']:.0f}s, {dfm.denoiser.num_parameters()} parameters)", flush=True)

    def keep(name: str, m: FlowModel) -> None:  # saved as soon as trained: a cut-short run keeps them
        if args.save_models:
            m.save_pretrained(args.save_models / name)

    keep("dfm", dfm)
    lin = noisy = lm = student = None
    if not args.dfm_only:  # the baselines
        torch.manual_seed(args.seed)
        lin = FlowModel(LinearPath(K=4), DilatedCNN(**cnn), seq_len=L, class_names=names)
        timings["linear"] = train_flow(lin, ids[tr], labels[tr], cfg_dropout=0.2, **budget)["seconds"]
        print(f"linear FM trained ({timings['linear']:.0f}s)", flush=True)
        keep("linear", lin)
        if not args.no_cg:
            torch.manual_seed(args.seed)
            noisy = NoisyClassifier(K=4, d=32, num_labels=C)
            timings["noisy_classifier"] = train_noisy_classifier(noisy, path, ids[tr], labels[tr], **budget)["seconds"]
            noisy.eval()
            print(f"noisy classifier trained ({timings['noisy_classifier']:.0f}s)", flush=True)
        lm = build_ar(C, args.ar_d)
        # equal training time: as many steps as fit in the Dirichlet FM's training seconds
        r = train_ar(lm, ids[tr], labels[tr], 100 * args.train_steps, args.batch_size, 1e-3, args.seed, max_seconds=timings["dfm"])
        timings["ar"], ar_steps = r["seconds"], r["steps"]
        print(f"autoregressive LM trained ({timings['ar']:.0f}s, {ar_steps} steps, {sum(p.numel() for p in lm.parameters())} parameters)", flush=True)
        # distillation: teacher ODE outputs (unguided Dirichlet FM) from recorded noise
        t0 = time.time()
        pair_cls = torch.arange(args.distill_pairs) % C
        x0, targets = teacher_pairs(dfm, args.distill_pairs, pair_cls, steps=args.teacher_steps, seed=args.seed + 5)
        torch.manual_seed(args.seed)
        student = FlowModel(path, DilatedCNN(**cnn), seq_len=L, class_names=names, kind="distilled")
        distill(student, x0, targets, pair_cls, **budget)
        timings["distill"] = time.time() - t0
        print(f"one-step student distilled ({timings['distill']:.0f}s incl. {args.distill_pairs} teacher samples)", flush=True)
        keep("distilled", student)

    def gen(method: str, c: int, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        if method == "Dirichlet FM":
            return sample(dfm, n, cls=c, steps=args.steps, method=args.integrator, generator=g)
        if method == f"Dirichlet FM + CFG (w={args.cfg_scale:g})":
            return sample(dfm, n, cls=c, steps=args.steps, guidance=Guidance(args.cfg_scale), method=args.integrator, generator=g)
        if method == f"Dirichlet FM + classifier guidance (w={args.cg_scale:g})":
            return sample(dfm, n, cls=c, steps=args.steps, guidance=Guidance(args.cg_scale, classifier=noisy), method=args.integrator, generator=g)
        if method == "linear FM":
            return sample(lin, n, cls=c, steps=args.steps, method=args.integrator, generator=g)
        if method == f"linear FM + CFG (w={args.cfg_scale:g})":
            return sample(lin, n, cls=c, steps=args.steps, guidance=Guidance(args.cfg_scale), method=args.integrator, generator=g)
        if method == "distilled one-step":
            return sample(student, n, cls=c, generator=g)
        if method == "autoregressive LM":
            return sample_ar(lm, n, c, L, seed)
        raise KeyError(method)

    methods = ["Dirichlet FM", f"Dirichlet FM + CFG (w={args.cfg_scale:g})", f"Dirichlet FM + classifier guidance (w={args.cg_scale:g})",
               "linear FM", f"linear FM + CFG (w={args.cfg_scale:g})", "distilled one-step", "autoregressive LM"]
    if args.dfm_only:
        methods = methods[:2]
    elif args.no_cg:
        methods.pop(2)

    def embed(x):
        with torch.no_grad():
            return clf.embed(x).numpy()

    def site_rate(x: torch.Tensor, c: int) -> float:
        if names[c] == "EI":
            return float(((x[:, 30] == 2) & (x[:, 31] == 3)).float().mean())  # GT
        if names[c] == "IE":
            return float(((x[:, 28] == 0) & (x[:, 29] == 2)).float().mean())  # AG
        return float("nan")

    def score(x: torch.Tensor, c: int) -> dict:
        with torch.no_grad():
            pred = clf(x).argmax(-1)
        return {"class_rate": float((pred == c).float().mean()), "fd": frechet(embed(x), embed(ids[te][labels[te] == c])),
                "site": site_rate(x, c), "unique": len({tuple(r) for r in x.tolist()}) / len(x)}

    rows = []
    # reference: real training sequences of each class, same sample size as the designs
    real = {}
    for c in range(C):
        pool = ids[tr][labels[tr] == c]
        pick = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(c))[: args.n_per_class]]
        real[names[c]] = score(pick, c)
    rows.append({"method": "real (training sequences)", "per_class": real, "seconds": 0.0})
    # the FBD ceiling: the same real sequences with their bases shuffled (composition kept, signals gone)
    g = torch.Generator().manual_seed(args.seed)
    shuffled = {}
    for c in range(C):
        pool = ids[tr][labels[tr] == c]
        pick = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(c))[: args.n_per_class]]
        perm = torch.argsort(torch.rand(pick.shape, generator=g), dim=1)
        shuffled[names[c]] = score(pick.gather(1, perm), c)
    rows.append({"method": "shuffled real (ceiling)", "per_class": shuffled, "seconds": 0.0})
    print(f"{'method':52s} " + "  ".join(f"{n}: class% FD site%" for n in names), flush=True)
    for m in methods:
        t0 = time.time()
        per = {names[c]: score(gen(m, c, args.n_per_class, args.seed + 100 + c), c) for c in range(C)}
        rows.append({"method": m, "per_class": per, "seconds": time.time() - t0})
        print(f"{m:52s} " + "  ".join(f"{p['class_rate']:.2f} {p['fd']:6.2f} {p['site']:.2f}" for p in per.values()), flush=True)

    # speed: designs per second on the same batch size, as ratios to the default sampler
    speed = {}
    timed = [
        ("Dirichlet FM, 50 Heun steps (default)", lambda: sample(dfm, args.speed_n, cls=0, steps=50)),
        ("Dirichlet FM, 10 Heun steps", lambda: sample(dfm, args.speed_n, cls=0, steps=10)),
        ("Dirichlet FM + CFG, 50 Heun steps", lambda: sample(dfm, args.speed_n, cls=0, steps=50, guidance=Guidance(args.cfg_scale))),
        ("distilled one-step", lambda: sample(student, args.speed_n, cls=0)),
        ("autoregressive LM (60 tokens)", lambda: sample_ar(lm, args.speed_n, 0, L, 0)),
    ]
    for label, fn in timed[:3] if args.dfm_only else timed:
        t0 = time.time()
        fn()
        speed[label] = args.speed_n / (time.time() - t0)
    ref = speed["Dirichlet FM, 50 Heun steps (default)"]
    for k, v in speed.items():
        print(f"speed {k:32s} {v:9.1f} designs/s  ({v / ref:6.1f}x the default sampler)", flush=True)
    result = {
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "save_models")},
        "data": {"n": len(ids), "train": len(tr), "held_out": len(te), "classes": names},
        "eval_classifier_accuracy": acc, "train_seconds": timings, "ar_steps": None if args.dfm_only else ar_steps, "rows": rows, "speed": speed,
        "params": {"dfm_cnn": dfm.denoiser.num_parameters()} if args.dfm_only else {
            "dfm_cnn": dfm.denoiser.num_parameters(), "ar_lm": sum(p.numel() for p in lm.parameters()),
            "noisy_classifier": noisy.num_parameters() if noisy is not None else 0},
        "load_average": os.getloadavg(), "wall_seconds": time.time() - t_start,
    }
    (args.out / "splice.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, args.out)


def write_report(res: dict, out: Path) -> None:
    names = res["data"]["classes"]
    head = "| method | " + " | ".join(f"{n} class rate | {n} FBD" for n in names) + " | EI GT rate | IE AG rate | unique |"
    lines = [head, "|" + "---|" * (2 * len(names) + 4)]
    for r in res["rows"]:
        p = r["per_class"]
        uniq = sum(v["unique"] for v in p.values()) / len(p)
        lines.append(f"| {r['method']} | " + " | ".join(f"{p[n]['class_rate']:.3f} | {p[n]['fd']:.2f}" for n in names)
                     + f" | {p['EI']['site']:.3f} | {p['IE']['site']:.3f} | {uniq:.3f} |")
    lines += ["", "| sampler | designs/s | ratio to the default |", "|---|---|---|"]
    ref = next(iter(res["speed"].values()))  # the default sampler comes first
    lines += [f"| {k} | {v:.1f} | {v / ref:.1f} |" for k, v in res["speed"].items()]
    a = res["args"]
    lines += ["", f"Evaluation classifier held-out accuracy {res['eval_classifier_accuracy']:.3f}. Budget per generator: "
              f"{a['train_steps']} steps x batch {a['batch_size']} (train seconds: "
              + ", ".join(f"{k} {v:.0f}" for k, v in res["train_seconds"].items())
              + f"); {a['n_per_class']} designs per class; {a['steps']} {a.get('integrator', 'euler').capitalize()} steps; parameters {res['params']}; "
              f"load average during the run {', '.join(f'{x:.1f}' for x in res['load_average'])}."]
    (out / "splice.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    methods = [r["method"] for r in res["rows"]]
    x = np.arange(len(methods))
    for k, n in enumerate(names):
        axes[0].bar(x + (k - 1) * 0.27, [r["per_class"][n]["class_rate"] for r in res["rows"]], 0.27, label=n)
        axes[1].bar(x + (k - 1) * 0.27, [r["per_class"][n]["fd"] for r in res["rows"]], 0.27, label=n)
    axes[0].set_ylabel("fraction classified as requested")
    axes[1].set_ylabel("FBD to held-out real")
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "splice.png", dpi=120)


if __name__ == "__main__":
    main()
