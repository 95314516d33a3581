"""Small training loops shared by the recipe and the benchmarks: flow matching, the noisy
classifier for guidance, and one-step distillation.

Data order is a pure function of the seed (one ``torch.Generator`` drives batch indices), so a run
is reproducible; training times and noise come from the global RNG seeded from the same seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bioseq.design.denoisers import NoisyClassifier
from bioseq.design.model import FlowModel
from bioseq.design.paths import DirichletPath
from bioseq.design.sampler import Guidance, sample

log = logging.getLogger(__name__)


def _batches(n: int, batch_size: int, steps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randint(0, n, (batch_size,), generator=g)


def _fit(
    params, loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int, batch_size: int,
    lr: float, seed: int, max_seconds: float | None, log_every: int, name: str,
) -> dict:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 100))  # warm-up
    losses, t0, done = [], time.time(), 0
    for i, idx in enumerate(_batches(n, batch_size, steps, seed)):
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done = i + 1
        if log_every and done % log_every == 0:
            log.info("%s step %d loss %.4f (%.0fs)", name, done, sum(losses[-log_every:]) / log_every, time.time() - t0)
        if max_seconds is not None and time.time() - t0 > max_seconds:
            break
    return {"steps": done, "seconds": time.time() - t0, "losses": losses}


def train_flow(
    model: FlowModel, ids: torch.Tensor, labels: torch.Tensor | None = None, steps: int = 1000,
    batch_size: int = 128, lr: float = 1e-3, cfg_dropout: float = 0.0, seed: int = 0,
    max_seconds: float | None = None, log_every: int = 100,
) -> dict:
    """Flow matching on token ids ``(N, L)`` (values ``0..K-1``) with optional class ``labels (N,)``."""
    model.train()

    def loss_fn(idx):
        return model.loss(ids[idx], None if labels is None else labels[idx], cfg_dropout)

    return _fit(model.parameters(), loss_fn, len(ids), steps, batch_size, lr, seed, max_seconds, log_every, "flow")


def train_noisy_classifier(
    clf: NoisyClassifier, path: DirichletPath, ids: torch.Tensor, labels: torch.Tensor, steps: int = 1000,
    batch_size: int = 128, lr: float = 1e-3, seed: int = 0, max_seconds: float | None = None, log_every: int = 100,
) -> dict:
    """Train ``p(class | x_t, t)`` on points of the Dirichlet path drawn from the real data."""
    clf.train()

    def loss_fn(idx):
        t = path.sample_time(len(idx))
        xt = path.sample_xt(ids[idx], t)
        return F.cross_entropy(clf(xt, path.time_feature(t).float()), labels[idx])

    return _fit(clf.parameters(), loss_fn, len(ids), steps, batch_size, lr, seed, max_seconds, log_every, "noisy-classifier")


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
    max_seconds: float | None = None, log_every: int = 100,
) -> dict:
    """Fit a one-step student (``kind="distilled"``): logits at ``(x0, t=0)`` -> teacher designs."""
    if student.kind != "distilled":
        raise ValueError("distill() trains a FlowModel with kind='distilled'")
    student.train()

    def loss_fn(idx):
        t = torch.zeros(len(idx), dtype=torch.float64)
        logits = student(x0[idx].float(), t, None if classes is None else classes[idx])
        return F.cross_entropy(logits.reshape(-1, student.K), targets[idx].reshape(-1))

    return _fit(student.parameters(), loss_fn, len(x0), steps, batch_size, lr, seed, max_seconds, log_every, "distill")
