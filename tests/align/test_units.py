"""Unit checks of the aligner's parts against direct reference computations."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bioseq import alphabet
from bioseq.align.aligner import AlignParams, mapq, windows
from bioseq.align.index import IndexParams, tile
from bioseq.align.minimizers import SeedTable, build_table, clusters, kmer_hashes, minimizers
from bioseq.align.simulate import mutate_read
from tests.conftest import ROOT


def naive_minimizers(codes, k, w):
    h = kmer_hashes(codes, k)
    pos = set()
    for s in range(len(h) - w + 1):
        win = h[s : s + w]
        j = s + int(np.argmin(win))  # leftmost minimum
        if h[j] != np.uint64(0xFFFFFFFFFFFFFFFF):
            pos.add(j)
    return sorted(pos)


def test_kmer_hashes_match_packing(lambda_contig):
    c = lambda_contig.codes[:200]
    h = kmer_hashes(c, 5)
    # equal k-mers hash equal, different k-mers differ (the mix is invertible)
    kmers = [alphabet.decode(c[i : i + 5]) for i in range(len(c) - 4)]
    for i in range(len(kmers)):
        for j in range(i + 1, min(len(kmers), i + 40)):
            assert (h[i] == h[j]) == (kmers[i] == kmers[j])
    withn = c.copy()
    withn[10] = 4
    hn = kmer_hashes(withn, 5)
    assert np.all(hn[6:11] == np.uint64(0xFFFFFFFFFFFFFFFF)) and hn[5] == h[5] and hn[11] == h[11]


def test_minimizers_and_chunked_table_match_naive(lambda_contig):
    c = lambda_contig.codes[:3000].copy()
    c[500:520] = 4
    _, pos = minimizers(c, 11, 7)
    assert pos.tolist() == naive_minimizers(c, 11, 7)
    h, p = build_table(c, 11, 7, chunk=701)  # chunk borders must not add or lose minimizers
    assert sorted(p.tolist()) == naive_minimizers(c, 11, 7)
    assert np.all(np.diff(h.astype(np.float64)) >= 0)


def test_seed_diagonals_find_the_read(lambda_contig):
    h, p = build_table(lambda_contig.codes, 15, 10)
    table = SeedTable(h, p, 15, 10)
    read = mutate_read(lambda_contig.codes[20000:20150], np.random.default_rng(0), 0.02, 0.0)
    best_votes, best_diag = clusters(table.diagonals(read))[0]
    assert best_diag == 20000 and best_votes >= 5
    rc = alphabet.reverse_complement_codes(read)
    assert not clusters(table.diagonals(rc)) or clusters(table.diagonals(rc))[0][0] < best_votes


@pytest.mark.parametrize("length", [500, 1000, 48502])
def test_tiling_contains_every_window(length):
    p = IndexParams(fragment_len=256, stride=96)
    starts = tile(length, p.fragment_len, p.stride)
    assert starts[0] == 0 and starts[-1] == max(0, length - 256)
    for s in range(0, length - p.window + 1, 7):
        assert np.any((starts <= s) & (starts + 256 >= s + p.window)), s


def test_read_windows_cover_the_read():
    assert windows(150, 160) == [(0, 150)]
    assert windows(250, 160) == [(0, 160), (90, 160)]
    assert windows(320, 160) == [(0, 160), (160, 160)]


def test_mutation_rates():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, 200_000).astype(np.uint8)
    sub = mutate_read(ref, rng, 0.02, 0.0)
    assert sub.shape == ref.shape and abs((sub != ref).mean() - 0.02) < 0.002
    indel = mutate_read(ref, rng, 0.0, 0.002)
    assert indel.shape != ref.shape or not np.array_equal(indel, ref)


def test_mapq_is_bounded_and_monotone():
    p = AlignParams()
    assert mapq(150, 150, 150, p) == 0
    assert mapq(150, None, 150, p) == 60
    qs = [mapq(150, xs, 150, p) for xs in range(150, 100, -5)]
    assert qs == sorted(qs) and max(qs) <= 60 and min(qs) >= 0


def test_sanity_training_recipe(tmp_path):
    """The CI sanity config trains, saves a loadable encoder and reports retrieval metrics."""
    out = tmp_path / "run"
    subprocess.run([sys.executable, str(ROOT / "recipes" / "train_esa.py"), "--config",
                    str(ROOT / "recipes" / "configs" / "esa" / "sanity.yaml"), f"out={out}", "steps=6",
                    "eval_every=6", "eval_pairs=16", f"data_root={ROOT}"], check=True, cwd=ROOT,
                   capture_output=True, timeout=300)
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 6 and 0 <= m["heldout"]["top1"] <= 1
    from bioseq.align.encoder import load_encoder

    enc = load_encoder(out / "final")
    e = enc.embed([lambda_codes := np.array([0, 1, 2, 3] * 20, dtype=np.uint8)], 96)
    assert e.shape == (1, 32) and abs(np.linalg.norm(e) - 1) < 1e-5
    # fixed micro-batches: an embedding does not depend on what else is in the batch
    other = enc.embed([np.zeros(50, np.uint8), lambda_codes, np.ones(70, np.uint8)], 96)
    assert np.array_equal(other[1], e[0])


def test_shipped_encoder_retrieves_reads(lambda_contig):
    """The bundled encoder (trained without lambda) ranks a read's own fragment high."""
    from bioseq.align.encoder import DEFAULT_ENCODER, load_encoder

    import torch

    enc = load_encoder(DEFAULT_ENCODER)
    fl, st = int(enc.config.get("fragment_len", 256)), int(enc.config.get("stride", 96))  # its tiling
    rng = np.random.default_rng(5)
    codes = lambda_contig.codes[:12_000]  # 80-124 fragments keep this test to seconds
    starts = tile(len(codes), fl, st)
    frags = [codes[s : s + fl] for s in starts]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fe = enc.embed(frags, fl)
        reads, truth = [], []
        for _ in range(24):
            f = int(rng.integers(0, len(starts)))
            off = int(rng.integers(0, fl - 150 + 1))
            reads.append(mutate_read(frags[f][off : off + 150], rng, 0.01, 0.0))
            truth.append(starts[f] + off)
        re = enc.embed(reads, fl - st)
    finally:
        torch.set_num_threads(threads)
    ranks = []
    for q, pos in zip(re, truth):
        sims = fe @ q
        contains = (starts <= pos) & (starts + fl >= pos + 150)
        ranks.append(int((sims > sims[contains].max()).sum()))
    # random embeddings: rank ~ len(starts) / 2; the shipped CNN ranks the source first for 21 of
    # 24 of these reads and second for the rest
    assert np.mean(np.array(ranks) == 0) >= 0.75 and max(ranks) <= 3, ranks


