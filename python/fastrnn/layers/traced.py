"""Layers written Keras's way: ``call`` in :mod:`fastrnn.ops` math, gradients from the tape.

A subclass of :class:`fastrnn.layers.Layer` that defines ``call`` (and not ``forward``) is
*Keras-style*. For it:

* ``build(input_shape)`` and ``compute_output_shape(input_shape)`` see the batch axis (None);
  without a ``build`` of its own a layer is built by calling ``call`` once on zeros, which
  builds the layers it holds; the output shape is inferred the same way (an axis that follows
  a free input axis stays free).
* Layers assigned as attributes (alone, or in lists, tuples or dicts) are tracked: their
  weights are the layer's own, after its own ``add_weight`` ones (Keras's order).
* ``forward(x, training=True)`` runs ``call`` on traced leaves (:mod:`fastrnn.autodiff`) and
  ``backward(d_out)`` runs the tape in reverse: the gradients of the weights used (its own, its
  sublayers') go to their places in the model's flat gradient buffer. Built-in layers called
  inside ``call`` enter the tape as one node each, with their fused backward.
* ``forward`` without training calls ``call`` on plain arrays (nothing recorded).
* A class that also defines ``backward(d_out)`` runs ``call`` on plain arrays and its own
  backward, which returns the input gradient, or ``(input_gradient, [weight gradients])`` in
  the order of ``weights``.
* ``get_config``: without one of its own, the layer's ``__init__`` arguments (when they are
  JSON values), as Keras 3 does.

:class:`TracedOp` is what an op of :mod:`fastrnn.ops` becomes when called on a symbolic tensor
(a node of a functional model); :class:`Lambda` wraps a function of such ops.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Optional

import numpy as np

from .. import autodiff
from ..autodiff import Trace, Traced, Variable, current_trace
from . import symbolic
from .base import Layer, _unique_name, register

__all__ = ["Lambda", "TracedOp"]

_context = threading.local()


# ----------------------------------------------------------------------------- classes
def prepare_class(cls: type) -> None:
    """Gives a Keras-style class sublayer tracking and Keras 3's automatic config."""
    if "__setattr__" not in vars(cls) and not any(
            getattr(c, "_fastrnn_tracking", False) for c in cls.__mro__[1:]):
        cls.__setattr__ = _tracking_setattr
        cls._fastrnn_tracking = True
    if "__new__" not in vars(cls):
        cls.__new__ = _recording_new
    if "backward" in vars(cls) and not getattr(cls.backward, "_fastrnn_wrapped", False):
        cls.backward = _manual_backward(cls.backward)


def _manual_backward(user_backward: Callable) -> Callable:
    """A hand-written ``backward`` may return ``(d_inputs, [weight gradients])``: the
    gradients go to the layer's buffers (zeros when frozen), ``d_inputs`` to the model."""
    def backward(self: Layer, d_out: Any) -> Any:
        result = user_backward(self, d_out)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], list):
            d_in, grads = result
            mine = self._grads
            if len(grads) != len(mine):
                raise ValueError(
                    f"Layer `{self.name}`: backward returned {len(grads)} weight gradients, "
                    f"the layer has {len(mine)} weights ({', '.join(self._weight_names)}).")
            for name, g, v in zip(self._weight_names, mine, grads):
                v = np.asarray(v, dtype=g.dtype)
                if v.shape != g.shape:
                    raise ValueError(f"Layer `{self.name}`: the gradient of `{name}` has shape "
                                     f"{v.shape}, the weight {g.shape}.")
                g[...] = v if self.trainable else 0
            return d_in
        return result
    backward._fastrnn_wrapped = True  # type: ignore[attr-defined]
    backward.__doc__ = user_backward.__doc__
    return backward


def _layers_in(value: Any) -> list:
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _layers_in(item)]
    if isinstance(value, dict):
        return [v for item in value.values() for v in _layers_in(item)]
    return []


_UNTRACKED = frozenset({"_tracked_layers", "_inbound_nodes", "_fused", "_trace_state",
                        "_shape_cache", "_build_dtype", "_building", "_auto_config",
                        "_weights", "_grads", "_weight_names", "_variables", "built",
                        "input_shape", "output_shape", "_rng"})


