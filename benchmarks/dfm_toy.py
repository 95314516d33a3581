"""Toy benchmark of Stark et al. (2024), Fig. 2: Dirichlet FM vs linear FM as the alphabet grows.

Sequences of length 4 over K letters, every position drawn independently from its own categorical
target. Two settings:

* ``uniform`` -- the paper's: target ``softmax(U[0, 1))`` per position (near-uniform), a fresh
  batch drawn from it at every training step, the dilated CNN on the expanded simplex input for
  both methods, Euler integration over ``alpha`` in ``[1, 8]`` (``t = alpha - 1`` in ``[0, 7]``)
  with 19 steps, argmax decoding;
* ``peaked`` -- the project's harder target: ``Dir(1)`` probabilities per position (a few letters
  carry most of the mass), the path's end time and decoding from
  :func:`bioseq.design.default_schedule` (``t_max = 2K`` and sampling the final posterior for
  ``K > 8``), the same network, budget and step count.

Both methods get the same network, budget (steps x batch, learning rate with cosine decay and an
EMA of the weights, the training defaults of ``bioseq.design``) and the same number of Euler steps.
Reported: KL(empirical || target) of the per-position marginals of ``N`` designs, averaged over
positions; the sampling floor (KL of ``N`` exact draws from the target, about ``(K - 1) / 2N``); and
"exact": the same sampler with the exact posterior in place of the network, which separates what
the network gets wrong from what the sampler and decoding cost.

    nice -n 10 python benchmarks/dfm_toy.py                    # the reported sweep (resumable)
    python benchmarks/dfm_toy.py --K 4 20 --train-steps 100 --n-samples 2000 --seeds 0 --out /tmp/toy

Results are appended to ``toy.json`` after every run (a rerun skips what is there) and
``toy.{md,png}`` are rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from bioseq.design import (
    DilatedCNN,
    DirichletPath,
    FlowModel,
    LinearPath,
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


def make_target(setting: str, K: int, L: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * seed + K)
    if setting == "uniform":
        return torch.softmax(torch.rand(L, K, generator=g, dtype=torch.float64), -1)
    e = torch.empty(L, K, dtype=torch.float64).exponential_(generator=g)  # Dir(1) = normalised Exp(1)
    return e / e.sum(-1, keepdim=True)


class ExactPosterior(nn.Module):
    """The Bayes posterior ``p(x1 | x_t)`` of a product-of-categoricals target, as logits.

    Dirichlet path: ``x_t | x1 = e_i ~ Dir(1 + t e_i)``, so ``p_i ~ pi_i x_i^t``. Linear path:
    ``x_s = (1 - s) x0 + s e_i`` with ``x0 ~ Dir(1)`` (constant density), so ``p_i ~ pi_i`` on the
    letters with ``x_i >= s`` and 0 elsewhere."""

    def __init__(self, target: torch.Tensor, kind: str) -> None:
        super().__init__()
        self.register_buffer("log_pi", target.double().log())  # (L, K)
        self.kind, self.K, self.num_classes, self.config = kind, target.shape[1], 0, {"arch": "exact"}
        self.dummy = nn.Parameter(torch.zeros(()))  # the sampler reads the device from a parameter

    def forward(self, x: torch.Tensor, tau: torch.Tensor, cls=None) -> torch.Tensor:
        x = x.double()
        if self.kind == "dirichlet":
            t = torch.expm1(tau.double())[:, None, None]
            return self.log_pi + t * x.clamp_min(1e-300).log()
        s = tau.double()[:, None, None]
        return self.log_pi + torch.where(x >= s - 1e-9, 0.0, -1e4)


def build_path(setting: str, method: str, K: int, c_table: int, time_scale: float = 0.0):
    if method == "linear":
        return LinearPath(K=K), "argmax"
    if setting == "uniform":
        return DirichletPath(K=K, t_max=7.0, c_table=c_table, time_scale=time_scale, grid="linear"), "argmax"  # the paper's Euler steps on alpha
    t_max, decode = default_schedule(K)
    return DirichletPath(K=K, t_max=t_max, c_table=c_table, time_scale=time_scale), decode


def one_run(setting: str, K: int, seed: int, args) -> dict:
    L = args.seq_len
    target = make_target(setting, K, L, seed)
    g = torch.Generator().manual_seed(seed)
    exact = torch.stack([torch.multinomial(target[i], args.n_samples, replacement=True, generator=g) for i in range(L)], 1)
    row = {"setting": setting, "K": K, "seed": seed, "floor": kl_empirical(exact, target), "floor_formula": (K - 1) / (2 * args.n_samples)}
    alphabet = "".join(chr(0x100 + i) for i in range(K))

    def draw(b: int) -> torch.Tensor:  # a fresh batch from the target at every step
        return torch.multinomial(target, b, replacement=True).T  # (b, L)

    for method in ("dirichlet", "linear"):
        path, decode = build_path(setting, method, K, args.c_table, args.time_scale)
        row[f"{method}_t_max"], row["decode_" + method] = path.t_max, decode
        torch.manual_seed(seed)
        model = FlowModel(path, DilatedCNN(K=K, d=args.d, features=args.features), seq_len=L, alphabet=alphabet, decode=decode,
                          evidence=args.evidence and method == "dirichlet")
        fit = train_flow(model, draw, steps=args.train_steps, batch_size=args.batch_size, lr=args.lr, seed=seed, log_every=0,
                         ema_decay=None if args.no_ema else 0.999, min_lr_ratio=1.0 if args.constant_lr else 0.01)
        row[f"{method}_train_s"] = fit["seconds"]
        row[f"{method}_loss"] = sum(fit["losses"][-100:]) / min(100, len(fit["losses"]))
        oracle = FlowModel(path, ExactPosterior(target, path.kind), seq_len=L, alphabet=alphabet, decode=decode)
        # the first integrator is the reported one (key "dirichlet" / "linear"); the others get a suffix
        for i, integ in enumerate(args.integrators):
            key, steps = method + ("" if i == 0 else f"_{integ}"), integrator_steps(integ, args.steps)
            t0 = time.time()
            designs = sample(model, args.n_samples, steps=steps, batch_size=args.sample_batch,
                             generator=torch.Generator().manual_seed(seed + 1), method=integ)
            row[f"{key}_sample_s"], row[key] = time.time() - t0, kl_empirical(designs, target)
            if seed in args.exact_seeds:
                designs = sample(oracle, args.n_samples, steps=steps, batch_size=args.sample_batch,
                                 generator=torch.Generator().manual_seed(seed + 1), method=integ)
                row[method + "_exact" + ("" if i == 0 else f"_{integ}")] = kl_empirical(designs, target)
    return row


def integrator_steps(integ: str, calls: int) -> int:
    """Steps for a budget of ``calls`` denoiser calls per design: Heun calls it twice per step."""
    return calls if integ == "euler" else -(-calls // 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=["uniform", "peaked"], choices=["uniform", "peaked"])
    ap.add_argument("--K", type=int, nargs="+", default=[4, 20, 40, 80, 160])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seq-len", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--d", type=int, default=32, help="CNN width")
    ap.add_argument("--features", default="expanded", choices=["expanded", "log"], help="CNN input features (ablation: log)")
    ap.add_argument("--time-scale", type=float, default=2.0,
                    help="Dirichlet training times s * Exp(1), the paper's (0: uniform on [0, t_max])")
    ap.add_argument("--n-samples", type=int, default=100_000)
    ap.add_argument("--sample-batch", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=19,
                    help="denoiser calls per design for both methods (the paper's 19 Euler steps; Heun takes half as many steps)")
    ap.add_argument("--integrators", nargs="+", default=["heun", "euler"], choices=["heun", "euler"],
                    help="ODE integrators, each sampled from the same trained model; the first is the reported one")
    ap.add_argument("--c-table", type=int, default=4096, help="interpolated C (0: exact)")
    ap.add_argument("--exact-seeds", type=int, nargs="*", default=[0], help="seeds that also run the exact posterior")
    ap.add_argument("--evidence", action=argparse.BooleanOptionalAction, default=True,
                    help="Dirichlet FM adds the path's exact log-likelihood t log x to the network's logits "
                         "(--no-evidence: the plain network, toy_plain.json)")
    ap.add_argument("--no-ema", action="store_true", help="sample the last iterate (ablation)")
    ap.add_argument("--constant-lr", action="store_true", help="no decay after warm-up (ablation)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in vars(args).items() if k not in ("out", "settings", "K", "seeds", "exact_seeds")}
    store = args.out / "toy.json"
    res = json.loads(store.read_text()) if store.exists() else {"args": meta, "rows": []}
    defaults = vars(ap.parse_args([]))
    res["args"] = {**{k: defaults[k] for k in meta if k not in res["args"]}, **res["args"]}  # options added later
    if res["args"] != meta:
        raise SystemExit(f"{store} holds runs with other settings {res['args']}; use another --out")
    done = {(r["setting"], r["K"], r["seed"]) for r in res["rows"]}
    for seed in args.seeds:  # a whole first seed of both settings before the second
        for setting in args.settings:
            for K in args.K:
                if (setting, K, seed) in done:
                    continue
                t0 = time.time()
                row = one_run(setting, K, seed, args)
                res["rows"].append(row)
                tmp = store.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(res, indent=2) + "\n")
                tmp.replace(store)
                write_report(res, args.out)
                print(f"{setting:8s} K={K:4d} seed {seed}  floor {row['floor']:.5f}  dirichlet {row['dirichlet']:.5f} "
                      f"({row['dirichlet'] / row['floor']:.1f}x)  linear {row['linear']:.5f} ({row['linear'] / row['floor']:.1f}x)  "
                      f"exact {row.get('dirichlet_exact', math.nan):.5f} / {row.get('linear_exact', math.nan):.5f}  {time.time() - t0:.0f}s", flush=True)
    write_report(res, args.out)


def _mean(rows, key):
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else math.nan


def write_report(res: dict, out: Path) -> None:
    a = res["args"]
    lines = []
    titles = {"uniform": "near-uniform target softmax(U[0,1)) (the paper's setting), t in [0, 7], argmax",
              "peaked": "peaked Dir(1) target, t_max and decoding from default_schedule(K)"}
    for setting in ("uniform", "peaked"):
        rows = [r for r in res["rows"] if r["setting"] == setting]
        if not rows:
            continue
        integs = a.get("integrators", ["euler"])
        extra = [i for i in integs[1:] if any(f"dirichlet_{i}" in r for r in rows)]
        lines += [f"### {titles[setting]}", "",
                  f"| K | floor (K-1)/2N (one exact draw) | Dirichlet FM, {integs[0]} (per seed) | Dirichlet / floor | "
                  + "".join(f"Dirichlet, {i} / floor | " for i in extra)
                  + f"linear FM, {integs[0]} (per seed) | linear / floor | " + "".join(f"linear, {i} / floor | " for i in extra)
                  + f"exact posterior ({integs[0]}), Dirichlet / linear | " + "".join(f"exact ({i}), Dirichlet / linear | " for i in extra)
                  + "t_max, decoding |", "|" + "---|" * (9 + 3 * len(extra))]
        for K in sorted({r["K"] for r in rows}):
            rk = sorted((r for r in rows if r["K"] == K), key=lambda r: r["seed"])
            # ratios to the expected floor: one draw's KL is itself noisy (sd ~ mean * sqrt(2 / (K - 1)))
            fl, di, li = _mean(rk, "floor_formula"), _mean(rk, "dirichlet"), _mean(rk, "linear")
            per_d = ", ".join(f"{r['dirichlet']:.5f}" for r in rk)
            per_l = ", ".join(f"{r['linear']:.5f}" for r in rk)
            lines.append(
                f"| {K} | {fl:.6f} ({_mean(rk, 'floor'):.6f}) | {di:.5f} ({per_d}) | {di / fl:.2f} | "
                + "".join(f"{_mean(rk, f'dirichlet_{i}') / fl:.2f} | " for i in extra)
                + f"{li:.5f} ({per_l}) | {li / fl:.2f} | " + "".join(f"{_mean(rk, f'linear_{i}') / fl:.2f} | " for i in extra)
                + f"{_mean(rk, 'dirichlet_exact'):.5f} / {_mean(rk, 'linear_exact'):.5f} | "
                + "".join(f"{_mean(rk, f'dirichlet_exact_{i}'):.5f} / {_mean(rk, f'linear_exact_{i}'):.5f} | " for i in extra)
                + f"{rk[0]['dirichlet_t_max']:g}, {rk[0]['decode_dirichlet']} |")
        lines.append("")
    lines.append(f"Per run: dilated CNN d={a['d']} on the {'expanded simplex' if a['features'] == 'expanded' else '[x, log x]'} input, {a['train_steps']} steps x batch {a['batch_size']} "
                 f"of fresh samples, lr {a['lr']:g} with {'no decay' if a['constant_lr'] else 'cosine decay to 1%'}"
                 f"{'' if a['no_ema'] else ' and EMA 0.999'}"
                 f"{'; Dirichlet FM adds the exact evidence t log x to the network output' if a.get('evidence') else ''}; {a['n_samples']:,} designs, {a['steps']} denoiser calls per design "
                 f"(Euler: {a['steps']} steps; Heun: {-(-a['steps'] // 2)} steps); Dirichlet training times "
                 f"{'uniform on [0, t_max]' if not a.get('time_scale') else str(a['time_scale']) + ' x Exp(1)'}; "
                 f"KL averaged over the {a['seq_len']} positions; floor = KL of as many exact draws; values are means over seeds.")
    (out / "toy.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s for s in ("uniform", "peaked") if any(r["setting"] == s for r in res["rows"])]
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        rows = [r for r in res["rows"] if r["setting"] == setting]
        Ks = sorted({r["K"] for r in rows})
        for key, style, label in (("dirichlet", "o-", "Dirichlet FM"), ("linear", "s-", "linear FM"), ("floor_formula", "k--", "sampling floor (K-1)/2N"),
                                  ("dirichlet_exact", "C0:", "Dirichlet, exact posterior"), ("linear_exact", "C1:", "linear, exact posterior")):
            ys = [_mean([r for r in rows if r["K"] == K], key) for K in Ks]
            if not all(math.isnan(y) for y in ys):
                ax.plot(Ks, ys, style, label=label, ms=4)
            if key in ("dirichlet", "linear"):
                ax.plot([r["K"] for r in rows], [r[key] for r in rows], style[0], color="C0" if key == "dirichlet" else "C1", alpha=0.35, ms=3)
        ax.set(xscale="log", yscale="log", xlabel="simplex dimension K", ylabel="KL(empirical || target)", title=setting)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "toy.png", dpi=120)


if __name__ == "__main__":
    main()
