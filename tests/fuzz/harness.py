"""Run generated malformed inputs through every sequence-reading CLI command and classify the outcome.

Used by ``test_fuzz.py`` (which asserts every outcome is ``clean``) and by ``measure.py`` (which
counts outcomes, also against older checkouts). Commands run in-process through typer's CliRunner,
so a few hundred cases take seconds; ``test_fuzz.py`` spawns a handful of real subprocesses to
check the exit code / no-traceback path end to end.

Outcome of one (case, command):

* ``clean``: non-zero exit, no traceback, an error line naming the file (and a line or record
  where the case has one), nothing at the final output path (or the previous output untouched),
  no temporaries left beside it.
* ``traceback``: an exception escaped the command (a user would see a stack trace).
* ``accepted``: exit 0 on malformed input.
* ``unclear``: a clean exit but the message does not name the file (or lacks the line/record).
* ``partial``: something was left at the final output path, or temporaries beside it.
* ``destroyed``: an existing good output at the final path was changed or removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from corpus import Case, fasta_text, fastq_text

OUTCOMES = ("clean", "traceback", "accepted", "unclear", "partial", "destroyed")


def tree_digest(path: Path) -> str | None:
    """A digest of a file or directory tree (names and contents); None if absent."""
    if not path.exists() and not path.is_symlink():
        return None
    h = hashlib.sha1()
    if path.is_file():
        h.update(path.read_bytes())
        return h.hexdigest()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class Command:
    """One CLI command that reads sequences: how to call it and where it writes."""

    name: str
    out_name: str  # final output path (relative to the command's output folder)
    reads_fastq: bool  # accepts FASTQ (only `align`)

    def args(self, env: Env, inputs: list[str], out: Path) -> list[str]:
        if self.name == "index":
            return ["index", inputs[0], "-o", str(out), "--encoder", str(env.encoder)]
        if self.name == "zarr":
            return ["zarr", "build", *inputs[:1], "-o", str(out)]
        if self.name == "encode":
            return ["tokenize", "encode", inputs[0], "-o", str(out)]
        if self.name == "train-bpe":
            return ["tokenize", "train-bpe", inputs[0], "-o", str(out), "--vocab-size", "40"]
        if self.name.startswith("align"):
            return ["align", str(env.index), *inputs, "-o", str(out), "--encoder", str(env.encoder)]
        raise KeyError(self.name)


COMMANDS = [
    Command("index", "idx.esa", False),
    Command("zarr", "store.zarr", False),
    Command("encode", "ids.txt", False),
    Command("train-bpe", "tok.json", False),
    Command("align-sam", "out.sam", True),
    Command("align-bam", "out.bam", True),
]


@dataclass
class Env:
    """Shared fixtures of a fuzz run: a tiny encoder, a reference, its index, good outputs."""

    root: Path
    encoder: Path
    reference: Path
    index: Path
    good: dict[str, Path]  # command name -> a good output of it (copied in place before a run)


def make_env(root: Path, invoke) -> Env:
    """Build the tiny encoder, a 3 kb reference, its index and one good output per command."""
    import random

    import torch

    from bioseq.models import Embedder, build_backbone

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    enc = root / "encoder"
    Embedder(build_backbone("transformer-tiny", d_model=32, n_layer=1, n_head=2, mlp_ratio=2.0,
                            bidirectional=True, vocab_size=12), dim=32).save_pretrained(enc)
    rng = random.Random(1)
    ref = root / "ref.fa"
    ref.write_bytes(fasta_text([("chrA", "".join(rng.choice("ACGT") for _ in range(3000)))]))
    reads = root / "reads.fq"
    reads.write_bytes(fastq_text([("q1", "ACGTACGTACGTACGTACGTACGTACGTACGTAC", "I" * 34)]))
    env = Env(root, enc, ref, root / "ref.esa", {})
    res = invoke(["index", str(ref), "-o", str(env.index), "--encoder", str(enc)])
    assert res[0] == 0, res
    good = root / "good"
    good.mkdir(exist_ok=True)
    for cmd in COMMANDS:
        out = good / cmd.out_name
        inp = [str(reads)] if cmd.reads_fastq else [str(ref)]
        res = invoke(cmd.args(env, inp, out))
        assert res[0] == 0, (cmd.name, res)
        env.good[cmd.name] = out
    return env


def cli_invoker():
    """A function ``args -> (exit code, stderr, escaped exception or None)`` running in-process."""
    import typer.testing
    from typer.testing import CliRunner

    from bioseq.cli import app

    runner = CliRunner()
    # building the click command from the typer app costs more than a failing command: build once
    build = getattr(typer.testing, "_get_command", None)
    if build is not None and not getattr(build, "cached", False):
        built = build(app)

        def cached(a, _build=build):
            return built if a is app else _build(a)

        cached.cached = True
        typer.testing._get_command = cached

    def invoke(args: list[str]):
        r = runner.invoke(app, args)
        exc = r.exception if r.exception is not None and not isinstance(r.exception, SystemExit) else None
        try:
            err = r.stderr
        except ValueError:
            err = r.output
        return r.exit_code, err, exc

    return invoke


def materialise(case: Case, folder: Path) -> list[str]:
    """Write the case's files into ``folder``; return their paths (a missing mate is not created)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    paths = []
    for name, data in case.files:
        p = folder / name
        if case.notes.get("missing") and name.endswith(".missing"):
            pass
        elif data is None:
            p.mkdir()
        else:
            p.write_bytes(data)
        paths.append(str(p))
    return paths


