"""Divergent reads: bioseq's seeding, re-seeding and k-mer sketch search against bwa mem.

    nice -n 10 python benchmarks/align_divergent.py [--genome ecoli] [--levels 0.05 0.10 0.15] [--reads 5000]

A copy of the genome is mutated at each divergence level (85% of events SNPs, 15% small indels of
1-3 bp, half insertions), reads of ``--length`` bp (0.1% sequencing error, random strand) are drawn
from the copy and aligned to the original. Each read's name carries its true position on the
original (``contig_start_end_..._id``, the wgsim layout benchmarks/align.py scores): correct = right
contig and the read's unclipped start (leftmost aligned base minus a leading soft clip) within
10 bp; the mutated ends of divergent reads are often clipped, by bwa mem as by bioseq.

Reported (benchmarks/results/align_divergent.md): correct % and precision at MAPQ >= 20 for bwa mem
and for bioseq as an ablation (seeds only, + re-seeding, + sketch embedding search = the default),
reads per CPU-second, and the sketch search's recall: the share of reads whose source fragment
(any fragment overlapping the read's true span by >= 100 bp) is in the top 1 / 16 / 32.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align import GENOMES, ROOT, plain_fasta, run, score  # noqa: E402

from bioseq import alphabet  # noqa: E402
from bioseq.align.reference import read_reference  # noqa: E402


def mutate_genome(codes: np.ndarray, rate: float, rng: np.random.Generator, indel_frac: float = 0.15
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``codes`` with ``rate`` events per base -> (copy, original position of every copy
    base; inserted bases take the position of the base before them)."""
    n = codes.size
    ev = rng.random(n) < rate
    indel = ev & (rng.random(n) < indel_frac)
    snp = ev & ~indel
    out = codes.copy()
    out[snp] = (out[snp] + rng.integers(1, 4, int(snp.sum()))) % 4
    pieces, pos, prev = [], [], 0
    for p in np.flatnonzero(indel):
        if p < prev:
            continue
        size = int(rng.integers(1, 4))
        pieces.append(out[prev:p])
        pos.append(np.arange(prev, p))
        if rng.random() < 0.5:  # insertion before p
            pieces.append(rng.integers(0, 4, size).astype(np.uint8))
            pos.append(np.full(size, max(p - 1, 0)))
            prev = p
        else:  # deletion of p .. p + size
            prev = min(p + size, n)
    pieces.append(out[prev:])
    pos.append(np.arange(prev, n))
    return np.concatenate(pieces).astype(np.uint8), np.concatenate(pos)


def simulate(contigs, rate: float, n_reads: int, length: int, seed: int, err: float = 0.001):
    """Reads from mutated copies of ``contigs`` -> [(name, seq)] with truth in the name."""
    rng = np.random.default_rng(seed)
    copies = [mutate_genome(c.codes, rate, rng) for c in contigs]
    sizes = np.array([c[0].size for c in copies], dtype=np.float64)
    which = rng.choice(len(copies), n_reads, p=sizes / sizes.sum())
    out = []
    for i, ci in enumerate(which):
        cp, pos = copies[ci]
        s = int(rng.integers(0, cp.size - length))
        r = cp[s : s + length].copy()
        e = rng.random(length) < err
        r[e] = (r[e] + rng.integers(1, 4, int(e.sum()))) % 4
        if rng.random() < 0.5:
            r = alphabet.reverse_complement_codes(r)
        start = int(pos[s]) + 1
        out.append((f"{contigs[ci].name}_{start}_{start + length - 1}_0:0:0_0:0:0_{i}", alphabet.decode(r)))
    return out


