"""FASTQ reading (errors named) and writing."""

import gzip
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq.io import SequenceFormatError, read_fastq, write_fastq


def test_real_illumina_reads_match_biopython(shared):
    fq = [shared / "reads/honeybee_virus_illumina_real/SRR059298_subset.fastq.gz"]
    reads = []
    for r in read_fastq(fq[0]):
        reads.append(r)
        if len(reads) == 500:
            break
    assert all(len(r.codes) == len(r.quality) for r in reads)
    # compare with Biopython on the same records
    from Bio.SeqIO.QualityIO import FastqGeneralIterator

    opener = gzip.open if fq[0].suffix == ".gz" else open
    with opener(fq[0], "rt") as fh:
        for r, (title, seq, qual) in zip(reads, FastqGeneralIterator(fh), strict=False):
            assert r.name == title.split()[0] and r.sequence.upper() == seq.upper() and r.quality_string == qual


def test_round_trip(tmp_path):
    recs = [("r1", "ACGTN", "IIII#"), ("r2", "gattaca", np.array([0, 10, 20, 30, 40, 41, 2]))]
    for name in ("x.fq", "x.fq.gz"):
        path = write_fastq(tmp_path / name, recs)
        got = list(read_fastq(path))
        assert [g.sequence for g in got] == ["ACGTN", "gattaca"]
        assert got[0].quality_string == "IIII#" and got[1].quality.tolist() == [0, 10, 20, 30, 40, 41, 2]


def _err(text: bytes) -> SequenceFormatError:
    with pytest.raises(SequenceFormatError) as ei:
        list(read_fastq(io.BytesIO(text)))
    return ei.value


def test_error_quality_length():
    e = _err(b"@r1\nACGT\n+\nIIII\n@r2 x\nACGTA\n+\nIIII\n")
    assert e.record == "r2" and e.line == 8 and "quality length 4 != sequence length 5" in str(e)


def test_error_missing_header_and_fasta_hint():
    assert "starting with '@'" in str(_err(b"r1\nACGT\n+\nIIII\n"))
    assert "looks like FASTA" in str(_err(b">r1\nACGT\n"))


def test_error_invalid_base_and_missing_plus_and_truncation_and_empty():
    e = _err(b"@r1\nACXT\n+\nIIII\n")
    assert e.line == 2 and "'X'" in str(e) and "column 3" in str(e)
    assert "'+' separator" in str(_err(b"@r1\nACGT\nIIII\n@r2\n"))
    e = _err(b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n")
    assert e.record == "r2" and "truncated record" in str(e)
    assert "empty file" in str(_err(b""))


def test_error_truncated_gzip(tmp_path):
    body = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, b"ACGT" * 25, b"I" * 100) for i in range(3000))
    blob = gzip.compress(body)
    path = tmp_path / "cut.fq.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SequenceFormatError, match="truncated compressed stream") as ei:
        list(read_fastq(path))
    assert ei.value.record is not None and str(path) in str(ei.value)


@settings(max_examples=30, deadline=None)
@given(reads=st.lists(st.text(alphabet="ACGTNacgtn", max_size=150), min_size=1, max_size=6), data=st.data())
def test_round_trip_property(tmp_path_factory, reads, data):
    quals = [np.array(data.draw(st.lists(st.integers(0, 93), min_size=len(r), max_size=len(r))), dtype=np.uint8)
             for r in reads]
    path = tmp_path_factory.mktemp("fq") / "x.fq.gz"
    write_fastq(path, [(f"read{i}", r, q) for i, (r, q) in enumerate(zip(reads, quals, strict=True))])
    got = list(read_fastq(path, block_bytes=64))
    assert [g.sequence for g in got] == reads
    assert all(np.array_equal(g.quality, q) for g, q in zip(got, quals, strict=True))
