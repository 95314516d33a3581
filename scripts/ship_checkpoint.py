"""Ship a pretraining run's exported model inside the package, with its model card.

    python scripts/ship_checkpoint.py runs/pretrain/starter_transformer_clm --name dna-clm-bacteria-tiny \
        --recipe recipes/configs/transformer/starter_clm.yaml --hardware "2 CPU cores (AVX512-BF16), bf16 autocast" \
        [--downstream benchmarks/results/starter_downstream.md]
    python scripts/ship_checkpoint.py runs/protein_mlm_starter --name protein-mlm-uniprot-tiny \
        --recipe recipes/configs/multiomic/protein_mlm_starter.yaml --hardware "..." --log runs/protein_mlm_starter.log

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
    ap.add_argument("--log", type=Path, help="the run's log (protein MLM runs: its wall time is read from it)")
    args = ap.parse_args()

    from bioseq.models import load_pretrained

    if (args.run / "last" / "trainer_state.json").exists() and not (args.run / "metrics.csv").exists():
        return ship_protein_mlm(args)
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
    markov, context = {}, {}
    for r in all_rows:  # logged once per run
        for prefix, table in (("markov_k", markov), ("context_k", context)):
            if r["split"].startswith(prefix):
                k, _, s = r["split"][len(prefix):].partition(":")
                table[s or "valid"] = (int(k), float(r["bits_per_base"]))
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
        if s in context:
            heldout[f"{s} best two-sided context (k={context[s][0]})"] = round(context[s][1], 4)
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
        *(["Bits per base (lower is better) on windows of genomes never trained on, beside the best order-k "
           "Markov chain fitted on the same training genomes and scored on the same windows in the same run.", "",
           "| held-out set | genomes | model bits/base | best Markov bits/base |", "|---|---|---:|---:|"]
          if cfg["objective"] == "clm" else
          ["Masked-base bits per base (lower is better; 15% of the positions of each window masked, as in "
           "training) on windows of genomes never trained on, beside two baselines fitted on the same training "
           "genomes and scored on the same windows in the same run: the best two-sided context model (the base "
           "from k bases on each side; unlike the model it always sees the true neighbours, never masked ones) "
           "and the best order-k Markov chain (left context only).", "",
           "| held-out set | genomes | model bits/base | best two-sided context bits/base | best Markov bits/base |",
           "|---|---|---:|---:|---:|"]),
    ]
    for s, bpb in held.items():
        mk = f"{markov[s][1]:.4f} (k={markov[s][0]})" if s in markov else "-"
        cx = f"{context[s][1]:.4f} (k={context[s][0]})" if s in context else "-"
        lines.append(f"| {s} | {', '.join(sets.get(s, []))} | {bpb:.4f} | " + (f"{cx} | " if cfg["objective"] != "clm" else "") + f"{mk} |")
    finish(args, args.run / "final", card, lines,
           "Trained on a few bacterial genomes at CPU scale: not a model of eukaryotic or viral sequence, not "
           "tested for variant-effect prediction, and far smaller than published genomic language models.")


def finish(args, folder: Path, card: dict, lines: list[str], limitations: str) -> None:
    """Card text: downstream results (if given) and limitations after ``lines``; then ship ``folder``."""
    from bioseq.models.checkpoints import ship

    if args.downstream:
        lines += ["", args.downstream.read_text().strip()]
    lines += ["", "## Limitations", "", args.not_for or limitations, ""]
    info = ship(folder, args.name, card, "\n".join(lines) + "\n")
    print(f"shipped {info.name} -> {info.path} ({info.sha256[:12]}, {(info.path / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")


def multiomic_recipe():
    """``recipes/pretrain_multiomic.py`` as a module: its data paths, batches and evaluation."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pretrain_multiomic", ROOT / "recipes/pretrain_multiomic.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def heldout_metrics(recipe, folder: Path, cfg: dict, fasta: Path) -> dict:
    """The recipe's held-out evaluation (same batches, fp32) of the model in ``folder``."""
    import torch

    from bioseq.models import load_pretrained
    from bioseq.multiomic.corpus import MixedCorpus, ProteinCrops
    from bioseq.multiomic.tokens import get_joint_vocab

    d, seed = cfg["data"], int(cfg["seed"])
    tok = get_joint_vocab()
    held = ProteinCrops(fasta, max_len=d["protein_max_len"], holdout_frac=d["protein_holdout"], split="holdout")
    corpus = MixedCorpus(tok, None, held, p_protein=1.0, seed=seed + 10_007)
    regular = torch.from_numpy(tok.regular_token_ids)
    batches = [recipe.make_batch(corpus, i, cfg, tok, bool(d["pack"]), regular, seed + 1)
               for i in range(cfg["train"]["eval_batches"])]
    return recipe.evaluate(load_pretrained(folder).eval(), batches, tok)


