"""Activation layers with arguments, as Keras's: ReLU, LeakyReLU, PReLU, ELU, Softmax.

Each keeps the input's shape and passes a mask on (Softmax also uses one, see its
docstring). Forward and backward sit together; PReLU has a weight (``alpha``), the others
none.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Layer, register, serialize_initializer

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]


def _check_number(name: str, value: Any, minimum: Optional[float] = 0.0,
                  allow_none: bool = False) -> Optional[float]:
    """A real number >= `minimum` (None only when `allow_none`), else a ValueError."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value) or (minimum is not None and value < minimum):
        want = "a number" if minimum is None else f"a number >= {minimum:g}"
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected "
            f"{want}{' or None' if allow_none else ''}, got {value!r}."
        )
    return float(value)


class _Elementwise(Layer):
    """A weightless elementwise activation: subclasses give ``_forward(x)`` and
    ``_backward(x, y, d_y)``."""

    supports_masking = True

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        """`mask` is accepted and passed on (see compute_mask)."""
        x = self._as_input(x)
        self._ensure_built(x)
        y = self._forward(x)
        self._cache = (x, y) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if getattr(self, "_cache", None) is None:
            raise self._no_tape()
        x, y = self._cache
        return self._backward(x, y, np.asarray(d_out, dtype=self.dtype))


@register
class ReLU(_Elementwise):
    """``keras.layers.ReLU``: ``max_value`` above it, ``x`` on ``[threshold, max_value)``,
    ``negative_slope * (x - threshold)`` below `threshold`.

    Args:
        max_value: the cap (None: none); >= 0.
        negative_slope: the slope below `threshold`; >= 0.
        threshold: where the function starts to follow ``x``; >= 0.
    """

    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_value = _check_number("max_value", max_value, allow_none=True)
        self.negative_slope = _check_number("negative_slope", negative_slope)
        self.threshold = _check_number("threshold", threshold)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        t = self.dtype.type
        y = np.where(x > t(self.threshold), x, t(self.negative_slope) * (x - t(self.threshold)))
        if self.max_value is not None:
            y = np.minimum(y, t(self.max_value))
        return y.astype(self.dtype, copy=False)

    def _backward(self, x: np.ndarray, y: np.ndarray, d_y: np.ndarray) -> np.ndarray:
        t = self.dtype.type
        slope = np.where(x > t(self.threshold), t(1), t(self.negative_slope))
        if self.max_value is not None:
            slope = np.where(x >= t(self.max_value), t(0), slope)
        return d_y * slope

    def get_config(self) -> dict:
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


@register
class LeakyReLU(_Elementwise):
    """``keras.layers.LeakyReLU``: ``x`` for ``x >= 0``, ``negative_slope * x`` below
    (Keras 2's name for the slope, ``alpha``, is accepted too)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _check_number("negative_slope", negative_slope)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, self.dtype.type(self.negative_slope) * x)

    def _backward(self, x: np.ndarray, y: np.ndarray, d_y: np.ndarray) -> np.ndarray:
        return d_y * np.where(x >= 0, self.dtype.type(1), self.dtype.type(self.negative_slope))

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register
class ELU(_Elementwise):
    """``keras.layers.ELU``: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = _check_number("alpha", alpha, minimum=None)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, self.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0)))

    def _backward(self, x: np.ndarray, y: np.ndarray, d_y: np.ndarray) -> np.ndarray:
        # below 0: d/dx alpha*(e^x - 1) = alpha*e^x = y + alpha
        return d_y * np.where(x > 0, self.dtype.type(1), y + self.dtype.type(self.alpha))

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


def _softmax(z: np.ndarray, axes: tuple) -> np.ndarray:
    e = np.exp(z - z.max(axis=axes, keepdims=True))
    e /= e.sum(axis=axes, keepdims=True)
    return e


