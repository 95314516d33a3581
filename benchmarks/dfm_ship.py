"""Package the splice benchmark's Dirichlet FM as the shipped default model, with its model card.

    python benchmarks/dfm_splice.py --save-models runs/dfm/bench --out runs/dfm/bench_out ...
    python benchmarks/dfm_ship.py runs/dfm/bench/dfm runs/dfm/bench_out/splice.json

Writes ``bioseq/assets/dfm/splice/{config.json, model.safetensors, README.md}``; the card's
numbers are read from the benchmark's ``splice.json`` (held-out data, independent classifier).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bioseq.design import FlowModel, save_module
from bioseq.design.pretrained import ASSETS

DESCRIPTION = "60-nt primate splice junctions (classes EI donor, IE acceptor, N), Dirichlet FM, dilated CNN"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="the benchmark's saved Dirichlet FM folder")
    ap.add_argument("results", type=Path, help="the benchmark's splice.json")
    ap.add_argument("--name", default="splice")
    args = ap.parse_args()
    model = FlowModel.from_pretrained(args.model)
    res = json.loads(args.results.read_text())
    out = ASSETS / args.name
    save_module(model, out, {**model.config_dict(), "description": DESCRIPTION})
    (out / "README.md").write_text(card(model, res))
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")


def card(model: FlowModel, res: dict) -> str:
    a, names = res["args"], res["data"]["classes"]
    rows = {r["method"]: r["per_class"] for r in res["rows"]}
    keep = [m for m in rows if m.startswith(("real", "shuffled", "Dirichlet FM", "autoregressive"))]
    table = ["| sampler | " + " | ".join(f"{n} class rate | {n} FBD" for n in names) + " | EI: GT at 30-31 | IE: AG at 28-29 |",
             "|---|" + "---|" * (2 * len(names) + 2)]
    for m in keep:
        p = rows[m]
        table.append(f"| {m} | " + " | ".join(f"{p[n]['class_rate']:.3f} | {p[n]['fd']:.2f}" for n in names)
                     + f" | {p['EI']['site']:.3f} | {p['IE']['site']:.3f} |")
    den = model.denoiser
    feats = {"expanded": "the expanded-simplex input", "log": "`[x, log x]` input features"}[den.config.get("features", "log")]
    extras = []
    if model.evidence:
        extras.append("the path's exact log-likelihood `t log x` is added to the denoiser's logits "
                      "(`FlowModel(evidence=True)`), so the network learns only what the rest of the window says")
    if getattr(model.path, "grid", "linear") == "log":
        extras.append("sampling steps are even in `log(1 + t)`")
    extra = ("; " + "; ".join(extras)) if extras else ""
    ar = ("\nThe autoregressive row is a transformer LM of similar size trained for the same time."
          if any(m.startswith("autoregressive") for m in keep) else "")
    return f"""# `splice`: class-conditional Dirichlet flow matching for 60-nt splice junctions

```bash
bioseq design --model splice --class EI --n 100 --guidance 3 -o donors.fa     # GT donor junctions
bioseq design --model splice --class IE --n 100 --guidance 3 -o acceptors.fa  # AG acceptor junctions
bioseq design --model splice --class N --n 100 -o background.fa
```

**Model.** Dirichlet flow matching (Stark et al. 2024) on the 4-letter simplex, path end
`t_max = {model.path.t_max:g}` (`alpha_max = {model.path.t_max + 1:g}`), argmax decoding, 100 Euler steps by
default. Denoiser: the dilated CNN of `bioseq.design.DilatedCNN` (d = {den.config['d']}, dilations 1, 1, 4, 16,
64, a learned position embedding over the 60 positions, {feats}), time and
class embeddings in every block, a null class for classifier-free guidance{extra};
{den.num_parameters():,} parameters, float32 safetensors.

**Data.** UCI / StatLog primate splice-junction sequences (`data/classification/splice_uci`,
GPL-2 via the R package mlbench; Noordewier, Towell & Shavlik 1991): 3,000 distinct 60-nt
sequences, classes `EI` (donor: exon then intron, `GT` at 0-based 30-31), `IE` (acceptor: `AG` at
28-29) and `N`. Trained on a per-class 80% split (seed 0, {res['data']['train']:,} sequences); the
other 20% ({res['data']['held_out']} sequences) is held out for the numbers below.

**Training.** `benchmarks/dfm_splice.py` (the same settings as `recipes/train_dfm.py
recipes/configs/dfm/splice_cnn.yaml train.steps={a['train_steps']} classifier.enabled=false
distill.enabled=false`): {a['train_steps']:,} AdamW steps x batch {a['batch_size']}, learning rate {a['lr']:g} with a
linear warm-up and cosine decay to 1% of it, EMA of the weights (decay 0.999, warmed up from the
first step) as the saved weights, the class replaced by the null class with probability 0.2;
{res['train_seconds']['dfm']:.0f} s on one CPU thread of a shared machine.

**Quality** ({a['n_per_class']} designs per class, {a['steps']} Euler steps; guidance = classifier-free,
`--guidance {a['cfg_scale']:g}`). Class rate: the fraction of designs that an independent CNN, trained
on the same 80% of real sequences (held-out accuracy {res['eval_classifier_accuracy']:.3f}), assigns to the
requested class. FBD: Frechet distance between designs and the held-out real sequences of that
class in the 32-d embedding of that classifier; "real" (training sequences, same sample size)
is the floor and "shuffled real" (the same sequences with their bases permuted) the ceiling.{ar}

{chr(10).join(table)}

**Limits.** Trained on 2,400 sequences for CPU-minutes; the N class is the background and is
the easiest to match. Guidance raises the class rate and the junction dinucleotides at some cost
in diversity. Designs are checked only by a classifier and the dinucleotides, not by a splicing
assay or a splice-site predictor.
"""


if __name__ == "__main__":
    main()
