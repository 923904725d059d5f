"""Weight constraints, Keras 3's ``keras.constraints``: projections applied to a weight after
each optimizer update.

A constraint maps a weight array to its projected value, ``__call__(w) -> array`` of ``w``'s
shape. Layers take them as ``kernel_constraint``, ``recurrent_constraint``,
``bias_constraint``, ``embeddings_constraint``; in training the model applies each one to its
weight (in place, in the flat parameter buffer) after every optimizer step, as Keras does.

``axis`` (MaxNorm, UnitNorm, MinMaxNorm) is the axis, or list of axes, the norms are taken
over: ``axis=0`` on a ``Dense`` kernel ``(input_dim, units)`` constrains each unit's incoming
weight vector (norms ``(1, units)``).

Identifiers (:func:`get`): a :class:`Constraint`, None, a name (``"max_norm"``,
``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"`` or the class names), a :func:`serialize`
config, or a callable ``f(w) -> array``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _identifiers

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "deserialize",
    "get",
    "max_norm",
    "min_max_norm",
    "non_neg",
    "serialize",
    "unit_norm",
]

_EPSILON = 1e-7  # Keras's backend.epsilon(), added to norms before dividing


def _number(name: str, value: Any, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < low:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a finite number >= "
            f"{low:g}, got {value!r}."
        )
    return float(value)


def _axis(value: Any) -> Union[int, list[int]]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in value):
        return [int(a) for a in value]
    raise ValueError(
        f"Received an invalid value for argument `axis`, expected an integer or a list of "
        f"integers, got {value!r}."
    )


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (``w``'s shape); the base
    class's projection is the identity. Subclasses also implement ``get_config``."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        return cls(**config)

    def _norms(self, w: np.ndarray) -> np.ndarray:
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        if any(not -w.ndim <= a < w.ndim for a in np.atleast_1d(axis)):
            raise ValueError(
                f"{type(self).__name__}: `axis`={self.axis!r} is out of range for a weight of "
                f"shape {w.shape}."
            )
        return np.sqrt(np.square(w).sum(axis=axis, keepdims=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Rescales each weight vector (norms over `axis`) to norm at most `max_value`:
    ``w * clip(n, 0, max_value) / (n + 1e-7)``."""

    def __init__(self, max_value: float = 2, axis: Any = 0):
        self.max_value = _number("max_value", max_value)
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = self._norms(w)
        return w * (np.clip(norms, 0, self.max_value) / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``max(w, 0)``."""

    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    """Rescales each weight vector (norms over `axis`) to unit norm: ``w / (n + 1e-7)``."""

    def __init__(self, axis: Any = 0):
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        return w / (_EPSILON + self._norms(w))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each weight vector's norm ``n`` towards ``[min_value, max_value]``:
    ``w * (rate * clip(n, min, max) + (1 - rate) * n) / (n + 1e-7)``."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Any = 0):
        self.min_value = _number("min_value", min_value)
        self.max_value = _number("max_value", max_value)
        if self.max_value < self.min_value:
            raise ValueError(
                "Received an invalid value for argument `max_value`, expected a number >= "
                f"min_value ({self.min_value:g}), got {max_value!r}."
            )
        self.rate = _number("rate", rate)
        self.axis = _axis(axis)

    def __call__(self, w):
        w = np.asarray(w)
        norms = self._norms(w)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (
            1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class FunctionConstraint(Constraint):
    """A callable ``f(w) -> projected w`` (not serialisable: pass it again when loading)."""

    def __init__(self, fn: Callable[[np.ndarray], Any]):
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, w):
        out = np.asarray(self.fn(w))
        if out.shape != np.shape(w):
            raise ValueError(
                f"Constraint `{self.name}` returned shape {out.shape}; expected the weight's "
                f"shape {np.shape(w)}."
            )
        return out

    def get_config(self):
        raise NotImplementedError(
            f"Constraint `{self.name}` wraps a Python function and cannot be serialised; pass "
            "it again when loading (fastrnn never pickles code)."
        )


# Keras's function-style names are its classes under another name; all aliases in one place.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_NAMES: dict[str, type[Constraint]] = {
    "Constraint": Constraint, "MaxNorm": MaxNorm, "max_norm": MaxNorm, "NonNeg": NonNeg,
    "non_neg": NonNeg, "UnitNorm": UnitNorm, "unit_norm": UnitNorm, "MinMaxNorm": MinMaxNorm,
    "min_max_norm": MinMaxNorm,
}

ConstraintIdentifier = Union[None, str, dict, Constraint, Callable[[np.ndarray], Any]]


def serialize(constraint: Optional[Constraint]) -> Optional[dict[str, Any]]:
    """``{"class_name": ..., "config": ...}`` (None stays None)."""
    return _identifiers.serialize(constraint, Constraint, "constraint")


def deserialize(config: dict[str, Any],
                custom_objects: Optional[dict[str, Any]] = None) -> Constraint:
    """The inverse of :func:`serialize`; `custom_objects` maps further class names."""
    return _identifiers.deserialize(config, _NAMES, custom_objects)


def get(identifier: ConstraintIdentifier, argument: str = "constraint"
        ) -> Optional[Constraint]:
    """A :class:`Constraint` (or None) from an identifier (see the module docstring);
    `argument` names the layer argument in error messages."""
    return _identifiers.get(identifier, Constraint, _NAMES, FunctionConstraint, argument,
                            "max_norm")
