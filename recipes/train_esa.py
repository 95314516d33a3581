"""Train the embed-search-align encoder: reads and the reference fragments they came from.

    nice -n 10 python recipes/train_esa.py --config recipes/configs/esa/conv_infonce.yaml [key=value ...] [--resume]

Each training example is a pair (reference fragment of ``fragment_len`` bp, read drawn from inside
it). The read carries simulated sequencing errors (substitutions and 1-3 bp indels at rates drawn
per read) and both strands occur: with probability 1/2 the fragment *and* its read are reverse
complemented, because at align time we embed both strands of a read and search forward-strand
fragments, so a same-strand match is what the encoder must learn.

The encoder is either a backbone with mean pooling (``backbone: transformer-tiny`` ...) or the
dilated CNN of :mod:`bioseq.align.conv_encoder` (``backbone: conv``, sized by ``conv:``).

Loss: symmetric InfoNCE over the batch (read->fragment and fragment->read). Negatives are the other
fragments of the batch; ``hard_frac`` of the batch comes as pairs of *overlapping neighbours* on the
same contig (shifted by half to one fragment), the hardest negatives a tiled index produces.
A neighbour that happens to contain the whole read is not a negative: those entries are masked out.
(A queue of earlier steps' fragment embeddings as extra negatives was tried for the CNN: without a
momentum encoder those stale negatives stalled learning, held-out top-1 2% at step 250.)

The data order is a pure function of (seed, step), so a run is reproducible, and ``--resume``
continues from ``out/checkpoint.pt`` (weights, optimizer and schedule; written every
``checkpoint_every`` steps) exactly as if the run had not stopped. Outputs in ``out``:
``final/`` (``config.json`` + ``model.safetensors``, loadable by :func:`bioseq.align.load_encoder`),
``log.csv`` and ``metrics.json`` (retrieval accuracy on training and held-out genomes).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bioseq import alphabet  # noqa: E402
from bioseq.align.conv_encoder import ConvEncoder, ConvEncoderConfig  # noqa: E402
from bioseq.align.encoder import tokens  # noqa: E402
from bioseq.align.reference import read_reference  # noqa: E402
from bioseq.align.simulate import mutate_read  # noqa: E402
from bioseq.io.atomic import atomic_file  # noqa: E402
from bioseq.models import Embedder, build_backbone  # noqa: E402
from bioseq.utils.precision import autocast, resolve_mixed_precision  # noqa: E402

# ---------------------------------------------------------------------------------------------
# config: YAML plus key=value overrides (values parsed as YAML so numbers and lists work)
p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--config", required=True)
p.add_argument("overrides", nargs="*", help="key=value")
p.add_argument("--resume", action="store_true", help="continue from out/checkpoint.pt")
args = p.parse_args()
# optional keys (older configs lack them): checkpoints, pausing, tile stride, CNN size
OPTIONAL = {"checkpoint_every": 0, "stop_at": 0, "stride": None, "conv": {}}
cfg = OPTIONAL | yaml.safe_load(Path(args.config).read_text())
for kv in args.overrides:
    k, _, v = kv.partition("=")
    if k not in cfg:
        sys.exit(f"unknown config key {k!r}; known: {sorted(cfg)}")
    cfg[k] = yaml.safe_load(v)
torch.set_num_threads(int(cfg["threads"]))
torch.manual_seed(cfg["seed"])
# bf16 autocast where the CPU multiplies bf16 natively; weights, optimizer and loss stay fp32.
PRECISION = resolve_mixed_precision(cfg.get("mixed_precision", "auto"), "cpu")
out = Path(cfg["out"])
out.mkdir(parents=True, exist_ok=True)
F_LEN = int(cfg["fragment_len"])
R_MIN, R_MAX = cfg["read_len"]


# ---------------------------------------------------------------------------------------------
# genomes: each a list of ACGT-mostly code arrays; sampled genome ~ sqrt(size) so the small
# bacterial genomes are not drowned by the 20 Mb eukaryote, contig ~ length
def load_genomes(paths: list[str]) -> list[dict]:
    gs = []
    for rel in paths:
        path = (ROOT / cfg["data_root"] / rel).resolve()
        contigs = [c.codes for c in read_reference(path) if c.length >= F_LEN * 2]
        lens = np.array([len(c) for c in contigs], dtype=np.float64)
        gs.append({"name": Path(rel).name, "contigs": contigs, "p": lens / lens.sum(), "size": lens.sum()})
        print(f"loaded {path.name}: {len(contigs)} contigs, {int(lens.sum()):,} bp", flush=True)
    return gs


train_g = load_genomes(cfg["train_genomes"])
held_g = load_genomes(cfg["heldout_genomes"])


def draw_fragment(rng, g, ci=None, near=None):
    """-> (contig index, start, fragment codes) with < 2% N; ``near`` = start to shift from."""
    for _ in range(100):
        if ci is None or near is None:
            ci_ = int(rng.choice(len(g["contigs"]), p=g["p"]))
            c = g["contigs"][ci_]
            start = int(rng.integers(0, len(c) - F_LEN))
        else:
            ci_, c = ci, g["contigs"][ci]
            shift = int(rng.integers(F_LEN // 2, F_LEN + 1)) * (1 if rng.random() < 0.5 else -1)
            start = min(max(near + shift, 0), len(c) - F_LEN)
        frag = c[start : start + F_LEN]
        if (frag >= 4).mean() < 0.02:
            return ci_, start, frag
    raise RuntimeError(f"{g['name']}: could not draw an ACGT fragment")


def make_batch(rng: np.random.Generator, genomes: list[dict], B: int, hard_frac: float):
    """B (read, fragment) pairs and the mask of read i lying wholly inside fragment j."""
    w = np.sqrt([g["size"] for g in genomes])
    reads, frags, meta = [], [], []  # meta: (genome, contig, strand, read_lo, read_hi, frag_lo)
    n_hard = int(B * hard_frac) // 2 * 2
    prev = None
    for i in range(B):
        if i < n_hard and i % 2 == 1:
            gi, ci, strand, start0 = prev
            ci, start, frag = draw_fragment(rng, genomes[gi], ci, start0)
        else:
            gi = int(rng.choice(len(genomes), p=w / w.sum()))
            ci, start, frag = draw_fragment(rng, genomes[gi])
            strand = int(rng.random() < 0.5)
        prev = (gi, ci, strand, start)
        rl = int(rng.integers(R_MIN, R_MAX + 1))
        off = int(rng.integers(0, F_LEN - rl + 1))
        f = alphabet.reverse_complement_codes(frag) if strand else frag
        read = mutate_read(f[off : off + rl], rng, rng.uniform(*cfg["sub_rate"]), rng.uniform(*cfg["indel_rate"]))
        lo = start + (F_LEN - off - rl if strand else off)  # read interval in forward coordinates
        reads.append(read)
        frags.append(f)
        meta.append((gi, ci, strand, lo, lo + rl, start))
    m = np.array(meta)
    same = (m[:, None, 0] == m[None, :, 0]) & (m[:, None, 1] == m[None, :, 1]) & (m[:, None, 2] == m[None, :, 2])
    inside = (m[:, None, 3] >= m[None, :, 5]) & (m[:, None, 4] <= m[None, :, 5] + F_LEN)
    contains = same & inside  # (B, B): read i is also a true hit of fragment j
    return reads, frags, torch.from_numpy(contains)


def encode(model, seqs, length):
    ids, mask = tokens(seqs, length)
    return model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).embeddings  # (B, dim)


def info_nce(r, f, contains, tau):
    """Symmetric InfoNCE; off-diagonal true hits are removed from the negatives."""
    logits = r @ f.T / tau  # (B, B)
    eye = torch.eye(len(r), dtype=torch.bool)
    logits = logits.masked_fill(contains & ~eye, float("-inf"))
    target = torch.arange(len(r))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def evaluate(model, genomes, n, seed):
    """Read -> fragment retrieval among ``n`` candidates (half of them overlapping neighbours):
    top-1 and top-10 accuracy, both strands, errors as in training."""
    model.eval()
    rng = np.random.default_rng([seed, 10**6])
    reads, frags, contains = make_batch(rng, genomes, n, cfg["hard_frac"])
    r, f = encode(model, reads, R_MAX), encode(model, frags, F_LEN)
    sim = (r @ f.T).masked_fill(contains & ~torch.eye(n, dtype=torch.bool), -2.0)
    rank = (sim > sim.diag()[:, None]).sum(1)
    model.train()
    return {"top1": float((rank == 0).float().mean()), "top10": float((rank < 10).float().mean())}


# ---------------------------------------------------------------------------------------------
if cfg["backbone"] == "conv":
    model = ConvEncoder(ConvEncoderConfig(dim=int(cfg["dim"]), fragment_len=F_LEN, stride=int(cfg["stride"] or F_LEN - R_MAX),
                                          **cfg["conv"]))
else:
    model = Embedder(build_backbone(cfg["backbone"], **cfg["backbone_overrides"]), dim=cfg["dim"])
opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
steps, warm = int(cfg["steps"]), int(cfg["warmup"])
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
)
print(f"encoder: {sum(p.numel() for p in model.parameters()):,} parameters, mixed precision {PRECISION}", flush=True)
start, spent = 1, 0.0
ckpt = out / "checkpoint.pt"
if args.resume and ckpt.exists():
    state = torch.load(ckpt, weights_only=True)  # tensors and plain values only: nothing is unpickled
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    if "torch_rng" in state:  # dropout, for encoders that have it
        torch.set_rng_state(state["torch_rng"])
    start, spent = state["step"] + 1, state["elapsed"]
    # the log may run past the checkpoint (a killed run): keep its rows up to the checkpoint
    rows = list(csv.reader(open(out / "log.csv", newline=""))) if (out / "log.csv").exists() else []
    with atomic_file(out / "log.csv") as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([r for i, r in enumerate(rows) if i == 0 or int(r[0]) <= state["step"]])
    print(f"resumed from {ckpt} at step {state['step']}", flush=True)
elif args.resume:
    print(f"--resume: no {ckpt}, starting from scratch", flush=True)
log = open(out / "log.csv", "a" if start > 1 else "w", newline="")
writer = csv.writer(log)
if start == 1:
    writer.writerow(["step", "loss", "lr", "elapsed_s", "train_top1", "heldout_top1"])
t0, step, metrics = time.time() - spent, start - 1, {}
model.train()
for step in range(start, steps + 1):
    rng = np.random.default_rng([cfg["seed"], step])  # data = f(seed, step): reproducible
    reads, frags, contains = make_batch(rng, train_g, cfg["batch_size"], cfg["hard_frac"])
    with autocast("cpu", PRECISION):
        r, f = encode(model, reads, R_MAX), encode(model, frags, F_LEN)
    loss = info_nce(r.float(), f.float(), contains, cfg["temperature"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    elapsed = time.time() - t0
    # stop_at: end this run after that step (checkpoint written; --resume continues the schedule)
    pause = bool(cfg["stop_at"]) and step == int(cfg["stop_at"]) and step < steps
    last = step == steps or elapsed > cfg["max_minutes"] * 60 or pause
    tr = ho = ""
    if step % cfg["eval_every"] == 0 or last:
        metrics = {"train": evaluate(model, train_g, cfg["eval_pairs"], cfg["seed"]),
                   "heldout": evaluate(model, held_g, cfg["eval_pairs"], cfg["seed"])}
        tr, ho = metrics["train"]["top1"], metrics["heldout"]["top1"]
        print(f"step {step} loss {loss.item():.4f} {elapsed:.0f}s train {metrics['train']} heldout {metrics['heldout']}", flush=True)
    writer.writerow([step, f"{loss.item():.5f}", f"{sched.get_last_lr()[0]:.2e}", f"{elapsed:.1f}", tr, ho])
    log.flush()
    if (cfg["checkpoint_every"] and step % int(cfg["checkpoint_every"]) == 0) or last:
        with atomic_file(ckpt) as tmp:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "torch_rng": torch.get_rng_state(), "step": step, "elapsed": elapsed}, tmp)
    if pause:
        print(f"stopped after step {step} (stop_at); continue with --resume", flush=True)
        sys.exit(0)
    if last:
        break

model.save_pretrained(out / "final")
summary = {"steps": step, "minutes": round((time.time() - t0) / 60, 2), "final_loss": round(loss.item(), 4),
           "config": cfg, "eval_candidates": cfg["eval_pairs"], **metrics}
(out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({k: summary[k] for k in ("steps", "minutes", "final_loss")} | metrics), flush=True)
