"""Every notebook in notebooks/ is valid nbformat JSON, has a papermill ``parameters`` cell, is
committed without outputs, and runs top to bottom in smoke mode (``BIOSEQ_SMOKE=1``).

Execution takes about a minute per notebook on 2 cores, so it is marked ``slow`` locally; CI
(``CI=true``, which scripts/test.sh turns into ``BIOSEQ_SMOKE=1``) runs it in the default tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IN_CI = os.environ.get("BIOSEQ_SMOKE") == "1"
EXPECTED = {"finetune_splice_sites", "finetune_promoters", "design_with_dfm", "align_and_inspect",
            "protein_embeddings"}


def test_expected_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_valid_parameters_and_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert "BIOSEQ_SMOKE" in tagged[0].source, f"{path.name}: the parameters cell must read BIOSEQ_SMOKE"
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{path.name}: cell {i} has committed outputs"


@pytest.mark.skipif(not IN_CI, reason="executes notebooks: runs when BIOSEQ_SMOKE=1 (CI), or with -m slow")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executes_in_smoke_mode(path, monkeypatch):
    _execute(path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executes_in_smoke_mode_slow_tier(path, monkeypatch):
    _execute(path, monkeypatch)


def _execute(path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("BIOSEQ_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
