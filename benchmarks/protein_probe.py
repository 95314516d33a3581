"""Frozen protein embeddings vs composition: a linear probe for the source organism's genus.

    python benchmarks/protein_probe.py --model protein-mlm-uniprot-tiny
    python benchmarks/protein_probe.py --model runs/protein_mlm_starter/last --genera 10 --per-genus 150

UniProt headers name the organism (``OS=``); the probe predicts its first word (the genus, or a
virus family name such as "Human") for proteins of the most frequent genera of the file, with a
logistic regression on standardised features, by stratified k-fold cross-validation. Features:
amino-acid composition, amino-acid + dipeptide composition (the baseline to beat), the model's
frozen mean-pooled embeddings (``bioseq.embed``), the same for the architecture with random weights
(what the pretraining adds), and embeddings + amino-acid composition. Proteins the masked LM held
out (``data.protein_holdout``) are counted in the report. Writes ``benchmarks/results/protein_probe.md``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin on shared cores

SHARED = Path(os.environ.get("BIOSEQ_SHARED", ROOT.parent / "shared" / "data"))


def read_labelled(fasta: Path) -> list[tuple[str, str, str]]:
    """``(accession, genus, sequence)`` for every record whose header has ``OS=``."""
    out, name, genus, parts = [], None, None, []
    opener = gzip.open if fasta.suffix == ".gz" else open
    with opener(fasta, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if name and genus:
                    out.append((name, genus, "".join(parts)))
                m = re.search(r"OS=(\S+)", line)
                name, genus, parts = line[1:].split()[0], (m.group(1) if m else None), []
            else:
                parts.append(line.strip().upper())
    if name and genus:
        out.append((name, genus, "".join(parts)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="shipped model name or checkpoint folder (a multi-omic or protein MLM)")
    ap.add_argument("--fasta", default=str(SHARED / "proteins/uniprot_mmseqs2_examples/DB.fasta.gz"))
    ap.add_argument("--genera", type=int, default=10, help="the most frequent genera of the file")
    ap.add_argument("--per-genus", type=int, default=150, help="proteins drawn per genus")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.05, help="the MLM's data.protein_holdout (for the report)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/protein_probe.md"))
    a = ap.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import bioseq
    from bioseq.embeddings import load_model_and_tokenizer
    from bioseq.io.atomic import atomic_file
    from bioseq.multiomic.baselines import AA20, kmer_composition
    from bioseq.multiomic.corpus import is_holdout

    torch.set_num_threads(a.threads)
    t0 = time.time()
    recs = [r for r in read_labelled(Path(a.fasta)) if set(r[2]) <= set(AA20) and len(r[2]) >= 30]
    top = [g for g, _ in Counter(g for _, g, _ in recs).most_common(a.genera)]
    rng = np.random.default_rng(a.seed)
    picked = []
    for g in top:
        idx = [i for i, r in enumerate(recs) if r[1] == g]
        picked += [recs[i] for i in rng.choice(idx, size=min(a.per_genus, len(idx)), replace=False)]
    names, labels, seqs = zip(*picked, strict=True)
    y = np.array([top.index(g) for g in labels])
    n_held = sum(is_holdout(n, a.holdout) for n in names)
    print(f"{len(seqs)} proteins of {len(top)} genera ({n_held} held out of the MLM's training)", flush=True)

    # features
    feats = {"amino-acid composition": np.stack([kmer_composition(s, AA20, 1) for s in seqs])}
    feats["amino-acid + dipeptide composition"] = np.concatenate(
        [feats["amino-acid composition"], np.stack([kmer_composition(s, AA20, 2) for s in seqs])], 1)
    model, tok, _ = load_model_and_tokenizer(a.model, modality="protein")
    model.eval()
    t1 = time.time()
    emb = bioseq.embed(model, list(seqs), tokenizer=tok, window=512, batch_size=8)
    t_embed = time.time() - t1
    torch.manual_seed(a.seed)  # the same architecture, untrained: what pretraining adds
    rand = type(model)(type(model.backbone)(model.backbone.config)).eval()
    emb_rand = bioseq.embed(rand, list(seqs), tokenizer=tok, window=512, batch_size=8)
    feats["frozen embeddings, random weights (control)"] = emb_rand
    feats["frozen embeddings (mean-pooled)"] = emb
    feats["frozen embeddings + amino-acid composition"] = np.concatenate([emb, feats["amino-acid composition"]], 1)

    # probe
    folds = list(StratifiedKFold(a.folds, shuffle=True, random_state=a.seed).split(np.zeros(len(y)), y))
    rows = []
    for name, X in feats.items():
        acc, f1 = [], []
        for tr, te in folds:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
            clf.fit(X[tr], y[tr])
            p = clf.predict(X[te])
            acc.append(accuracy_score(y[te], p))
            f1.append(f1_score(y[te], p, average="macro"))
        rows.append((name, X.shape[1], np.mean(acc), np.std(acc, ddof=1) / np.sqrt(len(acc)), np.mean(f1)))
        print(f"{name}: accuracy {rows[-1][2]:.4f} +- {rows[-1][3]:.4f}", flush=True)

    cfg = model.backbone.config
    lines = [
        "# Protein embeddings: organism (genus) linear probe\n",
        f"Command: `python benchmarks/protein_probe.py --model {a.model} --genera {a.genera} --per-genus {a.per_genus} "
        f"--folds {a.folds} --seed {a.seed}` ({time.time() - t0:.0f} s on {a.threads} CPU thread(s); embedding "
        f"{t_embed:.0f} s).\n",
        f"Model: `{a.model}` ({type(model.backbone).__name__}, d_model {cfg.d_model}, {cfg.n_layer} layers, "
        f"{model.backbone.num_parameters() / 1e6:.2f}M parameters), mean-pooled over residues, windows of its training length.\n",
        f"Data: {len(seqs)} UniProt proteins ({a.per_genus} per genus at most) of the {len(top)} most frequent genera in "
        f"`{Path(a.fasta).name}`: {', '.join(top)}. {n_held} of them were held out of the masked LM's training; the "
        "others were seen without labels. Chance accuracy "
        f"{np.bincount(y).max() / len(y):.3f}. Logistic regression (C = 0.1) on standardised features, "
        f"{a.folds}-fold stratified cross-validation; mean +- standard error over folds. Homologous proteins of one "
        "genus can fall into different folds, which helps every feature set alike.\n",
        "| features | dims | accuracy | macro F1 |",
        "|---|---|---|---|",
    ]
    for name, d, m, se, f1 in rows:
        lines.append(f"| {name} | {d} | {m:.3f} +- {se:.3f} | {f1:.3f} |")
    base = dict((r[0], r[2]) for r in rows)
    lines.append("")
    lines.append(f"Frozen embeddings minus amino-acid + dipeptide composition: "
                 f"{base['frozen embeddings (mean-pooled)'] - base['amino-acid + dipeptide composition']:+.3f} accuracy; "
                 f"pretrained minus random weights: {base['frozen embeddings (mean-pooled)'] - base['frozen embeddings, random weights (control)']:+.3f}.")
    with atomic_file(a.out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
