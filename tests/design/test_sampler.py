"""Sampler, guidance, denoisers, save/load and a tiny end-to-end fit."""

from __future__ import annotations

import pytest
import torch

from bioseq.design import (
    BackboneDenoiser,
    DilatedCNN,
    DirichletPath,
    FlowModel,
    Guidance,
    LinearPath,
    MLPDenoiser,
    NoisyClassifier,
    distill,
    load_module,
    sample,
    save_module,
    teacher_pairs,
    train_flow,
)


def cnn_model(num_classes: int = 3, path=None, L: int = 12) -> FlowModel:
    torch.manual_seed(0)
    path = path or DirichletPath(K=4, t_max=8)
    names = ["EI", "IE", "N"][:num_classes]
    return FlowModel(path, DilatedCNN(K=4, d=16, num_classes=num_classes), seq_len=L, class_names=names)


def run(model, **kw):
    kw.setdefault("steps", 6)
    return sample(model, 5, generator=torch.Generator().manual_seed(7), return_probs=True, **kw)


def test_sampler_stays_on_the_simplex():
    for path in (DirichletPath(K=4, t_max=8), LinearPath(K=4)):
        model = cnn_model(path=path)
        seen = []
        ids, probs = run(model, cls=1, decode="sample", callback=lambda t, x, seen=seen: seen.append(x.clone()))
        assert ids.shape == (5, 12) and ids.dtype == torch.long and int(ids.min()) >= 0 and int(ids.max()) < 4
        assert len(seen) == 6
        for x in seen + [probs.double()]:
            assert bool((x >= 0).all())
            torch.testing.assert_close(x.sum(-1), torch.ones(x.shape[:2], dtype=torch.float64), atol=1e-5, rtol=0)


def test_guidance_scale_zero_is_unguided():
    model = cnn_model()
    clf = NoisyClassifier(K=4, d=8, num_labels=3)
    base = run(model, cls=2)
    for g in (Guidance(0.0), Guidance(0.0, mode="score"), Guidance(0.0, classifier=clf)):
        ids, probs = run(model, cls=2, guidance=g)
        assert torch.equal(ids, base[0]) and torch.equal(probs, base[1])
    guided = run(model, cls=2, guidance=Guidance(3.0))
    assert not torch.equal(guided[1], base[1])
    cg = run(model, cls=2, guidance=Guidance(3.0, classifier=clf))
    assert not torch.equal(cg[1], base[1])


def test_cfg_probability_and_score_forms_agree():
    # the Dirichlet score t (p/x - mean) is linear in p, so both forms give the same posterior
    model = cnn_model()
    a = run(model, cls=0, guidance=Guidance(2.0, mode="probability"))
    b = run(model, cls=0, guidance=Guidance(2.0, mode="score"))
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=0)


