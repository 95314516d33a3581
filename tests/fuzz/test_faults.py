"""Kill -9 and SIGTERM at seeded random times during ``zarr build``, ``index`` and ``align -o``.

Afterwards the destination is absent, the previous good version, or complete, never partial;
SIGTERM leaves no temporaries at all, and after SIGKILL the next run removes them.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import fasta_text, fastq_text
from harness import tree_digest

ROOT = Path(__file__).resolve().parents[2]
SEED = 29


@pytest.fixture(scope="module")
def workload(tmp_path_factory, fuzz_env, invoke):
    """A 60 kb reference and 2,000 reads: each command runs for a second or two after start-up."""
    rng = random.Random(SEED)
    d = tmp_path_factory.mktemp("faults")
    contigs = [(f"c{i}", "".join(rng.choice("ACGT") for _ in range(20_000))) for i in range(3)]
    ref = d / "ref.fa"
    ref.write_bytes(fasta_text(contigs))
    reads = []
    for i in range(2000):
        name, seq = contigs[i % 3]
        s = rng.randrange(len(seq) - 100)
        reads.append((f"q{i}", seq[s : s + 100], "I" * 100))
    fq = d / "reads.fq"
    fq.write_bytes(fastq_text(reads))
    idx = d / "ref.esa"
    assert invoke(["index", str(ref), "-o", str(idx), "--encoder", str(fuzz_env.encoder)])[0] == 0
    return {"ref": ref, "reads": fq, "index": idx, "encoder": fuzz_env.encoder}


def _args(cmd: str, w: dict, out: Path) -> list[str]:
    if cmd == "zarr":
        return ["zarr", "build", str(w["ref"]), "-o", str(out), "--chunk-size", "4096"]
    if cmd == "index":
        return ["index", str(w["ref"]), "-o", str(out), "--encoder", str(w["encoder"]), "--block", "64"]
    return ["align", str(w["index"]), str(w["reads"]), "-o", str(out), "--encoder", str(w["encoder"]),
            "--batch-size", "256"]


def _complete(cmd: str, out: Path) -> bool:
    """Is ``out`` a whole, valid output of ``cmd`` on the workload?"""
    if cmd == "zarr":
        from bioseq.data.store import GenomeStore

        gs = GenomeStore.open(out)
        return len(gs.contigs) == 3 and int(gs.lengths.sum()) == 60_000
    if cmd == "index":
        from bioseq.align.index import load_index

        return int(load_index(out).reference.shape[0]) == 60_000
    import pysam

    with pysam.AlignmentFile(str(out)) as f:
        return sum(1 for _ in f) >= 2000


def _popen(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "bioseq", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _trials(cmd: str, n: int, workload, invoke, tmp_path, seed: int):
    rng = random.Random(seed)
    folder = tmp_path / cmd
    folder.mkdir()
    out = folder / {"zarr": "g.zarr", "index": "g.esa", "align": "out.bam"}[cmd]
    t0 = time.monotonic()
    assert _popen(_args(cmd, workload, out)).wait(timeout=300) == 0  # a full run: how long it takes
    full = time.monotonic() - t0
    good = tree_digest(out)
    saved = tmp_path / f"good-{out.name}"  # outside the folder whose temporaries are counted
    shutil.copytree(out, saved) if out.is_dir() else shutil.copy(out, saved)
    seen = []
    for trial in range(n):
        sig = (signal.SIGKILL, signal.SIGTERM)[trial % 2]
        shutil.rmtree(out) if out.is_dir() else out.unlink(missing_ok=True)
        if rng.random() < 0.5:  # a previous good output at the final path
            shutil.copytree(saved, out) if saved.is_dir() else shutil.copy(saved, out)
        previous = tree_digest(out)
        stale = set(_temporaries(folder))  # a SIGKILLed trial's, removed by the next run that gets that far
        delay = rng.uniform(0.2, 1.1) * full
        p = _popen(_args(cmd, workload, out))
        time.sleep(delay)
        p.send_signal(sig)
        code = p.wait(timeout=120)
        state = tree_digest(out)
        if state is None:
            what = "absent"
        elif state == previous:
            what = "previous"
        else:
            assert _complete(cmd, out), f"{cmd}: partial output after {sig.name} at {delay:.2f} s"
            what = "complete"
        if sig == signal.SIGTERM and code != 0:  # the handler removed its temporaries before dying
            left = set(_temporaries(folder)) - stale
            assert not left, f"{cmd}: SIGTERM at {delay:.2f} s left {sorted(left)}"
        seen.append((sig.name, round(delay, 2), code, what))
    # the next run removes whatever a SIGKILL left behind, and completes
    res = invoke(_args(cmd, workload, out))
    assert res[0] == 0, res
    assert _temporaries(folder) == [], _temporaries(folder)
    # zarr stores rebuild byte-identical; indexes record their build time, SAM the command line
    assert _complete(cmd, out) and (cmd != "zarr" or tree_digest(out) == good)
    return seen


@pytest.mark.parametrize("cmd", ["zarr", "index", "align"])
def test_kill_during_write(cmd, workload, invoke, tmp_path):
    seen = _trials(cmd, 2, workload, invoke, tmp_path, seed=SEED + len(cmd))
    assert {s[0] for s in seen} == {"SIGKILL", "SIGTERM"}


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["zarr", "index", "align"])
def test_kill_during_write_many(cmd, workload, invoke, tmp_path):
    seen = _trials(cmd, 16, workload, invoke, tmp_path, seed=SEED * 7 + len(cmd))
    assert {s[3] for s in seen} >= {"absent", "previous"}, seen
