"""Random-window read throughput: the Zarr genome store reader vs pyfaidx, measured in one run.

    python benchmarks/zarr_reader.py                       # bundled E. coli K-12 MG1655
    python benchmarks/zarr_reader.py --fasta genome.fa.gz --batch 256 --out benchmarks/results/zarr_reader.md

For 1 kb and 32 kb windows at uniformly random positions it times

- ``pyfaidx``: ``Fasta(plain_fasta)[contig][s:s+L]`` per window (strings, the reference), and the
  same followed by encoding to uint8 codes (the output the store reader gives);
- ``zarr slice``: one plain zarr 3 ``array[s:s+L]`` per window (what a naive reader does);
- ``store.fetch``: :meth:`GenomeStore.fetch` per window (decoded-chunk cache);
- ``store.fetch_batch``: batches of random windows through :meth:`GenomeStore.fetch_batch`,
  warm (chunks cached, the steady state of a training worker) and cold (cache cleared before every
  batch, so every batch reads and decompresses all the chunks it touches), for the plain and the
  sharded (64 chunks per shard) store;

- ``DataLoader``: :class:`GenomeWindowDataset` end to end (sampling, reverse complement on half
  the windows, tensors) with the batched sampler and with per-sample collation, 0 workers;

and prints windows/s with ratios against pyfaidx, plus the store size against the gzip FASTA.
Single process, single thread for numpy; pyfaidx reads a plain FASTA that is in the page cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bioseq.alphabet import encode
from bioseq.data.store import GenomeStore, build_store
from bioseq.io import open_binary

ROOT = Path(__file__).resolve().parents[1]


def rate(fn, n_windows: int, min_seconds: float = 1.0) -> float:
    """Windows per second of ``fn`` (which reads ``n_windows``), best of repeated runs."""
    fn()  # warm-up: imports, index/metadata loads, first chunk reads
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, n_windows / dt)
    return best


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(store, sharded, contig, rec, zarr_arr, L: int, n: int, seconds: float, rng) -> list[tuple[str, float, float]]:
    """(reader, windows/s, pyfaidx windows/s) rows for windows of length ``L``, batches of ``n``."""
    starts = rng.integers(0, contig.length - L, size=64 * n)
    batches = starts.reshape(64, n)
    strands = np.zeros(n, dtype=bool)
    ids = np.full(n, contig.index)
    few = starts[: max(50, 2 * n if L <= 4096 else n // 4)]  # the naive reader is slow
    some = starts[: 4 * n]

    def pyfaidx_str():
        for a in some:
            rec[int(a) : int(a) + L]

    def pyfaidx_codes():
        for a in some:
            encode(rec[int(a) : int(a) + L])

    def zarr_slices():
        for a in few:
            zarr_arr[int(a) : int(a) + L]

    def store_fetch():
        for a in some:
            store.fetch(contig.index, int(a), int(a) + L)

    state = {"k": 0}

    def batch_warm():
        state["k"] = (state["k"] + 1) % len(batches)
        store.fetch_batch(ids, batches[state["k"]], L, strands)

    def batch_cold():
        store.clear_cache()
        batch_warm()

    def batch_cold_sharded():
        sharded.clear_cache()
        state["k"] = (state["k"] + 1) % len(batches)
        sharded.fetch_batch(ids, batches[state["k"]], L, strands)

    from torch.utils.data import DataLoader

    from bioseq.data import DistributedWindowSampler, GenomeWindowDataset

    ds = GenomeWindowDataset(store.url, L, seed=0, samples_per_epoch=16 * n)

    def loader_batched():  # the training input path: sample + read + tensors, one item per batch
        for _ in DataLoader(ds, batch_size=None, sampler=DistributedWindowSampler(ds, batch_size=n)):
            pass

    def loader_per_sample():  # the same batches through per-sample collation
        for _ in DataLoader(ds, batch_size=n, sampler=DistributedWindowSampler(ds)):
            pass

    ref = rate(pyfaidx_str, len(some), seconds)
    rows = [
        ("pyfaidx (str)", ref),
        ("pyfaidx + encode (uint8)", rate(pyfaidx_codes, len(some), seconds)),
        ("zarr slice per window", rate(zarr_slices, len(few), seconds)),
        ("store.fetch per window", rate(store_fetch, len(some), seconds)),
        (f"store.fetch_batch x{n}, cold cache", rate(batch_cold, n, seconds)),
        (f"store.fetch_batch x{n}, cold cache, sharded store", rate(batch_cold_sharded, n, seconds)),
        (f"store.fetch_batch x{n}, warm cache", rate(batch_warm, n, seconds)),
        (f"DataLoader, batched sampler x{n} (sampling, rc, tensors)", rate(loader_batched, 16 * n, seconds)),
        (f"DataLoader, per-sample collate x{n}", rate(loader_per_sample, 16 * n, seconds)),
    ]
    # what was timed must be correct reads
    check = store.fetch_batch(ids[:8], batches[0][:8], L)
    assert all(np.array_equal(check[j], encode(rec[int(a) : int(a) + L])) for j, a in enumerate(batches[0][:8]))
    return [(name, r, ref) for name, r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", type=Path, default=ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz")
    ap.add_argument("--windows", type=int, nargs="+", default=[1024, 32768])
    ap.add_argument("--batch", type=int, default=256, help="windows per fetch_batch call")
    ap.add_argument("--chunk-size", type=int, default=1 << 20, help="store chunk size in bases")
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum timing per measurement")
    ap.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = ap.parse_args()

    import pyfaidx
    import zarr

    tmp = Path(tempfile.mkdtemp(prefix="bioseq_bench_"))
    try:
        plain = tmp / "genome.fa"
        with open_binary(args.fasta) as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        t = time.perf_counter()
        store_path = build_store([args.fasta], tmp / "genome.zarr", chunk_size=args.chunk_size)
        build_s = time.perf_counter() - t
        sharded = build_store([args.fasta], tmp / "sharded.zarr", chunk_size=args.chunk_size, chunks_per_shard=64)
        store = GenomeStore.open(store_path)
        fa = pyfaidx.Fasta(str(plain), as_raw=True, sequence_always_upper=False)
        contig = store.contigs[int(np.argmax(store.lengths))]  # the chromosome
        rec = fa[contig.name]
        zarr_arr = zarr.open_array(store_path / contig.array, mode="r")
        rng = np.random.default_rng(0)

        gz, plain_size, zs, shs = args.fasta.stat().st_size, plain.stat().st_size, dir_size(store_path), dir_size(sharded)
        lines = [
            f"genome: {args.fasta.name}, contig {contig.name} ({contig.length:,} bp); "
            f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
            f"zarr {zarr.__version__}, pyfaidx {pyfaidx.__version__}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at start",
            f"store build: {build_s:.2f} s; chunk {store.chunk_size:,} bp, blosc-zstd bitshuffle",
            "",
            "| on disk | bytes | vs gzip FASTA | bits/base |",
            "|---|---:|---:|---:|",
        ]
        for name, size in [("gzip FASTA", gz), ("plain FASTA", plain_size), ("zarr store", zs),
                           ("zarr store, sharded", shs)]:
            lines.append(f"| {name} | {size:,} | {size / gz:.2f}x | {8 * size / contig.length:.2f} |")
        lines += ["", "| window | reader | windows/s | vs pyfaidx |", "|---:|---|---:|---:|"]

        for L in args.windows:
            for name, r, ref in measure(store, GenomeStore.open(sharded), contig, rec, zarr_arr, L, args.batch,
                                        args.seconds, rng):
                lines.append(f"| {L:,} | {name} | {r:,.0f} | {r / ref:.2f}x |")
        text = "\n".join(lines)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text("# Zarr genome store reader vs pyfaidx\n\n`python benchmarks/zarr_reader.py`\n\n"
                                + text + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