def applies(case: Case, cmd: Command) -> bool:
    if case.kind == "pair":
        return cmd.name.startswith("align")
    if cmd.name.startswith("align"):
        return not case.fasta_reads_ok
    return True


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "error" in ln.lower()]


def run_case(case: Case, cmd: Command, env: Env, invoke, work: Path, keep_previous: bool) -> tuple[str, str]:
    """Run one case through one command -> (outcome, detail)."""
    inputs = materialise(case, work / "in")
    out_dir = work / f"out-{cmd.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / cmd.out_name
    for p in list(out_dir.iterdir()):  # a fresh folder: nothing, or just the good previous output
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    before = None
    if keep_previous:
        src = env.good[cmd.name]
        shutil.copytree(src, out) if src.is_dir() else shutil.copyfile(src, out)
        before = tree_digest(out)
    code, err, exc = invoke(cmd.args(env, inputs, out))
    after = tree_digest(out)
    leftovers = sorted(p.name for p in out_dir.iterdir() if p.name != cmd.out_name)
    bad_file = Path(inputs[case.bad]).name
    if exc is not None or "Traceback" in err or "internal error" in err:
        return "traceback", f"{type(exc).__name__ if exc else ''}: {str(exc)[:200] if exc else err[-300:]}"
    if code == 0:
        return "accepted", err.strip()[-200:]
    if keep_previous and after != before:
        return "destroyed", err.strip()[-200:]
    if (not keep_previous and after is not None) or leftovers:
        return "partial", f"left {leftovers or out.name}; {err.strip()[-200:]}"
    lines = error_lines(err)
    if not lines or not any(bad_file in ln for ln in lines):
        return "unclear", err.strip()[-300:]
    if case.located and not any(("line " in ln or "record" in ln) for ln in lines):
        return "unclear", "no line/record: " + err.strip()[-300:]
    return "clean", lines[-1]


def check_reader(case: Case, work: Path) -> tuple[str, str]:
    """Run a case through the Python readers (read_fasta/read_fastq/read_reads) -> (outcome, detail)."""
    from bioseq.align.reference import read_reads
    from bioseq.io import read_fasta, read_fastq

    inputs = materialise(case, work / "in")
    bad_file = Path(inputs[case.bad]).name
    readers = []
    if case.kind == "pair":
        from bioseq.align.pipeline import _batches

        readers.append(("pairs", lambda: [b for b in _batches(inputs, 3)]))
    else:
        main = read_fasta if case.kind == "fasta" else read_fastq
        readers.append((main.__name__, lambda: list(main(inputs[0]))))
        if not case.fasta_reads_ok:
            readers.append(("read_reads", lambda: list(read_reads(inputs[0]))))
    for name, fn in readers:
        try:
            fn()
        except (ValueError, OSError) as e:  # the documented user-error bases
            msg = str(e)
            if bad_file not in msg:
                return "unclear", f"{name}: {type(e).__name__}: {msg[:300]}"
            if case.located and "line " not in msg and "record" not in msg:
                return "unclear", f"{name}: no line/record: {msg[:300]}"
            continue
        except Exception as e:  # noqa: BLE001 - anything else is a crash a user would see
            return "traceback", f"{name}: {type(e).__name__}: {str(e)[:200]}"
        return "accepted", name
    return "clean", ""


