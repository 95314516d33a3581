"""One intra-op thread for these tests: they run many small tensor ops, for which a second thread
only adds synchronisation (and, on a loaded machine, long spin waits)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
