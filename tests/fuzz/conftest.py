"""Fixtures for the fuzz and fault tests: the corpus generator, an in-process CLI and a tiny setup.

``corpus.py`` (the seeded generator) and ``harness.py`` (running a case through a command and
classifying the outcome) are plain modules beside this file, shared with ``measure.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import cli_invoker, make_env  # noqa: E402


@pytest.fixture(scope="session")
def invoke():
    """``args -> (exit code, stderr, escaped exception)`` through typer's CliRunner."""
    return cli_invoker()


@pytest.fixture(scope="session")
def fuzz_env(tmp_path_factory, invoke):
    """A tiny encoder, a 3 kb reference, its index and one good output per command."""
    return make_env(tmp_path_factory.mktemp("fuzz-env"), invoke)
