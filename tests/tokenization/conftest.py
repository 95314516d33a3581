"""Real sequences for tokenizer tests, read once per session from ``../shared/data``."""

from __future__ import annotations

import pysam
import pytest


def read_fasta(path) -> dict[str, str]:
    with pysam.FastxFile(str(path)) as fh:
        return {rec.name: rec.sequence for rec in fh}


@pytest.fixture(scope="session")
def lambda_genome(shared) -> str:
    return next(iter(read_fasta(shared / "genomes/lambda/lambda_virus.fa.gz").values()))


@pytest.fixture(scope="session")
def yeast_chr1(shared) -> str:
    return next(iter(read_fasta(shared / "genomes/yeast/yeast_chrI_Biostrings.fa").values()))


@pytest.fixture(scope="session")
def uniprot(shared) -> list[str]:
    return list(read_fasta(shared / "proteins/uniprot_mmseqs2_examples/DB.fasta.gz").values())
