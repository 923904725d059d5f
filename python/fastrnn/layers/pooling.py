"""1-D pooling over sequences: MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D,
GlobalMaxPooling1D (Keras's names, arguments and output lengths; channels-last input
``(B, T, C)``). None have weights.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from .base import Layer, check_bool, register
from .convolutional import (
    check_channels_last,
    check_int_or_single,
    check_padding,
    check_sequence_input,
    keras_name,
)

__all__ = ["AdaptiveAveragePooling1D", "AdaptiveMaxPooling1D", "AveragePooling1D",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", "MaxPooling1D"]


class _Pooling1D(Layer):
    """Windows of `pool_size` steps, `strides` apart (None: `pool_size`); padding "valid"
    or "same" (``ceil(T / strides)`` outputs; the padding takes no part in a window)."""

    _mode = "max"
    _keras_name = "pooling1d"
    supports_masking = False  # as Keras 3: the output steps no longer match the mask's
    makes_mask = False

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**keras_name(kwargs, self._keras_name))
        self.pool_size = check_int_or_single("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else check_int_or_single(
            "strides", strides)
        self.padding = check_padding(padding, ("valid", "same"))
        self.data_format = check_channels_last(data_format)
        self._tape: Optional[ops.Tape] = None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        steps, channels = check_sequence_input(self, input_shape)
        if steps is None:
            return (None, channels)
        if self.padding == "same":
            return (-(-steps // self.strides), channels)
        if steps < self.pool_size:
            raise ValueError(
                f"Layer `{self.name}`: an input of {steps} steps is shorter than "
                f"pool_size={self.pool_size} with padding='valid'; the output would be empty."
            )
        return ((steps - self.pool_size) // self.strides + 1, channels)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        y, self._tape = ops.pool1d_forward(x, self.pool_size, self.strides, self.padding,
                                           self._mode, keep_tape=training)
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._tape is None:
            raise self._no_tape()
        return ops.pool1d_backward(self._tape, np.asarray(d_out, dtype=self.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


@register
class MaxPooling1D(_Pooling1D):
    """The maximum of each window, as ``keras.layers.MaxPooling1D``; backward sends each
    output's gradient to the window's first maximum."""

    _mode = "max"
    _keras_name = "max_pooling1d"


@register
class AveragePooling1D(_Pooling1D):
    """The mean of each window, as ``keras.layers.AveragePooling1D`` (with ``padding="same"``
    the edge windows average only the steps inside the input, as TensorFlow does)."""

    _mode = "average"
    _keras_name = "average_pooling1d"


class _GlobalPooling1D(Layer):
    """Pools every step into one: ``(B, T, C) -> (B, C)`` (``keepdims``: ``(B, 1, C)``).

    ``forward(x, training, mask)`` takes an optional bool mask ``(B, T)``: only the steps
    where it is True are pooled. A row with no True step gives zeros (and no gradient)."""

    supports_masking = True
    makes_mask = False
    _keras_name = "global_pooling1d"

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any):
        super().__init__(**keras_name(kwargs, self._keras_name))
        self.data_format = check_channels_last(data_format)
        self.keepdims = check_bool("keepdims", keepdims)
        self._cache: Optional[tuple] = None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        _, channels = check_sequence_input(self, input_shape)
        return (1, channels) if self.keepdims else (channels,)

    def compute_mask(self, x: Any, mask: Any = None) -> None:
        """The steps are pooled away, and the mask with them."""
        return None

    def _mask(self, mask: Any, x: np.ndarray) -> Optional[np.ndarray]:
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != x.shape[:2]:
            raise ValueError(
                f"Layer `{self.name}`: the mask must have shape (batch, steps) = "
                f"{x.shape[:2]}, got {m.shape}."
            )
        return m.astype(bool, copy=False)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        if x.shape[1] == 0:
            raise ValueError(f"Layer `{self.name}`: cannot pool an input of 0 steps.")
        y, cache = self._pool(x, self._mask(mask, x))
        self._cache = (x.shape, cache) if training else None
        return y[:, None, :] if self.keepdims else y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        shape, cache = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype).reshape(shape[0], shape[2])
        return self._unpool(d_y, shape, cache)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


@register
class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the steps (the unmasked ones when a mask is given), as
    ``keras.layers.GlobalAveragePooling1D``."""

    _keras_name = "global_average_pooling1d"

    def _pool(self, x: np.ndarray, mask: Optional[np.ndarray]) -> tuple:
        if mask is None:
            return x.mean(axis=1), None
        weights = mask.astype(self.dtype)  # (B, T)
        count = weights.sum(axis=1, keepdims=True)  # (B, 1)
        weights /= np.maximum(count, 1)  # a row without steps: zeros
        return np.einsum("btc,bt->bc", x, weights), weights

    def _unpool(self, d_y: np.ndarray, shape: tuple, weights: Optional[np.ndarray]):
        if weights is None:
            return np.broadcast_to((d_y / shape[1])[:, None, :], shape).copy()
        return weights[:, :, None] * d_y[:, None, :]


