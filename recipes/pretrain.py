"""Pretrain a bioseq backbone on genomes stored as a chunked Zarr store, with HF Accelerate.

    # one CPU / one GPU
    accelerate launch recipes/pretrain.py --config recipes/configs/hyena/tiny_clm.yaml
    # many GPUs or nodes: pick an Accelerate config from recipes/accelerate/
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/pretrain.py --config ...
    # override anything from the command line; continue an interrupted run exactly
    python recipes/pretrain.py --config recipes/configs/mamba/tiny_clm.yaml train.lr=1e-3 --resume

The script is flat on purpose: setup, train loop, eval, checkpoint, read top to bottom.

Guarantees worth knowing before you change it:
- Data order is a pure function of (seed, epoch, index) (``bioseq.data``), and every other random
  choice in a step (MLM masking) is seeded from (seed, step, micro-step, rank). So ``--resume``
  replays exactly the batches an uninterrupted run would have seen, and the losses match step
  for step.
- Ranks read disjoint windows: the DistributedWindowSampler shards indices; the DataLoader is
  therefore NOT passed through ``accelerator.prepare`` (it would shard a second time).
- ``--resume`` is bit-exact: the global RNG (dropout) is reseeded from (seed, step, rank) every step,
  the DataLoader draws its worker seeds from its own generator, and the model, optimizer, scheduler
  and RNG states come back from the checkpoint. A checkpoint folder ``checkpoints/step_<n>`` appears
  only complete (written as ``.step_<n>.partial`` and renamed, ``trainer_state.json`` last).
- ``--resume`` trusts its own output folder only: Accelerate's ``load_state`` unpickles the optimizer
  and RNG states, so never resume from a checkpoint folder someone else gave you.
- A fresh run (no ``--resume``) refuses an output_dir that holds an earlier run's checkpoints or
  export, which a later ``--resume`` would otherwise pick up; ``--overwrite`` deletes them first.
- Tokens per optimizer step are constant: sequence-length warmup (HyenaDNA) cuts each full window
  into shorter pieces (double L, halve the batch), and the loss is a per-token mean over the whole
  accumulation window and all ranks, not a mean of per-micro-batch means.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bioseq.data import DistributedWindowSampler, GenomeWindowDataset, build_store
from bioseq.eval import LN2, MarkovModel, best_order
from bioseq.eval.markov import ContextModel, best_context
from bioseq.eval.lm import causal_bits, masked_bits
from bioseq.models import CausalLM, MaskedLM, build_backbone, load_config, mask_tokens
from bioseq.models.heads import IGNORE_INDEX
from bioseq.tokenization import get_tokenizer
from bioseq.utils.compile import CompiledForward
from bioseq.utils.precision import resolve_mixed_precision
from bioseq.utils.recipe_config import eval_sets, load_recipe_config

log = logging.getLogger("bioseq.pretrain")


# ----------------------------------------------------------------------------------------------
# helpers (small enough to read here; everything substantial lives in the library)
# ----------------------------------------------------------------------------------------------
def seq_len_at(step: int, window: int, warmup: dict | None) -> int:
    """HyenaDNA sequence-length warmup: start at ``start_len`` and double every
    ``steps_per_stage`` steps until the full window. Lengths are powers of two times start_len."""
    if not warmup or not warmup.get("start_len"):
        return window
    L = int(warmup["start_len"]) * 2 ** (step // int(warmup["steps_per_stage"]))
    return min(L, window)


def lr_at(step: int, cfg: dict) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio * lr``."""
    lr, warm, total = float(cfg["lr"]), int(cfg["warmup_steps"]), int(cfg["max_steps"])
    if step < warm:
        return lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    floor = float(cfg.get("min_lr_ratio", 0.1))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return hash((seed, step, micro, rank)) & 0x7FFF_FFFF_FFFF  # ints hash the same in every process


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, step, micro, rank))


