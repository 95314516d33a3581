"""Window sampling: purity, weighting, N skipping, strands, splits; the torch Dataset and sampler."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bioseq.alphabet import CODE_MASK, reverse_complement_codes
from bioseq.data import (
    DistributedWindowSampler,
    GenomeStore,
    GenomeWindowDataset,
    WindowSampler,
    build_store,
)
from bioseq.data.dataset import steps_per_epoch
from bioseq.io import write_fasta


def test_pure_function_of_seed_epoch_index(two_genome_store):
    s = WindowSampler(two_genome_store, 1000, seed=3)
    idx = np.arange(500)
    a = s.windows(2, idx)
    b = s.windows(2, idx[::-1])  # grouping and order do not matter
    assert np.array_equal(a.start, b.start[::-1]) and np.array_equal(a.contig, b.contig[::-1])
    parts = [s.windows(2, idx[i : i + 7]) for i in range(0, 500, 7)]
    assert np.array_equal(a.start, np.concatenate([p.start for p in parts]))
    again = WindowSampler(GenomeStore.open(two_genome_store), 1000, seed=3).windows(2, idx)
    assert np.array_equal(a.start, again.start) and np.array_equal(a.minus, again.minus)
    assert not np.array_equal(a.start, s.windows(3, idx).start)  # epochs differ
    assert not np.array_equal(a.start, WindowSampler(two_genome_store, 1000, seed=4).windows(2, idx).start)
    w = s.window_at(2, 17)
    assert w.start == a.start[17] and w.strand == ("-" if a.minus[17] else "+")
    assert w.contig == s.store.contigs[a.contig[17]].name


def test_weighting_bounds_and_strands(two_genome_store):
    L = 1000
    s = WindowSampler(two_genome_store, L, seed=0)
    w = s.windows(0, np.arange(40_000))
    lengths = s.store.lengths
    assert (w.start >= 0).all() and (w.start + L <= lengths[w.contig]).all()
    # lambda holds (48502 - 999) / total of the windows: ~1.0%; binomial sd ~0.05%
    expect = (48502 - L + 1) / s.total_windows
    got = (w.contig == 1).mean()
    assert abs(got - expect) < 5 * np.sqrt(expect * (1 - expect) / len(w.contig))
    assert 0.48 < w.minus.mean() < 0.52
    # starts spread over the whole E. coli chromosome
    e = w.start[w.contig == 0]
    assert e.min() < 50_000 and e.max() > 4_500_000
    assert not WindowSampler(two_genome_store, L, rc=False).windows(0, np.arange(100)).minus.any()


def test_minus_strand_windows_are_reverse_complements(two_genome_store):
    s = WindowSampler(two_genome_store, 300, seed=1)
    seq, w = s.fetch(0, np.arange(64))
    for j in range(64):
        plus = s.store.fetch(int(w.contig[j]), int(w.start[j]), int(w.start[j]) + 300)
        assert np.array_equal(seq[j], reverse_complement_codes(plus) if w.minus[j] else plus)


def test_mostly_n_windows_are_redrawn(tmp_path, lambda_codes):
    from bioseq.alphabet import decode

    lam = decode(lambda_codes)
    # a contig that is 80% N: windows land on the N block 4 times out of 5 before retries
    path = write_fasta(tmp_path / "gappy.fa", [("gappy", lam[:10000] + "N" * 40000), ("allN", "N" * 5000)])
    store = build_store([path], tmp_path / "g.zarr", chunk_size=8192)
    L = 1000
    s = WindowSampler(store, L, seed=0, holdout_contigs=["allN"], split="train", max_n_frac=0.5)
    seq, w = s.fetch(0, np.arange(2000))
    n_frac = ((seq & CODE_MASK) >= 4).mean(axis=1)
    assert n_frac.max() <= 0.5 and (w.contig == 0).all()
    assert (n_frac > 0).any()  # windows straddling the gap edge are allowed up to 50%
    lax = WindowSampler(store, L, seed=0, holdout_contigs=["allN"], split="train", max_n_frac=1.0)
    seq2, _ = lax.fetch(0, np.arange(2000))
    assert (((seq2 & CODE_MASK) >= 4).mean(axis=1) > 0.5).mean() > 0.6
    # retries are deterministic too
    assert np.array_equal(s.windows(0, np.arange(50)).start, s.windows(0, np.arange(50)).start)
    only_n = WindowSampler(store, L, split="valid", holdout_contigs=["allN"])
    with pytest.raises(RuntimeError, match="all N"):
        only_n.windows(0, [0])


def test_splits_by_genome_and_contig(two_genome_store):
    tr = WindowSampler(two_genome_store, 500, split="train", holdout_genomes=["lambda"])
    va = WindowSampler(two_genome_store, 500, split="valid", holdout_genomes=["lambda"])
    assert tr.genomes == ["ecoli"] and va.genomes == ["lambda"]
    assert (tr.windows(0, np.arange(3000)).contig == 0).all()
    assert (va.windows(0, np.arange(3000)).contig == 1).all()
    by_contig = WindowSampler(two_genome_store, 500, split="valid", holdout_contigs=["K-12-MG1655"])
    assert (by_contig.windows(0, np.arange(100)).contig == 0).all()
    with pytest.raises(ValueError, match="not in store"):
        WindowSampler(two_genome_store, 500, holdout_genomes=["yeast"])
    with pytest.raises(ValueError, match="needs holdout"):
        WindowSampler(two_genome_store, 500, split="valid")
    with pytest.raises(ValueError, match="at least 100000 bases"):
        WindowSampler(two_genome_store, 100_000, split="valid", holdout_genomes=["lambda"])


def _run(ds, workers, world=1, rank=0, epoch=0, start=0, batch=16):
    sampler = DistributedWindowSampler(ds, num_replicas=world, rank=rank)
    sampler.set_epoch(epoch, start)
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
    return list(loader)


def test_dataloader_same_batches_for_any_worker_count_even_after_fork(two_genome_store):
    ds = GenomeWindowDataset(two_genome_store, 256, seed=5, samples_per_epoch=160)
    ds.store.fetch(0, 0, 10)  # zarr's event loop is running in the parent before the fork
    a = _run(ds, 0)
    b = _run(ds, 2)
    assert len(a) == len(b) == 10
    for x, y in zip(a, b, strict=True):
        assert x["seq"].shape == (16, 256) and x["seq"].dtype == torch.uint8
        for k in x:
            assert torch.equal(x[k], y[k]), k
    # a sample is exactly its window
    s = ds.sampler
    seq, _ = s.fetch(0, [int(a[0]["index"][3])])
    assert np.array_equal(a[0]["seq"][3].numpy(), seq[0])


def test_ranks_are_disjoint_and_resume_is_exact(two_genome_store):
    ds = GenomeWindowDataset(two_genome_store, 128, seed=0, samples_per_epoch=250, split="train",
                             holdout_genomes=["lambda"])
    per_rank = [torch.cat([b["index"] for b in _run(ds, 0, world=3, rank=r, epoch=1)]) for r in range(3)]
    seen = torch.cat(per_rank)
    assert len(seen) == 3 * (250 // 3) and len(set(seen.tolist())) == len(seen)  # disjoint
    assert all(len(p) == 83 for p in per_rank)
    full = _run(ds, 0, world=3, rank=1, epoch=1, batch=8)
    resumed = _run(ds, 0, world=3, rank=1, epoch=1, start=4 * 8, batch=8)  # after 4 steps
    assert len(resumed) == len(full) - 4
    for x, y in zip(full[4:], resumed, strict=True):
        assert torch.equal(x["seq"], y["seq"]) and torch.equal(x["index"], y["index"])
    assert steps_per_epoch(250, 3, 8) == len(full)
    assert (torch.cat([b["epoch"] for b in full]) == 1).all()


def test_dataset_transform_and_plain_indices(two_genome_store):
    lut = np.array([7, 8, 9, 10, 11] + [11] * 251, dtype=np.int64)  # codes -> HyenaDNA char ids
    ds = GenomeWindowDataset(two_genome_store, 64, seed=2, samples_per_epoch=10, transform=lambda c: lut[c & CODE_MASK])
    ds.set_epoch(4)
    item = ds[3]
    assert item["seq"].dtype == torch.int64 and int(item["epoch"]) == 4
    assert torch.equal(item["seq"], ds[(4, 3)]["seq"])
    with pytest.raises(ValueError, match="rank 3 not in"):
        DistributedWindowSampler(ds, num_replicas=2, rank=3)


def test_batched_sampler_gives_the_same_batches_and_resumes(two_genome_store):
    ds = GenomeWindowDataset(two_genome_store, 200, seed=9, samples_per_epoch=100)
    per_sample = _run(ds, 0, world=2, rank=1, epoch=3, batch=8)
    sampler = DistributedWindowSampler(ds, num_replicas=2, rank=1, epoch=3, batch_size=8)
    assert len(sampler) == 7  # 50 samples: 6 full batches and one of 2
    batched = list(DataLoader(ds, batch_size=None, sampler=sampler))
    assert len(batched) == len(per_sample) == 7
    for x, y in zip(per_sample, batched, strict=True):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    sampler.set_epoch(3, start=16)
    resumed = list(DataLoader(ds, batch_size=None, sampler=sampler, num_workers=2, multiprocessing_context="fork"))
    assert all(torch.equal(x["seq"], y["seq"]) for x, y in zip(batched[2:], resumed, strict=True))
    assert len(DistributedWindowSampler(ds, num_replicas=2, rank=1, batch_size=8, drop_last=True)) == 6
    with pytest.raises(TypeError, match="batch_size=None"):
        list(DataLoader(ds, batch_size=4, sampler=sampler))
