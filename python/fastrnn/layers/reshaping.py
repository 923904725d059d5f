"""Sequence reshaping layers: UpSampling1D, ZeroPadding1D, Cropping1D; and the two
elementwise pass-throughs Identity and Rescaling.

Inputs are ``(B, T, C)`` (Identity: anything). UpSampling1D, ZeroPadding1D and Cropping1D
change the number of steps, so, as in Keras, they do not pass a mask on.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Layer, check_positive_int, register
from .convolutional import check_channels_last, check_sequence_input

__all__ = ["Cropping1D", "Identity", "Rescaling", "UpSampling1D", "ZeroPadding1D"]


@register
class Identity(Layer):
    """``keras.layers.Identity``: returns its input (a placeholder; passes a mask on)."""

    supports_masking = True

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        return x

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return np.asarray(d_out, dtype=self.dtype)


@register
class ActivityRegularization(Identity):
    """``keras.layers.ActivityRegularization``: returns its input and, in training, adds
    ``l1 * sum(|y|) + l2 * sum(y ** 2)`` of its output (divided by the batch size, as
    Keras's activity penalties are) to the loss; a mask passes on."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        from .. import regularizers

        kwargs.pop("activity_regularizer", None)  # (its own config never carries one)
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = float(l1), float(l2)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}


@register
class Rescaling(Layer):
    """``keras.layers.Rescaling``: ``x * scale + offset`` (numbers, or arrays broadcasting
    against the input without its batch axis). No weights; a mask passes on."""

    supports_masking = True

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        for name, value in (("scale", scale), ("offset", offset)):
            a = np.asarray(value)
            if a.dtype.kind not in "biuf" or not np.all(np.isfinite(a)):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`, expected a finite number "
                    f"or array of numbers, got {value!r}."
                )
        self.scale = scale if np.ndim(scale) == 0 else np.asarray(scale).tolist()
        self.offset = offset if np.ndim(offset) == 0 else np.asarray(offset).tolist()

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        scale = np.asarray(self.scale, dtype=self.dtype)
        try:
            return x * scale + np.asarray(self.offset, dtype=self.dtype)
        except ValueError:
            raise ValueError(
                f"Layer `{self.name}`: `scale` {np.shape(self.scale)} and `offset` "
                f"{np.shape(self.offset)} do not broadcast to the input's shape {x.shape}."
            ) from None

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return np.asarray(d_out, dtype=self.dtype) * np.asarray(self.scale, dtype=self.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _pair(name: str, value: Any) -> tuple[int, int]:
    """Keras's int-or-pair argument of two non-negative ints (left, right)."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(
            v, (int, np.integer)) or v < 0 for v in pair):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a non-negative integer "
            f"or a tuple of two (left, right), got {value!r}."
        )
    return int(pair[0]), int(pair[1])


class _Steps(Layer):
    supports_masking = False

    def _sequence(self, x: Any) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        return x

    def build(self, input_shape: tuple) -> None:
        check_sequence_input(self, input_shape)
        super().build(input_shape)


@register
class UpSampling1D(_Steps):
    """``keras.layers.UpSampling1D``: each step repeated `size` times, ``(B, T, C) ->
    (B, T * size, C)``."""

    def __init__(self, size: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self.size = check_positive_int("size", size)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, channels = check_sequence_input(self, input_shape)
        return (None if steps is None else steps * self.size, channels)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        return np.repeat(self._sequence(x), self.size, axis=1)

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d = np.asarray(d_out, dtype=self.dtype)
        B, L, C = d.shape
        return d.reshape(B, L // self.size, self.size, C).sum(axis=2)

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


@register
class ZeroPadding1D(_Steps):
    """``keras.layers.ZeroPadding1D``: zero steps before and after, ``padding`` an int (both
    sides) or ``(left, right)``."""

    def __init__(self, padding: Any = 1, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = _pair("padding", padding)
        self.data_format = check_channels_last(data_format)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, channels = check_sequence_input(self, input_shape)
        return (None if steps is None else steps + sum(self.padding), channels)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._sequence(x)
        left, right = self.padding
        y = np.zeros((x.shape[0], x.shape[1] + left + right, x.shape[2]), dtype=self.dtype)
        y[:, left: left + x.shape[1]] = x
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d = np.asarray(d_out, dtype=self.dtype)
        left, right = self.padding
        return np.ascontiguousarray(d[:, left: d.shape[1] - right])

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": list(self.padding),
                "data_format": self.data_format}


@register
class Cropping1D(_Steps):
    """``keras.layers.Cropping1D``: drops steps at the start and end, ``cropping`` an int
    (both sides) or ``(start, end)``; the input must keep at least one step."""

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any):
        super().__init__(**kwargs)
        self.cropping = _pair("cropping", cropping)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, channels = check_sequence_input(self, input_shape)
        if steps is None:
            return (None, channels)
        left, right = self.cropping
        if steps - left - right < 1:
            raise ValueError(
                f"Layer `{self.name}`: `cropping`={self.cropping} removes {left + right} steps "
                f"from an input of {steps}; at least one step must remain."
            )
        return (steps - left - right, channels)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._sequence(x)
        self.compute_output_shape(x.shape[1:])
        self._steps = x.shape[1]
        left, right = self.cropping
        return np.ascontiguousarray(x[:, left: x.shape[1] - right])

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d = np.asarray(d_out, dtype=self.dtype)
        left, _ = self.cropping
        out = np.zeros((d.shape[0], self._steps, d.shape[2]), dtype=self.dtype)
        out[:, left: left + d.shape[1]] = d
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": list(self.cropping)}
