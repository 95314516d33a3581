"""Seeded fuzzing: malformed FASTA/FASTQ/paired inputs through every sequence-reading command.

Every case must end in a clean error: non-zero exit, no traceback, one error line naming the file
(and the line or record where the fault has one), nothing at the output path, a previous good
output untouched, no temporaries left (see ``harness.py`` for the outcome classes).
"""

from __future__ import annotations

import collections

import pytest
from corpus import generate
from harness import check_reader, run_all, run_bioseq

SEED = 13


def _failures(cases, fuzz_env, invoke, work):
    seen = collections.Counter()
    bad = []
    for case, cmd, outcome, detail in run_all(cases, fuzz_env, invoke, work):
        seen[cmd] += 1
        if outcome != "clean":
            bad.append(f"{case.id} [{cmd}] {outcome}: {detail}")
    return seen, bad


def test_generator_is_seeded_and_covers_every_family():
    a, b = generate(SEED, 120), generate(SEED, 120)
    assert [c.files for c in a] == [c.files for c in b]
    assert [c.files for c in generate(SEED + 1, 120)] != [c.files for c in a]
    families = {(c.kind, c.family) for c in a}
    assert len(families) == 47  # 12 FASTA, 15 FASTQ, 2 x 7 compressed, 6 pair faults


def test_fuzz_300_inputs_every_command(fuzz_env, invoke, tmp_path):
    cases = generate(SEED, 300)
    seen, bad = _failures(cases, fuzz_env, invoke, tmp_path)
    assert not bad, f"{len(bad)} of {sum(seen.values())} runs not clean:\n" + "\n".join(bad[:30])
    # every command saw the inputs that apply to it (pairs only go to align)
    assert seen["readers"] == 300
    assert all(seen[c] >= 250 for c in ("index", "zarr", "encode", "train-bpe", "align-sam", "align-bam"))


@pytest.mark.slow
def test_fuzz_2000_inputs_every_command(fuzz_env, invoke, tmp_path):
    cases = generate(SEED + 1000, 2000)
    seen, bad = _failures(cases, fuzz_env, invoke, tmp_path)
    assert not bad, f"{len(bad)} of {sum(seen.values())} runs not clean:\n" + "\n".join(bad[:30])


def test_readers_alone_2000_inputs(tmp_path):
    """The Python readers are cheap: a larger corpus through them in the default tier."""
    bad = [f"{c.id}: {o} {d}" for c in generate(SEED + 7, 2000)
           for o, d in [check_reader(c, tmp_path)] if o != "clean"]
    assert not bad, "\n".join(bad[:30])


@pytest.mark.parametrize("index", [3, 20, 33, 50])  # a directory, +name, bgzf cut, a pair fault
def test_real_subprocess_exit_code_and_no_traceback(fuzz_env, tmp_path, index):
    """End to end as a user runs it: exit status 1, one line on stderr, no traceback."""
    from harness import materialise

    case = generate(SEED, 60)[index]
    inputs = materialise(case, tmp_path / "in")
    out = tmp_path / "out.sam"
    r = run_bioseq("align", str(fuzz_env.index), *inputs, "-o", str(out), "--encoder", str(fuzz_env.encoder))
    assert r.returncode == 1, (case.id, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bioseq align: error: "), (case.id, r.stderr)
    assert (tmp_path / "in" / case.files[case.bad][0]).name in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out.sam*"))


def test_debug_shows_the_traceback(tmp_path):
    d = tmp_path / "dir.fa"
    d.mkdir()
    plain = run_bioseq("tokenize", "encode", str(d), "-o", str(tmp_path / "x.txt"))
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and str(d) in plain.stderr
    for extra, env in ((["--debug"], None), ([], {"BIOSEQ_DEBUG": "1"})):
        r = run_bioseq(*extra, "zarr", "build", str(d), "-o", str(tmp_path / "s.zarr"), env=env)
        assert r.returncode != 0 and "Traceback" in r.stderr, r.stderr