def _tracking_setattr(self: Any, name: str, value: Any) -> None:
    # A layer tracks every attribute holding layers (``self._proj = Dense(..)`` too); a model
    # only its public ones (its own machinery keeps lists of layers in private attributes).
    is_model = callable(getattr(type(self), "_unique_layers", None))
    if name not in _UNTRACKED and not (is_model and name.startswith("_")):
        found = _layers_in(value)
        if found:
            tracked = self.__dict__.setdefault("_tracked_layers", [])
            previous = self.__dict__.get(name)
            for old in _layers_in(previous) if previous is not None else []:
                if old in tracked and old not in found:
                    tracked.remove(old)
            for layer in found:
                if layer is not self and not any(layer is t for t in tracked):
                    tracked.append(layer)
    object.__setattr__(self, name, value)


_JSON_TYPES = (str, int, float, bool, type(None))


def _json_value(value: Any) -> tuple[bool, Any]:
    """``(ok, value)``: `value` as JSON (fastrnn activations by name), or ok False."""
    if isinstance(value, _JSON_TYPES):
        return True, value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return True, value.item()
    name = getattr(value, "_fastrnn_name", None)
    if isinstance(name, str):
        return True, name
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_value(v) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    return False, None


def _recording_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    obj = object.__new__(cls)
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return obj
    config = {}
    params = inspect.signature(cls.__init__).parameters
    for key, value in list(bound.arguments.items())[1:]:
        if params[key].kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        elif params[key].kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return obj
        else:
            config[key] = value
    ok, value = _json_value(config)
    if ok:
        obj.__dict__["_auto_config"] = value
    return obj


def auto_config(layer: Layer, base: dict) -> dict:
    """A Keras-style layer's config: its recorded ``__init__`` arguments and the base ones."""
    recorded = layer.__dict__.get("_auto_config")
    if recorded is None:
        raise NotImplementedError(
            f"Layer `{layer.name}` ({type(layer).__name__}) cannot be saved: its __init__ "
            "arguments are not all JSON values (numbers, strings, lists, dicts), so define "
            "get_config() returning what __init__ needs (and from_config if it is not "
            "cls(**config)).")
    config = dict(recorded)
    for key in ("name", "trainable", "dtype", "seed"):
        config[key] = base[key]
    return config


# ----------------------------------------------------------------------------- signatures
_SIGNATURES: dict = {}


def _call_params(cls: type) -> tuple[bool, bool, bool]:
    """``(takes training, takes mask, takes **kwargs)`` of ``cls.call``."""
    found = _SIGNATURES.get(cls)
    if found is None:
        params = inspect.signature(cls.call).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        found = _SIGNATURES[cls] = ("training" in params or var_kw, "mask" in params or var_kw,
                                    var_kw)
    return found


def _training_default() -> bool:
    return bool(getattr(_context, "training", False))


class _training_scope:
    def __init__(self, training: bool):
        self.training = training

    def __enter__(self) -> None:
        self.before = getattr(_context, "training", False)
        _context.training = self.training

    def __exit__(self, *exc: Any) -> None:
        _context.training = self.before


def _call_kwargs(layer: Layer, training: Any, mask: Any, extra: dict) -> dict:
    takes_training, takes_mask, _ = _call_params(type(layer))
    kwargs = dict(extra)
    if takes_training and "training" not in kwargs:
        kwargs["training"] = bool(training)
    if takes_mask and mask is not None:
        kwargs["mask"] = mask
    return kwargs


# ----------------------------------------------------------------------------- structures
def _flatten(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flatten(item)]
    return [value]


def _values(value: Any) -> Any:
    if isinstance(value, (Traced, Variable)):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_values(v) for v in value]
    return value


def _shapes(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_shapes(v) for v in value]
    return tuple(np.shape(value)[1:])


def _with_batch(shape: Any) -> Any:
    if isinstance(shape, list):
        return [_with_batch(s) for s in shape]
    return (None, *shape)


def _without_batch(shape: Any) -> Any:
    if isinstance(shape, list):
        return [_without_batch(s) for s in shape]
    shape = tuple(shape)
    return shape[1:]


def _is_shape_list(shape: Any) -> bool:
    return isinstance(shape, list) and all(isinstance(s, (list, tuple)) for s in shape)


