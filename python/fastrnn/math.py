"""Math that traces and differentiates: the role of ``keras.ops``, re-exported by ``fastrnn.ops``.

Every function here takes NumPy arrays (and returns NumPy arrays: plain NumPy, nothing
recorded), traced values inside a layer's ``call`` (the result records its vector-Jacobian
product on the tape of :mod:`fastrnn.autodiff`), layer weights (``Variable``), or symbolic
tensors of a model being built (the call becomes a node of the graph, a ``TracedOp`` layer).
Python numbers stay weak (``x * 2.0`` keeps float32).

Names and arguments are Keras 3's (``keras.ops``): arithmetic (``add``, ``subtract``,
``multiply``, ``divide``, ``power``, ``negative``; the operators ``+ - * / ** @``, unary minus and
comparisons work on the tensors too), ``matmul``, ``concatenate``, ``stack``, ``split``,
``reshape``, ``transpose``, ``expand_dims``, ``squeeze``, ``flip``, reductions (``sum``, ``mean``,
``max``, ``min``, ``var``, ``std``, ``logsumexp``) over ``axis`` with ``keepdims``, elementwise
``exp``, ``log``, ``log1p``, ``expm1``, ``sqrt``, ``rsqrt``, ``abs``, ``square``, ``sin``, ``cos``,
``maximum``, ``minimum``, ``clip``, ``where``, the activations (``tanh``, ``sigmoid``, ``relu``,
``softmax``, ``log_softmax``, ``softplus``, ``softsign``, ``elu``, ``selu``, ``silu``/``swish``,
``exponential``, ``linear``, ``gelu``, ``celu``, ``glu``, ``leaky_relu``, ``relu6``,
``hard_sigmoid``, ``hard_silu``/``hard_swish``, ``hard_tanh``, ``hard_shrink``, ``soft_shrink``,
``tanh_shrink``, ``log_sigmoid``, ``sparse_plus``, ``sparse_sigmoid``, ``sparsemax``,
``squareplus``, ``threshold``), ``erf``, ``cast``, ``zeros_like``/``ones_like``, and the
comparisons and logical ops (``greater``, ``less``, ``equal``, ..., no gradient: their outputs
are bool).
Indexing ``x[..., :n]`` (basic and integer-array indexing) differentiates too.
"""

from __future__ import annotations

import builtins
import functools
import math as _stdlib_math
from typing import Any, Callable, Optional

import numpy as np

from .autodiff import SYMBOLIC_TYPES, Traced, Variable, lift

__all__ = [
    "abs", "absolute", "add", "arange", "cast", "clip", "concatenate", "convert_to_numpy",
    "convert_to_tensor", "cos", "divide", "dot", "elu", "equal", "exp", "expand_dims",
    "expm1", "exponential", "eye", "flip", "floor", "full", "greater", "greater_equal",
    "hard_sigmoid", "leaky_relu", "less", "less_equal", "log_sigmoid", "ones", "pad",
    "celu", "erf", "gelu", "glu", "hard_shrink", "hard_silu", "hard_swish", "hard_tanh",
    "relu6", "soft_shrink", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus",
    "tanh_shrink", "threshold",
    "repeat", "round", "sign", "take", "tile", "zeros", "cumsum",
    "linear", "log", "log1p", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "moments", "multiply",
    "negative", "not_equal", "ones_like", "power", "relu", "reshape", "rsqrt", "selu",
    "shape", "sigmoid", "silu", "sin", "softmax", "softplus", "softsign", "split", "sqrt",
    "square", "squeeze", "stack", "std", "subtract", "sum", "swish", "tanh", "transpose",
    "true_divide", "var", "where", "zeros_like",
]

# name -> the public function (TracedOp layers find their op here when loaded from a file)
OPS: dict[str, Callable] = {}


# ----------------------------------------------------------------------------- dispatch
def _has_symbolic(args: tuple, kwargs: dict) -> bool:
    types = tuple(SYMBOLIC_TYPES)
    if not types:
        return False
    for a in (*args, *kwargs.values()):
        if isinstance(a, types):
            return True
        if isinstance(a, (list, tuple)) and any(isinstance(v, types) for v in a):
            return True
    return False


def _op(fn: Callable) -> Callable:
    """Registers `fn` as a public op; on symbolic arguments it becomes a graph node."""
    name = fn.__name__.rstrip("_")

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if _has_symbolic(args, kwargs):
            from .layers.traced import apply_symbolic  # the layers import this module
            return apply_symbolic(name, args, kwargs)
        return fn(*args, **kwargs)

    op.__name__ = op.__qualname__ = name
    OPS[name] = op
    return op


def _traceable(x: Any) -> bool:
    return isinstance(x, (Traced, Variable, *SYMBOLIC_TYPES))


def _val(x: Any) -> Any:
    return x.value if isinstance(x, Traced) else x


def _arr(x: Any) -> Any:
    """`x` lifted (a Variable becomes a trace leaf or its array); NumPy scalars and Python
    numbers stay as they are; lists become arrays."""
    if isinstance(x, (Traced, np.ndarray, int, float, np.generic)):
        return x
    if isinstance(x, Variable):
        return lift(x)
    if isinstance(x, (list, tuple)):
        return np.asarray([_val(_arr(v)) for v in x])
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError(f"Expected an array or a number, got {type(x).__name__}.")
    return a


def _unary(x: Any, f: Callable, df: Callable) -> Any:
    """``f(x)`` with gradient ``g * df(x_value, y_value)``."""
    x = _arr(x)
    v = _val(x)
    if not isinstance(v, np.ndarray):
        v = np.asarray(v, dtype=np.result_type(v, np.float32))
    y = f(v)
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (g * df(v, y),))


