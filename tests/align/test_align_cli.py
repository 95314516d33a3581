"""End-to-end behaviour of ``bioseq index`` / ``bioseq align`` on phage lambda."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess

import numpy as np
import pysam
import pytest

from bioseq import alphabet
from tests.align.conftest import make_encoder, run_cli, simulate, write_fastq


def _records(sam_text: str):
    return [line.split("\t") for line in sam_text.splitlines() if line and not line.startswith("@")]


def _body(sam_text: str) -> str:
    # the @PG line records the command line, which legitimately differs between runs
    return "\n".join(line for line in sam_text.splitlines() if not line.startswith("@PG"))


def test_sam_is_valid_and_reads_are_placed(tmp_path, lambda_index, lambda_reads, lambda_contig):
    fq, reads = lambda_reads
    out = tmp_path / "out.sam"
    res = run_cli("align", str(lambda_index), str(fq), "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text()
    head = [line for line in text.splitlines() if line.startswith("@")]
    assert head[0].startswith("@HD\tVN:1.6")
    assert head[1] == f"@SQ\tSN:{lambda_contig.name}\tLN:{lambda_contig.length}\tM5:{lambda_contig.md5}"
    assert head[-1].startswith("@PG\tID:bioseq")
    with pysam.AlignmentFile(str(out)) as f:
        recs = list(f)
    assert [r.query_name for r in recs] == [r[0] for r in reads]  # one primary line per read, in order
    truth = {r[0]: r for r in reads}
    correct = 0
    for r in recs:
        assert not r.is_secondary and not r.is_unmapped
        assert 0 <= r.mapping_quality <= 60
        correct += abs(r.reference_start + 1 - truth[r.query_name][3]) <= 10
        # NM and MD agree with the reference, base by base
        ref = alphabet.decode(lambda_contig.codes[r.reference_start : r.reference_end])
        assert r.get_reference_sequence().upper() == ref
        mism = sum(1 for q, p, b in r.get_aligned_pairs(matches_only=True, with_seq=True)
                   if r.query_sequence[q] != b.upper())
        ins_del = sum(n for op, n in r.cigartuples if op in (1, 2))
        assert r.get_tag("NM") == mism + ins_del
    assert correct >= 0.97 * len(reads)
    if shutil.which("samtools"):
        assert subprocess.run(["samtools", "quickcheck", str(out)]).returncode == 0
        v = subprocess.run(["samtools", "view", "-c", str(out)], capture_output=True, text=True)
        assert int(v.stdout) == len(reads)


def test_reverse_strand_reads(tmp_path, lambda_index, lambda_reads):
    fq, reads = lambda_reads
    res = run_cli("align", str(lambda_index), str(fq))
    assert res.exit_code == 0
    by_name = {r[0]: r for r in reads}
    n_rev = 0
    for rec in _records(res.stdout):
        name, flag, seq, qual = rec[0], int(rec[1]), rec[9], rec[10]
        _, orig, oqual, _, strand = by_name[name]
        assert bool(flag & 16) == bool(strand), name
        if strand:
            n_rev += 1
            assert seq == alphabet.reverse_complement(orig) and qual == oqual[::-1]
        else:
            assert seq == orig and qual == oqual
    assert n_rev == len(reads) // 2


def test_output_identical_for_threads_and_batch_size(tmp_path, lambda_index, lambda_reads):
    fq = write_fastq(tmp_path / "some.fq", lambda_reads[1][:40])
    outs = []
    for args in (["-t", "1"], ["-t", "2"], ["-t", "1", "--batch-size", "7"], ["-t", "2", "--batch-size", "33"]):
        res = run_cli("align", str(lambda_index), str(fq), *args)
        assert res.exit_code == 0
        outs.append(_body(res.stdout))
    assert all(o == outs[0] for o in outs[1:])


def test_bam_gzip_and_stdin(tmp_path, lambda_index, lambda_reads):
    fq, reads = lambda_reads
    gz = tmp_path / "reads.fq.gz"
    with open(fq, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    sam = run_cli("align", str(lambda_index), str(fq)).stdout
    bam = tmp_path / "out.bam"
    assert run_cli("align", str(lambda_index), str(gz), "-o", str(bam)).exit_code == 0
    with pysam.AlignmentFile(str(bam), "rb") as f:
        from_bam = [(r.query_name, r.flag, r.reference_start + 1, r.cigarstring) for r in f]
    from_sam = [(r[0], int(r[1]), int(r[3]), r[5]) for r in _records(sam)]
    assert from_bam == from_sam
    from typer.testing import CliRunner

    from bioseq.cli import app

    res = CliRunner().invoke(app, ["align", str(lambda_index), "-"], input=fq.read_bytes())
    assert res.exit_code == 0 and _body(res.stdout) == _body(sam)


def test_paired_end(tmp_path, lambda_index, lambda_contig):
    import numpy as np

    rng = np.random.default_rng(3)
    r1, r2, truth = [], [], {}
    for i in range(40):
        ins = int(rng.integers(250, 400))
        s = int(rng.integers(0, lambda_contig.length - ins))
        frag = lambda_contig.codes[s : s + ins]
        a = alphabet.decode(frag[:100])
        b = alphabet.reverse_complement(alphabet.decode(frag[-100:]))
        if i % 2:  # fragment from the reverse strand: mate 1 is the reverse one
            a, b = b, a
        r1.append((f"p{i}", a, "I" * 100))
        r2.append((f"p{i}", b, "I" * 100))
        truth[f"p{i}"] = (s + 1, ins)
    f1, f2 = write_fastq(tmp_path / "r1.fq", r1), write_fastq(tmp_path / "r2.fq", r2)
    res = run_cli("align", str(lambda_index), str(f1), str(f2))
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    assert len(recs) == 80
    for a, b in zip(recs[::2], recs[1::2]):
        fa, fb = int(a[1]), int(b[1])
        assert a[0] == b[0] and fa & 0x41 == 0x41 and fb & 0x81 == 0x81
        assert fa & 2 and fb & 2, (a[:9], b[:9])  # proper pair
        assert bool(fa & 16) != bool(fb & 16) and bool(fa & 32) == bool(fb & 16)
        assert a[6] == "=" and int(a[7]) == int(b[3]) and int(b[7]) == int(a[3])
        s, ins = truth[a[0]]
        assert int(a[8]) == -int(b[8]) and abs(int(a[8])) == ins
        assert min(int(a[3]), int(b[3])) == s


def test_bad_reads_are_reported_unmapped(tmp_path, lambda_index, lambda_contig):
    good = simulate(lambda_contig, 2, 150, seed=1)
    reads = [good[0], ("empty", "", "", 0, 0), ("short", "ACGTACGTAC", "IIIIIIIIII", 0, 0),
             ("allN", "N" * 150, "I" * 150, 0, 0), good[1]]
    fq = write_fastq(tmp_path / "bad.fq", reads)
    res = run_cli("align", str(lambda_index), str(fq))
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    assert [r[0] for r in recs] == ["r0_" + good[0][0].split("_", 1)[1], "empty", "short", "allN", good[1][0]]
    flags = [int(r[1]) for r in recs]
    assert flags[1] == flags[2] == flags[3] == 4 and not flags[0] & 4 and not flags[4] & 4
    assert recs[1][9] == "*" and recs[2][9] == "ACGTACGTAC"
    err = res.stderr
    assert "record 2 'empty': empty sequence" in err
    assert "record 3 'short': shorter than the minimum length 30 bp (10 bp)" in err
    assert "record 4 'allN': all N" in err


def test_clear_errors(tmp_path, lambda_index, lambda_fasta, lambda_reads):
    fq, _ = lambda_reads
    bad = tmp_path / "bad.fq"
    bad.write_text("@ok\nACGT\n+\nIIII\n@bad\nACGTZZ\n+\nIIIIII\n")
    res = run_cli("align", str(lambda_index), str(bad))
    assert res.exit_code == 1 and "bad.fq, line 6, record 'bad': invalid character 'Z'" in res.stderr
    bad.write_text("@q\nACGT\n+\nIII\n")
    res = run_cli("align", str(lambda_index), str(bad))
    assert res.exit_code == 1 and "bad.fq" in res.stderr and "record 'q'" in res.stderr and "quality" in res.stderr
    # an index built by another encoder
    other = make_encoder(tmp_path / "other", seed=1)
    res = run_cli("align", str(lambda_index), str(fq), "--encoder", str(other))
    assert res.exit_code == 1 and "built with encoder" in res.stderr and "rebuild the index" in res.stderr
    res = run_cli("align", str(tmp_path), str(fq))
    assert res.exit_code == 1 and "not a bioseq alignment index" in res.stderr
    # a future format version is refused, not misread
    copy = tmp_path / "v99.esa"
    shutil.copytree(lambda_index, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(m))
    res = run_cli("align", str(copy), str(fq))
    assert res.exit_code == 1 and "format_version 99 is not supported" in res.stderr
    res = run_cli("align", str(lambda_index), str(tmp_path / "missing.fq"))
    assert res.exit_code == 1 and "missing.fq: no such file" in res.stderr
    f2 = write_fastq(tmp_path / "mate.fq", [("other", "ACGT" * 20, "I" * 80)])
    f1 = write_fastq(tmp_path / "one.fq", [("first", "ACGT" * 20, "I" * 80)])
    res = run_cli("align", str(lambda_index), str(f1), str(f2))
    assert res.exit_code == 1 and "does not match mate" in res.stderr


@pytest.mark.parametrize("mode", ["emb+vote", "seed"])
def test_modes_run(lambda_index, lambda_reads, mode):
    fq, reads = lambda_reads
    res = run_cli("align", str(lambda_index), str(fq), "--mode", mode)
    assert res.exit_code == 0
    assert len(_records(res.stdout)) == len(reads)


def test_repeats_get_mapq_zero_and_secondary_lines(tmp_path, lambda_contig):
    """A read from a duplicated segment: AS == XS, MAPQ 0, and --secondary reports the other copy."""
    seg = alphabet.decode(lambda_contig.codes[30_000:30_600])
    a = alphabet.decode(lambda_contig.codes[:4000]) + seg + alphabet.decode(lambda_contig.codes[4000:6000])
    b = alphabet.decode(lambda_contig.codes[10_000:12_000]) + seg + alphabet.decode(lambda_contig.codes[12_000:13_000])
    fa = tmp_path / "rep.fa"
    fa.write_text(f">a\n{a}\n>b\n{b}\n")
    idx = tmp_path / "rep.esa"
    assert run_cli("index", str(fa), "-o", str(idx)).exit_code == 0
    read = seg[200:350]
    uniq = a[1000:1150]
    fq = write_fastq(tmp_path / "r.fq", [("rep", read, "I" * 150), ("uniq", uniq, "I" * 150)])
    res = run_cli("align", str(idx), str(fq), "--secondary", "1")
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    assert [(r[0], int(r[1]) & 0x100) for r in recs] == [("rep", 0), ("rep", 0x100), ("uniq", 0)]
    prim, sec, u = recs
    assert int(prim[4]) == 0 and "AS:i:150" in prim and "XS:i:150" in prim
    assert {(prim[2], int(prim[3])), (sec[2], int(sec[3]))} == {("a", 4201), ("b", 2201)}
    assert sec[9] == "*" and int(u[4]) == 60 and (u[2], int(u[3])) == ("a", 1001)
    if shutil.which("samtools"):
        out = tmp_path / "rep.sam"
        out.write_text(res.stdout)
        assert subprocess.run(["samtools", "quickcheck", str(out)]).returncode == 0


def test_mismatches_near_the_ends_do_not_clip(tmp_path, lambda_index, lambda_contig):
    """Like bwa mem's clipping penalty: an end is extended unless that costs more than 5."""
    ref = alphabet.decode(lambda_contig.codes[25_000:25_150])
    sub = {"A": "C", "C": "G", "G": "T", "T": "A"}
    read = ref[:2] + sub[ref[2]] + ref[3:146] + sub[ref[146]] + ref[147:]
    clipped = ref[:2] + sub[ref[2]] + sub[ref[3]] + ref[4:]  # two mismatches in 4 bases: clip
    fq = write_fastq(tmp_path / "ends.fq", [("ends", read, "I" * 150), ("clip", clipped, "I" * 150)])
    res = run_cli("align", str(lambda_index), str(fq))
    a, b = _records(res.stdout)
    assert (a[3], a[5]) == ("25001", "150M") and "NM:i:2" in a and "AS:i:140" in a
    assert (b[3], b[5]) == ("25005", "4S146M") and "NM:i:0" in b and "AS:i:146" in b