@register
class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the steps, as ``keras.layers.GlobalMaxPooling1D``; with a mask, over
    the unmasked steps (Keras 3 ignores the mask here; masked steps are usually padding, so
    fastrnn leaves them out)."""

    _keras_name = "global_max_pooling1d"

    def _pool(self, x: np.ndarray, mask: Optional[np.ndarray]) -> tuple:
        if mask is None:
            y, tape = ops.pool1d_forward(x, x.shape[1], x.shape[1], "valid", "max")
            return y[:, 0], tape
        masked = np.where(mask[:, :, None], x, -np.inf)
        first = masked.argmax(axis=1)  # (B, C): the first maximum
        y = np.take_along_axis(x, first[:, None, :], axis=1)[:, 0]
        empty = ~mask.any(axis=1)  # (B,): rows without any step
        y[empty] = 0
        return y, (first, empty)

    def _unpool(self, d_y: np.ndarray, shape: tuple, cache: Any) -> np.ndarray:
        if isinstance(cache, ops.Tape):
            return ops.pool1d_backward(cache, d_y[:, None, :])
        first, empty = cache
        d_x = np.zeros(shape, dtype=self.dtype)
        d_y = np.where(empty[:, None], 0, d_y)
        np.put_along_axis(d_x, first[:, None, :], d_y[:, None, :], axis=1)
        return d_x


class _AdaptivePooling1D(Layer):
    """Pools ``(B, T, C)`` into exactly `output_size` steps: output step i covers the input
    steps ``[floor(i*T/n), ceil((i+1)*T/n))`` (Keras's and PyTorch's bins; they overlap when
    n does not divide T). T must be at least 1; ``n > T`` repeats steps."""

    supports_masking = False
    makes_mask = False

    def __init__(self, output_size: Any, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**keras_name(kwargs, self._keras_name))
        self.output_size = check_int_or_single("output_size", output_size)
        self.data_format = check_channels_last(data_format)
        self._cache: Optional[tuple] = None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        _, channels = check_sequence_input(self, input_shape)
        return (self.output_size, channels)

    def _bins(self, steps: int) -> list[tuple[int, int]]:
        n = self.output_size
        return [(i * steps // n, -(-(i + 1) * steps // n)) for i in range(n)]

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        if x.shape[1] == 0:
            raise ValueError(f"Layer `{self.name}`: cannot pool an input of 0 steps.")
        bins = self._bins(x.shape[1])
        y, extra = self._pool(x, bins)
        self._cache = (x.shape, bins, extra) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        shape, bins, extra = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        d_x = np.zeros(shape, dtype=self.dtype)
        self._unpool(d_x, d_y, bins, extra)
        return d_x

    def get_config(self) -> dict:
        return {**super().get_config(), "output_size": self.output_size,
                "data_format": self.data_format}


@register
class AdaptiveAveragePooling1D(_AdaptivePooling1D):
    """``keras.layers.AdaptiveAveragePooling1D``: the mean of each of `output_size` bins."""

    _keras_name = "adaptive_average_pooling1d"

    def _pool(self, x: np.ndarray, bins: list) -> tuple:
        zero = np.zeros_like(x[:, :1])
        csum = np.concatenate([zero, np.cumsum(x, axis=1, dtype=np.float64)], axis=1)
        starts = np.array([a for a, _ in bins])
        ends = np.array([b for _, b in bins])
        y = (csum[:, ends] - csum[:, starts]) / (ends - starts)[None, :, None]
        return y.astype(self.dtype), None

    def _unpool(self, d_x: np.ndarray, d_y: np.ndarray, bins: list, extra: Any) -> None:
        for i, (a, b) in enumerate(bins):
            d_x[:, a:b] += d_y[:, i: i + 1] / self.dtype.type(b - a)


@register
class AdaptiveMaxPooling1D(_AdaptivePooling1D):
    """``keras.layers.AdaptiveMaxPooling1D``: the maximum of each of `output_size` bins;
    backward sends each output's gradient to its bin's first maximum."""

    _keras_name = "adaptive_max_pooling1d"

    def _pool(self, x: np.ndarray, bins: list) -> tuple:
        first = np.stack([x[:, a:b].argmax(axis=1) + a for a, b in bins], axis=1)  # (B, n, C)
        return np.take_along_axis(x, first, axis=1), first

    def _unpool(self, d_x: np.ndarray, d_y: np.ndarray, bins: list, first: Any) -> None:
        b_idx = np.arange(d_x.shape[0])[:, None, None]
        c_idx = np.arange(d_x.shape[2])[None, None, :]
        np.add.at(d_x, (b_idx, first, c_idx), d_y)