class CSVLogger:
    """Append-only metrics file (``metrics.csv``); one row per event, stable columns."""

    COLUMNS = ["step", "split", "loss", "bits_per_base", "perplexity", "lr", "seq_len", "tokens", "tokens_per_s", "elapsed_s",
               "data_frac"]

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if enabled and not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(self.COLUMNS)

    def log(self, **row) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow([row.get(c, "") for c in self.COLUMNS])


def checkpoint_step(path: Path) -> int | None:
    """The step of a complete checkpoint folder ``step_<n>`` (None if incomplete or unreadable)."""
    if not (path.name.startswith("step_") and path.name[5:].isdigit()):
        return None
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    return state["step"] if isinstance(state, dict) and state.get("step") == int(path.name[5:]) else None


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = [p for p in ckpt_dir.glob("step_*") if checkpoint_step(p) is not None]
    return max(done, key=checkpoint_step) if done else None


def previous_run_outputs(out: Path) -> list[Path]:
    """What an earlier run left in ``out`` that a fresh run must not mix with (or resume from)."""
    ckpt = out / "checkpoints"
    found = sorted(ckpt.glob("step_*"), key=lambda p: (len(p.name), p.name)) if ckpt.is_dir() else []
    return found + [p for p in (out / "final", out / "metrics.csv") if p.exists()] + sorted(out.glob("rank_*.json"))


