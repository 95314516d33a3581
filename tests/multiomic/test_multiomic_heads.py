import numpy as np
import pytest
import torch

from bioseq.models import build_backbone, load_pretrained
from bioseq.multiomic.attribution import integrated_gradients
from bioseq.multiomic.heads import (
    BindingSiteClassifier,
    CrossAttentionPairRegressor,
    PairRegressor,
    SiameseDDG,
    ddg_consistency_loss,
)
from bioseq.multiomic.tokens import (
    TokenizerError,
    encode_pair,
    encode_single,
    get_joint_vocab,
    pad_batch,
    protein_token_mask,
)

V = get_joint_vocab()


def _backbone(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V.vocab_size, pad_token_id=V.pad_token_id, d_model=32, n_layer=1, n_head=2, bidirectional=True)
    cfg.update(kw)
    return build_backbone("transformer-tiny", **cfg)


def _pairs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    prots = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), rng.integers(8, 14))) for _ in range(n)]
    nas = ["".join(rng.choice(list("ACGT"), rng.integers(5, 9))) for _ in range(n)]
    enc = [encode_pair(V, p, n_) for p, n_ in zip(prots, nas, strict=True)]
    ids, mask = pad_batch([e[0] for e in enc], V.pad_token_id)
    res, _ = pad_batch([e[1] for e in enc], -1)
    return prots, nas, torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(res)


def test_vocab_and_pair_layout():
    ids, res = encode_pair(V, "ACDK", "ACGT", "RNA", na2="TT")
    assert ids[0] == V.cls_token_id and ids[1] == V.tag_ids["protein"]
    assert ids[6] == V.sep_token_id and ids[7] == V.tag_ids["rna"]
    # protein A/C and nucleotide A/C are different tokens
    assert ids[2] != ids[8] and ids[3] != ids[9]
    assert res.tolist() == [-1, -1, 0, 1, 2, 3] + [-1] * (len(ids) - 6)
    assert protein_token_mask(V, ids).sum() == 4
    assert protein_token_mask(V, torch.from_numpy(ids)).sum() == 4
    with pytest.raises(TokenizerError, match="invalid protein character '1'"):
        encode_pair(V, "MK1", "ACGT")


