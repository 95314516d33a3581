"""Zero-shot variant scores, checked without external labels: stop-gained versus synonymous SNVs
in the long open reading frames of E. coli.

Open reading frames of at least 300 codons (ATG to stop, either strand) are almost all real genes.
A single-nucleotide change that turns a codon into a stop codon truncates the protein; one that
keeps the amino acid (synonymous) barely matters. A language model that learned anything about
genes should give the stop-creating changes the lower log-likelihood ratio. The benchmark samples
the same number of each, scores them with ``bioseq.eval.zeroshot.variant_scores`` (the code
behind ``bioseq score variants``: both strands averaged) and reports the AUROC of
"synonymous scores above stop-gained" (0.5 = chance, 1 = perfect), for each model and for every
order-k Markov chain scored the same way (the baseline to beat is the best of them).

    python benchmarks/variant_validity.py --model runs/demo/final --model runs/pretrain/tiny_transformer_clm/final
    python benchmarks/variant_validity.py --model M --markov-from data/genomes/ecoli_K12_MG1655.fa.gz --n 2000

Writes ``benchmarks/results/variant_validity.md`` and ``variant_validity.json``.
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

from bioseq.alphabet import reverse_complement_codes  # noqa: E402
from bioseq.eval.markov import MarkovModel  # noqa: E402
from bioseq.eval.zeroshot import (  # noqa: E402
    LanguageModel,
    Variant,
    markov_variant_scores,
    read_reference,
    variant_scores,
)
from bioseq.finetune import _auroc_binary  # noqa: E402

BASES = "ACGT"
STOPS = {"TAA", "TAG", "TGA"}
_AA = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"  # standard code, TCAG order
CODE = {a + b + c: _AA[16 * "TCAG".index(a) + 4 * "TCAG".index(b) + "TCAG".index(c)]
        for a in "TCAG" for b in "TCAG" for c in "TCAG"}


def long_orfs(seq: str, min_codons: int) -> list[tuple[int, int]]:
    """``[start, end)`` of ORFs (first ATG after a stop, to and including the next in-frame stop)
    with at least ``min_codons`` codons, in the coordinates of ``seq`` (one strand)."""
    out = []
    for frame in range(3):
        start = None
        for i in range(frame, len(seq) - 2, 3):
            codon = seq[i : i + 3]
            if start is None and codon == "ATG":
                start = i
            elif codon in STOPS:
                if start is not None and (i + 3 - start) // 3 >= min_codons:
                    out.append((start, i + 3))
                start = None
    return out


def orf_snvs(seq_codes: np.ndarray, contig: str, min_codons: int) -> tuple[list[Variant], list[Variant], int]:
    """Every stop-creating and every synonymous SNV inside the long ORFs of both strands (start and
    stop codons excluded), as forward-strand variants. Returns ``(stop, synonymous, n_orfs)``."""
    n = len(seq_codes)
    stop, syn, n_orfs = [], [], 0
    for strand, codes in (("+", seq_codes), ("-", reverse_complement_codes(seq_codes))):
        seq = "".join(BASES[c] if c < 4 else "N" for c in (codes & 0x7F).tolist())
        for a, b in long_orfs(seq, min_codons):
            n_orfs += 1
            for c in range(a + 3, b - 3, 3):
                codon = seq[c : c + 3]
                if "N" in codon:
                    continue
                for j in range(3):
                    for alt in BASES:
                        if alt == codon[j]:
                            continue
                        new = codon[:j] + alt + codon[j + 1 :]
                        kind = "stop" if new in STOPS else "syn" if CODE[new] == CODE[codon] else None
                        if kind is None:
                            continue
                        p, r, x = c + j, codon[j], alt
                        if strand == "-":  # back to forward-strand coordinates and bases
                            comp = dict(zip("ACGT", "TGCA", strict=True))
                            p, r, x = n - 1 - p, comp[r], comp[x]
                        (stop if kind == "stop" else syn).append(Variant(contig, p, r, x))
    return stop, syn, n_orfs


def auroc(syn_scores: np.ndarray, stop_scores: np.ndarray) -> float:
    """P(a synonymous SNV scores above a stop-gained one), ties half."""
    y = np.r_[np.ones(len(syn_scores)), np.zeros(len(stop_scores))]
    return _auroc_binary(y, np.r_[syn_scores, stop_scores])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=[], help="checkpoint folder (repeatable)")
    ap.add_argument("--genome", default=str(ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz"))
    ap.add_argument("--markov-from", action="append", default=None,
                    help="FASTA to fit the Markov chains on (default: the genome itself)")
    ap.add_argument("--max-order", type=int, default=12)
    ap.add_argument("--min-codons", type=int, default=300)
    ap.add_argument("--n", type=int, default=1000, help="SNVs sampled per class")
    ap.add_argument("--window", type=int, default=None, help="context window (default: each model's training window)")
    ap.add_argument("--markov-window", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/variant_validity"))
    ap.add_argument("--from-json", help="only rewrite the report from a result JSON of an earlier run")
    args = ap.parse_args(argv)
    if args.from_json:
        write_report(json.loads(Path(args.from_json).read_text()), Path(args.from_json))
        return

    ref = read_reference(args.genome)
    contig, codes = next(iter(ref.items()))
    stop, syn, n_orfs = orf_snvs(codes, contig, args.min_codons)
    rng = np.random.default_rng(args.seed)
    pick = lambda vs: [vs[i] for i in np.sort(rng.choice(len(vs), min(args.n, len(vs)), replace=False))]  # noqa: E731
    stop_s, syn_s = pick(stop), pick(syn)
    print(f"{n_orfs} ORFs >= {args.min_codons} codons; {len(stop):,} stop-gained and {len(syn):,} synonymous SNVs; "
          f"scoring {len(stop_s)} + {len(syn_s)}", file=sys.stderr)

    rows = []
    for m in args.model:
        t0 = time.time()
        lm = LanguageModel.load(m, window=args.window)
        s_stop, s_syn = variant_scores(lm, ref, stop_s), variant_scores(lm, ref, syn_s)
        rows.append({"name": m, "kind": f"{lm.kind} LM, window {lm.window}", "auroc": auroc(s_syn, s_stop),
                     "mean_llr_stop": float(s_stop.mean()), "mean_llr_syn": float(s_syn.mean()),
                     "seconds": round(time.time() - t0, 1)})
        print(rows[-1], file=sys.stderr)
    train = [c for f in args.markov_from for c in read_reference(f).values()] if args.markov_from else [codes]
    t0 = time.time()
    big = MarkovModel(args.max_order).fit(train)
    print(f"Markov chains fitted in {time.time() - t0:.1f} s", file=sys.stderr)
    markov = []
    for k in range(args.max_order + 1):
        mk = MarkovModel(k, big.alpha, counts=big.counts[: k + 1])
        s_stop = markov_variant_scores(mk, ref, stop_s, args.markov_window)
        s_syn = markov_variant_scores(mk, ref, syn_s, args.markov_window)
        markov.append({"name": f"order-{k} Markov", "kind": f"window {args.markov_window}", "auroc": auroc(s_syn, s_stop),
                       "mean_llr_stop": float(s_stop.mean()), "mean_llr_syn": float(s_syn.mean())})
    best = max(markov, key=lambda r: r["auroc"])
    result = {"genome": Path(args.genome).name, "orfs": n_orfs, "min_codons": args.min_codons,
              "candidates": {"stop": len(stop), "syn": len(syn)}, "sampled": {"stop": len(stop_s), "syn": len(syn_s)},
              "seed": args.seed, "markov_fitted_on": args.markov_from or [Path(args.genome).name],
              "models": rows, "markov": markov, "best_markov": best["name"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, out)


def auroc_se(a: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(np.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)))


def write_report(result: dict, out: Path) -> None:
    """``<out>.md`` from the result dictionary (also: ``--from-json`` rewrites it from the JSON)."""
    rows, markov = result["models"], result["markov"]
    best = next(r for r in markov if r["name"] == result["best_markov"])
    n_stop, n_syn = result["sampled"]["stop"], result["sampled"]["syn"]
    se = lambda r: auroc_se(r["auroc"], n_syn, n_stop)  # noqa: E731
    lines = [
        "# Zero-shot variant scores: stop-gained vs synonymous SNVs in E. coli genes",
        "",
        f"Genome {result['genome']}: {result['orfs']} open reading frames of >= {result['min_codons']} codons (both "
        f"strands). Candidates: {result['candidates']['stop']:,} stop-gained and {result['candidates']['syn']:,} "
        f"synonymous SNVs (start and stop codons excluded); {n_stop:,} of each sampled (seed {result['seed']}). Score: "
        "log P(ALT) - log P(REF) in nats, both strands averaged (`bioseq.eval.zeroshot.variant_scores`, as `bioseq "
        "score variants`). AUROC = P(synonymous scores above stop-gained); 0.5 is chance; +- is the Hanley-McNeil "
        f"standard error. Markov chains fitted on {', '.join(map(str, result['markov_fitted_on']))} (both strands) and "
        "scored the same way (log P summed from the variant to the window's end).",
        "",
        "| scorer | kind | AUROC | mean LLR stop-gained | mean LLR synonymous |",
        "|---|---|---:|---:|---:|",
    ]
    shown = [markov[k] for k in range(len(markov)) if k % 2 == 0 or markov[k] is best]
    for r in rows + shown:
        tag = " (best Markov)" if r is best else ""
        lines.append(f"| {r['name']}{tag} | {r['kind']} | {r['auroc']:.4f} +- {se(r):.4f} | {r['mean_llr_stop']:.3f} | "
                     f"{r['mean_llr_syn']:.3f} |")
    lines.append("")
    for r in rows:
        diff, noise = r["auroc"] - best["auroc"], 2 * np.hypot(se(r), se(best))
        verdict = "above" if diff > noise else "below" if diff < -noise else "within noise (2 SE) of"
        lines.append(f"- {r['name']}: AUROC {r['auroc']:.4f}, {verdict} the best Markov chain ({best['name']}, "
                     f"{best['auroc']:.4f}; difference {diff:+.4f}, 2 SE = {noise:.4f}); {r['seconds']} s for "
                     f"{n_stop + n_syn} variants.")
    lines += result.get("notes", [])
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
