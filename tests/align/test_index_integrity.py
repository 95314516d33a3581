"""Alignment-index integrity: damaged files are detected with one clean error, never aligned against.

Each test copies the session's lambda index, damages one file, and asserts the exact detection by
``load_index`` (on every open), ``bioseq index --verify`` and ``bioseq align --verify-index``.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bioseq.align.index import IndexError_, is_sketch, load_index, verify_index

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def index(tmp_path, lambda_index) -> Path:
    out = tmp_path / "lambda.esa"
    shutil.copytree(lambda_index, out)
    return out


def old_style(index: Path) -> Path:
    """The same index as written before the manifest recorded file sizes and hashes."""
    m = json.loads((index / "manifest.json").read_text())
    del m["files"]
    (index / "manifest.json").write_text(json.dumps(m))
    return index


def flip(f: Path, *offsets: int) -> None:
    raw = bytearray(f.read_bytes())
    for o in offsets:
        raw[o] ^= 0x03  # A<->T, C<->G in reference codes: same length, other bases
    f.write_bytes(bytes(raw))


def test_intact_index_verifies(index, lambda_reads):
    assert verify_index(index) == []
    m = json.loads((index / "manifest.json").read_text())
    expected = {"reference.npy", "fragments.npy", "faiss.index", "minimizers.npz", "reseed.npz"}
    assert set(m["files"]) == (expected if is_sketch(m) else expected | {"embeddings.npy"})
    r = run_cli("index", "--verify", str(index))
    assert r.exit_code == 0 and "OK" in r.stderr
    r = run_cli("align", str(index), str(lambda_reads[0]), "--verify-index")
    assert r.exit_code == 0 and r.stdout.startswith("@HD")


def test_flipped_reference_bytes_fail_on_open(index, lambda_reads):
    flip(index / "reference.npy", 5000, 9000)
    with pytest.raises(IndexError_, match=r"reference.npy: SHA-256 differs from the manifest's"):
        load_index(index)
    r = run_cli("align", str(index), str(lambda_reads[0]))
    assert r.exit_code == 1 and "reference.npy: SHA-256 differs" in r.stderr and not r.stdout
    r = run_cli("index", "--verify", str(index))
    assert r.exit_code == 1 and "reference.npy: SHA-256 differs" in r.stderr


def test_flipped_reference_bytes_in_an_old_index_found_by_verify(index, lambda_reads):
    """Without recorded hashes, opening cannot tell; --verify recomputes the contig MD5s and can."""
    flip(old_style(index) / "reference.npy", 5000, 9000)
    load_index(index)  # sizes, shapes and headers are all fine
    (problem,) = verify_index(index)
    assert "contig 'NC_001416.1': MD5 of reference.npy's bases is" in problem
    assert problem.endswith("the manifest records 509bdb356475a21077713babc47a4a35")
    r = run_cli("align", str(index), str(lambda_reads[0]), "--verify-index")
    assert r.exit_code == 1 and "contig 'NC_001416.1': MD5" in r.stderr and not r.stdout
    r = run_cli("index", "--verify", str(index))
    assert r.exit_code == 1 and "contig 'NC_001416.1'" in r.stderr


def _align_subprocess(index: Path, reads: Path) -> subprocess.CompletedProcess:
    """In a child process: a FAISS abort would kill pytest itself if run in-process."""
    return subprocess.run([sys.executable, "-m", "bioseq", "align", str(index), str(reads), "--mode", "emb"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("style", ["recorded", "old"])
def test_truncated_faiss_index_is_a_clean_error(index, lambda_reads, style):
    if style == "old":
        old_style(index)
    f = index / "faiss.index"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(IndexError_, match="faiss.index: .*(manifest records|truncated)"):
        load_index(index)
    r = _align_subprocess(index, lambda_reads[0])
    assert r.returncode == 1, r.stderr
    assert "faiss.index" in r.stderr and "Traceback" not in r.stderr and not r.stdout


@pytest.mark.parametrize("field,value", [("ntotal", 1 << 40), ("d", 1 << 20), ("magic", b"IxF2")])
def test_crafted_faiss_header_never_reaches_faiss(index, lambda_reads, field, value):
    """A header announcing 2^40 vectors (or another dimension or kind) is refused before FAISS
    would try to allocate for it; the file keeps its size so only the header can tell."""
    f = old_style(index) / "faiss.index"
    raw = bytearray(f.read_bytes())
    if field == "magic":
        raw[:4] = value
    else:
        struct.pack_into("<q" if field == "ntotal" else "<i", raw, 8 if field == "ntotal" else 4, value)
    f.write_bytes(bytes(raw))
    with pytest.raises(IndexError_, match=r"faiss.index: header says"):
        load_index(index)
    r = _align_subprocess(index, lambda_reads[0])
    assert r.returncode == 1 and "faiss.index: header says" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("key", ["k", "contigs", "n_fragments", "encoder"])
def test_manifest_missing_a_key_is_named(index, lambda_reads, key):
    m = json.loads((index / "manifest.json").read_text())
    del m[key]
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexError_, match=f"manifest.json: lacks the key '{key}'"):
        load_index(index)
    r = run_cli("align", str(index), str(lambda_reads[0]))
    assert r.exit_code == 1 and f"lacks the key '{key}'" in r.stderr


def test_bad_manifest_values_and_json(index):
    m = json.loads((index / "manifest.json").read_text())
    m["contigs"][0]["length"] = "48502"
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexError_, match=r"contigs\[0\]: 'length' must be a non-negative int"):
        load_index(index)
    (index / "manifest.json").write_text('{"format": "bioseq-esa-index", ')
    with pytest.raises(IndexError_, match="manifest.json: not valid JSON"):
        load_index(index)


@pytest.mark.parametrize("name", ["minimizers.npz", "embeddings.npy", "fragments.npy", "reference.npy"])
@pytest.mark.parametrize("style", ["recorded", "old"])
def test_truncated_arrays_are_clean_errors(index, name, style):
    if style == "old":
        old_style(index)
    f = index / name
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(IndexError_, match=rf"{name}: "):
        load_index(index)
    assert any(name in p for p in verify_index(index))


def test_hnsw_index_without_recorded_size_truncated(tmp_path, lambda_fasta, tiny_encoder):
    """An HNSW index has no size formula: an old manifest plus a cut file reaches FAISS, whose own
    error becomes the same clean one-line error."""
    from bioseq.align.encoder import load_encoder
    from bioseq.align.index import IndexParams, build_index

    out = tmp_path / "h.esa"
    build_index(lambda_fasta, out, load_encoder(tiny_encoder), IndexParams(hnsw_above=10), progress=False)
    f = old_style(out) / "faiss.index"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    idx = load_index(out)  # header intact
    with pytest.raises(IndexError_, match="faiss.index: FAISS cannot read it"):
        _ = idx.faiss_index
    assert any("FAISS cannot read it" in p for p in verify_index(out))


def test_files_record_names_only_files_inside_the_index(index):
    m = json.loads((index / "manifest.json").read_text())
    m["files"]["../elsewhere.npy"] = {"size": 1, "sha256": "0" * 64}
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexError_, match="'files' must map plain file names"):
        load_index(index)
    del m["files"]["../elsewhere.npy"]
    m["files"]["extra.npy"] = {"size": 1, "sha256": "0" * 64}  # recorded, but gone
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexError_, match="extra.npy is missing"):
        load_index(index)