def main(argv: list[str] | None = None) -> None:
    # ------------------------------------------------------------------------------------------
    # setup
    # ------------------------------------------------------------------------------------------
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML recipe config")
    ap.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir "
                    "(trusted folders only: checkpoints hold pickled optimizer/RNG state)")
    ap.add_argument("--overwrite", action="store_true", help="start afresh in an output_dir that holds an earlier "
                    "run: delete its checkpoints, final/ export and metrics.csv first")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=1e-3")
    args = ap.parse_args(argv)
    cfg = load_recipe_config(args.config, args.overrides)
    tcfg, dcfg, ecfg = cfg["train"], cfg["data"], cfg["eval"]

    use_cuda = torch.cuda.is_available()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    # bf16 autocast wherever the hardware multiplies bf16 natively, CPUs included (1.5-4x faster
    # steps on an AVX512-BF16 CPU); weights, gradients, optimizer state and the loss stay fp32.
    precision = resolve_mixed_precision(tcfg.get("mixed_precision", "auto"), "cuda" if use_cuda else "cpu")
    accelerator = Accelerator(mixed_precision=precision, cpu=not use_cuda)
    rank, world = accelerator.process_index, accelerator.num_processes
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    # Accelerate narrates every save_state ("Removed shared tensor" for tied LM-head weights, which
    # is expected) at INFO/WARNING: keep its errors, drop the noise.
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    if not use_cuda:
        torch.set_num_threads(int(tcfg.get("cpu_threads", 0)) or max(1, (os.cpu_count() or 1) // world))
    seed = int(cfg.get("seed", 0))
    set_seed(seed)  # model init is identical on every rank

    out = Path(cfg["output_dir"])
    ckpt_dir = out / "checkpoints"
    if not args.resume and (old := previous_run_outputs(out)):
        # A fresh run must not leave an earlier run's step_* folders for a later --resume to pick up
        # (nor silently delete days of someone's checkpoints because --resume was forgotten).
        if not args.overwrite:
            raise SystemExit(f"error: {out} holds an earlier run ({', '.join(str(p.relative_to(out)) for p in old[:3])}"
                             f"{', ...' if len(old) > 3 else ''}); continue it with --resume, or pass --overwrite "
                             "to delete it and start afresh")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for p in old:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for partial in ckpt_dir.glob(".step_*.partial"):  # left by a run killed while saving
            shutil.rmtree(partial, ignore_errors=True)
        (out / "recipe_config.json").write_text(json.dumps(cfg, indent=2))

    # Genome store: build it from FASTA once (idempotent; main process only), or use a given one.
    store = dcfg.get("store") or str(out / "genomes.zarr")
    if not Path(store).exists() and (missing := [f for f in dcfg.get("fasta") or [] if not Path(f).exists()]):
        # The tiny configs train on genomes that do not ship with bioseq: name the setting to change.
        raise SystemExit(f"{args.config}: data.fasta: {missing[0]} does not exist ({len(missing)} of {len(dcfg['fasta'])} "
                         "files missing). Point data.fasta at your genomes (data.fasta=[a.fa.gz,b.fa.gz]) or use "
                         "recipes/configs/demo.yaml, which trains on the bundled data/genomes")
    if accelerator.is_main_process and not Path(store).exists():
        log.info("building genome store %s from %d FASTA files", store, len(dcfg["fasta"]))
        build_store(dcfg["fasta"], store)
    accelerator.wait_for_everyone()

    tok = get_tokenizer(dcfg.get("tokenizer", "dna-char"))
    objective = cfg["objective"]
    if objective not in ("clm", "mlm"):
        raise SystemExit(f"{args.config}: objective must be 'clm' or 'mlm', got {objective!r}")
    mcfg = cfg["model"]
    backbone_cfg = load_config(
        mcfg["size"], vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
        bidirectional=objective == "mlm", **(mcfg.get("overrides") or {}),
    )
    if getattr(backbone_cfg, "rc_equivariant", False) and backbone_cfg.complement_map is None:
        backbone_cfg = backbone_cfg.replace(complement_map=list(tok.complement_map))
    model = (CausalLM if objective == "clm" else MaskedLM)(build_backbone(backbone_cfg))
    log.info("model %s (%s): %.2fM parameters, mixed precision %s on %s", mcfg["size"], backbone_cfg.arch,
             model.backbone.num_parameters() / 1e6, precision, accelerator.device)

    window, micro_bs, accum = int(dcfg["window"]), int(tcfg["batch_size"]), int(tcfg.get("grad_accum", 1))
    max_steps = int(tcfg["max_steps"])
    per_rank_per_step = micro_bs * accum
    split_kw = dict(holdout_genomes=dcfg.get("holdout_genomes") or [], holdout_contigs=dcfg.get("holdout_contigs") or [])
    train_ds = GenomeWindowDataset(store, window, seed=seed, split="train", rc=bool(dcfg.get("rc_augment", True)),
                                   samples_per_epoch=max_steps * per_rank_per_step * world, **split_kw)
    eval_dss = {name: GenomeWindowDataset(store, int(ecfg.get("window", window)), seed=seed + 1, split="valid", rc=False,
                                          samples_per_epoch=int(ecfg["n_windows"]), **kw)
                for name, kw in eval_sets(cfg).items()}

    # AdamW: no weight decay on norms, biases and embeddings (the usual GPT recipe).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embedding" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(tcfg.get("weight_decay", 0.1))}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(tcfg["lr"]), betas=tuple(tcfg.get("betas", (0.9, 0.95))),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, tcfg) / float(tcfg["lr"]))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    # Without the fp32-output wrapper Accelerate puts around forward: training runs under the
    # explicit accelerator.autocast() below, evaluation in plain fp32 (metrics stay fp32 and equal
    # what the exported model scores when loaded).
    raw_model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    # train.compile: the training forward through torch.compile (evaluation stays eager)
    train_forward = CompiledForward(model, bool(tcfg.get("compile", False)))

    start_step = 0
    if args.resume and (last := latest_checkpoint(ckpt_dir)) is not None:
        accelerator.load_state(str(last))
        start_step = checkpoint_step(last)
        log.info("resumed from %s at step %d", last, start_step)
    elif args.resume:
        log.info("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)

    # Whole batches per item: each batch is sampled and read with one vectorised call.
    sampler = DistributedWindowSampler(train_ds, num_replicas=world, rank=rank, batch_size=micro_bs, drop_last=True)
    sampler.set_epoch(0, start=start_step * per_rank_per_step)  # skip exactly what was consumed
    workers = int(dcfg.get("num_workers", 0))
    # zarr 3 keeps an event-loop thread: workers are spawned, never forked from a process that has
    # touched the store (the dataset reopens it lazily inside each worker).
    # The loader gets its own generator: iter() draws worker seeds from it, and drawing them from
    # the global RNG would shift the dropout stream of a resumed run against an uninterrupted one.
    loader = DataLoader(train_ds, batch_size=None, sampler=sampler, num_workers=workers,
                        multiprocessing_context="spawn" if workers else None, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    batches = iter(loader)
    nuc_ids = torch.as_tensor(tok.encode_codes(np.arange(4, dtype=np.uint8)))  # ids of A, C, G, T

    metrics = CSVLogger(out / "metrics.csv", accelerator.is_main_process)

    # ------------------------------------------------------------------------------------------
    # evaluation: bits per base on held-out windows (same positions the Markov baseline scores)
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(eval_ds: GenomeWindowDataset) -> tuple[float, float]:
        model.eval()
        bits = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        count = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        idx = list(range(rank, len(eval_ds), world))
        bs = int(ecfg.get("batch_size", micro_bs))
        for i in range(0, len(idx), bs):
            batch = eval_ds.get_batch(idx[i : i + bs])
            ids = torch.as_tensor(tok.encode_codes(batch["seq"].numpy())).to(accelerator.device)
            if objective == "clm":
                b, n = causal_bits(model, ids, nuc_ids)
            else:  # masked-token bits with a fixed, seeded 15% mask
                b, n = masked_bits(model, ids, nuc_ids, tok.mask_token_id, step_generator(seed, -1, i, rank))
            bits += b
            count += n
        bits, count = accelerator.reduce(bits, "sum"), accelerator.reduce(count, "sum")
        model.train()
        bpb = (bits / count.clamp_min(1)).item()
        return bpb, 2 ** bpb

    logged = set()  # baselines already in metrics.csv (a resumed run)
    if start_step and (out / "metrics.csv").exists():
        with open(out / "metrics.csv", newline="") as fh:
            logged = {r["split"].partition("_k")[0] for r in csv.DictReader(fh) if "_k" in r.get("split", "")}
    wanted = {"markov", "context"} if objective == "mlm" else {"markov"}
    if accelerator.is_main_process and ecfg.get("markov_baseline") and not logged >= wanted:
        # References in the same run, fitted on the training windows' genomes and scored on the
        # same held-out windows: the best order-k Markov chain and, for a masked LM (which sees
        # both sides of a base), the best two-sided context model. Logged once per run (a resumed
        # run started before a baseline existed logs it then).
        train_seqs = [train_ds.store.fetch(int(i)) for i in train_ds.sampler.contig_ids]
        windows = {name: eval_ds.get_batch(list(range(len(eval_ds))))["seq"].numpy() for name, eval_ds in eval_dss.items()}
        if "markov" not in logged:
            log.info("fitting order 0..%d Markov baselines on the training genomes", int(ecfg.get("markov_max_order", 10)))
            chain = MarkovModel(int(ecfg.get("markov_max_order", 10))).fit(train_seqs)
            for name, w in windows.items():
                mk, scores = best_order(chain, w)
                log.info("Markov baseline on %s windows: best k=%d, %.4f bits/base", name, mk.k, scores[mk.k])
                metrics.log(step=0, split=f"markov_k{mk.k}" + name[len("valid"):], bits_per_base=f"{scores[mk.k]:.5f}")
        if objective == "mlm" and "context" not in logged:
            ctx = ContextModel(int(ecfg.get("context_max_order", 5))).fit(train_seqs)
            for name, w in windows.items():
                k, scores = best_context(ctx, w)
                log.info("two-sided context baseline on %s windows: best k=%d, %.4f bits/base", name, k, scores[k])
                metrics.log(step=0, split=f"context_k{k}" + name[len("valid"):], bits_per_base=f"{scores[k]:.5f}")

    # Save state on SIGTERM (SLURM pre-emption) as well as at normal exit.
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))

    def save_checkpoint(step: int) -> None:
        # Every rank writes into .step_<n>.partial; once all are done the main process adds
        # trainer_state.json and renames the folder, so a kill at any moment leaves either no
        # step_<n> or a complete one (a stale .partial is removed on the next start).
        path, partial = ckpt_dir / f"step_{step}", ckpt_dir / f".step_{step}.partial"
        if accelerator.is_main_process and partial.exists():
            shutil.rmtree(partial)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            # written last, inside the hidden folder: the rename below is what makes it visible, and a
            # torn file would be skipped by checkpoint_step anyway
            (partial / "trainer_state.json").write_text(json.dumps({"step": step, "config": args.config}))
            if path.exists():
                shutil.rmtree(path)
            os.replace(partial, path)
            keep = int(cfg["checkpoint"].get("keep_last", 2))
            done = sorted((p for p in ckpt_dir.glob("step_*") if checkpoint_step(p) is not None), key=checkpoint_step)
            for old in done[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
            log.info("saved checkpoint step=%d to %s", step, path)
        accelerator.wait_for_everyone()

    # ------------------------------------------------------------------------------------------
    # train loop
    # ------------------------------------------------------------------------------------------
    ckpt_every, eval_every, log_every = int(cfg["checkpoint"]["every"]), int(ecfg["every"]), int(tcfg.get("log_every", 10))
    time_limit = float(tcfg.get("time_limit_s") or 0)
    # debug.dump_rank_state: each rank writes the windows it read and a hash of its weights
    # (the multi-process test checks disjoint data and identical replicas with it).
    dump_state, seen = bool((cfg.get("debug") or {}).get("dump_rank_state")), []
    # debug.step_delay_s: a pause after every step, so a test's kill lands between steps reliably
    step_delay = float((cfg.get("debug") or {}).get("step_delay_s") or 0)
    tokens_per_step = micro_bs * accum * window * world
    t0, tokens_seen, data_s = time.time(), start_step * tokens_per_step, 0.0
    bar = tqdm(range(start_step, max_steps), initial=start_step, total=max_steps, disable=not accelerator.is_main_process,
               desc=f"{mcfg['size']} {objective}", unit="step", dynamic_ncols=True)
    model.train()
    step = start_step
    for step in bar:
        L = seq_len_at(step, window, tcfg.get("seq_warmup"))
        # Dropout (and any other draw from the global RNG) is a function of (seed, step, rank), like
        # the data and the MLM masks: a resumed run replays the same masks whatever ran before it.
        torch.manual_seed(step_seed(seed, step, -1, rank))
        micro = []
        t_data = time.perf_counter()
        for _ in range(accum):
            batch = next(batches)
            if dump_state:
                seen.extend(zip(batch["contig"].tolist(), batch["start"].tolist(), batch["minus"].tolist(), strict=True))
            codes = batch["seq"].numpy()  # (B, window) uint8
            ids = torch.as_tensor(tok.encode_codes(codes)).reshape(-1, L)  # (B * window / L, L)
            micro.append(ids)
        data_s += time.perf_counter() - t_data  # reading + tokenising: should stay a small fraction
        # Count the targets of the whole accumulation window on every rank so the loss is a true
        # per-token mean (a mean of micro-batch means over-weights short or N-rich batches).
        prepared = []
        for m, ids in enumerate(micro):
            ok = torch.isin(ids, nuc_ids)
            if objective == "clm":
                inputs, labels = ids, ids.masked_fill(~ok, IGNORE_INDEX)
                n_targets = (labels[:, 1:] != IGNORE_INDEX).sum()
            else:
                inputs, labels = mask_tokens(ids, tok.mask_token_id, ok, nuc_ids, float(cfg.get("mlm_probability", 0.15)),
                                             step_generator(seed, step, m, rank))
                n_targets = (labels != IGNORE_INDEX).sum()
            prepared.append((inputs, labels, n_targets))
        total = accelerator.reduce(torch.stack([p[2] for p in prepared]).sum().to(accelerator.device).double(), "sum")
        step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        for m, (inputs, labels, _) in enumerate(prepared):
            inputs, labels = inputs.to(accelerator.device), labels.to(accelerator.device)
            sync = m == accum - 1
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                with accelerator.autocast():
                    out_ = train_forward(inputs)
                logits = out_.logits.float()
                if objective == "clm":
                    logits, labels = logits[:, :-1], labels[:, 1:]
                loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum")
                # DDP averages gradients over ranks, hence the * world.
                loss = loss_sum * world / total.clamp_min(1).float()
                if raw_model.backbone.aux_loss is not None:  # e.g. H-Net's ratio loss
                    loss = loss + raw_model.backbone.aux_loss / accum
                accelerator.backward(loss)
            step_loss += loss_sum.detach().double()
        if tcfg.get("grad_clip"):
            accelerator.clip_grad_norm_(model.parameters(), float(tcfg["grad_clip"]))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        mean_loss = (accelerator.reduce(step_loss, "sum") / total.clamp_min(1)).item()
        tokens_seen += tokens_per_step
        elapsed = time.time() - t0
        tps = (step + 1 - start_step) * tokens_per_step / max(elapsed, 1e-9)
        done = step + 1
        bar.set_postfix(loss=f"{mean_loss:.4f}", bpb=f"{mean_loss / LN2:.3f}", L=L, tok_s=f"{tps:,.0f}",
                        data=f"{data_s / max(elapsed, 1e-9):.0%}")
        if done % log_every == 0 or done == max_steps or done == start_step + 1:
            metrics.log(step=done, split="train", loss=f"{mean_loss:.6f}", bits_per_base=f"{mean_loss / LN2:.5f}",
                        perplexity=f"{math.exp(mean_loss):.4f}", lr=f"{scheduler.get_last_lr()[0]:.3e}", seq_len=L,
                        tokens=tokens_seen, tokens_per_s=f"{tps:.1f}", elapsed_s=f"{elapsed:.1f}",
                        data_frac=f"{data_s / max(elapsed, 1e-9):.4f}")
        if eval_every and (done % eval_every == 0 or done == max_steps):
            for name, eval_ds in eval_dss.items():
                bpb, ppl = evaluate(eval_ds)
                log.info("step %d: %s %.4f bits/base (perplexity %.3f)", done, name, bpb, ppl)
                metrics.log(step=done, split=name, bits_per_base=f"{bpb:.5f}", perplexity=f"{ppl:.4f}", elapsed_s=f"{elapsed:.1f}")
        timed_out = time_limit and elapsed > time_limit
        if done % ckpt_every == 0 or done == max_steps or stop["now"] or timed_out:
            save_checkpoint(done)
        if step_delay:
            time.sleep(step_delay)
        if stop["now"] or timed_out:
            log.info("stopping at step %d (%s)", done, "SIGTERM" if stop["now"] else f"time limit {time_limit:.0f}s")
            if done < max_steps:
                log.warning("the run ended at step %d of %d (%s): the learning-rate schedule did not finish, so "
                            "the model is not what the full run would give", done, max_steps,
                            "SIGTERM" if stop["now"] else f"train.time_limit_s={time_limit:g}")
            break

    # ------------------------------------------------------------------------------------------
    # export: config.json + model.safetensors that bioseq.models.load_pretrained reads
    # ------------------------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if dump_state:
        h = hashlib.sha256()
        for _, p in sorted(raw_model.state_dict().items()):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        (out / f"rank_{rank}.json").write_text(json.dumps({"windows": seen, "param_sha256": h.hexdigest()}))
    if accelerator.is_main_process:
        final = out / "final"
        raw_model.save_pretrained(final)
        tok.save(final / "tokenizer.json")
        log.info("exported %s (step %d)", final, step + 1)
    accelerator.end_training()


if __name__ == "__main__":
    sys.exit(main())
