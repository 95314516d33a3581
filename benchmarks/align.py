"""Benchmark ``bioseq align`` against bwa mem, minimap2 -ax sr and bowtie2 on simulated reads.

    nice -n 10 python benchmarks/align.py [--genomes ecoli kleb pf chrx] [--reads 20000] [--threads 1]

Reads: ``wgsim`` (fixed seed) from real genomes in ../shared/data. Settings (``--settings``):
``150``/``250`` single-end reads (read 1 of each wgsim pair) at base error 0.1% and 2% (``e0.001``,
``e0.02``), on top of wgsim's default mutated copy of the genome (0.1% mutations, 15% of them
small indels); ``mut``: a copy mutated ten times harder (1% SNPs and small indels, 20% of them
indels), 0.1% error; ``pe``: 150 bp pairs (insert 500 +- 50), 0.1% error. Every SAM is scored the
same way: a read is correct when its primary alignment is on the right contig and its leftmost
aligned base is within 10 bp of the truth (wgsim names carry the fragment ends; each read starts at
one of them, by strand).

Printed and written to benchmarks/results/align.md: mapped %, correct %, precision, precision at
MAPQ >= 20 (and the share of reads there), reads/s (wall clock, including index loading), index
time, size and peak RSS of each tool, and the ratio of each figure to bwa mem's measured in the
same run. ``bioseq`` runs in its candidate modes too (ablation: embedding only, embedding + seed
vote re-ranking, hybrid, seeds only). A MAPQ calibration plot (align_mapq.png) shows, per setting,
the share of reads above each MAPQ threshold against the share of wrong placements among them.
"""

from __future__ import annotations

import argparse
import json
import lzma
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pysam

ROOT = Path(__file__).resolve().parents[1]
#: setting -> (read length, base error, mutation rate, indel fraction of mutations, paired)
SETTINGS = {
    "150 e0.001": (150, 0.001, 0.001, 0.15, False),
    "150 e0.02": (150, 0.02, 0.001, 0.15, False),
    "250 e0.001": (250, 0.001, 0.001, 0.15, False),
    "250 e0.02": (250, 0.02, 0.001, 0.15, False),
    "150 mut": (150, 0.001, 0.01, 0.2, False),
    "150 pe": (150, 0.001, 0.001, 0.15, True),
    "35 e0.001": (35, 0.001, 0.001, 0.15, False),
    "35 e0.02": (35, 0.02, 0.001, 0.15, False),
    "50 e0.02": (50, 0.02, 0.001, 0.15, False),
    "75 e0.02": (75, 0.02, 0.001, 0.15, False),
}
#: read length up to which `bwa aln` (the short-read algorithm) runs beside bwa mem
ALN_MAX = 50
GENOMES = {
    "ecoli": ("genomes/ecoli_K12_MG1655/MG1655-K12.fasta.gz", "E. coli K-12 (encoder training genome)"),
    "kleb": ("genomes/klebsiella_pneumoniae/Klebs_HS11286.fna.xz", "K. pneumoniae HS11286 (held-out species)"),
    "pf": ("genomes/plasmodium_falciparum_3D7/pfalciparum_genome_smalt.fa.gz", "P. falciparum 3D7, 23 Mb, 80% AT (held out)"),
    "chrx": ("genomes/human_GRCh37_chrX_trunc/hs37chrXtrunc.fa.gz", "human chrX first 70 Mb (held out)"),
}