def sublayers_of(layer: Any) -> list:
    """`layer` and every layer inside it (tracked, wrapped, nested in a model)."""
    out, stack = [], [layer]
    while stack:
        current = stack.pop()
        if any(current is o for o in out):
            continue
        out.append(current)
        stack.extend(current.__dict__.get("_tracked_layers", ()))
        stack.extend(current.__dict__.get("_sublayers", ()) or ())
        for attr in ("layer", "forward_layer", "backward_layer", "cell"):
            sub = current.__dict__.get(attr)
            if isinstance(sub, Layer):
                stack.append(sub)
        inner = getattr(current, "_unique_layers", None)
        if callable(inner) and getattr(current, "built", False):
            stack.extend(inner())
    return out


# ----------------------------------------------------------------------------- building
def _seed_sublayers(layer: Layer) -> None:
    """Each unbuilt tracked layer draws its initial weights from a stream of its parent's."""
    for sub in layer.__dict__.get("_tracked_layers", ()):
        if not sub.built and sub.seed is None:
            sub.rng = np.random.default_rng(layer.rng.integers(2**63))


def _dummy(shape: tuple, dtype: Any, fill: int) -> np.ndarray:
    return np.zeros((2, *(fill if d is None else d for d in shape)), dtype=dtype)


def _dummies(shape: Any, dtype: Any, fill: int) -> Any:
    if _is_shape_list(shape):
        dts = dtype if isinstance(dtype, list) else [dtype] * len(shape)
        return [_dummy(tuple(s), dt, fill) for s, dt in zip(shape, dts)]
    return _dummy(tuple(shape), dtype, fill)


def _cell_states(layer: Layer, x: Any) -> Optional[list]:
    """Zero states for a cell (a layer with ``state_size``), else None."""
    size = getattr(layer, "state_size", None)
    if size is None or isinstance(x, list):
        return None

    def zeros(s: Any) -> Any:
        if isinstance(s, (list, tuple)):
            return [zeros(v) for v in s]
        return np.zeros((x.shape[0], int(s)), dtype=x.dtype if x.dtype.kind == "f"
                        else layer.dtype)
    return zeros(size) if isinstance(size, (list, tuple)) else [zeros(size)]


def _plain_call(layer: Layer, x: Any, training: bool = False, traced: bool = False) -> Any:
    """``call`` on `x`; `traced`: on trace leaves, so that an operation without a gradient
    is reported now (when the layer is built) rather than at the first training batch."""
    if traced:
        with Trace():
            return _plain_call(layer, _leaves(x, []), training)
    with _training_scope(training), np.errstate(all="ignore"):
        states = _cell_states(layer, _values(x))
        kwargs = _call_kwargs(layer, training, None, {})
        if states is not None:  # a cell: its output, not its states
            out = layer.call(x, states, **kwargs)
            if not isinstance(out, (list, tuple)) or len(out) != 2:
                raise ValueError(
                    f"Cell `{layer.name}`: call(inputs, states) must return (output, "
                    f"new_states), got {type(out).__name__}.")
            return _values(out[0])
        return _values(layer.call(x, **kwargs))


def _infer(layer: Layer, shape: Any, dtype: Any) -> Any:
    """Output shape(s) without the batch axis, by calling ``call`` on zeros; an output axis
    that changes with the free input axes is free (None)."""
    def shapes_of(out: Any) -> Any:
        if isinstance(out, (list, tuple)):
            return [tuple(np.shape(o)[1:]) for o in out]
        return tuple(np.shape(out)[1:])

    manual = type(layer).backward is not Layer.backward  # its own backward: plain arrays
    first = shapes_of(_plain_call(layer, _dummies(shape, dtype, 3), traced=not manual))
    free = any(d is None for s in (shape if _is_shape_list(shape) else [shape]) for d in s)
    if not free:
        return first
    second = shapes_of(_plain_call(layer, _dummies(shape, dtype, 4)))

    def merge(a: tuple, b: tuple) -> tuple:
        return tuple(x if x == y else None for x, y in zip(a, b))
    if isinstance(first, list):
        return [merge(a, b) for a, b in zip(first, second)]
    return merge(first, second)