def test_hnsw_index_for_large_references(tmp_path, lambda_fasta, lambda_reads):
    """Above --hnsw-above fragments the index is HNSW; it loads and places reads like the exact one."""
    idx = tmp_path / "hnsw.esa"
    assert run_cli("index", str(lambda_fasta), "-o", str(idx), "--hnsw-above", "100").exit_code == 0
    assert json.loads((idx / "manifest.json").read_text())["faiss"] == "hnsw32"
    fq, reads = lambda_reads
    res = run_cli("align", str(idx), str(fq))
    assert res.exit_code == 0
    truth = {r[0]: r[3] for r in reads}
    correct = sum(abs(int(r[3]) - truth[r[0]]) <= 10 for r in _records(res.stdout))
    assert correct >= 0.97 * len(reads)


def test_embedding_rescues_reads_without_seeds(tmp_path, lambda_fasta, lambda_contig):
    """Reads with a substitution every 12 bp share no 15-mer with the reference, so the seeds find
    nothing; the shipped encoder (never trained on lambda) still places some of them in rescue mode."""
    import numpy as np

    from bioseq.align.encoder import DEFAULT_ENCODER

    rng = np.random.default_rng(0)
    reads = []
    for i in range(60):
        s = int(rng.integers(0, lambda_contig.length - 150))
        r = lambda_contig.codes[s : s + 150].copy()
        r[int(rng.integers(0, 12)) :: 12] += 1
        r %= 4
        if i % 2:
            r = alphabet.reverse_complement_codes(r)
        reads.append((f"r{i}_{s + 1}", alphabet.decode(r), "I" * 150))
    fq = write_fastq(tmp_path / "seedless.fq", reads)
    idx = tmp_path / "lambda.esa"
    assert run_cli("index", str(lambda_fasta), "-o", str(idx), "--encoder", str(DEFAULT_ENCODER)).exit_code == 0
    placed = {}
    for mode in ("seed", "rescue"):
        res = run_cli("align", str(idx), str(fq), "--mode", mode, "--encoder", str(DEFAULT_ENCODER))
        assert res.exit_code == 0, res.output
        placed[mode] = [r for r in _records(res.stdout) if r[2] != "*"]
    assert placed["seed"] == []
    assert len(placed["rescue"]) >= 8
    for r in placed["rescue"]:  # placed where the read came from (soft clips shift POS)
        clip = sum(int(n) for n, op in re.findall(r"(\d+)([SIDM])", r[5]) if op == "S")
        assert abs(int(r[3]) - int(r[0].split("_")[1])) <= clip + 10, r[:6]
    assert "60 searched by embedding" in res.stderr