def run(cmd: list[str], stdout=None, env=None) -> tuple[float, int, float]:
    """Run ``cmd`` -> (wall seconds, peak RSS in MiB, CPU seconds (user + system))."""
    t = time.time()
    with tempfile.TemporaryFile() as errf:  # a file, not a pipe: long progress output must not block the child
        p = subprocess.Popen(cmd, stdout=stdout, stderr=errf, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.time() - t
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, ru.ru_maxrss // 1024, ru.ru_utime + ru.ru_stime


def du(paths: list[Path]) -> float:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total / 2**20


def plain_fasta(src: Path, dst: Path) -> Path:
    if not dst.exists():
        opener = lzma.open if src.suffix == ".xz" else gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fi, open(dst, "wb") as fo:
            shutil.copyfileobj(fi, fo)
    return dst


def truth(name: str, read_len: int) -> tuple[str, int, int]:
    """wgsim name ``contig_start_end_e1:s1:i1_e2:s2:i2_id`` -> (contig, start, end), 1-based."""
    contig, start, end, *_ = name.rsplit("_", 5)
    return contig, int(start), int(end) - read_len + 1


def score(sam: Path, n_reads: int, read_len: int, unclipped: bool = False) -> dict:
    """Mapped / correct / precision figures of one SAM (``n_reads`` reads, mates counted apart).
    With ``unclipped`` the read's start is its leftmost aligned base minus a leading soft clip
    (divergent reads: a tool that clips a mutated end is not penalised for it)."""
    mapped = correct = hq = hq_correct = 0
    by_q = [[0, 0] for _ in range(61)]  # per MAPQ (capped at 60): [reads, wrong]
    seen = set()
    with pysam.AlignmentFile(str(sam), check_sq=False) as f:
        for r in f:
            if r.is_secondary or r.is_supplementary:
                continue
            key = (r.query_name, r.is_read2)
            if key in seen:
                raise RuntimeError(f"{sam}: two primary lines for {key}")
            seen.add(key)
            if r.is_unmapped:
                continue
            mapped += 1
            contig, a, b = truth(r.query_name, read_len)
            start = r.reference_start + 1
            if unclipped and r.cigartuples and r.cigartuples[0][0] == 4:
                start -= r.cigartuples[0][1]
            ok = r.reference_name == contig and min(abs(start - a), abs(start - b)) <= 10
            correct += ok
            q = min(r.mapping_quality, 60)
            by_q[q][0] += 1
            by_q[q][1] += not ok
            if r.mapping_quality >= 20:
                hq += 1
                hq_correct += ok
    if len(seen) != n_reads:
        raise RuntimeError(f"{sam}: {len(seen)} primary lines for {n_reads} reads")
    return {"mapped": 100 * mapped / n_reads, "correct": 100 * correct / n_reads,
            "precision": 100 * correct / max(mapped, 1), "hq_share": 100 * hq / n_reads,
            "prec_q20": 100 * hq_correct / max(hq, 1), "wrong_q20": hq - hq_correct, "by_mapq": by_q}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genomes", nargs="+", default=["ecoli", "kleb", "pf"], choices=sorted(GENOMES))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--reads", type=int, default=20000, help="reads (pairs for pe) per setting")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--modes", nargs="+", default=["rescue", "seed", "hybrid", "emb+vote", "emb"],
                    help="bioseq candidate modes; the first runs in every setting, all of them in the ablation setting")
    ap.add_argument("--ablation", default="150 e0.02", help="setting where every mode runs")
    ap.add_argument("--ablation-reads", type=int, default=2000, help="reads for the embedding modes' ablation runs")
    ap.add_argument("--index-only", action="store_true", help="build (and time) the indexes, align nothing")
    ap.add_argument("--bioseq-index-args", default="",
                    help="extra `bioseq index` options, e.g. '--sketch-dim 256 --hnsw-above 1000000000' for a smaller, "
                         "exact sketch search on a 20+ Mb genome")
    ap.add_argument("--update", action="store_true",
                    help="replace only the rows of the genomes and settings run now in the report at --out")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("BIOSEQ_SHARED", ROOT.parent / "shared" / "data")))
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_align")
    ap.add_argument("--reuse", action="store_true", help="reuse indexes (and their timings) from --work")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "align.md")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    T = str(a.threads)
    py = [sys.executable, "-m", "bioseq"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows, index_rows = [], []
    for g in a.genomes:
        rel, desc = GENOMES[g]
        d = a.work / g
        d.mkdir(exist_ok=True)
        ref = plain_fasta(a.shared / rel, d / "ref.fa")
        print(f"== {g}: {desc}", flush=True)
        # -- indexes ------------------------------------------------------------------------------
        idx = {}
        steps = {
            "bwa mem": (["bwa", "index", str(ref)], [Path(str(ref) + s) for s in (".amb", ".ann", ".bwt", ".pac", ".sa")]),
            "minimap2 -ax sr": (["minimap2", "-x", "sr", "-t", T, "-d", str(d / "ref.mmi"), str(ref)], [d / "ref.mmi"]),
            "bowtie2": (["bowtie2-build", "--threads", T, "-q", str(ref), str(d / "bt2")], list(d.glob("bt2*")) or [d / "bt2"]),
            "bioseq": (py + ["index", str(ref), "-o", str(d / "ref.esa"), "-t", T, *a.bioseq_index_args.split()],
                       [d / "ref.esa"]),
        }
        # a tool not installed here is left out (its rows are missing from this run's report)
        steps = {t: v for t, v in steps.items() if t == "bioseq" or shutil.which(v[0][0])}
        cache = d / "index_times.json"
        done = json.loads(cache.read_text()) if a.reuse and cache.exists() else {}
        for tool, (cmd, files) in steps.items():
            if tool in done:
                wall, rss, cpu = done[tool]
            else:
                wall, rss, cpu = run(cmd, stdout=subprocess.DEVNULL, env=env)
                done[tool] = (wall, rss, cpu)
                cache.write_text(json.dumps(done))
            if tool == "bowtie2":
                files = list(d.glob("bt2*"))
            idx[tool] = (wall, du(files), rss)
            index_rows.append((g, tool, wall, cpu, du(files), rss))
            print(f"  index {tool}: {wall:.1f} s wall, {cpu:.1f} s CPU, {du(files):.1f} MiB, peak RSS {rss} MiB", flush=True)
        if a.index_only:
            continue
        for setting in a.settings:
            length, err, mut, indel, paired = SETTINGS[setting]
            slug_s = setting.replace(" ", "_")
            fq, fq2 = d / f"reads_{slug_s}_1.fq", d / f"reads_{slug_s}_2.fq"
            run(["wgsim", "-N", str(a.reads), "-1", str(length), "-2", str(length), "-e", str(err), "-r", str(mut),
                 "-R", str(indel), "-d", "500", "-s", "50", "-S", "11", str(ref), str(fq), str(fq2)],
                stdout=subprocess.DEVNULL)
            with open(fq) as fh:  # wgsim rounds per contig, so multi-contig genomes get a few more
                n_reads = sum(1 for _ in fh) // 4
            ins = [str(fq)] + ([str(fq2)] if paired else [])
            cmds = {
                "bwa mem": ["bwa", "mem", "-t", T, str(ref), *ins],
                **({"bwa aln": ["bwa", "aln", "-t", T, str(ref), ins[0]]} if length <= ALN_MAX and not paired else {}),
                "minimap2 -ax sr": ["minimap2", "-ax", "sr", "-t", T, str(d / "ref.mmi"), *ins],
                "bowtie2": ["bowtie2", "-p", T, "-x", str(d / "bt2")] + (["-1", ins[0], "-2", ins[1]] if paired else ["-U", ins[0]]),
            }
            cmds = {t: c for t, c in cmds.items() if t.split()[0] in ("bwa",) or t in idx}
            cmds[f"bioseq ({a.modes[0]})"] = py + ["align", str(d / "ref.esa"), *ins, "-t", T, "-k", str(a.top_k),
                                                  "--mode", a.modes[0]]
            blocks = [(setting, ins, n_reads, cmds)]
            if setting == a.ablation and not paired:
                # every candidate mode, bwa mem beside them, on the first reads (embedding every read is slow)
                sub = d / f"reads_{slug_s}_head.fq"
                with open(fq) as fi, open(sub, "w") as fo:
                    fo.writelines(line for _, line in zip(range(4 * a.ablation_reads), fi))
                n_sub = min(n_reads, a.ablation_reads)
                abl = {"bwa mem": ["bwa", "mem", "-t", T, str(ref), str(sub)]}
                for m in a.modes:
                    abl[f"bioseq ({m})"] = py + ["align", str(d / "ref.esa"), str(sub), "-t", T, "-k", str(a.top_k), "--mode", m]
                blocks.append((f"{setting}, first {n_sub:,}", [str(sub)], n_sub, abl))
            for label, _, n_set, block in blocks:
                base = None
                for tool, cmd in block.items():
                    slug = "".join(ch if ch.isalnum() else "_" for ch in f"{tool}_{label}")
                    sam = d / f"{slug}.sam"
                    n = n_set * (2 if paired else 1)
                    with open(sam, "w") as fo:
                        if tool == "bwa aln":  # aln writes suffix-array hits, samse turns them into SAM
                            sai = sam.with_suffix(".sai")
                            with open(sai, "wb") as fs:
                                wall, rss, cpu = run(cmd, stdout=fs)
                            w2, r2, c2 = run(["bwa", "samse", str(ref), str(sai), cmd[-1]], stdout=fo)
                            wall, rss, cpu = wall + w2, max(rss, r2), cpu + c2
                        else:
                            wall, rss, cpu = run(cmd, stdout=fo, env=env)
                    s = score(sam, n, length)
                    s.update(tool=tool, genome=g, setting=label, reads=n, reads_per_s=n / wall, reads_per_cpu_s=n / cpu,
                             rss=rss)
                    base = base or s
                    rows.append(s)
                    print(f"  {label:22s} {tool:20s} mapped {s['mapped']:6.2f}  correct {s['correct']:6.2f} "
                          f"(bwa {s['correct'] - base['correct']:+.2f})  prec {s['precision']:6.2f}  "
                          f"prec@Q20 {s['prec_q20']:6.2f} ({s['hq_share']:.1f}% of reads)  "
                          f"{s['reads_per_s']:8.0f} reads/s wall, {s['reads_per_cpu_s']:8.0f} reads/CPU-s "
                          f"(x{s['reads_per_cpu_s'] / base['reads_per_cpu_s']:.3f} bwa)  RSS {rss} MiB", flush=True)
    if a.index_only:
        return
    if a.update and a.out.with_suffix(".json").exists():
        old = json.loads(a.out.with_suffix(".json").read_text())
        ran = {(r["genome"], r["setting"]) for r in rows}
        keep = [r for r in old["rows"] if (r["genome"], r["setting"]) not in ran]
        order = {g: i for i, g in enumerate(dict.fromkeys([r["genome"] for r in old["rows"]] + a.genomes))}
        rows = sorted(keep + rows, key=lambda r: (order[r["genome"]], list(SETTINGS).index(r["setting"].split(",")[0])))
        index_rows = [tuple(x) for x in old["index"] if x[0] not in a.genomes] + index_rows
        a.genomes = list(order)
    write_report(a, rows, index_rows)


def write_report(a, rows, index_rows) -> None:
    lines = [
        "# Read alignment benchmark", "",
        f"`python benchmarks/align.py --genomes {' '.join(a.genomes)} --reads {a.reads} --threads {a.threads} "
        f"--top-k {a.top_k}`", "",
        f"wgsim (seed 11) reads, {a.reads:,} per setting (pairs for `pe`): `150`/`250` = single-end read length, "
        "`e0.001`/`e0.02` = base error on top of wgsim's default mutated genome copy (0.1% mutations, 15% indels); "
        "`mut` = 1% mutations (20% indels), 0.1% error; `pe` = 150 bp pairs, insert 500 +- 50, mates scored apart. "
        "Correct = right contig and leftmost aligned base within 10 bp of the truth. "
        f"{a.threads} thread(s) for every tool. reads/CPU-s (user + system time of the whole command, index "
        "loading included) is the speed figure to compare; wall-clock rates depend on the machine's load. "
        f"Ablation rows (`{a.ablation}, first ...`): every candidate mode and bwa mem on the first "
        f"{a.ablation_reads:,} reads of that setting (at that size start-up is a large share of each "
        "command's CPU time, so read the speed figures of the full settings). "
        "No tool is restricted to the read's true contig.", "",
        "| genome | setting | tool | reads | mapped % | correct % | Δ correct vs bwa | precision % | prec. MAPQ≥20 % | "
        "wrong MAPQ≥20 | reads MAPQ≥20 % | reads/CPU-s | × bwa | reads/s wall | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bwa = {(r["genome"], r["setting"]): r for r in rows if r["tool"] == "bwa mem"}
    for r in rows:
        b = bwa[(r["genome"], r["setting"])]
        lines.append(f"| {r['genome']} | {r['setting']} | {r['tool']} | {r['reads']} | {r['mapped']:.2f} | {r['correct']:.2f} | "
                     f"{r['correct'] - b['correct']:+.2f} | {r['precision']:.2f} | {r['prec_q20']:.2f} | "
                     f"{r.get('wrong_q20', '')} | {r['hq_share']:.1f} | "
                     f"{r['reads_per_cpu_s']:.0f} | {r['reads_per_cpu_s'] / b['reads_per_cpu_s']:.3f} | "
                     f"{r['reads_per_s']:.0f} | {r['rss']} |")
    lines += ["", "| genome | tool | index wall s | index CPU s | index size MiB | peak RSS MiB |", "|---|---|---|---|---|---|"]
    lines += [f"| {g} | {t} | {w:.1f} | {c:.1f} | {s:.1f} | {m} |" for g, t, w, c, s, m in index_rows]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "index": index_rows}, indent=1) + "\n")
    plot(rows, a.out.with_suffix(".png"))
    plot_mapq(rows, a.out.with_name(a.out.stem + "_mapq.png"))
    print("\n".join(lines))


