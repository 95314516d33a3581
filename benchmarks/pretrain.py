"""Pretraining benchmark: every backbone's ``tiny`` CLM config on the same data and token budget,
scored in bits per base on a held-out genome beside the best order-k Markov chain fitted on the
same training genomes in the same run.

    python benchmarks/pretrain.py                       # all recipes/configs/*/tiny_clm.yaml
    python benchmarks/pretrain.py --steps 300 --backbones hyena mamba transformer

Writes ``benchmarks/results/pretrain.md`` (table) and ``pretrain_loss_curves.png``. Each run is
a separate process of recipes/pretrain.py (the same code users run), with the same overrides.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_config(cfg: Path, out: Path, steps: int, extra: list[str]) -> float:
    args = [sys.executable, "recipes/pretrain.py", "--config", str(cfg), f"output_dir={out}", f"train.max_steps={steps}",
            "train.time_limit_s=null", f"eval.every={steps}", f"checkpoint.every={steps}", "eval.markov_baseline=false",
            f"train.seq_warmup.steps_per_stage={max(1, steps // 10)}", *extra]
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{cfg}: run failed (exit {r.returncode})")
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps per backbone (same tokens for all)")
    ap.add_argument("--backbones", nargs="*", help="subset of recipes/configs/<backbone>/tiny_clm.yaml")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_pretrain")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain.md")
    ap.add_argument("--reuse", action="store_true", help="skip backbones whose run folder already holds a finished run")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run (e.g. data.window=512)")
    args = ap.parse_args()

    import numpy as np

    from bioseq.data import GenomeWindowDataset, build_store
    from bioseq.eval import best_markov
    from bioseq.utils.recipe_config import load_recipe_config

    configs = sorted((ROOT / "recipes" / "configs").glob("*/tiny_clm.yaml"))
    if args.backbones:
        configs = [c for c in configs if c.parent.name in args.backbones]
    base = load_recipe_config(configs[0], args.overrides)
    d, e = base["data"], base["eval"]
    store = str(ROOT / d["store"]) if d.get("store") else str(args.runs / "genomes.zarr")
    if not Path(store).exists():
        build_store([ROOT / f for f in d["fasta"]], store, progress=True)
    extra = [f"data.store={store}", *args.overrides]

    results = []
    for cfg in configs:
        bb = cfg.parent.name
        out = args.runs / bb
        finished = out / "metrics.csv"
        if args.reuse and finished.exists() and any(r["split"] == "valid" and int(r["step"]) == args.steps
                                                    for r in csv.DictReader(open(finished))):
            print(f"== {bb}: reusing the finished run in {out}", flush=True)
            wall = float("nan")
        else:
            print(f"== {bb}: {args.steps} steps", flush=True)
            wall = run_config(cfg, out, args.steps, extra)
        rows = list(csv.DictReader(open(out / "metrics.csv")))
        train = [r for r in rows if r["split"] == "train"]
        # a run folder reused after an interrupted attempt holds several runs: keep the last one
        train = train[max(i for i, r in enumerate(train) if int(r["step"]) == 1):]
        valid = [r for r in rows if r["split"] == "valid"]
        results.append({
            "backbone": bb, "size": load_recipe_config(cfg)["model"]["size"],
            "bpb": float(valid[-1]["bits_per_base"]), "tokens": int(train[-1]["tokens"]),
            "tok_s": float(train[-1]["tokens_per_s"]), "wall": float(train[-1]["elapsed_s"]) if wall != wall else wall,
            "curve": [(int(r["tokens"]), float(r["bits_per_base"])) for r in train],
        })
        print(f"   held-out {results[-1]['bpb']:.4f} bits/base, {results[-1]['tok_s']:,.0f} tokens/s", flush=True)

    # The Markov reference, in the same run, on exactly the recipe's evaluation windows.
    split_kw = dict(holdout_genomes=d.get("holdout_genomes") or [], holdout_contigs=d.get("holdout_contigs") or [])
    seed = int(base.get("seed", 0))
    ev = GenomeWindowDataset(store, int(e.get("window", d["window"])), seed=seed + 1, split="valid", rc=False,
                             samples_per_epoch=int(e["n_windows"]), **split_kw)
    tr = GenomeWindowDataset(store, int(d["window"]), seed=seed, split="train", **split_kw)
    windows = ev.get_batch(list(range(len(ev))))["seq"].numpy()
    t0 = time.time()
    markov, scores = best_markov([tr.store.fetch(int(i)) for i in tr.sampler.contig_ids], windows,
                                 orders=range(0, int(e.get("markov_max_order", 10)) + 1))
    print(f"== Markov: best k={markov.k} {scores[markov.k]:.4f} bits/base ({time.time() - t0:.0f}s)")

    lines = [
        "# Pretraining: bits per base on a held-out genome",
        "",
        f"Held out: {', '.join(ev.sampler.genomes)}; trained on {', '.join(tr.sampler.genomes)}. "
        f"Every backbone: {args.steps} optimizer steps, {results[0]['tokens']:,} training tokens, window {d['window']}, "
        f"the same data order. Scored on the same {len(windows)} held-out windows "
        "(A/C/G/T targets at positions 1..L-1).",
        "",
        "| model | bits/base (held-out) | vs best Markov | tokens/s (CPU) | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    ref = scores[markov.k]
    for r in sorted(results, key=lambda r: r["bpb"]):
        lines.append(f"| {r['size']} | {r['bpb']:.4f} | {r['bpb'] - ref:+.4f} | {r['tok_s']:,.0f} | {r['wall']:.0f} |")
    for k in sorted({2, 4, 6, 8, markov.k} & set(scores)):
        lines.append(f"| order-{k} Markov{' (best)' if k == markov.k else ''} | {scores[k]:.4f} | {scores[k] - ref:+.4f} | | |")
    beat = [r["size"] for r in results if r["bpb"] < ref]
    lines += ["", f"Backbones below the best Markov chain: {', '.join(beat) if beat else 'none'} "
              f"({len(beat)}/{len(results)}).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for r in results:
            x, y = zip(*r["curve"], strict=True)
            k = max(1, len(y) // 50)  # light smoothing: running mean over ~2% of the run
            ys = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(np.array(x[k - 1 :]) / 1e6, ys, label=f"{r['size']} (held-out {r['bpb']:.3f})")
        ax.axhline(ref, color="k", ls="--", lw=1, label=f"order-{markov.k} Markov, held-out ({ref:.3f})")
        ax.set_xlabel("training tokens (M)")
        ax.set_ylabel("training bits per base")
        ax.set_ylim(ref - 0.15, 2.1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out.with_name("pretrain_loss_curves.png"), dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