@pytest.mark.slow
def test_distributed_align_equals_single_process(tmp_path, lambda_index, lambda_reads, tiny_encoder):
    """`accelerate launch --num_processes 2 bioseq align` (CPU, gloo) writes the same SAM as one process."""
    import os
    import sys

    from tests.conftest import ROOT

    acc = os.path.join(os.path.dirname(sys.executable), "accelerate")
    if not os.path.exists(acc):
        pytest.skip("accelerate launcher not installed")
    fq, _ = lambda_reads
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BIOSEQ_ESA_ENCODER": str(tiny_encoder)}
    args = ["align", str(lambda_index), str(fq), "--batch-size", "16", "--mode", "hybrid"]
    subprocess.run([sys.executable, "-m", "bioseq", *args, "-o", str(tmp_path / "one.sam")],
                   check=True, env=env, capture_output=True, timeout=600)
    subprocess.run([acc, "launch", "--cpu", "--num_processes", "2", "-m", "bioseq", *args, "-o", str(tmp_path / "two.sam")],
                   check=True, env=env, capture_output=True, timeout=600)
    assert _body((tmp_path / "one.sam").read_text()) == _body((tmp_path / "two.sam").read_text())


def test_insert_model_from_unique_proper_pairs():
    from bioseq.align.aligner import AlignParams, Hit, ReadResult
    from bioseq.align.pipeline import estimate_insert

    import numpy as np

    rng = np.random.default_rng(1)
    pairs = []
    for ins in list(rng.normal(500, 50, 300).astype(int)) + [5, 900, 990]:  # three outliers
        a = Hit(score=150, contig=0, pos=1000, end=1150, strand=0)
        b = Hit(score=150, contig=0, pos=1000 + ins - 150, end=1000 + ins, strand=1)
        pairs.append((ReadResult(hits=[a]), ReadResult(hits=[b])))
    repeat = Hit(score=150, contig=0, pos=90_000, end=90_150, strand=0)  # not unique: ignored
    pairs.append((ReadResult(hits=[Hit(score=150, contig=0, pos=0, end=150, strand=0), repeat]),
                  ReadResult(hits=[Hit(score=150, contig=0, pos=2000, end=2150, strand=1)])))
    m = estimate_insert(pairs, AlignParams())
    assert abs(m.mean - 500) < 8 and abs(m.std - 50) < 8 and m.n <= 301
    assert m.log_weight(500) > m.log_weight(600) > m.log_weight(700)
    assert estimate_insert(pairs[:10], AlignParams()) is None  # too few pairs to estimate


