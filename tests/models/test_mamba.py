"""Mamba-1 / Mamba-2 backbones: fast scans against a naive recurrence, recurrent decoding, BiMamba
and reverse-complement equivariance (Caduceus), training on real DNA, persistence."""

import gzip

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bioseq import alphabet
from bioseq.models import (
    CausalLM,
    ConfigError,
    MaskedLM,
    SequenceClassifier,
    build_backbone,
    load_config,
    load_pretrained,
)
from bioseq.models import mamba
from bioseq.models.mamba import DNA_COMPLEMENT_MAP, selective_scan, ssd_scan

CMAP = torch.tensor(DNA_COMPLEMENT_MAP)


# -- naive step-by-step recurrences (the definitions the fast paths must equal) ------------------

def naive_selective_scan(x, dt, A, B, C, D):
    b, L, d = x.shape
    h = torch.zeros(b, d, A.shape[1], dtype=x.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * x[:, t])
    return torch.stack(ys, 1), h


def naive_ssd(x, dt, A, B, C, D):
    b, L, H, P = x.shape
    rep = H // B.shape[2]
    h = torch.zeros(b, H, P, B.shape[-1], dtype=x.dtype)
    ys = []
    for t in range(L):
        Bt, Ct = B[:, t].repeat_interleave(rep, 1), C[:, t].repeat_interleave(rep, 1)  # (b, H, N)
        h = torch.exp(dt[:, t] * A)[..., None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * Bt[:, :, None, :]
        ys.append((h * Ct[:, :, None, :]).sum(-1) + D[:, None] * x[:, t])
    return torch.stack(ys, 1), h


def _mamba1_inputs(dtype, L=150, big_dt=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, d, n = 2, 6, 5
    x = torch.randn(b, L, d, generator=g, dtype=dtype)
    dt = F.softplus(torch.randn(b, L, d, generator=g, dtype=dtype) - 2 + (4 if big_dt else 0))
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 16
    B = torch.randn(b, L, n, generator=g, dtype=dtype)
    C = torch.randn(b, L, n, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    return x, dt, A, B, C, D


@pytest.mark.parametrize("big_dt", [False, True])
def test_selective_scan_equals_naive_recurrence(big_dt):
    # float32 fast path against the recurrence in float64; big_dt forces short sub-chunks
    ins = _mamba1_inputs(torch.float32, big_dt=big_dt)
    y, h = selective_scan(*ins, chunk_size=64, return_final_state=True)
    y_ref, h_ref = naive_selective_scan(*(t.double() for t in ins))
    assert torch.allclose(y.double(), y_ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(h.double(), h_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "compiled"])
def test_selective_scan_gradients_equal_naive(fused):
    # compiled: the inductor-fused block functions the scan uses when training on CPU
    ins = [t.requires_grad_() for t in _mamba1_inputs(torch.float64, L=97)]
    y, h = selective_scan(*ins, chunk_size=32, return_final_state=True, fused=fused)
    ((y**2).sum() + h.sum()).backward()
    fast = [t.grad.clone() for t in ins]
    for t in ins:
        t.grad = None
    y, h = naive_selective_scan(*ins)
    ((y**2).sum() + h.sum()).backward()
    for name, a, b in zip("x dt A B C D".split(), fast, (t.grad for t in ins), strict=True):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-9), name
    assert not mamba._FUSED_BROKEN, mamba._FUSED_BROKEN  # compiled, not the eager fallback


def test_selective_scan_initial_state_continues_a_sequence():
    x, dt, A, B, C, D = _mamba1_inputs(torch.float64, L=100)
    y_all = selective_scan(x, dt, A, B, C, D)
    y1, h1 = selective_scan(x[:, :37], dt[:, :37], A, B[:, :37], C[:, :37], D, return_final_state=True)
    y2 = selective_scan(x[:, 37:], dt[:, 37:], A, B[:, 37:], C[:, 37:], D, initial_state=h1)
    assert torch.allclose(torch.cat([y1, y2], 1), y_all, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
def test_ssd_equals_naive_recurrence(groups):
    g = torch.Generator().manual_seed(1)
    b, L, H, P, N = 2, 150, 4, 8, 16
    x = torch.randn(b, L, H, P, generator=g)
    dt = F.softplus(torch.randn(b, L, H, generator=g) - 1)
    A = -torch.rand(H, generator=g) * 16
    B = torch.randn(b, L, groups, N, generator=g)
    C = torch.randn(b, L, groups, N, generator=g)
    D = torch.randn(H, generator=g)
    y, h = ssd_scan(x, dt, A, B, C, D, chunk_size=32, return_final_state=True)
    y_ref, h_ref = naive_ssd(*(t.double() for t in (x, dt, A, B, C, D)))
    assert torch.allclose(y.double(), y_ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(h.double(), h_ref, atol=1e-5, rtol=1e-5)


def test_ssd_gradients_equal_naive():
    g = torch.Generator().manual_seed(2)
    ins = [torch.randn(1, 40, 2, 3, generator=g, dtype=torch.float64),
           F.softplus(torch.randn(1, 40, 2, generator=g, dtype=torch.float64)),
           -torch.rand(2, generator=g, dtype=torch.float64) * 4,
           torch.randn(1, 40, 1, 4, generator=g, dtype=torch.float64),
           torch.randn(1, 40, 1, 4, generator=g, dtype=torch.float64),
           torch.randn(2, generator=g, dtype=torch.float64)]
    ins = [t.requires_grad_() for t in ins]
    (ssd_scan(*ins, chunk_size=16) ** 2).sum().backward()
    fast = [t.grad.clone() for t in ins]
    for t in ins:
        t.grad = None
    (naive_ssd(*ins)[0] ** 2).sum().backward()
    for a, b in zip(fast, (t.grad for t in ins), strict=True):
        assert torch.allclose(a, b, atol=1e-9)


# -- backbones ------------------------------------------------------------------------------------

CAUSAL = ["mamba-tiny", "mamba2-tiny"]


@pytest.mark.parametrize("name", CAUSAL)
def test_recurrent_step_equals_parallel_forward(name):
    torch.manual_seed(0)
    bb = build_backbone(name, vocab_size=12, n_layer=2).eval()
    x = torch.randint(7, 12, (2, 70))
    with torch.no_grad():
        full = bb(x)  # (B, L, d)
        state = bb.allocate_state(2)
        steps = []
        for t in range(x.shape[1]):
            h, state = bb.step(x[:, t], state)
            steps.append(h)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("name", CAUSAL)
def test_generate_recurrent_equals_recompute(name):
    torch.manual_seed(0)
    lm = CausalLM(build_backbone(name, vocab_size=12, n_layer=2)).eval()
    prompt = torch.randint(7, 11, (2, 9))
    a = lm.generate(prompt, max_new_tokens=12, do_sample=False, use_recurrent_state=True)
    b = lm.generate(prompt, max_new_tokens=12, do_sample=False, use_recurrent_state=False)
    assert torch.equal(a, b)
    # the state does not grow with the generated length
    state = lm.backbone.allocate_state(2)
    sizes = sum(t.numel() for s in state for t in s)
    _, state = lm.backbone.step(prompt[:, 0], state)
    assert sum(t.numel() for s in state for t in s) == sizes


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_mamba_does_not_look_ahead(name):
    torch.manual_seed(0)
    bb = build_backbone(name, vocab_size=12, n_layer=2).eval()
    x = torch.randint(7, 11, (1, 80))
    y = x.clone()
    y[:, 50:] = 7
    h1, h2 = bb(x), bb(y)
    assert torch.allclose(h1[:, :50], h2[:, :50], atol=1e-6)
    assert not torch.allclose(h1[:, 50:], h2[:, 50:], atol=1e-3)


@pytest.mark.parametrize("version", [1, 2])
def test_bimamba_sees_both_sides_and_ties_projections(version):
    torch.manual_seed(0)
    bb = build_backbone("bimamba-tiny", version=version, n_layer=2).eval()
    mixer = bb.blocks[0].mixer
    assert len(mixer.ssm) == 2  # one SSM per direction, but a single in_proj and out_proj
    x = torch.randint(7, 11, (1, 60))
    y = x.clone()
    y[:, 40] = 7 if x[0, 40] != 7 else 8
    h1, h2 = bb(x), bb(y)
    assert not torch.allclose(h1[:, :40], h2[:, :40], atol=1e-4)  # the past sees the future
    with pytest.raises(ValueError, match="causal"):
        bb.allocate_state(1)


@pytest.mark.parametrize("name", ["bimamba-tiny", "caduceus-tiny"])
def test_padding_mask_makes_padded_batch_match_unpadded(name):
    torch.manual_seed(0)
    bb = build_backbone(name, n_layer=2).eval()
    x = torch.randint(7, 11, (1, 30))
    padded = torch.cat([x, torch.full((1, 10), 4)], 1)
    h = bb(padded, attention_mask=padded != 4)
    assert torch.allclose(h[:, :30], bb(x), atol=1e-5)


def rc_ids(x):
    return CMAP[x].flip(1)


def rc_hidden(h):
    k = h.shape[-1] // 2
    return torch.cat([h[..., k:], h[..., :k]], -1).flip(1)


@pytest.mark.parametrize("name,version", [("caduceus-tiny", 1), ("caduceus-ps-tiny", 1), ("caduceus-tiny", 2)])
def test_rc_equivariance_hidden_states_and_tied_logits(name, version):
    torch.manual_seed(0)
    bb = build_backbone(name, version=version, n_layer=2)
    assert not bb.is_causal
    x = torch.randint(7, 12, (2, 50))  # A C G T N
    h, h_rc = bb(x), bb(rc_ids(x))
    assert torch.allclose(h_rc, rc_hidden(h), atol=1e-5)
    # heads tied to the RC embedding: logits(rc(x)) = logits(x) flipped, vocab permuted by complement
    mlm = MaskedLM(bb).eval()
    logits, logits_rc = mlm(x).logits[..., :12], mlm(rc_ids(x)).logits[..., :12]
    assert torch.allclose(logits_rc, logits.flip(1)[..., CMAP], atol=1e-5)
    # ... and after training steps too (equivariance is structural, not an accident of init)
    opt = torch.optim.AdamW(mlm.parameters(), lr=1e-2)
    for _ in range(2):
        loss = mlm(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits, logits_rc = mlm(x).logits[..., :12], mlm(rc_ids(x)).logits[..., :12]
    assert torch.allclose(logits_rc, logits.flip(1)[..., CMAP], atol=1e-4)


def test_plain_bimamba_is_not_rc_equivariant():
    # the check above can fail: without parameter sharing the property does not hold
    torch.manual_seed(0)
    bb = build_backbone("bimamba-tiny", n_layer=2)
    x = torch.randint(7, 11, (1, 50))
    assert not torch.allclose(bb(rc_ids(x)), rc_hidden(bb(x)), atol=1e-3)


def test_config_validation():
    with pytest.raises(ConfigError, match="complement_map"):
        load_config("mamba-tiny", rc_equivariant=True)
    with pytest.raises(ConfigError, match="headdim"):
        load_config("mamba2-tiny", headdim=48)
    with pytest.raises(ConfigError, match="version"):
        load_config("mamba-tiny", version=3)
    with pytest.raises(ConfigError, match="backend"):
        load_config("mamba-tiny", backend="triton")


def test_cuda_backend_on_cpu_is_a_clear_error():
    bb = build_backbone("mamba-tiny", vocab_size=12, n_layer=1, backend="cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        bb(torch.randint(7, 11, (1, 8)))


def test_import_bioseq_models_does_not_import_cuda_kernels():
    import subprocess
    import sys

    code = "import sys, bioseq.models; print(any(m in sys.modules for m in ('mamba_ssm', 'causal_conv1d')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- real DNA ------------------------------------------------------------------------------------

def lambda_ids(path) -> torch.Tensor:
    with gzip.open(path, "rt") as fh:
        seq = "".join(line.strip() for line in fh if not line.startswith(">"))
    codes = alphabet.encode(seq) & alphabet.CODE_MASK
    codes = np.where(codes < 4, codes, alphabet.N_CODE)  # IUPAC ambiguity -> N
    return torch.from_numpy(codes.astype(np.int64) + 7)  # HyenaDNA ids: A=7 C=8 G=9 T=10 N=11


@pytest.mark.parametrize("name,head", [("mamba-tiny", CausalLM), ("mamba2-tiny", CausalLM), ("caduceus-tiny", MaskedLM)])
def test_trains_on_lambda_and_saves_bit_exact(lambda_fasta, tmp_path, name, head):
    torch.manual_seed(0)
    ids = lambda_ids(lambda_fasta)
    assert len(ids) == 48502
    g = torch.Generator().manual_seed(0)
    model = head(build_backbone(name, n_layer=2, d_model=64, vocab_size=12, complement_map=DNA_COMPLEMENT_MAP))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        starts = torch.randint(0, len(ids) - 128, (8,), generator=g)
        batch = torch.stack([ids[s : s + 128] for s in starts])
        if head is MaskedLM:
            inp, labels = batch.clone(), torch.full_like(batch, -100)
            sel = torch.rand(batch.shape, generator=g) < 0.15
            inp[sel], labels[sel] = 3, batch[sel]
        else:
            inp, labels = batch, batch
        loss = model(inp, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses
    model.eval()
    model.save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    x = ids[:300][None]
    assert torch.equal(model(x).logits, again(x).logits)
    clf = SequenceClassifier.from_pretrained(tmp_path, num_labels=2)  # backbone reused by a classifier
    assert torch.equal(clf.backbone(x), again.backbone(x))
