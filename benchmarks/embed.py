"""Embedding throughput and peak memory of ``bioseq embed``: many short sequences and one long one.

    python benchmarks/embed.py --model runs/demo/final                  # 10,000 x 1 kb and one 5 Mb sequence
    python benchmarks/embed.py --model runs/demo/final --n 2000 --long 1000000 --threads 2

Inputs are real DNA: ``--n`` 1-kb slices of the bundled E. coli genome at seeded random positions
(either strand), and one ``--long``-base sequence (the E. coli chromosome, continued from its start
when longer). Each case runs ``bioseq embed`` in a fresh process (the command users run, writing
``.npy``), timed from launch to exit including model loading; peak memory is the child's maximum
resident set size. Writes ``benchmarks/results/embed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bioseq.alphabet import decode, reverse_complement_codes  # noqa: E402
from bioseq.io import read_fasta  # noqa: E402


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return time.time() - t0, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=10_000, help="number of short sequences (0: skip)")
    ap.add_argument("--length", type=int, default=1000, help="length of the short sequences")
    ap.add_argument("--long", type=int, default=5_000_000, help="length of the long sequence (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/embed"))
    args = ap.parse_args(argv)

    genome = next(iter(read_fasta(ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz"))).codes
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.fa"
        with open(short, "w") as fh:
            for i, s in enumerate(rng.integers(0, len(genome) - args.length, args.n)):
                c = genome[s : s + args.length]
                c = reverse_complement_codes(c) if rng.random() < 0.5 else c
                fh.write(f">s{i}\n{decode(c, keep_case=False)}\n")
        long = Path(tmp) / "long.fa"
        reps = -(-args.long // len(genome))
        with open(long, "w") as fh:
            fh.write(">long\n" + decode(np.tile(genome, reps)[: args.long], keep_case=False) + "\n")
        cases = [("short", short, args.n, args.n * args.length), ("long", long, 1, args.long)]
        for name, path, n, bases in [c for c in cases if c[2] and c[3]]:  # --n 0 or --long 0 skips a case
            cmd = [sys.executable, "-m", "bioseq", "embed", "-m", args.model, str(path), "-o", str(Path(tmp) / f"{name}.npy"),
                   "-t", str(args.threads), "-b", str(args.batch_size), "-q"]
            wall, rss = run(cmd)
            rows.append({"case": name, "sequences": n, "bases": bases, "seconds": round(wall, 1),
                         "sequences_per_s": round(n / wall, 2), "bases_per_s": round(bases / wall),
                         "peak_rss_mib": round(rss)})
            print(rows[-1], file=sys.stderr)
    cfg = json.loads((Path(args.model) / "config.json").read_text())["backbone"]
    load = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"model": args.model, "backbone": cfg, "rows": rows}, indent=2) + "\n")
    lines = [
        "# `bioseq embed`: throughput and peak memory",
        "",
        f"Model `{args.model}`: {cfg['arch']}, d_model {cfg['d_model']}, {cfg['n_layer']} layers; default window "
        f"(the training window) and overlap (a quarter), mean pooling, batch {args.batch_size}, {args.threads} CPU "
        f"thread(s), fp32, `.npy` output. Time from process start to exit (model loading included); peak memory = the "
        f"process's maximum resident set size. 1-minute load average at the end: {load:.1f} (2-core machine).",
        "",
        "| input | sequences | bases | seconds | sequences/s | bases/s | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = f"{args.n:,} x {args.length:,} bp" if r["case"] == "short" else f"one {args.long / 1e6:g} Mb sequence"
        lines.append(f"| {label} | {r['sequences']:,} | {r['bases']:,} | {r['seconds']} | {r['sequences_per_s']} | "
                     f"{r['bases_per_s']:,} | {r['peak_rss_mib']} |")
    lines += ["", f"Command: `python benchmarks/embed.py --model {args.model} --n {args.n} --long {args.long} "
                  f"--threads {args.threads}`"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
