"""Fine-tune a backbone with a classification or regression head: a small, readable trainer.

    from bioseq.finetune import FinetuneConfig, encode_dataset, finetune, evaluate
    model = SequenceClassifier.from_pretrained("runs/lm/", num_labels=3)
    train = encode_dataset(tok, train_seqs, train_labels)
    val = encode_dataset(tok, val_seqs, val_labels)
    result = finetune(model, train, val, FinetuneConfig(lr=1e-3, epochs=10, layer_lr_decay=0.8))
    evaluate(model, test)          # {"accuracy": ..., "f1": ..., "mcc": ..., "auroc": ...}

What it does, and why:
- Freezing: ``freeze_backbone`` trains only the head (a linear probe); ``freeze_layers=k`` freezes
  the embedding and the lowest ``k`` blocks, the usual middle ground on small data sets.
- Layer-wise learning rates: block ``i`` of ``n`` trains at ``lr * layer_lr_decay ** (n - i)`` and
  the embedding at ``lr * layer_lr_decay ** (n + 1)``: low layers hold generic features and move
  least (ULMFiT / ELECTRA-style discriminative fine-tuning). The head uses ``head_lr`` (default ``lr``).
- Early stopping on a validation metric; the best weights are restored at the end.
- Metrics: accuracy, macro F1, MCC, AUROC (macro one-vs-rest) for classification; MSE, Pearson,
  Spearman for regression (``num_labels == 1``).
- Determinism: all randomness (init of the head, dropout, shuffling) comes from ``seed``.
- LoRA: :func:`apply_lora` injects low-rank adapters through ``peft`` (imported lazily).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from bioseq.utils.precision import CHOICES as PRECISION_CHOICES
from bioseq.utils.precision import autocast, resolve_mixed_precision

CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc", "auroc", "loss")
REGRESSION_METRICS = ("mse", "pearson", "spearman", "loss")
LOWER_IS_BETTER = {"loss", "mse"}


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune`. Validated on construction.

    Attributes:
        lr: peak learning rate of the top block (AdamW, linear warmup then cosine decay).
        head_lr: learning rate of the head; ``None`` = ``lr``.
        layer_lr_decay: factor per block going down (1.0 = one learning rate everywhere).
        weight_decay: AdamW weight decay (not applied to biases and norms).
        epochs: maximum number of passes over the training set.
        batch_size: sequences per step.
        warmup_ratio: fraction of all steps spent warming the learning rate up.
        freeze_backbone: train only the head.
        freeze_layers: freeze the embedding and this many lowest blocks.
        metric: validation metric for early stopping and model selection.
        patience: evaluations (epochs, or ``eval_every`` steps) without improvement before stopping
            (``None`` = never stop early).
        grad_clip: gradient norm clip (``None`` = off).
        seed: seeds the head's initialisation, dropout and shuffling.
        max_steps: stop after this many optimizer steps (``None`` = ``epochs`` full passes); the
            learning-rate schedule is laid out over the steps that will actually run.
        eval_every: also evaluate every this many steps (``None`` = once per epoch only).
        time_limit_s: stop at the first step after this many seconds (checked every step); the
            run is then evaluated once more and ``FinetuneResult.cut_short`` says the schedule did
            not finish.
        progress: show a tqdm progress bar.
        mixed_precision: ``auto`` (bf16 autocast where the hardware multiplies bf16 natively,
            CPUs included), ``bf16`` or ``no``; weights, optimizer state and the loss stay fp32
            (:mod:`bioseq.utils.precision`). Evaluation always runs in fp32.
    """

    lr: float = 1e-3
    head_lr: float | None = None
    layer_lr_decay: float = 1.0
    weight_decay: float = 0.01
    epochs: int = 10
    batch_size: int = 32
    warmup_ratio: float = 0.1
    freeze_backbone: bool = False
    freeze_layers: int = 0
    metric: str = "accuracy"
    patience: int | None = 3
    grad_clip: float | None = 1.0
    seed: int = 0
    max_steps: int | None = None
    eval_every: int | None = None
    time_limit_s: float | None = None
    progress: bool = True
    mixed_precision: str = "auto"

    def __post_init__(self) -> None:
        if self.lr <= 0 or (self.head_lr is not None and self.head_lr <= 0):
            raise ValueError(f"finetune: learning rates must be > 0, got lr={self.lr}, head_lr={self.head_lr}")
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError(f"finetune: layer_lr_decay must be in (0, 1], got {self.layer_lr_decay}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("finetune: epochs and batch_size must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"finetune: warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.freeze_layers < 0:
            raise ValueError(f"finetune: freeze_layers must be >= 0, got {self.freeze_layers}")
        if self.metric not in set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS):
            raise ValueError(f"finetune: unknown metric {self.metric!r}; use one of "
                             f"{sorted(set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS))}")
        if self.patience is not None and self.patience < 1:
            raise ValueError("finetune: patience must be >= 1 or None")
        if self.mixed_precision not in PRECISION_CHOICES:
            raise ValueError(f"finetune: mixed_precision must be one of {PRECISION_CHOICES}, got {self.mixed_precision!r}")
        if (self.max_steps is not None and self.max_steps < 1) or (self.eval_every is not None and self.eval_every < 1):
            raise ValueError("finetune: max_steps and eval_every must be >= 1 or None")


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns. ``history`` has one dict per evaluation (epoch, step,
    train_loss, val metrics, seconds); ``steps`` the training loss of every step (for loss curves).
    ``best_epoch`` / ``best_step`` locate the kept weights; ``cut_short`` is True when the time
    limit ended the run before its schedule (the learning rate had not decayed)."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_step: int = -1
    best_metric: float = float("nan")
    stopped_early: bool = False
    cut_short: bool = False
    config: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def encode_dataset(tokenizer, seqs: Sequence[str], labels: Sequence[float] | np.ndarray | None = None,
                   max_length: int | None = None) -> TensorDataset:
    """Tokenize ``seqs`` (padded to the longest) into a ``TensorDataset`` of
    ``(input_ids (N, L), attention_mask (N, L)[, labels (N,)])``. Integer labels stay ``long``
    (classification), float labels become ``float32`` (regression)."""
    enc = tokenizer.encode_batch(list(seqs), padding="longest", max_length=max_length,
                                 truncation=max_length is not None, return_tensors="pt")
    tensors = [torch.as_tensor(enc["input_ids"]).long(), torch.as_tensor(enc["attention_mask"]).bool()]
    if labels is not None:
        y = np.asarray(labels)
        if len(y) != len(seqs):
            raise ValueError(f"encode_dataset: {len(seqs)} sequences but {len(y)} labels")
        tensors.append(torch.as_tensor(y, dtype=torch.long if np.issubdtype(y.dtype, np.integer) else torch.float32))
    return TensorDataset(*tensors)


