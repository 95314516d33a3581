"""Test tiers: the default run is fast (minutes on 2 cores); ``-m slow`` adds long tests.

``SHARED`` points at the real data beside the project (``../shared/data``); tests that need it
skip with a clear reason when it is absent (users' machines), but CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP workers otherwise spin and steal the (two) cores from the thread doing the work;
# must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The Mamba-1 scan compiles its blocks when training on CPU (~10 s per shape); every test that
# trains a Mamba would pay that. tests/models/test_mamba.py runs the compiled path explicitly.
os.environ.setdefault("BIOSEQ_FUSED_SCAN", "0")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOSEQ_SHARED", ROOT.parent / "shared" / "data"))
DATA = ROOT / "data"


def pytest_configure(config):
    import torch

    # Two cores: one intra-op thread per test process keeps timings stable and avoids oversubscription.
    torch.set_num_threads(int(os.environ.get("BIOSEQ_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.exists():
        pytest.skip(f"real data folder {SHARED} not present")
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def lambda_fasta() -> Path:
    return DATA / "genomes" / "lambda_NC_001416.fa.gz"


@pytest.fixture(scope="session")
def ecoli_fasta() -> Path:
    return DATA / "genomes" / "ecoli_K12_MG1655.fa.gz"


@pytest.fixture(scope="session")
def lambda_token_ids(lambda_fasta: Path):
    """The bundled phage lambda genome as HyenaDNA character-vocabulary ids (A=7 C=8 G=9 T=10,
    N=11): a 1-D ``torch.long`` tensor of 48,502 ids, for short real-DNA training tests."""
    import gzip

    import numpy as np
    import torch

    from bioseq import alphabet

    with gzip.open(lambda_fasta, "rt") as fh:
        seq = "".join(line.strip() for line in fh if not line.startswith(">"))
    codes = alphabet.encode(seq) & alphabet.CODE_MASK
    ids = np.where(codes < 4, codes.astype(np.int64) + 7, 11)  # ACGT -> 7..10, anything else -> N
    return torch.from_numpy(ids)


@pytest.fixture(scope="session")
def train_clm(lambda_token_ids):
    """``train_clm(model, steps, batch, length, lr, seed, on_step) -> losses``: AdamW steps of
    causal-LM training on random windows of the lambda genome (real-DNA smoke training for
    backbones); ``on_step(model)`` is called after every step."""
    import torch

    def run(model, steps=20, batch=4, length=256, lr=2e-3, seed=0, on_step=None) -> list[float]:
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(steps):
            starts = torch.randint(0, len(lambda_token_ids) - length, (batch,), generator=g).tolist()
            ids = torch.stack([lambda_token_ids[s : s + length] for s in starts])
            loss = model(ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(model)
        return losses

    return run


@pytest.fixture
def one_thread():
    """One intra-op thread for the duration of a test. Folders of many tiny tensor ops use it
    (autouse in their conftest): a second thread only adds synchronisation, and on a loaded
    machine long spin waits."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint(kind) -> folder``: a small saved model with its ``tokenizer.json``, as
    ``recipes/pretrain.py`` exports them. ``kind``: ``clm`` (causal Transformer, dna-char),
    ``mlm`` (bidirectional, dna-char), ``protein`` (bidirectional masked LM, protein-esm) or
    ``multiomic`` (bidirectional masked LM, the joint tagged vocabulary).
    Untrained (seeded) weights: tests compare computations, not quality. Built once per session."""
    import torch

    from bioseq.models import CausalLM, MaskedLM, build_backbone
    from bioseq.tokenization import get_tokenizer

    made: dict[str, Path] = {}

    def make(kind: str = "clm") -> Path:
        if kind not in made:
            tok = get_tokenizer({"protein": "protein-esm", "multiomic": "multiomic"}.get(kind, "dna-char"))
            torch.manual_seed(0)
            backbone = build_backbone("transformer-tiny", vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id,
                                      d_model=16, n_layer=1, n_head=2, bidirectional=kind != "clm")
            model = (CausalLM if kind == "clm" else MaskedLM)(backbone)
            out = tmp_path_factory.mktemp(f"ckpt_{kind}")
            model.save_pretrained(out)
            tok.save(out / "tokenizer.json")
            made[kind] = out
        return made[kind]

    return make
