"""Every SAM/BAM file we write passes ``samtools view``: QNAME and RNAME follow the SAM spec."""

from __future__ import annotations

import re

import pysam
import pytest

from bioseq.align.sam import QNAME_MAX, check_rname, qname

QNAME_RE = re.compile(r"[!-?A-~]{1,254}")
READ = "ACGTTGCAAGGCTTACCGATAGGCATTCAGGTACCATG"


def _samtools_view(path) -> list[str]:
    """Records as ``samtools view`` prints them (raises SamtoolsError on an invalid file)."""
    return [ln for ln in pysam.view(str(path)).splitlines() if ln]


@pytest.mark.parametrize("suffix", [".sam", ".bam"])
def test_awkward_read_names_pass_samtools(fuzz_env, invoke, tmp_path, suffix):
    names = ["@@", "x" * 300, "read with spaces", "r@host", "réad", "*", "ok/1"]
    fq = tmp_path / "r.fq"
    fq.write_text("".join(f"@{n}\n{READ}\n+\n{'I' * len(READ)}\n" for n in names))
    out = tmp_path / f"out{suffix}"
    res = invoke(["align", str(fuzz_env.index), str(fq), "-o", str(out), "--encoder", str(fuzz_env.encoder)])
    assert res[0] == 0, res
    got = [ln.split("\t")[0] for ln in _samtools_view(out)]
    # first word only (FASTQ), '@' and non-ASCII replaced, 254 characters at most, mate suffix dropped
    assert got == ["__", "x" * QNAME_MAX, "read", "r_host", "r_ad", "*", "ok"]
    assert all(QNAME_RE.fullmatch(n) for n in got)


def test_qname_rule():
    assert qname("") == "*"
    assert qname("a b\tc") == "a_b_c"
    assert len(qname("y" * 1000)) == QNAME_MAX
    for n in ("@", "\x01x", "é", "a@b", "x" * 255):
        assert QNAME_RE.fullmatch(qname(n))


@pytest.mark.parametrize("name,ok", [("chr1", True), ("HLA-A*01:01", True), ("chr1=", True), ("*chr", False),
                                     ("=chr", False), ("chr,1", False), ("chr(1)", False), ("chr\\1", False),
                                     ("chr\x00", False), ("chré", False)])
def test_rname_rule(name, ok):
    assert (check_rname(name) is None) == ok


@pytest.mark.parametrize("contig", ["*chr", "chr,1", "chr{1}"])
def test_index_refuses_contig_names_sam_does_not_allow(fuzz_env, invoke, tmp_path, contig):
    ref = tmp_path / "ref.fa"
    ref.write_text(f">{contig}\n{READ * 10}\n")
    out = tmp_path / "ref.esa"
    code, err, exc = invoke(["index", str(ref), "-o", str(out), "--encoder", str(fuzz_env.encoder)])
    assert exc is None and code == 1
    assert str(ref) in err and repr(contig) in err and "SAM" in err
    assert not out.exists()


def test_fasta_reads_without_names_are_numbered(fuzz_env, invoke, tmp_path):
    fa = tmp_path / "r.fa"
    fa.write_text(f">\n{READ}\n>  \n{READ[::-1]}\n>named\n{READ}\n>\n{READ}\n")
    out = tmp_path / "out.sam"
    res = invoke(["align", str(fuzz_env.index), str(fa), "-o", str(out), "--encoder", str(fuzz_env.encoder)])
    assert res[0] == 0, res
    assert [ln.split("\t")[0] for ln in _samtools_view(out)] == ["1", "2", "named", "4"]


def test_real_phix_reads_without_names(shared, fuzz_env, invoke, tmp_path):
    fa = shared / "reads" / "phiX174_real" / "srPhiX174_shortreads.fa"
    head = tmp_path / "head.fa"
    head.write_text("".join(fa.read_text().splitlines(keepends=True)[:200]))  # first 100 reads
    out = tmp_path / "out.bam"
    res = invoke(["align", str(fuzz_env.index), str(head), "-o", str(out), "--encoder", str(fuzz_env.encoder)])
    assert res[0] == 0, res
    assert [ln.split("\t")[0] for ln in _samtools_view(out)] == [str(i) for i in range(1, 101)]