def plot_mapq(rows: list[dict], path: Path) -> None:
    """MAPQ calibration, one panel per genome and setting: for every MAPQ threshold q, the share of
    reads with MAPQ >= q (y) against the share of wrong placements among them (x, log), as in the
    bwa and minimap2 papers; a well calibrated tool sits up and to the left, its MAPQ >= 20 point
    (marked) left of 1%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    main = [r for r in rows if ", first" not in r["setting"] and "by_mapq" in r]
    groups = list(dict.fromkeys((r["genome"], r["setting"]) for r in main))
    if not groups:
        return
    tools = list(dict.fromkeys(r["tool"] for r in main))
    color = {t: f"C{i}" for i, t in enumerate(tools)}  # one colour per tool in every panel
    cols = min(4, len(groups))
    nrow = -(-len(groups) // cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(4 * cols, 3.4 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        for r in (r for r in main if (r["genome"], r["setting"]) == g):
            h = np.array(r["by_mapq"], dtype=np.float64)[::-1]  # MAPQ 60 first
            reads, wrong = np.cumsum(h[:, 0]), np.cumsum(h[:, 1])
            keep = reads > 0
            err = np.maximum(wrong[keep] / reads[keep], 1e-5)
            ax.plot(err, 100 * reads[keep] / r["reads"], marker=".", ms=3, label=r["tool"], color=color[r["tool"]])
            q20 = 60 - 20
            if reads[q20] > 0:
                ax.plot(max(wrong[q20] / reads[q20], 1e-5), 100 * reads[q20] / r["reads"], "kx", ms=6)
        ax.set_xscale("log")
        ax.set_title(f"{g[0]} {g[1]}", fontsize=9)
        ax.set_xlabel("wrong among MAPQ >= q", fontsize=8)
        ax.set_ylabel("% reads with MAPQ >= q", fontsize=8)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    for ax in list(axes.flat)[: len(groups)]:
        ax.legend(fontsize=6)
    fig.suptitle("MAPQ calibration (x: MAPQ >= 20 point; 1e-5 = no wrong read)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(rows: list[dict], path: Path) -> None:
    """Correct % and reads per CPU-second of every tool, per genome and setting (log scale for speed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [r for r in rows if ", first" not in r["setting"]]
    groups = list(dict.fromkeys((r["genome"], r["setting"]) for r in main))
    tools = list(dict.fromkeys(r["tool"] for r in main))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(groups) + 3), 7), sharex=True)
    width = 0.8 / len(tools)
    for t, tool in enumerate(tools):
        got = {(r["genome"], r["setting"]): r for r in main if r["tool"] == tool}
        xs = [i + t * width for i, g in enumerate(groups) if g in got]
        axes[0].bar(xs, [got[g]["correct"] for g in groups if g in got], width, label=tool)
        axes[1].bar(xs, [got[g]["reads_per_cpu_s"] for g in groups if g in got], width, label=tool)
    lo = min(r["correct"] for r in main)
    axes[0].set_ylim(max(0, lo - 1), 100)
    axes[0].set_ylabel("correct %")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("reads / CPU-second")
    axes[1].set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    axes[1].set_xticklabels([f"{g}\n{s}" for g, s in groups], fontsize=8)
    axes[0].legend(fontsize=8, ncol=len(tools))
    axes[0].set_title("Read alignment: accuracy and speed (1 thread, same reads for every tool)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
