"""EinsumDense: a Dense layer whose product is an einsum equation (Keras's), e.g.
``"abc,cd->abd"`` (Dense on the last axis of a sequence) or ``"...b,bhd->...hd"`` (a
projection into heads, as attention layers use).

Forward and backward are each one ``np.einsum`` per array: for ``X,W->Z``, ``dX = einsum(Z,W
->X)`` and ``dW = einsum(X,Z->W)`` (an input axis that is only summed away gets its gradient
broadcast back). An ellipsis is replaced by explicit letters for the input's rank at each
call, so every equation is explicit.
"""

from __future__ import annotations

import re
import string
from typing import Any, Optional

import numpy as np

from .base import (
    Layer,
    activation_backward,
    activation_forward,
    check_activation,
    register,
    serialize_initializer,
)

__all__ = ["EinsumDense"]

_FORMS = (
    re.compile(r"^([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$"),
    re.compile(r"^\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)$"),
    re.compile(r"^([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\.$"),
)


@register
class EinsumDense(Layer):
    """``keras.layers.EinsumDense``: ``activation(einsum(equation, x, kernel) + bias)``.

    Args:
        equation: ``"X,W->Z"``, ``"...X,W->...Z"`` or ``"X...,W->Z..."`` (letters a-z/A-Z;
            the first letter of a form without a leading ellipsis is the batch axis).
        output_shape: the output's sizes for its explicit letters, without the batch axis
            and the ellipsis (an int for one); None entries come from the input.
        activation: by name (None: linear).
        bias_axes: output letters that get a bias (None: no bias); the bias spans the output
            from the first of them to the end, size 1 on the others (Keras's shape).
        kernel_initializer, bias_initializer: as Keras.

    Weights: ``kernel`` (one size per letter of W) and ``bias``. A mask is not passed on.
    """

    def __init__(self, equation: str, output_shape: Any, activation: Optional[str] = None,
                 bias_axes: Optional[str] = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(equation, str) or not any(f.match(equation) for f in _FORMS):
            raise ValueError(
                "Received an invalid value for argument `equation`, expected the form "
                f"'X,W->Z', '...X,W->...Z' or 'X...,W->Z...', got {equation!r}."
            )
        self.equation = equation
        shape = (output_shape,) if isinstance(output_shape, (int, np.integer)) else output_shape
        try:
            shape = tuple(None if d is None else int(d) for d in shape)
            ok = all(d is None or d > 0 for d in shape) and not isinstance(output_shape, bool)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "Received an invalid value for argument `output_shape`, expected a positive "
                f"integer or a tuple of positive integers or None, got {output_shape!r}."
            )
        self.partial_output_shape = shape
        self.activation = check_activation("activation", activation)
        if bias_axes is not None and (not isinstance(bias_axes, str) or not bias_axes):
            raise ValueError(
                "Received an invalid value for argument `bias_axes`, expected None or a string "
                f"of output letters, got {bias_axes!r}."
            )
        self.bias_axes = bias_axes
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        form = next(k for k, f in enumerate(_FORMS) if f.match(equation))
        self._form = form
        self._x, self._w, self._z = _FORMS[form].match(equation).groups()
        explicit_out = self._z if form == 1 else self._z[1:]
        if len(self.partial_output_shape) != len(explicit_out):
            raise ValueError(
                f"Received an invalid value for argument `output_shape`, the equation "
                f"{equation!r} has {len(explicit_out)} output axes besides the batch axis and "
                f"the ellipsis ({explicit_out!r}), got {len(self.partial_output_shape)} sizes "
                f"{self.partial_output_shape}."
            )
        for c in self._z:
            if c not in self._x and c not in self._w:
                raise ValueError(
                    f"Received an invalid value for argument `equation`: output axis {c!r} is "
                    f"in neither the input {self._x!r} nor the kernel {self._w!r}."
                )
        for c in self._w:
            if c not in self._x and c not in self._z:
                raise ValueError(
                    f"Received an invalid value for argument `equation`: kernel axis {c!r} is "
                    f"in neither the input {self._x!r} nor the output {self._z!r}."
                )
        if bias_axes is not None and any(c not in self._z for c in bias_axes):
            raise ValueError(
                f"Received an invalid value for argument `bias_axes`, every letter must be an "
                f"output axis of {self._z!r}, got {bias_axes!r}."
            )
        self._cache: Optional[tuple] = None

    # -- the equation for a given input rank
    def _explicit(self, ndim: int) -> tuple[str, str, str]:
        """(input, kernel, output) subscripts with the ellipsis spelled out for rank `ndim`."""
        if self._form == 0:
            return self._x, self._w, self._z
        n = ndim - len(self._x)
        if n < 1 and self._form == 1:
            raise ValueError(
                f"Layer `{self.name}`: the equation {self.equation!r} needs inputs of rank > "
                f"{len(self._x)}, got rank {ndim}."
            )
        spare = [c for c in string.ascii_letters if c not in self._x + self._w + self._z][:n]
        e = "".join(spare)
        if self._form == 1:
            return e + self._x, self._w, e + self._z
        return self._x + e, self._w, self._z + e

    def _sizes(self, input_shape: tuple) -> tuple[dict, str, str, str]:
        full = (None,) + tuple(input_shape)
        xs, ws, zs = self._explicit(len(full))
        if len(xs) != len(full):
            raise ValueError(
                f"Layer `{self.name}`: the equation {self.equation!r} takes inputs of rank "
                f"{len(xs)}, got rank {len(full)} (shape {full})."
            )
        size = dict(zip(xs, full))
        explicit_out = self._z if self._form == 1 else self._z[1:]
        for c, d in zip(explicit_out, self.partial_output_shape):
            if d is not None:
                if c in xs and size[c] is not None and size[c] != d:
                    raise ValueError(
                        f"Layer `{self.name}`: input and output sizes differ at the shared axis "
                        f"{c!r}: the input has {size[c]}, `output_shape` asks for {d}."
                    )
                size[c] = d
        return size, xs, ws, zs

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        size, _, _, zs = self._sizes(input_shape)
        return tuple(size.get(c) for c in zs)[1:]

    def build(self, input_shape: tuple) -> None:
        size, xs, ws, zs = self._sizes(input_shape)
        kernel = tuple(size.get(c) for c in ws)
        if any(d is None for d in kernel):
            raise ValueError(
                f"Layer `{self.name}`: every kernel axis needs a known size; {ws!r} got "
                f"{kernel} from input shape {tuple(input_shape)} and output_shape "
                f"{self.partial_output_shape}."
            )
        self.add_weight("kernel", kernel, self.kernel_initializer)
        if self.bias_axes is not None:
            first = min(zs.index(c) for c in self.bias_axes)
            bias = tuple(size[c] if c in self.bias_axes else 1 for c in zs[first:])
            self.add_weight("bias", bias, self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = self._as_input(x)
        self._ensure_built(x)
        self._check_input(x)
        xs, ws, zs = self._explicit(x.ndim)
        z = np.einsum(f"{xs},{ws}->{zs}", x, self._weights[0], optimize=True)
        if self.bias_axes is not None:
            z += self._weights[1]
        y = activation_forward(self.activation, z)
        self._cache = (x, z, y, xs, ws, zs) if training else None
        return y

    def backward(self, d_out: np.ndarray) -> Optional[np.ndarray]:
        if self._cache is None:
            raise self._no_tape()
        x, z, y, xs, ws, zs = self._cache
        dz = activation_backward(self.activation, z, y, np.asarray(d_out, dtype=self.dtype))
        grads = [np.einsum(f"{xs},{zs}->{ws}", x, dz, optimize=True)]
        if self.bias_axes is not None:
            bias = self._weights[1]
            lead = dz.ndim - bias.ndim
            summed = dz.sum(axis=tuple(range(lead))) if lead else dz
            axes = tuple(i for i, d in enumerate(bias.shape) if d == 1)
            grads.append(summed.sum(axis=axes, keepdims=True).reshape(bias.shape))
        self._write_grads(grads)
        if not self.input_grad_needed:
            return None
        kept = "".join(c for c in xs if c in zs or c in ws)
        d_x = np.einsum(f"{zs},{ws}->{kept}", dz, self._weights[0], optimize=True)
        if kept != xs:  # axes summed away only in the input: the gradient is broadcast back
            for i, c in enumerate(xs):
                if c not in kept:
                    d_x = np.expand_dims(d_x, i)
            d_x = np.broadcast_to(d_x, x.shape).copy()
        return d_x

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "equation": self.equation,
            "output_shape": list(self.partial_output_shape),
            "activation": self.activation,
            "bias_axes": self.bias_axes,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }
