"""These tests train tiny models for a few steps: single-threaded (see ``one_thread``)."""

import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_thread):
    yield
