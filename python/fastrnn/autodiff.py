"""Reverse-mode automatic differentiation over NumPy arrays: a small tape of our own.

What it is for: the ``call`` of a user's layer or cell, written with :mod:`fastrnn.math`
(re-exported as ``fastrnn.ops``), gets its gradient without the user writing ``backward``.

* :class:`Traced` wraps one ``ndarray`` computed inside a :class:`Trace`, with the node that made
  it: its parents and one vector-Jacobian product (``vjp(g) -> one gradient per parent``).
  Nodes are numbered as they are made, so a reverse pass in decreasing number visits every
  node after all its consumers (no topological sort needed).
* :class:`Variable` is what ``Layer.add_weight`` returns (Keras's ``KerasVariable``): a handle on
  one of the layer's weights whose ``value`` is the live array (a view into the model's flat
  buffer once the model is built). Inside a trace, the first use of a variable makes it a leaf
  of the trace; outside one it is a constant array.
* :func:`backward` runs the reverse pass from some outputs and returns the gradients of the
  leaves asked for.

Why our own tape and not HIPS ``autograd`` (1.9, the NumPy-based reverse mode the issue names):
autograd traces through its own ``autograd.numpy`` wrapper of NumPy, so every op would go through
two dispatch layers; its boxes cannot carry our weights' storage (views into the model's flat
buffer) as leaves; a built-in fastrnn layer called inside a custom one (a fused ``LSTM``, a
``LayerNormalization``) must enter the graph as one node with its own fused backward, which
autograd supports only through ``primitive``/``defvjp`` wrappers made per layer instance; and it
would be a new required dependency for about 600 lines of code here. A tape of our own records
exactly the ops of :mod:`fastrnn.math` (each with a hand-written, finite-difference-tested vjp),
and reports a NumPy function it cannot differentiate by name at trace time.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["NoGradientError", "Trace", "Traced", "Variable", "backward", "is_traced",
           "value_of"]

# Classes whose instances are symbolic (SymbolicTensor registers itself here on import), so
# that the math can dispatch on them without importing the layers package.
SYMBOLIC_TYPES: list = []

_counter = itertools.count()
_state = threading.local()


class NoGradientError(TypeError):
    """A traced value went through an operation fastrnn cannot differentiate."""


def _no_gradient(what: str) -> NoGradientError:
    return NoGradientError(
        f"`{what}` was called on a traced tensor (inside a layer's `call`), and fastrnn cannot "
        f"differentiate it: use the fastrnn.ops function of the same name (fastrnn.ops is "
        f"Keras's keras.ops), which records its gradient."
    )


class Traced:
    """A value inside a trace: ``value`` (an ndarray) plus the node that computed it."""

    __slots__ = ("_id", "parents", "value", "vjp")
    __array_priority__ = 1000.0

    def __init__(self, value: np.ndarray, parents: tuple = (), vjp: Optional[Callable] = None):
        self.value = value
        self.parents = parents  # tuple of Traced (or None for a constant argument)
        self.vjp = vjp
        self._id = next(_counter)

    # --- array-like attributes (Keras tensors have them)
    @property
    def shape(self) -> tuple:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def size(self) -> int:
        return self.value.size

    @property
    def T(self) -> Any:  # noqa: N802 (NumPy's name)
        from . import math
        return math.transpose(self)

    def numpy(self) -> np.ndarray:
        return np.array(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __bool__(self) -> bool:  # eager: the branch taken is the one differentiated
        return bool(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __index__(self) -> int:
        return int(self.value)

    def __repr__(self) -> str:
        return f"<Traced shape={self.value.shape} dtype={self.value.dtype}>"

    # --- NumPy's ufuncs that fastrnn.math has run as its ops (so ``ndarray * traced`` and
    # ``np.tanh(traced)`` record their gradients); any other NumPy function is refused by name
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise _no_gradient(f"numpy.{func.__name__}")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise _no_gradient("numpy.asarray")


class Variable:
    """A layer weight (what ``add_weight`` returns): ``value`` is the live array.

    It behaves as an array in NumPy code and in :mod:`fastrnn.math`; inside a trace it is a leaf
    whose gradient goes to the layer's gradient buffer. ``assign(v)`` writes in place.
    """

    __array_priority__ = 1000.0

    def __init__(self, layer: Any, index: int, name: str, trainable: bool = True):
        self._layer = layer
        self._index = index
        self.name = name
        self.trainable = trainable

    @property
    def value(self) -> np.ndarray:
        return self._layer._weights[self._index]

    @property
    def path(self) -> str:
        return f"{self._layer.name}/{self.name}"

    @property
    def shape(self) -> tuple:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        return np.array(self.value)

    def assign(self, value: Any) -> None:
        self.value[...] = np.asarray(value_of(value), dtype=self.value.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if current_trace() is not None:
            raise _no_gradient("numpy.asarray")
        v = self.value
        return v if dtype is None else v.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if current_trace() is None and _ufunc_op(ufunc, method, kwargs) is None:
            plain = [value_of(v) for v in inputs]
            return getattr(ufunc, method)(*plain, **kwargs)
        return _ufunc(ufunc, method, inputs, kwargs)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"<Variable path={self.path!r} shape={self.shape} dtype={self.dtype}>"


def _ufunc_op(ufunc: Any, method: str, kwargs: dict) -> Any:
    if method != "__call__" or kwargs:
        return None
    from . import math
    name = {"true_divide": "divide", "absolute": "abs", "positive": "linear"}.get(
        ufunc.__name__, ufunc.__name__)
    return math.OPS.get(name) if name in math.UFUNCS else None


def _ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    op = _ufunc_op(ufunc, method, kwargs)
    if op is None:
        raise _no_gradient(f"numpy.{ufunc.__name__}" + ("" if method == "__call__"
                                                        else f".{method}"))
    return op(*inputs)


class Trace:
    """Records the ops run inside it (``with Trace() as t:``): variables met become leaves.

    ``leaf(array)`` makes an input leaf. After the forward, :func:`backward` with the trace's
    outputs gives the leaves' gradients. Built-in layers called on traced values inside it add
    their weight gradients to ``layer_grads`` during the reverse pass.
    """

    def __init__(self) -> None:
        self.var_leaves: dict = {}  # id(Variable) -> (Variable, leaf)
        self.layer_grads: dict = {}  # id(layer) -> (layer, [accumulated weight gradients])
        self._outer: Optional[Trace] = None

    def __enter__(self) -> Trace:
        self._outer = getattr(_state, "trace", None)
        _state.trace = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.trace = self._outer

    @staticmethod
    def leaf(value: np.ndarray) -> Traced:
        return Traced(value)

    def variable_leaf(self, var: Variable) -> Traced:
        entry = self.var_leaves.get(id(var))
        if entry is None:
            entry = self.var_leaves[id(var)] = (var, Traced(var.value))
        return entry[1]

    def add_layer_grads(self, layer: Any, grads: list) -> None:
        entry = self.layer_grads.get(id(layer))
        if entry is None:
            self.layer_grads[id(layer)] = (layer, [np.array(g) for g in grads])
        else:
            for acc, g in zip(entry[1], grads):
                acc += g


def current_trace() -> Optional[Trace]:
    return getattr(_state, "trace", None)


def is_traced(x: Any) -> bool:
    return isinstance(x, (Traced, Variable))


def value_of(x: Any) -> Any:
    """The array behind a Traced or Variable (anything else unchanged)."""
    if isinstance(x, Traced):
        return x.value
    if isinstance(x, Variable):
        return x.value
    return x


def lift(x: Any) -> Any:
    """A Variable as the current trace's leaf (or its array outside a trace); else `x`."""
    if isinstance(x, Variable):
        trace = current_trace()
        return x.value if trace is None else trace.variable_leaf(x)
    return x


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums `g` over the axes NumPy broadcasting added or stretched to reach `shape`."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and g.shape[k] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def record(value: np.ndarray, parents: Sequence[Any], vjp: Callable) -> Any:
    """`value` as a Traced node when a parent is traced, else the plain array."""
    ps = tuple(p if isinstance(p, Traced) else None for p in parents)
    if all(p is None for p in ps):
        return value
    return Traced(value, ps, vjp)