def build_keras_style(layer: Layer, shape: Any, dtype: Any = None) -> None:
    """Builds a Keras-style layer for inputs `shape` (without the batch axis)."""
    shape = [tuple(s) for s in shape] if _is_shape_list(shape) else tuple(shape)
    dtype = dtype or layer.dtype
    layer.__dict__["_building"] = True
    try:
        _seed_sublayers(layer)
        if type(layer).build is not Layer.build:
            layer.build(_with_batch(shape))
        layer.__dict__["_building"] = False
        layer.built = True
        layer.input_shape = shape
        layer._build_dtype = dtype
        _seed_sublayers(layer)
        if layer.__dict__.get("_declared_output_shape") is not None:
            out = layer._declared_output_shape
        elif type(layer).compute_output_shape is Layer.compute_output_shape:
            out = _infer(layer, shape, dtype)
            layer._shape_cache = {_key(shape): out}
        else:
            out = _without_batch(layer.compute_output_shape(_with_batch(shape)))
        layer.output_shape = out
        layer._output_dtypes = None
    except BaseException:
        layer.built = False
        raise
    finally:
        layer.__dict__["_building"] = False


def _key(shape: Any) -> Any:
    if isinstance(shape, list):
        return tuple(_key(s) for s in shape)
    return tuple(shape)


def output_shape_without_batch(layer: Layer, shape: Any) -> Any:
    declared = layer.__dict__.get("_declared_output_shape")
    if declared is not None:  # Lambda(output_shape=...)
        return declared
    if type(layer).compute_output_shape is not Layer.compute_output_shape:
        out = layer.compute_output_shape(_with_batch(shape))
        if isinstance(out, list):
            return [tuple(s)[1:] for s in out]
        return tuple(out)[1:]
    if not layer.built:
        layer._build_for(shape)
    cache = layer.__dict__.setdefault("_shape_cache", {})
    k = _key(shape)
    if k not in cache:
        cache[k] = _infer(layer, shape, getattr(layer, "_build_dtype", None) or layer.dtype)
    return cache[k]


def infer_output_shape(layer: Layer, input_shape: Any, with_batch: bool = True) -> Any:
    """``compute_output_shape`` of a Keras-style layer that has none: by tracing."""
    shape = _without_batch(input_shape) if with_batch else input_shape
    out = output_shape_without_batch(layer, shape)
    return _with_batch(out) if with_batch else out


# ----------------------------------------------------------------------------- running
def _as_inputs(layer: Layer, x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_as_inputs(layer, v) for v in x]
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        return x
    return layer._as_input(x)


def _leaves(x: Any, made: list) -> Any:
    if isinstance(x, list):
        return [_leaves(v, made) for v in x]
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        leaf = Trace.leaf(x)
        made.append(leaf)
        return leaf
    made.append(None)
    return x


def _check_output(layer: Layer, out: Any) -> None:
    for o in _flatten(out):
        if not isinstance(o, (Traced, Variable, np.ndarray, np.generic, int, float)):
            raise TypeError(
                f"Layer `{layer.name}`: `call` returned a {type(o).__name__}; it must return "
                "arrays (or a list/tuple of them) computed with fastrnn.ops.")


def forward(layer: Layer, x: Any, training: bool = False, mask: Any = None,
            **kwargs: Any) -> Any:
    """What ``Layer.forward`` runs for a Keras-style layer (see the module docstring)."""
    x = _as_inputs(layer, x)
    if not layer.built:
        layer._build_for(_shapes(x), dtype=None)
    kwargs = _call_kwargs(layer, training, mask, kwargs)
    manual = type(layer).backward is not Layer.backward
    if not training or manual:
        layer._trace_state = None
        with _training_scope(bool(training)):
            out = layer.call(x, **kwargs)
        _check_output(layer, out)
        return _values(out)
    made: list = []
    trace = Trace()
    trace.training = True
    with trace, _training_scope(True):
        leaves = _leaves(x, made)
        out = layer.call(leaves, **kwargs)
    _check_output(layer, out)
    layer._trace_state = (trace, made, out)
    return _values(out)


def _frozen_ids(layer: Layer) -> set:
    """ids of the layers whose weights get zero gradients (a frozen layer freezes its
    sublayers)."""
    frozen: set = set()

    def walk(current: Any, parent_frozen: bool) -> None:
        is_frozen = parent_frozen or not getattr(current, "trainable", True)
        if is_frozen:
            frozen.add(id(current))
        for sub in current.__dict__.get("_tracked_layers", ()):
            walk(sub, is_frozen)
    walk(layer, False)
    return frozen