def test_mate_rescue_places_a_repeat_mate_next_to_its_unique_partner(tmp_path, tiny_encoder):
    """Mate 2 lies in a 150 bp element with 6 identical copies; mate 1 is unique. The pair must be
    proper, with mate 2 on the copy that faces mate 1 (found by Smith-Waterman in the mate window),
    not on the first of the six equal-scoring copies."""
    import numpy as np

    from bioseq.align.index import IndexParams, build_index
    from bioseq.align.encoder import load_encoder

    rng = np.random.default_rng(2)
    ref = rng.integers(0, 4, 30_000).astype(np.uint8)
    element = rng.integers(0, 4, 150).astype(np.uint8)
    copies = [2_000, 6_000, 11_000, 15_000, 21_000, 26_000]
    for c in copies:
        ref[c : c + 150] = element
    fa = tmp_path / "ref.fa"
    fa.write_text(">chrT\n" + alphabet.decode(ref) + "\n")
    idx = tmp_path / "ref.esa"
    build_index(fa, idx, load_encoder(tiny_encoder), IndexParams(), progress=False)
    r1, r2 = [], []
    for i, c in enumerate(copies[2:5]):  # mate 1 unique, 400 bp upstream of a copy
        s = c + 150 - 550
        r1.append((f"p{i}", alphabet.decode(ref[s : s + 150]), "I" * 150))
        r2.append((f"p{i}", alphabet.reverse_complement(alphabet.decode(ref[c : c + 150])), "I" * 150))
    f1, f2 = write_fastq(tmp_path / "r1.fq", r1), write_fastq(tmp_path / "r2.fq", r2)
    res = run_cli("align", str(idx), str(f1), str(f2))
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    for i, c in enumerate(copies[2:5]):
        a, b = recs[2 * i], recs[2 * i + 1]
        assert int(a[1]) & 2 and int(b[1]) & 2, (a[:9], b[:9])  # proper pair
        assert int(b[3]) == c + 1 and abs(int(a[8])) == 550


