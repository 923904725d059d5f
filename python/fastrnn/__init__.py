"""fastrnn: fast SimpleRNN, LSTM and GRU training on NumPy arrays.

A C++ core (OpenBLAS GEMMs, fused vectorised gate math, truncated BPTT) under a Keras-style
Python API::

    import fastrnn
    model = fastrnn.Sequential([
        fastrnn.layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
        fastrnn.layers.SimpleRNN(20),
        fastrnn.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer="adam")
    model.fit(X_train, y_train, epochs=20, validation_data=(X_valid, y_valid))
"""

from __future__ import annotations

import sys as _sys

from ._checks import KernelSetError as _KernelSetError
from ._checks import check_positive_int as _check_positive_int
from ._version import __version__

try:
    from . import ops
except _KernelSetError as _error:
    # `fastrnn ...` and `python -m fastrnn ...` (whose argv[0] is "-m" while the package
    # loads) report it as the command's one error line, not as a traceback.
    if _sys.argv[:1] == ["-m"] or _sys.argv[0].rsplit("/", 1)[-1] == "fastrnn":
        print(f"fastrnn: error: {_error}", file=_sys.stderr)
        raise SystemExit(1) from None
    raise
from . import (
    _core,
    activations,
    backend,
    callbacks,
    constraints,
    initializers,
    layers,
    losses,
    metrics,
    ops,
    optimizers,
    preprocessing,
    regularizers,
    saving,
    timeseries,
    utils,
)
from .layers.core import Input
from .models import Model, Sequential, load_model, set_seed

__all__ = [
    "Input",
    "Model",
    "Sequential",
    "__version__",
    "activations",
    "backend",
    "callbacks",
    "constraints",
    "get_num_threads",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "ops",
    "optimizers",
    "preprocessing",
    "reference",
    "regularizers",
    "saving",
    "set_num_threads",
    "set_seed",
    "timeseries",
    "utils",
]


def __getattr__(name: str) -> object:
    # ``fastrnn.reference`` (the NumPy oracle, for tests and benchmarks) is imported on first
    # use, not by ``import fastrnn``.
    if name == "reference":
        import importlib

        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_num_threads(n: int) -> None:
    """Sets the number of threads the core uses for its kernels (default: all cores).

    Counts above ``fastrnn._core.MAX_THREADS`` (255) are capped there: no kernel phase splits
    its work into more slices than that, so more threads could never run, and the per-thread
    buffers stay bounded. ``get_num_threads()`` returns the count in effect.
    """
    _core.set_num_threads(_check_positive_int("n", n))


def get_num_threads() -> int:
    """The number of threads the core uses."""
    return int(_core.get_num_threads())
