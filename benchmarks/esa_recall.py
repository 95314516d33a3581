"""Whole-genome retrieval recall of read embeddings: the k-mer sketch against a trained encoder.

    python benchmarks/esa_recall.py --encoder bioseq/assets/esa-conv            # held-out K. pneumoniae
    python benchmarks/esa_recall.py --encoder DIR --genome GENOME.fa --reads 2000 --levels 0.02 0.05 0.1 0.15

For each divergence level, reads of 150 bp come from copies of reference windows mutated at that
rate (85% substitutions, 15% indels of 1-3 bp, as `benchmarks/align_divergent.py`), plus 0.1%
sequencing error, either strand. Every fragment of the genome (the index's tiling: the encoder's
own fragment length and stride, 300 / 150 for the sketch) is embedded and searched exactly (inner
product over all fragments): recall at top-K = share of reads whose source fragment (overlapping
the read's true span by >= 100 bp) is among the K most similar. Throughput = fragments embedded per
CPU-second of this process. Writes a markdown table (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from align_divergent import mutate_genome  # noqa: E402

from bioseq import alphabet  # noqa: E402
from bioseq.align.index import tile  # noqa: E402
from bioseq.align.reference import read_reference  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_GENOME = SHARED / "genomes" / "klebsiella_pneumoniae" / "Klebs_HS11286.fna.xz"


def tiles(contigs, fragment_len: int, stride: int):
    """Fragments of every contig as ``bioseq index`` tiles them -> (codes list, genome-wide starts)."""
    frags, starts, off = [], [], 0
    for c in contigs:
        for s in tile(c.length, fragment_len, stride):
            frags.append(c.codes[s : s + fragment_len])
            starts.append(off + int(s))
        off += c.length
    return frags, np.array(starts)


def simulate(contigs, level: float, n: int, length: int, seed: int):
    """Reads from mutated copies of random windows -> (codes list, genome-wide true starts)."""
    rng = np.random.default_rng([seed, int(round(level * 1000))])
    sizes = np.array([c.length for c in contigs], float)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    reads, truth = [], []
    while len(reads) < n:
        ci = int(rng.choice(len(contigs), p=sizes / sizes.sum()))
        c = contigs[ci].codes
        if c.size < length + 40:
            continue
        s = int(rng.integers(0, c.size - length - 20))
        win = c[s : s + length + 20]
        if (win >= 4).any():
            continue
        copy, _ = mutate_genome(win, level, rng)
        r = copy[:length].copy()
        e = rng.random(r.size) < 0.001
        r[e] = (r[e] + rng.integers(1, 4, int(e.sum()))) % 4
        reads.append(alphabet.reverse_complement_codes(r) if rng.random() < 0.5 else r)
        truth.append(offs[ci] + s)
    return reads, np.array(truth)


def recall(frag_emb, starts, fragment_len, read_emb, truth, length, tops=(1, 16, 32)) -> dict:
    kmax = max(tops)
    hits = np.full(len(read_emb), 10**9)
    for s in range(0, len(read_emb), 256):  # blocks bound the (reads x fragments) similarity matrix
        sims = read_emb[s : s + 256] @ frag_emb.T
        top = np.argpartition(-sims, kmax, axis=1)[:, :kmax]
        order = np.take_along_axis(sims, top, 1).argsort(1)[:, ::-1]
        top = np.take_along_axis(top, order, 1)
        fs = starts[top]
        t = truth[s : s + 256, None]
        good = (np.minimum(fs + fragment_len, t + length) - np.maximum(fs, t)) >= 100
        hits[s : s + 256] = np.where(good.any(1), good.argmax(1), 10**9)
    return {f"top{k}": round(100 * float((hits < k).mean()), 1) for k in tops}


def timed_embed(enc, seqs, length):
    t = time.process_time()
    e = enc.embed(seqs, length)
    return e, len(seqs) / max(time.process_time() - t, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", type=Path, required=True, help="encoder checkpoint folder")
    ap.add_argument("--genome", type=Path, default=DEFAULT_GENOME)
    ap.add_argument("--reads", type=int, default=2000, help="reads per level")
    ap.add_argument("--length", type=int, default=150)
    ap.add_argument("--levels", type=float, nargs="*", default=[0.02, 0.05, 0.10, 0.15])
    ap.add_argument("--sketch-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="markdown file to write")
    a = ap.parse_args()

    import torch

    from bioseq.align.encoder import load_encoder
    from bioseq.align.sketch import SketchEncoder

    torch.set_num_threads(a.threads)
    contigs = list(read_reference(a.genome))
    enc = load_encoder(a.encoder, threads=a.threads)
    methods = {"k-mer sketch (k = %d, 2048 dims)" % a.sketch_k: (SketchEncoder(a.sketch_k, 2048), 300, 150),
               f"encoder `{a.encoder.name}`": (enc, int(enc.config.get("fragment_len", 256)),
                                               int(enc.config.get("stride", 96)))}
    reads = {lv: simulate(contigs, lv, a.reads, a.length, a.seed) for lv in a.levels}
    rows, speed = [], {}
    for name, (m, fl, st) in methods.items():
        frags, starts = tiles(contigs, fl, st)
        fe, speed[name] = timed_embed(m, frags, fl)
        print(f"{name}: {len(frags):,} fragments of {fl} bp, {speed[name]:,.0f} fragments/CPU-s", flush=True)
        for lv, (rd, truth) in reads.items():
            r = recall(fe, starts, fl, m.embed(rd, a.length), truth, a.length)
            rows.append({"method": name, "level": lv, **r})
            print(f"  {lv:.0%}: {r}", flush=True)
    lines = [f"# Whole-genome read retrieval: sketch vs encoder on `{a.genome.name}`", "",
             f"`python benchmarks/esa_recall.py --encoder {a.encoder} --genome {a.genome.name} --reads {a.reads}`", "",
             f"{a.reads:,} reads of {a.length} bp per level from copies of the genome's windows mutated at the "
             "given rate (85% substitutions, 15% indels of 1-3 bp) plus 0.1% sequencing error, either strand. "
             "Exact inner-product search over every fragment of the genome; recall = source fragment among the "
             f"top K. Throughput: fragments embedded per CPU-second, {a.threads} thread(s).", "",
             "| divergence | method | top-1 % | top-16 % | top-32 % |", "|---|---|---:|---:|---:|"]
    for lv in a.levels:
        for r in rows:
            if r["level"] == lv:
                lines.append(f"| {lv:.0%} | {r['method']} | {r['top1']} | {r['top16']} | {r['top32']} |")
    lines += ["", "| method | fragments / CPU-s |", "|---|---:|"]
    lines += [f"| {n} | {v:,.0f} |" for n, v in speed.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "fragments_per_cpu_s": speed}, indent=1))


if __name__ == "__main__":
    main()