def backward(layer: Layer, d_out: Any) -> Any:
    """What ``Layer.backward`` runs for a Keras-style layer: the tape in reverse."""
    state = layer.__dict__.get("_trace_state")
    if state is None:
        raise layer._no_tape()
    trace, made, out = state
    layer._trace_state = None
    outs = _flatten(out)
    if isinstance(out, (list, tuple)):
        ds = _flatten(d_out) if isinstance(d_out, (list, tuple)) else [d_out]
        if len(ds) != len(outs):
            raise ValueError(
                f"Layer `{layer.name}` returned {len(outs)} outputs; backward got "
                f"{len(ds)} gradients.")
    else:
        ds = [d_out]
    var_entries = list(trace.var_leaves.values())
    want_inputs = [leaf for leaf in made if leaf is not None] if layer.input_grad_needed else []
    grads = autodiff.backward(outs, ds, want_inputs + [leaf for _, leaf in var_entries])
    write_weight_grads(layer, trace, var_entries, grads[len(want_inputs):])
    if not layer.input_grad_needed:
        return None
    it = iter(grads[:len(want_inputs)])
    d_in = [None if leaf is None else next(it) for leaf in made]
    d_in = [None if d is None and leaf is None else
            (np.zeros_like(leaf.value) if d is None else d) for d, leaf in zip(d_in, made)]
    if len(made) == 1 and not _is_list_input(layer):
        return d_in[0]
    return d_in


def write_weight_grads(root: Layer, trace: Trace, var_entries: list, grads: list,
                       frozen: bool = False) -> None:
    """Writes a reverse pass's weight gradients into the gradient buffers of `root` and its
    layers: zeros everywhere first, then the gradients of the weights the pass used (none for
    a frozen layer, nor for the layers inside it). `frozen`: `root` sits in a frozen layer."""
    for sub in sublayers_of(root):
        for g in sub.__dict__.get("_grads", ()):
            g[...] = 0
    if frozen:
        return
    frozen_ids = _frozen_ids(root)
    for (var, _), g in zip(var_entries, grads):
        owner = var._layer
        if g is not None and var.trainable and id(owner) not in frozen_ids:
            owner._grads[var._index][...] = g
    for sub, acc in trace.layer_grads.values():
        if id(sub) not in frozen_ids:
            for buf, a in zip(sub.grads, acc):
                buf[...] = a


def _is_list_input(layer: Layer) -> bool:
    return isinstance(getattr(layer, "input_shape", None), list)


def eager_call(layer: Layer, x: Any, *args: Any, **kwargs: Any) -> Any:
    """``layer(x, ...)`` outside a model: a Keras-style layer runs its ``call`` (inside a trace
    on traced values, else on arrays); a built-in layer on traced values is one tape node."""
    training = kwargs.pop("training", None)
    if training is None:
        training = _training_default()
    traced = _any_traced(x) or _any_traced(args) or _any_traced(kwargs.get("initial_state"))
    if not layer._keras_style:
        if not traced:
            return layer.forward(x, training=bool(training), **kwargs)
        return layer_op(layer, x, bool(training), **kwargs)
    if not traced:
        x = _as_inputs(layer, x)
    if not layer.built:
        layer._build_for(_shapes(_values(x)),
                         dtype=None if not isinstance(_values(x), np.ndarray)
                         or _values(x).dtype.kind == "f" else _values(x).dtype)
    mask = kwargs.pop("mask", None)
    kwargs = _call_kwargs(layer, training, mask, kwargs)
    with _training_scope(bool(training)):
        out = layer.call(x, *args, **kwargs)
    if traced:
        return out
    return _values(out)


def _any_traced(value: Any) -> bool:
    if isinstance(value, (Traced, Variable)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_any_traced(v) for v in value)
    return False


