"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest

import fastrnn
from fastrnn import _core


@pytest.fixture
def kernel_set_restored():
    """Puts back the kernel set in use after a test that selects another."""
    before = _core.kernel_set()
    yield
    _core.select_kernel_set(before)


@pytest.fixture
def two_threads():
    """The core's thread count set to 2 for the test (and put back after)."""
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(2)
    try:
        yield
    finally:
        fastrnn.set_num_threads(before)
