"""Bio-xLSTM: kernels against the xlstm package's references, recurrent decoding, the DNA
options (reversal and reverse-complement equivariance), the protein FIM helper, real-data training."""

import math

import numpy as np
import pytest
import torch

from bioseq.models import CausalLM, ConfigError, MaskedLM, build_backbone, load_config, load_pretrained, mask_tokens
from bioseq.models.xlstm import (
    HomologFIMConfig, _ChunkwiseMLSTM, _slstm_scan_cell_class, homolog_fim_example, undo_fim,
)
from bioseq.tokenization import protein_esm

DNA_COMP = torch.tensor([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These models are tiny and the sLSTM runs one small step at a time: a second intra-op thread
    # gains nothing, and on a busy machine its spin-waiting makes every step many times slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rc_ids(x):
    return DNA_COMP[x].flip(1)


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="complement_map"):
        load_config("xlstm-tiny", rc_equivariant=True, bidirectional=True)
    with pytest.raises(ConfigError, match="bidirectional"):
        load_config("dna-xlstm-tiny", bidirectional=False)
    with pytest.raises(ConfigError, match="slstm_at"):
        load_config("xlstm-tiny", slstm_at=[2])
    with pytest.raises(ConfigError, match="backend"):
        load_config("xlstm-tiny", backend="cuda-please")
    with pytest.raises(ConfigError, match="num_heads"):
        load_config("xlstm-tiny", num_heads=3)
    with pytest.raises(ConfigError, match="conv1d_kernel_size"):
        load_config("xlstm-tiny", conv1d_kernel_size=0)
    for name in ("xlstm-tiny", "xlstm-small", "dna-xlstm-tiny", "prot-xlstm-tiny"):
        assert load_config(name).arch == "xlstm"


def test_chunkwise_mlstm_equals_the_packages_parallel_form():
    # The package's quadratic parallel mLSTM is the reference (float64, so any gap is a bug, not
    # rounding); L=100 is not a multiple of the chunk.
    from xlstm.blocks.mlstm.backends import parallel_stabilized_simple

    g = torch.Generator().manual_seed(0)
    B, NH, L, DH = 2, 3, 100, 8
    q, k, v = (torch.randn(B, NH, L, DH, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    i = torch.randn(B, NH, L, 1, generator=g, dtype=torch.float64).requires_grad_()
    f = (3 + torch.randn(B, NH, L, 1, generator=g, dtype=torch.float64)).requires_grad_()
    ref = parallel_stabilized_simple(q, k, v, i, f)
    out = _ChunkwiseMLSTM("native", 16)(q, k, v, i, f)
    assert torch.allclose(out, ref, atol=1e-5)
    w = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * w).sum(), (q, k, v, i, f))
    g_out = torch.autograd.grad((out * w).sum(), (q, k, v, i, f))
    for a, b in zip(g_out, g_ref):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error messages")
def test_gpu_backends_fail_clearly_without_a_gpu():
    x = torch.randn(1, 2, 8, 4)
    with pytest.raises(RuntimeError, match="CUDA"):
        _ChunkwiseMLSTM("triton", 16)(x, x, x, x[..., :1], x[..., :1])
    with pytest.raises(RuntimeError, match="needs a GPU"):
        build_backbone("xlstm-tiny", slstm_backend="cuda")


def test_slstm_scan_equals_the_packages_vanilla_loop():
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    torch.manual_seed(0)
    cell = sLSTMCell(sLSTMCellConfig(hidden_size=16, num_heads=2, backend="vanilla"))
    with torch.no_grad():
        cell._recurrent_kernel_.normal_(std=0.3)  # zero-initialised otherwise: make recurrence count
    x = torch.randn(3, 40, 4 * 16, requires_grad=True)  # (B, S, 4H) gate pre-activations
    ref, ref_state = cell(x)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, cell._recurrent_kernel_))
    cell.__class__ = _slstm_scan_cell_class()
    out, state = cell(x)
    g_out = torch.autograd.grad(out.square().sum(), (x, cell._recurrent_kernel_))
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(state, ref_state, atol=1e-6)
    for a, b in zip(g_out, g_ref):
        assert torch.allclose(a, b, atol=1e-5)


def test_recurrent_steps_equal_parallel_forward_in_constant_memory():
    torch.manual_seed(0)
    bb = build_backbone("xlstm-tiny", vocab_size=12).eval()  # an mLSTM and an sLSTM block
    assert bb.supports_recurrent_step
    x = torch.randint(7, 11, (2, 75))
    with torch.no_grad():
        full = bb(x)
        state = bb.allocate_state(2)
        size = sum(t.numel() for blk in state.values() for v in blk.values() for t in (v if isinstance(v, tuple) else (v,)))
        steps = []
        for t in range(x.shape[1]):
            h, state = bb.step(x[:, t], state)
            steps.append(h)
    after = sum(t.numel() for blk in state.values() for v in blk.values() for t in (v if isinstance(v, tuple) else (v,)))
    assert after == size
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)


