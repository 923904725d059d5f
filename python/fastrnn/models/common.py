"""Small helpers shared by the model files (no model logic here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import numpy as np

_model_names: dict[str, int] = {}


def unique_model_name(base: str) -> str:
    n = _model_names.get(base, 0)
    _model_names[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def check_name(name: Any) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(
            f"Received an invalid value for argument `name`: expected a non-empty string, "
            f"got {name!r}."
        )


def shape_str(shape: Optional[tuple]) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(shape_str(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(
        shape) == 1 else "") + ")"


def is_array_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, list, tuple)) or hasattr(x, "__array__")


def is_dataset(x: Any) -> bool:
    """An iterable of (x, y) batches (e.g. ``fastrnn.timeseries.timeseries_dataset_from_array``)."""
    return x is not None and not is_array_like(x) and not isinstance(x, dict) and isinstance(
        x, Iterable)


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k}: {v:.4e}"
                      for k, v in logs.items())


def aligned_zeros(n: int, dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose data starts on an `alignment`-byte boundary.

    Vectorised kernels may treat the unaligned head of an array differently from its body
    (other rounding); a buffer that always starts on the same boundary makes training
    bit-reproducible from run to run, not only for the addresses malloc happens to return.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + alignment // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % alignment) // itemsize
    return raw[start:start + n]


def check_input_array(x: Any, name: str) -> np.ndarray:
    """A non-empty numeric array with a batch axis and at least one more."""
    if x is None:
        raise ValueError(f"Received no data for argument `{name}`: expected an array.")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a numeric array, "
            f"got dtype {a.dtype}."
        )
    if a.ndim < 2:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an array of shape "
            f"(samples, ...) with at least 2 dimensions, got shape {a.shape}."
        )
    if a.shape[0] == 0:
        raise ValueError(
            f"Received an empty array for argument `{name}` (shape {a.shape}): expected at "
            "least one sample."
        )
    return a