def run_all(cases: list[Case], env: Env, invoke, work: Path, readers: bool = True):
    """Yield (case, command name, outcome, detail) for every applicable pair."""
    for i, case in enumerate(cases):
        for cmd in COMMANDS:
            if applies(case, cmd):
                outcome, detail = run_case(case, cmd, env, invoke, work, keep_previous=bool(i % 2))
                yield case, cmd.name, outcome, detail
        if readers:
            outcome, detail = check_reader(case, work)
            yield case, "readers", outcome, detail


def run_bioseq(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    """Run ``python -m bioseq ARGS`` in a real subprocess (exit code and stderr as a user sees them)."""
    root = Path(__file__).resolve().parents[2]
    e = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    e.pop("BIOSEQ_DEBUG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bioseq", *args], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=timeout)


# ---------------------------------------------------------------- output-path hazards

def hazards(env: Env, work: Path) -> list[tuple[str, list[str], list[Path], Path | None]]:
    """(name, CLI args, paths that must survive unchanged, final output that must not appear)."""
    work.mkdir(parents=True, exist_ok=True)
    enc = ["--encoder", str(env.encoder)]
    fa = work / "in.fa"
    shutil.copy(env.reference, fa)
    fq = work / "r.fq"
    fq.write_bytes(fastq_text([("q1", "ACGTACGTACGTACGTACGTACGTACGTACGTAC", "I" * 34)]))
    home = work / "home"
    home.mkdir()
    (home / "t").write_text("x")
    idx = work / "copy.esa"
    shutil.copytree(env.index, idx)
    link = work / "link.fa"
    link.symlink_to(fa)
    hard = work / "hard.fq"
    os.link(fq, hard)
    adir = work / "adir"
    adir.mkdir()
    js = work / "genome.json"
    shutil.copy(env.reference, js)
    holder = work / "holder"
    holder.mkdir()
    shutil.copy(env.reference, holder / "ref.fa")
    return [
        ("index -o <folder with files>", ["index", str(fa), "-o", str(home), *enc], [home], None),
        ("index -o <the reference>", ["index", str(fa), "-o", str(fa), *enc], [fa], None),
        ("index -o <index>/manifest.json", ["index", str(fa), "-o", str(idx / "manifest.json"), *enc], [idx], None),
        ("index -o <symlink to the reference>", ["index", str(fa), "-o", str(link), *enc], [fa], None),
        ("index -o <folder holding the reference>", ["index", str(holder / "ref.fa"), "-o", str(holder), *enc],
         [holder], None),
        ("align -o <the reads>", ["align", str(env.index), str(fq), "-o", str(fq), *enc], [fq], None),
        ("align -o <hard link to the reads>", ["align", str(env.index), str(fq), "-o", str(hard), *enc], [fq], None),
        ("align -o <existing folder>", ["align", str(env.index), str(fq), "-o", str(adir), *enc], [adir], None),
        ("align -o x.cram", ["align", str(env.index), str(fq), "-o", str(work / "x.cram"), *enc], [],
         work / "x.cram"),
        ("align <missing reads> -o out.sam", ["align", str(env.index), str(work / "nope.fq"), "-o",
                                              str(work / "out.sam"), *enc], [], work / "out.sam"),
        ("tokenize encode x.fa -o x.fa", ["tokenize", "encode", str(fa), "-o", str(fa)], [fa], None),
        ("tokenize train-bpe g.json -o g.json", ["tokenize", "train-bpe", str(js), "-o", str(js), "--vocab-size",
                                                 "40"], [js], None),
        ("zarr build x.fa -o x.fa", ["zarr", "build", str(fa), "-o", str(fa)], [fa], None),
        ("zarr build -o <inside an index>", ["zarr", "build", str(fa), "-o", str(idx / "s.zarr")], [idx], None),
    ]


def run_hazards(env: Env, invoke, work: Path) -> list[tuple[str, str, str]]:
    """Run every hazard -> (name, outcome, stderr tail); outcome as for fuzz cases."""
    results = []
    base = work / "hazards"
    for k in range(len(hazards(env, base / "probe"))):
        folder = base / f"h{k}"
        name, args, keep, absent = hazards(env, folder)[k]
        before = {str(p): tree_digest(p) for p in keep}
        code, err, exc = invoke(args)
        after = {str(p): tree_digest(p) for p in keep}
        left = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        if before != after:
            outcome = "destroyed"
        elif exc is not None or "Traceback" in err or "internal error" in err:
            outcome = "traceback"
        elif code == 0:
            outcome = "accepted"
        elif (absent is not None and absent.exists()) or left:
            outcome = "partial"
        else:
            outcome = "clean"
        results.append((name, outcome, " ".join(err.split())[-160:]))
    return results