@pytest.mark.slow
def test_distributed_index_equals_single_process(tmp_path, lambda_fasta):
    """`accelerate launch --num_processes 2 bioseq index` writes the same index as one process."""
    import os
    import shutil

    if not shutil.which("accelerate", path=os.path.dirname(sys.executable)):
        pytest.skip("accelerate launcher not installed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [str(lambda_fasta), "--block", "128", "--embedding", "neural"]  # the network's embeddings are split
    subprocess.run([sys.executable, "-m", "bioseq", "index", *base, "-o", str(tmp_path / "one.esa")],
                   check=True, env=env, capture_output=True, timeout=600)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--cpu",
                    "--num_processes", "2", "-m", "bioseq", "index", *base, "-o", str(tmp_path / "two.esa")],
                   check=True, env=env, capture_output=True, timeout=600)
    for name in ("embeddings.npy", "faiss.index", "fragments.npy", "minimizers.npz"):
        assert (tmp_path / "one.esa" / name).read_bytes() == (tmp_path / "two.esa" / name).read_bytes(), name


def _naive_hashes(codes, k):
    """k shifts of the 2-bit code, then the same mix as kmer_hashes (the definition it must keep)."""
    n = len(codes) - k + 1
    c = codes.astype(np.uint64) & np.uint64(3)
    x = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        x = (x << np.uint64(2)) | c[j : j + n]
    x = (x ^ (x >> np.uint64(29))) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(32)
    bad = np.array([np.any(codes[i : i + k] >= 4) for i in range(n)])
    x[bad] = np.uint64(0xFFFFFFFFFFFFFFFF)
    return x


@pytest.mark.parametrize("k", [8, 11, 15, 16, 21, 31])
def test_doubling_kmer_hashes_equal_direct_packing(lambda_contig, k):
    c = lambda_contig.codes[:700].copy()
    c[[3, 100, 101, 400]] = 4
    assert np.array_equal(kmer_hashes(c, k), _naive_hashes(c, k))


def _random_reads(rng, n):
    seqs = []
    for _ in range(n):
        s = rng.integers(0, 4, int(rng.integers(0, 220))).astype(np.uint8)
        if s.size > 40 and rng.random() < 0.3:
            s[10:40] = 2  # homopolymer: equal hashes inside one window (leftmost-minimum ties)
        if s.size and rng.random() < 0.3:
            s[rng.integers(0, s.size, 3)] = 4
        seqs.append(s)
    return seqs


def test_batch_minimizers_equal_one_read_at_a_time():
    from numpy.lib.stride_tricks import sliding_window_view

    from bioseq.align.minimizers import batch_minimizers, window_argmin

    rng = np.random.default_rng(3)
    h = rng.integers(0, 50, 3000).astype(np.uint64)  # many ties
    for w in (1, 2, 7, 10):
        ref = np.argmin(sliding_window_view(h, w), axis=1) + np.arange(h.size - w + 1)
        assert np.array_equal(window_argmin(h, w), ref)
    seqs = _random_reads(rng, 300)
    sid, hh, pos = batch_minimizers(seqs, 15, 10)
    for i, s in enumerate(seqs):
        a, b = minimizers(s, 15, 10)
        assert np.array_equal(hh[sid == i], a) and np.array_equal(pos[sid == i], b), i
        assert pos[sid == i].tolist() == naive_minimizers(s, 15, 10) or s.size < 24


