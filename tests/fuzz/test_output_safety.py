"""Outputs never destroy data: refused paths, atomic replacement, temporaries cleaned up."""

from __future__ import annotations

import os
import shutil

import pytest
from harness import run_bioseq, tree_digest

from bioseq.io.atomic import AtomicOutput, atomic_dir, atomic_file, check_output, remove_stale
from bioseq.io.errors import OutputPathError


def _err(res) -> str:
    code, err, exc = res
    assert exc is None, exc
    assert code != 0
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1, err
    return lines[0]


def _alias(target, kind: str, path):
    """``target`` itself, or a symbolic or hard link to it at ``path``."""
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "hardlink":
        os.link(target, path)
    else:
        return target
    return path


# ------------------------------------------------------------------ bioseq index -o

def test_index_never_deletes_a_folder_that_is_not_an_index(fuzz_env, invoke, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "t").write_text("x")
    msg = _err(invoke(["index", str(fuzz_env.reference), "-o", str(home), "--encoder", str(fuzz_env.encoder)]))
    assert str(home) in msg and "never replaced" in msg
    assert (home / "t").read_text() == "x"


@pytest.mark.parametrize("target", ["reference", "symlink", "hardlink"])
def test_index_refuses_its_input_as_output(fuzz_env, invoke, tmp_path, target):
    ref = tmp_path / "ref.fa"
    shutil.copy(fuzz_env.reference, ref)
    out = _alias(ref, target, tmp_path / "alias.fa")
    before = ref.read_bytes()
    msg = _err(invoke(["index", str(ref), "-o", str(out), "--encoder", str(fuzz_env.encoder)]))
    assert "is the input" in msg
    assert ref.read_bytes() == before


def test_index_refuses_a_path_inside_an_index(fuzz_env, invoke, tmp_path):
    idx = tmp_path / "ref.esa"
    shutil.copytree(fuzz_env.index, idx)
    before = tree_digest(idx)
    for out in (idx / "manifest.json", idx / "sub" / "x.esa"):
        msg = _err(invoke(["index", str(fuzz_env.reference), "-o", str(out), "--encoder", str(fuzz_env.encoder)]))
        assert "lies inside the bioseq-esa-index" in msg
    assert tree_digest(idx) == before


def test_index_refuses_a_folder_holding_the_reference(fuzz_env, invoke, tmp_path):
    shutil.copy(fuzz_env.reference, tmp_path / "ref.fa")
    msg = _err(invoke(["index", str(tmp_path / "ref.fa"), "-o", str(tmp_path), "--encoder", str(fuzz_env.encoder)]))
    assert "holding the input" in msg or "never replaced" in msg
    assert (tmp_path / "ref.fa").exists()