@register
class Softmax(_Elementwise):
    """``keras.layers.Softmax``: ``exp(x) / sum(exp(x))`` over `axis` (an int or a tuple).

    ``forward(x, mask=...)``: a bool mask broadcastable to `x` (Keras's rule; a float mask
    counts as True above 0.5) leaves the False positions out: they get -1e9 before the
    softmax and 0 after it (a row with none left is all zeros). A per-step mask ``(B, T)``
    of a ``(B, T, F)`` input (what the layers before pass on) masks whole steps.
    """

    def __init__(self, axis: Any = -1, **kwargs: Any):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        if not axes or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                           for a in axes):
            raise ValueError(
                "Received an invalid value for argument `axis`, expected an integer or a tuple "
                f"of integers, got {axis!r}."
            )
        self.axis = tuple(int(a) for a in axes) if isinstance(axis, (tuple, list)) else int(axis)
        self._axes = tuple(int(a) for a in axes)

    def _check_axes(self, ndim: int) -> tuple:
        for a in self._axes:
            if not -ndim < a < ndim or a % ndim == 0:
                raise ValueError(
                    f"Layer `{self.name}`: `axis`={self.axis} is out of range for an input of "
                    f"rank {ndim} (the batch axis 0 cannot be normalized over)."
                )
        return tuple(a % ndim for a in self._axes)

    def _keep(self, x: np.ndarray, mask: Any) -> Optional[np.ndarray]:
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.ndim == x.ndim - 1 and m.shape == x.shape[:-1]:
            m = m[..., None]  # a per-step mask
        if m.ndim > x.ndim or any(a not in (1, b) for a, b in zip(m.shape[::-1], x.shape[::-1])):
            raise ValueError(
                f"Layer `{self.name}`: the `mask` must be broadcastable to the input: input "
                f"shape {x.shape}, mask shape {np.shape(mask)}."
            )
        return m if m.dtype == bool else m > 0.5

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        axes = self._check_axes(x.ndim)
        keep = self._keep(x, mask)
        z = x if keep is None else np.where(keep, x, self.dtype.type(-1e9))
        y = _softmax(z, axes)
        if keep is not None:
            y = np.where(keep, y, self.dtype.type(0))
        self._cache = (axes, y) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if getattr(self, "_cache", None) is None:
            raise self._no_tape()
        axes, y = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        # Masked positions have y = 0 and so receive no gradient.
        return y * (d_y - (d_y * y).sum(axis=axes, keepdims=True))

    def get_config(self) -> dict:
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {**super().get_config(), "axis": axis}


@register
class PReLU(Layer):
    """``keras.layers.PReLU``: ``x`` for ``x >= 0``, ``alpha * x`` below, with a learned
    ``alpha``.

    Args:
        alpha_initializer: of ``alpha`` (``"zeros"`` by default, as Keras).
        shared_axes: axes (counted with the batch axis, from 1) along which one ``alpha`` is
            shared, e.g. ``shared_axes=[1]`` for one slope per feature over all steps.

    Weight: ``alpha`` of the input's shape without the batch axis, size 1 on `shared_axes`.
    """

    supports_masking = True

    def __init__(self, alpha_initializer: Any = "zeros", shared_axes: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha_initializer = alpha_initializer
        if shared_axes is None:
            axes: tuple = ()
        else:
            raw = shared_axes if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                   or a < 1 for a in raw):
                raise ValueError(
                    "Received an invalid value for argument `shared_axes`, expected None, a "
                    f"positive integer or a list of them (axes after the batch axis), got "
                    f"{shared_axes!r}."
                )
            axes = tuple(int(a) for a in raw)
        self.shared_axes = axes
        self._cache: Optional[np.ndarray] = None

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        shape = list(input_shape)
        for a in self.shared_axes:
            if a > len(shape):
                raise ValueError(
                    f"Layer `{self.name}`: `shared_axes`={list(self.shared_axes)} names axis "
                    f"{a}, but the input has rank {len(shape) + 1}."
                )
            shape[a - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(
                f"Layer `{self.name}` needs every unshared axis known to size `alpha`, got "
                f"input shape (batch, {', '.join(str(d) for d in input_shape)}); share the "
                "unknown axes (e.g. shared_axes=[1] for the time axis)."
            )
        self.add_weight("alpha", tuple(shape), self.alpha_initializer)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        self._cache = x if training else None
        return np.where(x >= 0, x, self._weights[0] * x)

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        x = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        neg = x < 0
        d_alpha = np.where(neg, d_y * x, 0)
        reduce = (0,) + self.shared_axes
        self._write_grads([d_alpha.sum(axis=reduce, keepdims=True)[0]])
        return np.where(neg, d_y * self._weights[0], d_y)

    def get_config(self) -> dict:
        return {**super().get_config(),
                "alpha_initializer": serialize_initializer(self.alpha_initializer),
                "shared_axes": list(self.shared_axes) or None}
