"""LayerNormalization and BatchNormalization over the last axis, with Keras's arguments,
defaults and weight order (so ``get_weights``/``set_weights`` exchange with Keras directly).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from .base import Layer, check_bool, check_rate, register, serialize_initializer

__all__ = ["BatchNormalization", "LayerNormalization"]


def _check_float(name: str, value: Any, low: float, high: float) -> float:
    """A float in the open interval (low, high)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not low < float(value) < high:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a float in "
            f"({low}, {high}), got {value!r}."
        )
    return float(value)


class _Normalization(Layer):
    """What both layers share: the axis (the last one only), epsilon, center, scale."""

    _weight_options = {"gamma": "gamma", "beta": "beta"}

    supports_masking = True  # the output keeps the input's steps, and so its mask
    makes_mask = False

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise NotImplementedError(
                f"Received an unsupported value for argument `axis`, fastrnn normalizes the last "
                f"axis only (axis=-1), got {axis!r}."
            )
        self.axis = int(axis)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, float("inf"))
        self.center = check_bool("center", center)
        self.scale = check_bool("scale", scale)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        return mask

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        rank = len(input_shape) + 1  # with the batch axis
        if self.axis not in (-1, rank - 1) or input_shape[-1] is None:
            raise NotImplementedError(
                f"Layer `{self.name}`: fastrnn normalizes the last axis only, and its size must "
                f"be known; got axis={self.axis} for input shape (batch, "
                f"{', '.join(str(d) for d in input_shape)})."
            )
        channels = input_shape[-1]
        if self.scale:
            self.add_weight("gamma", (channels,), self.gamma_initializer)
        if self.center:
            self.add_weight("beta", (channels,), self.beta_initializer)
        super().build(input_shape)

    def _affine(self) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        gamma = self._weights[0] if self.scale else None
        beta = self._weights[int(self.scale)] if self.center else None
        return gamma, beta

    def _affine_grads(self, grads: dict) -> list[np.ndarray]:
        return ([grads["gamma"]] if self.scale else []) + ([grads["beta"]] if self.center else [])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize_initializer(self.beta_initializer),
            "gamma_initializer": serialize_initializer(self.gamma_initializer),
        }


@register
class LayerNormalization(_Normalization):
    """Each position normalized over its last axis, as ``keras.layers.LayerNormalization``:
    ``(x - mean) / sqrt(var + epsilon) * gamma + beta`` (biased variance). Weights
    ``gamma (C,)`` (scale=True), ``beta (C,)`` (center=True). Any input rank >= 2."""

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs: Any):
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        self._tape: Optional[ops.Tape] = None

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        gamma, beta = self._affine()
        y, tape = ops.layer_norm_forward(x, gamma, beta, self.epsilon)
        self._tape = tape if training else None
        return y

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        if self._tape is None:
            raise self._no_tape()
        grads = ops.layer_norm_backward(self._tape, np.asarray(d_out, dtype=self.dtype),
                                        input_grad=self.input_grad_needed)
        self._write_grads(self._affine_grads(grads))
        return grads["x"]