def test_batch_diagonals_and_clusters_equal_per_read(lambda_contig):
    from bioseq.align.minimizers import batch_clusters

    h, p = build_table(lambda_contig.codes, 15, 10)
    table = SeedTable(h, p, 15, 10)
    rng = np.random.default_rng(4)
    reads = []
    for _ in range(60):
        s = int(rng.integers(0, lambda_contig.length - 200))
        r = mutate_read(lambda_contig.codes[s : s + int(rng.integers(30, 200))], rng, 0.03, 0.002)
        reads += [r, alphabet.reverse_complement_codes(r)]
    reads.append(np.zeros(0, np.uint8))
    bounds, diags = table.batch_diagonals(reads)
    cs, votes, med = batch_clusters(bounds, diags, top=3)
    for i, r in enumerate(reads):
        d = table.diagonals(r)
        assert np.array_equal(diags[bounds[i] : bounds[i + 1]], d)
        assert list(zip(votes[cs == i].tolist(), med[cs == i].tolist())) == clusters(d)[:3]


def test_gapless_fast_traceback_equals_parasail(lambda_index, lambda_contig):
    """The numpy traceback of gapless hits gives what the parasail traceback gives, and declines
    reads whose best alignment has a gap."""
    from bioseq.align.aligner import Aligner
    from bioseq.align.encoder import load_encoder
    from bioseq.align.index import load_index

    al = Aligner(load_index(lambda_index), load_encoder(), AlignParams(mode="seed"))
    rng = np.random.default_rng(8)
    reads, kinds = [], []
    for i in range(80):
        s = int(rng.integers(0, lambda_contig.length - 150))
        r = lambda_contig.codes[s : s + 150].copy()
        sub = rng.choice(150, int(rng.integers(0, 8)), replace=False)
        r[sub] = (r[sub] + rng.integers(1, 4, sub.size)) % 4  # substitutions, some near the ends
        if i % 4 == 3:
            r = np.concatenate([r[:70], r[73:]])  # a 3 bp deletion mid-read
        if i % 2:
            r = alphabet.reverse_complement_codes(r)
        reads.append(al.prepare(r)[1])
        kinds.append("gap" if i % 4 == 3 else "gapless")
    hits = al.align_batch(reads, n_trace=0)  # untraced
    firsts = [(rd, h[0]) for rd, h in zip(reads, hits)]
    fast = al._ungapped([rd[h.strand] for rd, h in firsts], [h for _, h in firsts])
    n_fast = 0
    for (rd, h), f, kind in zip(firsts, fast, kinds):
        slow = al.traceback(rd[h.strand], h)
        if kind == "gap":
            assert f is None and ("D" in slow.cigar or "I" in slow.cigar)
            continue
        if f is None:
            continue  # a gapped alignment can outscore a substitution-dense gapless one
        n_fast += 1
        assert (f.score, f.contig, f.pos, f.end, f.cigar, f.nm, f.md) == \
            (slow.score, slow.contig, slow.pos, slow.end, slow.cigar, slow.nm, slow.md)
    assert n_fast >= 35


def test_mapq_falls_with_the_relative_gap_and_repeat_family_size():
    p = AlignParams()
    one = mapq(140, 110, 150, p, others=[110])
    assert 20 <= one < 60
    assert mapq(140, 110, 150, p, others=[110, 90]) == one  # a distant copy changes nothing
    assert mapq(140, 133, 150, p, others=[133, 132, 131]) < mapq(140, 133, 150, p, others=[133])  # family
    assert mapq(70, 40, 150, p, others=[40]) < mapq(70, 40, 70, p, others=[40])  # 70 of 150 bp: low identity
    assert mapq(140, 135, 150, p, others=[135]) < 10  # one mismatch apart: a near-repeat, as bwa mem
    assert mapq(150, None, 150, p) == 60 and mapq(150, 0, 150, p, others=[]) == 60


def test_sketch_is_strand_symmetric_and_batch_independent():
    from bioseq.align.sketch import SketchEncoder

    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 4, n).astype(np.uint8) for n in (300, 150, 9, 40)]
    enc = SketchEncoder(k=10, dim=512)
    together = enc.embed(seqs)
    alone = np.concatenate([enc.embed([s]) for s in seqs])
    assert np.array_equal(together, alone)
    rc = enc.embed([alphabet.reverse_complement_codes(s) for s in seqs])
    assert np.allclose(rc, together, atol=1e-6)
    assert np.allclose(np.linalg.norm(together[[0, 1, 3]], axis=1), 1) and not together[2].any()  # 9 bp: no 10-mer
    # a read's sketch is closest to the fragment it came from
    assert together[1] @ enc.embed([seqs[0][50:200]])[0] < together[0] @ enc.embed([seqs[0][50:200]])[0]
