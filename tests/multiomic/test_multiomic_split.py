import numpy as np
import pytest

from bioseq.multiomic.split import (
    grouped_kfold,
    identity,
    identity_clusters,
    max_cross_identity,
    pairwise_identity,
    protein_disjoint_folds,
)

AA = "ACDEFGHIKLMNPQRSTVWY"


def _families(n_fam=8, per_fam=3, length=60, mut=4, seed=0):
    """Protein families: a random ancestor and variants with ``mut`` substitutions each, plus a
    fragment (a domain inside a longer protein counts as near-identical)."""
    rng = np.random.default_rng(seed)
    seqs, fam = [], []
    for f in range(n_fam):
        anc = rng.choice(list(AA), length)
        for _v in range(per_fam):
            s = anc.copy()
            s[rng.choice(length, mut, replace=False)] = rng.choice(list(AA), mut)
            seqs.append("".join(s))
            fam.append(f)
        seqs.append("".join(anc[10:40]))
        fam.append(f)
    return seqs, np.array(fam)


def test_identity_definition():
    a = "MKVLAAGRRKWT" * 3
    assert identity(a, a) == pytest.approx(1.0)
    assert identity(a, a[5:20]) == pytest.approx(1.0)  # contained fragment: identity over the shorter
    b = a[:10] + "P" + a[11:]
    assert identity(a, b) == pytest.approx(35 / 36, abs=1 / 36)
    M = pairwise_identity([a, b, "WWWWWWWWWW"])
    assert M.shape == (3, 3) and np.allclose(M, M.T) and np.allclose(np.diag(M), 1)
    assert M[0, 2] < 0.2


def test_clusters_recover_families():
    seqs, fam = _families()
    labels = identity_clusters(seqs, 0.4)
    # same family <=> same cluster (random 60-mers share far less than 40% identity)
    assert (labels[:, None] == labels[None, :]).tolist() == (fam[:, None] == fam[None, :]).tolist()


def test_grouped_kfold_keeps_groups_and_balances():
    groups = np.repeat(np.arange(20), np.arange(1, 21))
    folds = grouped_kfold(groups, 5, seed=3)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 20
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        grouped_kfold([0, 1, 2], 5)


def test_every_fold_is_protein_disjoint():
    seqs, _ = _families(n_fam=10)
    items = [s for s in seqs for _ in range(3)]  # several measurements per protein
    folds, _ = protein_disjoint_folds(items, n_splits=5, threshold=0.4, seed=1)
    for k in range(5):
        test = {s for s, f in zip(items, folds, strict=True) if f == k}
        train = {s for s, f in zip(items, folds, strict=True) if f != k}
        assert test and train and not test & train
        # brute force, independent of the clustering: no train/test pair at or above the threshold
        assert max(identity(a, b) for a in test for b in train) < 0.4
        assert max_cross_identity(train, test) < 0.4


@pytest.mark.slow
def test_pronab_folds_disjoint(shared):
    from bioseq.multiomic.data import load_pronab

    recs, _ = load_pronab(shared / "protein_dna/pronab/pronab_no_mutations.json")
    proteins = [r.protein for r in recs]
    folds, _ = protein_disjoint_folds(proteins, 5, 0.4)
    for k in range(5):
        test = [p for p, f in zip(proteins, folds, strict=True) if f == k]
        train = [p for p, f in zip(proteins, folds, strict=True) if f != k]
        assert max_cross_identity(train, test) < 0.4
