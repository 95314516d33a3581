"""Fixtures for the aligner tests: a tiny encoder, a lambda index and simulated reads with truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bioseq import alphabet
from bioseq.align.reference import read_reference
from bioseq.align.simulate import mutate_read


def make_encoder(path: Path, seed: int) -> Path:
    """A tiny randomly initialised Embedder (fast); the seed changes its fingerprint."""
    import torch

    from bioseq.models import Embedder, build_backbone

    torch.manual_seed(seed)
    m = Embedder(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2, mlp_ratio=2.0,
                                bidirectional=True, vocab_size=12), dim=32)
    m.save_pretrained(path)
    return path


def simulate(contig, n: int, length: int, seed: int, sub: float = 0.01, indel: float = 0.001):
    """(name, seq, qual, truth_pos_1based, strand) reads from ``contig`` (codes)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = int(rng.integers(0, contig.length - length))
        strand = i % 2
        r = mutate_read(contig.codes[s : s + length], rng, sub, indel)
        if strand:
            r = alphabet.reverse_complement_codes(r)
        seq = alphabet.decode(r)
        qual = "".join(chr(33 + int(q)) for q in rng.integers(20, 41, len(seq)))
        out.append((f"r{i}_{s + 1}_{strand}", seq, qual, s + 1, strand))
    return out


def write_fastq(path: Path, reads) -> Path:
    with open(path, "w") as f:
        for name, seq, qual, *_ in reads:
            f.write(f"@{name}\n{seq}\n+\n{qual}\n")
    return path


@pytest.fixture(scope="session")
def lambda_contig(lambda_fasta):
    return read_reference(lambda_fasta)[0]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_encoder(tmp_path_factory.mktemp("enc") / "tiny", seed=0)


@pytest.fixture(autouse=True)
def _default_encoder(monkeypatch, tiny_encoder):
    # the CLI's default encoder, so tests run the commands exactly as users type them
    monkeypatch.setenv("BIOSEQ_ESA_ENCODER", str(tiny_encoder))


@pytest.fixture(scope="session")
def lambda_index(tmp_path_factory, lambda_fasta, tiny_encoder) -> Path:
    from bioseq.align.encoder import load_encoder
    from bioseq.align.index import IndexParams, build_index

    out = tmp_path_factory.mktemp("idx") / "lambda.esa"
    build_index(lambda_fasta, out, load_encoder(tiny_encoder), IndexParams(), progress=False)
    return out


@pytest.fixture(scope="session")
def lambda_reads(tmp_path_factory, lambda_contig):
    reads = simulate(lambda_contig, 120, 150, seed=7)
    return write_fastq(tmp_path_factory.mktemp("reads") / "reads.fq", reads), reads


def run_cli(*args: str):
    """Run ``bioseq`` in-process -> click Result (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from bioseq.cli import app

    return CliRunner().invoke(app, list(args))
