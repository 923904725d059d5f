"""Optional test dependencies, imported when a test first uses them.

``torch = lazy("torch")`` at a test module's top level costs nothing at collection; the first
attribute a test reads (``torch.nn``) imports the package, or skips that test when it is not
installed. A newcomer's ``pip install ".[test]" && python -m pytest`` (no PyTorch, no
TensorFlow) so collects and runs every file, skipping only the parity tests.
"""

from __future__ import annotations

from typing import Any

import pytest


class lazy:  # noqa: N801 - used like a module
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):  # pytest's collection probes (__test__, ...)
            raise AttributeError(attribute)
        return getattr(pytest.importorskip(self._name), attribute)
