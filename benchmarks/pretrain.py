"""Pretraining benchmark: every backbone's ``tiny`` CLM config on the same data and token budget,
scored in bits per base on each held-out set of the config (``eval.sets``: a held-out strain and
a held-out species) beside the best order-k Markov chain, per set, fitted on the same training
genomes in the same run.

    python benchmarks/pretrain.py                       # all recipes/configs/*/tiny_clm.yaml, as configured
    python benchmarks/pretrain.py --steps 300 --backbones hyena mamba transformer

Every ``recipes/configs/<backbone>/tiny*_clm.yaml`` is a run (``tiny_deep_clm.yaml`` -> run
``<backbone>_deep``). Each trained model's forward FLOPs per base are counted on held-out windows
(``bioseq.eval.forward_flops_per_token``; an H-Net's on the chunks its trained router selects), so
models can be compared at equal compute as well as at equal tokens.

Writes ``benchmarks/results/pretrain.md`` (table) and ``pretrain_loss_curves.png``. Each run is
a separate process of recipes/pretrain.py (the same code users run), with the same overrides.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_config(cfg: Path, out: Path, steps: int, extra: list[str]) -> float:
    args = [sys.executable, "recipes/pretrain.py", "--config", str(cfg), "--overwrite", f"output_dir={out}", f"train.max_steps={steps}",
            "train.time_limit_s=null", f"eval.every={max(1, steps // 2)}", f"checkpoint.every={steps}", "eval.markov_baseline=false",
            f"train.seq_warmup.steps_per_stage={max(1, steps // 10)}", *extra]
    t0 = time.time()
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONPATH": str(ROOT)}  # idle OpenMP threads must not spin
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{cfg}: run failed (exit {r.returncode})")
    return time.time() - t0


def in_window_composition_bits(windows) -> float:
    """Bits/base of an adaptive order-0 model that knows nothing but the bases earlier in the same
    window (Krichevsky-Trofimov counts, ``(c + 1/2) / (n + 2)``), on the positions the networks are
    scored on: what in-context adaptation to base composition alone is worth."""
    import numpy as np

    from bioseq.alphabet import CODE_MASK

    w = np.asarray(windows) & CODE_MASK
    onehot = (w[..., None] == np.arange(4)).astype(np.float64)  # (N, L, 4); ambiguity codes count nowhere
    before = np.cumsum(onehot, axis=1) - onehot  # counts of each base at positions < i
    p = (before + 0.5) / (before.sum(-1, keepdims=True) + 2.0)
    scored = onehot[:, 1:]
    return float(-(np.log2(p[:, 1:]) * scored).sum() / scored.sum())


def model_flops(final: Path, windows) -> tuple[float, float | None]:
    """Forward FLOPs per base of the exported model on ``windows (N, L)`` of held-out sequence, and
    (H-Net) the fraction of positions its trained router makes chunk boundaries."""
    import torch

    from bioseq.eval import forward_flops_per_token
    from bioseq.models import load_pretrained
    from bioseq.tokenization import load_tokenizer

    model = load_pretrained(final).eval()
    ids = torch.as_tensor(load_tokenizer(final / "tokenizer.json").encode_codes(windows))
    flops = forward_flops_per_token(model, ids)
    fraction = getattr(model.backbone, "boundary_fraction", None)
    return flops, (float(fraction[0]) if fraction else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, help="optimizer steps per backbone, same tokens for all (default: the configs' max_steps)")
    ap.add_argument("--backbones", nargs="*", help="subset of the runs, by name (hyena, transformer_deep, ...)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_pretrain")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain.md")
    ap.add_argument("--reuse", action="store_true", help="skip backbones whose run folder already holds a finished run")
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for every run (e.g. data.window=512)")
    args = ap.parse_args()

    import numpy as np

    from bioseq.data import GenomeWindowDataset, build_store
    from bioseq.eval import MarkovModel, best_order
    from bioseq.utils.recipe_config import eval_sets, load_recipe_config

    def run_name(cfg: Path) -> str:
        return cfg.parent.name + cfg.stem.removeprefix("tiny").removesuffix("_clm")

    configs = sorted((ROOT / "recipes" / "configs").glob("*/tiny*_clm.yaml"))
    if args.backbones:
        configs = [c for c in configs if run_name(c) in args.backbones]
    base = load_recipe_config(configs[0], args.overrides)
    d, e = base["data"], base["eval"]
    steps = args.steps or int(base["train"]["max_steps"])
    sets = eval_sets(base)
    store = str(ROOT / d["store"]) if d.get("store") else str(args.runs / "genomes.zarr")
    if not Path(store).exists():
        build_store([ROOT / f for f in d["fasta"]], store, progress=True)
    extra = [f"data.store={store}", *args.overrides]

    # Each held-out set's evaluation windows, exactly as the recipe draws them: scored by the Markov
    # chains below, and the first set's first windows are the real input FLOPs are counted on.
    seed = int(base.get("seed", 0))
    held_windows, genomes = {}, {}
    for s, kw in sets.items():
        ev = GenomeWindowDataset(store, int(e.get("window", d["window"])), seed=seed + 1, split="valid", rc=False,
                                 samples_per_epoch=int(e["n_windows"]), **kw)
        held_windows[s], genomes[s] = ev.get_batch(list(range(len(ev))))["seq"].numpy(), ev.sampler.genomes
    flop_windows = next(iter(held_windows.values()))[:4]

    results = []
    for cfg in configs:
        bb = run_name(cfg)
        out = args.runs / bb
        finished = out / "metrics.csv"
        if args.reuse and finished.exists() and any(r["split"] in sets and int(r["step"]) == steps
                                                    for r in csv.DictReader(open(finished))):
            print(f"== {bb}: reusing the finished run in {out}", flush=True)
        else:
            load0 = os.getloadavg()[0]
            print(f"== {bb}: {steps} steps (load average {load0:.2f})", flush=True)
            wall = run_config(cfg, out, steps, extra)
            # the machine's 1-minute load average before and after, kept with the run for --reuse
            (out / "bench_load.json").write_text(json.dumps({"load": [load0, os.getloadavg()[0]], "wall_s": wall}))
        info = json.loads((out / "bench_load.json").read_text()) if (out / "bench_load.json").exists() else {}
        rows = list(csv.DictReader(open(out / "metrics.csv")))
        # a run folder reused after an interrupted attempt holds several runs: keep the last one
        rows = rows[max(i for i, r in enumerate(rows) if r["split"] == "train" and int(r["step"]) == 1):]
        train = [r for r in rows if r["split"] == "train"]
        tok_at = {int(r["step"]): int(r["tokens"]) for r in train}
        held = {s: [(tok_at.get(int(r["step"]), 0), float(r["bits_per_base"])) for r in rows if r["split"] == s] for s in sets}
        flops, boundary = model_flops(out / "final", flop_windows)
        model_cfg = load_recipe_config(cfg)["model"]
        size = model_cfg["size"] + "".join(f" ({k}={v})" for k, v in (model_cfg.get("overrides") or {}).items())
        results.append({
            "backbone": bb, "size": size, "flops": flops, "boundary": boundary,
            "bpb": {s: v[-1][1] for s, v in held.items()}, "held": held, "tokens": int(train[-1]["tokens"]),
            "tok_s": float(train[-1]["tokens_per_s"]), "train_s": float(train[-1]["elapsed_s"]),
            "load": info.get("load"), "threads": json.loads((out / "recipe_config.json").read_text())["train"].get("cpu_threads"),
            "curve": [(int(r["tokens"]), float(r["bits_per_base"])) for r in train],
        })
        print("   " + ", ".join(f"{s} {b:.4f}" for s, b in results[-1]["bpb"].items())
              + f" bits/base, {results[-1]['tok_s']:,.0f} tokens/s", flush=True)

    # The Markov reference, in the same run, on exactly the recipe's evaluation windows: one chain
    # fitted on the training genomes, its best order chosen on each held-out set.
    split_kw = dict(holdout_genomes=d.get("holdout_genomes") or [], holdout_contigs=d.get("holdout_contigs") or [])
    tr = GenomeWindowDataset(store, int(d["window"]), seed=seed, split="train", **split_kw)
    t0 = time.time()
    chain = MarkovModel(int(e.get("markov_max_order", 10))).fit([tr.store.fetch(int(i)) for i in tr.sampler.contig_ids])
    ref, scores, n_windows, adaptive = {}, {}, {}, {}
    for s, windows in held_windows.items():
        best, scores[s] = best_order(chain, windows)
        ref[s], n_windows[s] = (best.k, scores[s][best.k]), len(windows)
        adaptive[s] = in_window_composition_bits(windows)
        print(f"== Markov on {s}: best k={best.k} {ref[s][1]:.4f} bits/base")
    print(f"   ({time.time() - t0:.0f}s)")

    def label(s: str) -> str:
        return s.split(":", 1)[-1]

    lines = [
        "# Pretraining: bits per base on held-out genomes",
        "",
        f"Trained on {', '.join(tr.sampler.genomes)}. Held out: "
        + "; ".join(f"`{label(s)}` = {', '.join(genomes[s])} ({n_windows[s]} windows)" for s in sets) + ". "
        f"Every backbone: {steps} optimizer steps, {results[0]['tokens']:,} training tokens, window {d['window']}, "
        "the same data order. Each held-out set is scored on the same windows for every model "
        f"(A/C/G/T targets at positions 1..L-1). FLOPs: forward, per base, counted on 4 held-out windows of "
        f"the first set (attention charged for the full L x L scores; FFTs not counted). Load: the 1-minute "
        f"load average at the start (and end) of each run, on {os.cpu_count()} cores.",
        "",
        "| model | " + " | ".join(f"{label(s)}: bits/base | vs best Markov" for s in sets) + " | forward MFLOPs/base | tokens/s (CPU threads) | train time (s) | load |",
        "|---|" + "---:|---:|" * len(sets) + "---:|---:|---:|---:|",
    ]
    first = next(iter(sets))
    for r in sorted(results, key=lambda r: r["bpb"][first]):
        cells = " | ".join(f"{r['bpb'][s]:.4f} | {r['bpb'][s] - ref[s][1]:+.4f}" for s in sets)
        load = " / ".join(f"{v:.1f}" for v in r["load"]) if r["load"] else "n/a"
        fl = f"{r['flops'] / 1e6:.2f}" + (f" (boundaries {r['boundary']:.2f})" if r["boundary"] is not None else "")
        lines.append(f"| {r['size']} | {cells} | {fl} | {r['tok_s']:,.0f} ({r['threads'] or 'all'}) | {r['train_s']:.0f} | {load} |")
    for k in sorted({0, 2, 4, 6, 8, 10, *(ref[s][0] for s in sets)} & set(scores[first])):
        best_in = [label(s) for s in sets if ref[s][0] == k]
        cells = " | ".join(f"{scores[s][k]:.4f} | {scores[s][k] - ref[s][1]:+.4f}" for s in sets)
        lines.append(f"| order-{k} Markov{' (best: ' + ', '.join(best_in) + ')' if best_in else ''} | {cells} | | | | |")
    cells = " | ".join(f"{adaptive[s]:.4f} | {adaptive[s] - ref[s][1]:+.4f}" for s in sets)
    lines += [f"| in-window base composition (adaptive order-0) | {cells} | | | | |", ""]
    for s in sets:
        beat = [r["size"] for r in results if r["bpb"][s] < ref[s][1]]
        lines.append(f"- `{label(s)}`: best Markov order k={ref[s][0]} ({ref[s][1]:.4f}); backbones below it: "
                     f"{', '.join(beat) if beat else 'none'} ({len(beat)}/{len(results)}).")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 4.5))
        styles = ["-", "--", ":", "-."]
        for i, r in enumerate(results):
            color = f"C{i}"
            x, y = zip(*r["curve"], strict=True)
            k = max(1, len(y) // 50)  # light smoothing: running mean over ~2% of the run
            ax.plot(np.array(x[k - 1 :]) / 1e6, np.convolve(y, np.ones(k) / k, mode="valid"), color=color, label=r["size"])
            for j, s in enumerate(sets):
                hx, hy = zip(*r["held"][s], strict=True)
                bx.plot(np.array(hx) / 1e6, hy, styles[j % 4], marker="o", ms=3, color=color,
                        label=f"{r['size']}, {label(s)} ({r['bpb'][s]:.3f})")
        for j, s in enumerate(sets):
            for a in (ax, bx):
                a.axhline(ref[s][1], color="k", ls=styles[j % 4], lw=1,
                          label=f"order-{ref[s][0]} Markov, {label(s)} ({ref[s][1]:.3f})")
            bx.axhline(adaptive[s], color="grey", ls=styles[j % 4], lw=1,
                       label=f"in-window composition, {label(s)} ({adaptive[s]:.3f})")
        lo = min(v for _, v in ref.values())
        ax.set_ylim(lo - 0.1, 2.1)
        ax.set_title("training bits per base")
        bx.set_title("held-out bits per base")
        for a in (ax, bx):
            a.set_xlabel("training tokens (M)")
            a.set_ylabel("bits per base")
        ax.legend(fontsize=7)
        bx.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves sit close
        fig.tight_layout()
        fig.savefig(args.out.with_name("pretrain_loss_curves.png"), dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
