"""Multi-omic masked-LM pretraining: DNA windows + proteins, one joint tagged vocabulary.

    python recipes/pretrain_multiomic.py recipes/configs/multiomic/sanity.yaml
    python recipes/pretrain_multiomic.py recipes/configs/multiomic/transformer_tiny_mlm.yaml train.max_steps=2000

Reads top to bottom: config -> tokenizer -> backbone + MaskedLM head -> data -> train loop ->
checkpoint. Backbones that accept ``segment_ids`` (the Transformer) train on PACKED rows: several
sequences share one row and attend only within themselves, so no compute is spent on padding;
other bidirectional backbones get one padded sequence per row.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bioseq.models import MaskedLM, build_backbone, mask_tokens  # noqa: E402
from bioseq.models.heads import IGNORE_INDEX  # noqa: E402
from bioseq.multiomic.corpus import DNAWindows, MixedCorpus, ProteinCrops, pack_greedy  # noqa: E402
from bioseq.multiomic.tokens import get_joint_vocab, pad_batch, protein_token_mask  # noqa: E402
from bioseq.utils.precision import autocast, resolve_mixed_precision  # noqa: E402
from bioseq.utils.recipe_config import load_recipe_config  # noqa: E402


def resolve(p: str) -> Path:
    """Config paths are relative to the repository root; ``$BIOSEQ_SHARED`` replaces a leading
    ``../shared/data`` (the real-data folder sits elsewhere in some checkouts)."""
    shared = os.environ.get("BIOSEQ_SHARED")
    if shared and p.startswith("../shared/data"):
        return Path(shared) / p[len("../shared/data"):].lstrip("/")
    q = Path(p)
    return q if q.is_absolute() else ROOT / q


def save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """AdamW state as safetensors (no pickle): ``<param index>.<name>`` tensors."""
    from safetensors.torch import save_file

    flat = {f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
            for i, st in opt.state_dict()["state"].items() for k, v in st.items()}
    save_file(flat, str(path))


def load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in load_file(str(path)).items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def make_batch(corpus, step, cfg, tok, packing, regular, seed):
    """The batch of ``step``: a pure function of (seed, step), so resuming replays nothing."""
    n, max_len = cfg["train"]["seqs_per_step"], cfg["data"]["max_len"]
    seqs = [corpus[step * n + j][:max_len] for j in range(n)]
    if packing:
        ids, seg = pack_greedy(seqs, max_len, tok.pad_token_id)
        ids, seg = torch.from_numpy(ids), torch.from_numpy(seg)
        real = seg > 0
    else:
        ids, real = (torch.from_numpy(a) for a in pad_batch(seqs, tok.pad_token_id))
        seg = None
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    maskable = real & torch.isin(ids, regular)  # residues only: never tags, [CLS]/[SEP] or padding
    masked, labels = mask_tokens(ids, tok.mask_token_id, maskable, regular, cfg["train"]["mlm_probability"], g)
    return masked, labels, real, seg


def mlm_loss(model, masked, labels, real, seg):
    if seg is not None:
        hidden = model.backbone(masked, segment_ids=seg)  # (R, L, d), block-diagonal attention
    else:
        hidden = model.backbone(masked, attention_mask=real)
    logits = model.logits(hidden)  # (R, L, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    return loss, logits


@torch.no_grad()
def evaluate(model, batches, tok):
    """Masked-token loss and accuracy, split by modality (protein vs nucleotide targets)."""
    model.eval()
    tot = {"loss": 0.0, "n": 0, "prot_ok": 0, "prot_n": 0, "nuc_ok": 0, "nuc_n": 0}
    for masked, labels, real, seg in batches:
        loss, logits = mlm_loss(model, masked, labels, real, seg)
        sel = labels != IGNORE_INDEX
        ok = logits.argmax(-1)[sel] == labels[sel]
        is_p = protein_token_mask(tok, labels[sel])
        tot["loss"] += loss.item() * int(sel.sum())
        tot["n"] += int(sel.sum())
        tot["prot_ok"] += int(ok[is_p].sum())
        tot["prot_n"] += int(is_p.sum())
        tot["nuc_ok"] += int(ok[~is_p].sum())
        tot["nuc_n"] += int((~is_p).sum())
    model.train()
    return {"loss": tot["loss"] / max(1, tot["n"]), "protein_acc": tot["prot_ok"] / max(1, tot["prot_n"]),
            "dna_acc": tot["nuc_ok"] / max(1, tot["nuc_n"])}


def checkpoint(model, opt, tok, step, metrics, out: Path) -> None:
    """``out/last``: model (config.json + model.safetensors), optimizer, tokenizer, trainer state;
    written to a temporary folder first, then renamed over the old one."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".last.", dir=out))
    model.save_pretrained(tmp)
    save_optimizer(opt, tmp / "optimizer.safetensors")
    tok.save(tmp / "tokenizer.json")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "metrics": metrics}) + "\n")
    final, old = out / "last", out / ".last.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def main(argv: list[str]) -> dict:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return {}
    cfg = load_recipe_config(argv[0], argv[1:])
    seed, out = int(cfg["seed"]), resolve(cfg["output_dir"])
    torch.manual_seed(seed)
    if cfg["train"].get("threads"):
        torch.set_num_threads(int(cfg["train"]["threads"]))
    device = torch.device(cfg["train"].get("device", "cpu") if torch.cuda.is_available() else "cpu")
    # bf16 autocast where the hardware multiplies bf16 natively (CPUs included); weights stay fp32.
    precision = resolve_mixed_precision(cfg["train"].get("mixed_precision", "auto"), device)

    # tokenizer: the joint vocabulary, tags <dna>/<rna>/<protein>, disjoint letter ids
    tok = get_joint_vocab()
    regular = torch.from_numpy(tok.regular_token_ids)

    # backbone + masked-LM head; any registered backbone, forced bidirectional
    backbone = build_backbone(cfg["model"]["size"], vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                              bidirectional=True, **(cfg["model"].get("overrides") or {}))
    model = MaskedLM(backbone).to(device)
    packing = bool(cfg["data"]["pack"]) and "segment_ids" in inspect.signature(backbone.forward).parameters

    # data: genome windows and protein crops, mixed by p_protein; eval uses another seed
    # held-out proteins (data.protein_holdout, a fraction of records chosen by name) are never
    # trained on: the protein eval numbers are on unseen sequences
    d = cfg["data"]
    if float(d["p_protein"]) >= 1.0:  # protein-only masked LM: no genome is read
        dna = None
    elif d.get("genome_store"):  # a Zarr store (bioseq.data.build_store), else the FASTA files
        dna = DNAWindows.from_store(resolve(d["genome_store"]), window=d["dna_window"], seed=seed)
    else:
        dna = DNAWindows([resolve(p) for p in d["genomes"]], window=d["dna_window"])
    holdout = float(d.get("protein_holdout") or 0.0)
    prots = ProteinCrops(resolve(d["proteins"]), max_len=d["protein_max_len"], limit=d.get("protein_limit"),
                         holdout_frac=holdout)
    eval_prots = (ProteinCrops(resolve(d["proteins"]), max_len=d["protein_max_len"], holdout_frac=holdout,
                               split="holdout") if holdout else prots)
    corpus = MixedCorpus(tok, dna, prots, p_protein=d["p_protein"], seed=seed)
    eval_corpus = MixedCorpus(tok, dna, eval_prots, p_protein=d["p_protein"], seed=seed + 10_007)
    eval_batches = [tuple(t.to(device) if t is not None else None
                          for t in make_batch(eval_corpus, i, cfg, tok, packing, regular, seed + 1))
                    for i in range(cfg["train"]["eval_batches"])]

    t = cfg["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"], betas=(0.9, 0.98))
    warmup, total = t["warmup_steps"], t["max_steps"]

    def lr_factor(s: int) -> float:  # linear warmup, cosine decay to 0 at max_steps
        return min(1.0, (s + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    start = 0
    last = out / "last"
    if t.get("resume") and (last / "trainer_state.json").exists():
        from safetensors.torch import load_model

        load_model(model, str(last / "model.safetensors"), device=str(device))
        load_optimizer(opt, last / "optimizer.safetensors")
        start = json.loads((last / "trainer_state.json").read_text())["step"]
        sched.last_epoch = start  # the schedule is a function of the step: set it, do not replay it
        for g, base in zip(opt.param_groups, sched.base_lrs, strict=True):
            g["lr"] = base * lr_factor(start)
        print(f"resumed from {last} at step {start}")

    print(f"{type(backbone).__name__}: {backbone.num_parameters() / 1e6:.2f}M params, packing={packing}, device={device}, "
          f"mixed precision {precision}")
    metrics: dict = {}
    t0 = time.time()
    model.train()
    for step in range(start, total):
        masked, labels, real, seg = (x.to(device) if x is not None else None
                                     for x in make_batch(corpus, step, cfg, tok, packing, regular, seed))
        with autocast(device, precision):
            loss, _ = mlm_loss(model, masked, labels, real, seg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        sched.step()
        if (step + 1) % t["log_every"] == 0:
            tokens = int(real.sum())
            print(f"step {step + 1}/{total} loss {loss.item():.4f} lr {sched.get_last_lr()[0]:.2e} "
                  f"tokens/row {tokens / real.shape[0]:.0f}/{real.shape[1]} {time.time() - t0:.1f}s")
        if (step + 1) % t["eval_every"] == 0 or step + 1 == total:
            metrics = {"step": step + 1, "train_loss": loss.item(), **evaluate(model, eval_batches, tok)}
            print("eval", json.dumps(metrics))
        if (step + 1) % t["save_every"] == 0 or step + 1 == total:
            checkpoint(model, opt, tok, step + 1, metrics, out)
        if t.get("stop_at") and step + 1 >= t["stop_at"]:
            break  # an interruption on purpose (the resume test); the schedule still targets max_steps
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