def ship_protein_mlm(args) -> None:
    """A protein masked LM from ``recipes/pretrain_multiomic.py`` (``output_dir/last``): held-out
    masked-token loss and accuracy on proteins it never trained on, beside the amino-acid
    frequency baseline (the protein analogue of the order-0 Markov chain), computed here."""
    import math
    import re
    import shutil
    from collections import Counter

    from bioseq.models import load_pretrained
    from bioseq.multiomic.corpus import ProteinCrops
    from bioseq.utils.recipe_config import load_recipe_config

    last = args.run / "last"
    state = json.loads((last / "trainer_state.json").read_text())
    cfg = load_recipe_config(str(args.recipe), [])
    d, t = cfg["data"], cfg["train"]
    if float(d["p_protein"]) < 1.0 or not d.get("protein_holdout"):
        raise SystemExit(f"{args.recipe}: not a protein-only run with held-out proteins (data.p_protein 1, data.protein_holdout > 0)")
    recipe = multiomic_recipe()
    fasta = recipe.resolve(d["proteins"])  # as the run read it ($BIOSEQ_SHARED honoured)
    train = ProteinCrops(fasta, max_len=d["protein_max_len"], holdout_frac=d["protein_holdout"])
    held = ProteinCrops(fasta, max_len=d["protein_max_len"], holdout_frac=d["protein_holdout"], split="holdout")
    freq = Counter("".join(train.seqs))
    total = sum(freq.values())
    held_counts = Counter("".join(held.seqs))
    n_held = sum(held_counts.values())
    unigram = -sum(c * math.log(freq.get(a, 0.5) / total) for a, c in held_counts.items()) / n_held
    # weights ship in fp16 (half the size; loading casts them back to fp32), and the held-out
    # numbers on the card are measured with exactly those weights, on the recipe's eval batches
    stage = stage_protein_checkpoint(last)
    try:
        m = {**state["metrics"], **heldout_metrics(recipe, stage, cfg, fasta)}
        steps = int(state["step"])
        steps = int(state["step"])
        mean_len = sum(min(len(s), d["protein_max_len"]) + 3 for s in train.seqs) / len(train.seqs)
        tokens = int(steps * int(t["seqs_per_step"]) * mean_len)
        minutes = None
        if args.log and args.log.exists():
            times = re.findall(r" ([0-9.]+)s$", args.log.read_text(), flags=re.M)
            minutes = float(times[-1]) / 60 if times else None
        model = load_pretrained(stage)
        size = cfg["model"]["size"] + "".join(f" ({k}={v})" for k, v in (cfg["model"].get("overrides") or {}).items())
        hardware = args.hardware + (f", {minutes:.0f} min" if minutes else "")
        heldout = {"masked-token loss (nats)": round(m["loss"], 4), "masked-token accuracy": round(m["protein_acc"], 4),
                   "amino-acid frequency loss (nats)": round(unigram, 4)}  # on the held-out proteins
        card = {"task": "mlm", "size": size, "params": model.backbone.num_parameters(),
                "tokenizer": "multiomic (default modality: protein)", "data": SOURCES["uniprot_mmseqs2_examples"],
                "tokens": tokens, "steps": steps, "hardware": hardware, "heldout": heldout}
        lines = [
            f"# {args.name}", "",
            f"A {card['params'] / 1e6:.2f} M-parameter bidirectional {size} masked language model of proteins, trained "
            "with `recipes/pretrain_multiomic.py` in the project's joint DNA/RNA/protein vocabulary (so the "
            "protein-nucleic-acid heads of `bioseq.multiomic` start from it). Load it with "
            f"`load_pretrained(\"{args.name}\")`; embed proteins with `bioseq embed --model {args.name} proteins.fa -o out.npy`.", "",
            "## Training", "",
            f"- Data: {card['data']}: {len(train.seqs):,} proteins trained on, {len(held.seqs):,} held out "
            f"({d['protein_holdout']:.0%} of the records, chosen by a hash of the accession).",
            f"- {steps:,} optimizer steps of {t['seqs_per_step']} random crops of at most {d['protein_max_len']} residues "
            f"packed into rows of {d['max_len']} tokens (about {tokens / 1e6:.0f} M tokens), {t['mlm_probability']:.0%} "
            "of residues masked (80/10/10), AdamW with warm-up and cosine decay to 0.",
            f"- Hardware: {hardware}.",
            f"- Reproduce: `python recipes/pretrain_multiomic.py {args.recipe}`.",
            *([f"- {args.note}"] if args.note else []),
            "", "## Held-out scores", "",
            f"On {len(held.seqs):,} proteins never trained on ({n_held:,} residues): masked-token cross-entropy "
            "(lower is better) beside the amino-acid frequency of the training proteins, which is what a model "
            "that learned nothing beyond composition would score.", "",
            "| metric | model | amino-acid frequency |", "|---|---:|---:|",
            f"| masked-token loss (nats) | {m['loss']:.4f} | {unigram:.4f} |",
            f"| perplexity | {math.exp(m['loss']):.2f} | {math.exp(unigram):.2f} |",
            f"| masked-token accuracy | {m['protein_acc']:.4f} | {max(freq.values()) / total:.4f} |",
        ]
        finish(args, stage, card, lines,
               "Trained on 19k proteins for a few CPU hours: it knows residue statistics and short-range context, "
               "not structure or function the way published protein language models (millions of sequences, "
               "billions of tokens) do. No evolutionary information.")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def stage_protein_checkpoint(last: Path) -> Path:
    """A temporary folder with ``last``'s weights in fp16, its config, and its tokenizer with
    protein as the default modality (so ``bioseq embed --model NAME proteins.fa`` needs no flag)."""
    import shutil
    import tempfile

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from bioseq.tokenization import load_tokenizer

    stage = Path(tempfile.mkdtemp(prefix=".ship-"))
    with safe_open(str(last / "model.safetensors"), "pt") as fh:
        meta = fh.metadata()
    weights = load_file(str(last / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              str(stage / "model.safetensors"), metadata=meta)
    shutil.copy2(last / "config.json", stage / "config.json")
    tok = load_tokenizer(last / "tokenizer.json")
    tok.default_modality = "protein"
    tok.save(stage / "tokenizer.json")
    return stage


if __name__ == "__main__":
    main()
