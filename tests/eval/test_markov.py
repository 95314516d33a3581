import math
from collections import Counter

import numpy as np
import pytest

from bioseq.alphabet import encode
from bioseq.eval import MarkovModel, best_markov


def brute_bits(train: str, window: str, k: int, alpha: float) -> tuple[float, int]:
    """Straightforward dictionary implementation of the same model (forward strand only)."""
    counts = [Counter() for _ in range(k + 1)]
    for j in range(k + 1):
        for i in range(j, len(train)):
            counts[j][train[i - j : i + 1]] += 1
    bits, n = 0.0, 0
    for i in range(1, len(window)):
        j = min(k, i)
        ctx = window[i - j : i]
        if "N" in window[i - j : i + 1]:
            continue
        tot = sum(counts[j][ctx + b] for b in "ACGT") + 4 * alpha
        bits -= math.log2((counts[j][ctx + window[i]] + alpha) / tot)
        n += 1
    return bits, n


@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_matches_brute_force(k):
    rng = np.random.default_rng(k)
    train = "".join(rng.choice(list("ACGT"), 3000, p=[0.4, 0.1, 0.1, 0.4]))
    window = "".join(rng.choice(list("ACGTN"), 200, p=[0.3, 0.2, 0.2, 0.28, 0.02]))
    m = MarkovModel(k, alpha=0.5).fit([encode(train)], both_strands=False)
    bits, n = m.window_bits(encode(window)[None])
    bb, bn = brute_bits(train, window, k, 0.5)
    assert n == bn
    assert bits == pytest.approx(bb, rel=1e-9)


def test_learns_structure_on_real_dna(lambda_fasta):
    import gzip

    seq = "".join(l.strip() for l in gzip.open(lambda_fasta, "rt") if not l.startswith(">"))
    codes = encode(seq)
    train, valid = codes[:40000], codes[40000:].copy()
    windows = valid[: (len(valid) // 1000) * 1000].reshape(-1, 1000)
    best, scores = best_markov([train], windows, orders=range(0, 7))
    # lambda is close to 2 bits at order 0 (GC ~50%); context helps a little, up to a point
    assert min(scores.values()) < 2.0
    assert min(scores.values()) < scores[0]
    assert best.k == min(scores, key=scores.get)


def test_fit_counts_once_at_the_top_order_and_matches_per_order_counting():
    """fit() marginalises the top order's counts; it must equal indexing every order separately,
    including the short contexts at sequence starts and after ambiguity codes (N, soft-masked)."""
    from bioseq.alphabet import reverse_complement_codes
    from bioseq.eval.markov import MarkovModel, _kmer_index

    rng = np.random.default_rng(7)
    codes = np.array([0, 1, 2, 3, 4, 0x81, 0x83], np.uint8)
    seqs = [rng.choice(codes, n, p=[.22, .22, .22, .22, .06, .03, .03]) for n in (0, 1, 5, 40, 300)]
    for k in (0, 1, 2, 5):
        ref = [np.zeros((4**j, 4)) for j in range(k + 1)]
        for s0 in seqs:
            for s in (s0, reverse_complement_codes(s0)):
                for j in range(k + 1):
                    idx, ok = _kmer_index(s, j)
                    ref[j] += np.bincount(idx[ok], minlength=4 ** (j + 1)).reshape(-1, 4)
        got = MarkovModel(k).fit(seqs).counts
        assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), k


def test_position_log_probs_follow_refits():
    from bioseq.eval.markov import MarkovModel

    rng = np.random.default_rng(1)
    m = MarkovModel(2).fit([rng.integers(0, 4, 500).astype(np.uint8)])
    w = rng.integers(0, 4, 30).astype(np.uint8)
    before = m.position_log2_probs(w)
    m.fit([np.zeros(500, np.uint8)])  # many more A's: the cached tables must not survive
    after = m.position_log2_probs(w)
    assert not np.allclose(before[1:], after[1:])
    assert -np.nansum(after) == pytest.approx(m.window_bits(w[None])[0])


def test_two_sided_context_model_matches_brute_force():
    from bioseq.eval.markov import ContextModel, best_context

    rng = np.random.default_rng(3)
    train = [rng.integers(0, 4, 3000).astype(np.uint8) for _ in range(3)]
    train[0][100] = 4  # an ambiguity code: the (2k+1)-mers around it are not counted
    k, alpha = 2, 0.5
    model = ContextModel(k, alpha).fit(train)
    # brute force: count every centred (2k+1)-mer of both strands, score with the widest context
    from bioseq.alphabet import reverse_complement_codes

    counts = {}
    for s in train:
        for st in (s, reverse_complement_codes(s)):
            for j in range(k + 1):
                for i in range(j, len(st) - j):
                    win = st[i - j : i + j + 1]
                    if (win < 4).all():
                        key = (j, tuple(win[:j]), tuple(win[j + 1 :]))
                        counts.setdefault(key, np.zeros(4))[win[j]] += 1
    windows = rng.integers(0, 4, (4, 40)).astype(np.uint8)
    windows[1, 7] = 4
    total, n = 0.0, 0
    for w in windows:
        for i in range(len(w)):
            j = min(k, i, len(w) - 1 - i)
            win = w[i - j : i + j + 1]
            if not (win < 4).all():
                continue
            c = counts.get((j, tuple(win[:j]), tuple(win[j + 1 :])), np.zeros(4)) + alpha
            total -= np.log2(c[w[i]] / c.sum())
            n += 1
    bits, count = model.window_bits(windows)
    assert count == n and abs(bits - total) < 1e-8 * max(1.0, total)
    best, scores = best_context(model, windows)
    assert set(scores) == {0, 1, 2} and scores[best] == min(scores.values())
