"""What every op family shares: the :class:`Tape` and the checks of array arguments.

Internal API (for the other modules of :mod:`fastrnn.ops`, and for layers through
:mod:`fastrnn.ops.internal`): each function checks one kind of argument and raises
``TypeError``/``ValueError`` naming it, Keras's way; arrays come back C-contiguous in one
float dtype.

* :func:`float_dtype`, :func:`checked_array`, :func:`optional_array`: any float array argument.
* :func:`recurrent_inputs`, :func:`recurrent_kernel_array`, :func:`recurrent_mask_array`,
  :func:`step_mask_array`: a recurrent cell's ``x``, ``recurrent_kernel``, recurrent dropout
  mask and step mask ``(B, T)``.
* :func:`check_epsilon`: a normalization's ``epsilon``.
* :func:`truncate_steps`, :func:`tape_arrays`, :func:`upstream_gradient`: a backward's
  ``truncate``, tape and upstream gradients; :func:`read_only` marks an array a tape shares.
"""

from __future__ import annotations

import builtins
from typing import Any, Optional

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "ArrayLike",
    "FLOAT_DTYPES",
    "check_epsilon",
    "Tape",
    "checked_array",
    "float_dtype",
    "optional_array",
    "read_only",
    "recurrent_inputs",
    "recurrent_kernel_array",
    "recurrent_mask_array",
    "step_mask_array",
    "tape_arrays",
    "truncate_steps",
    "upstream_gradient",
]


ArrayLike = Any
ACTIVATIONS = ("tanh", "relu", "linear")


class Tape:
    """What a backward pass needs from its forward pass. Treat it as opaque."""

    __slots__ = ("_arrays", "_cell", "_options")

    def __init__(self, cell: str, arrays: dict[str, Any], **options: Any):
        self._cell = cell
        self._arrays = arrays
        self._options = options

    @property
    def cell(self) -> str:
        """``"simple_rnn"``, ``"lstm"`` or ``"gru"``."""
        return self._cell

    @property
    def nbytes(self) -> int:
        """Bytes held by this tape (arrays shared with the caller included)."""
        return builtins.sum(a.nbytes for a in self._arrays.values() if a is not None)

    def __repr__(self) -> str:
        x = self._arrays["x"]
        return f"<fastrnn.ops.Tape {self._cell} x{tuple(x.shape)} {x.dtype} {self.nbytes} bytes>"


# ----------------------------------------------------------------------------- argument checks
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(name: str, a: np.ndarray) -> np.dtype:
    kind = a.dtype.kind
    if kind == "f":
        if a.dtype == np.float64 or a.dtype.itemsize > 8:
            return np.dtype(np.float64)
        return np.dtype(np.float32)
    raise TypeError(
        f"Received an invalid value for argument `{name}`: expected a float32 or float64 array, "
        f"got dtype {a.dtype}."
    )


def checked_array(
    name: str, value: ArrayLike, dtype: Optional[np.dtype], shape: tuple[Any, ...], what: str
) -> np.ndarray:
    """Returns `value` as a C-contiguous array of `dtype` and exactly `shape` (dims < 0: any)."""
    if (  # the common case, checked first and cheaply: already exactly what is needed
        type(value) is np.ndarray
        and value.dtype == dtype
        and value.shape == shape
        and value.flags.c_contiguous
    ):
        return value
    a = np.asarray(value)
    got = float_dtype(name, a)
    if dtype is not None and got != dtype:
        raise TypeError(
            f"Received an invalid value for argument `{name}`: its dtype {a.dtype} differs from "
            f"`x`'s {dtype}; pass every array in one dtype (float32 or float64)."
        )
    if a.ndim != len(shape) or any(s >= 0 and s != g for s, g in zip(shape, a.shape)):
        want = tuple("?" if s < 0 else s for s in shape)
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected shape {want} {what}, "
            f"got {a.shape}."
        )
    return np.ascontiguousarray(a, dtype=got)


def optional_array(name: str, value: ArrayLike, dtype: Optional[np.dtype], shape: tuple[Any, ...],
                   what: str) -> Optional[np.ndarray]:
    return None if value is None else checked_array(name, value, dtype, shape, what)


