"""Weight and activity penalties, Keras 3's ``keras.regularizers`` with their gradients.

A regularizer maps an array ``x`` (a weight of any shape, or a layer's output) to a scalar
penalty ``__call__(x) -> float``; ``gradient(x)`` is d(penalty)/dx with ``x``'s shape. Layers
take them as ``kernel_regularizer``, ``recurrent_regularizer``, ``bias_regularizer``,
``embeddings_regularizer`` (per weight) and ``activity_regularizer`` (on the output). In
training, as in Keras, each weight penalty is added to the batch loss and its gradient to the
weight's gradient; an activity penalty is divided by the batch size. The reported loss
(``history["loss"]``, ``evaluate``) includes the penalties.

Identifiers (:func:`get`): a :class:`Regularizer`, None, a name (``"l1"``, ``"l2"``,
``"l1_l2"``, ``"orthogonal_regularizer"`` or the class names; Keras's default factors), a
:func:`serialize` config, or a callable ``f(x) -> (penalty, gradient)``; a callable returning
the penalty only cannot be trained with (fastrnn differentiates the regularizers it knows).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _identifiers

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "OrthogonalRegularizer",
    "Regularizer",
    "deserialize",
    "get",
    "l1",
    "l1_l2",
    "l2",
    "orthogonal_regularizer",
    "serialize",
]

_EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest norm OrthogonalRegularizer divides by


def _factor(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a non-negative float, "
            f"got {value!r}."
        )
    return float(value)


def _array(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    return a


class Regularizer:
    """Base class: ``__call__(x) -> float`` and ``gradient(x) -> array of x's shape``.

    Subclasses implement both and ``get_config`` (the constructor arguments).
    """

    def __call__(self, x: Any) -> float:
        return 0.0

    def gradient(self, x: Any) -> np.ndarray:
        """d(penalty)/dx, an array of ``x``'s shape and dtype."""
        return np.zeros_like(_array(x))

    def value_and_gradient(self, x: Any) -> tuple[float, np.ndarray]:
        return self(x), self.gradient(x)

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config().")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``; the gradient of ``|x|`` at 0 is 0 (as TensorFlow's).
    The string ``"l1_l2"`` gives ``l1 = l2 = 0.01``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor("l1", 0.0 if l1 is None else l1)
        self.l2 = _factor("l2", 0.0 if l2 is None else l2)

    def __call__(self, x):
        x = _array(x)
        value = 0.0
        if self.l1:
            value += self.l1 * float(np.abs(x).sum(dtype=np.float64))
        if self.l2:
            flat = x.reshape(-1)
            value += self.l2 * float(np.dot(flat, flat))
        return value

    def gradient(self, x):
        x = _array(x)
        grad = np.zeros_like(x)
        if self.l1:
            grad += np.sign(x) * x.dtype.type(self.l1)
        if self.l2:
            grad += x * x.dtype.type(2.0 * self.l2)
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)`` (default ``l1=0.01``)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x^2)`` (default ``l2=0.01``)."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns of a 2-D weight towards orthogonality:
    with ``N`` the rows L2-normalised (``x / max(||x||, 1e-7)``) and ``P = N N^T``,
    ``factor * 0.5 * sum_{i != j} |P_ij| / (n (n - 1) / 2)`` for ``n`` rows (columns: the
    same on ``x^T``)."""

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = _factor("factor", factor)
        if mode not in ("rows", "columns"):
            raise ValueError(
                "Received an invalid value for argument `mode`, expected 'rows' or 'columns', "
                f"got {mode!r}."
            )
        self.mode = mode

    def _rows(self, x: Any) -> np.ndarray:
        x = _array(x)
        if x.ndim != 2:
            raise ValueError(
                f"Received an invalid value for argument `x`: OrthogonalRegularizer needs a "
                f"2-D weight, got shape {x.shape}."
            )
        return x if self.mode == "rows" else x.T

    def _parts(self, x: Any):
        rows = self._rows(x)
        inv = np.minimum(1.0 / np.sqrt(np.square(rows).sum(axis=1, keepdims=True)),
                         1.0 / _EPSILON)
        normed = rows * inv
        product = normed @ normed.T
        np.fill_diagonal(product, 0.0)
        n = rows.shape[0]
        scale = self.factor * 0.5 / (n * (n - 1) / 2.0) if n > 1 else 0.0
        return rows, inv, normed, product, scale

    def __call__(self, x):
        _, _, _, product, scale = self._parts(x)
        return scale * float(np.abs(product).sum(dtype=np.float64))

    def gradient(self, x):
        rows, inv, normed, product, scale = self._parts(x)
        d_normed = 2.0 * scale * (np.sign(product) @ normed)  # sign(P) is symmetric
        # through N = x * inv: inv = 1/||x|| (its own gradient) unless capped at 1/eps
        along = (d_normed * normed).sum(axis=1, keepdims=True)
        capped = inv >= 1.0 / _EPSILON
        d_rows = np.where(capped, d_normed * inv, (d_normed - normed * along) * inv)
        d_rows = d_rows.astype(rows.dtype, copy=False)
        return d_rows if self.mode == "rows" else np.ascontiguousarray(d_rows.T)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


class FunctionRegularizer(Regularizer):
    """A callable ``f(x)`` returning ``(penalty, gradient)`` (trainable) or only the penalty
    (reported, but training with it raises a TypeError naming it)."""

    def __init__(self, fn: Callable[[np.ndarray], Any]):
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, x):
        out = self.fn(x)
        return float(out[0] if isinstance(out, tuple) else out)

    def value_and_gradient(self, x):
        out = self.fn(x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(
                f"Regularizer `{self.name}` returned only a penalty, so it cannot be trained "
                "with: return `(penalty, gradient)` from it (gradient = d penalty / d x, shape "
                "of x), or subclass fastrnn.regularizers.Regularizer and implement `__call__` "
                "and `gradient`."
            )
        grad = np.asarray(out[1], dtype=np.asarray(x).dtype)
        if grad.shape != np.shape(x):
            raise ValueError(
                f"Regularizer `{self.name}` returned a gradient of shape {grad.shape}; "
                f"expected the shape of its input, {np.shape(x)}."
            )
        return float(out[0]), grad

    def gradient(self, x):
        return self.value_and_gradient(x)[1]

    def get_config(self):
        raise NotImplementedError(
            f"Regularizer `{self.name}` wraps a Python function and cannot be serialised; "
            "pass it again when loading (fastrnn never pickles code)."
        )


# Keras's function-style names are its classes under another name; all aliases in one place.
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_NAMES: dict[str, type[Regularizer]] = {
    "L1": L1, "l1": L1, "L2": L2, "l2": L2, "L1L2": L1L2, "l1_l2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "orthogonal_regularizer": OrthogonalRegularizer, "Regularizer": Regularizer,
}

RegularizerIdentifier = Union[None, str, dict, Regularizer, Callable[[np.ndarray], Any]]


def serialize(regularizer: Optional[Regularizer]) -> Optional[dict[str, Any]]:
    """``{"class_name": ..., "config": ...}`` (None stays None)."""
    return _identifiers.serialize(regularizer, Regularizer, "regularizer")


def deserialize(config: dict[str, Any],
                custom_objects: Optional[dict[str, Any]] = None) -> Regularizer:
    """The inverse of :func:`serialize`; `custom_objects` maps further class names."""
    return _identifiers.deserialize(config, _NAMES, custom_objects)


def get(identifier: RegularizerIdentifier, argument: str = "regularizer"
        ) -> Optional[Regularizer]:
    """A :class:`Regularizer` (or None) from an identifier (see the module docstring);
    `argument` names the layer argument in error messages."""
    return _identifiers.get(identifier, Regularizer, _NAMES, FunctionRegularizer, argument, "l2")
