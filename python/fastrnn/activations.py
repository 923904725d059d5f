"""Activation functions by name, as ``keras.activations``: NumPy in, NumPy out.

``fastrnn.activations.get("relu")`` returns the function; each function can also be given to
a layer (``Dense(10, activation=fastrnn.activations.relu)``), which then uses its fused,
differentiated form by name. ``serialize(fn)`` gives the name back.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .autodiff import Traced, Variable
from .layers import base as _base
from .layers import symbolic as _symbolic

__all__ = ["elu", "exponential", "get", "linear", "relu", "selu", "serialize", "sigmoid",
           "softmax", "softplus", "softsign", "swish", "silu", "tanh"]


def _named(name: str) -> Callable[[Any], np.ndarray]:
    forward = _base._ACTIVATIONS[name][0]

    def activation(x: Any) -> np.ndarray:
        if _symbolic.is_symbolic(x):  # in a graph being built: an Activation layer's call
            from .layers.core import Activation
            return Activation(name)(x)
        if isinstance(x, (Traced, Variable)):  # inside a layer's call: the traced math
            from . import math
            return math.ACTIVATIONS[name](x)
        a = np.asarray(x)
        if a.dtype.kind != "f":
            a = a.astype(np.float32)
        return forward(a)

    activation.__name__ = activation.__qualname__ = name
    activation.__doc__ = f"The ``{name}`` activation, elementwise (softmax: over the last axis)."
    activation._fastrnn_name = name  # type: ignore[attr-defined]
    return activation


linear = _named("linear")
relu = _named("relu")
tanh = _named("tanh")
sigmoid = _named("sigmoid")
softmax = _named("softmax")
elu = _named("elu")
selu = _named("selu")
softplus = _named("softplus")
softsign = _named("softsign")
swish = silu = _named("swish")
exponential = _named("exponential")

_BY_NAME = {f.__name__: f for f in (linear, relu, tanh, sigmoid, softmax, elu, selu, softplus,
                                    softsign, swish, exponential)}


def get(identifier: Any) -> Callable[[Any], np.ndarray]:
    """The activation function for a name (None is ``linear``), or `identifier` itself if it
    is one of this module's functions."""
    if identifier is None:
        return linear
    if callable(identifier) and getattr(identifier, "_fastrnn_name", None) in _BY_NAME:
        return identifier
    if isinstance(identifier, str):
        key = {"silu": "swish"}.get(identifier.lower(), identifier.lower())
        if key in _BY_NAME:
            return _BY_NAME[key]
    raise ValueError(
        f"Received an invalid value for argument `identifier`, expected one of "
        f"{sorted(_BY_NAME)} or one of fastrnn.activations' functions, got {identifier!r}."
    )


def serialize(activation: Callable[[Any], np.ndarray]) -> str:
    """The name of one of this module's functions."""
    return get(activation).__name__
