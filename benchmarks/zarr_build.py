"""Build speed and file count of `bioseq zarr build` on many tiny contigs (draft genomes, transcriptomes).

    python benchmarks/zarr_build.py                      # 100,000 contigs of 200-2,000 bp
    python benchmarks/zarr_build.py --contigs 5000 --shard

Writes a seeded random FASTA, builds a store from it (timing the build only) and prints contigs/s,
bases/s and how many files the store holds; then reads every contig back and checks it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contigs", type=int, default=100_000)
    ap.add_argument("--min-len", type=int, default=200)
    ap.add_argument("--max-len", type=int, default=2000)
    ap.add_argument("--shard", action="store_true", help="build with --shard (64 chunks per shard)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from bioseq.data import GenomeStore, build_store

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(args.min_len, args.max_len + 1, size=args.contigs)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        fasta = Path(tmp) / "tiny.fa"
        with open(fasta, "wb") as fh:
            for i, n in enumerate(lengths):
                fh.write(b">contig_%d\n" % i + bases[rng.integers(0, 4, size=n)].tobytes() + b"\n")
        (Path(tmp) / "warm.fa").write_text(">w\nACGT\n")
        build_store([Path(tmp) / "warm.fa"], Path(tmp) / "warm.zarr")  # imports zarr outside the timing
        t0 = time.perf_counter()
        out = build_store([fasta], Path(tmp) / "tiny.zarr", chunks_per_shard=64 if args.shard else None)
        dt = time.perf_counter() - t0
        files = sum(len(f) for _, _, f in os.walk(out))
        store = GenomeStore.open(out)
        assert len(store) == args.contigs and int(store.lengths.sum()) == int(lengths.sum())
        print(f"{args.contigs:,} contigs, {int(lengths.sum()):,} bp: build {dt:.1f} s = "
              f"{args.contigs / dt:,.0f} contigs/s, {lengths.sum() / dt / 1e6:.2f} Mb/s; {files:,} files "
              f"({1000 * files / args.contigs:,.1f} per 1,000 contigs)")


if __name__ == "__main__":
    main()