def recurrent_inputs(
    x: ArrayLike, recurrent_kernel: ArrayLike, gates: int
) -> tuple[np.ndarray, np.ndarray, np.dtype, int, int, int, int]:
    """Validates x and recurrent_kernel; returns them with (dtype, B, T, I, H)."""
    if (  # the common case, checked first and cheaply
        type(x) is np.ndarray
        and x.ndim == 3
        and x.dtype in FLOAT_DTYPES
        and x.flags.c_contiguous
        and x.shape[2] >= 1
    ):
        u = recurrent_kernel_array(recurrent_kernel, gates, x.dtype)
        return (x, u, x.dtype, *x.shape, u.shape[0])
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(
            "Received an invalid value for argument `x`: expected a 3-D array (batch, time, "
            f"features), got shape {x.shape}."
        )
    dtype = float_dtype("x", x)
    x = np.ascontiguousarray(x, dtype=dtype)
    B, T, I = x.shape
    if I < 1:
        raise ValueError(
            "Received an invalid value for argument `x`: expected at least one feature, "
            f"got shape {x.shape}."
        )
    u = recurrent_kernel_array(recurrent_kernel, gates, dtype)
    return x, u, dtype, B, T, I, u.shape[0]


def recurrent_kernel_array(value: ArrayLike, gates: int, dtype: Optional[np.dtype]) -> np.ndarray:
    """Validates a recurrent kernel (H, gates * H), H >= 1 (any float dtype if `dtype` is None)."""
    u = np.asarray(value)
    if u.ndim != 2 or u.shape[0] < 1 or u.shape[1] != gates * u.shape[0]:
        raise ValueError(
            "Received an invalid value for argument `recurrent_kernel`: expected shape "
            f"(units, {gates} * units) with units >= 1, got {u.shape}."
        )
    return checked_array("recurrent_kernel", u, dtype, u.shape, "")


def recurrent_mask_array(value: ArrayLike, dtype: np.dtype, B: int, H: int) -> Optional[np.ndarray]:
    return optional_array("recurrent_mask", value, dtype, (B, H), "(batch, units)")


def step_mask_array(value: ArrayLike, B: int, T: int) -> Optional[np.ndarray]:
    """Validates a step mask: None, or a bool/integer array (B, T); returns bool (B, T)."""
    if value is None:
        return None
    if type(value) is np.ndarray and value.dtype == np.bool_ and value.shape == (B, T):
        return np.ascontiguousarray(value)
    m = np.asarray(value)
    if m.dtype.kind not in "biu":
        raise TypeError(
            "Received an invalid value for argument `mask`: expected a bool (or integer) array "
            f"of shape (batch, time), got dtype {m.dtype}."
        )
    if m.shape != (B, T):
        raise ValueError(
            "Received an invalid value for argument `mask`: expected shape (batch, time) = "
            f"{(B, T)}, got {m.shape}."
        )
    return np.ascontiguousarray(m != 0)


def truncate_steps(truncate: Optional[int]) -> int:
    if truncate is None:
        return 0
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(truncate, (int, np.integer)):
        raise TypeError(
            "Received an invalid value for argument `truncate`: expected None or a positive "
            f"integer, got {truncate!r}."
        )
    if truncate < 1:
        raise ValueError(
            "Received an invalid value for argument `truncate`: expected None or a positive "
            f"integer, got {truncate}."
        )
    return int(truncate)


def tape_arrays(tape: Tape, cell: str) -> dict[str, Any]:
    if not isinstance(tape, Tape):
        raise TypeError(
            f"Received an invalid value for argument `tape`: expected the tape returned by "
            f"fastrnn.ops.{cell}_forward, got {type(tape).__name__}."
        )
    if tape.cell != cell:
        raise ValueError(
            f"Received an invalid value for argument `tape`: it comes from "
            f"{tape.cell}_forward, not {cell}_forward."
        )
    return tape._arrays


def upstream_gradient(name: str, value: ArrayLike, outputs: np.ndarray,
                      sequence: bool) -> Optional[np.ndarray]:
    """Validates an upstream gradient: like `outputs` (B, T, H), or like one state (B, H)."""
    B, T, H = outputs.shape
    shape, what = ((B, T, H), "(batch, time, units)") if sequence else ((B, H), "(batch, units)")
    return optional_array(name, value, outputs.dtype, shape, what)


def read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def check_epsilon(value: Any) -> float:
    """A normalization's `epsilon`: a positive finite float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not float(value) > 0.0 or not np.isfinite(float(value)):
        raise ValueError(
            f"Received an invalid value for argument `epsilon`, expected a positive float, "
            f"got {value!r}."
        )
    return float(value)
