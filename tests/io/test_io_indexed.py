"""Indexed random access (pysam faidx) on plain and bgzip FASTA; clear refusal of plain gzip/xz."""

import gzip
import shutil

import numpy as np
import pytest

from bioseq.alphabet import reverse_complement
from bioseq.io import IndexedFasta, SequenceFormatError, read_fasta, to_bgzip, write_fasta


@pytest.fixture(scope="module")
def lambda_seq(lambda_fasta):
    return next(read_fasta(lambda_fasta)).sequence


def test_plain_and_bgzip_random_access(tmp_path, lambda_fasta, lambda_seq):
    plain = tmp_path / "lambda.fa"
    plain.write_bytes(gzip.decompress(lambda_fasta.read_bytes()))
    bgz = to_bgzip(lambda_fasta, tmp_path / "lambda.fa.bgz")
    rng = np.random.default_rng(0)
    for path in (plain, bgz):
        with IndexedFasta(path) as fa:
            assert fa.lengths == {"NC_001416.1": 48502}
            for s in rng.integers(0, 48000, 20):
                s = int(s)
                assert fa.fetch("NC_001416.1", s, s + 400, as_str=True) == lambda_seq[s : s + 400]
            assert fa.fetch("NC_001416.1", 10, 30, strand="-", as_str=True) == reverse_complement(lambda_seq[10:30])
            with pytest.raises(IndexError, match="outside"):
                fa.fetch("NC_001416.1", 48000, 49000)
            with pytest.raises(KeyError):
                fa.fetch("chrZ", 0, 1)


def test_written_gz_is_indexable(tmp_path):
    path = write_fasta(tmp_path / "w.fa.gz", [("a", "ACGT" * 100), ("b", "GGCC" * 50)])
    assert IndexedFasta(path).fetch("b", 2, 6, as_str=True) == "CCGG"


def test_read_only_folder_puts_index_elsewhere(tmp_path, lambda_fasta):
    ro = tmp_path / "ro"
    ro.mkdir()
    to_bgzip(lambda_fasta, ro / "l.fa.gz")
    ro.chmod(0o555)
    try:
        fa = IndexedFasta(ro / "l.fa.gz", index_dir=tmp_path / "idx")
        assert fa.fetch("NC_001416.1", 0, 10, as_str=True) == "GGGCGGCGAC"
        assert any((tmp_path / "idx").iterdir())
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("name", ["lambda_NC_001416.fa.gz"])
def test_plain_gzip_refused_with_bgzip_hint(tmp_path, lambda_fasta, name):
    shutil.copy(lambda_fasta, tmp_path / name)
    with pytest.raises(SequenceFormatError, match="bgzip") as ei:
        IndexedFasta(tmp_path / name)
    assert "gzip" in str(ei.value) and name in str(ei.value)


def test_xz_refused(shared):
    with pytest.raises(SequenceFormatError, match="xz.*bgzip"):
        IndexedFasta(shared / "genomes/klebsiella_pneumoniae/MGH78578.fna.xz")