def _axis_tuple(axis: Any, ndim: int) -> Optional[tuple]:
    if axis is None:
        return None
    axes = axis if isinstance(axis, (list, tuple)) else (axis,)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def _expand_reduced(g: np.ndarray, shape: tuple, axis: Any, keepdims: bool) -> np.ndarray:
    """A reduction's output gradient reshaped so that it broadcasts against the input."""
    axes = _axis_tuple(axis, len(shape))
    if not keepdims:
        if axes is None:
            g = np.reshape(g, (1,) * len(shape))
        else:
            g = np.expand_dims(g, axes)
    return g


# ----------------------------------------------------------------------------- arithmetic
def _binary(a: Any, b: Any, f: Callable, da: Callable, db: Callable) -> Any:
    a, b = _arr(a), _arr(b)
    va, vb = _val(a), _val(b)
    y = f(va, vb)
    if not (isinstance(a, Traced) or isinstance(b, Traced)):
        return y
    need_a, need_b = isinstance(a, Traced), isinstance(b, Traced)
    return Traced(np.asarray(y), (a if need_a else None, b if need_b else None),
                  lambda g: (da(g, va, vb, y) if need_a else None,
                             db(g, va, vb, y) if need_b else None))


@_op
def add(x1: Any, x2: Any) -> Any:
    """``x1 + x2`` (broadcasting)."""
    return _binary(x1, x2, np.add, lambda g, a, b, y: g, lambda g, a, b, y: g)


@_op
def subtract(x1: Any, x2: Any) -> Any:
    """``x1 - x2``."""
    return _binary(x1, x2, np.subtract, lambda g, a, b, y: g, lambda g, a, b, y: -g)


@_op
def multiply(x1: Any, x2: Any) -> Any:
    """``x1 * x2``."""
    return _binary(x1, x2, np.multiply, lambda g, a, b, y: g * b, lambda g, a, b, y: g * a)


@_op
def divide(x1: Any, x2: Any) -> Any:
    """``x1 / x2``."""
    return _binary(x1, x2, np.true_divide, lambda g, a, b, y: g / b,
                   lambda g, a, b, y: -g * y / b)


true_divide = divide


def _dpow_base(g: Any, a: Any, b: Any, y: Any) -> Any:
    return g * b * np.power(a, b - 1)


def _dpow_exponent(g: Any, a: Any, b: Any, y: Any) -> Any:
    return g * y * np.log(np.where(np.asarray(a) > 0, a, 1))


@_op
def power(x1: Any, x2: Any) -> Any:
    """``x1 ** x2`` (the exponent's gradient uses ``log(x1)``, taken as 0 where x1 <= 0)."""
    return _binary(x1, x2, np.power, _dpow_base, _dpow_exponent)


@_op
def negative(x: Any) -> Any:
    """``-x``."""
    return _unary(x, np.negative, lambda v, y: -1)


@_op
def maximum(x1: Any, x2: Any) -> Any:
    """Elementwise maximum (ties: the gradient goes to `x1`)."""
    return _binary(x1, x2, np.maximum, lambda g, a, b, y: g * (a >= b),
                   lambda g, a, b, y: g * (a < b))


@_op
def minimum(x1: Any, x2: Any) -> Any:
    """Elementwise minimum (ties: the gradient goes to `x1`)."""
    return _binary(x1, x2, np.minimum, lambda g, a, b, y: g * (a <= b),
                   lambda g, a, b, y: g * (a > b))


# ----------------------------------------------------------------------------- elementwise
@_op
def abs_(x: Any) -> Any:
    """``|x|`` (gradient ``sign(x)``, 0 at 0)."""
    return _unary(x, np.abs, lambda v, y: np.sign(v))


abs = abs_  # noqa: A001 (Keras's name)
absolute = abs_


@_op
def square(x: Any) -> Any:
    """``x * x``."""
    return _unary(x, np.square, lambda v, y: 2 * v)


@_op
def sqrt(x: Any) -> Any:
    """``sqrt(x)``."""
    return _unary(x, np.sqrt, lambda v, y: 0.5 / y)


@_op
def rsqrt(x: Any) -> Any:
    """``1 / sqrt(x)``."""
    return _unary(x, lambda v: 1 / np.sqrt(v), lambda v, y: -0.5 * y / v)


@_op
def exp(x: Any) -> Any:
    """``e ** x``."""
    return _unary(x, np.exp, lambda v, y: y)


@_op
def expm1(x: Any) -> Any:
    """``exp(x) - 1``, accurate near 0."""
    return _unary(x, np.expm1, lambda v, y: y + 1)


@_op
def log(x: Any) -> Any:
    """Natural logarithm."""
    return _unary(x, np.log, lambda v, y: 1 / v)


@_op
def log1p(x: Any) -> Any:
    """``log(1 + x)``, accurate near 0."""
    return _unary(x, np.log1p, lambda v, y: 1 / (1 + v))


@_op
def sin(x: Any) -> Any:
    """Sine."""
    return _unary(x, np.sin, lambda v, y: np.cos(v))


@_op
def cos(x: Any) -> Any:
    """Cosine."""
    return _unary(x, np.cos, lambda v, y: -np.sin(v))


@_op
def clip(x: Any, x_min: Any, x_max: Any) -> Any:
    """`x` limited to ``[x_min, x_max]`` (gradient 1 inside, bounds included; 0 outside)."""
    lo, hi = _val(_arr(x_min)), _val(_arr(x_max))
    return _unary(x, lambda v: np.clip(v, lo, hi), lambda v, y: (v >= lo) & (v <= hi))


