"""Toy benchmark of Stark et al. (2024), Fig. 2: Dirichlet FM vs linear FM as the alphabet grows.

Sequences of length 4 over K letters; the target draws each position independently from its own
random categorical distribution (``Dir(1)`` probabilities, fixed by the seed). Both methods train
the same per-position MLP denoiser with the same budget (steps, batch, learning rate) and sample
the same number of sequences with the same number of Euler steps. Reported: KL(empirical || target)
averaged over positions, and the sampling floor, the KL of an exact sample of the same size;
ratios are against that floor, measured in the same run.

    nice -n 10 python benchmarks/dfm_toy.py                       # K = 4 20 40 80 160
    python benchmarks/dfm_toy.py --K 4 20 --train-steps 200       # quick look

Writes ``benchmarks/results/dfm/toy.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bioseq.design import (
    DirichletPath,
    FlowModel,
    LinearPath,
    MLPDenoiser,
    default_schedule,
    sample,
    train_flow,
)

OUT = Path(__file__).resolve().parent / "results" / "dfm"


def kl_empirical(ids: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over positions of KL(empirical || target); ``ids (N, L)``, ``target (L, K)``."""
    K = target.shape[1]
    emp = torch.nn.functional.one_hot(ids, K).double().mean(0)  # (L, K)
    m = emp > 0
    return float((emp[m] * (emp[m].log() - target.double()[m].log())).sum() / ids.shape[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", type=int, nargs="+", default=[4, 20, 40, 80, 160])
    ap.add_argument("--seq-len", type=int, default=4)
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--train-steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=100, help="Euler steps for both methods")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    L = args.seq_len
    rows = []
    for K in args.K:
        torch.manual_seed(args.seed + K)
        target = torch.distributions.Dirichlet(torch.ones(K)).sample((L,))  # (L, K)
        g = torch.Generator().manual_seed(args.seed + K)
        ids = torch.stack([torch.multinomial(target[i], args.train_size, replacement=True, generator=g) for i in range(L)], 1)
        exact = torch.stack([torch.multinomial(target[i], args.n_samples, replacement=True, generator=g) for i in range(L)], 1)
        floor = kl_empirical(exact, target)
        t_max, decode = default_schedule(K)
        row = {"K": K, "floor": floor, "t_max": t_max, "decode": decode}
        for name, path in (("dirichlet", DirichletPath(K=K, t_max=t_max)), ("linear", LinearPath(K=K))):
            torch.manual_seed(args.seed)
            model = FlowModel(path, MLPDenoiser(K=K, d=args.d, seq_len=L), seq_len=L, alphabet="".join(chr(0x100 + i) for i in range(K)), decode=decode)
            fit = train_flow(model, ids, steps=args.train_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, log_every=0)
            t0 = time.time()
            designs, probs = sample(model, args.n_samples, steps=args.steps, generator=torch.Generator().manual_seed(args.seed + 1), return_probs=True)
            row[f"{name}_sample_s"] = time.time() - t0
            row[name] = kl_empirical(designs, target)
            row[f"{name}_loss"] = sum(fit["losses"][-100:]) / min(100, len(fit["losses"]))
            row[f"{name}_train_s"] = fit["seconds"]
            if name == "dirichlet":  # the other decoding of the same final posteriors: why it is chosen by K
                other = "argmax" if decode == "sample" else "sample"
                if other == "argmax":
                    alt = probs.argmax(-1)
                else:
                    alt = torch.multinomial(probs.reshape(-1, K).double(), 1, generator=torch.Generator().manual_seed(args.seed + 2)).view(-1, L)
                row["other_decode"], row["dirichlet_other"] = other, kl_empirical(alt, target)
        rows.append(row)
        print(f"K={K:4d}  floor {floor:.4f}  dirichlet {row['dirichlet']:.4f} ({row['dirichlet'] / floor:.1f}x floor)  "
              f"linear {row['linear']:.4f} ({row['linear'] / floor:.1f}x floor)  linear/dirichlet {row['linear'] / row['dirichlet']:.2f}", flush=True)
    meta = {k: v for k, v in vars(args).items() if k != "out"}
    (args.out / "toy.json").write_text(json.dumps({"args": meta, "rows": rows}, indent=2) + "\n")
    write_report(rows, meta, args.out)


def write_report(rows: list[dict], meta: dict, out: Path) -> None:
    lines = [
        "| K | t_max | decoding | KL Dirichlet FM | KL linear FM | sampling floor | linear / Dirichlet | Dirichlet, other decoding |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['K']} | {r['t_max']:g} | {r['decode']} | {r['dirichlet']:.4f} | {r['linear']:.4f} | {r['floor']:.4f} | "
                     f"{r['linear'] / r['dirichlet']:.2f} | {r['other_decode']}: {r['dirichlet_other']:.4f} |")
    lines.append("")
    lines.append(f"Budget per model: {meta['train_steps']} steps x batch {meta['batch_size']}, MLP d={meta['d']}, "
                 f"{meta['n_samples']} samples, {meta['steps']} Euler steps, seed {meta['seed']}.")
    (out / "toy.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ks = [r["K"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(Ks, [r["dirichlet"] for r in rows], "o-", label="Dirichlet FM")
    ax.plot(Ks, [r["linear"] for r in rows], "s-", label="linear FM")
    ax.plot(Ks, [r["floor"] for r in rows], "k--", label="exact sample (floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simplex dimension K")
    ax.set_ylabel("KL(empirical || target)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "toy.png", dpi=120)


if __name__ == "__main__":
    main()