def test_reads_hanging_over_either_contig_end_are_placed(tmp_path, lambda_contig):
    """A read that starts before a contig's first base (a circular genome read across its origin,
    or one from just upstream) is placed at POS 1 with the overhang soft-clipped, on the right
    contig, like the same overhang at a contig's end; on both strands and on the first and a later
    contig (whose start's diagonal falls inside the previous contig)."""
    seq = alphabet.decode(lambda_contig.codes)
    a, b = seq[:20_000], seq[20_000:]
    fa = tmp_path / "two.fa"
    fa.write_text(f">a\n{a}\n>b\n{b}\n")
    idx = tmp_path / "two.esa"
    assert run_cli("index", str(fa), "-o", str(idx)).exit_code == 0
    cases = {  # name: (read, contig, POS, CIGAR of the forward read)
        "a_start": (a[-30:] + a[:120], "a", 1, "30S120M"),
        "b_start": (b[-40:] + b[:110], "b", 1, "40S110M"),
        "b_upstream": (a[-30:] + b[:120], "b", 1, "30S120M"),
        "a_end": (a[-120:] + a[:30], "a", len(a) - 119, "120M30S"),
        "b_end": (b[-110:] + b[:40], "b", len(b) - 109, "110M40S"),
    }
    reads = []
    for name, (r, *_) in cases.items():
        reads.append((name, r, "I" * len(r)))
        reads.append((name + "_rc", alphabet.reverse_complement(r), "I" * len(r)))
    fq = write_fastq(tmp_path / "ends.fq", reads)
    res = run_cli("align", str(idx), str(fq))
    assert res.exit_code == 0, res.output
    got = {r[0]: r for r in _records(res.stdout)}
    for name, (_, contig, pos, cigar) in cases.items():
        for suffix, flag in (("", 0), ("_rc", 16)):
            r = got[name + suffix]
            assert (int(r[1]), r[2], int(r[3])) == (flag, contig, pos), r[:6]
            assert r[5] == cigar, r[:6]  # SAM stores the reverse-strand read reverse-complemented
            assert int(r[4]) >= 20