@_op
def where(condition: Any, x1: Any, x2: Any) -> Any:
    """`x1` where `condition` holds, else `x2` (no gradient to `condition`)."""
    cond = np.asarray(_val(_arr(condition)), dtype=bool)
    return _binary(x1, x2, lambda a, b: np.where(cond, a, b),
                   lambda g, a, b, y: g * cond, lambda g, a, b, y: g * ~cond)


@_op
def cast(x: Any, dtype: Any) -> Any:
    """`x` in `dtype` (the gradient comes back in the input's dtype)."""
    dt = np.dtype(dtype)
    x = _arr(x)
    v = np.asarray(_val(x))
    y = v.astype(dt)
    if not isinstance(x, Traced) or dt.kind != "f":
        return y
    return Traced(y, (x,), lambda g: (g.astype(v.dtype),))


def convert_to_tensor(x: Any, dtype: Any = None) -> Any:
    """Traced values as they are; anything else as an array (in `dtype` if given)."""
    x = _arr(x)
    if isinstance(x, Traced):
        return x if dtype is None else cast(x, dtype)
    return np.asarray(x, dtype=dtype)


def convert_to_numpy(x: Any) -> np.ndarray:
    """The array behind `x` (a copy for traced values and weights)."""
    return np.array(_val(_arr(x)))


def shape(x: Any) -> tuple:
    """``x.shape`` (a symbolic tensor's has None for its batch axis)."""
    return tuple(x.shape)


# ----------------------------------------------------------------------------- activations
def _sigmoid(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))  # never overflows
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e)).astype(v.dtype, copy=False)


def _softmax(v: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


@_op
def tanh(x: Any) -> Any:
    """Hyperbolic tangent."""
    return _unary(x, np.tanh, lambda v, y: 1 - y * y)


@_op
def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``, without overflow."""
    return _unary(x, _sigmoid, lambda v, y: y * (1 - y))


@_op
def relu(x: Any) -> Any:
    """``max(x, 0)`` (gradient 0 at 0)."""
    return _unary(x, lambda v: np.maximum(v, 0), lambda v, y: v > 0)


@_op
def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, without overflow."""
    return _unary(x, lambda v: np.logaddexp(0, v).astype(v.dtype, copy=False),
                  lambda v, y: _sigmoid(v))


@_op
def softsign(x: Any) -> Any:
    """``x / (1 + |x|)``."""
    return _unary(x, lambda v: v / (1 + np.abs(v)), lambda v, y: 1 / (1 + np.abs(v)) ** 2)


@_op
def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    return _unary(x, lambda v: np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0))),
                  lambda v, y: np.where(v > 0, 1, y + alpha))


@_op
def selu(x: Any) -> Any:
    """Scaled ELU (Klambauer et al. 2017)."""
    return _unary(
        x, lambda v: _SELU_SCALE * np.where(v > 0, v, _SELU_ALPHA * np.expm1(np.minimum(v, 0))),
        lambda v, y: np.where(v > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA))


@_op
def silu(x: Any) -> Any:
    """``x * sigmoid(x)`` (swish)."""
    def grad(v: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = _sigmoid(v)
        return s * (1 + v * (1 - s))
    return _unary(x, lambda v: v * _sigmoid(v), grad)


swish = silu


@_op
def exponential(x: Any) -> Any:
    """``exp(x)`` (the activation's name)."""
    return _unary(x, np.exp, lambda v, y: y)


@_op
def linear(x: Any) -> Any:
    """`x` unchanged."""
    return _arr(x)


@_op
def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` over `axis`."""
    x = _arr(x)
    v = _val(x)
    y = _softmax(v, axis)
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),))


@_op
def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` over `axis`."""
    x = _arr(x)
    v = _val(x)
    m = v.max(axis=axis, keepdims=True)
    y = v - m - np.log(np.exp(v - m).sum(axis=axis, keepdims=True))
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (g - np.exp(y) * g.sum(axis=axis, keepdims=True),))


@_op
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over `axis`, without overflow."""
    x = _arr(x)
    v = _val(x)
    axes = _axis_tuple(axis, v.ndim)
    m = v.max(axis=axes, keepdims=True)
    yk = m + np.log(np.exp(v - m).sum(axis=axes, keepdims=True))
    y = yk if keepdims else np.squeeze(yk, axis=axes) if axes is not None else yk.reshape(())
    if not isinstance(x, Traced):
        return y
    return Traced(np.asarray(y), (x,), lambda g: (
        _expand_reduced(g, v.shape, axes, keepdims) * np.exp(v - yk),))


# ----------------------------------------------------------------------------- reductions
@_op
def sum_(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum over `axis` (None: all)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    axes = _axis_tuple(axis, v.ndim)
    y = np.asarray(v.sum(axis=axes, keepdims=keepdims))
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (
        np.broadcast_to(_expand_reduced(g, v.shape, axes, keepdims), v.shape),))


sum = sum_  # noqa: A001 (Keras's name)


@_op
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over `axis` (None: all)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    axes = _axis_tuple(axis, v.ndim)
    y = np.asarray(v.mean(axis=axes, keepdims=keepdims))
    if not isinstance(x, Traced):
        return y
    n = v.size // builtins.max(y.size, 1) if v.size else 1
    return Traced(y, (x,), lambda g: (
        np.broadcast_to(_expand_reduced(g, v.shape, axes, keepdims) / n, v.shape),))


def _extremum(x: Any, axis: Any, keepdims: bool, f: Callable) -> Any:
    x = _arr(x)
    v = np.asarray(_val(x))
    axes = _axis_tuple(axis, v.ndim)
    yk = f(v, axis=axes, keepdims=True)
    y = np.asarray(yk if keepdims else f(v, axis=axes, keepdims=False))
    if not isinstance(x, Traced):
        return y

    def vjp(g: np.ndarray) -> tuple:
        hit = v == yk  # ties share the gradient equally (as TensorFlow's reduce_max does)
        share = hit / hit.sum(axis=axes, keepdims=True)
        return (_expand_reduced(g, v.shape, axes, keepdims) * share,)
    return Traced(y, (x,), vjp)


@_op
def max_(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Maximum over `axis` (ties share the gradient)."""
    return _extremum(x, axis, keepdims, np.max)


@_op
def min_(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Minimum over `axis` (ties share the gradient)."""
    return _extremum(x, axis, keepdims, np.min)


max = max_  # noqa: A001 (Keras's name)
min = min_  # noqa: A001 (Keras's name)


@_op
def var(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Variance over `axis` (the population variance, as Keras's)."""
    centred = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centred), axis=axis, keepdims=keepdims)


@_op
def std(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Standard deviation over `axis`."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def moments(x: Any, axes: Any, keepdims: bool = False) -> tuple:
    """``(mean, variance)`` over `axes` (Keras's ``ops.moments``)."""
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


# ----------------------------------------------------------------------------- products
def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``; 2-D float products of one dtype go through the core's OpenBLAS."""
    if (a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f"
            and a.dtype.itemsize in (4, 8) and a.size and b.size and a.shape[1] == b.shape[0]):
        global _ops
        if _ops is None:
            from . import ops as _ops  # (ops imports this module)
        return _ops.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b))
    return np.matmul(a, b)


_ops: Any = None


def _mm_t(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool) -> np.ndarray:
    """``op(a) @ op(b)`` of 2-D arrays, transposes read in place by the core when it can."""
    if (a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype.itemsize in (4, 8)
            and a.size and b.size):
        global _ops
        if _ops is None:
            from . import ops as _ops
        return _ops.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), trans_a, trans_b)
    return np.matmul(a.T if trans_a else a, b.T if trans_b else b)


