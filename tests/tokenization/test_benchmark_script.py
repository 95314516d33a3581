"""The throughput benchmark runs end to end (tiny input; nothing is timed here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_benchmark_runs_on_lambda(tmp_path, lambda_fasta):
    out = tmp_path / "bench.md"
    cmd = [sys.executable, str(ROOT / "benchmarks/tokenizers.py"), "--fasta", str(lambda_fasta),
           "--window", "500", "--n-windows", "20", "--repeats", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "| char vs HF BPE, no merges | 20 x 500 bp windows, encode_batch |" in text
    assert text.count("x |") == 10  # ten ratio rows
