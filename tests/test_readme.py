"""The README's Python snippets and its cheap commands run as written (in a scratch folder that has
``data/`` and a small model at ``runs/demo/final``, as after ``bash scripts/demo.sh``)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)

# Commands run as written (each must appear in the README): the quick ones.
COMMANDS = [
    "bioseq zarr build data/genomes/ecoli_K12_MG1655.fa.gz data/genomes/lambda_NC_001416.fa.gz "
    "--genome ecoli --genome lambda -o runs/readme/genomes.zarr",
    "bioseq embed -m runs/demo/final data/genomes/lambda_NC_001416.fa.gz -o runs/readme/lambda.npy --rc",
]


@pytest.fixture
def scratch(tmp_path, tiny_checkpoint):
    (tmp_path / "data").symlink_to(ROOT / "data")
    shutil.copytree(tiny_checkpoint("clm"), tmp_path / "runs" / "demo" / "final")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def test_readme_commands_and_python_snippets_run(scratch):
    from bioseq.cli import app

    for cmd in COMMANDS:
        assert cmd in " ".join(README.replace("\\\n", " ").split()), cmd
        args = shlex.split(cmd)
        r = CliRunner().invoke(app, args[1:])
        assert r.exit_code == 0, (cmd, r.output)
    snippets = [code for lang, code in BLOCKS if lang == "python"]
    assert len(snippets) >= 4
    namespace: dict = {}
    for code in snippets:
        # The fine-tuning snippet's step budget is cut for the test; everything else runs as written.
        code = code.replace("max_steps=600", "max_steps=2")
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["emb"].shape == (2, 16)
    assert set(namespace["evaluate"](namespace["model"], namespace["test"])) >= {"accuracy", "mcc"}
    assert (scratch / "runs" / "readme" / "ckpt" / "model.safetensors").exists()
    assert not [p for p in scratch.iterdir() if p.name not in ("data", "runs")]  # nothing in the repo root


def test_readme_says_how_to_activate_the_environment():
    assert "source .venv/bin/activate" in README
    assert "source $ROOT/.venv/bin/activate" in (ROOT / "scripts" / "demo.sh").read_text()


def test_help_shows_no_python_types():
    from bioseq.cli import app

    runner = CliRunner()
    commands = [["--help"], ["embed", "--help"], ["score", "bits", "--help"], ["score", "variants", "--help"],
                ["zarr", "build", "--help"], ["align", "--help"], ["index", "--help"]]
    for args in commands:
        r = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert r.exit_code == 0, args
        assert not re.search(r"<(bool|str|int|float|Path|list\[\w+\])>", r.output), (args, r.output)