def backward(outputs: Sequence[Any], d_outputs: Sequence[Any], wrt: Sequence[Traced]) -> list:
    """Gradients of ``sum(<output, d_output>)`` with respect to each of `wrt` (None where none
    flows). `outputs` may hold untraced values (skipped), `d_outputs` None entries."""
    grads: dict = {}
    nodes: dict = {}
    stack = []
    for out, d in zip(outputs, d_outputs):
        if isinstance(out, Traced) and d is not None:
            d = np.asarray(d, dtype=out.value.dtype)
            if d.shape != out.value.shape:
                d = np.broadcast_to(d, out.value.shape)
            grads[out._id] = d if out._id not in grads else grads[out._id] + d
            stack.append(out)
    if not stack:
        return [None] * len(wrt)
    while stack:  # every node reachable from the outputs
        node = stack.pop()
        if node._id in nodes:
            continue
        nodes[node._id] = node
        stack.extend(p for p in node.parents if p is not None and p._id not in nodes)
    wanted = {t._id for t in wrt}
    for key in sorted(nodes, reverse=True):
        node = nodes[key]
        if node.vjp is None:
            continue
        g = grads.get(key)
        if g is None:
            continue
        if key not in wanted:
            del grads[key]  # let intermediate gradients go as soon as they are used
        parent_grads = node.vjp(g)
        for p, pg in zip(node.parents, parent_grads):
            if p is None or pg is None:
                continue
            if isinstance(p.value, list):  # one output of a node with several
                prev = grads.get(p._id)
                grads[p._id] = pg if prev is None else [
                    b if a is None else a if b is None else a + b for a, b in zip(prev, pg)]
                continue
            pg = _unbroadcast(np.asarray(pg), p.value.shape)
            if pg.dtype != p.value.dtype:
                pg = pg.astype(p.value.dtype)
            prev = grads.get(p._id)
            grads[p._id] = pg if prev is None else prev + pg
    return [grads.get(t._id) for t in wrt]
