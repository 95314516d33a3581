"""FASTA reading (every compression, every error named) and atomic writing."""

import bz2
import gzip
import hashlib
import io
import lzma

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq.alphabet import BASES, decode, encode
from bioseq.io import (
    FastaRecord,
    SequenceFormatError,
    detect_compression,
    iter_fasta_pieces,
    read_fasta,
    write_fasta,
)

LAMBDA_LEN, ECOLI_LEN = 48502, 4639675


def _write(path, text: bytes, kind: str = "none"):
    if kind == "gzip":
        path.write_bytes(gzip.compress(text))
    elif kind == "xz":
        path.write_bytes(lzma.compress(text))
    elif kind == "bz2":
        path.write_bytes(bz2.compress(text))
    elif kind == "bgzip":
        import pysam

        with pysam.BGZFile(str(path), "wb") as fh:
            fh.write(text)
    else:
        path.write_bytes(text)
    return path


def test_bundled_genomes_read_with_known_lengths(lambda_fasta, ecoli_fasta):
    (lam,) = list(read_fasta(lambda_fasta))
    assert lam.name == "NC_001416.1" and len(lam) == LAMBDA_LEN
    assert lam.sequence.startswith("GGGCGGCGACCTCGCGGGTTTTCGCTATTTATGAAAATTTTCCGG")
    (eco,) = list(read_fasta(ecoli_fasta))
    assert len(eco) == ECOLI_LEN and eco.codes.dtype == np.uint8
    # the reader agrees base for base with Biopython on the same file
    from Bio import SeqIO

    with gzip.open(lambda_fasta, "rt") as fh:
        ref = str(next(SeqIO.parse(fh, "fasta")).seq)
    assert lam.sequence == ref


@pytest.mark.parametrize("kind", ["none", "gzip", "bgzip", "xz", "bz2"])
def test_every_compression_is_detected_and_gives_the_same_records(tmp_path, lambda_fasta, kind):
    text = gzip.decompress(lambda_fasta.read_bytes())
    # deliberately misleading extension: detection must use magic bytes
    path = _write(tmp_path / "x.fa.gz", text, kind)
    assert detect_compression(path) == kind
    (rec,) = list(read_fasta(path, block_bytes=4096))  # small blocks: records span many blocks
    assert len(rec) == LAMBDA_LEN
    assert hashlib.md5(rec.sequence.encode()).hexdigest() == hashlib.md5(
        b"".join(text.split(b"\n")[1:])).hexdigest()


def test_real_xz_klebsiella_multi_record(shared):
    path = shared / "genomes/klebsiella_pneumoniae/MGH78578.fna.xz"
    recs = list(read_fasta(path))
    assert [r.name for r in recs][:2] == ["CP000647.1", "CP000648.1"]
    assert len(recs[0]) == 5315120 and len(recs[1]) == 175879


def test_stream_and_softmask_and_blank_lines():
    data = b">a desc here\nACgt\n\nNN RY\n>b\n\nacgu\n"
    recs = list(read_fasta(io.BytesIO(data)))
    assert [(r.name, r.description) for r in recs] == [("a", "desc here"), ("b", "")]
    assert recs[0].sequence == "ACgtNNRY" and recs[1].sequence == "acgt"
    pieces = list(iter_fasta_pieces(io.BytesIO(data), block_bytes=8))
    assert pieces[0] == ("a", "desc here")


def _err(tmp_path, text: bytes, kind="none", name="bad.fa") -> SequenceFormatError:
    path = _write(tmp_path / name, text, kind)
    with pytest.raises(SequenceFormatError) as ei:
        list(read_fasta(path, block_bytes=64))
    assert str(path) in str(ei.value)
    return ei.value


def test_error_empty_file(tmp_path):
    e = _err(tmp_path, b"")
    assert "empty file" in str(e)
    assert "blank" in str(_err(tmp_path, b"\n\n  \n"))


def test_error_missing_header(tmp_path):
    e = _err(tmp_path, b"\nACGT\n>x\nAC\n")
    assert "missing '>' header" in str(e) and e.line == 2
    assert "looks like FASTQ" in str(_err(tmp_path, b"@r1\nACGT\n+\nIIII\n"))


def test_error_invalid_character_names_record_line_column(tmp_path):
    text = b">ok\nACGT\n>chr2 x\n" + b"ACGTACGTAC\n" * 20 + b"ACGTJCGT\n"
    e = _err(tmp_path, text)
    assert e.record == "chr2" and e.line == 24 and "'J'" in str(e) and "column 5" in str(e)
    assert "line 24" in str(e) and "record 'chr2'" in str(e)


def test_error_duplicate_names(tmp_path):
    e = _err(tmp_path, b">a\nAC\n>b\nGG\n>a\nTT\n")
    assert e.record == "a" and e.line == 5 and "first seen at line 1" in str(e)


def test_error_empty_record_name(tmp_path):
    assert "empty record name" in str(_err(tmp_path, b">\nACGT\n"))


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_error_truncated_compressed_stream(tmp_path, lambda_fasta, kind):
    text = gzip.decompress(lambda_fasta.read_bytes())
    full = _write(tmp_path / "full", text, kind).read_bytes()
    (tmp_path / "cut.fa.gz").write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(SequenceFormatError) as ei:
        list(read_fasta(tmp_path / "cut.fa.gz"))
    e = ei.value
    assert "truncated" in str(e) and e.record == "NC_001416.1" and e.line > 1
    assert str(tmp_path / "cut.fa.gz") in str(e)


def test_write_read_round_trip_all_compressions(tmp_path):
    recs = [("chr1", "ACGTNNNNacgtRYKM" * 13), ("chr2", encode("GATTACA")), ("empty", "")]
    for suffix in (".fa", ".fa.gz", ".fa.xz", ".fa.bz2"):
        path = write_fasta(tmp_path / f"o{suffix}", recs, line_width=7)
        got = list(read_fasta(path))
        assert [r.name for r in got] == ["chr1", "chr2", "empty"]
        assert got[0].sequence == recs[0][1] and got[1].sequence == "GATTACA" and len(got[2]) == 0
    assert detect_compression(tmp_path / "o.fa.gz") == "bgzip"
    lines = (tmp_path / "o.fa").read_text().splitlines()
    assert lines[1] == "ACGTNNN" and max(map(len, lines[1:])) == 7


def test_write_is_atomic_on_error(tmp_path):
    path = tmp_path / "out.fa"
    path.write_text(">old\nAC\n")
    with pytest.raises(ValueError, match="duplicate"):
        write_fasta(path, [("a", "AC"), ("a", "GT")])
    assert path.read_text() == ">old\nAC\n"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fa"]  # no temp file left


@settings(max_examples=40, deadline=None)
@given(
    seqs=st.lists(st.text(alphabet=BASES + BASES.lower().replace("-", ""), max_size=300), min_size=1, max_size=5),
    width=st.integers(0, 80),
    block=st.integers(16, 512),
)
def test_round_trip_property(tmp_path_factory, seqs, width, block):
    path = tmp_path_factory.mktemp("rt") / "x.fa"
    write_fasta(path, [(f"r{i}", s) for i, s in enumerate(seqs)], line_width=width)
    got = list(read_fasta(path, block_bytes=block))
    assert [decode(r.codes) for r in got] == seqs
    assert all(isinstance(r, FastaRecord) for r in got)