def layer_op(layer: Layer, x: Any, training: bool, **kwargs: Any) -> Any:
    """A built-in layer called on traced values inside a ``call``: one node of the tape whose
    backward is the layer's own (its weight gradients are added up per call)."""
    xs = x if isinstance(x, (list, tuple)) else [x]
    xs = [autodiff.lift(v) for v in xs]
    values = [_values(v) for v in xs]
    xv: Any = values if isinstance(x, (list, tuple)) else values[0]
    state = kwargs.get("initial_state")
    if state is not None:
        kwargs["initial_state"] = _values(state)
    trace = current_trace()
    if trace is None or not getattr(trace, "training", False):
        return layer.forward(xv, training=training, **kwargs)
    layer.input_grad_needed = True
    y = layer.forward(xv, training=training, **kwargs)
    snapshot = [(obj, dict(obj.__dict__)) for obj in sublayers_of(layer)]
    parents = tuple(v if isinstance(v, Traced) else None for v in xs)
    multi_in = isinstance(x, (list, tuple))

    def vjp(g: Any) -> tuple:
        for obj, st in snapshot:
            obj.__dict__.update(st)
        d = layer.backward(g)
        trace.add_layer_grads(layer, layer.grads)
        return tuple(d) if multi_in else (d,)
    if isinstance(y, list):
        node = Traced(list(y), parents, vjp)
        n = len(y)
        return [Traced(v, (node,), lambda g, k=k: ([g if j == k else None for j in range(n)],))
                for k, v in enumerate(y)]
    return Traced(y, parents, vjp)


# ----------------------------------------------------------------------------- ops as layers
def _encode(value: Any, tensors: list) -> Any:
    if isinstance(value, symbolic.SymbolicTensor):
        tensors.append(value)
        return {"__tensor__": len(tensors) - 1}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(value, slice):
        return {"__slice__": [_encode(value.start, tensors), _encode(value.stop, tensors),
                              _encode(value.step, tensors)]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 1_000_000:
        return {"__array__": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, (np.dtype, type)) and value in (np.float32, np.float64, np.int32,
                                                          np.int64, bool, float, int):
        return {"__dtype__": np.dtype(value).name}
    if isinstance(value, str):
        return value
    raise TypeError(
        f"A fastrnn.ops function was called on a symbolic tensor with an argument of type "
        f"{type(value).__name__} ({value!r}); in a model being built, ops take symbolic "
        "tensors, numbers, strings, slices and small arrays. Put this computation in a "
        "custom layer's call instead.")


def _decode(value: Any, tensors: list, where: str = "args") -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"Received an invalid value in TracedOp `{where}`: {value!r}.")
    if "__tensor__" in value:
        k = value["__tensor__"]
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(tensors):
            raise ValueError(f"Received an invalid tensor reference in TracedOp `{where}`: "
                             f"{value!r}.")
        return tensors[k]
    if "__ellipsis__" in value:
        return Ellipsis
    if "__slice__" in value:
        parts = value["__slice__"]
        if not isinstance(parts, list) or len(parts) != 3:
            raise ValueError(f"Received an invalid slice in TracedOp `{where}`: {value!r}.")
        return slice(*(_decode(p, tensors, where) for p in parts))
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__array__" in value:
        dtype = value.get("dtype")
        if dtype not in ("bool", "int32", "int64", "uint8", "float32", "float64"):
            raise ValueError(f"Received an invalid array dtype in TracedOp `{where}`: {dtype!r}.")
        return np.asarray(value["__array__"], dtype=dtype)
    if "__dtype__" in value:
        if value["__dtype__"] not in ("bool", "int32", "int64", "float32", "float64"):
            raise ValueError(f"Received an invalid dtype in TracedOp `{where}`: {value!r}.")
        return np.dtype(value["__dtype__"])
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def _op_table() -> dict:
    from .. import math
    return math.OPS


@register
class TracedOp(Layer):
    """One :mod:`fastrnn.ops` function applied to symbolic tensors (a graph node).

    Made by calling an op on a symbolic tensor (``ops.tanh(x)``, ``x[..., :4]``, ``a * b``):
    Keras's way of mixing ``keras.ops`` calls with layers in a functional model. The op is
    stored by name with its constant arguments, so the model saves and loads as JSON.
    """

    def __init__(self, op: str, args: Any = (), kwargs: Optional[dict] = None,
                 n_inputs: int = 1, **layer_kwargs: Any):
        table = _op_table()
        if not isinstance(op, str) or op not in table:
            raise ValueError(
                f"Received an invalid value for argument `op`, expected the name of a "
                f"fastrnn.ops function, got {op!r}.")
        layer_kwargs.setdefault("name", _unique_name(op))
        super().__init__(**layer_kwargs)
        if not isinstance(n_inputs, int) or isinstance(n_inputs, bool) or n_inputs < 1:
            raise ValueError(f"Received an invalid value for argument `n_inputs`, expected a "
                             f"positive integer, got {n_inputs!r}.")
        self.op = op
        self.op_args = list(args)
        self.op_kwargs = dict(kwargs or {})
        self.n_inputs = n_inputs
        self._fn = table[op]
        # decoded once (and checked) so that a bad config fails when loaded, not when run
        probe = [None] * n_inputs
        self._decoded = (_decode(self.op_args, probe), _decode(self.op_kwargs, probe, "kwargs"))

    @property
    def takes_input_list(self) -> bool:
        return self.n_inputs > 1

    def call(self, inputs: Any) -> Any:
        tensors = list(inputs) if self.n_inputs > 1 else [inputs]
        args = _decode(self.op_args, tensors)
        kwargs = _decode(self.op_kwargs, tensors, "kwargs")
        return self._fn(*args, **kwargs)

    def get_config(self) -> dict:
        return {**Layer.get_config(self), "op": self.op, "args": self.op_args,
                "kwargs": self.op_kwargs, "n_inputs": self.n_inputs}


