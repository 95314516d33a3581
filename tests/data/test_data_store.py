"""Building and reading the Zarr genome store: exact contents, metadata, atomicity, versions."""

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bioseq.alphabet import SOFTMASK, decode, reverse_complement_codes
from bioseq.data import FORMAT_NAME, GenomeStore, StoreFormatError, build_store
from bioseq.io import SequenceFormatError, read_fasta


def _tree(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = hashlib.sha1(open(p, "rb").read()).hexdigest()
    return out


def test_contents_and_metadata(two_genome_store, ecoli_codes, lambda_codes, lambda_fasta, ecoli_fasta):
    import pysam

    s = GenomeStore.open(two_genome_store)
    assert [c.name for c in s.contigs] == ["K-12-MG1655", "NC_001416.1"]
    assert s.genomes == ["ecoli", "lambda"]
    lam = s.contigs[1]
    assert (lam.length, lam.genome, lam.source) == (48502, "lambda", "lambda_NC_001416.fa.gz")
    # M5 agrees with samtools dict (htslib) on the same file
    assert f"M5:{lam.md5}" in pysam.dict(str(lambda_fasta))
    assert np.array_equal(s.fetch("K-12-MG1655"), ecoli_codes)
    assert s.fetch(1, 100, 160, as_str=True) == decode(lambda_codes[100:160])
    assert np.array_equal(s.fetch(1, 5, 25, strand="-"), reverse_complement_codes(lambda_codes[5:25]))
    with pytest.raises(IndexError, match="outside contig"):
        s.fetch(1, 48000, 48600)
    with pytest.raises(KeyError, match="no contig"):
        s.fetch("chrZ", 0, 1)
    root = json.loads((two_genome_store / "zarr.json").read_text())["attributes"]
    assert root["format"] == FORMAT_NAME and root["format_version"] == 2 and root["checksum"] == "crc32c"
    # E. coli (>= one chunk) has its own array, which says what it holds; lambda is packed
    arr = json.loads((two_genome_store / "seq/0/zarr.json").read_text())
    assert arr["attributes"]["md5"] == s.contigs[0].md5 and arr["chunk_grid"]["configuration"]["chunk_shape"] == [1 << 20]
    assert [c["name"] for c in arr["codecs"]] == ["bytes", "blosc", "crc32c"]  # checksummed by zarr itself
    assert (lam.array, lam.offset) == ("seq/packed", 0)
    assert root["arrays"] == [{"path": "seq/0", "length": 4639675, "checksums": [0, 5]},
                              {"path": "seq/packed", "length": 48502, "checksums": [5, 6]}]
    # the store is smaller than the gzip FASTA it came from
    size = sum(p.stat().st_size for p in two_genome_store.rglob("*") if p.is_file())
    assert size < 0.9 * (ecoli_fasta.stat().st_size + lambda_fasta.stat().st_size)


def test_softmask_ambiguity_and_runs(tmp_path, masked_fasta):
    store = build_store([masked_fasta], tmp_path / "m.zarr", chunk_size=4096)
    s = GenomeStore.open(store)
    codes = s.fetch("lam_gapped")
    ref = next(read_fasta(masked_fasta)).codes
    assert np.array_equal(codes, ref)
    assert (codes[10000:12000] & SOFTMASK).all() and not (codes[:10000] & SOFTMASK).any()
    got = s.fetch(0, 11998, 12003, as_str=True)
    assert got == decode(ref[11998:12003]) and got[:2].islower() and got[2:] == "NNN"
    assert s.ambiguous_runs("lam_gapped").tolist() == [[12000, 17000], [35000, 35002]]
    assert s.contigs[0].n_ambiguous == 5002 and s.contigs[1].n_ambiguous == 0
    # M5 is over the uppercase sequence
    up = decode(ref).upper().encode()
    assert s.contigs[0].md5 == hashlib.md5(up).hexdigest()


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_fetch_batch_equals_slices(lambda_small_chunk_store, lambda_codes, data):
    s, chunk = lambda_small_chunk_store
    length = data.draw(st.sampled_from([1, 7, chunk - 1, chunk, chunk + 1, 3 * chunk + 5]))
    n = data.draw(st.integers(0, 40))
    starts = np.array(data.draw(st.lists(st.integers(0, len(lambda_codes) - length), min_size=n, max_size=n)), dtype=np.int64)
    strands = np.array(data.draw(st.lists(st.sampled_from("+-"), min_size=n, max_size=n)), dtype="<U1")
    if data.draw(st.booleans()):
        s.clear_cache()
    got = s.fetch_batch(np.zeros(n, np.int64), starts, length, strands)
    assert got.shape == (n, length)
    for j in range(n):
        want = lambda_codes[starts[j] : starts[j] + length]
        if strands[j] == "-":
            want = reverse_complement_codes(want)
        assert np.array_equal(got[j], want)


@pytest.fixture(scope="module")
def lambda_small_chunk_store(tmp_path_factory, lambda_fasta):
    chunk = 1000  # many chunk boundaries on a small genome
    path = build_store([lambda_fasta], tmp_path_factory.mktemp("c") / "l.zarr", chunk_size=chunk)
    return GenomeStore.open(path, cache_bytes=5 * chunk), chunk  # a tiny cache forces evictions


def test_fetch_batch_errors(two_genome_store):
    s = GenomeStore.open(two_genome_store)
    with pytest.raises(IndexError, match="outside contig 'NC_001416.1'"):
        s.fetch_batch([0, 1], [0, 48000], 1000)
    assert s.fetch_batch(["NC_001416.1"], [0], 10).shape == (1, 10)
    with pytest.raises(TypeError, match="booleans"):
        s.fetch_batch([1, 1], [0, 5], 10, np.array([1, -1]))
    with pytest.raises(ValueError, match="'x'"):
        s.fetch_batch([1, 1], [0, 5], 10, ["+", "x"])
    assert np.array_equal(s.fetch_batch([1], [3], 10, [True])[0], s.fetch(1, 3, 13, strand="-"))


def test_rebuild_is_idempotent_and_sharding_gives_same_data(tmp_path, lambda_fasta, masked_fasta):
    a = build_store([lambda_fasta, masked_fasta], tmp_path / "a.zarr", chunk_size=8192)
    first = _tree(a)
    build_store([lambda_fasta, masked_fasta], tmp_path / "a.zarr", chunk_size=8192)  # over itself
    assert _tree(a) == first
    b = build_store([lambda_fasta, masked_fasta], tmp_path / "b.zarr", chunk_size=8192, chunks_per_shard=4)
    assert len(_tree(b)) < len(first)
    sa, sb = GenomeStore.open(a), GenomeStore.open(b)
    for c in sa.contigs:
        assert np.array_equal(sa.fetch(c.index), sb.fetch(c.index))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "b.zarr"]  # no temp dirs left


