"""These tests train tiny models for a few steps; on a busy 2-core machine two intra-op threads
make such small kernels wait on each other (10-100x slower), so they run single-threaded."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
