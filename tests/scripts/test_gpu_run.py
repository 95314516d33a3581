"""scripts/gpu_run.sh in its seconds-long CPU mode, so the prepared GPU run cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_run_tiny_rehearsal(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "BIOSEQ_SMOKE": "1"}
    r = subprocess.run(["bash", "scripts/gpu_run.sh", "--tiny", str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "device.txt").read_text().startswith("torch ")
    assert "passed" in (tmp_path / "gpu_tests.log").read_text() or "skipped" in (tmp_path / "gpu_tests.log").read_text()
    table = (tmp_path / "train_throughput_cuda.md").read_text()
    assert "| transformer-tiny |" in table
    assert (tmp_path / "starter" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "starter" / "metrics.csv").is_file()
    assert not (tmp_path / "starter" / "checkpoints").exists()  # no optimizer state leaves the machine
