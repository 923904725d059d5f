"""Normalization layers with Keras's arguments, defaults and weight order (so
``get_weights``/``set_weights`` exchange with Keras directly): LayerNormalization and
BatchNormalization over the last axis, GroupNormalization (channel groups), UnitNormalization
(unit L2 norm), and the preprocessing layer Normalization (statistics from ``adapt``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from .base import (
    Layer,
    check_bool,
    check_positive_int,
    check_rate,
    register,
    serialize_initializer,
)

__all__ = ["BatchNormalization", "GroupNormalization", "LayerNormalization", "Normalization",
           "RMSNormalization", "UnitNormalization"]


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


@register
class GroupNormalization(_Normalization):
    """``keras.layers.GroupNormalization``: the channels (last axis) split into `groups`
    groups, each normalized per sample over its channels and every step:
    ``(x - mean) / sqrt(var + epsilon) * gamma + beta`` (biased variance).

    Args:
        groups: a divisor of the channel count (``-1``: one group per channel, instance
            normalization).
        axis: the channel axis, the last one only. epsilon, center, scale, beta/gamma
        initializers: as LayerNormalization.

    Input ``(B, ..., C)``; weights ``gamma (C,)``, ``beta (C,)``. A mask passes on (the
    statistics take every step, as Keras's).
    """

    def __init__(self, groups: int = 32, axis: Any = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, **kwargs: Any):
        if groups != -1:
            groups = check_positive_int("groups", groups)
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.groups = groups
        self._cache: Optional[tuple] = None

    def build(self, input_shape: tuple) -> None:
        channels = tuple(input_shape)[-1] if tuple(input_shape) else None
        if channels is not None:
            groups = channels if self.groups == -1 else self.groups
            if groups > channels or channels % groups:
                raise ValueError(
                    f"Received an invalid value for argument `groups`, expected a divisor of "
                    f"the {channels} channels of layer `{self.name}`, got {self.groups}."
                )
        super().build(input_shape)

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        C = x.shape[-1]
        G = C if self.groups == -1 else self.groups
        return x.reshape(x.shape[0], -1, G, C // G)  # (B, N, G, C/G)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        xg = self._grouped(np.ascontiguousarray(x))
        mean = xg.mean(axis=(1, 3), keepdims=True)                    # (B, 1, G, 1)
        centered = xg - mean
        inv = 1.0 / np.sqrt((centered * centered).mean(axis=(1, 3), keepdims=True)
                            + self.dtype.type(self.epsilon))
        x_hat = (centered * inv).reshape(x.shape)                     # (B, ..., C)
        gamma, beta = self._affine()
        y = x_hat * gamma if gamma is not None else x_hat.copy()
        if beta is not None:
            y += beta
        self._cache = (x_hat, inv) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        if self._cache is None:
            raise self._no_tape()
        x_hat, inv = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        rows = d_y.reshape(-1, d_y.shape[-1])
        grads = {"gamma": (rows * x_hat.reshape(rows.shape)).sum(axis=0),
                 "beta": rows.sum(axis=0)}
        self._write_grads(self._affine_grads(grads))
        gamma, _ = self._affine()
        d_hat = self._grouped(d_y * gamma if gamma is not None else d_y)
        xg = self._grouped(x_hat)
        # dx = inv * (d_hat - mean(d_hat) - x_hat * mean(d_hat * x_hat)), means per group
        d_x = inv * (d_hat - d_hat.mean(axis=(1, 3), keepdims=True)
                     - xg * (d_hat * xg).mean(axis=(1, 3), keepdims=True))
        return d_x.reshape(d_y.shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "groups": self.groups}


def _axes(name: str, value: Any) -> tuple:
    raw = value if isinstance(value, (tuple, list)) else (value,)
    if not raw or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer))
                      for a in raw):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected an integer or a tuple "
            f"of integers, got {value!r}."
        )
    return tuple(int(a) for a in raw)


def _resolve_axes(layer: Layer, axes: tuple, ndim: int) -> tuple:
    out = []
    for a in axes:
        if not -ndim <= a < ndim or a % ndim == 0:
            raise ValueError(
                f"Layer `{layer.name}`: `axis`={layer.axis} is out of range for inputs of rank "
                f"{ndim} (the batch axis 0 is not a feature axis)."
            )
        out.append(a % ndim)
    return tuple(sorted(set(out)))


@register
class UnitNormalization(Layer):
    """``keras.layers.UnitNormalization``: ``x / sqrt(max(sum(x^2), 1e-12))`` over `axis`
    (an int or a tuple; default the last), so each vector has unit L2 norm. No weights; a
    mask passes on."""

    supports_masking = True

    def __init__(self, axis: Any = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self._axes = _axes("axis", axis)
        self.axis = list(self._axes) if isinstance(axis, (tuple, list)) else self._axes[0]
        self._cache: Optional[tuple] = None

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        axes = _resolve_axes(self, self._axes, x.ndim)
        squares = (x * x).sum(axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(np.maximum(squares, self.dtype.type(1e-12)))
        y = x * inv
        self._cache = (axes, y, inv, squares >= 1e-12) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        axes, y, inv, above = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        # Above the floor: inv * (d_y - y * <d_y, y>); at the floor the scale is a constant.
        return inv * (d_y - np.where(above, y * (d_y * y).sum(axis=axes, keepdims=True), 0))

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


@register
class Normalization(Layer):
    """``keras.layers.Normalization``: ``(x - mean) / max(sqrt(variance), 1e-7)`` with
    statistics per feature, from ``adapt(data)`` or given (``invert=True``: the inverse,
    ``mean + x * max(sqrt(variance), 1e-7)``, to undo a target's scaling).

    Args:
        axis: the axes that keep their own statistics (an int or a tuple; default the last,
            one mean and variance per feature); None: one mean and variance for everything.
        mean, variance: fixed statistics (both or neither), broadcast to the kept axes.
        invert: apply the inverse transformation.

    ``adapt(data)`` takes an array ``(N, ..., F)`` or an iterable of such batches (e.g. a
    windowed dataset of ``(x, y)`` pairs: only ``x`` is read) and sets the population mean
    and variance over every axis but `axis`. Weights (when adapted, as Keras's): ``mean``,
    ``variance`` (the kept axes' shape) and ``count`` (the number of values seen), none
    trained. The gradient passes through as ``d_out / std``; a mask passes on.
    """

    supports_masking = True

    def __init__(self, axis: Any = -1, mean: Any = None, variance: Any = None,
                 invert: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self._keep = () if axis is None else _axes("axis", axis)
        self.axis = axis if axis is None or isinstance(axis, int) else list(self._keep)
        if (mean is None) != (variance is None):
            raise ValueError(
                "Received invalid values for arguments `mean` and `variance`: set both or "
                f"neither, got mean={mean!r} and variance={variance!r}."
            )
        self.invert = check_bool("invert", invert)
        self.input_mean = self.input_variance = None
        if mean is not None:
            m, v = np.asarray(mean, dtype=np.float64), np.asarray(variance, dtype=np.float64)
            if m.shape != v.shape or m.ndim > max(len(self._keep), 0) or np.any(v < 0) \
                    or not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))):
                raise ValueError(
                    "Received invalid values for arguments `mean` and `variance`: expected "
                    f"finite arrays of one shape, of rank <= {len(self._keep)} (the kept axes), "
                    f"with variance >= 0; got shapes {m.shape} and {v.shape}."
                )
            self.input_mean, self.input_variance = m, v
        self._cache: Optional[np.ndarray] = None

    def _kept(self, ndim: int) -> tuple:
        return _resolve_axes(self, self._keep, ndim) if self._keep else ()

    def _stat_shape(self, input_shape: tuple) -> tuple:
        kept = self._kept(len(input_shape) + 1)
        shape = tuple(input_shape[a - 1] for a in kept)
        if any(d is None for d in shape):
            raise ValueError(
                f"Layer `{self.name}`: the kept axes {list(kept)} must have known sizes, got "
                f"input shape (batch, {', '.join(str(d) for d in input_shape)})."
            )
        return shape

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        shape = self._stat_shape(input_shape)
        if self.input_mean is None:
            self.add_weight("mean", shape, "zeros")
            self.add_weight("variance", shape, "ones")
            self.add_weight("count", (), "zeros")
        else:
            try:
                np.broadcast_to(self.input_mean, shape)
            except ValueError:
                raise ValueError(
                    f"Layer `{self.name}`: the given `mean` and `variance` of shape "
                    f"{self.input_mean.shape} do not broadcast to the kept axes' shape "
                    f"{shape}."
                ) from None
        super().build(input_shape)

    @property
    def non_trainable_weight_names(self) -> list[str]:
        """Every weight: the statistics come from ``adapt``, not from gradients."""
        return self.weight_names

    def _broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) shaped to broadcast against a rank-`ndim` input."""
        kept = self._kept(ndim)
        shape = [1] * ndim
        for a in kept:
            shape[a] = self.input_shape[a - 1]
        if self.input_mean is None:
            mean, variance = self._weights[0], self._weights[1]
        else:
            stat = tuple(self.input_shape[a - 1] for a in kept)
            mean = np.broadcast_to(self.input_mean, stat).astype(self.dtype)
            variance = np.broadcast_to(self.input_variance, stat).astype(self.dtype)
        std = np.maximum(np.sqrt(variance), self.dtype.type(1e-7))
        return mean.reshape(shape), std.reshape(shape)

    def adapt(self, data: Any, batch_size: Any = None, steps: Any = None) -> None:
        """Sets ``mean``/``variance`` from `data` (an array, or an iterable of batches or
        of ``(x, y)`` pairs); ``batch_size`` and ``steps`` are accepted for Keras
        compatibility (``steps`` limits the batches read)."""
        if self.input_mean is not None:
            raise ValueError(
                f"Layer `{self.name}` was given `mean` and `variance`; adapt() would ignore "
                "them. Create it without them to adapt."
            )
        if steps is not None:
            steps = check_positive_int("steps", steps)
        if isinstance(data, (np.ndarray, list, tuple)):
            try:
                batches = iter([np.asarray(data)])
            except ValueError as e:
                raise ValueError(
                    f"Received an invalid value for argument `data`, it is ragged ({e})."
                ) from e
        elif hasattr(data, "__iter__"):
            batches = iter(data)
        else:
            raise TypeError(
                "Received an invalid value for argument `data`, expected an array or an "
                f"iterable of batches, got {type(data).__name__}."
            )
        count, mean, m2 = 0, None, None
        for k, batch in enumerate(batches):
            if steps is not None and k >= steps:
                break
            if isinstance(batch, tuple):
                batch = batch[0]
            a = np.asarray(batch)
            if a.dtype.kind not in "biuf":
                raise TypeError(
                    f"Received an invalid value for argument `data`: batch {k} is not numeric "
                    f"(dtype {a.dtype})."
                )
            if a.ndim < 1 or a.size == 0:
                continue
            if not self.built:
                self.build(a.shape[1:])
            self._check_input(a.astype(self.dtype, copy=False))
            kept = self._kept(a.ndim)
            reduce = tuple(d for d in range(a.ndim) if d not in kept)
            a = a.astype(np.float64)
            n = int(np.prod([a.shape[d] for d in reduce]))
            b_mean = a.mean(axis=reduce)
            b_m2 = ((a - a.mean(axis=reduce, keepdims=True)) ** 2).sum(axis=reduce)
            if mean is None:
                count, mean, m2 = n, b_mean, b_m2
            else:  # Chan et al.'s pairwise combination
                delta = b_mean - mean
                total = count + n
                mean = mean + delta * (n / total)
                m2 = m2 + b_m2 + delta * delta * (count * n / total)
                count = total
        if mean is None:
            raise ValueError(
                "Received an invalid value for argument `data`, it holds no values to adapt "
                "to (an empty array or no batches)."
            )
        if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(m2)):
            raise ValueError(
                "Received an invalid value for argument `data`, it holds NaN or infinite values."
            )
        self._weights[0][...] = mean
        self._weights[1][...] = m2 / count
        self._weights[2][...] = count

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        mean, std = self._broadcast(x.ndim)
        self._cache = std if training else None
        if self.invert:
            return mean + x * std
        return (x - mean) / std

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        d_y = np.asarray(d_out, dtype=self.dtype)
        self._write_grads([np.zeros_like(w) for w in self._weights])
        return d_y * self._cache if self.invert else d_y / self._cache

    def get_config(self) -> dict:
        config = {**super().get_config(), "axis": self.axis, "invert": self.invert}
        if self.input_mean is not None:
            config["mean"] = self.input_mean.tolist()
            config["variance"] = self.input_variance.tolist()
        return config


@register
class RMSNormalization(Layer):
    """``keras.layers.RMSNormalization``: ``x / sqrt(mean(x^2) + epsilon) * scale`` over the
    last axis (no centring). Weight ``scale (C,)`` (ones). Any input rank >= 2; a mask passes
    on."""

    supports_masking = True

    def __init__(self, axis: Any = -1, epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise NotImplementedError(
                "Received an unsupported value for argument `axis`, fastrnn normalizes the last "
                f"axis only (axis=-1), got {axis!r}."
            )
        self.axis = int(axis)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, float("inf"))
        self._cache: Optional[tuple] = None

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        if self.axis not in (-1, len(input_shape)) or input_shape[-1] is None:
            raise NotImplementedError(
                f"Layer `{self.name}`: fastrnn normalizes the last axis only, and its size must "
                f"be known; got axis={self.axis} for input shape (batch, "
                f"{', '.join(str(d) for d in input_shape)})."
            )
        self.add_weight("scale", (input_shape[-1],), "ones")
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        inv = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True)
                            + self.dtype.type(self.epsilon))
        x_hat = x * inv
        self._cache = (x_hat, inv) if training else None
        return x_hat * self._weights[0]

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        x_hat, inv = self._cache
        d_y = np.asarray(d_out, dtype=self.dtype)
        self._write_grads([(d_y * x_hat).reshape(-1, x_hat.shape[-1]).sum(axis=0)])
        d_hat = d_y * self._weights[0]
        # d/dx of x * (mean(x^2) + eps)^(-1/2): inv * (d_hat - x_hat * mean(d_hat * x_hat))
        return inv * (d_hat - x_hat * (d_hat * x_hat).mean(axis=-1, keepdims=True))

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