class CropDataset(Dataset):
    """Sequences of any length as fixed-size examples ``(input_ids (L,), attention_mask (L,), label)``
    with ``L = max_length`` tokens, special tokens included.

    A sequence longer than that gives a random crop in training (``random_crop=True``: a fresh
    one each time it is drawn, from a generator seeded by ``seed``) or its centre crop
    (``random_crop=False``, for validation); shorter ones are padded. Predict on whole long
    sequences with :func:`predict_windows`.
    """

    def __init__(self, tokenizer, seqs: Sequence[str], labels: Sequence[float] | np.ndarray, max_length: int,
                 random_crop: bool = True, seed: int = 0) -> None:
        self.tok, self.max_length, self.random_crop = tokenizer, int(max_length), random_crop
        self.body = self.max_length - len(tokenizer.template["prefix"]) - len(tokenizer.template["suffix"])
        if self.body < 1:
            raise ValueError(f"max_length {max_length} leaves no room besides the special tokens")
        self.bodies = [tokenizer.encode(s, add_special_tokens=False) for s in seqs]
        y = np.asarray(labels)
        self.labels = torch.as_tensor(y, dtype=torch.long if np.issubdtype(y.dtype, np.integer) else torch.float32)
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.bodies)

    def __getitem__(self, i: int):
        b = self.bodies[i]
        extra = len(b) - self.body
        if extra > 0:
            start = int(torch.randint(extra + 1, (1,), generator=self.gen)) if self.random_crop else extra // 2
            b = b[start : start + self.body]
        ids = self.tok.apply_template(b)
        out = np.full(self.max_length, self.tok.pad_token_id, np.int64)
        out[: len(ids)] = ids
        mask = np.arange(self.max_length) < len(ids)
        return torch.from_numpy(out), torch.from_numpy(mask), self.labels[i]


