"""Labelled sequence tables for design models: ``sequence,label`` CSV -> token ids and labels."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from bioseq.alphabet import CODE_MASK, encode


def load_sequence_csv(
    path: str | Path, dedupe: bool = True, upper_labels: bool = True
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read a CSV with ``sequence`` and ``label`` columns of equal-length ``ACGT`` sequences.

    Args:
        path: the CSV file.
        dedupe: keep one copy of each distinct sequence, and none of a sequence listed with two
            different labels (so no sequence can sit in both a training and a test split).
        upper_labels: label names upper-cased (``ei`` -> ``EI``).

    Returns:
        ``(ids (N, L) long with A0 C1 G2 T3, labels (N,) long, class_names sorted)``.

    Raises:
        ValueError naming the file and record on a missing column, a non-ACGT base or a length
        that differs from the first record's.
    """
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"sequence", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: need columns 'sequence' and 'label', found {reader.fieldnames}")
        rows = [(r["sequence"].strip(), r["label"].strip()) for r in reader]
    if not rows:
        raise ValueError(f"{path}: no records")
    L = len(rows[0][0])
    codes = []
    for i, (seq, _) in enumerate(rows, start=2):  # line 1 is the header
        if len(seq) != L:
            raise ValueError(f"{path}:{i}: sequence length {len(seq)}, expected {L} like the first record")
        try:
            c = encode(seq) & CODE_MASK
        except ValueError as e:
            raise ValueError(f"{path}:{i}: {e}") from None
        if (c > 3).any():
            raise ValueError(f"{path}:{i}: base {seq[int(np.argmax(c > 3))]!r} is not A, C, G or T")
        codes.append(c)
    seqs = [s for s, _ in rows]
    labels = [lab.upper() if upper_labels else lab for _, lab in rows]
    keep = np.ones(len(rows), dtype=bool)
    if dedupe:
        seen: dict[str, set[str]] = {}
        for s, lab in zip(seqs, labels, strict=True):
            seen.setdefault(s, set()).add(lab)
        first: set[str] = set()
        for i, s in enumerate(seqs):
            keep[i] = len(seen[s]) == 1 and s not in first
            first.add(s)
    names = sorted(set(labels))
    ids = torch.from_numpy(np.stack(codes)[keep].astype(np.int64))
    lab = torch.tensor([names.index(x) for x, k in zip(labels, keep, strict=True) if k])
    return ids, lab, names


def stratified_split(labels: torch.Tensor, fractions: tuple[float, ...], seed: int = 0) -> list[torch.Tensor]:
    """Index sets with the given fractions of every class (the last takes the remainder)."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in fractions]
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().squeeze(-1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for k, f in enumerate(fractions):
            end = len(idx) if k == len(fractions) - 1 else start + round(f * len(idx))
            parts[k].append(idx[start:end])
            start = end
    return [torch.cat(p).sort().values for p in parts]
