"""Backbone cost on CPU: fwd+bwd ms/step and peak memory at several lengths, in one run.

Every registered backbone (its ``tiny`` size, adjusted to d_model=128 and 2 blocks; plus the Mamba-2
and Caduceus variants) against references measured in the same run:

* ``mambapy``: the pure-PyTorch Mamba package (parallel-scan selective SSM), d_model=128, 2 layers;
* ``xlstm-package``: the ``xlstm`` package's own block stack (mLSTM block + sLSTM block with its
  stock CPU kernels: the parallel, quadratic mLSTM and the vanilla sLSTM loop);
* ``nn.TransformerEncoder``: PyTorch's encoder (pre-norm, 4 heads, FFN 512), causal mask.

Each (model, length) runs in a fresh subprocess: batch 1, ``--threads`` intra-op threads, one
warm-up step, then the best of ``--reps`` steps of ``loss = mean(out**2); loss.backward()``.
Peak memory is the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` after the model is built) minus the resident size at that point, so it
counts every allocation torch makes during the steps (tracemalloc would see none of them).

Usage::

    nice -n 10 python benchmarks/backbones.py --out benchmarks/results/backbones.md
    python benchmarks/backbones.py --lengths 1024 4096 --models mamba-tiny mambapy

Timings on a shared machine are noisy: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
D_MODEL, N_LAYER, VOCAB = 128, 2, 12
REFERENCES = ["mambapy", "xlstm-package", "nn.TransformerEncoder"]
QUADRATIC = {"xlstm-package", "nn.TransformerEncoder"}  # (L, L) attention-like matrices in memory
EXTRA_SIZES = ["mamba2-tiny", "caduceus-tiny"]


# -- measurement (runs inside a fresh subprocess) -----------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _build(name: str, L: int):
    """A module mapping token ids ``(1, L)`` to ``(1, L, 128)``."""
    from torch import nn

    if name == "mambapy":
        from mambapy.mamba import Mamba, MambaConfig

        return nn.Sequential(nn.Embedding(16, D_MODEL), Mamba(MambaConfig(d_model=D_MODEL, n_layers=N_LAYER)))
    if name == "xlstm-package":
        from xlstm import (
            FeedForwardConfig,
            mLSTMBlockConfig,
            mLSTMLayerConfig,
            sLSTMBlockConfig,
            sLSTMLayerConfig,
            xLSTMBlockStack,
            xLSTMBlockStackConfig,
        )

        stack = xLSTMBlockStack(xLSTMBlockStackConfig(
            mlstm_block=mLSTMBlockConfig(mlstm=mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)),
            slstm_block=sLSTMBlockConfig(
                slstm=sLSTMLayerConfig(backend="vanilla", num_heads=4, conv1d_kernel_size=4),
                feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu"),
            ),
            context_length=L, num_blocks=N_LAYER, embedding_dim=D_MODEL, slstm_at=[1],
        ))
        return nn.Sequential(nn.Embedding(16, D_MODEL), stack)
    if name == "nn.TransformerEncoder":

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(16, D_MODEL)
                layer = nn.TransformerEncoderLayer(D_MODEL, 4, 4 * D_MODEL, dropout=0.0, batch_first=True, norm_first=True)
                self.enc = nn.TransformerEncoder(layer, N_LAYER, enable_nested_tensor=False)

            def forward(self, x):
                mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
                return self.enc(self.emb(x), mask=mask, is_causal=True)

        return Encoder()
    from bioseq.models import build_backbone

    return build_backbone(name, d_model=D_MODEL, n_layer=N_LAYER, vocab_size=VOCAB)


def measure_one(name: str, L: int, reps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _build(name, L)
    x = torch.randint(7, 11, (1, L))
    exact = _reset_peak()
    base = _status_kib("VmRSS")
    wall, cpu = [], []
    for _ in range(reps + 1):  # the first step warms up allocators and lazy imports
        t0, c0 = time.perf_counter(), time.process_time()
        model(x).float().square().mean().backward()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        model.zero_grad(set_to_none=True)
    peak = _status_kib("VmHWM") - (base if exact else 0)
    return {"model": name, "L": L, "wall_ms": 1000 * min(wall[1:]), "ms": 1000 * min(cpu[1:]),
            "peak_mib": peak / 1024, "peak_exact": exact, "params": sum(p.numel() for p in model.parameters())}


# -- driver ---------------------------------------------------------------------------------------


def default_models() -> list[str]:
    """One tiny size per registered backbone, plus the Mamba-2 and Caduceus variants."""
    sys.path.insert(0, str(ROOT))
    from bioseq.models import list_backbones, list_sizes
    from bioseq.models.config import _SIZES

    sizes = list_sizes()
    chosen = []
    for arch in list_backbones():
        tiny = sorted(s for s in sizes if _SIZES[s][0] == arch and s.endswith("-tiny"))
        if f"{arch}-tiny" in tiny:
            chosen.append(f"{arch}-tiny")
        elif tiny:
            chosen.append(tiny[0])
    return chosen + [s for s in EXTRA_SIZES if s in sizes and s not in chosen]


def _slope(a: dict | None, b: dict | None) -> float | None:
    if not a or not b:
        return None
    return math.log(b["ms"] / a["ms"]) / math.log(b["L"] / a["L"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--models", nargs="+", help="size names and/or references (default: all)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quadratic-max-length", type=int, default=4096,
                    help="longest length for references holding (L, L) matrices (16k: ~13 GB for the encoder)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    ap.add_argument("--out", type=Path, help="also write the markdown report here")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "L"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.reps, args.threads)))
        return

    models = args.models or default_models() + REFERENCES
    # Idle OpenMP workers sleep rather than spin: on a shared machine spinning workers steal the
    # cores of the thread doing the work and make every multi-threaded step several times slower.
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows: dict[tuple[str, int], dict] = {}
    notes: dict[tuple[str, int], str] = {}
    for L in args.lengths:  # all models at one length before the next: load drifts affect them alike
        for name in models:
            if name in QUADRATIC and L > args.quadratic_max_length:
                notes[name, L] = f"skipped (quadratic memory above L={args.quadratic_max_length})"
                continue
            cmd = [sys.executable, __file__, "--one", name, str(L), "--reps", str(args.reps), "--threads", str(args.threads)]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                notes[name, L] = f"timeout ({args.timeout:.0f} s)"
                print(f"  {name:22s} L={L:6d} timeout", file=sys.stderr, flush=True)
                continue
            if res.returncode != 0:
                err = (res.stderr.strip().splitlines() or ["?"])[-1][:160]
                notes[name, L] = f"failed: {err}"
                print(f"  {name:22s} L={L:6d} failed: {err}", file=sys.stderr, flush=True)
                continue
            r = rows[name, L] = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"  {name:22s} L={L:6d} {r['wall_ms']:10.1f} ms {r['ms']:10.1f} cpu-ms {r['peak_mib']:9.1f} MiB",
                  file=sys.stderr, flush=True)

    lines = [
        "# Backbone fwd+bwd cost on CPU",
        "",
        f"d_model={D_MODEL}, {N_LAYER} blocks, batch 1, {args.threads} threads (OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}), "
        f"best of {args.reps} steps after one warm-up, each (model, L) in a fresh process; peak = RSS high-water "
        "mark during the steps minus RSS before them. Wall ms/step swings with the machine's load; CPU ms/step "
        "(process CPU time, all threads) is steadier, so the ratios and slopes use it. `vs mambapy`: "
        "mambapy's CPU time (memory) divided by this model's. Slope: log-log slope of CPU time from the "
        "previous length.",
        "",
        "| model | L | wall ms/step | CPU ms/step | peak MiB | params | vs mambapy (time) | vs mambapy (memory) | slope |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in models:
        prev = None
        for L in args.lengths:
            r = rows.get((name, L))
            if r is None:
                lines.append(f"| {name} | {L} | {notes.get((name, L), 'missing')} | | | | | | |")
                prev = None
                continue
            ref = rows.get(("mambapy", L))
            vs_t = f"{ref['ms'] / r['ms']:.2f}x" if ref and name != "mambapy" else ""
            vs_m = f"{ref['peak_mib'] / r['peak_mib']:.2f}x" if ref and name != "mambapy" and r["peak_mib"] > 0 else ""
            s = _slope(prev, r)
            lines.append(f"| {name} | {L} | {r['wall_ms']:.1f} | {r['ms']:.1f} | {r['peak_mib']:.0f} | {r['params']:,} | {vs_t} | {vs_m} | "
                         f"{'' if s is None else f'{s:.2f}'} |")
            prev = r

    # Targets of the backbones issue, checked on this run's numbers.
    checks = ["", "## Targets", ""]
    for L in (4096, 16384):
        ours, ref = rows.get(("mamba-tiny", L)), rows.get(("mambapy", L))
        if ours and ref:
            sp, mem = ref["ms"] / ours["ms"], ours["peak_mib"] / max(ref["peak_mib"], 1e-9)
            checks.append(f"- Mamba (CPU path) vs mambapy at L={L}: {sp:.2f}x faster (target >= 3x: "
                          f"{'met' if sp >= 3 else 'NOT met'}), {mem:.2f} of its memory (target <= 1/3: "
                          f"{'met' if mem <= 1 / 3 else 'NOT met'})")
    for name in models:
        if name.split("-")[0] in ("hyena", "mamba", "mamba2", "xlstm"):
            s = _slope(rows.get((name, 4096)), rows.get((name, 16384)))
            if s is not None:
                checks.append(f"- {name} slope 4k -> 16k: {s:.2f} (target <= 1.15: {'met' if s <= 1.15 else 'NOT met'})")
    report = "\n".join(lines + checks)
    print(report)
    if args.out:
        sys.path.insert(0, str(ROOT))
        from bioseq.io.atomic import atomic_file

        with atomic_file(args.out) as tmp:
            tmp.write_text(report + "\n")


if __name__ == "__main__":
    main()
