"""Activation functions, as ``keras.activations``: NumPy in, NumPy out, with Keras 3's names,
arguments and defaults.

``fastrnn.activations.get("gelu")`` returns the function; each function can also be given to
a layer (``Dense(10, activation=fastrnn.activations.gelu)``, the same as
``activation="gelu"``), which then uses its differentiated form by name with Keras's default
arguments. Inside a layer's ``call`` (traced values) the functions differentiate; on a
symbolic tensor of a model being built they add an ``Activation`` layer (or, with arguments
other than the defaults, an op of :mod:`fastrnn.math`). ``serialize(fn)`` gives the name back.

Two names are functions only, not a layer's ``activation``: ``glu`` (it halves the last axis)
and ``threshold`` (it has no defaults). ``gelu``'s default is the exact form
(``approximate=False``), as in ``keras.activations``; ``keras.ops.gelu`` (``fastrnn.ops.gelu``)
defaults to the tanh form.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from . import math
from .autodiff import Traced, Variable
from .layers import symbolic as _symbolic

__all__ = [
    "celu", "deserialize", "elu", "exponential", "gelu", "get", "glu", "hard_shrink",
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear",
    "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "serialize", "sigmoid",
    "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
    "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink", "threshold",
]


def _apply(name: str, x: Any, op: Callable[[Any], Any], by_name: bool = True) -> Any:
    """`op` on `x`; a symbolic `x` gets an ``Activation(name)`` layer when `by_name` (the
    layer's form: Keras's default arguments)."""
    if _symbolic.is_symbolic(x):
        if by_name:
            from .layers.core import Activation
            return Activation(name)(x)
        return op(x)  # an op node of the graph (fastrnn.math's)
    if isinstance(x, (Traced, Variable)):  # inside a layer's call: the traced math
        return op(x)
    a = np.asarray(x)
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    return op(a)


def _named(name: str, doc: str) -> Callable[[Any], Any]:
    """The activation of `name` without arguments."""
    op = math.ACTIVATIONS.get(name, getattr(math, name, None))

    def activation(x: Any) -> Any:
        return _apply(name, x, op)

    activation.__name__ = activation.__qualname__ = name
    activation.__doc__ = doc
    activation._fastrnn_name = name  # type: ignore[attr-defined]
    return activation


def _tag(name: str) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable) -> Callable:
        fn._fastrnn_name = name  # type: ignore[attr-defined]
        return fn
    return decorate


linear = _named("linear", "`x` unchanged.")
tanh = _named("tanh", "Hyperbolic tangent.")
sigmoid = _named("sigmoid", "``1 / (1 + exp(-x))``.")
selu = _named("selu", "Scaled exponential linear unit (Klambauer et al. 2017).")
softplus = _named("softplus", "``log(1 + exp(x))``.")
softsign = _named("softsign", "``x / (1 + |x|)``.")
silu = _named("silu", "``x * sigmoid(x)`` (also called swish).")
silu._fastrnn_name = "swish"  # type: ignore[attr-defined]
swish = silu
exponential = _named("exponential", "``exp(x)``.")
relu6 = _named("relu6", "``min(max(x, 0), 6)``.")
hard_sigmoid = _named("hard_sigmoid", "``relu6(x + 3) / 6``: 0 below -3, 1 above 3.")
hard_silu = _named("hard_silu", "``x * hard_sigmoid(x)`` (also called hard_swish).")
hard_swish = hard_silu
hard_tanh = _named("hard_tanh", "`x` limited to [-1, 1].")
tanh_shrink = _named("tanh_shrink", "``x - tanh(x)``.")
log_sigmoid = _named("log_sigmoid", "``log(sigmoid(x))``, without overflow.")
mish = _named("mish", "``x * tanh(softplus(x))``.")
sparse_plus = _named("sparse_plus", "0 for x <= -1, ``(x + 1)^2 / 4`` between, `x` for x >= 1.")
sparse_sigmoid = _named("sparse_sigmoid", "0 for x <= -1, ``(x + 1) / 2`` between, 1 for "
                        "x >= 1.")


@_tag("relu")
def relu(x: Any, negative_slope: float = 0.0, max_value: Optional[float] = None,
         threshold: float = 0.0) -> Any:
    """``max(x, 0)``; with arguments, Keras's ``relu``: `x` above `threshold` (else 0),
    capped at `max_value`, plus ``negative_slope * (x - threshold)`` below `threshold`."""
    if negative_slope == 0 and max_value is None and threshold == 0:
        return _apply("relu", x, math.relu)

    def op(v: Any) -> Any:
        if negative_slope != 0 and max_value is None and threshold == 0:
            return math.leaky_relu(v, negative_slope=negative_slope)
        y = math.where(math.greater(v, threshold), v, 0.0)
        if max_value is not None:
            y = math.clip(y, 0.0, max_value)
        if negative_slope != 0:
            y = y - negative_slope * math.relu(threshold - v)
        return y
    return _apply("relu", x, op, by_name=False)


@_tag("leaky_relu")
def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """`x` where positive, ``negative_slope * x`` elsewhere."""
    return _apply("leaky_relu", x, lambda v: math.leaky_relu(v, negative_slope=negative_slope),
                  by_name=negative_slope == 0.2)


@_tag("softmax")
def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` over `axis`."""
    return _apply("softmax", x, lambda v: math.softmax(v, axis=axis), by_name=axis == -1)


