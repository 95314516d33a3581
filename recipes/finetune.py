"""Fine-tune a pretrained backbone to classify sequences: labelled FASTA or CSV/TSV in, a trained
classifier, test metrics and a confusion matrix out.

    python recipes/finetune.py --config recipes/configs/finetune/splice.yaml
    python recipes/finetune.py --config recipes/configs/finetune/splice.yaml model.pretrained=runs/demo/final train.max_steps=300
    python recipes/finetune.py --config recipes/configs/finetune/sanity.yaml        # seconds, from scratch

The script is flat on purpose: data, split, model, train, test, save, read top to bottom.

What it does, and why:
- Input: a CSV/TSV with a sequence and a label column, or a FASTA whose labels (and groups) come
  from the header: ``name`` (the record name), ``desc`` (the whole description), ``KEY`` (the value
  of ``KEY=value`` in the description, e.g. UniProt's ``OS``), or ``re:<pattern>`` (group 1).
- Duplicated sequences are kept once and sequences seen with two labels are dropped, before any
  split: a copy of a test sequence in training would inflate every metric.
- Splits: ``stratified`` (class proportions kept in train / validation / test) or ``grouped``
  (whole groups, e.g. a genus, go to one side, so test groups are unseen in training). Validation
  is carved from the training part the same way; the test part is touched once, at the end.
- Long sequences: with ``data.max_length`` each training example is a random crop of that many
  tokens (a fresh crop each epoch), validation uses centre crops, and the test set is predicted on
  sliding windows whose logits are averaged (``bioseq.finetune.predict_windows``).
- Budget: ``train.max_steps`` and ``train.time_limit_s`` are checked after every step; when the time
  limit ends a run before its schedule, the log and results.json say so.
- Outputs in ``output_dir``: ``model/`` (checkpoint + tokenizer.json + labels.json, loadable with
  ``SequenceClassifier.from_pretrained``), ``history.csv``, ``results.json`` (split sizes, test
  metrics, confusion matrix) and ``confusion_matrix.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a fresh clone without installing
    sys.path.insert(0, str(ROOT))

from bioseq.finetune import (  # noqa: E402
    CropDataset,
    FinetuneConfig,
    classification_metrics,
    encode_dataset,
    finetune,
    predict_windows,
)
from bioseq.utils.recipe_config import RecipeConfigError, load_recipe_config  # noqa: E402

log = logging.getLogger("bioseq.finetune")


class DataError(ValueError):
    """Input data the recipe cannot use (named file, row or record in the message)."""


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def header_field(spec: str, name: str, desc: str) -> str | None:
    """A label or group from a FASTA header (see the module docstring for ``spec``)."""
    if spec == "name":
        return name
    if spec == "desc":
        return desc
    if spec.startswith("re:"):
        m = re.search(spec[3:], f"{name} {desc}")
        return m.group(1) if m else None
    # KEY=value; the value runs to the next ' KEY=' (UniProt: 'OS=Homo sapiens OX=9606 ...')
    m = re.search(rf"(?:^|\s){re.escape(spec)}=(.*?)(?=\s+[A-Za-z]+=|$)", desc)
    return m.group(1).strip() if m else None


def read_labelled(dcfg: dict) -> tuple[list[str], list[str], list[str] | None]:
    """``(sequences, labels, groups or None)`` from ``data.path`` (CSV/TSV or FASTA)."""
    path = Path(dcfg["path"])
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist")
    fmt = dcfg.get("format") or "auto"
    if fmt == "auto":
        name = path.name.lower().removesuffix(".gz")
        fmt = "csv" if name.endswith(".csv") else "tsv" if name.endswith((".tsv", ".txt")) else "fasta"
    group_key = dcfg.get("group")
    seqs, labels, groups = [], [], []
    if fmt in ("csv", "tsv"):
        import io

        from bioseq.io.compression import open_binary

        seq_col, lab_col = dcfg.get("sequence_column", "sequence"), dcfg.get("label_column", "label")
        with io.TextIOWrapper(open_binary(path), encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t")
            missing = [c for c in (seq_col, lab_col, group_key) if c and c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: no column(s) {missing}; columns are {reader.fieldnames}")
            for row in reader:
                seqs.append(row[seq_col].strip())
                labels.append(row[lab_col].strip())
                groups.append(row[group_key].strip() if group_key else None)
    else:
        from bioseq.embeddings import read_fasta_text

        lab_spec = dcfg.get("label_field") or "name"
        # read_fasta_text yields names only; re-read descriptions from the headers alongside
        for (name, desc), (_, seq) in zip(_fasta_headers(path), read_fasta_text(path), strict=True):
            lab = header_field(lab_spec, name, desc)
            if lab is None:
                raise DataError(f"{path}: record {name!r}: no label '{lab_spec}' in its header")
            grp = header_field(group_key, name, desc) if group_key else None
            if group_key and grp is None:
                raise DataError(f"{path}: record {name!r}: no group '{group_key}' in its header")
            seqs.append(seq)
            labels.append(lab)
            groups.append(grp)
    if not seqs:
        raise DataError(f"{path}: no sequences")
    return seqs, labels, (groups if group_key else None)


def _fasta_headers(path: Path):
    import io

    from bioseq.io.compression import open_binary

    with io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(">"):
                parts = line[1:].strip().split(None, 1)
                yield (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def dedupe(seqs, labels, groups):
    """Keep the first copy of each sequence; drop sequences seen with two labels."""
    first, conflict = {}, set()
    for i, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        s = s.upper()
        if s in first and labels[first[s]] != y:
            conflict.add(s)
        first.setdefault(s, i)
    keep = sorted(i for s, i in first.items() if s not in conflict)
    return keep, len(seqs) - len(first), len(conflict)


def _fraction_split(idx: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator):
    """Split ``idx`` so that about ``fraction`` of every stratum goes to the second part."""
    a, b = [], []
    for s in np.unique(strata):
        members = rng.permutation(idx[strata == s])
        n = int(round(fraction * len(members)))
        n = min(max(n, 1 if len(members) > 1 and fraction > 0 else 0), len(members) - 1) if len(members) > 1 else 0
        b.extend(members[:n])
        a.extend(members[n:])
    return np.sort(np.asarray(a, int)), np.sort(np.asarray(b, int))


def _group_split(idx: np.ndarray, groups: np.ndarray, fraction: float, rng: np.random.Generator):
    """Whole groups to the second part until it holds about ``fraction`` of the sequences."""
    names = rng.permutation(np.unique(groups[idx]))
    if len(names) < 2:
        raise DataError(f"a grouped split needs at least 2 groups, got {len(names)}")
    target, taken, held = fraction * len(idx), [], 0
    for g in names[:-1]:  # at least one group stays on the first side
        if held >= target:
            break
        taken.append(g)
        held += int((groups[idx] == g).sum())
    second = np.isin(groups[idx], taken)
    return np.sort(idx[~second]), np.sort(idx[second])


def split(y: np.ndarray, groups: np.ndarray | None, dcfg: dict, seed: int):
    """``(train, val, test)`` index arrays (see the module docstring)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(y))
    kind = dcfg.get("split", "stratified")
    test_f, val_f = float(dcfg.get("test_fraction", 0.1)), float(dcfg.get("val_fraction", 0.1))
    if kind == "grouped":
        if groups is None:
            raise DataError("data.split=grouped needs data.group (a column, or a FASTA header field)")
        rest, test = _group_split(idx, groups, test_f, rng)
        train, val = _group_split(rest, groups, val_f / max(1e-9, 1 - test_f), rng)
    elif kind == "stratified":
        rest, test = _fraction_split(idx, y, test_f, rng)
        train, val = _fraction_split(rest, y[rest], val_f / max(1e-9, 1 - test_f), rng)
    else:
        raise DataError(f"data.split must be 'stratified' or 'grouped', got {kind!r}")
    return train, val, test


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------
def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no confusion-matrix plot")
        return False
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML recipe config (recipes/configs/finetune/*.yaml)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=200")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_recipe_config(args.config, args.overrides)
    except (RecipeConfigError, OSError) as e:
        raise SystemExit(f"finetune: {e}") from None
    dcfg, mcfg, tcfg = cfg["data"], cfg["model"], cfg["train"]
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    if tcfg.get("cpu_threads"):
        torch.set_num_threads(int(tcfg["cpu_threads"]))
    out = Path(cfg["output_dir"])
    t_start = time.time()

    # -- data: read, dedupe, encode labels, split --------------------------------------------------
    try:
        seqs, labels, groups = read_labelled(dcfg)
    except (DataError, ValueError) as e:
        raise SystemExit(f"finetune: {e}") from None
    keep, n_dup, n_conflict = dedupe(seqs, labels, groups)
    seqs = [seqs[i] for i in keep]
    classes = sorted(set(labels[i] for i in keep))
    y = np.array([classes.index(labels[i]) for i in keep])
    g = np.array([groups[i] for i in keep]) if groups else None
    if len(classes) < 2:
        raise SystemExit(f"finetune: {dcfg['path']}: only one label ({classes}); need at least two classes")
    try:
        tr, va, te = split(y, g, dcfg, seed)
    except DataError as e:
        raise SystemExit(f"finetune: {e}") from None
    log.info("%d sequences (%d duplicates and %d with conflicting labels removed), %d classes %s; "
             "train/val/test %d/%d/%d (%s split)", len(seqs), n_dup - n_conflict, n_conflict, len(classes),
             {c: int((y == i).sum()) for i, c in enumerate(classes)}, len(tr), len(va), len(te),
             dcfg.get("split", "stratified"))

    # -- tokenizer and model -----------------------------------------------------------------------
    from bioseq.models import SequenceClassifier, build_backbone, load_config
    from bioseq.tokenization import get_tokenizer

    pretrained = mcfg.get("pretrained")
    head = {"num_labels": len(classes), "pooling": mcfg.get("pooling", "mean"), "dropout": float(mcfg.get("dropout", 0.1))}
    max_length = dcfg.get("max_length")
    if head["pooling"] == "positions":
        if max_length is None:
            raise SystemExit("finetune: model.pooling=positions needs data.max_length (a fixed input length)")
        head.update(seq_len=int(max_length), position_dim=int(mcfg.get("position_dim", 8)))
    if pretrained:
        from bioseq.embeddings import EmbedError, load_model_and_tokenizer

        try:  # a checkpoint folder or a shipped model name; its tokenizer.json unless model.tokenizer is set
            lm, tok, _ = load_model_and_tokenizer(pretrained, mcfg.get("tokenizer"))
        except EmbedError as e:
            raise SystemExit(f"finetune: model.pretrained={pretrained}: {e}. Run `bash scripts/demo.sh` to make "
                             "runs/demo/final, or set model.pretrained=null to train from scratch") from None
        model = SequenceClassifier(lm.backbone, **head)  # pretrained backbone, fresh head
    else:
        tok = get_tokenizer(mcfg.get("tokenizer") or "dna-char")
        bcfg = load_config(mcfg["size"], vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                           bidirectional=bool(mcfg.get("bidirectional", True)), **(mcfg.get("overrides") or {}))
        model = SequenceClassifier(build_backbone(bcfg), **head)
    log.info("model: %s, %.2fM backbone parameters, pooling %s", pretrained or f"{mcfg['size']} from scratch",
             model.backbone.num_parameters() / 1e6, head["pooling"])

    # -- datasets ------------------------------------------------------------------------------------
    def subset(ix):
        return [seqs[i] for i in ix], y[ix]

    try:
        if max_length:
            train_ds = CropDataset(tok, *subset(tr), int(max_length), random_crop=True, seed=seed)
            val_ds = CropDataset(tok, *subset(va), int(max_length), random_crop=False)
        else:  # everything fits: pad to the longest
            train_ds, val_ds = encode_dataset(tok, *subset(tr)), encode_dataset(tok, *subset(va))
    except ValueError as e:
        raise SystemExit(f"finetune: {dcfg['path']}: {e}") from None

    # -- train ---------------------------------------------------------------------------------------
    ft = FinetuneConfig(
        lr=float(tcfg.get("lr", 1e-3)), head_lr=tcfg.get("head_lr"), layer_lr_decay=float(tcfg.get("layer_lr_decay", 1.0)),
        weight_decay=float(tcfg.get("weight_decay", 0.01)), epochs=int(tcfg.get("epochs", 10)),
        batch_size=int(tcfg.get("batch_size", 32)), warmup_ratio=float(tcfg.get("warmup_ratio", 0.1)),
        freeze_backbone=bool(tcfg.get("freeze_backbone", False)), freeze_layers=int(tcfg.get("freeze_layers", 0)),
        metric=tcfg.get("metric", "accuracy"), patience=tcfg.get("patience"), seed=seed,
        max_steps=tcfg.get("max_steps"), eval_every=tcfg.get("eval_every"), time_limit_s=tcfg.get("time_limit_s"),
        progress=bool(tcfg.get("progress", True)),
    )
    result = finetune(model, train_ds, val_ds, ft)
    if result.cut_short:
        log.warning("the time limit (train.time_limit_s=%s) ended training before its schedule finished: "
                    "the learning rate had not decayed; raise it or lower train.max_steps", ft.time_limit_s)
    log.info("trained %d steps; best validation %s %.4f at step %d", len(result.steps), ft.metric, result.best_metric,
             result.best_step)

    # -- test: whole sequences, sliding windows with averaged logits --------------------------------
    te_seqs, te_y = subset(te)
    if max_length:
        logits = predict_windows(model, tok, te_seqs, int(max_length), overlap=dcfg.get("eval_overlap"))
    else:
        from bioseq.finetune import predict

        logits = predict(model, encode_dataset(tok, te_seqs, te_y))
    metrics = classification_metrics(te_y, logits)
    cm = np.bincount(te_y * len(classes) + logits.argmax(1), minlength=len(classes) ** 2).reshape(len(classes), -1)
    log.info("test (%d sequences): %s", len(te), ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    # -- save ----------------------------------------------------------------------------------------
    from bioseq.io.atomic import atomic_dir

    out.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out / "model") as tmp:
        model.save_pretrained(tmp)
        tok.save(Path(tmp) / "tokenizer.json")
        (Path(tmp) / "labels.json").write_text(json.dumps(classes) + "\n")
    keys = sorted({k for row in result.history for k in row})
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(result.history)
    plotted = plot_confusion(cm, classes, out / "confusion_matrix.png",
                             f"{Path(dcfg['path']).name}: test accuracy {metrics['accuracy']:.3f}")
    results = {
        "config": cfg, "classes": classes, "n_sequences": len(seqs), "duplicates_removed": n_dup - n_conflict,
        "conflicting_removed": n_conflict, "split": {"kind": dcfg.get("split", "stratified"), "train": len(tr),
                                                     "val": len(va), "test": len(te)},
        "steps": len(result.steps), "best_step": result.best_step, "best_val": result.best_metric,
        "cut_short_by_time_limit": result.cut_short, "test": metrics, "confusion_matrix": cm.tolist(),
        "seconds": round(time.time() - t_start, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log.info("wrote %s (model/, history.csv, results.json%s)", out, ", confusion_matrix.png" if plotted else "")
    return results


if __name__ == "__main__":
    main()
