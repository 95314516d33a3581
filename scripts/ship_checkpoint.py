"""Ship a pretraining run's exported model inside the package, with its model card.

    python scripts/ship_checkpoint.py runs/pretrain/starter_transformer_clm --name dna-clm-bacteria-tiny \
        --recipe recipes/configs/transformer/starter_clm.yaml --hardware "2 CPU cores (AVX512-BF16), bf16 autocast" \
        [--downstream benchmarks/results/starter_downstream.md]

Reads the run's ``recipe_config.json``, ``metrics.csv`` (held-out bits/base and the Markov
baselines logged in the same run) and ``final/``; writes ``bioseq/assets/models/<name>/`` through
:func:`bioseq.models.checkpoints.ship` (weights checksummed in ``card.json``). Only the weights
ship, never optimizer state.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Provenance and licence of the genomes the recipes train on (../shared/data/README.md).
SOURCES = {
    "ecoli_K12_MG1655": "E. coli K-12 MG1655 (Debian ragout-examples; BSD-3/GPL-2+)",
    "klebsiella_pneumoniae": "K. pneumoniae complete genomes (Debian kleborate-examples; GPL-3+)",
    "staphylococcus_aureus_sibelia": "S. aureus complete genomes (Debian sibelia-examples; GPL-2)",
    "lambda": "phage lambda NC_001416 (Debian bowtie2-examples; GPL-3)",
    "uniprot_mmseqs2_examples": "20,000 UniProt proteins (Debian mmseqs2-examples; data CC BY 4.0)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--hardware", required=True, help="e.g. '2 CPU cores (AVX512-BF16), bf16 autocast'")
    ap.add_argument("--recipe", required=True, help="the config the run was launched with (for the card)")
    ap.add_argument("--downstream", type=Path, help="markdown with downstream results, appended to the card")
    ap.add_argument("--not-for", default="", help="what the model is not good for (a sentence or two)")
    ap.add_argument("--note", default="", help="anything else about how the run went, added under Training")
    args = ap.parse_args()

    from bioseq.models import load_pretrained
    from bioseq.models.checkpoints import ship

    cfg = json.loads((args.run / "recipe_config.json").read_text())
    with open(args.run / "metrics.csv", newline="") as fh:
        all_rows = list(csv.DictReader(fh))
    rows = all_rows[max(i for i, r in enumerate(all_rows) if r["split"] == "train" and int(r["step"]) == 1):]
    train = [r for r in rows if r["split"] == "train"]
    last_step = int(train[-1]["step"])
    # A resumed run logs several segments, each with its own clock and token count from zero:
    # add up the segments' times; tokens follow from the steps.
    seconds, prev = 0.0, None
    for r in train:
        t = float(r["elapsed_s"])
        if prev is not None and t < prev:
            seconds += prev
        prev = t
    seconds += prev or 0.0
    held = {r["split"].split(":")[-1]: float(r["bits_per_base"]) for r in rows
            if r["split"].startswith("valid") and int(r["step"]) == last_step}
    markov = {}
    for r in all_rows:  # logged once, at the start of the first segment
        if r["split"].startswith("markov_k"):
            k, _, s = r["split"][len("markov_k"):].partition(":")
            markov[s or "valid"] = (int(k), float(r["bits_per_base"]))
    model = load_pretrained(args.run / "final")
    m, d = cfg["model"], cfg["data"]
    size = m["size"] + "".join(f" ({k}={v})" for k, v in (m.get("overrides") or {}).items())
    train_files = [f for f in d["fasta"] if not any(h in f for h in d.get("holdout_genomes") or [])]
    folders = sorted({Path(f).parent.name for f in d["fasta"]})
    data = "; ".join(SOURCES.get(f, f) for f in folders)
    heldout = {}
    for s, bpb in held.items():
        heldout[f"{s} bits/base"] = round(bpb, 4)
        if s in markov:
            heldout[f"{s} best Markov (k={markov[s][0]})"] = round(markov[s][1], 4)
    minutes = seconds / 60
    t = cfg["train"]
    tokens = last_step * int(t["batch_size"]) * int(t.get("grad_accum", 1)) * int(d["window"])
    card = {"task": cfg["objective"], "size": size, "params": model.backbone.num_parameters(),
            "tokenizer": d.get("tokenizer", "dna-char"), "data": data, "tokens": tokens,
            "steps": last_step, "hardware": f"{args.hardware}, {minutes:.0f} min", "heldout": heldout}

    sets = cfg.get("eval", {}).get("sets") or {}
    lines = [
        f"# {args.name}", "",
        f"A {card['params'] / 1e6:.2f} M-parameter {size} {'causal' if cfg['objective'] == 'clm' else 'masked'} "
        f"language model of DNA (single-nucleotide `{card['tokenizer']}` tokens), trained with "
        f"`recipes/pretrain.py` on bacterial genomes. Load it with `load_pretrained(\"{args.name}\")` or "
        f"`--model {args.name}`.", "",
        "## Training", "",
        f"- Data: {data}. Trained on: {', '.join(Path(f).name for f in train_files)}; held out: "
        f"{', '.join(d.get('holdout_genomes') or []) or 'none'}.",
        f"- {last_step:,} optimizer steps, {card['tokens'] / 1e6:.1f} M tokens, windows of {d['window']} bp, "
        f"both strands (reverse-complement augmentation), sequence-length warm-up, AdamW + cosine schedule.",
        f"- Hardware: {card['hardware']}.",
        f"- Reproduce: `accelerate launch recipes/pretrain.py --config {args.recipe}`.",
        *([f"- {args.note}"] if args.note else []),
        "", "## Held-out scores", "",
        "Bits per base (lower is better) on windows of genomes never trained on, beside the best order-k "
        "Markov chain fitted on the same training genomes and scored on the same windows in the same run.", "",
        "| held-out set | genomes | model bits/base | best Markov bits/base |", "|---|---|---:|---:|",
    ]
    for s, bpb in held.items():
        mk = f"{markov[s][1]:.4f} (k={markov[s][0]})" if s in markov else "-"
        lines.append(f"| {s} | {', '.join(sets.get(s, []))} | {bpb:.4f} | {mk} |")
    if args.downstream:
        lines += ["", args.downstream.read_text().strip()]
    lines += ["", "## Limitations", "",
              args.not_for or "Trained on a few bacterial genomes at CPU scale: not a model of eukaryotic "
              "or viral sequence, not tested for variant-effect prediction, and far smaller than "
              "published genomic language models.", ""]
    info = ship(args.run / "final", args.name, card, "\n".join(lines) + "\n")
    print(f"shipped {info.name} -> {info.path} ({info.sha256[:12]}, {(info.path / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
