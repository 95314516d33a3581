"""H-Net: routing, chunking, smoothing, ratio loss, causality, padding, training and persistence."""

import pytest
import torch

from bioseq.models import CausalLM, ConfigError, build_backbone, load_config, load_pretrained
from bioseq.models.hnet import downsample, linear_scan, ste_ones


def busy_router(bb, seed=0):
    """Random router projections: boundaries at roughly half the positions, so the tests exercise
    many chunks of varying counts (at init the identity router chooses very few)."""
    g = torch.Generator().manual_seed(seed)
    stage = bb.stage
    while hasattr(stage, "router"):
        for lin in (stage.router.q_proj, stage.router.k_proj):
            with torch.no_grad():
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
        stage = stage.main
    return bb


def test_linear_scan_equals_step_by_step_recurrence():
    g = torch.Generator().manual_seed(0)
    for M, block in ((5, 8), (64, 8), (300, 8), (1000, 64)):
        u = torch.randn(2, M, 3, generator=g, dtype=torch.float64)
        log_a = -3 * torch.rand(2, M, generator=g, dtype=torch.float64)
        y = torch.zeros(2, 3, dtype=torch.float64)
        ref = []
        for c in range(M):
            y = log_a[:, c, None].exp() * y + u[:, c]
            ref.append(y)
        assert torch.allclose(linear_scan(u, log_a, block), torch.stack(ref, 1), atol=1e-10), M


