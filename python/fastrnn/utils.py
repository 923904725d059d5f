"""``keras.utils`` names for sequence work: labels, padding, windows, seeding.

* :func:`to_categorical`: class ids -> one-hot rows (Keras's, with its errors made clear).
* :func:`normalize`: rows scaled to unit norm.
* :func:`pad_sequences`: :func:`fastrnn.preprocessing.sequence.pad_sequences`.
* :func:`timeseries_dataset_from_array`: :func:`fastrnn.timeseries.
  timeseries_dataset_from_array` (Keras's windows, without a copy per window).
* :func:`set_random_seed` (:func:`fastrnn.set_seed`), :func:`clear_session`
  (:func:`fastrnn.backend.clear_session`).
* :func:`pack_x_y_sample_weight` / :func:`unpack_x_y_sample_weight`, :func:`is_keras_tensor`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._seed import set_seed as set_random_seed
from .preprocessing.sequence import pad_sequences
from .timeseries import timeseries_dataset_from_array

# (numpy.exceptions exists from NumPy 1.25; older NumPy has AxisError at the top level)
_AXIS_ERROR = getattr(getattr(np, "exceptions", np), "AxisError", ValueError)

__all__ = ["clear_session", "is_keras_tensor", "normalize", "pack_x_y_sample_weight",
           "pad_sequences", "set_random_seed", "timeseries_dataset_from_array",
           "to_categorical", "unpack_x_y_sample_weight"]


def to_categorical(x: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """One-hot rows for class ids, as ``keras.utils.to_categorical``.

    Args:
        x: integer class ids of any shape ``S``; a trailing axis of size 1 is dropped
            (``(N, 1)`` labels give ``(N, num_classes)``).
        num_classes: the number of classes; None: ``max(x) + 1``.

    Returns:
        ``(*S, num_classes)`` float64 array (Keras's dtype) with a 1 at each id.

    Raises:
        ValueError: ids that are not whole numbers, negative, or not below `num_classes`;
            a `num_classes` that is not a positive integer.
    """
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(
                "Received an invalid value for argument `x`, expected integer class ids, got "
                "non-integer values."
            )
    elif a.dtype.kind not in "biu":
        raise ValueError(
            f"Received an invalid value for argument `x`, expected integer class ids, got dtype "
            f"{a.dtype}."
        )
    a = a.astype(np.int64)
    shape = a.shape[:-1] if a.ndim > 1 and a.shape[-1] == 1 else a.shape
    a = a.reshape(-1)
    if num_classes is None:
        if a.size == 0:
            raise ValueError(
                "Received an invalid value for argument `x`, it is empty: pass `num_classes`."
            )
        num_classes = int(a.max()) + 1
    elif isinstance(num_classes, (bool, np.bool_)) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(
            "Received an invalid value for argument `num_classes`, expected None or a positive "
            f"integer, got {num_classes!r}."
        )
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        bad = int(a.min()) if a.min() < 0 else int(a.max())
        raise ValueError(
            f"Received an invalid value for argument `x`, class ids must be in [0, "
            f"num_classes) = [0, {num_classes}), got {bad}."
        )
    out = np.zeros((a.size, int(num_classes)))
    out[np.arange(a.size), a] = 1
    return out.reshape(shape + (int(num_classes),))


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """`x` divided by its `order`-norm along `axis` (zero vectors stay zero), as
    ``keras.utils.normalize``."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"Received an invalid value for argument `x`, expected a numeric array, got dtype "
            f"{a.dtype}."
        )
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    try:
        norm = np.atleast_1d(np.linalg.norm(a, order, axis))
    except (ValueError, _AXIS_ERROR) as e:
        raise ValueError(
            f"Received invalid values for arguments `axis`={axis!r} or `order`={order!r} for "
            f"an array of shape {a.shape}: {e}"
        ) from e
    norm[norm == 0] = 1
    return a / np.expand_dims(norm, axis)


def clear_session() -> None:
    """``keras.utils.clear_session``: :func:`fastrnn.backend.clear_session`."""
    from .backend import clear_session as clear

    clear()


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> tuple:
    """``x`` (wrapped as ``(x,)`` when it is itself a tuple or list), ``(x, y)`` or ``(x, y,
    sample_weight)``: what a data iterator yields, as Keras's."""
    if y is None:
        return x if not isinstance(x, (list, tuple)) else (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data: Any) -> tuple:
    """``(x, y, sample_weight)`` (missing parts None) from a data iterator's element."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if not 1 <= len(data) <= 3:
        raise ValueError(
            "Received an invalid value for argument `data`, expected a tuple of the form "
            f"(x,), (x, y) or (x, y, sample_weight), got a tuple of {len(data)}."
        )
    return tuple(data) + (None,) * (3 - len(data))


def is_keras_tensor(x: Any) -> bool:
    """Whether `x` is a symbolic tensor of a model being built (``fastrnn.Input(...)`` or a
    layer's call on one)."""
    from .layers.symbolic import SymbolicTensor

    return isinstance(x, SymbolicTensor)
