"""Peak memory (RSS) of `bioseq tokenize encode` and `bioseq align` at two input sizes.

    python benchmarks/memory.py                          # tokenize 10 and 50 Mb; align 2k and 8k reads
    python benchmarks/memory.py --tokenize-mb 5 20 --reads 1000 4000

Each command runs in its own child process (the CLI exactly as users type it), timed and measured
by the peak resident set size the kernel reports for that child. Inputs are seeded random: one
contig of N Mb for tokenize (the worst case, a chromosome-sized record), and reads of 150 bp
simulated from the bundled phage lambda genome for align (against an index built once).
Flat memory across the two sizes is the goal; the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = ("import resource, subprocess, sys, time; t = time.time(); "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time() - t)")


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of ``cmd`` run alone in a fresh measuring process."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)), "OMP_NUM_THREADS": "1"}
    # not run from the repository: `python -m` puts the working directory first on sys.path,
    # which would shadow a PYTHONPATH pointing at another bioseq checkout (before/after runs)
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=tempfile.gettempdir(), env=env,
                         capture_output=True, text=True)
    rc, kib, secs = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return int(kib) / 1024, float(secs)


def random_contig(path: Path, mb: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(mb * 1e6)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=n, dtype=np.uint8)]
    lines = np.empty((n // 60 + 1) * 61, dtype=np.uint8)  # 60 bases + newline per line
    full = n // 60
    view = lines[: full * 61].reshape(full, 61)
    view[:, :60] = bases[: full * 60].reshape(full, 60)
    view[:, 60] = 10
    tail = bases[full * 60 :].tobytes()
    with open(path, "wb") as fh:
        fh.write(b">chr1\n" + view.tobytes() + tail + (b"\n" if tail else b""))


def simulated_reads(path: Path, n: int, seed: int) -> None:
    sys.path.insert(0, str(ROOT))
    from bioseq import alphabet
    from bioseq.align.reference import read_reference
    from bioseq.align.simulate import mutate_read

    contig = read_reference(ROOT / "data/genomes/lambda_NC_001416.fa.gz")[0]
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for i in range(n):
            s = int(rng.integers(0, contig.length - 150))
            r = mutate_read(contig.codes[s : s + 150], rng, 0.01, 0.001)
            fh.write(f"@r{i}\n{alphabet.decode(r)}\n+\n{'I' * len(r)}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenize-mb", type=float, nargs=2, default=[10, 50], help="contig sizes (Mb)")
    ap.add_argument("--reads", type=int, nargs=2, default=[2000, 8000], help="read counts for align")
    ap.add_argument("--skip-align", action="store_true")
    args = ap.parse_args()
    bioseq = [sys.executable, "-m", "bioseq"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mb in args.tokenize_mb:
            fa = tmp / f"contig_{mb:g}mb.fa"
            random_contig(fa, mb, seed=0)
            rss, secs = peak_rss([*bioseq, "tokenize", "encode", str(fa), "-o", str(tmp / "ids.txt")])
            rows.append({"command": "tokenize encode", "input": f"1 contig, {mb:g} Mb", "peak_rss_mib": round(rss), "seconds": round(secs, 1)})
            print(f"tokenize encode  {mb:>6g} Mb contig   peak RSS {rss:8.0f} MiB   {secs:6.1f} s", flush=True)
        if not args.skip_align:
            idx = tmp / "lambda.esa"
            subprocess.run([*bioseq, "index", str(ROOT / "data/genomes/lambda_NC_001416.fa.gz"), "-o", str(idx)],
                           cwd=tmp, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))},
                           check=True, capture_output=True)
            for n in args.reads:
                fq = tmp / f"reads_{n}.fq"
                simulated_reads(fq, n, seed=1)
                rss, secs = peak_rss([*bioseq, "align", str(idx), str(fq), "-o", str(tmp / "out.bam")])
                rows.append({"command": "align", "input": f"{n} reads x 150 bp", "peak_rss_mib": round(rss), "seconds": round(secs, 1)})
                print(f"align            {n:>6d} reads      peak RSS {rss:8.0f} MiB   {secs:6.1f} s", flush=True)
    for cmd in ("tokenize encode", "align"):
        r = [x["peak_rss_mib"] for x in rows if x["command"] == cmd]
        if len(r) == 2:
            print(f"{cmd}: peak RSS ratio large/small input = {r[1] / r[0]:.2f} (flat = 1.00)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
