"""The Dirichlet path maths: C exact against mpmath, field properties, marginal field, projection."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch

from bioseq.design.paths import (
    DirichletPath,
    LinearPath,
    build_path,
    dirichlet_c,
    marginal_field,
    simplex_project,
)


def c_reference(x: float, t: float, K: int, dps: int = 30) -> float:
    """C from its definition with mpmath: -d/da I_x(a, K-1) B(a, K-1) / (x^(a-1) (1-x)^(K-1)).
    Differentiates whichever of I_x(a, b) and 1 - I_x(a, b) = I_{1-x}(b, a) is small, so the
    reference itself never cancels."""
    with mp.workdps(dps):
        x, a, b = mp.mpf(x), mp.mpf(t) + 1, K - 1
        y = 1 - x
        if mp.betainc(a, b, 0, x, regularized=True) < 0.5:
            d = -mp.diff(lambda aa: mp.betainc(aa, b, 0, x, regularized=True), a)
        else:
            d = mp.diff(lambda aa: mp.betainc(b, aa, 0, y, regularized=True), a)
        return float(d * mp.beta(a, b) / (x ** (a - 1) * y**b))


XS = [1e-12, 1e-5, 0.003, 0.05, 0.3, 0.5, 0.8, 0.99, 0.999999, 1 - 1e-10]


@pytest.mark.parametrize("K", [2, 4, 20, 40, 80, 160])
def test_c_matches_mpmath(K):
    for t in [0.0, 0.01, 1.0, 8.0, 60.0, 320.0]:
        got = dirichlet_c(torch.tensor(XS, dtype=torch.float64), t, K)
        for x, g in zip(XS, got.tolist(), strict=True):
            ref = c_reference(x, t, K)
            assert math.isfinite(g) and g > 0
            assert abs(g - ref) <= 1e-8 * abs(ref), (K, t, x, g, ref)


def test_c_limits_and_per_element_times():
    K = 160
    a = 4.0 + 1
    H = sum(1 / (a + m) for m in range(K - 1))
    c = dirichlet_c(torch.tensor([0.0, 1.0], dtype=torch.float64), 4.0, K)
    assert c[0] == 0 and abs(c[1] - H / (K - 1)) < 1e-14
    # a time per element gives the same values as one time at a time
    x = torch.tensor([0.01, 0.2, 0.7], dtype=torch.float64)
    t = torch.tensor([0.0, 5.0, 100.0], dtype=torch.float64)
    together = dirichlet_c(x, t, 20)
    one_by_one = torch.stack([dirichlet_c(x[i : i + 1], float(t[i]), 20)[0] for i in range(3)])
    torch.testing.assert_close(together, one_by_one, rtol=1e-14, atol=0)
    with pytest.raises(ValueError):
        dirichlet_c(x, -1.0, 4)


def test_conditional_field_transports_the_dirichlet_path():
    """Integrating u_t(x | e_0) from Dir(1 + 1 e_0) at t=1 to t=3 must give Dir(1 + 3 e_0):
    the first coordinate's mean (t+1)/(t+K) and second moment follow the Beta(t+1, K-1)."""
    torch.manual_seed(0)
    K, n, t0, t1, steps = 4, 40000, 1.0, 3.0, 200
    path = DirichletPath(K=K)
    x = path.sample_xt(torch.zeros(n, 1, dtype=torch.long), torch.full((n,), t0, dtype=torch.float64))
    e0 = torch.nn.functional.one_hot(torch.zeros(n, 1, dtype=torch.long), K).double()
    dt = (t1 - t0) / steps
    for i in range(steps):
        t = t0 + (i + 0.5) * dt  # midpoint time
        c = dirichlet_c(x[..., 0], t, K)[..., None]
        x = x + dt * c * (e0 - x)
    a, b = t1 + 1, K - 1
    mean, m2 = a / (a + b), a * (a + 1) / ((a + b) * (a + b + 1))
    assert abs(float(x[..., 0].mean()) - mean) < 0.005
    assert abs(float((x[..., 0] ** 2).mean()) - m2) < 0.005
    # and the field was not trivially right: the start had a clearly different mean
    assert abs((t0 + 1) / (t0 + K) - mean) > 0.1


