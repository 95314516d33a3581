"""bf16 autocast on CPU: every backbone trains under it, and the fp32 islands stay fp32.

Tolerances (stated in docs/training.md): under bf16 autocast the loss is within 0.01 nats of fp32,
the whole gradient within 3% relative L2 error and cosine >= 0.999 of the fp32 gradient, at
initialisation on random DNA with the same dropout masks (bf16 keeps 8 mantissa bits, ~0.4% per
rounding; measured: 0.2-1.3% gradient error across the backbones).
"""

from __future__ import annotations

import pytest
import torch

from bioseq.models import CausalLM, MaskedLM, build_backbone, load_config
from bioseq.models.hyena import fft_causal_conv
from bioseq.models.mamba import selective_scan, ssd_scan
from bioseq.utils import precision
from bioseq.utils.precision import autocast, resolve_mixed_precision

SIZES = [
    ("transformer-tiny", CausalLM), ("hyena-tiny", CausalLM), ("mamba-tiny", CausalLM),
    ("mamba2-tiny", CausalLM), ("caduceus-tiny", MaskedLM), ("xlstm-tiny", CausalLM),
    ("dna-xlstm-tiny", MaskedLM), ("hnet-1stage-tiny", CausalLM), ("hnet-2stage-tiny", CausalLM),
]


def _grads(model, ids, bf16: bool):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same dropout masks in both runs
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(ids, labels=ids)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("size,head", SIZES, ids=[s for s, _ in SIZES])
def test_backbone_trains_under_bf16_autocast(size, head):
    torch.manual_seed(0)
    model = head(build_backbone(size))
    ids = torch.randint(7, 11, (2, 128))  # A, C, G, T in the character vocabulary
    loss32, g32 = _grads(model, ids, bf16=False)
    loss16, g16 = _grads(model, ids, bf16=True)
    assert torch.isfinite(loss16)
    assert abs(loss16.item() - loss32.item()) < 0.01
    assert g16.keys() == g32.keys()
    # Parameters and their gradients stay fp32: autocast only lowers activations.
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(g.dtype == torch.float32 for g in g16.values())
    a = torch.cat([g32[k].flatten() for k in g32])
    b = torch.cat([g16[k].flatten() for k in g32])
    assert ((b - a).norm() / a.norm()).item() < 0.03
    assert torch.nn.functional.cosine_similarity(a, b, dim=0).item() > 0.999


def _scan_inputs(b=2, L=96, d=8, n=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, L, d, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, L, d, generator=g))
    A = -torch.rand(d, n, generator=g) * 4 - 0.5
    B, C = torch.randn(b, L, n, generator=g), torch.randn(b, L, n, generator=g)
    return [t.requires_grad_() for t in (x, dt, A, B, C)]


def test_selective_scan_runs_in_fp32_under_autocast():
    # The hand-written scan and its backward must ignore autocast: same bits as the fp32 call.
    ins = _scan_inputs()
    y32 = selective_scan(*ins, chunk_size=32)
    g32 = torch.autograd.grad(y32.square().sum(), ins)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = selective_scan(*ins, chunk_size=32)
        g16 = torch.autograd.grad(y16.square().sum(), ins)
    assert y16.dtype == torch.float32
    assert torch.equal(y16, y32)
    for a, b in zip(g32, g16, strict=True):
        assert torch.equal(a, b)


def test_selective_scan_accepts_bf16_gradients():
    # Downstream bf16 layers hand the scan a bf16 output gradient: it must be promoted, not crash.
    ins = _scan_inputs()
    y = selective_scan(*ins, chunk_size=32)
    grads = torch.autograd.grad(y, ins, grad_outputs=torch.ones_like(y, dtype=torch.bfloat16))
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_ssd_scan_under_autocast_within_tolerance():
    g = torch.Generator().manual_seed(2)
    b, L, h, p, n = 2, 128, 4, 8, 16
    x = torch.randn(b, L, h, p, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, L, h, generator=g))
    A = -torch.rand(h, generator=g) * 4 - 0.5
    B, C = torch.randn(b, L, 1, n, generator=g), torch.randn(b, L, 1, n, generator=g)
    y32 = ssd_scan(x, dt, A, B, C, chunk_size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = ssd_scan(x, dt, A, B, C, chunk_size=32)
    assert ((y16.float() - y32).norm() / y32.norm()).item() < 2e-2


def test_hyena_fft_conv_is_fp32_under_autocast():
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, 8, 512, generator=g).bfloat16()
    k = torch.randn(8, 512, generator=g) * torch.exp(-torch.arange(512) / 64.0)
    ref = fft_causal_conv(v.float(), k)  # fp32 maths on the same (bf16-rounded) signal
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fft_causal_conv(v, k)
    assert y.dtype == torch.bfloat16  # returned in the caller's dtype ...
    assert torch.allclose(y.float(), ref, rtol=1e-2, atol=1e-2)  # ... after an fp32 convolution


def test_resolve_mixed_precision(monkeypatch):
    monkeypatch.delenv("BIOSEQ_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_mixed_precision("auto", "cpu") == "bf16"
    assert resolve_mixed_precision(None, "cpu") == "bf16"
    assert resolve_mixed_precision("no", "cpu") == "no"
    assert resolve_mixed_precision("fp16", "cpu") == "no"
    monkeypatch.setenv("BIOSEQ_MIXED_PRECISION", "no")
    assert resolve_mixed_precision("auto", "cpu") == "no"
    assert resolve_mixed_precision("bf16", "cpu") == "bf16"  # explicit settings beat the variable
    monkeypatch.delenv("BIOSEQ_MIXED_PRECISION")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_mixed_precision("auto", "cpu") == "no"
    assert resolve_mixed_precision("bf16", "cpu") == "no"  # emulated bf16 is slower than fp32
    with pytest.raises(ValueError, match="mixed_precision"):
        resolve_mixed_precision("int8", "cpu")


def test_autocast_context():
    lin = torch.nn.Linear(4, 4)
    with autocast("cpu", "bf16"):
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast("cpu", "no"):
        assert lin(torch.randn(2, 4)).dtype == torch.float32


def test_named_sizes_keep_fp32_parameters():
    # load_config/build_backbone never create low-precision weights, whatever the setting.
    cfg = load_config("mamba-tiny")
    assert all(p.dtype == torch.float32 for p in build_backbone(cfg).parameters())
