"""Genome-store integrity: corrupted, missing and swapped chunks are detected, never read as bases.

Each test damages a freshly built store the way a disk, a sync tool or a person might, then
asserts the exact detection: the read raises :class:`StoreIntegrityError` naming the chunk and its
contig, and ``bioseq zarr verify`` exits 1 naming the contig.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bioseq.cli import app
from bioseq.data import GenomeStore, StoreFormatError, StoreIntegrityError, build_store
from bioseq.io import read_fasta, write_fasta

CHUNK = 4096
V1 = Path(__file__).parent / "fixtures" / "genome_store_v1"


@pytest.fixture(scope="module")
def assembly(tmp_path_factory, lambda_fasta) -> Path:
    """A draft-assembly-like FASTA: lambda's first 30 kb, then 40 tiny contigs cut from the rest."""
    seq = next(read_fasta(lambda_fasta)).sequence
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(30_001, len(seq)), size=40, replace=False))
    tiny = [(f"ctg{k}", seq[a:b]) for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))]
    path = tmp_path_factory.mktemp("asm") / "asm.fa"
    write_fasta(path, [("big", seq[:30_000]), *tiny, ("empty", "")])
    return path


@pytest.fixture
def store(tmp_path, assembly) -> Path:
    return build_store([assembly], tmp_path / "s.zarr", chunk_size=CHUNK)


def verify_cli(path: Path):
    return CliRunner().invoke(app, ["zarr", "verify", "-q", str(path)])


def test_intact_store_reads_and_verifies(store, assembly):
    s = GenomeStore.open(store)
    truth = {r.name: r.codes for r in read_fasta(assembly)}
    assert [c.name for c in s.contigs] == list(truth)
    for c in s.contigs:
        assert np.array_equal(s.fetch(c.index), truth[c.name])
    assert s.contigs[0].array == "seq/0" and {c.array for c in s.contigs[1:]} == {"seq/packed"}
    assert s.verify() == []
    r = verify_cli(store)
    assert r.exit_code == 0 and "OK, 41 contigs" in r.output


def test_deleted_chunk_is_an_error_not_ns(store):
    (store / "seq/0/c/3").unlink()
    s = GenomeStore.open(store)
    with pytest.raises(StoreIntegrityError, match=r"contig 'big': seq/0 chunk 3: missing"):
        s.fetch("big", 3 * CHUNK + 10, 3 * CHUNK + 20)
    with pytest.raises(StoreIntegrityError, match="chunk 3: missing"):
        s.fetch_batch([0, 0], [0, 3 * CHUNK], 100)
    assert np.array_equal(s.fetch("big", 0, 100), s.fetch("big", 0, 100))  # other chunks still read
    assert [(c.name, p) for c, p in s.verify()] == [("big", "seq/0 chunk 3: missing (deleted or never written)")]
    r = verify_cli(store)
    assert r.exit_code == 1 and "contig 'big'" in r.output and "1 of 41 contigs FAILED" in r.output


def test_flipped_byte_is_a_checksum_error(store):
    f = store / "seq/packed/c/1"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    s = GenomeStore.open(store)
    a = next(c for c in s.contigs if c.array == "seq/packed" and c.offset <= CHUNK + 100 < c.offset + c.length)
    with pytest.raises(StoreIntegrityError, match=rf"contig.*'{a.name}'.*seq/packed chunk 1: CRC32C mismatch"):
        s.fetch(a.index)
    bad = {c.name for c, p in s.verify()}
    assert a.name in bad and all(c.array == "seq/packed" for c in s.contigs if c.name in bad)
    assert verify_cli(store).exit_code == 1


@pytest.mark.parametrize("pair", [("seq/0/c/1", "seq/0/c/2"), ("seq/0/c/4", "seq/packed/c/0")],
                         ids=["same-array", "across-arrays"])
def test_swapped_chunk_files_are_detected(store, pair):
    """Each file still passes its own CRC32C: only the recorded per-chunk checksum can tell."""
    a, b = (store / p for p in pair)
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    s = GenomeStore.open(store)
    with pytest.raises(StoreIntegrityError, match=rf"{pair[0].rsplit('/', 2)[0]} chunk {pair[0][-1]}: bases differ"):
        s.fetch("big")
    problems = s.verify()
    assert "big" in {c.name for c, _ in problems}
    assert all("bases differ from those recorded" in p for _, p in problems)
    assert verify_cli(store).exit_code == 1


def test_sharded_store_truncated_or_flipped_shard(tmp_path, assembly):
    out = build_store([assembly], tmp_path / "sh.zarr", chunk_size=CHUNK, chunks_per_shard=4)
    s = GenomeStore.open(out)
    assert s.verify() == []
    shard = out / "seq/0/c/1"  # chunks 4-7 of 'big'
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-10])  # cut: the index at the end is gone
    with pytest.raises(StoreIntegrityError, match="seq/0 shard 1"):
        GenomeStore.open(out).fetch("big", 5 * CHUNK, 5 * CHUNK + 10)
    flipped = bytearray(raw)
    flipped[100] ^= 0x10  # inside the first inner chunk
    shard.write_bytes(bytes(flipped))
    with pytest.raises(StoreIntegrityError, match="seq/0 chunk 4: CRC32C mismatch"):
        GenomeStore.open(out).fetch("big", 4 * CHUNK, 4 * CHUNK + 10)
    flipped = bytearray(raw)
    flipped[-8] ^= 0x10  # inside the shard index
    shard.write_bytes(bytes(flipped))
    with pytest.raises(StoreIntegrityError, match="seq/0 shard 1 index: CRC32C mismatch"):
        GenomeStore.open(out).fetch("big", 4 * CHUNK, 4 * CHUNK + 10)
    assert [c.name for c, _ in GenomeStore.open(out).verify()] == ["big"]


