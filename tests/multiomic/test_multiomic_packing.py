import gzip

import numpy as np
import pytest
import torch

from bioseq.models import build_backbone
from bioseq.models.transformer import segment_positions
from bioseq.multiomic.corpus import DNAWindows, MixedCorpus, ProteinCrops, is_holdout, pack_greedy, read_fasta
from bioseq.multiomic.data import DataError
from bioseq.multiomic.tokens import get_joint_vocab, protein_token_mask

V = get_joint_vocab()


def test_pack_greedy_layout():
    seqs = [np.arange(3), np.arange(4), np.arange(2), np.arange(6), np.arange(9)]
    ids, seg = pack_greedy(seqs, max_len=8, pad_id=-1)
    assert seg.tolist() == [
        [1, 1, 1, 2, 2, 2, 2, 0],
        [1, 1, 2, 2, 2, 2, 2, 2],
        [1, 1, 1, 1, 1, 1, 1, 1],  # longer than a row: cut
    ]
    assert ids[0].tolist() == [0, 1, 2, 0, 1, 2, 3, -1]


def test_segment_positions():
    seg = torch.tensor([[1, 1, 1, 2, 2, 0, 0], [1, 2, 2, 2, 3, 3, 3]])
    assert segment_positions(seg).tolist() == [[0, 1, 2, 0, 1, 0, 1], [0, 0, 1, 2, 0, 1, 2]]


@pytest.mark.parametrize("bidirectional", [True, False])
def test_packed_attention_equals_separate_passes(bidirectional):
    torch.manual_seed(0)
    bb = build_backbone("transformer-tiny", vocab_size=V.vocab_size, pad_token_id=V.pad_token_id, d_model=32,
                        n_layer=2, n_head=2, bidirectional=bidirectional).eval()
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(7, V.vocab_size, (n,), generator=g).numpy() for n in (5, 9, 3, 7)]
    ids, seg = pack_greedy(seqs, max_len=16, pad_id=V.pad_token_id)
    with torch.no_grad():
        packed = bb(torch.from_numpy(ids), segment_ids=torch.from_numpy(seg))  # (R, 16, d)
        assert torch.isfinite(packed).all()
        for r in range(ids.shape[0]):
            for k in range(1, seg[r].max() + 1):
                sel = seg[r] == k
                alone = bb(torch.from_numpy(ids[r, sel])[None])[0]
                torch.testing.assert_close(packed[r, torch.from_numpy(sel)], alone, atol=1e-5, rtol=1e-5)


def test_read_fasta_and_errors(tmp_path):
    p = tmp_path / "x.fa.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(">a desc\nacgt\nNNAC\n>b\nMKV\n")
    assert list(read_fasta(p)) == [("a", "ACGTNNAC"), ("b", "MKV")]
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>a\nAC\n")
    with pytest.raises(DataError, match="bad.fa:1: sequence data before the first"):
        list(read_fasta(bad))


def test_mixed_corpus_is_deterministic_and_tagged(tmp_path, lambda_fasta):
    prot = tmp_path / "p.fa"
    prot.write_text(">p1\n" + "MKVLAAGRRKWT" * 30 + "\n>p2\nMSTNPKPQRKTKRNTNRRPQDVKFPGG\n")
    dna = DNAWindows([lambda_fasta], window=64)
    a = MixedCorpus(V, dna, ProteinCrops(prot, max_len=100), p_protein=0.5, seed=7)
    b = MixedCorpus(V, DNAWindows([lambda_fasta], window=64), ProteinCrops(prot, max_len=100), p_protein=0.5, seed=7)
    items = [a[i] for i in range(40)]
    assert all(np.array_equal(x, b[i]) for i, x in enumerate(items))
    tags = [int(x[1]) for x in items]
    assert set(tags) == {V.tag_ids["dna"], V.tag_ids["protein"]}
    for x in items:
        body = x[2:-1]
        assert x[0] == V.cls_token_id and x[-1] == V.sep_token_id
        if x[1] == V.tag_ids["dna"]:
            assert len(x) == 67 and not protein_token_mask(V, body).any()
        else:
            assert len(x) <= 103 and protein_token_mask(V, body).all()


def test_dna_windows_from_genome_store(tmp_path, lambda_fasta):
    from bioseq.alphabet import reverse_complement
    from bioseq.data import build_store

    store = build_store([lambda_fasta], tmp_path / "lambda.zarr")
    genome = next(iter(read_fasta(lambda_fasta)))[1]
    a, b = DNAWindows.from_store(store, window=50), DNAWindows.from_store(store, window=50)
    wins = [a.sample(np.random.default_rng([3, i])) for i in range(20)]
    assert wins == [b.sample(np.random.default_rng([3, i])) for i in range(20)]  # deterministic
    assert all(len(w) == 50 and (w in genome or reverse_complement(w) in genome) for w in wins)
    assert len(set(wins)) == 20


def test_protein_holdout_split_is_disjoint_stable_and_protein_only(tmp_path):
    prot = tmp_path / "p.fa"
    names = [f"sp|P{i:05d}|X_{i} some protein OS=Thing" for i in range(400)]
    prot.write_text("".join(f">{n}\n{'MKV' * (5 + i % 7)}W\n" for i, n in enumerate(names)))
    train = ProteinCrops(prot, holdout_frac=0.1)
    held = ProteinCrops(prot, holdout_frac=0.1, split="holdout")
    assert len(train.seqs) + len(held.seqs) == 400
    assert 20 <= len(held.seqs) <= 60  # about 10%, chosen by name
    expected = [is_holdout(n, 0.1) for n in names]
    assert sum(expected) == len(held.seqs)
    # the split depends on the names only: the same records are held out from a shuffled file
    shuffled = tmp_path / "q.fa"
    order = list(range(400))[::-1]
    shuffled.write_text("".join(f">{names[i]}\n{'MKV' * (5 + i % 7)}W\n" for i in order))
    assert sorted(ProteinCrops(shuffled, holdout_frac=0.1, split="holdout").seqs) == sorted(held.seqs)
    # a protein-only corpus needs no DNA; a mixed one does
    c = MixedCorpus(V, None, train, p_protein=1.0, seed=0)
    assert all(int(c[i][1]) == V.tag_ids["protein"] for i in range(20))
    with pytest.raises(ValueError, match="p_protein must be 1.0"):
        MixedCorpus(V, None, train, p_protein=0.5)