def test_guidance_errors():
    model = cnn_model()
    with pytest.raises(ValueError, match="class"):
        run(model, guidance=Guidance(1.0))
    with pytest.raises(ValueError):
        Guidance(-1.0)
    with pytest.raises(ValueError, match="unconditional"):
        run(cnn_model(num_classes=0), cls=1)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    models = [
        cnn_model(),
        FlowModel(LinearPath(K=4), MLPDenoiser(K=4, d=16, seq_len=12), seq_len=12, decode="sample"),
        FlowModel(DirichletPath(K=4), BackboneDenoiser(K=4, backbone="transformer-tiny", num_classes=2), seq_len=12, class_names=["a", "b"]),
    ]
    for i, m in enumerate(models):
        d = m.save_pretrained(tmp_path / f"m{i}")
        assert (d / "config.json").exists() and (d / "model.safetensors").exists()
        back = FlowModel.from_pretrained(d)
        assert back.config_dict() == m.config_dict()
        x = m.path.prior((2, 12), generator=torch.Generator().manual_seed(1))
        t = torch.tensor([0.5, 3.0], dtype=torch.float64)
        cls = torch.tensor([0, 1]) if m.num_classes else None
        m.eval()
        torch.testing.assert_close(back(x, t, cls), m(x, t, cls), rtol=0, atol=0)
    clf = NoisyClassifier(K=4, d=8, num_labels=3)
    save_module(clf, tmp_path / "clf", {"model_type": "noisy_classifier", "denoiser": clf.config})
    assert load_module(tmp_path / "clf").config == clf.config
    with pytest.raises(FileNotFoundError):
        FlowModel.from_pretrained(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a bioseq design model"):
        FlowModel.from_pretrained(tmp_path / "bad")


def test_backbone_denoiser_is_bidirectional():
    torch.manual_seed(0)
    den = BackboneDenoiser(K=4, backbone="transformer-tiny").eval()
    x = torch.distributions.Dirichlet(torch.ones(4)).sample((1, 10))
    tau = torch.zeros(1)
    out = den(x, tau)
    x2 = x.clone()
    x2[0, -1] = torch.tensor([1.0, 0, 0, 0])
    # changing the last position changes the first position's logits: it sees the whole sequence
    assert out.shape == (1, 10, 4) and not torch.allclose(den(x2, tau)[0, 0], out[0, 0])


def test_fit_learns_a_motif_and_distills():
    """A conditional model on two fixed sequences must produce each on request, and a one-step
    student distilled from it must too."""
    torch.manual_seed(0)
    seqs = torch.tensor([[0, 1, 2, 3, 0, 1], [3, 3, 2, 2, 1, 1]])
    ids, labels = seqs.repeat(64, 1), torch.arange(2).repeat(64)
    model = FlowModel(DirichletPath(K=4, t_max=8), MLPDenoiser(K=4, d=32, seq_len=6, n_layer=2, num_classes=2), seq_len=6, class_names=["x", "y"])
    train_flow(model, ids, labels, steps=150, batch_size=32, lr=6e-3, log_every=0)
    for c in (0, 1):
        out = sample(model, 8, cls=c, steps=10, generator=torch.Generator().manual_seed(c))
        assert (out == seqs[c]).all(-1).float().mean() >= 0.75
    classes = torch.arange(2).repeat(64)
    x0, targets = teacher_pairs(model, 128, classes, steps=10)
    student = FlowModel(model.path, MLPDenoiser(K=4, d=32, seq_len=6, n_layer=2, num_classes=2), seq_len=6, class_names=["x", "y"], kind="distilled")
    distill(student, x0, targets, classes, steps=150, batch_size=32, lr=6e-3, log_every=0)
    out = sample(student, 8, cls=1, steps=100, generator=torch.Generator().manual_seed(3))
    assert (out == seqs[1]).all(-1).float().mean() >= 0.75


def test_lr_schedule_ends_at_the_floor():
    """Warm-up, then cosine decay whose last planned step runs exactly at ``lr * min_lr_ratio``."""
    from bioseq.design import cosine_lr, fit

    lrs = [cosine_lr(i, 50, 1e-2, 1e-4, warmup=5) for i in range(50)]
    assert lrs[0] == pytest.approx(2e-3) and lrs[4] == pytest.approx(1e-2)  # linear warm-up
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-12, abs=0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # monotone decay
    assert cosine_lr(10, 50, 1e-2, 1e-4, warmup=5, progress=1.0) == pytest.approx(1e-4)  # time budget used up
    # the optimiser really runs at those rates: the last step of fit() uses the floor
    lin = torch.nn.Linear(3, 1)
    r = fit(lin, lambda idx: lin(torch.ones(len(idx), 3)).pow(2).mean(), n=8, steps=30, batch_size=4, lr=1e-2,
            seed=0, max_seconds=None, log_every=0, name="t", min_lr_ratio=0.05)
    assert r["steps"] == 30 and r["lrs"][-1] == pytest.approx(5e-4, rel=1e-12, abs=0) and max(r["lrs"]) == pytest.approx(1e-2)


def test_time_bounded_run_decays_by_the_clock(monkeypatch):
    """With ``max_seconds`` the decay follows elapsed time: a run stopped by the clock ends near the floor."""
    from bioseq.design import train as train_mod

    clock = iter(range(10_000))
    monkeypatch.setattr(train_mod.time, "time", lambda: float(next(clock)))  # 1 "second" per call
    lin = torch.nn.Linear(2, 1)
    r = train_mod.fit(lin, lambda idx: lin(torch.ones(len(idx), 2)).sum() * 0, n=4, steps=10_000, batch_size=2,
                      lr=1.0, seed=0, max_seconds=40, log_every=0, name="t", min_lr_ratio=0.01, warmup=0)
    assert r["steps"] < 100  # stopped by the clock, far before the planned steps
    assert r["lrs"][0] > 0.99 and r["lrs"][-1] < 0.05


def test_ema_is_warmed_up_and_replaces_the_weights():
    from bioseq.design import EMA

    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, decay=0.9)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(lin)
    torch.testing.assert_close(ema.shadow["weight"], torch.full((2, 2), 3.0))  # after 1 step: the weights
    assert ema.decay_at(1) == 0 and ema.decay_at(2) == pytest.approx(1 / 11) and ema.decay_at(10_000) == 0.9
    with torch.no_grad():
        lin.weight.fill_(5.0)
    ema.update(lin)  # d_2 = 1/11: 3 * 1/11 + 5 * 10/11
    torch.testing.assert_close(ema.shadow["weight"], torch.full((2, 2), (3 + 50) / 11))
    ema.copy_to(lin)
    torch.testing.assert_close(lin.weight.detach(), torch.full((2, 2), (3 + 50) / 11))
    # fit() leaves the averaged weights in the module, and ema_decay=None the last iterate
    for decay in (0.5, None):
        torch.manual_seed(0)
        lin = torch.nn.Linear(2, 1)
        seen = []

        def loss(idx, lin=lin, seen=seen):
            seen.append(lin.weight.detach().clone())
            return (lin(torch.ones(len(idx), 2)) - 1).pow(2).mean()

        from bioseq.design import fit

        fit(lin, loss, n=4, steps=5, batch_size=2, lr=0.1, seed=0, max_seconds=None, log_every=0, name="t", ema_decay=decay)
        if decay is None:
            assert not torch.equal(lin.weight.detach(), seen[-1])  # the last update was applied
        else:
            assert not torch.equal(lin.weight.detach(), seen[-1]) and not torch.equal(lin.weight.detach(), seen[0])


