"""Small training loops shared by the recipe and the benchmarks: flow matching, the noisy
classifier for guidance, and one-step distillation.

Every loop runs the same optimiser recipe (:func:`fit`): AdamW, a linear warm-up, then a cosine
decay of the learning rate to a floor (``lr * min_lr_ratio``) reached exactly at the last planned
step, and an exponential moving average of the weights (:class:`EMA`) that replaces the trained
weights at the end, so what is saved and sampled is the average. A constant learning rate leaves
the last iterate bouncing around the optimum with a spread set by the step size; with flow
matching's noisy loss (random times, random ``x_t``) that noise dominates the sampling error (on
the toy task, 6,000 steps at a constant rate were worse than 1,500 with a decay). When a run is
bounded by ``max_seconds`` the decay follows the larger of the step fraction and the time
fraction, so a run cut short by the clock still ends at a small learning rate.

Data order is a pure function of the seed (one ``torch.Generator`` drives batch indices), so a run
is reproducible; training times and noise come from the global RNG seeded from the same seed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bioseq.design.denoisers import NoisyClassifier
from bioseq.design.model import FlowModel
from bioseq.design.paths import DirichletPath
from bioseq.design.sampler import Guidance, sample
from bioseq.utils.precision import autocast, resolve_mixed_precision

log = logging.getLogger(__name__)


def cosine_lr(step: int, steps: int, lr: float, min_lr: float, warmup: int = 0, progress: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based) out of ``steps``.

    Linear warm-up over the first ``warmup`` steps, then a cosine from ``lr`` down to ``min_lr``,
    which the last step (``step == steps - 1``) uses exactly. ``progress`` in ``[0, 1]`` (e.g. the
    elapsed fraction of a time budget) moves the decay forward when it is ahead of the step count.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - 1 - warmup)
    frac = min(1.0, max(frac, progress))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


class EMA:
    """Exponential moving average of a module's parameters, warmed up from the first step.

    Update ``n`` (1-based) uses the decay ``d_n = min(decay, (n - 1) / (n + 9))``: ``d_1 = 0``, so
    after one update the average equals the weights (no bias towards the initialisation, unlike
    a plain EMA started from the initial weights or from zero), and early on the average spans
    roughly the last tenth of the steps taken, until ``decay`` caps it at ``1 / (1 - decay)`` steps.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters()}

    def decay_at(self, n: int) -> float:
        """The decay used by update ``n`` (1-based)."""
        return min(self.decay, (n - 1) / (n + 9))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = self.decay_at(self.updates)
        for k, p in module.named_parameters():
            self.shadow[k].lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite the module's parameters with the average."""
        for k, p in module.named_parameters():
            p.copy_(self.shadow[k])