def apply_symbolic(name: str, args: tuple, kwargs: dict) -> Any:
    """``ops.<name>(*args, **kwargs)`` on symbolic tensors: a TracedOp node in the graph."""
    tensors: list = []
    enc_args = [_encode(a, tensors) for a in args]
    enc_kwargs = {k: _encode(v, tensors) for k, v in kwargs.items()}
    layer = TracedOp(name, enc_args, enc_kwargs, n_inputs=len(tensors))
    dtypes = {t.dtype for t in tensors}
    floats = [d for d in dtypes if d.kind == "f"]
    if floats:
        layer.dtype = max(floats, key=lambda d: d.itemsize)
    return layer(tensors if len(tensors) > 1 else tensors[0])


# ----------------------------------------------------------------------------- Lambda
_FUNCTIONS: dict = {}


@register
class Lambda(Layer):
    """Keras's ``Lambda``: wraps ``function(inputs, **arguments)`` written with
    :mod:`fastrnn.ops` as a layer (gradients from the tape).

    Args:
        function: the function. Saved by name: a fastrnn.ops function, or any function given to
            ``load_model(custom_objects={name: function})`` or registered with
            ``fastrnn.saving.register_keras_serializable`` (fastrnn never saves code).
        output_shape: optional, without the batch axis (default: inferred by tracing).
        mask: optional mask to output (None: none).
        arguments: optional keyword arguments for `function` (JSON values).
    """

    def __init__(self, function: Callable, output_shape: Any = None, mask: Any = None,
                 arguments: Optional[dict] = None, **kwargs: Any):
        if isinstance(function, str):
            function = resolve_function(function)
        if not callable(function):
            raise ValueError(
                f"Received an invalid value for argument `function`, expected a callable, got "
                f"{function!r}.")
        super().__init__(**kwargs)
        self.function = function
        self._declared_output_shape = None if output_shape is None else tuple(output_shape)
        self.mask = mask
        self.arguments = dict(arguments or {})

    def call(self, inputs: Any, mask: Any = None) -> Any:
        return self.function(inputs, **self.arguments)

    def compute_mask(self, x: Any, mask: Any) -> Any:
        return self.mask

    def get_config(self) -> dict:
        name = function_name(self.function)
        return {**Layer.get_config(self), "function": name,
                "output_shape": None if self._declared_output_shape is None
                else list(self._declared_output_shape),
                "arguments": self.arguments}


def function_name(fn: Callable) -> str:
    """The name a function is saved under (its registered name, or ``__name__``)."""
    for key, value in _FUNCTIONS.items():
        if value is fn:
            return key
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise NotImplementedError(
            "A Lambda layer's function must be a named function (not a lambda expression) to "
            "be saved: fastrnn saves it by name and never saves code. Define it with def, and "
            "pass it to load_model(..., custom_objects={name: function}).")
    return name


def resolve_function(name: str) -> Callable:
    """The function saved under `name`: from the current custom objects, the registry, or
    fastrnn.ops; a clear error otherwise."""
    from .base import custom_objects_in_scope
    scope = custom_objects_in_scope()
    if name in scope:
        return scope[name]
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    table = _op_table()
    if name in table:
        return table[name]
    raise ValueError(
        f"Unknown function {name!r} of a Lambda layer: pass it when loading, "
        f"load_model(path, custom_objects={{{name!r}: {name}}}), or register it with "
        "@fastrnn.saving.register_keras_serializable().")
