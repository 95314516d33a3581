"""Stores built once per session from the bundled genomes (a second or so each)."""

import numpy as np
import pytest

from bioseq.io import read_fasta, write_fasta


@pytest.fixture(scope="session")
def lambda_codes(lambda_fasta) -> np.ndarray:
    return next(read_fasta(lambda_fasta)).codes


@pytest.fixture(scope="session")
def ecoli_codes(ecoli_fasta) -> np.ndarray:
    return next(read_fasta(ecoli_fasta)).codes


@pytest.fixture(scope="session")
def masked_fasta(tmp_path_factory, lambda_fasta):
    """Real lambda sequence made to look like an assembly: soft-masked stretch, an N gap, IUPAC."""
    seq = next(read_fasta(lambda_fasta)).sequence
    gapped = seq[:10000] + seq[10000:12000].lower() + "N" * 5000 + seq[12000:30000] + "RY" + seq[30000:]
    path = tmp_path_factory.mktemp("masked") / "lambda_masked.fa.gz"
    write_fasta(path, [("lam_gapped", gapped), ("lam_tail", seq[40000:])])
    return path


@pytest.fixture(scope="session")
def two_genome_store(tmp_path_factory, lambda_fasta, ecoli_fasta):
    from bioseq.data import build_store

    return build_store([ecoli_fasta, lambda_fasta], tmp_path_factory.mktemp("s") / "g.zarr",
                       genome_names=["ecoli", "lambda"])
