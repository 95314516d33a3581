"""Training throughput on this machine: fp32 vs bf16 autocast vs bf16 + torch.compile, per backbone,
and held-out bits/base after the same number of steps in fp32 and bf16.

    python benchmarks/train_throughput.py                                  # everything (~1 h on 2 cores)
    python benchmarks/train_throughput.py --sizes transformer-small mamba-small --no-quality
    python benchmarks/train_throughput.py --no-throughput --quality-steps 200

Part 1 (throughput). One process, one training step = forward + backward + AdamW on a (batch, L)
batch of DNA tokens, for every size and mode. Modes are measured round-robin (fp32, bf16,
bf16+compile, fp32, ...) so that load from other processes hits all of them alike, and each
mode's figure is the fastest of its timed steps (the least disturbed). Ratios are against fp32
measured in the same run, in wall time and in process CPU time (all threads; the work done,
steadier than wall time when other processes share the cores). ``torch.compile`` (inductor) time is reported apart from the steps.

Part 2 (quality). ``recipes/pretrain.py`` on each ``tiny`` CLM config of the listed backbones,
once with ``train.mixed_precision=no`` and once with ``bf16``, same data, seed and steps: held-out
bits/base on each evaluation set (target: equal within 0.01), tokens/s, and the fraction of the
wall time spent reading and tokenising data (the recipe's ``data_frac``). Needs ``../shared/data``.

Writes ``benchmarks/results/train_throughput.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_SIZES = ["transformer-tiny", "hyena-tiny", "mamba-tiny", "mamba2-tiny", "xlstm-tiny", "hnet-1stage-tiny",
                 "transformer-small", "hyena-small", "mamba-small", "mamba2-small", "xlstm-small"]
MODES = ["fp32", "bf16", "bf16+compile", "fp32-eager-scan"]
# fp32-eager-scan: Mamba-1 sizes only, fp32 with the selective scan run op by op
# (BIOSEQ_FUSED_SCAN=0) instead of through its compiled block functions, the default when training
# on CPU: the figure the compiled scan is measured against.


def measure(size: str, modes: list[str], batch: int, length: int, steps: int, rounds: int, device: str = "cpu") -> dict:
    """Seconds per training step of ``size`` in each mode (fastest timed step), plus compile time."""
    import torch

    from bioseq.models import CausalLM, MaskedLM, build_backbone, load_config

    torch.manual_seed(0)
    cfg = load_config(size)
    model = (MaskedLM if getattr(cfg, "bidirectional", False) else CausalLM)(build_backbone(cfg)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(7, 11, (batch, length), device=device)  # A, C, G, T ids of the character tokenizer
    runners, res = {}, {"size": size, "params_M": model.backbone.num_parameters() / 1e6}
    for mode in modes:
        if mode == "fp32-eager-scan" and not (hasattr(cfg, "d_state") and getattr(cfg, "version", None) == 1):
            continue
        fwd = model
        if mode.endswith("compile"):
            try:
                fwd = torch.compile(model)
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                res[mode] = {"error": f"{type(e).__name__}: {e}"[:200]}
                continue
        runners[mode] = (fwd, mode not in ("fp32", "fp32-eager-scan"), mode == "fp32-eager-scan")

    def step(fwd, bf16: bool, eager_scan: bool = False) -> tuple[float, float]:
        env = os.environ.get("BIOSEQ_FUSED_SCAN")
        if eager_scan:
            os.environ["BIOSEQ_FUSED_SCAN"] = "0"
        elif env == "0":
            del os.environ["BIOSEQ_FUSED_SCAN"]
        t, c = time.perf_counter(), time.process_time()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = fwd(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter() - t, time.process_time() - c
        if env is None:
            os.environ.pop("BIOSEQ_FUSED_SCAN", None)
        else:
            os.environ["BIOSEQ_FUSED_SCAN"] = env
        return t, c

    times: dict[str, list[tuple[float, float]]] = {m: [] for m in runners}
    for mode, (fwd, bf16, eager) in list(runners.items()):  # warm-up (and compilation) outside the timing
        try:
            first = step(fwd, bf16, eager)[0]
            if mode.endswith("compile"):
                res.setdefault("compile_s", first)
        except Exception as e:  # noqa: BLE001 - e.g. inductor without a C++ compiler
            res[mode] = {"error": f"{type(e).__name__}: {e}"[:200]}
            del runners[mode], times[mode]
    for _ in range(rounds):
        for mode, (fwd, bf16, eager) in runners.items():
            times[mode] += [step(fwd, bf16, eager) for _ in range(steps)]
    for mode, ts in times.items():
        best = min(w for w, _ in ts)
        # process CPU seconds (all threads) per step: the work done, steadier than wall time when
        # other processes share the cores
        cpu = min(c for _, c in ts)
        res[mode] = {"s_per_step": best, "median_s": statistics.median(w for w, _ in ts), "cpu_s_per_step": cpu,
                     "tokens_per_s": batch * length / best, "tokens_per_cpu_s": batch * length / cpu}
    return res


def quality_run(backbone: str, precision: str, steps: int, runs: Path, extra: list[str], reuse: bool = False) -> dict:
    from pretrain import run_config  # benchmarks/pretrain.py: the recipe in a subprocess

    cfg = ROOT / "recipes" / "configs" / backbone / "tiny_clm.yaml"
    out = runs / f"{backbone}_{precision}"
    done = (out / "final" / "model.safetensors").exists() and any(
        r["split"] == "train" and int(r["step"]) == steps for r in csv.DictReader(open(out / "metrics.csv")))
    wall = float("nan") if reuse and done else run_config(cfg, out, steps, [f"train.mixed_precision={precision}", *extra])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    rows = rows[max(i for i, r in enumerate(rows) if r["split"] == "train" and int(r["step"]) == 1):]
    train = [r for r in rows if r["split"] == "train"]
    held = {r["split"]: float(r["bits_per_base"]) for r in rows if r["split"].startswith("valid") and int(r["step"]) == steps}
    return {"backbone": backbone, "precision": precision, "held": held, "wall_s": wall,
            "tokens_per_s": float(train[-1]["tokens_per_s"]), "data_frac": float(train[-1].get("data_frac") or "nan"),
            "train_loss": float(train[-1]["loss"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="*", default=DEFAULT_SIZES)
    ap.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per mode per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--compile-sizes", nargs="*", help="measure bf16+compile only for these sizes (compiling "
                    "the recurrent backbones' Python loops takes many minutes); default: every size")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--quality-backbones", nargs="*", default=["transformer", "hyena", "mamba"])
    ap.add_argument("--quality-steps", type=int, default=200)
    ap.add_argument("--reuse", action="store_true", help="quality: reuse finished runs in --runs instead of rerunning")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_train_throughput")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.md")
    args = ap.parse_args()

    import torch

    from bioseq.utils.precision import cpu_has_native_bf16

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    prev = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
               f"threads, native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}")
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    results = {"machine": machine,
               "batch": args.batch, "length": args.length,
               # rows of sizes not measured this time are kept (re-measure some sizes, keep the rest)
               "throughput": [r for r in prev.get("throughput", []) if args.no_throughput or r["size"] not in args.sizes],
               "quality": [q for q in prev.get("quality", []) if args.no_quality or q["backbone"] not in args.quality_backbones]}
    if not args.no_throughput:
        for size in args.sizes:
            load = os.getloadavg()[0]
            modes = [m for m in args.modes if m != "bf16+compile" or args.compile_sizes is None or size in args.compile_sizes]
            r = measure(size, modes, args.batch, args.length, args.steps, args.rounds, args.device)
            r["load"] = [load, os.getloadavg()[0]]
            r["threads"] = torch.get_num_threads()
            results["throughput"].append(r)
            cells = ", ".join(f"{m} {r[m]['tokens_per_s']:,.0f} tok/s" if "tokens_per_s" in r[m] else f"{m} failed"
                              for m in args.modes if m in r)  # modes that do not apply to a size are skipped
            print(f"{size}: {cells}", flush=True)
    if not args.no_quality:
        args.runs.mkdir(parents=True, exist_ok=True)
        store = str(args.runs / "bacteria.zarr")
        for bb in args.quality_backbones:
            for precision in ("no", "bf16"):
                r = quality_run(bb, precision, args.quality_steps, args.runs, [f"data.store={store}"], args.reuse)
                results["quality"].append(r)
                print(f"{bb} {precision}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["held"].items())
                      + f" bits/base, {r['tokens_per_s']:,.0f} tok/s, data {r['data_frac']:.1%}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    args.out.write_text(report(results))
    print(f"wrote {args.out}")


def report(res: dict) -> str:
    lines = ["# Training throughput: fp32 vs bf16 autocast vs bf16 + torch.compile", "",
             f"Machine: {res['machine']}. Step = forward + backward + AdamW on {res['batch']} x {res['length']} "
             "DNA tokens; each figure is the fastest of the timed steps, modes measured round-robin in one process "
             "(`python benchmarks/train_throughput.py`). Load = 1-minute load average before / after the size.", "",
             "| size | params (M) | fp32 tok/s | bf16 tok/s | bf16 / fp32 | bf16 / fp32 (CPU time) | bf16+compile tok/s | "
             "compiled / fp32 | compiled / fp32 (CPU time) | compile (s) | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["throughput"]:
        f32 = r.get("fp32", {}).get("tokens_per_s")

        c32 = r.get("fp32", {}).get("tokens_per_cpu_s")

        def cell(mode, r=r, f32=f32, c32=c32):
            v = r.get(mode, {})
            if "tokens_per_s" not in v:
                return ("failed" if "error" in v else "-"), "-", "-"
            cpu = f"{v['tokens_per_cpu_s'] / c32:.2f}x" if c32 and "tokens_per_cpu_s" in v else "-"
            return f"{v['tokens_per_s']:,.0f}", (f"{v['tokens_per_s'] / f32:.2f}x" if f32 else "-"), cpu

        (b, br, bc), (c, cr, cc) = cell("bf16"), cell("bf16+compile")
        comp = f"{r['compile_s']:.0f}" if "compile_s" in r else "-"
        load = " / ".join(f"{x:.1f}" for x in r.get("load", []))
        f32s = f"{f32:,.0f}" if f32 else "failed"
        lines.append(f"| {r['size']} | {r['params_M']:.2f} | {f32s} | {b} | {br} | {bc} | {c} | {cr} | {cc} | {comp} | {load} |")
    eager = [r for r in res["throughput"] if "tokens_per_s" in r.get("fp32-eager-scan", {})]
    if eager:
        lines += ["", "Mamba-1's selective scan: op by op (`BIOSEQ_FUSED_SCAN=0`, the figure before the scan was "
                  "compiled) against its compiled block functions (the default when training on CPU; both columns "
                  "above use it).", "",
                  "| size | fp32, eager scan tok/s | fp32 / eager | bf16 / eager | bf16+compile / eager |",
                  "|---|---:|---:|---:|---:|"]
        for r in eager:
            e = r["fp32-eager-scan"]["tokens_per_s"]
            rat = [f"{r[m]['tokens_per_s'] / e:.2f}x" if "tokens_per_s" in r.get(m, {}) else "-"
                   for m in ("fp32", "bf16", "bf16+compile")]
            lines.append(f"| {r['size']} | {e:,.0f} | " + " | ".join(rat) + " |")
    errors = [(r["size"], m, r[m]["error"]) for r in res["throughput"] for m in MODES if "error" in r.get(m, {})]
    if errors:
        lines += ["", "Failures: " + "; ".join(f"{s} {m}: `{e}`" for s, m, e in errors)]
    if res["quality"]:
        lines += ["", "## Held-out bits/base after the same steps, fp32 vs bf16", "",
                  "`recipes/pretrain.py` on each backbone's `tiny_clm` config, same seed, data and steps; "
                  "`data` = share of the wall time spent reading and tokenising batches.", "",
                  "| backbone | precision | " + " | ".join(sorted(res["quality"][0]["held"])) + " | tokens/s | data | final train loss |",
                  "|---|---|" + "---:|" * len(res["quality"][0]["held"]) + "---:|---:|---:|"]
        by = {}
        for q in res["quality"]:
            by.setdefault(q["backbone"], {})[q["precision"]] = q
            lines.append(f"| {q['backbone']} | {q['precision']} | " + " | ".join(f"{q['held'][k]:.4f}" for k in sorted(q["held"]))
                         + f" | {q['tokens_per_s']:,.0f} | {q['data_frac']:.1%} | {q['train_loss']:.4f} |")
        lines.append("")
        for bb, d in by.items():
            if {"no", "bf16"} <= d.keys():
                diffs = {k: d["bf16"]["held"][k] - d["no"]["held"][k] for k in d["no"]["held"]}
                worst = max(abs(v) for v in diffs.values())
                speed = d["bf16"]["tokens_per_s"] / d["no"]["tokens_per_s"]
                lines.append(f"- {bb}: bf16 - fp32 = " + ", ".join(f"{k} {v:+.4f}" for k, v in diffs.items())
                             + f" bits/base ({'within' if worst <= 0.01 else 'NOT within'} 0.01); recipe tokens/s {speed:.2f}x")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