def _batches(n: int, batch_size: int, steps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randint(0, n, (batch_size,), generator=g)


def fit(
    module: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int, batch_size: int,
    lr: float, seed: int, max_seconds: float | None, log_every: int, name: str,
    min_lr_ratio: float = 0.01, warmup: int | None = None, ema_decay: float | None = 0.999,
    mixed_precision: str = "auto",
) -> dict:
    """Minimise ``loss_fn(batch indices)`` over ``module``'s parameters: AdamW with warm-up + cosine
    decay to ``lr * min_lr_ratio`` and an :class:`EMA` of the weights copied into ``module`` at the
    end (``ema_decay=None``: keep the last iterate).

    Args:
        n: dataset size (batches are ``batch_size`` indices drawn from ``range(n)`` by ``seed``).
        steps: planned optimiser steps; the decay reaches its floor on the last one.
        max_seconds: stop after this much training time; the decay then follows the elapsed
            fraction of it whenever that is ahead of the step fraction.
        warmup: linear warm-up steps (default ``min(100, steps // 10)``).
        mixed_precision: ``auto`` (bf16 autocast where the hardware multiplies bf16 natively),
            ``bf16`` or ``no`` (:mod:`bioseq.utils.precision`); weights, EMA and loss stay fp32.

    Returns ``{"steps", "seconds", "losses", "lrs", "ema"}``; ``lrs`` is the rate of every step."""
    torch.manual_seed(seed)
    warmup = min(100, steps // 10) if warmup is None else warmup
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.0)
    ema = EMA(module, ema_decay) if ema_decay is not None else None
    losses, lrs, t0, done = [], [], time.time(), 0
    device = next(module.parameters()).device
    precision = resolve_mixed_precision(mixed_precision, device)
    for i, idx in enumerate(_batches(n, batch_size, steps, seed)):
        progress = (time.time() - t0) / max_seconds if max_seconds else 0.0
        rate = cosine_lr(i, steps, lr, lr * min_lr_ratio, warmup, progress)
        for group in opt.param_groups:
            group["lr"] = rate
        with autocast(device, precision):
            loss = loss_fn(idx).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update(module)
        losses.append(float(loss.detach()))
        lrs.append(rate)
        done = i + 1
        if log_every and done % log_every == 0:
            log.info("%s step %d loss %.4f lr %.2e (%.0fs)", name, done, sum(losses[-log_every:]) / log_every, rate, time.time() - t0)
        if max_seconds is not None and time.time() - t0 > max_seconds:
            break
    if ema is not None:
        ema.copy_to(module)
    return {"steps": done, "seconds": time.time() - t0, "losses": losses, "lrs": lrs, "ema": ema is not None}


def train_flow(
    model: FlowModel, ids: torch.Tensor | Callable[[int], torch.Tensor], labels: torch.Tensor | None = None,
    steps: int = 1000, batch_size: int = 128, lr: float = 1e-3, cfg_dropout: float = 0.0, seed: int = 0,
    max_seconds: float | None = None, log_every: int = 100, **schedule,
) -> dict:
    """Flow matching on token ids ``(N, L)`` (values ``0..K-1``) with optional class ``labels (N,)``.

    ``ids`` may also be a function ``batch_size -> (batch_size, L)`` ids that draws a fresh batch
    from a known distribution at every step (unconditional only). ``schedule``: ``min_lr_ratio``,
    ``warmup``, ``ema_decay``, ``mixed_precision`` of :func:`fit`."""
    model.train()
    fresh = callable(ids)
    if fresh and labels is not None:
        raise ValueError("train_flow: a sampling function for ids takes no labels")

    def loss_fn(idx):
        if fresh:
            return model.loss(ids(len(idx)))
        return model.loss(ids[idx], None if labels is None else labels[idx], cfg_dropout)

    n = 1 if fresh else len(ids)
    return fit(model, loss_fn, n, steps, batch_size, lr, seed, max_seconds, log_every, "flow", **schedule)


def train_noisy_classifier(
    clf: NoisyClassifier, path: DirichletPath, ids: torch.Tensor, labels: torch.Tensor, steps: int = 1000,
    batch_size: int = 128, lr: float = 1e-3, seed: int = 0, max_seconds: float | None = None, log_every: int = 100,
    **schedule,
) -> dict:
    """Train ``p(class | x_t, t)`` on points of the Dirichlet path drawn from the real data
    (same schedule and weight averaging as :func:`train_flow`)."""
    clf.train()

    def loss_fn(idx):
        t = path.sample_time(len(idx))
        xt = path.sample_xt(ids[idx], t)
        return F.cross_entropy(clf(xt, path.time_feature(t).float()), labels[idx])

    return fit(clf, loss_fn, len(ids), steps, batch_size, lr, seed, max_seconds, log_every, "noisy-classifier", **schedule)


@torch.no_grad()
def teacher_pairs(
    teacher: FlowModel, n: int, classes: torch.Tensor | None, steps: int = 100, guidance: Guidance | None = None,
    seed: int = 0, batch_size: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0 (n, L, K), designs (n, L))``: teacher ODE outputs from recorded starting noise."""
    g = torch.Generator().manual_seed(seed)
    x0 = teacher.path.prior((n, teacher.seq_len), generator=g)
    ids = sample(teacher, n, cls=classes, steps=steps, guidance=guidance, decode="argmax", x0=x0, batch_size=batch_size)
    return x0, ids


def distill(
    student: FlowModel, x0: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor | None = None,
    steps: int = 1000, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
    max_seconds: float | None = None, log_every: int = 100, **schedule,
) -> dict:
    """Fit a one-step student (``kind="distilled"``): logits at ``(x0, t=0)`` -> teacher designs
    (same schedule and weight averaging as :func:`train_flow`)."""
    if student.kind != "distilled":
        raise ValueError("distill() trains a FlowModel with kind='distilled'")
    student.train()

    def loss_fn(idx):
        t = torch.zeros(len(idx), dtype=torch.float64)
        logits = student(x0[idx].float(), t, None if classes is None else classes[idx])
        return F.cross_entropy(logits.reshape(-1, student.K), targets[idx].reshape(-1))

    return fit(student, loss_fn, len(x0), steps, batch_size, lr, seed, max_seconds, log_every, "distill", **schedule)