def test_generate_with_state_matches_full_recompute():
    torch.manual_seed(0)
    model = CausalLM(build_backbone("xlstm-tiny", vocab_size=12)).eval()
    prompt = torch.randint(7, 11, (2, 9))
    a = model.generate(prompt, max_new_tokens=12, do_sample=False, use_recurrent_state=True)
    b = model.generate(prompt, max_new_tokens=12, do_sample=False, use_recurrent_state=False)
    assert torch.equal(a, b)


def test_causal_model_does_not_look_ahead_and_bidirectional_does():
    torch.manual_seed(0)
    x = torch.randint(7, 11, (2, 40))
    y = x.clone()
    y[:, 25:] = 7
    causal = build_backbone("xlstm-tiny", vocab_size=12).eval()
    bidir = build_backbone("xlstm-tiny", vocab_size=12, bidirectional=True).eval()
    with torch.no_grad():
        assert torch.allclose(causal(x)[:, :25], causal(y)[:, :25], atol=1e-6)
        assert not torch.allclose(bidir(x)[:, :25], bidir(y)[:, :25], atol=1e-3)
    with pytest.raises(NotImplementedError, match="causal"):
        bidir.allocate_state(1)


def test_bidirectional_tied_weights_make_the_model_reversal_equivariant():
    torch.manual_seed(0)
    bb = build_backbone("xlstm-tiny", vocab_size=12, bidirectional=True).eval()
    x = torch.randint(7, 11, (2, 50))
    with torch.no_grad():
        assert torch.allclose(bb(x.flip(1)), bb(x).flip(1), atol=1e-5)


def test_rc_equivariance():
    torch.manual_seed(0)
    bb = build_backbone("dna-xlstm-tiny").eval()
    with torch.no_grad():  # a trained-looking, asymmetric embedding: equivariance must not rely on init
        bb.embedding.weight.normal_()
    x = torch.randint(7, 12, (3, 67))
    with torch.no_grad():
        h, h_rc = bb(x), bb(rc_ids(x))
    assert torch.allclose(h_rc, h.flip(1).flip(-1), atol=1e-5)  # RC(h): flip length and channels
    assert not torch.allclose(h_rc, h.flip(1), atol=1e-2)  # the channel flip is essential
    # logits through the (symmetrised) embedding table are RC-equivariant too
    table = bb.embedding_table()[:12]
    assert torch.allclose(h_rc @ table.T, (h @ table.T)[..., DNA_COMP].flip(1), atol=1e-4)


@pytest.mark.parametrize("name", ["xlstm-tiny", "dna-xlstm-tiny"])
def test_right_padding_does_not_change_real_positions(name):
    torch.manual_seed(0)
    bb = build_backbone(name, vocab_size=12, pad_token_id=4).eval()
    a, b = torch.randint(7, 11, (1, 30)), torch.randint(7, 11, (1, 45))
    batch = torch.cat([torch.cat([a, torch.full((1, 15), 4)], 1), b])
    with torch.no_grad():
        h = bb(batch, attention_mask=batch != 4)
        assert torch.allclose(h[0, :30], bb(a)[0], atol=1e-5)
        assert torch.allclose(h[1], bb(b)[0], atol=1e-5)
        assert torch.equal(bb(batch, attention_mask=(batch != 4).long()), h)  # 0/1 masks work too
    with pytest.raises(ValueError, match="right-padded"):
        bb(batch, attention_mask=(batch != 4).flip(1))


def _lambda_batches(ids, L, B, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - L, (n, B), generator=g)
    return [torch.stack([ids[s : s + L] for s in row]) for row in starts]


def test_causal_lm_trains_on_lambda_and_roundtrips(lambda_token_ids, tmp_path):
    torch.manual_seed(0)
    model = CausalLM(build_backbone("xlstm-tiny", vocab_size=12))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batches = _lambda_batches(lambda_token_ids, 64, 4, 10)
    losses = []
    for x in batches:
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and np.mean(losses[-3:]) < losses[0] - 0.5, losses
    model.eval().save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    x = batches[0][:2]
    assert torch.equal(model(x).logits, again(x).logits)