def test_md5_record_mismatch_is_reported(store):
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["contigs"][5]["md5"] = "0" * 32
    (store / "zarr.json").write_text(json.dumps(meta))
    s = GenomeStore.open(store)
    (c, problem), = s.verify()
    assert c.index == 5 and problem.startswith("MD5 of the stored bases is ") and problem.endswith("records " + "0" * 32)
    r = verify_cli(store)
    assert r.exit_code == 1 and f"contig '{c.name}'" in r.output


def test_damaged_metadata_fails_with_the_key_named(store):
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["contigs"][1]["length"] = "12"
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreFormatError, match=r"contigs\[1\]: 'length' must be a non-negative int, got '12'"):
        GenomeStore.open(store)
    meta["attributes"]["contigs"] = []
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreFormatError, match="'contigs' must be a non-empty list"):
        GenomeStore.open(store)
    r = CliRunner().invoke(app, ["zarr", "info", str(store)])
    assert r.exit_code == 1 and "'contigs' must be a non-empty list" in r.output


def test_missing_checksum_table_is_an_error(store):
    shutil.rmtree(store / "chunk_checksums")
    with pytest.raises((StoreIntegrityError, KeyError, FileNotFoundError)):
        GenomeStore.open(store).fetch("big", 0, 10)


def test_v1_store_reads_with_one_warning_and_verifies_by_md5(tmp_path, caplog):
    """Version 1 stores (no checksums) still read; one warning says so; verify still checks MD5s,
    which catches a deleted chunk that a version 1 reader returns as N."""
    from bioseq.data import store as store_mod

    v1 = tmp_path / "v1.zarr"
    shutil.copytree(V1, v1)
    store_mod._WARNED_V1.discard(str(v1))
    with caplog.at_level(logging.WARNING, logger="bioseq.data.store"):
        s = GenomeStore.open(v1)
        GenomeStore.open(v1)
    warnings = [r.getMessage() for r in caplog.records if "carry no checksums" in r.getMessage()]
    assert len(warnings) == 1 and "format version 1" in warnings[0] and "\n" not in warnings[0]
    assert s.format_version == 1 and not s.checksummed and s.verify() == []
    (v1 / "seq/0/c/1").unlink()
    assert GenomeStore.open(v1).fetch("lambda_head", 1024, 1034, as_str=True) == "N" * 10  # v1 semantics
    (c, problem), = GenomeStore.open(v1).verify()
    assert c.name == "lambda_head" and problem.startswith("MD5 of the stored bases")
    r = verify_cli(v1)
    assert r.exit_code == 1 and "contig 'lambda_head'" in r.output


def test_many_tiny_contigs_are_packed(tmp_path):
    """2,000 contigs of 20-300 bp: a handful of files, every contig and window reads back exactly."""
    rng = np.random.default_rng(3)
    recs = [(f"t{k}", "".join(rng.choice(list("ACGTN"), size=int(rng.integers(20, 300))))) for k in range(2000)]
    fa = tmp_path / "tiny.fa"
    write_fasta(fa, recs)
    out = build_store([fa], tmp_path / "t.zarr", chunk_size=CHUNK)
    assert sum(1 for p in out.rglob("*") if p.is_file()) < 100  # one per 4 kb chunk, not 2 per contig
    s = GenomeStore.open(out)
    truth = {r.name: r.codes for r in read_fasta(fa)}
    for c in s.contigs:
        assert np.array_equal(s.fetch(c.index), truth[c.name])
    ids = rng.integers(0, len(recs), size=500)
    starts = np.array([rng.integers(0, s.contigs[i].length - 19) for i in ids])
    got = s.fetch_batch(ids, starts, 20)
    assert all(np.array_equal(got[j], truth[f"t{ids[j]}"][starts[j] : starts[j] + 20]) for j in range(len(ids)))
    assert s.verify() == []


def test_committed_v2_store_still_reads():
    """The version 2 store kept in the repository (same bases as the version 1 one) reads and verifies."""
    v1, v2 = GenomeStore.open(V1), GenomeStore.open(V1.parent / "genome_store_v2")
    assert v2.format_version == 2 and v2.checksummed and [c.array for c in v2.contigs] == ["seq/0", "seq/packed"]
    assert [c.md5 for c in v2.contigs] == [c.md5 for c in v1.contigs]
    for c in v1.contigs:
        assert np.array_equal(v2.fetch(c.name), v1.fetch(c.name))
        assert np.array_equal(v2.ambiguous_runs(c.name), v1.ambiguous_runs(c.name))
    assert v2.verify() == []


@pytest.mark.parametrize("shard", [None, 4])
def test_remote_reads_are_checked_too(store, tmp_path, assembly, shard):
    """Through an fsspec URL (the byte-range path) the same checks apply."""
    import fsspec

    out = store if shard is None else build_store([assembly], tmp_path / "sh.zarr", chunk_size=CHUNK, chunks_per_shard=shard)
    flip_at = out / ("seq/0/c/1" if shard is None else "seq/0/c/0")
    raw = bytearray(flip_at.read_bytes())
    raw[20] ^= 0x04
    flip_at.write_bytes(bytes(raw))
    fs = fsspec.filesystem("memory")
    url = f"memory://integrity/{out.name}-{shard}"
    fs.put(str(out), url.removeprefix("memory://"), recursive=True)
    s = GenomeStore.open(url)
    with pytest.raises(StoreIntegrityError, match=f"{url}: contig 'big': seq/0 chunk (1|0): CRC32C mismatch"):
        s.fetch("big")
    assert [c.name for c, _ in s.verify()] == ["big"]