@torch.no_grad()
def predict_windows(model: nn.Module, tokenizer, seqs: Sequence[str], max_length: int, overlap: int | None = None,
                    batch_size: int = 64) -> np.ndarray:
    """Logits ``(N, num_labels)`` of whole sequences of any length: each sequence is cut into
    windows of ``max_length`` tokens (specials included) overlapping by ``overlap`` (default a
    quarter), and the windows' logits are averaged. Sequences that fit are one window."""
    from bioseq.embeddings import sliding_windows

    body = max_length - len(tokenizer.template["prefix"]) - len(tokenizer.template["suffix"])
    overlap = body // 4 if overlap is None else overlap
    owner, rows = [], []
    for i, s in enumerate(seqs):
        ids = tokenizer.encode(s, add_special_tokens=False)
        for a, b in sliding_windows(len(ids), body, max(1, body - overlap)):
            owner.append(i)
            rows.append(tokenizer.apply_template(ids[a:b]))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = []
    for j in range(0, len(rows), batch_size):
        enc = tokenizer.pad(rows[j : j + batch_size], return_tensors="pt")
        logits.append(model(enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device)).logits.float().cpu())
    model.train(was_training)
    lg = torch.cat(logits).numpy() if logits else np.zeros((0, getattr(model, "num_labels", 1)), np.float32)
    out = np.zeros((len(seqs), lg.shape[1]), np.float64)
    np.add.at(out, np.asarray(owner), lg)
    return (out / np.bincount(owner, minlength=len(seqs))[:, None]).astype(np.float32)


def _loader(data: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen if shuffle else None)


# ----------------------------------------------------------------------------------------------
# metrics (numpy / scipy only, so the library does not need scikit-learn)
# ----------------------------------------------------------------------------------------------
def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)  # rows = truth