def test_failed_build_leaves_old_store_and_no_temp(tmp_path, lambda_fasta):
    out = build_store([lambda_fasta], tmp_path / "s.zarr")
    before = _tree(out)
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nACGT\n>y\nACGZ\n")
    with pytest.raises(SequenceFormatError, match="'Z'"):
        build_store([lambda_fasta, bad], out)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "s.zarr"]
    with pytest.raises(SequenceFormatError):
        build_store([bad], tmp_path / "new.zarr")
    assert not (tmp_path / "new.zarr").exists()


def test_duplicate_contigs_within_a_genome_fail_across_genomes_ok(tmp_path, lambda_fasta):
    with pytest.raises(SequenceFormatError, match="duplicate contig name 'NC_001416.1' in genome 'g'"):
        build_store([lambda_fasta, lambda_fasta], tmp_path / "d.zarr", genome_names=["g", "g"])
    s = GenomeStore.open(build_store([lambda_fasta, lambda_fasta], tmp_path / "d.zarr", genome_names=["g1", "g2"]))
    with pytest.raises(KeyError, match="several genomes"):
        s.fetch("NC_001416.1", 0, 10)
    assert np.array_equal(s.fetch("NC_001416.1", 0, 10, genome="g2"), s.fetch(0, 0, 10))


