"""Flow-matching tests run many small tensor ops: single-threaded (see ``one_thread``)."""

import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_thread):
    yield