def _auroc_binary(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U statistic / (n_pos * n_neg), ties counted half (average ranks)."""
    from scipy.stats import rankdata

    pos = y.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """accuracy, macro F1, MCC (multi-class, Gorodkin 2004) and AUROC (binary, or macro
    one-vs-rest over classes present) from integer ``labels (N,)`` and ``logits (N, K)``."""
    y = np.asarray(labels).astype(np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[1]
    pred = logits.argmax(1)
    cm = _confusion(y, pred, k).astype(np.float64)
    tp = np.diag(cm)
    prec = np.divide(tp, cm.sum(0), out=np.zeros(k), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros(k), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(k), where=(prec + rec) > 0)
    present = (cm.sum(1) + cm.sum(0)) > 0
    n, c = cm.sum(), tp.sum()
    t, p = cm.sum(1), cm.sum(0)
    denom = math.sqrt((n * n - (p * p).sum()) * (n * n - (t * t).sum()))
    mcc = float((c * n - (t * p).sum()) / denom) if denom > 0 else 0.0
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    if k == 2:
        auroc = _auroc_binary(y == 1, prob[:, 1])
    else:
        per = [_auroc_binary(y == j, prob[:, j]) for j in range(k) if 0 < (y == j).sum() < len(y)]
        auroc = float(np.mean(per)) if per else float("nan")
    return {"accuracy": float(c / n) if n else float("nan"), "f1": float(f1[present].mean()),
            "mcc": mcc, "auroc": auroc}


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """MSE, Pearson r and Spearman rho."""
    from scipy.stats import pearsonr, spearmanr

    t, p = np.asarray(targets, dtype=np.float64).ravel(), np.asarray(preds, dtype=np.float64).ravel()
    const = np.ptp(t) == 0 or np.ptp(p) == 0
    return {"mse": float(np.mean((t - p) ** 2)),
            "pearson": float("nan") if const else float(pearsonr(t, p)[0]),
            "spearman": float("nan") if const else float(spearmanr(t, p)[0])}


# ----------------------------------------------------------------------------------------------
# freezing and parameter groups
# ----------------------------------------------------------------------------------------------
def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The residual blocks of a backbone, bottom to top: ``backbone.blocks`` when it exists,
    otherwise its largest ``nn.ModuleList`` child (empty if it has none)."""
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, nn.ModuleList):
        return list(blocks)
    lists = [m for m in backbone.children() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def _depths(model: nn.Module) -> dict[str, int]:
    """Parameter name -> depth: 0 embedding, i+1 block i, n+1 everything else (final norm, head).
    Parameters outside blocks and embedding but inside the backbone count as top (n+1)."""
    backbone = model.backbone
    blocks = backbone_blocks(backbone)
    n = len(blocks)
    depth_of_module = {id(backbone.embedding): 0} if hasattr(backbone, "embedding") else {}
    for i, b in enumerate(blocks):
        depth_of_module[id(b)] = i + 1
    depths: dict[str, int] = {}
    for mod_name, mod in model.named_modules():
        d = depth_of_module.get(id(mod))
        if d is None:
            continue
        for p_name, _ in mod.named_parameters():
            depths.setdefault(f"{mod_name}.{p_name}" if mod_name else p_name, d)
    for name, _ in model.named_parameters():
        depths.setdefault(name, n + 1)
    return depths


def freeze(model: nn.Module, backbone: bool = False, layers: int = 0) -> int:
    """Freeze the whole backbone, or its embedding plus the lowest ``layers`` blocks. Returns the
    number of parameters left trainable. The head is never frozen."""
    n = len(backbone_blocks(model.backbone))
    if layers > n:
        raise ValueError(f"freeze: the backbone has {n} blocks, cannot freeze {layers}")
    depths = _depths(model)
    for name, p in model.named_parameters():
        if name.startswith("backbone.") and (backbone or (layers > 0 and depths[name] <= layers)):
            p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_groups(model: nn.Module, lr: float, layer_lr_decay: float = 1.0, head_lr: float | None = None,
                 weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """AdamW parameter groups with layer-wise learning rates (see the module docstring).
    Biases, norms and embeddings (1-D or embedding tables) get no weight decay."""
    depths = _depths(model)
    top = len(backbone_blocks(model.backbone)) + 1
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("backbone."):
            g_lr = lr * layer_lr_decay ** (top - depths[name])
        else:
            g_lr = head_lr if head_lr is not None else lr
        wd = 0.0 if p.ndim < 2 or "embedding" in name else weight_decay
        groups.setdefault((g_lr, wd), []).append(p)
    return [{"params": ps, "lr": g_lr, "initial_lr": g_lr, "weight_decay": wd}
            for (g_lr, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])]


def apply_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0,
               target_modules: Sequence[str] | None = None) -> nn.Module:
    """Inject LoRA adapters (``peft``) into the backbone's linear layers and freeze everything
    else except the head. ``target_modules`` are name suffixes of ``nn.Linear`` modules; by default
    every linear layer inside the backbone. Returns the same model, modified in place."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:  # optional extra
        raise ImportError("apply_lora needs peft: pip install 'bioseq[hf]'") from e
    if target_modules is None:
        target_modules = sorted({name.split(".")[-1] for name, m in model.backbone.named_modules()
                                 if isinstance(m, nn.Linear)})
        if not target_modules:
            raise ValueError("apply_lora: the backbone has no nn.Linear layers to adapt")
    head = {n: p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone.")}
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    # Restrict injection to the backbone: the head stays an ordinary, fully trained layer.
    inject_adapter_in_model(cfg, model.backbone)
    for name, p in model.named_parameters():
        if name.startswith("backbone."):
            p.requires_grad_("lora_" in name)
        else:
            p.requires_grad_(head.get(name, True))
    return model


# ----------------------------------------------------------------------------------------------
# evaluation and training
# ----------------------------------------------------------------------------------------------
def _unpack(batch, device):
    ids, mask = batch[0].to(device), batch[1].to(device)
    labels = batch[2].to(device) if len(batch) > 2 else None
    return ids, mask, labels


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, batch_size: int = 128) -> np.ndarray:
    """Logits ``(N, num_labels)`` of ``model`` on ``data`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for batch in _loader(data, batch_size, shuffle=False):
        ids, mask, _ = _unpack(batch, device)
        out.append(model(ids, attention_mask=mask).logits.float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 128) -> dict[str, float]:
    """Metrics of ``model`` on a labelled dataset, plus the mean ``loss``."""
    logits = predict(model, data, batch_size)
    labels = torch.stack([data[i][2] for i in range(len(data))]) if len(data) else torch.empty(0)
    lt = torch.as_tensor(logits)
    if lt.shape[1] == 1:
        loss = F.mse_loss(lt.squeeze(-1), labels.float()).item()
        return {**regression_metrics(labels.numpy(), logits[:, 0]), "loss": loss}
    loss = F.cross_entropy(lt, labels.long()).item()
    return {**classification_metrics(labels.numpy(), logits), "loss": loss}


def _better(a: float, b: float, metric: str) -> bool:
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if metric in LOWER_IS_BETTER else a > b


def finetune(model: nn.Module, train: Dataset, val: Dataset | None = None,
             config: FinetuneConfig | None = None, **overrides: Any) -> FinetuneResult:
    """Train ``model`` (a head from :mod:`bioseq.models.heads`, e.g. ``SequenceClassifier``) on
    ``train``; after every epoch evaluate on ``val``, keep the best weights by ``config.metric``
    and stop after ``patience`` epochs without improvement. The model ends with its best weights.

    Args:
        model: a model whose ``forward(input_ids, attention_mask, labels)`` returns ``.loss``.
        train, val: datasets of ``(input_ids, attention_mask, labels)`` (see :func:`encode_dataset`).
        config: :class:`FinetuneConfig`; keyword ``overrides`` replace its fields.
    Returns:
        :class:`FinetuneResult` with per-epoch history and per-step losses.
    """
    from tqdm.auto import tqdm

    config = FinetuneConfig(**{**asdict(config or FinetuneConfig()), **overrides})
    regression = getattr(model, "num_labels", 2) == 1
    if regression and config.metric in CLASSIFICATION_METRICS[:-1]:
        config.metric = "spearman" if config.metric == "accuracy" else config.metric
    allowed = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    if config.metric not in allowed:
        raise ValueError(f"finetune: metric {config.metric!r} does not apply to "
                         f"{'regression' if regression else 'classification'}; use one of {allowed}")
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    if config.freeze_backbone or config.freeze_layers:
        freeze(model, backbone=config.freeze_backbone, layers=config.freeze_layers)
    groups = param_groups(model, config.lr, config.layer_lr_decay, config.head_lr, config.weight_decay)
    if not groups:
        raise ValueError("finetune: no trainable parameters")
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))
    loader = _loader(train, config.batch_size, shuffle=True, seed=config.seed)
    total = config.epochs * len(loader)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warm = int(config.warmup_ratio * total)

    def schedule(step: int) -> float:  # multiplier of each group's initial lr
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    device = next(model.parameters()).device
    precision = resolve_mixed_precision(config.mixed_precision, device)
    result = FinetuneResult(config=asdict(config))
    best_state, since_best, step, t0 = None, 0, 0, time.time()
    running: list[float] = []

    def evaluate_now(epoch: int) -> None:
        nonlocal best_state, since_best
        row = {"epoch": epoch, "step": step, "train_loss": float(np.mean(running)) if running else float("nan"),
               "seconds": time.time() - t0}
        if val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(model, val).items()})
            score = row[f"val_{config.metric}"]
            if _better(score, result.best_metric, config.metric):
                result.best_metric, result.best_epoch, result.best_step, since_best = score, epoch, step, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
        result.history.append(row)
        running.clear()
        model.train()

    bar = tqdm(total=total, disable=not config.progress, desc="finetune", leave=False)
    done = False
    for epoch in range(config.epochs):
        model.train()
        for batch in loader:
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * schedule(step)
            ids, mask, labels = _unpack(batch, device)
            with autocast(device, precision):
                loss = model(ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.grad_clip)
            opt.step()
            step += 1
            running.append(loss.item())
            result.steps.append(running[-1])
            bar.update(1)
            bar.set_postfix(loss=f"{running[-1]:.3f}")
            # The budget is checked every step, not every epoch: one long epoch cannot overrun it.
            out_of_time = config.time_limit_s is not None and time.time() - t0 > config.time_limit_s
            if step >= total or out_of_time:
                result.cut_short = out_of_time and step < total
                done = True
                break
            if config.eval_every and step % config.eval_every == 0:
                evaluate_now(epoch)
        if not result.history or result.history[-1]["step"] != step:
            evaluate_now(epoch)  # end of every epoch, and wherever the budget ended the run
        if done:
            break
        if config.patience is not None and val is not None and since_best >= config.patience:
            result.stopped_early = True
            break
    if result.cut_short:
        warnings.warn(f"finetune: the time limit ({config.time_limit_s:g} s) ended the run at step {step} of {total}: "
                      "the learning-rate schedule did not finish", stacklevel=2)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


__all__ = [
    "CropDataset", "FinetuneConfig", "predict_windows", "FinetuneResult", "apply_lora", "backbone_blocks", "classification_metrics",
    "encode_dataset", "evaluate", "finetune", "freeze", "param_groups", "predict", "regression_metrics",
]
