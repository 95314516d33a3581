"""HyenaDNA: the FFT long convolution, causality, padding, real-DNA training and persistence."""

import pytest
import torch

from bioseq.models import CausalLM, ConfigError, build_backbone, load_config, load_pretrained
from bioseq.models.hyena import HyenaOperator, ShortConv, fft_causal_conv


def direct_causal_conv(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """y[b, c, t] = sum_{s <= t} k[c, s] * v[b, c, t - s], written out term by term."""
    B, C, L = v.shape
    y = torch.zeros(B, C, L, dtype=torch.float64)
    for t in range(L):
        for s in range(t + 1):
            y[:, :, t] += k[:, s].double() * v[:, :, t - s].double()
    return y


def test_fft_long_conv_equals_direct_causal_convolution():
    g = torch.Generator().manual_seed(0)
    for L in (1, 7, 37, 64):
        v, k = torch.randn(2, 3, L, generator=g), torch.randn(3, L, generator=g)
        assert torch.allclose(fft_causal_conv(v, k).double(), direct_causal_conv(v, k), atol=1e-4), L


def test_short_conv_equals_depthwise_conv1d():
    torch.manual_seed(0)
    sc = ShortConv(6, 3)
    x = torch.randn(2, 6, 20)
    ref = torch.nn.functional.conv1d(x, sc.weight[:, None], sc.bias, padding=2, groups=6)[..., :20]
    assert torch.allclose(sc(x), ref, atol=1e-6)


def test_operator_matches_reference_formula_with_direct_convolution():
    torch.manual_seed(0)
    cfg = load_config("hyena-tiny", d_model=16, l_max=64)
    op = HyenaOperator(cfg)
    u = torch.randn(2, 30, 16)
    z = op.short_conv(op.in_proj(u).transpose(1, 2))
    x0, x1, v = z.split(16, dim=1)
    k = op.filter(30, u.device)  # (16, 30)
    w = v * x1
    y = direct_causal_conv(w, k).float() + op.D[:, None] * w
    ref = op.out_proj((y * x0).transpose(1, 2))
    assert torch.allclose(op(u), ref, atol=1e-5)


def test_filters_depend_on_lag_not_on_sequence_length():
    op = HyenaOperator(load_config("hyena-tiny", d_model=8))
    assert torch.allclose(op.filter(100, "cpu")[:, :40], op.filter(40, "cpu"), atol=1e-6)


def test_changing_a_future_token_never_changes_earlier_outputs():
    torch.manual_seed(0)
    bb = build_backbone("hyena-tiny", vocab_size=12).eval()
    x = torch.randint(7, 11, (2, 300))
    for pos in (0, 150, 299):
        y = x.clone()
        y[:, pos] = 11 if x[0, pos] != 11 else 7
        h1, h2 = bb(x), bb(y)
        assert torch.equal(h1[:, :pos], h2[:, :pos]) or torch.allclose(h1[:, :pos], h2[:, :pos], atol=1e-5)
        assert not torch.allclose(h1[:, pos:], h2[:, pos:], atol=1e-4)


def test_left_and_right_padding_do_not_change_real_outputs():
    torch.manual_seed(0)
    bb = build_backbone("hyena-tiny", vocab_size=12).eval()
    x = torch.randint(7, 11, (1, 40))
    pad = torch.full((1, 9), 4)
    ref = bb(x)
    right = torch.cat([x, pad], 1)
    left = torch.cat([pad, x], 1)
    assert torch.allclose(bb(right, attention_mask=right != 4)[:, :40], ref, atol=1e-5)
    assert torch.allclose(bb(left, attention_mask=left != 4)[:, 9:], ref, atol=1e-5)


def test_config_validation():
    with pytest.raises(ConfigError, match="causal"):
        load_config("hyena-tiny", bidirectional=True)
    with pytest.raises(ConfigError, match="filter_emb_dim"):
        load_config("hyena-tiny", filter_emb_dim=4)
    with pytest.raises(ConfigError, match="order"):
        load_config("hyena-tiny", order=1)


def test_named_sizes_match_hyenadna():
    assert (load_config("hyena-tiny").d_model, load_config("hyena-tiny").n_layer) == (128, 2)
    assert (load_config("hyena-small").d_model, load_config("hyena-small").n_layer) == (256, 4)
    assert (load_config("hyena-medium").d_model, load_config("hyena-medium").n_layer) == (256, 8)


def test_order_3_operator_runs_and_stays_causal():
    torch.manual_seed(0)
    bb = build_backbone("hyena-tiny", vocab_size=12, order=3, d_model=32).eval()
    x = torch.randint(7, 11, (1, 50))
    y = x.clone()
    y[0, 30] = 11
    assert torch.allclose(bb(x)[:, :30], bb(y)[:, :30], atol=1e-5)


def test_trains_on_lambda_genome_with_falling_loss(train_clm):
    torch.manual_seed(0)
    model = CausalLM(build_backbone("hyena-tiny", vocab_size=12))
    losses = train_clm(model, steps=25, batch=4, length=256)
    assert losses[0] > 2.0  # about ln(12) at init
    assert sum(losses[-5:]) / 5 < 1.42  # near the 4-letter entropy, ln 4 = 1.386


def test_save_load_roundtrip_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = CausalLM(build_backbone("hyena-tiny", vocab_size=12, l_max=512)).eval()
    model.save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    assert again.config == model.config
    x = torch.randint(7, 11, (2, 64))
    assert torch.equal(model(x).logits, again(x).logits)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = build_backbone("hyena-tiny", vocab_size=12, d_model=32, embed_dropout=0.0)
    b = build_backbone("hyena-tiny", vocab_size=12, d_model=32, embed_dropout=0.0, checkpoint_blocks=True)
    b.load_state_dict(a.state_dict())
    x = torch.randint(7, 11, (2, 50))
    a(x).square().sum().backward()
    b(x).square().sum().backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