def test_rc_equivariant_masked_lm_trains_on_lambda_and_roundtrips(lambda_token_ids, tmp_path):
    torch.manual_seed(0)
    model = MaskedLM(build_backbone("dna-xlstm-tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    losses = []
    for x in _lambda_batches(lambda_token_ids, 64, 4, 10):
        inp, labels = mask_tokens(x, 3, torch.ones_like(x, dtype=torch.bool), torch.arange(7, 11), 0.15, g)
        loss = model(inp, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < losses[0] - 0.3, losses  # from ~ln(12) to ~ln(4)
    model.eval().save_pretrained(tmp_path)
    again = load_pretrained(tmp_path).eval()
    x = lambda_token_ids[:100][None]
    assert torch.equal(model(x).logits, again(x).logits)
    with torch.no_grad():  # still exactly equivariant after training, hidden states and logits
        h = again.backbone(x)
        assert torch.allclose(again.backbone(rc_ids(x)), h.flip(1).flip(-1), atol=1e-5)
        logits, logits_rc = again(x).logits[..., :12], again(rc_ids(x)).logits[..., :12]
        assert torch.allclose(logits_rc, logits[..., DNA_COMP].flip(1), atol=1e-4)


# -- protein in-context learning / fill-in-the-middle ---------------------------------------------


def test_homolog_fim_example_layout_and_inverse():
    cfg = HomologFIMConfig(fim_rate=1.0, query_loss_only=True)
    homologs = ["MKVLAAG", "MKVIAG", "MRVLSAGW"]
    ex = homolog_fim_example(homologs, cfg, rng=0)
    ids, labels = ex["input_ids"].tolist(), ex["labels"].tolist()
    tok = protein_esm()
    enc = lambda s: tok.encode(s, add_special_tokens=False).tolist()  # noqa: E731
    ctx = [0, *enc("MKVLAAG"), 2, 0, *enc("MKVIAG"), 2]
    assert ids[: len(ctx)] == ctx
    query = ids[len(ctx) :]
    assert query[:2] == [0, cfg.prefix_id] and query[-1] == 2
    assert query.count(cfg.suffix_id) == 1 and query.count(cfg.middle_id) == 1
    assert undo_fim(query, cfg) == enc("MRVLSAGW")
    assert labels[: len(ctx)] == [-100] * len(ctx) and labels[len(ctx) :] == query
    # every cut is reachable and the inverse always holds
    seen = set()
    for seed in range(200):
        q = homolog_fim_example(["ACDEFGHIK"], cfg, rng=seed)["input_ids"].tolist()
        assert undo_fim(q, cfg) == enc("ACDEFGHIK")
        seen.add((q.index(cfg.suffix_id), q.index(cfg.middle_id)))
    assert len(seen) == math.comb(10, 2)
    # no FIM: plain <cls> seq <eos>
    plain = homolog_fim_example(["ACD"], HomologFIMConfig(fim_rate=0.0), rng=0)["input_ids"].tolist()
    assert plain == [0, *enc("ACD"), 2]


def test_homolog_fim_example_truncates_context_and_reports_bad_input():
    cfg = HomologFIMConfig(fim_rate=0.0, max_length=20)
    ex = homolog_fim_example(["A" * 9, "C" * 5, "D" * 5, "E" * 6], cfg, rng=0)["input_ids"].tolist()
    # query E*6 (8 tokens) + nearest homolog D*5 (7) fit in 20; C*5 would not, so it and A*9 go
    assert ex == [0] + [12] * 5 + [2] + [0] + [9] * 6 + [2]
    with pytest.raises(ValueError, match="sequence 1 has characters"):
        homolog_fim_example(["ACD", "AC1"], cfg)
    with pytest.raises(ValueError, match="does not fit"):
        homolog_fim_example(["A" * 30], cfg)
    with pytest.raises(ValueError, match="special token"):
        homolog_fim_example([[5, 6, 33]], cfg)


def _globins(path, n):
    seqs, cur = [], []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            if cur:
                seqs.append("".join(cur).upper())
            cur = []
        else:
            cur.append(line.strip())
    seqs.append("".join(cur).upper())
    return seqs[:n]


def test_prot_xlstm_trains_on_homolog_fim_examples(shared):
    globins = _globins(shared / "proteins" / "emboss_globins" / "globins630.fa", 24)
    cfg = HomologFIMConfig(fim_rate=0.5, max_length=320)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = CausalLM(build_backbone("prot-xlstm-tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        batch = []
        for _ in range(2):  # two rows of three real globins each, the last one FIM-transformed half the time
            pick = rng.choice(len(globins), 3, replace=False)
            batch.append(homolog_fim_example([globins[j] for j in pick], cfg, rng)["input_ids"])
        L = max(len(b) for b in batch)
        x = torch.stack([torch.nn.functional.pad(b, (0, L - len(b)), value=1) for b in batch])
        loss = model(x, attention_mask=x != 1, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < losses[0] - 0.5, losses