def test_reported_scores_respect_the_minimum(tmp_path, lambda_index, lambda_contig):
    """Extending an end over a mismatch lowers the score after the local search; a hit that ends
    below -T is not reported (AS >= -T on every mapped line)."""
    ref = alphabet.decode(lambda_contig.codes[25_000:25_100])
    sub = {"A": "C", "C": "G", "G": "T", "T": "A"}
    read = ref[:97] + sub[ref[97]] + ref[98:]  # local score 97; extended over the mismatch: 95
    fq = write_fastq(tmp_path / "t.fq", [("r", read, "I" * 100)])
    for t, mapped in ((95, True), (96, False), (97, False)):
        res = run_cli("align", str(lambda_index), str(fq), "-T", str(t))
        assert res.exit_code == 0, res.output
        (rec,) = _records(res.stdout)
        assert (rec[2] != "*") == mapped, (t, rec[:6])
        if mapped:
            assert "AS:i:95" in rec and rec[5] == "100M"


def test_short_reads_with_mismatches_map(tmp_path, lambda_index, lambda_contig):
    """35-50 bp reads with one or two mismatches score below the default -T 30 of long reads; the
    minimum scales with read length, so they map (bwa aln's territory)."""
    rng = np.random.default_rng(3)
    sub = {"A": "C", "C": "G", "G": "T", "T": "A"}
    reads, truth = [], {}
    for i in range(40):
        n = (35, 40, 50)[i % 3]
        s = int(rng.integers(0, lambda_contig.length - n))
        r = list(alphabet.decode(lambda_contig.codes[s : s + n]))
        for j in rng.choice(np.arange(8, n - 8), 1 + i % 2, replace=False):
            r[j] = sub[r[j]]
        r = "".join(r)
        if i % 2:
            r = alphabet.reverse_complement(r)
        reads.append((f"s{i}", r, "I" * n))
        truth[f"s{i}"] = s + 1
    res = run_cli("align", str(lambda_index), str(write_fastq(tmp_path / "short.fq", reads)))
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    ok = sum(r[2] != "*" and abs(int(r[3]) - truth[r[0]]) <= 2 for r in recs)
    assert ok >= 0.9 * len(reads), [r[:6] for r in recs if r[2] == "*"]