def test_downsample_packs_boundaries_left_and_pads():
    h = torch.arange(2 * 6, dtype=torch.float32).view(2, 6, 1)
    b = torch.tensor([[1, 0, 1, 1, 0, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    chunks, mask, pos = downsample(h, b)
    assert pos.tolist() == [[0, 2, 3], [0, 5, 0]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert chunks[..., 0].tolist() == [[0.0, 2.0, 3.0], [6.0, 11.0, 6.0]]


def test_ste_is_one_forward_and_identity_backward():
    c = torch.tensor([0.2, 0.7, 0.51], requires_grad=True)
    y = ste_ones(c)
    assert torch.equal(y, torch.ones(3))
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(c.grad, torch.tensor([1.0, 2.0, 3.0]))


def test_first_boundary_probability_is_one_even_with_left_padding():
    torch.manual_seed(0)
    bb = busy_router(build_backbone("hnet-1stage-tiny", vocab_size=12)).eval()
    x = torch.randint(7, 11, (2, 40))
    bb(x)
    r = bb.routing[0]
    assert torch.equal(r.p[:, 0], torch.ones(2)) and r.b[:, 0].all()
    assert ((r.p > 0) & (r.p < 1)).float().mean() > 0.9  # elsewhere a real probability
    left = torch.cat([torch.full((2, 5), 4), x], 1)
    bb(left, attention_mask=left != 4)
    r = bb.routing[0]
    assert torch.equal(r.p[:, 5], torch.ones(2)) and not r.b[:, :5].any()


@pytest.mark.parametrize("name", ["hnet-1stage-tiny", "hnet-2stage-tiny"])
def test_changing_a_future_token_never_changes_earlier_outputs(name):
    torch.manual_seed(0)
    bb = busy_router(build_backbone(name, vocab_size=12)).eval()
    x = torch.randint(7, 11, (2, 96))
    h1 = bb(x)
    assert 0.2 < bb.boundary_fraction[0] < 0.8  # many chunks, not a trivial hierarchy
    for pos in (10, 50, 95):
        y = x.clone()
        y[:, pos] = 11
        h2 = bb(y)
        assert torch.allclose(h1[:, :pos], h2[:, :pos], atol=1e-5), pos
        assert not torch.allclose(h1[:, pos:], h2[:, pos:], atol=1e-4)


def test_batch_with_varying_chunk_counts_matches_single_sequences():
    torch.manual_seed(0)
    bb = busy_router(build_backbone("hnet-2stage-tiny", vocab_size=12)).eval()
    a, b = torch.randint(7, 11, (1, 64)), torch.randint(7, 11, (1, 50))
    batch = torch.cat([a, torch.cat([b, torch.full((1, 14), 4)], 1)])
    h = bb(batch, attention_mask=batch != 4)
    counts = bb.routing[0].b.sum(1)
    assert counts[0] != counts[1]
    assert torch.allclose(h[0, :64], bb(a)[0], atol=1e-5)
    assert torch.allclose(h[1, :50], bb(b)[0], atol=1e-5)


def test_router_gets_gradient_from_the_language_model_loss_alone():
    torch.manual_seed(0)
    model = CausalLM(build_backbone("hnet-1stage-tiny", vocab_size=12, ratio_loss_weight=0.0))
    busy_router(model.backbone)
    x = torch.randint(7, 11, (2, 64))
    out = model(x, labels=x)
    assert out.aux_loss.item() == 0.0
    out.loss.backward()
    for lin in (model.backbone.stage.router.q_proj, model.backbone.stage.router.k_proj):
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def _train_fraction(target: float, train_clm) -> float:
    torch.manual_seed(0)
    bb = build_backbone(
        "hnet-1stage-tiny", vocab_size=12, d_model=32, stage_d_model=[32, 48],
        main={"arch": "transformer", "n_layer": 1, "n_head": 2}, target_ratio=[target], ratio_loss_weight=1.0,
    )
    fractions = []
    train_clm(CausalLM(bb), steps=30, batch=4, length=96, lr=3e-3,
              on_step=lambda m: fractions.append(float(bb.boundary_fraction[0])))
    return sum(fractions[-10:]) / 10  # single batches fluctuate; average the last steps


def test_compression_follows_the_ratio_loss_target(train_clm):
    f2, f6 = _train_fraction(2.0, train_clm), _train_fraction(6.0, train_clm)
    assert abs(f2 - 1 / 2) < 0.12, f2  # at init about 1/100
    assert abs(f6 - 1 / 6) < 0.12, f6
    assert f2 - f6 > 0.2


@pytest.mark.parametrize("name", ["hnet-1stage-tiny", "hnet-2stage-tiny"])
def test_trains_on_lambda_genome_with_falling_loss(name, train_clm):
    torch.manual_seed(0)
    model = CausalLM(build_backbone(name, vocab_size=12))
    losses = train_clm(model, steps=20, batch=4, length=192, seed=1)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] > 2.0
    assert sum(losses[-5:]) / 5 < 0.65 * losses[0]  # from ln 12 towards ln 4 = 1.386


@pytest.mark.parametrize("name", ["hnet-1stage-tiny", "hnet-2stage-tiny"])
def test_save_load_roundtrip_bit_exact(tmp_path, name):
    torch.manual_seed(0)
    model = CausalLM(busy_router(build_backbone(name, vocab_size=12))).eval()
    model.save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    assert again.config == model.config
    x = torch.randint(7, 11, (2, 64))
    a, b = model(x, labels=x), again(x, labels=x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)


def test_inner_networks_can_be_any_backbone_with_forward_hidden():
    torch.manual_seed(0)
    bb = build_backbone(
        "hnet-1stage-tiny", vocab_size=12,
        encoders=[{"arch": "transformer", "n_layer": 1, "n_head": 2}],
        main={"arch": "hyena", "n_layer": 1},
        decoders=[{"arch": "transformer", "n_layer": 1, "n_head": 2}],
    )
    busy_router(bb).eval()
    assert type(bb.stage.encoder).__name__ == "TransformerBackbone" and bb.stage.encoder.embedding is None
    assert bb.config.n_layer == 3
    x = torch.randint(7, 11, (1, 48))
    y = x.clone()
    y[0, 30] = 11
    assert torch.allclose(bb(x)[:, :30], bb(y)[:, :30], atol=1e-5)


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="must not set"):
        load_config("hnet-1stage-tiny", main={"arch": "transformer", "d_model": 64})
    with pytest.raises(ConfigError, match="target_ratio"):
        load_config("hnet-1stage-tiny", target_ratio=[1.0])
    with pytest.raises(ConfigError, match="stage_d_model"):
        load_config("hnet-1stage-tiny", stage_d_model=[128])
    with pytest.raises(ConfigError, match="inner network.*causal"):
        load_config("hnet-1stage-tiny", bidirectional=True)
    with pytest.raises(ConfigError, match="unknown backbone"):
        load_config("hnet-1stage-tiny", main={"arch": "nope"})
