"""fastrnn: fast SimpleRNN, LSTM and GRU training on NumPy arrays.

A C++ core (OpenBLAS GEMMs, fused vectorised gate math) under a Keras-style Python API.
"""

from __future__ import annotations

from . import _core, ops

__version__ = "0.1.0"

__all__ = ["__version__", "get_num_threads", "ops", "set_num_threads"]


def set_num_threads(n: int) -> None:
    """Sets the number of threads the core uses (its OpenBLAS included)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"Received an invalid value for argument `n`: expected a positive integer, got {n!r}."
        )
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads the core uses."""
    return int(_core.get_num_threads())