def test_open_via_fsspec_urls(two_genome_store):
    import fsspec

    local = GenomeStore.open(two_genome_store)
    fs = fsspec.filesystem("memory")
    fs.put(str(two_genome_store), "/t/g.zarr", recursive=True)
    for url in ("memory://t/g.zarr", two_genome_store.resolve().as_uri()):
        s = GenomeStore.open(url)
        assert [c.md5 for c in s.contigs] == [c.md5 for c in local.contigs]
        starts = np.array([0, 1_048_000, 4_000_000])
        assert np.array_equal(s.fetch_batch([0, 0, 0], starts, 2000), local.fetch_batch([0, 0, 0], starts, 2000))


def test_unknown_or_newer_format_fails_clearly(tmp_path, lambda_fasta):
    out = build_store([lambda_fasta], tmp_path / "v.zarr")
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["format_version"] = 99
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreFormatError, match="version 99 is newer"):
        GenomeStore.open(out)
    meta["attributes"]["format_version"] = 0
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreFormatError, match="unknown bioseq-genome-store format version 0"):
        GenomeStore.open(out)
    meta["attributes"]["format"] = "something-else"
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreFormatError, match="not a bioseq-genome-store"):
        GenomeStore.open(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreFormatError, match="no zarr.json"):
        GenomeStore.open(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        GenomeStore.open(tmp_path / "missing.zarr")


def test_pickle_carries_no_zarr_state(two_genome_store):
    s = GenomeStore.open(two_genome_store)
    s.fetch(1, 0, 100)
    assert s._group is not None and s._cache
    t = pickle.loads(pickle.dumps(s))
    assert t._group is None and not t._cache
    assert np.array_equal(t.fetch(1, 0, 100), s.fetch(1, 0, 100))


def test_cli_build_and_info(tmp_path, lambda_fasta, masked_fasta):
    from typer.testing import CliRunner

    from bioseq.cli import app

    out = tmp_path / "cli.zarr"
    r = CliRunner().invoke(app, ["zarr", "build", str(lambda_fasta), str(masked_fasta), "-o", str(out),
                                 "--genome", "lam", "--genome", "masked", "--shard", "--chunk-size", "65536"])
    assert r.exit_code == 0, r.output
    s = GenomeStore.open(out)
    assert s.genomes == ["lam", "masked"] and s.chunk_size == 65536
    r = CliRunner().invoke(app, ["zarr", "info", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["contigs"][2]["name"] == "lam_tail"
    r = CliRunner().invoke(app, ["zarr", "info", str(out)])
    assert r.exit_code == 0 and "lam_gapped" in r.output
    r = CliRunner().invoke(app, ["zarr", "build", str(lambda_fasta), "-o", str(out), "--genome", "a", "--genome", "b"])
    assert r.exit_code != 0 and "--genome" in r.output
    r = CliRunner().invoke(app, ["zarr", "info", str(tmp_path)])
    assert r.exit_code == 1 and "no zarr.json" in r.output


def test_xz_klebsiella_genomes(tmp_path, shared, lambda_fasta):
    files = [*sorted((shared / "genomes/klebsiella_pneumoniae").glob("*.xz"))[:1], lambda_fasta]
    s = GenomeStore.open(build_store(files, tmp_path / "k.zarr"))
    assert len(s.genomes) == 2
    recs = {r.name: r.codes for f in files for r in read_fasta(f)}
    rng = np.random.default_rng(1)
    for c in s.contigs:
        a = int(rng.integers(0, c.length - 100))
        assert np.array_equal(s.fetch(c.index, a, a + 100), recs[c.name][a : a + 100])


@pytest.mark.parametrize("compression,shard", [("blosc-zstd", None), ("zstd", None), ("blosc-zstd", 3)])
def test_fast_decode_path_equals_zarr(tmp_path, masked_fasta, compression, shard):
    import zarr

    # chunk 1000: the 5 kb N gap gives all-N chunks (stored all the same); contigs end mid-chunk;
    # 3 chunks per shard: a last shard cut by the contig end
    out = build_store([masked_fasta], tmp_path / "p.zarr", chunk_size=1000, chunks_per_shard=shard,
                      compression=compression)
    s = GenomeStore.open(out)
    assert s._array(0)[1].direct and (s._array(0)[1].per_shard is not None) == (shard is not None)
    assert (out / "seq/0/c/13").exists() or shard  # all-N chunks are written: an absent one is an error
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(out), f"/fast/{compression}{shard}.zarr", recursive=True)
    remote = GenomeStore.open(f"memory://fast/{compression}{shard}.zarr")  # the byte-range path
    assert remote._array(0)[1].root is None and s._array(0)[1].root is not None
    for c in s.contigs:
        want = zarr.open_array(out / c.array, mode="r")[c.offset : c.offset + c.length]
        starts = np.arange(0, c.length - 1500, 700)
        for store in (s, remote):
            got = store.fetch_batch(np.full(len(starts), c.index), starts, 1500)
            assert all(np.array_equal(got[j], want[a : a + 1500]) for j, a in enumerate(starts))
            assert np.array_equal(store.fetch(c.index, 0, min(c.length, 5000)), want[:5000])
        assert np.array_equal(s.fetch(c.index), want)


def test_killed_build_leaves_no_complete_looking_store(tmp_path, shared):
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    files = [str(p) for p in sorted((shared / "genomes/klebsiella_pneumoniae").glob("*.xz"))]
    out = tmp_path / "k.zarr"
    code = f"from bioseq.data import build_store; build_store({files!r}, {str(out)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.time() + 60
    while not list(tmp_path.glob(".k.zarr.tmp-*/seq/packed")) and time.time() < deadline:  # mid-build
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        GenomeStore.open(out)
    assert list(tmp_path.glob(".k.zarr.tmp-*"))  # the killed build's temporary is there...
    build_store(files[:1], out)  # ...and the next build removes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.zarr"]


def test_committed_v1_store_still_reads(lambda_codes):
    """A store written by format version 1, kept in the repository: later readers must read it."""
    s = GenomeStore.open(Path(__file__).parent / "fixtures" / "genome_store_v1")
    assert s.format_version == 1 and s.genomes == ["lambda"]
    lam = decode(lambda_codes)
    head = lam[:2000] + lam[2000:2500].lower() + "N" * 1100 + lam[2500:4000] + "RYK"
    assert s.fetch("lambda_head", as_str=True) == head
    assert s.fetch("lambda_tail", as_str=True) == lam[-700:]
    assert s.contigs[0].md5 == hashlib.md5(head.upper().encode()).hexdigest()
    assert s.ambiguous_runs("lambda_head").tolist() == [[2500, 3600], [5100, 5103]]
    w = s.fetch_batch([0, 0, 1], [1000, 3000, 0], 700, ["+", "-", "+"])
    assert decode(w[1]) == decode(reverse_complement_codes(s.fetch(0, 3000, 3700)))


def test_md5_of_long_sequences_is_streamed_correctly(monkeypatch, lambda_codes):
    from bioseq.data import store

    monkeypatch.setattr(store, "_MD5_STEP", 1000)  # many slices on a real genome
    codes = lambda_codes.copy()
    codes[5000:9000] |= SOFTMASK
    assert store.sequence_md5(codes) == hashlib.md5(decode(codes).upper().encode()).hexdigest()
    assert store.sequence_md5(codes) == "509bdb356475a21077713babc47a4a35"  # samtools dict, NC_001416.1


def test_build_never_replaces_something_that_is_not_a_store(tmp_path, lambda_fasta):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a bioseq-genome-store"):
        build_store([lambda_fasta], precious)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(FileExistsError):
        build_store([lambda_fasta], tmp_path / "file.zarr")
    assert (precious / "notes.txt").read_text() == "keep me" and (tmp_path / "file.zarr").read_text() == "x"
