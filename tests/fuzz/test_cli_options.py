"""Every numeric option is range-checked: one clear line naming the option, exit 2, nothing run."""

from __future__ import annotations

import pytest

BAD = [
    (["align", "IDX", "R", "--batch-size", "0"], "--batch-size"),
    (["align", "IDX", "R", "-t", "0"], "--threads"),
    (["align", "IDX", "R", "-k", "0"], "--top-k"),
    (["align", "IDX", "R", "--max-align", "0"], "--max-align"),
    (["align", "IDX", "R", "-T", "-1"], "--min-score"),
    (["align", "IDX", "R", "--min-len", "-5"], "--min-len"),
    (["align", "IDX", "R", "--max-insert", "0"], "--max-insert"),
    (["align", "IDX", "R", "--secondary", "-1"], "--secondary"),
    (["index", "R", "--fragment-len", "0"], "--fragment-len"),
    (["index", "R", "--stride", "0"], "--stride"),
    (["index", "R", "-k", "40"], "-k"),
    (["index", "R", "-w", "0"], "-w"),
    (["index", "R", "-t", "0"], "--threads"),
    (["index", "R", "--block", "0"], "--block"),
    (["index", "R", "--hnsw-above", "0"], "--hnsw-above"),
    (["design", "-m", "M", "-o", "O", "--guidance", "inf"], "--guidance"),
    (["design", "-m", "M", "-o", "O", "--guidance", "nan"], "--guidance"),
    (["design", "-m", "M", "-o", "O", "--steps", "0"], "--steps"),
    (["design", "-m", "M", "-o", "O", "-n", "0"], "--n"),
    (["design", "-m", "M", "-o", "O", "--batch-size", "0"], "--batch-size"),
    (["design", "-m", "M", "-o", "O", "--seed", "-1"], "--seed"),
    (["zarr", "build", "R", "-o", "O", "--level", "99"], "--level"),
    (["zarr", "build", "R", "-o", "O", "--compression", "zstd", "--level", "0"], "--level"),
    (["zarr", "build", "R", "-o", "O", "--chunk-size", "0"], "--chunk-size"),
    (["zarr", "build", "R", "-o", "O", "--chunks-per-shard", "0"], "--chunks-per-shard"),
    (["tokenize", "train-bpe", "R", "-o", "O", "--vocab-size", "0"], "--vocab-size"),
    (["tokenize", "train-bpe", "R", "-o", "O", "--chunk-length", "0"], "--chunk-length"),
    (["tokenize", "train-bpe", "R", "-o", "O", "--min-frequency", "0"], "--min-frequency"),
    (["tokenize", "train-bpe", "R", "-o", "O", "--max-token-length", "-1"], "--max-token-length"),
    (["align", "IDX", "R", "--batch-size", "ten"], "--batch-size"),
]


@pytest.mark.parametrize("args,option", BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_out_of_range_option(invoke, tmp_path, args, option):
    args = [str(tmp_path / a) if a in ("IDX", "R", "M", "O") else a for a in args]
    code, err, exc = invoke(args)
    assert exc is None
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"bioseq {args[0]}: error: ") and option in lines[0], err
    assert list(tmp_path.iterdir()) == []