def _train(model, step_fn, steps=25, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = step_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_pair_regressor_shapes_training_and_roundtrip(tmp_path):
    _, _, ids, mask, _ = _pairs()
    y = torch.tensor([-9.0, -11.0, -8.0, -12.5, -10.0, -7.5])
    model = PairRegressor(_backbone(), hidden=32, dropout=0.0, target_mean=-10.0, target_std=1.5)
    out = model(ids, mask, labels=y)
    assert out.logits.shape == (6,) and out.embeddings.shape == (6, 32)
    losses = _train(model, lambda: model(ids, mask, labels=y).loss)
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    again = load_pretrained(tmp_path / "ckpt").eval()
    assert isinstance(again, PairRegressor) and again.std == 1.5
    torch.testing.assert_close(again(ids, mask).logits, model(ids, mask).logits)


def test_cross_attention_regressor():
    prots, nas, *_ = _pairs()
    p_ids, p_mask = (torch.from_numpy(a) for a in pad_batch([encode_single(V, p, "protein") for p in prots], V.pad_token_id))
    n_ids, n_mask = (torch.from_numpy(a) for a in pad_batch([encode_single(V, n, "dna") for n in nas], V.pad_token_id))
    y = torch.tensor([-9.0, -11.0, -8.0, -12.5, -10.0, -7.5])
    model = CrossAttentionPairRegressor(_backbone(), n_head=2, hidden=32, dropout=0.0, target_mean=-10.0, target_std=1.5)
    out = model(p_ids, p_mask, n_ids, n_mask, labels=y)
    assert out.logits.shape == (6,) and out.embeddings.shape == (6, 64)
    losses = _train(model, lambda: model(p_ids, p_mask, n_ids, n_mask, labels=y).loss)
    assert losses[-1] < 0.3 * losses[0]
    # padding the protein batch further must not change predictions (mask respected)
    model.eval()
    pad = torch.full((6, 5), V.pad_token_id)
    a = model(p_ids, p_mask, n_ids, n_mask).logits
    b = model(torch.cat([p_ids, pad], 1), torch.cat([p_mask, torch.zeros(6, 5, dtype=torch.bool)], 1), n_ids, n_mask).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_ddg_consistency_loss_known_value():
    wt_p, mut_p = torch.tensor([-10.0]), torch.tensor([-9.0])
    wt, mut = torch.tensor([-10.0]), torch.tensor([-8.0])
    # ddG error 1, dG errors 0 and 1 -> 1 + 0.5 * (0 + 1)
    assert ddg_consistency_loss(wt_p, mut_p, wt, mut, scale=1.0, dg_weight=0.5).item() == pytest.approx(1.5)
    assert ddg_consistency_loss(wt_p, mut_p, wt, mut, scale=2.0, dg_weight=0.5).item() == pytest.approx(1.5 / 4)


def test_siamese_ddg_trains_and_is_antisymmetric():
    _, _, ids, mask, _ = _pairs(6, seed=1)
    wt = {"input_ids": ids[:3], "attention_mask": mask[:3]}
    mut = {"input_ids": ids[3:], "attention_mask": mask[3:]}
    dg_wt, dg_mut = torch.tensor([-10.0, -9.0, -11.0]), torch.tensor([-9.5, -10.0, -8.0])
    model = SiameseDDG(PairRegressor(_backbone(), hidden=32, dropout=0.0, target_mean=-10.0, target_std=1.0))
    out = model(wt, mut, dg_wt, dg_mut)
    assert out.logits.shape == (3,) and out.embeddings.shape == (3, 2)
    model.eval()
    torch.testing.assert_close(model(mut, wt).logits, -model(wt, mut).logits, atol=1e-5, rtol=1e-5)
    losses = _train(model, lambda: model(wt, mut, dg_wt, dg_mut).loss)
    assert losses[-1] < 0.3 * losses[0]


def test_binding_site_classifier_only_scores_residues():
    _, _, ids, mask, res = _pairs(4, seed=2)
    g = torch.Generator().manual_seed(0)
    labels = torch.where(res >= 0, torch.randint(0, 2, res.shape, generator=g), torch.tensor(-100))
    model = BindingSiteClassifier(_backbone(), hidden=16, dropout=0.0, pos_weight=2.0)
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == ids.shape
    # labels on non-residue tokens would change the loss if they were not ignored
    assert model(ids, mask, labels=labels).loss.item() == pytest.approx(out.loss.item())
    losses = _train(model, lambda: model(ids, mask, labels=labels).loss, steps=40)
    assert losses[-1] < 0.5 * losses[0]


def test_integrated_gradients_completeness():
    _, _, ids, mask, _ = _pairs(2, seed=3)
    model = PairRegressor(_backbone(seed=4, n_layer=2), hidden=16, dropout=0.0).eval()
    x_ids, x_mask = ids[:1], mask[:1]
    fn = lambda i, m: model(i, m).logits  # noqa: E731
    attr, delta = integrated_gradients(fn, model.backbone.embedding, x_ids, x_mask, steps=64)
    assert attr.shape == (ids.shape[1],)
    # completeness: sum of attributions = f(x) - f(baseline)
    with torch.no_grad():
        fx = fn(x_ids, x_mask)
        h = model.backbone.embedding.register_forward_hook(lambda m_, i_, o: torch.zeros_like(o))
        f0 = fn(x_ids, x_mask)
        h.remove()
    gap = (fx - f0).item()
    assert attr.sum().item() == pytest.approx(gap, abs=1e-2 * max(1.0, abs(gap)))
    assert abs(delta.item()) < 1e-2 * max(1.0, abs(gap))
    # a [MASK] baseline on residues only gives zero attribution where input == baseline
    base = torch.where(protein_token_mask(V, x_ids), torch.tensor(V.mask_token_id), x_ids)
    attr2, _ = integrated_gradients(fn, model.backbone.embedding, x_ids, x_mask, baseline_ids=base, steps=16)
    assert torch.all(attr2[~protein_token_mask(V, x_ids)[0]] == 0)


def test_integrated_gradients_exact_on_linear_model():
    emb = torch.nn.Embedding(10, 4)
    w = torch.randn(4)
    fn = lambda i, m: (emb(i) @ w).sum(-1)  # noqa: E731  linear: IG is exact for any step count
    ids = torch.tensor([[1, 2, 3]])
    attr, delta = integrated_gradients(fn, emb, ids, steps=2)
    torch.testing.assert_close(attr, (emb.weight[[1, 2, 3]] @ w).detach())
    assert abs(delta.item()) < 1e-5


def test_kmer_composition_matches_counting():
    from itertools import product

    from bioseq.multiomic.baselines import kmer_composition

    seq = "ACGTTGCAANACG"
    for k in (1, 2, 3):
        kmers = ["".join(t) for t in product("ACGT", repeat=k)]
        windows = [seq[i : i + k] for i in range(len(seq) - k + 1) if "N" not in seq[i : i + k]]
        want = np.array([windows.count(m) for m in kmers], np.float32) / len(windows)
        np.testing.assert_allclose(kmer_composition(seq, "ACGT", k), want)
    assert kmer_composition("AC", "ACGT", 3).sum() == 0
