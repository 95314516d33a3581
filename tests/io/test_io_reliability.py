"""Reader strictness added for data safety: line endings, NUL bytes, '+name', BGZF EOF, directories."""

from __future__ import annotations

import gzip

import pytest

from bioseq.io import SequenceFormatError, read_fasta, read_fastq
from bioseq.io.compression import BGZF_EOF


def test_cr_only_line_endings_are_refused_with_the_line(tmp_path):
    p = tmp_path / "mac.fa"
    p.write_bytes(b">a\rACGT\rACGT\r>b\rAC\r")
    with pytest.raises(SequenceFormatError, match=r"mac.fa, line 1.*old Mac OS") as e:
        list(read_fasta(p))
    assert e.value.line == 1
    q = tmp_path / "mac.fq"
    q.write_bytes(b"@r\nACGT\n+\nIIII\n@s\rACGT\r+\rIIII\r")
    with pytest.raises(SequenceFormatError, match=r"mac.fq, line 5.*carriage return"):
        list(read_fastq(q))


def test_crlf_is_fine_and_a_lone_cr_mid_file_is_not(tmp_path):
    p = tmp_path / "win.fa"
    p.write_bytes(b">a x\r\nACGT\r\nAC\r\n>b\r\nGG")
    assert [(r.name, r.description, r.sequence) for r in read_fasta(p)] == [("a", "x", "ACGTAC"), ("b", "", "GG")]
    p.write_bytes(b">a\nACGT\nAC\rGT\n")
    with pytest.raises(SequenceFormatError, match="line 3"):
        list(read_fasta(p))


def test_cr_check_counts_lines_across_blocks(tmp_path):
    p = tmp_path / "big.fa"
    p.write_bytes(b">a\n" + b"ACGT" * 20 + b"\n" + (b"ACGTACGT\n" * 5000) + b"AC\rGT\n")
    with pytest.raises(SequenceFormatError) as e:
        list(read_fasta(p, block_bytes=1 << 12))
    assert e.value.line == 5003


@pytest.mark.parametrize("reader,text", [(read_fasta, b">ch\x00r1\nACGT\n"), (read_fastq, b"@r\x001\nAC\n+\nII\n")])
def test_nul_in_a_name(tmp_path, reader, text):
    p = tmp_path / "nul.txt"
    p.write_bytes(text)
    with pytest.raises(SequenceFormatError, match=r"nul.txt, line 1: NUL byte"):
        list(reader(p))


def test_plus_line_must_repeat_the_same_name(tmp_path):
    p = tmp_path / "r.fq"
    p.write_bytes(b"@r1 lane=2\nACGT\n+r1 lane=2\nIIII\n@r2\nACGT\n+r2\nIIII\n@r3\nAC\n+r2\nII\n")
    with pytest.raises(SequenceFormatError, match=r"r.fq, line 11, record 'r3': the '\+' line names 'r2'"):
        list(read_fastq(p))
    p.write_bytes(b"@r1 x\nACGT\n+r1\nIIII\n")  # the name alone is a common, valid form
    assert [r.name for r in read_fastq(p)] == ["r1"]


def test_directory_as_input(tmp_path):
    d = tmp_path / "genome.fa"
    d.mkdir()
    for reader in (read_fasta, read_fastq):
        with pytest.raises(SequenceFormatError, match="genome.fa: is a directory"):
            list(reader(d))


def test_bgzf_without_eof_block_is_truncation(tmp_path):
    import pysam

    good = tmp_path / "g.fa.gz"
    with pysam.BGZFile(str(good), "wb") as f:
        f.write(b">a\n" + b"ACGT" * 100_000 + b"\n>b\nGGGG\n")
    data = good.read_bytes()
    assert data.endswith(BGZF_EOF)
    assert [r.name for r in read_fasta(good)] == ["a", "b"]
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(data[: -len(BGZF_EOF)])
    with pytest.raises(SequenceFormatError, match=r"cut.fa.gz: truncated bgzip file"):
        list(read_fasta(cut))
    # cut at an inner block boundary: still a valid gzip stream, only the EOF block tells
    first_block = int.from_bytes(data[16:18], "little") + 1
    cut.write_bytes(data[:first_block])
    assert gzip.decompress(cut.read_bytes())  # Python's gzip alone would accept it
    with pytest.raises(SequenceFormatError, match="truncated bgzip"):
        list(read_fasta(cut))


def test_fasta_empty_names_numbered_only_on_request(tmp_path):
    p = tmp_path / "r.fa"
    p.write_bytes(b">\nACGT\n>x\nAC\n> \nGG\n")
    with pytest.raises(SequenceFormatError, match="empty record name"):
        list(read_fasta(p))
    assert [r.name for r in read_fasta(p, empty_names="number")] == ["1", "x", "3"]


def test_bgzf_eof_block_checked_on_streams(tmp_path):
    import io

    import pysam

    good = tmp_path / "g.fq.gz"
    with pysam.BGZFile(str(good), "wb") as f:
        f.write(b"@r1\nACGT\n+\nIIII\n")
    data = good.read_bytes()
    assert [r.name for r in read_fastq(io.BytesIO(data))] == ["r1"]
    with pytest.raises(SequenceFormatError, match="truncated bgzip stream"):
        list(read_fastq(io.BytesIO(data[: -len(BGZF_EOF)])))
