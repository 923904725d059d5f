"""Noise and dropout layers beside ``Dropout``: SpatialDropout1D, GaussianNoise,
GaussianDropout, AlphaDropout (Keras's arguments; active only with ``training=True``, the
identity otherwise). Each draws from the layer's ``rng`` and passes a mask on.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import Layer, check_rate, register

__all__ = ["AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D"]


class _Noise(Layer):
    """Multiplies (and for AlphaDropout shifts) the input by a random factor in training;
    backward multiplies by the same factor."""

    supports_masking = True

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        """`mask` is accepted and passed on (see compute_mask)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        self._factor: Optional[np.ndarray] = None
        if not training or not self._active():
            return x
        factor, shift = self._draw(x)
        self._factor = factor
        y = x * factor if factor is not None else x.copy()
        if shift is not None:
            y += shift
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d_out = np.asarray(d_out, dtype=self.dtype)
        factor = getattr(self, "_factor", None)
        return d_out if factor is None else d_out * factor


@register
class SpatialDropout1D(_Noise):
    """``keras.layers.SpatialDropout1D``: drops whole channels of a ``(B, T, C)`` input
    (one draw per sample and channel, shared by every step), scaling the kept ones by
    ``1 / (1 - rate)``."""

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)

    def build(self, input_shape: tuple) -> None:
        if len(tuple(input_shape)) != 2:
            raise ValueError(
                f"Layer `{self.name}` expects input of rank 3 (batch, steps, channels), got "
                f"input shape (batch, {', '.join(str(d) for d in input_shape)})."
            )
        super().build(input_shape)

    def _active(self) -> bool:
        return self.rate > 0

    def _draw(self, x: np.ndarray) -> tuple:
        keep = self.rng.random((x.shape[0], 1, x.shape[2])) >= self.rate
        return keep.astype(self.dtype) / self.dtype.type(1 - self.rate), None

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


@register
class GaussianNoise(_Noise):
    """``keras.layers.GaussianNoise``: adds ``N(0, stddev^2)`` noise in training
    (`stddev` in [0, 1], as Keras)."""

    def __init__(self, stddev: float, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(stddev, (bool, np.bool_)) or not isinstance(
                stddev, (int, float, np.number)) or not 0 <= stddev <= 1:
            raise ValueError(
                "Received an invalid value for argument `stddev`, expected a float in [0, 1], "
                f"got {stddev!r}."
            )
        self.stddev = float(stddev)

    def _active(self) -> bool:
        return self.stddev > 0

    def _draw(self, x: np.ndarray) -> tuple:
        return None, self.rng.normal(0.0, self.stddev, x.shape).astype(self.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "stddev": self.stddev}


@register
class GaussianDropout(_Noise):
    """``keras.layers.GaussianDropout``: multiplies by ``N(1, rate / (1 - rate))`` noise in
    training."""

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)

    def _active(self) -> bool:
        return self.rate > 0

    def _draw(self, x: np.ndarray) -> tuple:
        std = np.sqrt(self.rate / (1.0 - self.rate))
        return self.rng.normal(1.0, std, x.shape).astype(self.dtype), None

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


_SELU_ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


@register
class AlphaDropout(_Noise):
    """``keras.layers.AlphaDropout`` (for SELU networks): dropped elements are set to SELU's
    negative saturation ``alpha'`` and the result is affinely corrected, ``a * (x * keep +
    alpha' * (1 - keep)) + b``, so mean and variance stay those of the input.

    Args:
        rate: the drop probability, in [0, 1).
        noise_shape: the shape of the keep mask (None: the input's); a 1 broadcasts, a
            None entry takes the input's size (e.g. ``(None, 1, None)`` drops whole steps).
    """

    def __init__(self, rate: float, noise_shape: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        if noise_shape is not None:
            try:
                noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
                ok = all(d is None or d >= 1 for d in noise_shape)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    "Received an invalid value for argument `noise_shape`, expected None or a "
                    f"tuple of positive integers or None, got {noise_shape!r}."
                )
        self.noise_shape = noise_shape

    def _active(self) -> bool:
        return self.rate > 0

    def _draw(self, x: np.ndarray) -> tuple:
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim or any(
                    d is not None and d not in (1, s) for d, s in zip(self.noise_shape, shape)):
                raise ValueError(
                    f"Layer `{self.name}`: `noise_shape`={self.noise_shape} does not broadcast "
                    f"to the input's shape {x.shape}."
                )
            shape = tuple(s if d is None else d for d, s in zip(self.noise_shape, shape))
        keep = (self.rng.random(shape) >= self.rate).astype(self.dtype)
        p = self.rate
        a = ((1 - p) * (1 + p * _SELU_ALPHA_P ** 2)) ** -0.5
        b = -a * _SELU_ALPHA_P * p
        factor = np.broadcast_to(self.dtype.type(a) * keep, x.shape)
        shift = self.dtype.type(a * _SELU_ALPHA_P) * (1 - keep) + self.dtype.type(b)
        return factor, shift

    def get_config(self) -> dict:
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise}
