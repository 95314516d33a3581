"""Show what a pretrained DNA language model learned: held-out bits per base against Markov
baselines fitted in the same run, a continuation of a real sequence, and the loss curve.

    python recipes/show_pretrained.py runs/demo            # a run folder of recipes/pretrain.py
    python recipes/show_pretrained.py runs/pretrain/tiny_hyena_clm --set species   # one of eval.sets
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bioseq.alphabet import decode
from bioseq.data import GenomeWindowDataset
from bioseq.eval import best_markov
from bioseq.eval.lm import causal_bits
from bioseq.models import load_pretrained
from bioseq.tokenization import load_tokenizer
from bioseq.utils.recipe_config import eval_sets


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="output_dir of a recipes/pretrain.py run")
    ap.add_argument("--windows", type=int, default=128, help="held-out windows to score")
    ap.add_argument("--max-order", type=int, default=10, help="largest Markov order tried")
    ap.add_argument("--set", help="held-out set of the config's eval.sets to score (default: the first)")
    args = ap.parse_args(argv)
    console = Console()
    cfg = json.loads((args.run / "recipe_config.json").read_text())
    dcfg = cfg["data"]
    store = dcfg.get("store") or str(args.run / "genomes.zarr")
    model = load_pretrained(args.run / "final").eval()
    tok = load_tokenizer(args.run / "final" / "tokenizer.json")
    nuc = torch.as_tensor(tok.encode_codes(np.arange(4, dtype=np.uint8)))
    split_kw = dict(holdout_genomes=dcfg.get("holdout_genomes") or [], holdout_contigs=dcfg.get("holdout_contigs") or [])
    sets = eval_sets(cfg)
    held = f"valid:{args.set}" if args.set else next(iter(sets))
    if held not in sets:
        raise SystemExit(f"--set {args.set}: the run's held-out sets are {[s.split(':', 1)[-1] for s in sets]}")
    window = int(dcfg["window"])

    # The same held-out windows for every model: the neural LM and the Markov chains score
    # exactly the same positions (A/C/G/T targets at positions 1..L-1 of each window).
    valid = GenomeWindowDataset(store, window, seed=1234, split="valid", rc=False, samples_per_epoch=args.windows, **sets[held])
    train = GenomeWindowDataset(store, window, seed=1234, split="train", rc=False, samples_per_epoch=args.windows, **split_kw)
    rows = []
    for name, ds in (("held-out", valid), ("training genomes", train)):
        codes = ds.get_batch(list(range(len(ds))))["seq"].numpy()
        bits, n = 0.0, 0
        for i in range(0, len(codes), 16):
            b, c = causal_bits(model, torch.as_tensor(tok.encode_codes(codes[i : i + 16])), nuc)
            bits, n = bits + b, n + c
        rows.append((name, codes, bits / n))
    # The same architecture untrained, as the starting point of the comparison.
    from bioseq.models import CausalLM, build_backbone

    torch.manual_seed(0)
    untrained = CausalLM(build_backbone(model.config)).eval()
    b0, n0 = causal_bits(untrained, torch.as_tensor(tok.encode_codes(rows[0][1][:16])), nuc)
    train_contigs = [valid.store.fetch(int(i)) for i in train.sampler.contig_ids]
    console.print(f"fitting order 0..{args.max_order} Markov chains on the training genomes "
                  f"({sum(len(c) for c in train_contigs) / 1e6:.1f} Mb, both strands) ...")
    markov, scores = best_markov(train_contigs, rows[0][1], orders=range(0, args.max_order + 1))

    genomes = ", ".join(valid.sampler.genomes)
    t = Table(title=f"Bits per base on held-out {genomes} (lower is better; uniform = 2.000)")
    t.add_column("model")
    t.add_column("bits/base", justify="right")
    t.add_row(f"{cfg['model']['size']} (pretrained, this run)", f"{rows[0][2]:.4f}")
    t.add_row(f"{cfg['model']['size']} (same model untrained)", f"{b0 / n0:.4f}")
    for k in sorted({0, 2, 4, markov.k} & set(scores)):
        t.add_row(f"order-{k} Markov{' (best k on these windows)' if k == markov.k else ''}", f"{scores[k]:.4f}")
    t.add_row("uniform", "2.0000")
    console.print(t)
    console.print(f"On windows of its training genomes the model scores {rows[1][2]:.4f} bits/base.")

    # A continuation: the model extends the first 64 bases of a held-out window.
    prompt_codes = rows[0][1][0, :64]
    prompt = torch.as_tensor(tok.encode_codes(prompt_codes))[None]
    g = torch.Generator().manual_seed(0)
    gen = model.generate(prompt, max_new_tokens=96, temperature=1.0, top_k=4, generator=g)[0, 64:]
    text = tok.decode(gen.numpy(), skip_special_tokens=True)
    real = decode(rows[0][1][0, 64:160], keep_case=False)
    gc = lambda s: sum(ch in "GC" for ch in s) / max(len(s), 1)  # noqa: E731
    console.print(f"\nprompt    {decode(prompt_codes, keep_case=False)}")
    console.print(f"generated {text}  (GC {gc(text):.0%})")
    console.print(f"real      {real}  (GC {gc(real):.0%})")

    # Loss curve (training bits/base per step and held-out evaluations).
    rows_csv = list(csv.DictReader(open(args.run / "metrics.csv")))
    tr = [(int(r["step"]), float(r["bits_per_base"])) for r in rows_csv if r["split"] == "train"]
    va = [(int(r["step"]), float(r["bits_per_base"])) for r in rows_csv if r["split"] == held]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(*zip(*tr, strict=True), label="train (tokens of each step)")
        if va:
            ax.plot(*zip(*va, strict=True), "o-", label="held-out")
        ax.axhline(scores[markov.k], color="grey", ls="--", label=f"order-{markov.k} Markov (held-out)")
        ax.set_xlabel("step")
        ax.set_ylabel("bits per base")
        ax.set_ylim(top=max(2.2, scores[markov.k] + 0.1))
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.run / "loss_curve.png", dpi=120)
        console.print(f"\nloss curve: {args.run / 'loss_curve.png'}")
    except ImportError:
        console.print("(matplotlib not installed: no plot)")


if __name__ == "__main__":
    main()