@register
class BatchNormalization(_Normalization):
    """Each channel (last axis) normalized over the batch, as
    ``keras.layers.BatchNormalization``.

    ``forward(x, training=True)`` uses the batch's mean and biased variance and updates the
    moving statistics in place: ``moving = moving * momentum + batch * (1 - momentum)``;
    ``training=False`` (and a layer with ``trainable=False``, as in Keras) uses the moving
    statistics. Weights, in Keras's order: ``gamma``, ``beta``, ``moving_mean``,
    ``moving_variance`` (each ``(C,)``). The moving statistics are not trained: their
    gradients are always zero, so the optimizers leave them as they are
    (:attr:`non_trainable_weight_names`). A mask (one axis fewer than the input, e.g.
    ``(B, T)`` for ``(B, T, C)``) passes through unchanged and, in training, leaves the masked
    positions out of the batch statistics, as Keras does: ``mean = sum(m x) / (n + 1e-7)``,
    ``var = sum(m (x - mean)^2) / (n + 1e-7)`` over the ``n`` unmasked positions; every
    position is then normalized with them.
    """

    def __init__(self, axis: Any = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True,
                 moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", **kwargs: Any):
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.momentum = check_rate("momentum", momentum)  # in [0, 1)
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self._tape: Optional[ops.Tape] = None

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)
        channels = self.input_shape[-1]
        self.add_weight("moving_mean", (channels,), self.moving_mean_initializer)
        self.add_weight("moving_variance", (channels,), self.moving_variance_initializer)

    @property
    def non_trainable_weight_names(self) -> list[str]:
        """The weights no gradient changes (their gradients are always zero)."""
        return ["moving_mean", "moving_variance"]

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        gamma, beta = self._affine()
        moving_mean, moving_variance = self._weights[-2], self._weights[-1]
        if mask is not None and np.ndim(mask) != x.ndim - 1:
            raise ValueError(
                f"Layer `{self.name}`: the mask must have one axis fewer than the input, got "
                f"mask shape {np.shape(mask)} for input shape {x.shape}."
            )
        if training and self.trainable and mask is not None:
            y, mean, variance, tape = self._masked_forward(x, np.asarray(mask, dtype=bool),
                                                           gamma, beta)
            m = self.dtype.type(self.momentum)
            moving_mean[...] = moving_mean * m + mean * (1 - m)
            moving_variance[...] = moving_variance * m + variance * (1 - m)
            self._tape = tape
            return y
        if training and self.trainable:
            y, mean, variance, tape = ops.batch_norm_forward(x, gamma, beta,
                                                             epsilon=self.epsilon)
            m = self.dtype.type(self.momentum)
            moving_mean[...] = moving_mean * m + mean * (1 - m)  # in place: bound weights
            moving_variance[...] = moving_variance * m + variance * (1 - m)
        else:
            y, _, _, tape = ops.batch_norm_forward(x, gamma, beta, moving_mean,
                                                   moving_variance, self.epsilon)
        self._tape = tape if training else None
        return y

    def _masked_forward(self, x: np.ndarray, mask: np.ndarray, gamma: Any, beta: Any
                        ) -> tuple:
        """Training with a mask: statistics over the unmasked positions only (Keras's
        ``_moments``), every position normalized. Returns ``(y, mean, variance, tape)``."""
        C = x.shape[-1]
        x2 = x.reshape(-1, C)
        w = mask.reshape(-1, 1).astype(x.dtype)  # (N, 1): 1 where the position counts
        count = w.sum() + 1e-7
        mean = (w * x2).sum(axis=0) / count
        centered = x2 - mean
        variance = (w * centered * centered).sum(axis=0) / count
        inv = 1.0 / np.sqrt(variance + self.epsilon)
        xhat = centered * inv
        y = xhat * gamma if gamma is not None else xhat.copy()
        if beta is not None:
            y += beta
        tape = ("masked", x.shape, w, count, centered, inv, xhat, gamma)
        return y.reshape(x.shape), mean, variance, tape

    def _masked_backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        _, shape, w, count, centered, inv, xhat, gamma = self._tape
        dy = d_out.reshape(-1, shape[-1])
        grads = {"gamma": (dy * xhat).sum(axis=0), "beta": dy.sum(axis=0)}
        zeros = [np.zeros_like(self._weights[-1])] * 2
        self._write_grads(self._affine_grads(grads) + zeros)
        if not self.input_grad_needed:
            return None
        dxhat = dy * gamma if gamma is not None else dy
        # y depends on x directly and, through mean and variance, on the unmasked x only
        d_var = -0.5 * inv**3 * (dxhat * centered).sum(axis=0)
        d_mean = -inv * dxhat.sum(axis=0) - 2.0 * d_var * (w * centered).sum(axis=0) / count
        dx = dxhat * inv + w * (d_mean / count + 2.0 * d_var * centered / count)
        return dx.reshape(shape).astype(self.dtype, copy=False)

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        if self._tape is None:
            raise self._no_tape()
        if isinstance(self._tape, tuple) and self._tape[0] == "masked":
            return self._masked_backward(np.asarray(d_out, dtype=self.dtype))
        grads = ops.batch_norm_backward(self._tape, np.asarray(d_out, dtype=self.dtype),
                                        input_grad=self.input_grad_needed)
        zeros = [np.zeros_like(self._weights[-1])] * 2  # the moving statistics: never trained
        self._write_grads(self._affine_grads(grads) + zeros)
        return grads["x"]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "moving_mean_initializer": serialize_initializer(self.moving_mean_initializer),
            "moving_variance_initializer": serialize_initializer(
                self.moving_variance_initializer),
        }
