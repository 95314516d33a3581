"""Tokenizer encode throughput (MB/s of sequence) against the HF ``tokenizers`` library, same run.

    python benchmarks/tokenizers.py                       # E. coli K-12 bundled in data/
    python benchmarks/tokenizers.py --fasta other.fa.gz --window 1000 --repeats 5
    python benchmarks/tokenizers.py --out benchmarks/results/tokenizers.md

Inputs are identical for both sides and the ids are checked to be identical before anything is
timed, so the ratios compare the same work:

* char level: ``dna-char`` (numpy lookup table) vs two HF models holding the same 12-token
  vocabulary: ``WordLevel`` with a one-character ``Split`` pre-tokenizer, and ``BPE`` with no
  merges; on the whole genome as one string, and on a batch of fixed windows (HF ``encode_batch``
  runs on all cores; bioseq pads into one ``(B, L)`` array). ``encode_codes`` (genome-store codes
  -> ids) is shown too: it is what training uses.
* BPE: ``dna-bpe-4096`` (bioseq's wrapper: normalisation + HF BPE + padding) vs the same HF BPE
  object called directly on pre-normalised windows; the ratio is the wrapper's overhead.

Each figure is the best of ``--repeats`` runs (wall clock). MB = 10**6 bases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is called tokenizers.py: drop its folder from the path so `import tokenizers` finds HF's
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from bioseq import alphabet  # noqa: E402
from bioseq.io import read_fasta  # noqa: E402
from bioseq.tokenization import get_tokenizer  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def hf_char_tokenizers(vocab: list[str]) -> dict:
    """HF tokenizers with the same character vocabulary, two ways: ``WordLevel`` over
    one-character ``Split`` pre-tokens (the documented character recipe), and ``BPE`` with no
    merges and no pre-tokenizer (the fastest HF character model we found)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    v = {t: i for i, t in enumerate(vocab)}
    word = Tokenizer(models.WordLevel(v, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return {"HF WordLevel+Split": word, "HF BPE, no merges": Tokenizer(models.BPE(v, [], unk_token="[UNK]"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fasta", default=str(ROOT / "data/genomes/ecoli_K12_MG1655.fa.gz"))
    ap.add_argument("--window", type=int, default=1000, help="window length for the batch measurements")
    ap.add_argument("--n-windows", type=int, default=2000, help="windows per batch (consecutive, from the start)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="also write the results as markdown here")
    args = ap.parse_args()

    codes = np.concatenate([rec.codes for rec in read_fasta(args.fasta)])
    text = alphabet.decode(codes, keep_case=False)
    n = len(text)
    W, B = args.window, min(args.n_windows, n // args.window)
    windows = [text[i * W : (i + 1) * W] for i in range(B)]
    mb_genome, mb_windows = n / 1e6, B * W / 1e6
    rows: list[tuple[str, str, float, float, float]] = []  # (comparison, input, bioseq MB/s, HF MB/s, ratio)

    # ---------------------------------------------------------------- char level
    tok = get_tokenizer("dna-char")
    ours = tok.encode(text, add_special_tokens=False)
    batch = tok.encode_batch(windows, add_special_tokens=False)
    win_codes = codes[: B * W].reshape(B, W)
    t_str, _ = best_of(lambda: tok.encode(text, add_special_tokens=False), args.repeats)
    t_codes, _ = best_of(lambda: tok.encode_codes(codes), args.repeats)
    t_batch, _ = best_of(lambda: tok.encode_batch(windows, add_special_tokens=False), args.repeats)
    t_wcodes, _ = best_of(lambda: tok.encode_codes(win_codes), args.repeats)
    for ref_name, hf in hf_char_tokenizers(tok.vocab).items():
        assert np.array_equal(ours, np.asarray(hf.encode(text, add_special_tokens=False).ids)), f"ids differ from {ref_name}"
        assert np.array_equal(batch.input_ids, np.array([e.ids for e in hf.encode_batch(windows, add_special_tokens=False)])), f"batch ids differ from {ref_name}"
        t_hf, _ = best_of(lambda: hf.encode(text, add_special_tokens=False), max(1, args.repeats - 1))  # noqa: B023
        rows.append((f"char vs {ref_name}", f"whole genome ({n:,} bp), encode(str)", mb_genome / t_str, mb_genome / t_hf, t_hf / t_str))
        rows.append((f"char vs {ref_name}", "whole genome, encode_codes(uint8 codes)", mb_genome / t_codes, mb_genome / t_hf, t_hf / t_codes))
        t_hf, _ = best_of(lambda: hf.encode_batch(windows, add_special_tokens=False), args.repeats)  # noqa: B023
        rows.append((f"char vs {ref_name}", f"{B} x {W} bp windows, encode_batch", mb_windows / t_batch, mb_windows / t_hf, t_hf / t_batch))
        rows.append((f"char vs {ref_name}", f"{B} x {W} bp windows, encode_codes((B, L) codes)", mb_windows / t_wcodes, mb_windows / t_hf, t_hf / t_wcodes))

    # ---------------------------------------------------------------- BPE
    bpe = get_tokenizer("dna-bpe-4096")
    hf_bpe = bpe.hf
    ours = bpe.encode_batch(windows, add_special_tokens=False)
    ref = hf_bpe.encode_batch(windows, add_special_tokens=False)
    for row, mask, e in zip(ours.input_ids, ours.attention_mask, ref, strict=True):
        assert row[mask].tolist() == e.ids, "BPE ids differ between bioseq and HF"
    t_ours, _ = best_of(lambda: bpe.encode_batch(windows, add_special_tokens=False), args.repeats)
    t_hf, _ = best_of(lambda: hf_bpe.encode_batch(windows, add_special_tokens=False), args.repeats)
    rows.append(("BPE vs HF BPE (same model)", f"{B} x {W} bp windows, encode_batch", mb_windows / t_ours, mb_windows / t_hf, t_hf / t_ours))
    sub = windows[:200]
    t_ours, _ = best_of(lambda: [bpe.encode(w, add_special_tokens=False) for w in sub], args.repeats)
    t_hf, _ = best_of(lambda: [hf_bpe.encode(w, add_special_tokens=False) for w in sub], args.repeats)
    rows.append(("BPE vs HF BPE (same model)", f"200 x {W} bp windows, one encode() call each", len(sub) * W / 1e6 / t_ours, len(sub) * W / 1e6 / t_hf, t_hf / t_ours))
    tokens_per_window = float(ours.attention_mask.sum(1).mean())

    import tokenizers

    conditions = (
        f"genome: {Path(args.fasta).name} ({n:,} bp); windows: {B} x {W} bp; best of {args.repeats}; "
        f"numpy {np.__version__}, HF tokenizers {tokenizers.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), load average {os.getloadavg()[0]:.1f} at the end; "
        "HF batch calls use all cores, bioseq one"
    )
    header = "| comparison | input | bioseq MB/s | HF tokenizers MB/s | bioseq / HF |\n|---|---|---:|---:|---:|"
    lines = [f"| {s} | {what} | {a:,.1f} | {b:,.1f} | {r:.2f}x |" for s, what, a, b, r in rows]
    report = "\n".join([
        "# Tokenizer encode throughput: bioseq vs HF tokenizers", "", conditions, "",
        header, *lines, "",
        f"BPE (dna-bpe-4096) averages {tokens_per_window:.1f} tokens per {W} bp window ({W / tokens_per_window:.2f} bp/token).",
    ])
    print(report)
    print(json.dumps({"rows": [dict(zip(("comparison", "input", "bioseq_mb_s", "hf_mb_s", "ratio"), r, strict=True)) for r in rows]}))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(report + "\n")
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