def _matmul_value(va: np.ndarray, vb: np.ndarray) -> np.ndarray:
    if va.ndim >= 2 and vb.ndim == 2:  # the dense case: one 2-D product over all rows
        return _mm(va.reshape(-1, va.shape[-1]), vb).reshape(*va.shape[:-1], vb.shape[1])
    return np.matmul(va, vb)


@_op
def matmul(x1: Any, x2: Any) -> Any:
    """``x1 @ x2`` with NumPy's rules (1-D promoted, leading axes broadcast)."""
    a, b = _arr(x1), _arr(x2)
    va, vb = np.asarray(_val(a)), np.asarray(_val(b))
    y = _matmul_value(va, vb)
    need_a, need_b = isinstance(a, Traced), isinstance(b, Traced)
    if not (need_a or need_b):
        return y

    def vjp(g: np.ndarray) -> tuple:
        A = va[None, :] if va.ndim == 1 else va
        B = vb[:, None] if vb.ndim == 1 else vb
        G = g
        if va.ndim == 1:
            G = np.expand_dims(G, -2)
        if vb.ndim == 1:
            G = np.expand_dims(G, -1)
        ga = gb = None
        if need_a:
            if B.ndim == 2:
                ga = _mm_t(G.reshape(-1, G.shape[-1]), B, False, True).reshape(
                    *G.shape[:-1], B.shape[0])
            else:
                ga = np.matmul(G, np.swapaxes(B, -1, -2))
            ga = ga.reshape(va.shape) if va.ndim == 1 else ga
            if va.ndim == 1:
                ga = _sum_to(ga.reshape(-1, va.shape[0]), va.shape)
        if need_b:
            if B.ndim == 2 and A.ndim >= 2:
                gb = _mm_t(A.reshape(-1, A.shape[-1]), G.reshape(-1, G.shape[-1]), True, False)
            else:
                gb = np.matmul(np.swapaxes(A, -1, -2), G)
            if vb.ndim == 1:
                gb = _sum_to(gb.reshape(-1, vb.shape[0]), vb.shape)
        return ga, gb
    return Traced(y, (a if need_a else None, b if need_b else None), vjp)


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    return g.sum(axis=0).reshape(shape) if g.ndim > len(shape) else g.reshape(shape)


dot = matmul


# ----------------------------------------------------------------------------- shapes
@_op
def reshape(x: Any, newshape: Any) -> Any:
    """`x` with shape `newshape` (one entry may be -1)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = v.reshape(tuple(-1 if d is None else d for d in newshape))
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (g.reshape(v.shape),))


@_op
def transpose(x: Any, axes: Any = None) -> Any:
    """Axes permuted by `axes` (default: reversed)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    perm = tuple(range(v.ndim))[::-1] if axes is None else tuple(int(a) % v.ndim for a in axes)
    y = np.transpose(v, perm)
    if not isinstance(x, Traced):
        return y
    inverse = tuple(np.argsort(perm))
    return Traced(y, (x,), lambda g: (np.transpose(g, inverse),))


@_op
def expand_dims(x: Any, axis: Any) -> Any:
    """A new axis of size 1 at `axis`."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = np.expand_dims(v, axis)
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (g.reshape(v.shape),))


@_op
def squeeze(x: Any, axis: Any = None) -> Any:
    """Axes of size 1 removed (those in `axis`, or all)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = np.squeeze(v, axis=None if axis is None else tuple(np.atleast_1d(axis).tolist()))
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (g.reshape(v.shape),))


@_op
def flip(x: Any, axis: Any = None) -> Any:
    """`x` reversed along `axis` (None: all axes)."""
    x = _arr(x)
    y = np.flip(_val(x), axis=axis)
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (np.flip(g, axis=axis),))