def test_index_replaces_an_index_and_an_empty_folder(fuzz_env, invoke, tmp_path):
    idx = tmp_path / "old.esa"
    shutil.copytree(fuzz_env.index, idx)
    (idx / "stray").write_text("from the old index")
    res = invoke(["index", str(fuzz_env.reference), "-o", str(idx), "--encoder", str(fuzz_env.encoder)])
    assert res[0] == 0, res
    assert not (idx / "stray").exists() and (idx / "manifest.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(["index", str(fuzz_env.reference), "-o", str(empty), "--encoder", str(fuzz_env.encoder)])[0] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ align / tokenize / zarr / design

@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_align_refuses_output_equal_to_reads(fuzz_env, invoke, tmp_path, link):
    reads = tmp_path / "r.fq"
    reads.write_text("@q1\nACGTACGTACGTACGTACGTACGTACGTACGTAC\n+\n" + "I" * 34 + "\n")
    out = _alias(reads, link, tmp_path / "o.sam")
    before = reads.read_bytes()
    msg = _err(invoke(["align", str(fuzz_env.index), str(reads), "-o", str(out), "--encoder", str(fuzz_env.encoder)]))
    assert "is the input" in msg and reads.read_bytes() == before


def test_align_output_errors_leave_nothing(fuzz_env, invoke, tmp_path):
    reads = tmp_path / "r.fq"
    reads.write_text("@q1\nACGTACGTACGTACGTACGTACGTACGTACGTAC\n+\n" + "I" * 34 + "\n")
    enc = ["--encoder", str(fuzz_env.encoder)]
    d = tmp_path / "existing_dir"
    d.mkdir()
    assert "is a directory" in _err(invoke(["align", str(fuzz_env.index), str(reads), "-o", str(d), *enc]))
    assert "CRAM" in _err(invoke(["align", str(fuzz_env.index), str(reads), "-o", str(tmp_path / "x.cram"), *enc]))
    # a missing reads file (also the second of a pair): checked before any output is created
    for args in ([str(tmp_path / "missing.fq")], [str(reads), str(tmp_path / "missing2.fq")]):
        msg = _err(invoke(["align", str(fuzz_env.index), *args, "-o", str(tmp_path / "out.sam"), *enc]))
        assert "missing" in msg and "no such file" in msg
    # an index that does not open
    msg = _err(invoke(["align", str(tmp_path), str(reads), "-o", str(tmp_path / "out.sam"), *enc]))
    assert "not a bioseq alignment index" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing_dir", "r.fq"]


def test_tokenize_encode_and_zarr_refuse_their_input(fuzz_env, invoke, tmp_path):
    fa = tmp_path / "x.fa"
    shutil.copy(fuzz_env.reference, fa)
    before = fa.read_bytes()
    assert "is the input" in _err(invoke(["tokenize", "encode", str(fa), "-o", str(fa)]))
    js = tmp_path / "genome.json"  # a FASTA that happens to end in .json: -o it would replace it
    shutil.copy(fuzz_env.reference, js)
    assert "is the input" in _err(invoke(["tokenize", "train-bpe", str(js), "-o", str(js), "--vocab-size", "40"]))
    assert js.read_bytes() == before
    msg = _err(invoke(["zarr", "build", str(fa), "-o", str(fa)]))
    assert "is the input" in msg
    assert fa.read_bytes() == before


def test_zarr_build_refuses_inside_an_index_or_store(fuzz_env, invoke, tmp_path):
    store = tmp_path / "s.zarr"
    assert invoke(["zarr", "build", str(fuzz_env.reference), "-o", str(store)])[0] == 0
    before = tree_digest(store)
    assert "lies inside the bioseq-genome-store" in _err(
        invoke(["zarr", "build", str(fuzz_env.reference), "-o", str(store / "inner.zarr")]))
    assert "lies inside the bioseq-esa-index" in _err(
        invoke(["zarr", "build", str(fuzz_env.reference), "-o", str(fuzz_env.index / "s.zarr")]))
    assert "a bioseq-genome-store, not a bioseq-esa-index" in _err(
        invoke(["index", str(fuzz_env.reference), "-o", str(store), "--encoder", str(fuzz_env.encoder)]))
    assert tree_digest(store) == before


def test_design_refuses_its_model_folder_and_bad_guidance(invoke, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert "is the input" in _err(invoke(["design", "-m", str(model), "-o", str(model)]))
    for g in ("inf", "nan", "-1"):
        msg = _err(invoke(["design", "-m", str(model), "-o", str(tmp_path / "d.fa"), "--guidance", g]))
        assert "guidance" in msg
    assert not (tmp_path / "d.fa").exists()


# ------------------------------------------------------------------ the helpers themselves

def test_atomic_file_failure_leaves_previous_content(tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("previous")
    with pytest.raises(RuntimeError), atomic_file(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "previous" and os.listdir(tmp_path) == ["o.txt"]


def test_atomic_dir_swaps_in_one_step(tmp_path):
    out = tmp_path / "d"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(out) as tmp:
        (tmp / "b").write_text("2")
        assert (out / "a").exists()  # the old one stays complete until the swap
    assert sorted(os.listdir(out)) == ["b"] and os.listdir(tmp_path) == ["d"]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".out.bam.tmp-{pid}-deadbeef"
    stale.write_text("left by a killed run")
    live = tmp_path / f".out.bam.tmp-{os.getppid()}-cafe0000"  # a running process: kept
    live.write_text("in use")
    other = tmp_path / ".out.bam.notours"
    other.write_text("not our naming")
    assert remove_stale(tmp_path / "out.bam") == [stale]
    with atomic_file(tmp_path / "out.bam") as tmp:
        tmp.write_text("new")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "out.bam"])


def test_check_output_cases(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    check_output(None, [f])
    check_output("-", [f])
    check_output(tmp_path / "new.txt", [f, None, "-"])
    with pytest.raises(OutputPathError, match="is the input"):
        check_output(tmp_path / "." / "f.txt", [f])
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output(tmp_path, [])
    with pytest.raises(OutputPathError, match="is a file"):
        check_output(f, [], directory=True, replaces="bioseq-esa-index")
    with pytest.raises(OutputPathError, match="is a directory"):
        AtomicOutput(tmp_path)


def test_sigterm_removes_the_temporary_of_a_real_process(tmp_path):
    """A process killed by SIGTERM inside an atomic write leaves neither output nor temporary."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys, time\n"
        "from bioseq.io.atomic import atomic_file, install_signal_cleanup\n"
        "install_signal_cleanup()\n"
        f"with atomic_file({str(tmp_path / 'out.txt')!r}) as t:\n"
        "    t.write_text('partial'); print('ready', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(__import__("pathlib").Path(__file__).parents[2])))
    assert p.stdout.readline().strip() == "ready"
    assert len(os.listdir(tmp_path)) == 1  # the temporary
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == -signal.SIGTERM  # still dies of the signal
    time.sleep(0.1)
    assert os.listdir(tmp_path) == []


def test_cli_subprocess_refusal_is_one_line(fuzz_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "t").write_text("x")
    r = run_bioseq("index", str(fuzz_env.reference), "-o", str(home), "--encoder", str(fuzz_env.encoder))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        f"bioseq index: error: {home}: exists and is not a bioseq-esa-index; it is never replaced: remove it "
        "or choose another output path"]
    assert (home / "t").read_text() == "x"