def test_indel_near_a_read_end_is_aligned_not_clipped(tmp_path, lambda_index, lambda_contig):
    """A deletion 6 bp from the start costs less than clipping (gap 8 - 6 matches = -2 > -5): the
    alignment reaches the read's first base through the gap, as bwa mem's does."""
    ref = alphabet.decode(lambda_contig.codes[30_000:30_200])
    read = ref[:6] + ref[8:156]  # 2 bp deleted after the 6th base
    ins = ref[:150][:144] + "TT" + ref[144:150]  # a 2 bp insertion 6 bp before the end
    fq = write_fastq(tmp_path / "gap.fq", [("del", read, "I" * len(read)), ("ins", ins, "I" * len(ins))])
    res = run_cli("align", str(lambda_index), str(fq))
    d, i = _records(res.stdout)
    assert (d[3], d[5]) == ("30001", "6M2D148M") and "NM:i:2" in d and "AS:i:146" in d, d[:6]
    # (the insertion's exact place may shift by a base where the reference repeats it)
    assert i[3] == "30001" and re.fullmatch(r"14\dM2I\dM", i[5]) and "NM:i:2" in i, i[:6]


def test_sketch_index_builds_fast_and_places_divergent_reads(tmp_path, lambda_fasta, lambda_contig):
    """The default index embeds fragments with the k-mer sketch: no network, no embeddings file;
    `--mode emb` alone places reads with 10% substitutions, every one of them counted as placed
    by the embedding in the summary line."""
    idx = tmp_path / "sk.esa"
    assert run_cli("index", str(lambda_fasta), "-o", str(idx)).exit_code == 0
    m = json.loads((idx / "manifest.json").read_text())
    assert m["encoder"]["config"]["model_type"] == "sketch" and not (idx / "embeddings.npy").exists()
    assert (m["fragment_len"], m["stride"]) == (300, 150)
    reads = simulate(lambda_contig, 60, 150, seed=5, sub=0.10, indel=0.005)
    fq = write_fastq(tmp_path / "div.fq", reads)
    res = run_cli("align", str(idx), str(fq), "--mode", "emb")
    assert res.exit_code == 0, res.output
    recs = _records(res.stdout)
    ok = sum(r[2] != "*" and abs(int(r[3]) - t[3]) <= 20 for r, t in zip(recs, reads))
    assert ok >= 0.9 * len(reads)
    mapped = sum(r[2] != "*" for r in recs)
    assert f"{len(reads)} reads, {mapped} mapped; {len(reads)} searched by embedding, {mapped} placed by it" in res.stderr


def test_progress_on_stderr_and_quiet_with_v0(tmp_path, lambda_index, lambda_reads):
    fq, reads = lambda_reads
    res = run_cli("align", str(lambda_index), str(fq))
    assert re.search(r"bioseq align: [\d,]+ reads, [\d.]+% mapped, [\d,]+ reads/s", res.stderr), res.stderr
    quiet = run_cli("align", str(lambda_index), str(fq), "-v", "0")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert _body(quiet.stdout) == _body(res.stdout)