def test_vector_field_properties():
    torch.manual_seed(1)
    K = 6
    path = DirichletPath(K=K, t_max=10)
    x = path.prior((3, 5))  # (3, 5, K)
    c = dirichlet_c(x, 2.5, K)
    for i in range(K):
        ei = torch.zeros(K, dtype=torch.float64)
        ei[i] = 1
        u = c[..., i : i + 1] * (ei - x)  # u_t(x | e_i)
        torch.testing.assert_close(u.sum(-1), torch.zeros(3, 5, dtype=torch.float64), atol=1e-12, rtol=0)
        # points to e_i: moving along u reduces the distance to the vertex
        assert bool((((ei - x) * u).sum(-1) > 0).all())
        assert bool((u[..., i] > 0).all())


def test_marginal_field_equals_explicit_sum():
    torch.manual_seed(2)
    K = 5
    path = DirichletPath(K=K, t_max=10)
    x = path.prior((4, 3))
    p = torch.softmax(torch.randn(4, 3, K, dtype=torch.float64), -1)
    t = 1.7
    c = dirichlet_c(x, t, K)
    eye = torch.eye(K, dtype=torch.float64)
    cond = c[..., None, :] * (eye - x[..., :, None])  # (B, L, K, K): column i is u_t(x | e_i)
    explicit = (cond * p[..., None, :]).sum(-1)
    torch.testing.assert_close(marginal_field(p, x, c), explicit, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(path.velocity(x, p, t), explicit, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(explicit.sum(-1), torch.zeros(4, 3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_score_and_probs_are_inverse():
    torch.manual_seed(3)
    path = DirichletPath(K=7, t_max=20)
    x = path.prior((2, 3))
    p = torch.softmax(torch.randn(2, 3, 7, dtype=torch.float64), -1)
    s = path.score(x, p, 3.0)
    torch.testing.assert_close(s.sum(-1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(path.probs_from_score(x, s, 3.0), p, rtol=1e-10, atol=1e-12)


def test_simplex_project():
    torch.manual_seed(4)
    v = torch.randn(100, 9, dtype=torch.float64) * 2
    w = simplex_project(v)
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(100, dtype=torch.float64))
    torch.testing.assert_close(simplex_project(w), w)  # idempotent
    # optimality: no random simplex point is closer to v than its projection
    q = torch.distributions.Dirichlet(torch.ones(9, dtype=torch.float64)).sample((100,))
    assert bool(((v - w).norm(dim=-1) <= (v - q).norm(dim=-1) + 1e-12).all())


def test_path_samples_on_simplex():
    torch.manual_seed(5)
    x1 = torch.randint(0, 4, (8, 6))
    for path in (DirichletPath(K=4), LinearPath(K=4)):
        x = path.sample_xt(x1, path.sample_time(8).double())
        assert x.shape == (8, 6, 4) and bool((x >= 0).all())
        torch.testing.assert_close(x.sum(-1), torch.ones(8, 6, dtype=torch.float64))


def test_interpolated_c_matches_exact():
    """The tabulated C used by ``DirichletPath(c_table=n)`` agrees with the exact evaluation."""
    from bioseq.design.paths import dirichlet_c_interp

    for K in (4, 40, 160):
        for t in (0.0, 0.5, 7.0, 2.0 * K):
            x = DirichletPath(K=K).prior((500, 1), generator=torch.Generator().manual_seed(K)).reshape(-1)
            x = torch.cat([x, torch.tensor([1e-9, 0.5, 0.999, 1.0])])
            ex, ap = dirichlet_c(x, t, K), dirichlet_c_interp(x, t, K)
            keep = ex > 1e-10
            assert float(((ap - ex).abs() / ex)[keep].max()) < 1e-4
            assert float((ap - ex).abs().max()) < 1e-5
    p = DirichletPath(K=20, c_table=4096)
    assert build_path(p.to_dict()) == p
    x = p.prior((3, 5), generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(torch.randn(3, 5, 20, dtype=torch.float64), -1)
    torch.testing.assert_close(p.velocity(x, probs, 3.0), DirichletPath(K=20).velocity(x, probs, 3.0), atol=1e-6, rtol=1e-4)


def test_training_time_distributions():
    """Uniform on [0, t_max] by default; ``time_scale`` draws the paper's ``alpha - 1 = s Exp(1)``."""
    g = torch.Generator().manual_seed(0)
    t = DirichletPath(K=4, t_max=8.0).sample_time(20_000, generator=g)
    assert 0 <= float(t.min()) and float(t.max()) <= 8.0 and abs(float(t.mean()) - 4.0) < 0.1
    p = DirichletPath(K=4, t_max=8.0, time_scale=2.0)
    t = p.sample_time(20_000, generator=g)
    assert abs(float(t.mean()) - 2.0) < 0.1 and abs(float((t < 2.0).float().mean()) - (1 - math.exp(-1))) < 0.02
    assert build_path(p.to_dict()) == p


def test_log_evidence_is_the_dirichlet_likelihood_up_to_a_constant():
    # softmax over letters of t log x must equal the Bayes posterior under a uniform prior,
    # computed from the Dir(1 + t e_i) densities themselves
    K, t = 6, torch.tensor([0.0, 0.7, 3.0, 11.0], dtype=torch.float64)
    path = DirichletPath(K=K, t_max=12)
    x = path.prior((4, 5), generator=torch.Generator().manual_seed(0))  # (B, L, K)
    dens = torch.stack([torch.distributions.Dirichlet(1.0 + t[:, None, None] * torch.eye(K, dtype=torch.float64)[i])
                        .log_prob(x) for i in range(K)], -1)  # (B, L, K) log p(x | x1 = e_i)
    ev = path.log_evidence(x, t)
    assert torch.allclose(torch.softmax(ev, -1), torch.softmax(dens, -1), atol=1e-10)
    assert torch.equal(ev[0], torch.zeros_like(ev[0]))  # t = 0: x carries no evidence


def test_flow_model_evidence_adds_to_the_denoiser_and_survives_saving(tmp_path):
    from bioseq.design import DilatedCNN, FlowModel

    torch.manual_seed(0)
    path = DirichletPath(K=4, t_max=8)
    plain = FlowModel(path, DilatedCNN(K=4, d=8), seq_len=10)
    with_ev = FlowModel(path, DilatedCNN(K=4, d=8), seq_len=10, evidence=True)
    with_ev.load_state_dict(plain.state_dict())
    x, t = path.prior((3, 10), generator=torch.Generator().manual_seed(1)).float(), torch.tensor([0.5, 2.0, 7.0])
    diff = with_ev(x, t) - plain(x, t)
    assert torch.allclose(diff, path.log_evidence(x, t), atol=1e-5)
    with_ev.save_pretrained(tmp_path / "m")
    back = FlowModel.from_pretrained(tmp_path / "m")
    assert back.evidence and torch.allclose(back(x, t), with_ev(x, t), atol=1e-6)
    with pytest.raises(ValueError, match="evidence"):
        FlowModel(LinearPath(K=4), DilatedCNN(K=4, d=8), seq_len=10, evidence=True)


def test_time_grids_span_the_path_and_log_grid_starts_fine():
    lin = DirichletPath(K=4, t_max=8, grid="linear").time_grid(8)
    log = DirichletPath(K=4, t_max=8).time_grid(8)
    for g in (lin, log):
        assert g[0] == 0 and abs(float(g[-1]) - 8) < 1e-12 and bool((g.diff() > 0).all())
    assert torch.allclose(lin.diff(), torch.full((8,), 1.0, dtype=torch.float64))
    assert torch.allclose(torch.log1p(log).diff(), torch.full((8,), math.log(9) / 8, dtype=torch.float64))
    assert float(log.diff()[0]) < 0.5 < float(log.diff()[-1]) / 4  # short early steps, long late ones
    with pytest.raises(ValueError, match="grid"):
        DirichletPath(K=4, grid="cosine")


def test_simplex_projection_fast_path_agrees_with_the_sort():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(500, 6, generator=g, dtype=torch.float64) * 0.2 + 1 / 6  # some rows leave the simplex
    out = simplex_project(v)
    assert bool((out >= 0).all()) and torch.allclose(out.sum(-1), torch.ones(500, dtype=torch.float64))
    # the projection is the closest simplex point: no random simplex point is closer
    rnd = torch.distributions.Dirichlet(torch.ones(6, dtype=torch.float64)).sample((500,))
    assert bool(((out - v).norm(dim=-1) <= (rnd - v).norm(dim=-1) + 1e-12).all())
    inside = (v - (v.sum(-1, keepdim=True) - 1) / 6 > 0).all(-1)
    assert 0 < int(inside.sum()) < 500  # both paths exercised
