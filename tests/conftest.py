"""Fixtures shared by the kernel tests."""

from __future__ import annotations

import pytest

from fastrnn import _core


@pytest.fixture
def kernel_set_restored():
    """Puts back the kernel set in use after a test that selects another."""
    before = _core.kernel_set()
    yield
    _core.select_kernel_set(before)