def test_cnn_cropped_taps_and_features():
    """Skipping the taps that only read padding changes nothing; the position embedding and the
    expanded-simplex features round-trip through the config."""
    from bioseq.design.denoisers import _conv_same, build_denoiser, expanded_simplex

    torch.manual_seed(0)
    for L in (1, 4, 60):
        for dl in (1, 4, 16, 64):
            conv = torch.nn.Conv1d(3, 5, 9, dilation=dl, padding=4 * dl)
            h = torch.randn(2, 3, L)
            torch.testing.assert_close(_conv_same(conv, h), conv(h), atol=1e-5, rtol=1e-5)
    den = DilatedCNN(K=4, d=8, num_classes=3, seq_len=12, features="expanded")
    assert build_denoiser(den.config).trunk.pos.shape == (8, 12)
    x = DirichletPath(K=4).prior((2, 12)).float()
    tau = torch.log1p(torch.tensor([0.0, 7.0]))
    e = expanded_simplex(x, tau)  # alpha = 1: w = 1; alpha = 8: w = 2/9
    torch.testing.assert_close(e[0], torch.cat([torch.zeros_like(x[0]), x[0]], -1))
    torch.testing.assert_close(e[1], torch.cat([x[1] * 7 / 9, x[1] * 2 / 9], -1))
    with pytest.raises(ValueError, match="features"):
        DilatedCNN(K=4, features="nope")


class _ExactDirichletPosterior(torch.nn.Module):
    """``p(x1 = i | x_t) ~ pi_i x_i^t`` for a one-position categorical target (as logits)."""

    def __init__(self, pi: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_pi", pi.double().log()[None])
        self.K, self.num_classes, self.config = pi.numel(), 0, {"arch": "exact"}
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, tau, cls=None):
        return self.log_pi + torch.expm1(tau.double())[:, None, None] * x.double().clamp_min(1e-300).log()


def test_heun_follows_the_flow_closer_than_euler_at_equal_calls():
    # with the exact posterior the only error left is the integrator's: at ~20 denoiser calls Euler's
    # first-order error shows as a KL far above the sampling floor, Heun's second-order one does not
    pi = torch.tensor([0.70, 0.20, 0.08, 0.02], dtype=torch.float64)
    model = FlowModel(DirichletPath(K=4, t_max=8), _ExactDirichletPosterior(pi), seq_len=1, alphabet="ACGT", decode="argmax")
    n = 40_000
    kl = {}
    for method, steps in (("euler", 19), ("heun", 10)):
        ids = sample(model, n, steps=steps, method=method, batch_size=n, generator=torch.Generator().manual_seed(3))
        q = torch.bincount(ids[:, 0], minlength=4).double() / n
        kl[method] = float((q * (q.clamp_min(1e-12) / pi).log()).sum())
    floor = 3 / (2 * n)
    assert kl["heun"] < 4 * floor < kl["euler"], (kl, floor)
    with pytest.raises(ValueError, match="method"):
        sample(model, 2, steps=2, method="rk4")