@_tag("log_softmax")
def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` over `axis`."""
    return _apply("log_softmax", x, lambda v: math.log_softmax(v, axis=axis),
                  by_name=axis == -1)


@_tag("sparsemax")
def sparsemax(x: Any, axis: int = -1) -> Any:
    """The projection of `x` onto the probability simplex over `axis` (exact zeros)."""
    return _apply("sparsemax", x, lambda v: math.sparsemax(v, axis=axis), by_name=axis == -1)


@_tag("elu")
def elu(x: Any, alpha: float = 1.0) -> Any:
    """`x` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    return _apply("elu", x, lambda v: math.elu(v, alpha=alpha), by_name=alpha == 1.0)


@_tag("celu")
def celu(x: Any, alpha: float = 1.0) -> Any:
    """``max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)``."""
    return _apply("celu", x, lambda v: math.celu(v, alpha=alpha), by_name=alpha == 1.0)


@_tag("gelu")
def gelu(x: Any, approximate: bool = False) -> Any:
    """``x * Phi(x)`` (Phi: the standard normal CDF); with `approximate`, the tanh form."""
    return _apply("gelu", x, lambda v: math.gelu(v, approximate=approximate),
                  by_name=not approximate)


@_tag("hard_shrink")
def hard_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x` where ``|x| > threshold``, else 0."""
    return _apply("hard_shrink", x, lambda v: math.hard_shrink(v, threshold=threshold),
                  by_name=threshold == 0.5)


@_tag("soft_shrink")
def soft_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x` moved towards 0 by `threshold` (0 where ``|x| <= threshold``)."""
    return _apply("soft_shrink", x, lambda v: math.soft_shrink(v, threshold=threshold),
                  by_name=threshold == 0.5)


@_tag("squareplus")
def squareplus(x: Any, b: float = 4) -> Any:
    """``(x + sqrt(x^2 + b)) / 2``."""
    return _apply("squareplus", x, lambda v: math.squareplus(v, b=b), by_name=b == 4)


@_tag("glu")
def glu(x: Any, axis: int = -1) -> Any:
    """``a * sigmoid(b)`` for the two halves ``a, b`` of `x` along `axis` (of even size)."""
    return _apply("glu", x, lambda v: math.glu(v, axis=axis), by_name=False)


@_tag("threshold")
def threshold(x: Any, threshold: float, default_value: float) -> Any:
    """`x` where ``x > threshold``, else `default_value`."""
    return _apply("threshold", x, lambda v: math.threshold(v, threshold, default_value),
                  by_name=False)


_BY_NAME: dict[str, Callable[..., Any]] = {
    f._fastrnn_name: f for f in (  # type: ignore[attr-defined]
        linear, relu, tanh, sigmoid, softmax, elu, selu, softplus, softsign, swish,
        exponential, relu6, leaky_relu, celu, gelu, glu, hard_sigmoid, hard_silu, hard_tanh,
        hard_shrink, soft_shrink, tanh_shrink, log_sigmoid, log_softmax, mish, sparse_plus,
        sparse_sigmoid, sparsemax, squareplus, threshold)
}
_ALIASES = {"silu": "swish", "hard_swish": "hard_silu"}


def _lookup(name: str) -> Optional[Callable[..., Any]]:
    key = name.lower()
    return _BY_NAME.get(_ALIASES.get(key, key))


def get(identifier: Any) -> Callable[..., Any]:
    """The activation function for a name (None is ``linear``), a :func:`serialize` config,
    or `identifier` itself if it is callable (Keras's rule; a layer still needs one of this
    module's functions, which it differentiates by name)."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        found = _lookup(identifier)
        if found is not None:
            return found
    elif callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret activation function identifier: {identifier!r} (expected one "
        f"of {sorted(_BY_NAME)}, a callable or None)."
    )


def serialize(activation: Callable[..., Any]) -> str:
    """The name of one of this module's functions."""
    name = getattr(activation, "_fastrnn_name", None)
    if name not in _BY_NAME:
        raise ValueError(
            f"Unknown activation function {activation!r} cannot be serialized: expected one of "
            "fastrnn.activations' functions."
        )
    return name


def deserialize(config: Any, custom_objects: Optional[dict[str, Any]] = None
                ) -> Callable[..., Any]:
    """The function a name or a Keras function config (``{"class_name": "function",
    "config": name}``) stands for; `custom_objects` maps further names to your functions."""
    name = config
    if isinstance(config, dict) and config.get("class_name") == "function":
        name = config.get("config")
    if isinstance(name, str):
        if custom_objects and callable(custom_objects.get(name)):
            return custom_objects[name]
        found = _lookup(name)
        if found is not None:
            return found
    raise ValueError(
        f"Received an invalid value for argument `config`: could not interpret activation "
        f"function identifier {config!r}; expected one of {sorted(_BY_NAME)} or "
        "{'class_name': 'function', 'config': name}."
    )
