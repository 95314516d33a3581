"""CUDA checks (``-m gpu``; run by ``scripts/gpu_run.sh`` on a GPU machine, skipped elsewhere).

Every backbone's forward and backward on CUDA under bf16 autocast is compared with the fp32 CPU
path on the same weights and tokens. Tolerances: loss within 0.02 nats, whole-gradient relative L2
error < 5% and cosine >= 0.998 (looser than the CPU bf16 test: CUDA kernels, e.g. Mamba's fused
scan and Triton mLSTM, round differently from the pure-PyTorch reference, and cuDNN/cuBLAS pick
their own reduction orders).
"""

from __future__ import annotations

import copy

import pytest
import torch

from bioseq.models import CausalLM, MaskedLM, build_backbone, load_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SIZES = ["transformer-tiny", "hyena-tiny", "mamba-tiny", "mamba2-tiny", "caduceus-tiny", "xlstm-tiny",
         "dna-xlstm-tiny", "hnet-1stage-tiny", "hnet-2stage-tiny"]


def _run(model, ids, device, bf16):
    model = model.to(device)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        out = model(ids.to(device), labels=ids.to(device))
    out.loss.backward()
    grads = {n: p.grad.detach().float().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), grads


@pytest.mark.parametrize("size", SIZES)
def test_cuda_bf16_matches_cpu_fp32(size):
    torch.manual_seed(0)
    cfg = load_config(size)
    cpu_model = (MaskedLM if getattr(cfg, "bidirectional", False) else CausalLM)(build_backbone(cfg)).eval()
    gpu_model = copy.deepcopy(cpu_model)  # eval: no dropout, so both see the same function
    ids = torch.randint(7, 11, (2, 256))
    loss32, g32 = _run(cpu_model, ids, "cpu", bf16=False)
    loss16, g16 = _run(gpu_model, ids, "cuda", bf16=True)
    assert abs(loss16 - loss32) < 0.02
    a = torch.cat([g32[k].flatten() for k in g32])
    b = torch.cat([g16[k].flatten() for k in g32])
    assert ((b - a).norm() / a.norm()).item() < 0.05
    assert torch.nn.functional.cosine_similarity(a, b, dim=0).item() > 0.998


def test_mamba_fused_kernels_match_reference():
    pytest.importorskip("mamba_ssm")
    pytest.importorskip("causal_conv1d")
    torch.manual_seed(0)
    for size in ("mamba-tiny", "mamba2-tiny"):
        ref = build_backbone(size, backend="torch").cuda().eval()
        fast = build_backbone(size, backend="cuda").cuda().eval()
        fast.load_state_dict(ref.state_dict())
        ids = torch.randint(7, 11, (2, 256), device="cuda")
        with torch.no_grad():
            a, b = ref(ids), fast(ids)
        assert ((a - b).norm() / a.norm()).item() < 1e-2, size


def test_triton_mlstm_matches_native():
    pytest.importorskip("triton")
    pytest.importorskip("mlstm_kernels")
    from bioseq.models.xlstm import _ChunkwiseMLSTM

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 128, 32, device="cuda") for _ in range(3))
    i, f = torch.randn(2, 2, 128, 1, device="cuda"), torch.randn(2, 2, 128, 1, device="cuda") + 3
    native = _ChunkwiseMLSTM("native", 64)(q, k, v, i, f)
    triton = _ChunkwiseMLSTM("triton", 64)(q, k, v, i, f)
    assert ((native - triton).norm() / native.norm()).item() < 1e-2