@_op
def concatenate(xs: Any, axis: int = 0) -> Any:
    """The tensors of `xs` joined along `axis`."""
    items = [_arr(x) for x in xs]
    vals = [np.asarray(_val(x)) for x in items]
    y = np.concatenate(vals, axis=axis)
    if not any(isinstance(x, Traced) for x in items):
        return y
    cuts = np.cumsum([v.shape[axis] for v in vals])[:-1]
    return Traced(y, tuple(items), lambda g: tuple(np.split(g, cuts, axis=axis)))


@_op
def stack(x: Any, axis: int = 0) -> Any:
    """The tensors of `x` (one shape) stacked along a new axis `axis`."""
    items = [_arr(v) for v in x]
    y = np.stack([_val(v) for v in items], axis=axis)
    if not any(isinstance(v, Traced) for v in items):
        return y
    n = len(items)
    return Traced(y, tuple(items), lambda g: tuple(np.take(g, k, axis=axis) for k in range(n)))


@_op
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`x` cut along `axis` into equal sections, or at the given indices (a list)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    parts = np.split(v, indices_or_sections, axis=axis)
    if not isinstance(x, Traced):
        return parts
    bounds = np.cumsum([0] + [p.shape[axis] for p in parts])
    out = []
    for k, p in enumerate(parts):
        lo, hi = int(bounds[k]), int(bounds[k + 1])

        def vjp(g: np.ndarray, lo: int = lo, hi: int = hi) -> tuple:
            full = np.zeros_like(v)
            index = [slice(None)] * v.ndim
            index[axis] = slice(lo, hi)
            full[tuple(index)] = g
            return (full,)
        out.append(Traced(p, (x,), vjp))
    return out


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
               and not isinstance(i, bool) for i in items)


