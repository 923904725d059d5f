"""Feed-forward layers: Dense, Activation, Flatten, Dropout, Embedding, Masking, InputLayer/Input.

Masks (see :mod:`fastrnn.layers.base`): ``Masking`` and ``Embedding(mask_zero=True)`` make one;
Dense, Activation and Dropout pass it on unchanged (they accept ``mask=`` and ignore it);
Flatten drops it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from . import symbolic
from .base import (
    Layer,
    activation_backward,
    activation_forward,
    check_activation,
    check_bool,
    check_positive_int,
    check_rate,
    check_shape,
    register,
    serialize_initializer,
)
from .symbolic import SymbolicTensor

__all__ = [
    "Activation", "Dense", "Dropout", "Embedding", "Flatten", "Input", "InputLayer", "Masking",
]


@register
class InputLayer(Layer):
    """Declares the input shape (without batch) of a model; the identity otherwise.

    ``InputLayer(shape=(None, 1))`` or, Keras 2 style, ``InputLayer(input_shape=(None, 1))``.
    `input_dtype` is the dtype of the arrays it stands for (``"float32"`` by default; an
    integer dtype for token ids feeding an Embedding).
    """

    def __init__(self, shape: Any = None, input_dtype: Any = None, **kwargs: Any):
        if shape is not None and kwargs.get("input_shape") is not None:
            raise ValueError("Pass either `shape` or `input_shape` to InputLayer, not both.")
        if shape is not None:
            kwargs["input_shape"] = check_shape("shape", shape)
        if kwargs.get("input_shape") is None:
            raise ValueError(
                "Received an invalid value for argument `shape`, InputLayer needs the input "
                "shape without the batch axis, e.g. shape=(None, 1), got None."
            )
        super().__init__(**kwargs)
        self.input_dtype = None if input_dtype is None else _check_input_dtype(input_dtype)
        self.build(self._declared_input_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        a = self._as_input(x)
        self._check_input(a)
        return a

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return d_out

    def get_config(self) -> dict:
        config = super().get_config()
        if self.input_dtype is not None:
            config["input_dtype"] = self.input_dtype.name
        return config


def _check_input_dtype(value: Any) -> np.dtype:
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise ValueError(
            "Received an invalid value for argument `dtype`, expected a numeric dtype such as "
            f"'float32' or 'int32', got {value!r}."
        )
    return dt


def Input(shape: Any, batch_size: Optional[int] = None, dtype: Any = None,
          name: Optional[str] = None) -> SymbolicTensor:
    """Keras's ``Input(shape)``: a symbolic tensor to build a ``fastrnn.Model`` from.

    Args:
        shape: without the batch axis, e.g. ``(None, 14)`` for sequences of any length with
            14 features; ``(120, 14)`` fixes the length.
        batch_size: a fixed batch size (stateful models), optional.
        dtype: the dtype of the arrays fed here; default ``"float32"`` (the model's dtype).
            An integer dtype keeps token ids exact on their way to an Embedding.
        name: the input's name (keys of dict inputs), default ``"input_layer"``, ...

    Returns a :class:`SymbolicTensor` of shape ``(batch_size, *shape)``. As in Keras 3,
    ``Sequential([fastrnn.Input(shape), ...])`` also works (the shape declares the model's).
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name, input_dtype=dtype)
    dt = layer.input_dtype if layer.input_dtype is not None else layer.dtype
    return symbolic.input_tensor(layer, layer.input_shape, dt, layer.batch_size)


_ONES: dict[tuple, np.ndarray] = {}


def _ones_row(n: int, dtype: np.dtype) -> np.ndarray:
    """A cached (1, n) row of ones (the left factor of column sums)."""
    key = (n, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones((1, n), dtype=dtype)
    return ones


@register
class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis of an input of any rank.

    As in Keras 3, a ``(B, T, F)`` input gives ``(B, T, units)``: the same weights at each step.
    A mask passes through unchanged.
    """

    _weight_options = {"kernel": "kernel", "bias": "bias"}

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: Optional[str] = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = check_activation("activation", activation)
        self.use_bias = check_bool("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._cache: Optional[tuple] = None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        if not input_shape or input_shape[-1] is None:
            raise ValueError(
                f"Layer `{self.name}` needs a known last (feature) dimension, got input shape "
                f"{input_shape}."
            )
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        super().build(input_shape)

    def _check_input(self, x: np.ndarray) -> None:
        # As Keras's input spec: any rank >= 2, only the feature count is fixed.
        features = self.input_shape[-1]
        if x.ndim < 2:
            raise ValueError(
                f"Layer `{self.name}` expects input of rank >= 2 (batch, ..., {features}), got "
                f"an array of shape {x.shape}."
            )
        if x.shape[-1] != features:
            raise ValueError(
                f"Layer `{self.name}` was built for {features} input features: expected feature "
                f"count {features}, received {x.shape[-1]} (input shape {x.shape})."
            )

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """`mask` is accepted and ignored (it passes through, see compute_mask)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        bias = self._weights[1] if self.use_bias else None
        z = ops.internal.affine_checked(x2, self._weights[0], bias)
        if x.ndim != 2:
            z = z.reshape(*x.shape[:-1], self.units)
        y = activation_forward(self.activation, z)
        self._cache = (x, z, y) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        x, z, y = self._cache
        dz = activation_backward(self.activation, z, y, np.asarray(d_out, dtype=self.dtype))
        x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        dz2 = np.ascontiguousarray(dz).reshape(-1, self.units)
        grads = [ops.matmul(x2, dz2, trans_a=True)]
        if self.use_bias:  # column sums, as a product with a row of ones
            grads.append(ops.matmul(_ones_row(dz2.shape[0], dz2.dtype), dz2)[0])
        self._write_grads(grads)
        return ops.matmul(dz2, self._weights[0], trans_b=True).reshape(x.shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }


@register
class Activation(Layer):
    """Applies an activation by name (``"relu"``, ``"tanh"``, ``"softmax"`` ...). A mask passes
    through unchanged."""

    supports_masking = True

    def __init__(self, activation: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = check_activation("activation", activation)
        self._cache: Optional[tuple] = None

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """`mask` is accepted and ignored (it passes through, see compute_mask)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        y = activation_forward(self.activation, x)
        self._cache = (x, y) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_tape()
        x, y = self._cache
        return activation_backward(self.activation, x, y, np.asarray(d_out, dtype=self.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}


@register
class Flatten(Layer):
    """``(B, d1, d2, ...) -> (B, d1 * d2 * ...)``; every non-batch dimension must be known."""

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if any(d is None for d in input_shape):
            raise ValueError(
                f"Layer `{self.name}` needs every non-batch dimension known, got input shape "
                f"{tuple(input_shape)}; give the time axis a fixed length."
            )
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        return np.asarray(d_out, dtype=self.dtype).reshape(self._in_shape)


@register
class Dropout(Layer):
    """Zeroes each input element with probability `rate` during training (inverted dropout:
    kept elements are scaled by ``1 / (1 - rate)``); the identity at inference. A mask passes
    through unchanged."""

    supports_masking = True

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self._mask: Optional[np.ndarray] = None

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """`mask` is accepted and ignored (it passes through, see compute_mask)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape) >= self.rate
        self._mask = keep.astype(self.dtype) / self.dtype.type(1.0 - self.rate)
        return x * self._mask

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        d_out = np.asarray(d_out, dtype=self.dtype)
        return d_out if self._mask is None else d_out * self._mask

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


@register
class Embedding(Layer):
    """Token ids ``(B, T)`` -> vectors ``(B, T, output_dim)``.

    Ids must be integers in ``[0, input_dim)`` (float arrays holding whole numbers are
    accepted); anything else raises ``ValueError``. ``backward`` returns zeros shaped like the
    ids: they are not differentiable.

    ``mask_zero=True``: id 0 is padding. The output mask (:meth:`compute_mask`) is ``ids != 0``;
    the output at padding is still row 0 of the embeddings, as in Keras. Layers that consume the
    mask (the recurrent layers) send no gradient to masked steps, so padding does not train
    row 0.
    """

    _weight_options = {"embeddings": "embeddings"}

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        mask_zero: bool = False,
        input_length: Optional[int] = None,
        **kwargs: Any,
    ):
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (check_positive_int("input_length", input_length),)
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = check_bool("mask_zero", mask_zero)
        self.supports_masking = self.makes_mask = self.mask_zero
        self._ids: Optional[np.ndarray] = None

    def compute_mask(self, x: Any, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """``ids != 0`` (bool, shaped like the ids) with ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return np.asarray(x) != 0

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape) + (self.output_dim,)

    def build(self, input_shape: tuple) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim),
                        self.embeddings_initializer)
        super().build(input_shape)

    def _indices(self, x: Any) -> np.ndarray:
        a = np.asarray(x)
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                raise ValueError(
                    f"Layer `{self.name}` expects integer token ids, got a float array with "
                    "non-integer values."
                )
        elif a.dtype.kind not in "iub":
            raise TypeError(
                f"Layer `{self.name}` expects integer token ids, got dtype {a.dtype}."
            )
        if a.ndim < 1:
            raise ValueError(
                f"Layer `{self.name}` expects ids with a batch axis, got shape {a.shape}."
            )
        if a.size:
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"Layer `{self.name}`: token ids must be in [0, input_dim) = "
                    f"[0, {self.input_dim}), got {int(bad)} (ids range from {int(lo)} to "
                    f"{int(hi)}). Increase `input_dim` or fix the ids."
                )
        return a.astype(np.int64)

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """`mask` is accepted and ignored: the output mask comes from the ids
        (:meth:`compute_mask`)."""
        ids = self._indices(x)
        self._ensure_built(ids)
        self._check_input(ids)
        self._ids = ids if training else None
        return self._weights[0][ids]

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._ids is None:
            raise self._no_tape()
        d_out = np.asarray(d_out, dtype=self.dtype)
        d_emb = np.zeros_like(self._weights[0])
        np.add.at(d_emb, self._ids.ravel(), d_out.reshape(-1, self.output_dim))
        self._write_grads([d_emb])
        return np.zeros(self._ids.shape, dtype=self.dtype)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": serialize_initializer(self.embeddings_initializer),
            "mask_zero": self.mask_zero,
        }


@register
class Masking(Layer):
    """Masks the time steps whose features all equal `mask_value` (Keras ``Masking``).

    ``(B, T, F) -> (B, T, F)``: the output is the input times the mask (masked steps become
    zeros), and :meth:`compute_mask` gives the mask, ``any(x != mask_value, axis=-1)``
    ``(B, T)``, to the layers after it. An incoming mask is replaced, as in Keras.
    """

    supports_masking = True
    makes_mask = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(mask_value, (bool, np.bool_)) or not isinstance(
            mask_value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                "Received an invalid value for argument `mask_value`, expected a number, got "
                f"{mask_value!r}."
            )
        self.mask_value = float(mask_value)
        self._keep: Optional[np.ndarray] = None

    def _keep_of(self, x: np.ndarray) -> np.ndarray:
        return np.any(x != self.dtype.type(self.mask_value), axis=-1)

    def compute_mask(self, x: Any, mask: Optional[np.ndarray] = None) -> np.ndarray:
        x = self._as_input(x)
        if x.ndim < 2:
            raise ValueError(
                f"Layer `{self.name}` expects input of rank >= 2 (batch, ..., features), got "
                f"shape {x.shape}."
            )
        return self._keep_of(x)

    def forward(self, x: Any, training: bool = False, mask: Optional[np.ndarray] = None
                ) -> np.ndarray:
        """`x` ``(B, T, F)`` times its mask; an incoming `mask` is ignored (replaced)."""
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        keep = self._keep_of(x)[..., None].astype(self.dtype)
        self._keep = keep if training else None
        return x * keep

    def backward(self, d_out: np.ndarray) -> np.ndarray:
        if self._keep is None:
            raise self._no_tape()
        return np.asarray(d_out, dtype=self.dtype) * self._keep

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_value": self.mask_value}
