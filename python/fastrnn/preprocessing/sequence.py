"""``keras.preprocessing.sequence``: :func:`pad_sequences`, preparing variable-length
sequences for the layers.

Padded batches go with masks: pad token ids with 0 and use ``Embedding(mask_zero=True)``, or
pad feature vectors with a value no real step has and use ``Masking(mask_value=...)``; the
recurrent layers then skip the padding (see :mod:`fastrnn.layers.recurrent`).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

__all__ = ["pad_sequences"]

_SIDES = ("pre", "post")


def _side(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in _SIDES:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected 'pre' or 'post', "
            f"got {value!r}."
        )
    return value


def _is_text_dtype(dtype: np.dtype) -> bool:
    return dtype == np.dtype(object) or dtype.kind in "SU"


def pad_sequences(
    sequences: Any,
    maxlen: Optional[int] = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pads (and truncates) sequences to one length: Keras's ``pad_sequences``.

    Args:
        sequences: a list (anything with ``len``) of sequences; each is a list or array of
            ``L_i`` steps, a step being a number or an array of one shape ``S`` shared by all.
        maxlen: the output length ``T``; None: the longest sequence's length.
        dtype: of the output (``"int32"`` by default; ``object`` or a string dtype for
            strings).
        padding: ``"pre"`` (default) fills before each sequence, ``"post"`` after it.
        truncating: ``"pre"`` (default) drops steps from the start of a sequence longer
            than ``maxlen``, ``"post"`` from its end.
        value: the fill value (a string needs ``dtype=object`` or a string dtype).

    Returns:
        ``(len(sequences), T, *S)`` array of `dtype`. Empty sequences are all padding.

    Raises:
        ValueError: `sequences` without a length, or holding something that is not a
            sequence; steps of different shapes; strings with a numeric `dtype`; a bad
            `maxlen`, `padding` or `truncating`.
    """
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError(
            "Received an invalid value for argument `sequences`, expected a list of sequences, "
            f"got {type(sequences).__name__}."
        )
    padding = _side("padding", padding)
    truncating = _side("truncating", truncating)
    if maxlen is not None and (
        isinstance(maxlen, (bool, np.bool_)) or not isinstance(maxlen, (int, np.integer))
        or maxlen < 0
    ):
        raise ValueError(
            "Received an invalid value for argument `maxlen`, expected None or a non-negative "
            f"integer, got {maxlen!r}."
        )
    try:
        dtype = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(
            f"Received an invalid value for argument `dtype`, expected a NumPy dtype, got "
            f"{dtype!r}."
        ) from e
    if isinstance(value, str) and not _is_text_dtype(dtype):
        raise ValueError(
            f"Received an invalid value for argument `value`, the string {value!r} does not fit "
            f"dtype {dtype}; use dtype=object (or a string dtype) to pad strings."
        )
    lengths, step_shape = [], None
    for i, s in enumerate(sequences):
        if not hasattr(s, "__len__") or isinstance(s, (str, bytes)):
            raise ValueError(
                f"Received an invalid value for argument `sequences`, every element must be a "
                f"sequence (list or array), got {type(s).__name__} at position {i}: {s!r}."
            )
        lengths.append(len(s))
        if step_shape is None and len(s):
            step_shape = _steps(s, i, None).shape[1:]
    if maxlen is None:
        if not lengths:
            raise ValueError(
                "Received an invalid value for argument `sequences`, it is empty: pass "
                "`maxlen` to get a (0, maxlen) array."
            )
        maxlen = max(lengths)
    step_shape = step_shape or ()
    out = np.full((len(lengths), maxlen) + step_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        steps = _steps(kept, i, dtype)
        if steps.shape[1:] != step_shape:
            raise ValueError(
                f"Received an invalid value for argument `sequences`, its steps must all have "
                f"one shape: the first non-empty sequence's are {step_shape}, sequence {i}'s "
                f"are {steps.shape[1:]}."
            )
        if padding == "post":
            out[i, : len(steps)] = steps
        else:
            out[i, -len(steps):] = steps
    return out


def _holds_text(s: Any) -> bool:
    """Whether a (nested) sequence holds any str or bytes."""
    if isinstance(s, (str, bytes)):
        return True
    if isinstance(s, np.ndarray):
        return s.dtype.kind in "SU" or (
            s.dtype.kind == "O" and any(_holds_text(v) for v in s.ravel()))
    if hasattr(s, "__len__") and hasattr(s, "__iter__"):
        return any(_holds_text(v) for v in s)
    return False


_RAGGED_WARNING = getattr(getattr(np, "exceptions", np), "VisibleDeprecationWarning",
                          DeprecationWarning)


def _steps(s: Any, i: int, dtype: Optional[np.dtype]) -> np.ndarray:
    """Sequence i as an array (L, *S) of `dtype` (None: NumPy's choice), with clear errors."""
    if dtype is not None and not _is_text_dtype(dtype) and _holds_text(s):
        raise ValueError(
            f"Received an invalid value for argument `sequences`, sequence {i} holds strings, "
            f"which do not fit dtype {dtype}; use dtype=object (or a string dtype) to pad "
            "strings."
        )
    try:
        with warnings.catch_warnings():
            # NumPy < 1.24 makes an object array of ragged nesting, with only this warning
            warnings.simplefilter("error", _RAGGED_WARNING)
            a = np.asarray(s) if dtype is None else np.asarray(s, dtype=dtype)
    except (ValueError, TypeError, _RAGGED_WARNING) as e:
        raise ValueError(
            f"Received an invalid value for argument `sequences`, sequence {i} is ragged or "
            f"not numeric ({e})."
        ) from e
    if a.ndim == 0:
        raise ValueError(
            f"Received an invalid value for argument `sequences`, sequence {i} is not a "
            f"sequence: {s!r}."
        )
    return a