def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` (basic slicing, integer and integer-array indexing)."""
    if isinstance(index, tuple):
        index = tuple(_val(i) for i in index)
    else:
        index = _val(index)
    x = _arr(x)
    v = np.asarray(_val(x))
    y = v[index]
    if not isinstance(x, Traced):
        return y
    basic = _is_basic_index(index)

    def vjp(g: np.ndarray) -> tuple:
        full = np.zeros_like(v)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)
    return Traced(np.asarray(y), (x,), vjp)


OPS["getitem"] = getitem


@_op
def tile(x: Any, repeats: Any) -> Any:
    """`x` repeated `repeats` times along each axis (NumPy's ``tile``)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    reps = (repeats,) if isinstance(repeats, (int, np.integer)) else tuple(repeats)
    y = np.tile(v, reps)
    if not isinstance(x, Traced):
        return y
    nd = builtins.max(len(reps), v.ndim)
    reps_full = (1,) * (nd - len(reps)) + reps
    base = (1,) * (nd - v.ndim) + v.shape

    def vjp(g: np.ndarray) -> tuple:
        split = [d for pair in zip(reps_full, base) for d in pair]
        summed = g.reshape(split).sum(axis=tuple(range(0, 2 * nd, 2)))
        return (summed.reshape(v.shape),)
    return Traced(y, (x,), vjp)


@_op
def repeat(x: Any, repeats: int, axis: Any = None) -> Any:
    """Each element of `x` repeated `repeats` times along `axis` (None: flattened)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = np.repeat(v, repeats, axis=axis)
    if not isinstance(x, Traced):
        return y
    if not isinstance(repeats, (int, np.integer)):
        raise NotImplementedError("fastrnn.ops.repeat differentiates an integer `repeats` only.")

    def vjp(g: np.ndarray) -> tuple:
        if axis is None:
            return (g.reshape(-1, repeats).sum(1).reshape(v.shape),)
        ax = axis % v.ndim
        shape = v.shape[:ax] + (v.shape[ax], repeats) + v.shape[ax + 1:]
        return (g.reshape(shape).sum(axis=ax + 1),)
    return Traced(y, (x,), vjp)


@_op
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: float = 0) -> Any:
    """`x` padded with `constant_values` (``mode="constant"`` only): `pad_width` as NumPy's."""
    if mode != "constant":
        raise NotImplementedError(f"fastrnn.ops.pad supports mode='constant', got {mode!r}.")
    x = _arr(x)
    v = np.asarray(_val(x))
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (v.ndim, 2))
    y = np.pad(v, widths, constant_values=constant_values)
    if not isinstance(x, Traced):
        return y
    index = tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, v.shape))
    return Traced(y, (x,), lambda g: (g[index],))


@_op
def cumsum(x: Any, axis: Any = None) -> Any:
    """Cumulative sum along `axis` (None: flattened)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = np.cumsum(v, axis=axis)
    if not isinstance(x, Traced):
        return y

    def vjp(g: np.ndarray) -> tuple:
        if axis is None:
            return (np.flip(np.cumsum(np.flip(g))).reshape(v.shape),)
        return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)
    return Traced(y, (x,), vjp)


@_op
def take(x: Any, indices: Any, axis: Any = None) -> Any:
    """Entries of `x` at integer `indices` along `axis` (a gather; repeated indices add up)."""
    idx = np.asarray(_val(_arr(indices)))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"fastrnn.ops.take expects integer indices, got dtype {idx.dtype}.")
    x = _arr(x)
    v = np.asarray(_val(x))
    y = np.take(v, idx, axis=axis)
    if not isinstance(x, Traced):
        return y

    def vjp(g: np.ndarray) -> tuple:
        full = np.zeros_like(v)
        if axis is None:
            np.add.at(full.reshape(-1), idx.reshape(-1), g.reshape(-1))
            return (full,)
        ax = axis % v.ndim
        moved = np.moveaxis(full, ax, 0)
        g_moved = np.moveaxis(g, tuple(range(ax, ax + idx.ndim)), tuple(range(idx.ndim)))
        np.add.at(moved, idx, g_moved)
        return (full,)
    return Traced(y, (x,), vjp)


@_op
def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """`x` where positive, ``negative_slope * x`` elsewhere (Keras's default slope 0.2)."""
    return _unary(x, *_leaky_relu_rule(negative_slope))


@_op
def hard_sigmoid(x: Any) -> Any:
    """Keras 3's ``relu6(x + 3) / 6``."""
    return _unary(x, *_RULES["hard_sigmoid"])


@_op
def log_sigmoid(x: Any) -> Any:
    """``log(sigmoid(x))``, without overflow."""
    return _unary(x, *_RULES["log_sigmoid"])


# ----------------------------------------------------------------------------- more activations
# Each rule is ``(f(v) -> y, df(v, y) -> dy/dv)``, elementwise, in the input's dtype. The layers'
# activations by name (``Dense(activation="gelu")``) use the same rules (ACTIVATION_RULES).
_SQRT_2 = 1.4142135623730951
_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327
_math_erf = np.frompyfunc(_stdlib_math.erf, 1, 1)


def _erf(v: np.ndarray) -> np.ndarray:
    """The error function, in `v`'s dtype: exact (the C library's) in float64; for float32,
    a rational approximation of erfc with relative error below 1.2e-7 (float32's rounding)
    computed in float64, about five times faster."""
    if v.dtype == np.float64 or v.dtype.kind != "f":
        return np.asarray(_math_erf(v), dtype=np.float64)
    a = np.abs(v.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(-a * a + poly)
    return np.copysign(1.0 - erfc, v).astype(v.dtype)


def _gelu_rule(approximate: bool) -> tuple[Callable, Callable]:
    if approximate:
        def f(v: np.ndarray) -> np.ndarray:
            return 0.5 * v * (1 + np.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v ** 3)))

        def df(v: np.ndarray, y: np.ndarray) -> np.ndarray:
            t = np.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v ** 3))
            return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * _SQRT_2_OVER_PI * (
                1 + 3 * 0.044715 * v * v)
        return f, df

    def f_exact(v: np.ndarray) -> np.ndarray:
        return 0.5 * v * (1 + _erf(v / _SQRT_2))  # x * Phi(x)

    def df_exact(v: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 0.5 * (1 + _erf(v / _SQRT_2)) + v * _INV_SQRT_2PI * np.exp(-0.5 * v * v)
    return f_exact, df_exact


def _leaky_relu_rule(negative_slope: float) -> tuple[Callable, Callable]:
    a = float(negative_slope)
    return (lambda v: np.where(v > 0, v, a * v),
            lambda v, y: np.where(v > 0, 1.0, a).astype(v.dtype))


def _celu_rule(alpha: float) -> tuple[Callable, Callable]:
    a = float(alpha)
    return (lambda v: np.maximum(v, 0) + a * np.expm1(np.minimum(v, 0) / a),
            lambda v, y: np.where(v > 0, 1, np.exp(np.minimum(v, 0) / a)).astype(v.dtype))


def _shrink_rules(threshold: float) -> tuple[tuple[Callable, Callable], tuple[Callable, Callable]]:
    t = float(threshold)

    def outside(v: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.abs(v) > t).astype(v.dtype)
    hard = (lambda v: np.where(np.abs(v) > t, v, 0), outside)
    soft = (lambda v: np.where(v > t, v - t, np.where(v < -t, v + t, 0)), outside)
    return hard, soft


def _squareplus_rule(b: float) -> tuple[Callable, Callable]:
    b = float(b)
    return (lambda v: 0.5 * (v + np.sqrt(v * v + b)),
            lambda v, y: 0.5 * (1 + v / np.sqrt(v * v + b)))


def _threshold_rule(threshold: float, default_value: float) -> tuple[Callable, Callable]:
    t, d = float(threshold), float(default_value)
    return (lambda v: np.where(v > t, v, d).astype(v.dtype),
            lambda v, y: (v > t).astype(v.dtype))


def _mish_df(v: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = np.tanh(np.logaddexp(0, v).astype(v.dtype, copy=False))
    return t + v * (1 - t * t) * _sigmoid(v)


def _hard_silu_df(v: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(v >= 3, 1, np.where(v <= -3, 0, (2 * v + 3) / 6)).astype(v.dtype)


_RULES: dict[str, tuple[Callable, Callable]] = {
    "gelu": _gelu_rule(False),  # keras.activations.gelu's default (keras.ops.gelu: tanh form)
    "leaky_relu": _leaky_relu_rule(0.2),
    "celu": _celu_rule(1.0),
    "relu6": (lambda v: np.clip(v, 0, 6), lambda v, y: ((v > 0) & (v < 6)).astype(v.dtype)),
    "hard_sigmoid": (lambda v: np.clip(v / 6 + 0.5, 0, 1),
                     lambda v, y: (((v > -3) & (v < 3)) / 6).astype(v.dtype)),
    "hard_silu": (lambda v: v * np.clip(v / 6 + 0.5, 0, 1), _hard_silu_df),
    "hard_tanh": (lambda v: np.clip(v, -1, 1), lambda v, y: (np.abs(v) < 1).astype(v.dtype)),
    "hard_shrink": _shrink_rules(0.5)[0],
    "soft_shrink": _shrink_rules(0.5)[1],
    "tanh_shrink": (lambda v: v - np.tanh(v), lambda v, y: np.tanh(v) ** 2),
    "log_sigmoid": (lambda v: -np.logaddexp(0, -v).astype(v.dtype, copy=False),
                    lambda v, y: _sigmoid(-v)),
    "mish": (lambda v: v * np.tanh(np.logaddexp(0, v).astype(v.dtype, copy=False)), _mish_df),
    "sparse_plus": (lambda v: np.where(v <= -1, 0, np.where(v < 1, 0.25 * (v + 1) ** 2, v)),
                    lambda v, y: np.clip(0.5 * (v + 1), 0, 1)),
    "sparse_sigmoid": (lambda v: np.clip(0.5 * (v + 1), 0, 1),
                       lambda v, y: (0.5 * (np.abs(v) < 1)).astype(v.dtype)),
    "squareplus": _squareplus_rule(4.0),
}


@_op
def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit, ``x * Phi(x)`` (``Phi`` the standard normal's CDF), or with
    ``approximate`` its tanh form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    return _unary(x, *_gelu_rule(bool(approximate)))


@_op
def erf(x: Any) -> Any:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``."""
    return _unary(x, _erf, lambda v, y: (2 * _INV_SQRT_2PI * _SQRT_2) * np.exp(-v * v))


@_op
def celu(x: Any, alpha: float = 1.0) -> Any:
    """Continuously differentiable ELU: ``max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)``."""
    return _unary(x, *_celu_rule(alpha))


@_op
def relu6(x: Any) -> Any:
    """``min(max(x, 0), 6)``."""
    return _unary(x, *_RULES["relu6"])


@_op
def hard_silu(x: Any) -> Any:
    """``x * hard_sigmoid(x)``: 0 below -3, `x` above 3, ``x (x + 3) / 6`` between."""
    return _unary(x, *_RULES["hard_silu"])


hard_swish = hard_silu


@_op
def hard_tanh(x: Any) -> Any:
    """`x` limited to [-1, 1]."""
    return _unary(x, *_RULES["hard_tanh"])


@_op
def hard_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x` where ``|x| > threshold``, else 0."""
    return _unary(x, *_shrink_rules(threshold)[0])


@_op
def soft_shrink(x: Any, threshold: float = 0.5) -> Any:
    """`x` moved towards 0 by `threshold` (0 where ``|x| <= threshold``)."""
    return _unary(x, *_shrink_rules(threshold)[1])


@_op
def tanh_shrink(x: Any) -> Any:
    """``x - tanh(x)``."""
    return _unary(x, *_RULES["tanh_shrink"])


@_op
def mish(x: Any) -> Any:
    """``x * tanh(softplus(x))`` (Misra 2019): keras.activations' (not a keras.ops name, so
    not exported; ``fastrnn.activations.mish`` calls it)."""
    return _unary(x, *_RULES["mish"])


@_op
def sparse_plus(x: Any) -> Any:
    """0 for ``x <= -1``, ``(x + 1)^2 / 4`` for ``-1 < x < 1``, `x` for ``x >= 1``."""
    return _unary(x, *_RULES["sparse_plus"])


@_op
def sparse_sigmoid(x: Any) -> Any:
    """0 for ``x <= -1``, ``(x + 1) / 2`` for ``-1 < x < 1``, 1 for ``x >= 1``."""
    return _unary(x, *_RULES["sparse_sigmoid"])


@_op
def squareplus(x: Any, b: float = 4) -> Any:
    """``(x + sqrt(x^2 + b)) / 2``, a smooth ReLU."""
    return _unary(x, *_squareplus_rule(b))


@_op
def threshold(x: Any, threshold: float, default_value: float) -> Any:
    """`x` where ``x > threshold``, else `default_value`."""
    return _unary(x, *_threshold_rule(threshold, default_value))


def _glu(v: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if v.ndim == 0 or v.shape[axis] % 2:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={v.shape} with "
                         f"axis={axis}")
    a, b = np.split(v, 2, axis=axis)
    return a, b, _sigmoid(b)


@_op
def glu(x: Any, axis: int = -1) -> Any:
    """Gated linear unit: `x` split in two halves ``a, b`` along `axis` (of even size), then
    ``a * sigmoid(b)`` (half the size along `axis`)."""
    x = _arr(x)
    v = np.asarray(_val(x))
    a, b, s = _glu(v, axis)
    y = a * s
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (np.concatenate([g * s, g * a * s * (1 - s)], axis=axis),))


def _sparsemax(v: np.ndarray, axis: int) -> np.ndarray:
    z = np.moveaxis(v, axis, -1)
    ranked = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cumulative = np.cumsum(ranked, axis=-1)
    support = 1 + k * ranked > cumulative  # the entries kept (a prefix of the sorted ones)
    size = support.sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumulative, size - 1, axis=-1) - 1) / size
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis).astype(v.dtype, copy=False)


def _sparsemax_vjp(g: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    kept = y > 0
    mean = (g * kept).sum(axis=axis, keepdims=True) / kept.sum(axis=axis, keepdims=True)
    return kept * (g - mean)


@_op
def sparsemax(x: Any, axis: int = -1) -> Any:
    """The Euclidean projection of `x` onto the probability simplex along `axis` (Martins &
    Astudillo 2016): like softmax, but with exact zeros."""
    x = _arr(x)
    v = np.asarray(_val(x))
    y = _sparsemax(v, axis)
    if not isinstance(x, Traced):
        return y
    return Traced(y, (x,), lambda g: (_sparsemax_vjp(g, y, axis),))


# ----------------------------------------------------------------------------- no gradient
def _constant(f: Callable) -> Callable:
    """An op whose output carries no gradient (comparisons, logical ops, *_like)."""
    def op(*args: Any, **kwargs: Any) -> Any:
        return f(*(_val(_arr(a)) for a in args), **kwargs)
    op.__name__ = f.__name__
    op.__doc__ = f.__doc__
    return _op(op)


def _named_constant(name: str, f: Callable, doc: str) -> Callable:
    def fn(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = doc
    return _constant(fn)


greater = _named_constant("greater", np.greater, "``x1 > x2`` (bool, no gradient).")
greater_equal = _named_constant("greater_equal", np.greater_equal, "``x1 >= x2``.")
less = _named_constant("less", np.less, "``x1 < x2``.")
less_equal = _named_constant("less_equal", np.less_equal, "``x1 <= x2``.")
equal = _named_constant("equal", np.equal, "``x1 == x2``.")
not_equal = _named_constant("not_equal", np.not_equal, "``x1 != x2``.")
logical_and = _named_constant("logical_and", np.logical_and, "Elementwise and.")
logical_or = _named_constant("logical_or", np.logical_or, "Elementwise or.")
logical_not = _named_constant("logical_not", np.logical_not, "Elementwise not.")
zeros_like = _named_constant("zeros_like", np.zeros_like, "Zeros shaped like `x`.")
sign = _named_constant("sign", np.sign, "The sign of `x` (-1, 0 or 1; no gradient).")
floor = _named_constant("floor", np.floor, "``floor(x)`` (no gradient).")
round = _named_constant("round", np.round, "`x` rounded to the nearest integer (no gradient).")  # noqa: A001


def zeros(shape: Any, dtype: Any = "float32") -> np.ndarray:
    """A constant array of zeros."""
    return np.zeros(shape, dtype=dtype)


def ones(shape: Any, dtype: Any = "float32") -> np.ndarray:
    """A constant array of ones."""
    return np.ones(shape, dtype=dtype)


def full(shape: Any, fill_value: Any, dtype: Any = "float32") -> np.ndarray:
    """A constant array filled with `fill_value`."""
    return np.full(shape, fill_value, dtype=dtype)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> np.ndarray:
    """Evenly spaced values (NumPy's ``arange``), a constant."""
    return np.arange(start, stop, step, dtype=dtype) if stop is not None else np.arange(
        start, dtype=dtype)


def eye(n: int, m: Any = None, k: int = 0, dtype: Any = "float32") -> np.ndarray:
    """A constant identity-like matrix."""
    return np.eye(n, m, k, dtype=dtype)
ones_like = _named_constant("ones_like", np.ones_like, "Ones shaped like `x`.")


# ----------------------------------------------------------------------------- activations by name
ACTIVATIONS: dict[str, Callable] = {
    "linear": linear, "relu": relu, "tanh": tanh, "sigmoid": sigmoid, "softmax": softmax,
    "elu": elu, "selu": selu, "softplus": softplus, "softsign": softsign, "swish": silu,
    "silu": silu, "exponential": exponential, "gelu": functools.partial(gelu, approximate=False),
    "leaky_relu": leaky_relu, "celu": celu, "relu6": relu6, "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu, "hard_swish": hard_silu, "hard_tanh": hard_tanh,
    "hard_shrink": hard_shrink, "soft_shrink": soft_shrink, "tanh_shrink": tanh_shrink,
    "log_sigmoid": log_sigmoid, "log_softmax": log_softmax, "mish": mish,
    "sparse_plus": sparse_plus, "sparse_sigmoid": sparse_sigmoid, "squareplus": squareplus,
    "sparsemax": sparsemax,
}


def _elementwise_vjp(df: Callable) -> Callable:
    return lambda z, y, dy: dy * df(z, y)


# The activations the layers take by name beyond their own table, as ``(forward(z) -> y,
# backward(z, y, dy) -> dz)`` with Keras's default arguments (gelu: exact, as
# keras.activations.gelu). softmax-like ones act on the last axis.
ACTIVATION_RULES: dict[str, tuple[Callable, Callable]] = {
    **{name: (f, _elementwise_vjp(df)) for name, (f, df) in _RULES.items()},
    "log_softmax": (lambda z: log_softmax(z),
                    lambda z, y, dy: dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)),
    "sparsemax": (lambda z: _sparsemax(z, -1), lambda z, y, dy: _sparsemax_vjp(dy, y, -1)),
}


