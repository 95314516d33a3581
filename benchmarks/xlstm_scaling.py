"""Bio-xLSTM fwd+bwd time and peak memory against the stock ``xlstm`` package stack, one run.

    nice -n 10 python benchmarks/xlstm_scaling.py                      # L = 1k, 4k, 16k, 2 threads
    python benchmarks/xlstm_scaling.py --lengths 512 1024 --reps 2     # quick look
    python benchmarks/xlstm_scaling.py --out benchmarks/results/xlstm_scaling.md

Shapes follow the backbone benchmark of the project: d_model=128, 2 blocks, batch 1, CPU with
2 intra-op threads. Every (model, length) point runs in a fresh subprocess so that its peak
resident memory (``ru_maxrss`` minus the RSS after building the model) is its own.

Models:

* ``bioseq m+s``: ``xlstm-tiny`` (an mLSTM block, then an sLSTM block) with bioseq's kernels
  (chunkwise mLSTM, linear-time sLSTM scan).
* ``bioseq m+m``: two mLSTM blocks, same kernels.
* ``package m+s`` / ``package m+m``: the same blocks with the package's stock CPU kernels
  (parallel mLSTM, in-place vanilla sLSTM loop), the reference measured in the same run. They grow
  quadratically, so they stop at ``--ref-max-length`` (default 4096).

Printed: wall ms per fwd+bwd step and process CPU ms per step (all threads; best of ``--reps``
after one warm-up), peak MiB, the reference/bioseq ratio and the log-log slope between consecutive
lengths (1.0 = linear, 2.0 = quadratic). On a machine shared with other jobs the wall time
measures the load as much as the model; the CPU time of the process is the steadier measure of
its work, and the ratios and slopes are computed from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "bioseq m+s": {"slstm_at": [1], "linear": True},
    "bioseq m+m": {"slstm_at": [], "linear": True},
    "package m+s": {"slstm_at": [1], "linear": False},
    "package m+m": {"slstm_at": [], "linear": False},
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_one(model: str, L: int, reps: int, threads: int) -> dict:
    """Time fwd+bwd of one model at one length in this process."""
    import torch

    from bioseq.models import build_backbone
    from bioseq.models.xlstm import _build_stack

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = MODELS[model]
    bb = build_backbone("xlstm-tiny", vocab_size=12, slstm_at=spec["slstm_at"])
    if not spec["linear"]:
        bb.stack = _build_stack(bb.config, linear_kernels=False, context_length=L)
    x = torch.randint(7, 11, (1, L))
    base = _rss_mib()
    wall, cpu = [], []
    for _ in range(reps + 1):  # the first call warms up allocators and lazy imports
        t0, c0 = time.perf_counter(), time.process_time()
        bb(x).float().square().mean().backward()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        bb.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"model": model, "L": L, "ms": 1000 * min(wall[1:]), "cpu_ms": 1000 * min(cpu[1:]), "peak_mib": peak - base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-max-length", type=int, default=4096, help="longest length for the quadratic references")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "L"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.reps, args.threads)))
        return

    # Idle OpenMP workers sleep instead of spinning: on a machine shared with other jobs, spinning
    # workers steal the cores from the thread doing the work (5x slower steps with 2 threads).
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows: dict[tuple[str, int], dict] = {}
    for model in args.models:
        for L in args.lengths:
            if not MODELS[model]["linear"] and L > args.ref_max_length:
                continue
            cmd = [sys.executable, __file__, "--one", model, str(L), "--reps", str(args.reps), "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                print(f"{model} L={L}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[model, L] = json.loads(res.stdout.strip().splitlines()[-1])
            r = rows[model, L]
            print(f"  {model:12s} L={L:6d} {r['ms']:10.1f} ms {r['cpu_ms']:10.1f} cpu-ms {r['peak_mib']:8.0f} MiB", file=sys.stderr)

    lines = [
        f"fwd+bwd per step, d_model=128, 2 blocks, batch 1, CPU, {args.threads} threads, best of {args.reps}; "
        "ratio and slope from CPU time",
        "",
        "| model | L | wall ms/step | CPU ms/step | peak MiB | package/bioseq | slope from previous L |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in args.models:
        prev = None
        for L in args.lengths:
            r = rows.get((model, L))
            if r is None:
                continue
            ref = rows.get((model.replace("bioseq", "package"), L)) if model.startswith("bioseq") else None
            ratio = f"{ref['cpu_ms'] / r['cpu_ms']:.1f}x" if ref else ""
            slope = f"{math.log(r['cpu_ms'] / prev['cpu_ms']) / math.log(L / prev['L']):.2f}" if prev else ""
            lines.append(f"| {model} | {L} | {r['ms']:.1f} | {r['cpu_ms']:.1f} | {r['peak_mib']:.0f} | {ratio} | {slope} |")
            prev = r
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(table + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