def sketch_recall(index_dir: Path, reads, contigs, top=(1, 16, 32)) -> dict:
    """Share of reads whose true fragment (overlapping the true span by >= 100 bp) the sketch
    search ranks in the top 1 / 16 / 32."""
    from bioseq.align.index import load_index
    from bioseq.align.sketch import SketchEncoder

    idx = load_index(index_dir)
    enc = SketchEncoder.from_config(idx.manifest["encoder"]["config"])
    offs = {c["name"]: c["offset"] for c in idx.manifest["contigs"]}
    q = enc.embed([alphabet.encode(s) for _, s in reads])
    _, ids = idx.faiss_index.search(q, max(top))
    F = idx.fragment_len
    hits = {t: 0 for t in top}
    for (name, seq), row in zip(reads, ids):
        contig, start, *_ = name.rsplit("_", 5)
        g = offs[contig] + int(start) - 1
        fs = idx.fragments[row]
        ov = np.minimum(fs + F, g + len(seq)) - np.maximum(fs, g)
        good = np.flatnonzero(ov >= min(100, len(seq) - 10))
        for t in top:
            hits[t] += bool(good.size) and good[0] < t
    return {f"top{t}": 100 * v / len(reads) for t, v in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genome", default="ecoli", choices=sorted(GENOMES))
    ap.add_argument("--levels", nargs="+", type=float, default=[0.05, 0.10, 0.15])
    ap.add_argument("--reads", type=int, default=5000)
    ap.add_argument("--length", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("BIOSEQ_SHARED", ROOT.parent / "shared" / "data")))
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_align")
    ap.add_argument("--reuse", action="store_true", help="reuse the index in --work")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "align_divergent.md")
    a = ap.parse_args()
    d = a.work / a.genome
    d.mkdir(parents=True, exist_ok=True)
    ref = plain_fasta(a.shared / GENOMES[a.genome][0], d / "ref.fa")
    contigs = read_reference(ref)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = [sys.executable, "-m", "bioseq"]
    T = str(a.threads)
    if not Path(str(ref) + ".bwt").exists():
        run(["bwa", "index", str(ref)], stdout=subprocess.DEVNULL)
    esa = d / "ref.esa"
    build = None
    if not (a.reuse and esa.exists()):
        wall, rss, cpu = run(py + ["index", str(ref), "-o", str(esa), "-t", T], stdout=subprocess.DEVNULL, env=env)
        build = {"wall": wall, "cpu": cpu, "rss": rss}
        print(f"bioseq index: {cpu:.1f} CPU-s, peak RSS {rss} MiB", flush=True)
    tools = {
        "bwa mem": lambda fa: ["bwa", "mem", "-t", T, str(ref), fa],
        "bioseq seeds only": lambda fa: py + ["align", str(esa), fa, "-t", T, "--mode", "seed", "--no-reseed"],
        "bioseq + re-seeding": lambda fa: py + ["align", str(esa), fa, "-t", T, "--mode", "seed"],
        "bioseq + sketch search (default)": lambda fa: py + ["align", str(esa), fa, "-t", T],
    }
    rows = []
    for level in a.levels:
        reads = simulate(contigs, level, a.reads, a.length, seed=int(level * 1000))
        fa = d / f"div_{level:.2f}.fa"
        fa.write_text("".join(f">{n}\n{s}\n" for n, s in reads))
        rec = sketch_recall(esa, reads, contigs)
        print(f"{level:.0%}: sketch recall {rec}", flush=True)
        base = None
        for tool, cmd in tools.items():
            sam = d / f"div_{level:.2f}_{tool.split()[0]}_{len(rows)}.sam"
            with open(sam, "w") as fo:
                wall, rss, cpu = run(cmd(str(fa)), stdout=fo, env=env)
            s = score(sam, len(reads), a.length, unclipped=True)
            s.update(level=level, tool=tool, reads_per_cpu_s=len(reads) / cpu, rss=rss, recall=rec)
            base = base or s
            rows.append(s)
            print(f"  {tool:34s} correct {s['correct']:6.2f} ({s['correct'] - base['correct']:+.2f} vs bwa)  "
                  f"prec@Q20 {s['prec_q20']:6.2f}  {s['reads_per_cpu_s']:7.0f} reads/CPU-s", flush=True)
    write_report(a, rows, build)


def write_report(a, rows, build) -> None:
    lines = ["# Divergent reads", "",
             f"`python benchmarks/align_divergent.py --genome {a.genome} --reads {a.reads} --length {a.length} "
             f"--threads {a.threads}`", "",
             f"{a.reads:,} reads of {a.length} bp per level from a copy of {GENOMES[a.genome][1]} mutated at the given "
             "rate (85% SNPs, 15% indels of 1-3 bp), 0.1% sequencing error, aligned to the original. Correct = right "
             "contig, unclipped start (leftmost aligned base minus a leading soft clip) within 10 bp of the truth. "
             "One thread per tool; reads/CPU-s includes "
             "index loading.", "",
             "| divergence | tool | correct % | Δ vs bwa mem | mapped % | prec. MAPQ≥20 % | reads MAPQ≥20 % | reads/CPU-s | × bwa |",
             "|---|---|---|---|---|---|---|---|---|"]
    bwa = {r["level"]: r for r in rows if r["tool"] == "bwa mem"}
    for r in rows:
        b = bwa[r["level"]]
        lines.append(f"| {r['level']:.0%} | {r['tool']} | {r['correct']:.2f} | {r['correct'] - b['correct']:+.2f} | "
                     f"{r['mapped']:.2f} | {r['prec_q20']:.2f} | {r['hq_share']:.1f} | {r['reads_per_cpu_s']:.0f} | "
                     f"{r['reads_per_cpu_s'] / b['reads_per_cpu_s']:.3f} |")
    lines += ["", "Sketch search recall (source fragment among the top-K fragments of the read's sketch):", "",
              "| divergence | top-1 % | top-16 % | top-32 % |", "|---|---|---|---|"]
    for lv, b in bwa.items():
        r = b["recall"]
        lines.append(f"| {lv:.0%} | {r['top1']:.1f} | {r['top16']:.1f} | {r['top32']:.1f} |")
    if build:
        lines += ["", f"bioseq index build: {build['cpu']:.1f} CPU-s, peak RSS {build['rss']} MiB."]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