# NumPy ufuncs run as these ops on traced values and weights (their names, NumPy's spelling)
UFUNCS = frozenset({
    "add", "subtract", "multiply", "divide", "power", "matmul", "negative", "linear", "abs",
    "exp", "expm1", "log", "log1p", "sqrt", "square", "sin", "cos", "tanh", "maximum",
    "minimum", "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not",
})


# ----------------------------------------------------------------------------- operators
def _reverse(f: Callable) -> Callable:
    return lambda self, other: f(other, self)


OPERATORS: dict[str, Callable] = {
    "__add__": add, "__radd__": _reverse(add),
    "__sub__": subtract, "__rsub__": _reverse(subtract),
    "__mul__": multiply, "__rmul__": _reverse(multiply),
    "__truediv__": divide, "__rtruediv__": _reverse(divide),
    "__pow__": power, "__rpow__": _reverse(power),
    "__matmul__": matmul, "__rmatmul__": _reverse(matmul),
    "__neg__": negative, "__pos__": lambda self: self, "__abs__": abs_,
    "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
    "__getitem__": lambda self, index: (
        _symbolic_getitem(self, index) if isinstance(self, tuple(SYMBOLIC_TYPES))
        else getitem(self, index)),
}


def _symbolic_getitem(x: Any, index: Any) -> Any:
    from .layers.traced import apply_symbolic
    return apply_symbolic("getitem", (x, index), {})


def install_operators(cls: type) -> None:
    """Gives `cls` the arithmetic, comparison and indexing operators of the math."""
    for name, f in OPERATORS.items():
        setattr(cls, name, f)


install_operators(Traced)
install_operators(Variable)
