"""Small helpers shared by the model files: names, input checks, and what running a chain
and running a graph have in common (masks, sublayers, gradient sums). Nothing here imports a
model module."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import numpy as np

from .. import layers as layers_module
from ..layers import traced
from ..layers.base import Layer
from ..layers.recurrent import GRU, LSTM, SimpleRNN
from ..ops import internal as ops_internal

_model_names: dict[str, int] = {}


def unique_model_name(base: str) -> str:
    n = _model_names.get(base, 0)
    _model_names[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def check_name(name: Any) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(
            f"Received an invalid value for argument `name`: expected a non-empty string, "
            f"got {name!r}."
        )


def shape_str(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(shape_str(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(
        shape) == 1 else "") + ")"


def is_array_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, list, tuple)) or hasattr(x, "__array__")


def is_dataset(x: Any) -> bool:
    """An iterable of (x, y) batches (e.g. ``fastrnn.timeseries.timeseries_dataset_from_array``)."""
    return x is not None and not is_array_like(x) and not isinstance(x, dict) and isinstance(
        x, Iterable)


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{k}: {v:.4e}"
                      for k, v in logs.items())


def aligned_zeros(n: int, dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose data starts on an `alignment`-byte boundary.

    Vectorised kernels may treat the unaligned head of an array differently from its body
    (other rounding); a buffer that always starts on the same boundary makes training
    bit-reproducible from run to run, not only for the addresses malloc happens to return.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + alignment // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % alignment) // itemsize
    return raw[start:start + n]


def check_input_array(x: Any, name: str) -> np.ndarray:
    """A non-empty numeric array with a batch axis and at least one more."""
    if x is None:
        raise ValueError(f"Received no data for argument `{name}`: expected an array.")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a numeric array, "
            f"got dtype {a.dtype}."
        )
    if a.ndim < 2:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an array of shape "
            f"(samples, ...) with at least 2 dimensions, got shape {a.shape}."
        )
    if a.shape[0] == 0:
        raise ValueError(
            f"Received an empty array for argument `{name}` (shape {a.shape}): expected at "
            "least one sample."
        )
    return a


def is_model(layer: Any) -> bool:
    """Whether `layer` is a model (a layer whose layers live in one flat buffer)."""
    kind = type(layer)
    known = _MODEL_TYPES.get(kind)
    if known is None:  # (a missing class attribute costs a failed lookup: once per class)
        known = _MODEL_TYPES[kind] = callable(getattr(kind, "_unique_layers", None))
    return known


_MODEL_TYPES: dict[type, bool] = {}


def sublayers(layer: Any) -> list:
    """`layer` and every layer inside it (wrappers' and nested models' layers)."""
    out = []
    stack = [layer]
    while stack:
        current = stack.pop()
        out.append(current)
        if is_model(current):
            stack.extend(current._unique_layers())
            continue
        own = current.__dict__
        looked_up = _class_level(type(current))
        for attr in _SUB_ATTRS:
            sub = getattr(current, attr, None) if attr in looked_up else own.get(attr)
            if isinstance(sub, Layer):
                stack.append(sub)
        stack.extend(own.get("_tracked_layers", ()))
    return out


# The attributes that hold a layer's inner layers (wrappers, RNN's cell).
_SUB_ATTRS = ("layer", "forward_layer", "backward_layer", "cell")
_CLASS_LEVEL: dict[type, frozenset] = {}


def _class_level(kind: type) -> frozenset:
    """Which of _SUB_ATTRS a class gives itself (a property, or every one behind a
    ``__getattr__``): those are read with getattr, the others from the instance's dict,
    which spares a failed lookup per missing attribute (predict walks the layers each call)."""
    known = _CLASS_LEVEL.get(kind)
    if known is None:
        dynamic = hasattr(kind, "__getattr__")
        known = _CLASS_LEVEL[kind] = frozenset(
            a for a in _SUB_ATTRS if dynamic or hasattr(kind, a))
    return known


def trainable_params(layer: Any) -> int:
    """Parameters the optimizer changes: none of a frozen layer, and not the ones a layer
    updates itself (BatchNormalization's moving statistics)."""
    if not layer.trainable:
        return 0
    if is_model(layer):
        return sum(trainable_params(inner) for inner in layer._unique_layers())
    frozen = set(getattr(layer, "non_trainable_weight_names", ()))
    return int(sum(w.size for name, w in zip(layer.weight_names, layer.weights)
                   if name not in frozen))


def add_grad(grads: list, slot: int, d: Any) -> None:
    """Adds gradient `d` into ``grads[slot]`` (a tensor feeding several calls sums them)."""
    if d is None:
        return
    grads[slot] = d if grads[slot] is None else grads[slot] + d


_TAKES_MASK: dict = {}


def takes_mask(layer: Any) -> bool:
    """Whether ``layer.forward`` has a `mask` parameter (checked once per class)."""
    cls = type(layer)
    found = _TAKES_MASK.get(cls)
    if found is None:
        if getattr(cls, "_keras_style", False):  # Keras's: a call with a `mask` argument
            found = _TAKES_MASK[cls] = traced._call_params(cls)[1]
        else:
            found = _TAKES_MASK[cls] = "mask" in inspect.signature(cls.forward).parameters
    return found


def overrides_compute_mask(layer: Any) -> bool:
    """Whether the layer computes masks of its own (rather than passing one on or none)."""
    base = getattr(Layer, "compute_mask", None)
    mine = getattr(type(layer), "compute_mask", None)
    return mine is not None and mine is not base


def output_mask(layer: Any, arg: Any, mask: Any, has_mask: bool) -> Any:
    """The mask a call passes on (Keras's ``compute_mask``); None when no mask flows."""
    compute = getattr(layer, "compute_mask", None)
    if compute is None:
        return None
    if not has_mask and type(layer).compute_mask is getattr(Layer, "compute_mask", None):
        return None  # the default passes an absent mask on as absent
    return compute(arg, mask if has_mask else None)


def forward_with_mask(layer: Any, x: Any, mask: Any, has_mask: bool, training: Any,
                      **kwargs: Any) -> Any:
    """``layer.forward``, given the mask where the layer takes one."""
    if has_mask and (getattr(layer, "supports_masking", False)
                     or getattr(layer, "_keras_style", False)) and takes_mask(layer):
        kwargs["mask"] = mask
    return layer.forward(x, training=training, **kwargs)


_rebuilding = threading.local()


@contextlib.contextmanager
def layers_made_by(make: Callable[[dict], Any]) -> Iterator[None]:
    """Within it, :func:`rebuild_layer` asks ``make(config)`` first and uses what it returns
    unless None (``clone_model``'s ``clone_function``: a model rebuilt from its config with
    other layers). Per thread."""
    before = getattr(_rebuilding, "make", None)
    _rebuilding.make = make
    try:
        yield
    finally:
        _rebuilding.make = before


def rebuild_layer(config: Any, path: str, where: str = "config.layers") -> Any:
    """The layer of a saved `config`; any error names where it sits in the file (`where`)."""
    make = getattr(_rebuilding, "make", None)
    if make is not None and isinstance(config, dict):
        made = make(config)
        if made is not None:
            return made
    try:
        return layers_module.deserialize(config)
    except (KeyError, TypeError, ValueError, NotImplementedError, AttributeError,
            OverflowError) as exc:
        what = config.get("class_name") if isinstance(config, dict) else None
        inner = config.get("config") if isinstance(config, dict) else None
        name = inner.get("name") if isinstance(inner, dict) else None
        label = f" ({what}{f' {name!r}' if isinstance(name, str) else ''})" if isinstance(
            what, str) else ""
        raise ValueError(f"{path!r}: malformed model config at {where}{label}: "
                         f"{exc}") from exc


# ----------------------------------------------------------------- stacked recurrent layers
_STACKABLE = (SimpleRNN, LSTM, GRU)


def _stackable(layer: Any, dtype: np.dtype) -> bool:
    """Whether a layer's call at inference is exactly its plain kernel's forward from zero
    states over the whole input (what the stacked forward runs)."""
    return (type(layer) in _STACKABLE and layer.built and not layer.layer_norm
            and not layer.go_backwards and not layer.stateful and not layer.return_state
            and getattr(layer, "_activity_regularizer", None) is None
            and np.dtype(layer.dtype) == dtype)


def stacked_run(layers: list, start: int, dtype: np.dtype) -> int:
    """The end (exclusive) of the run of recurrent layers from ``layers[start]`` that the
    stacked forward can run at once on inputs of `dtype`: plain SimpleRNN/LSTM/GRU layers
    each feeding the next its sequences (the last may return its last state); `start` when
    fewer than two. Only for one sequence (batch 1, two steps or more), where each layer's
    step is one row and the wavefront puts the layers on two cores."""
    end = start
    while end < len(layers) and _stackable(layers[end], dtype):
        end += 1
        if not layers[end - 1].return_sequences:
            break
    return end if end - start >= 2 else start


def stacked_forward(layers: list, x: np.ndarray) -> Any:
    """The output of ``layers`` (a run from :func:`stacked_run`) on `x` (1, T, I), or None
    when the core declines (a layer it would split over threads)."""
    specs = []
    for layer in layers:
        w = layer._named()
        activation = layer.activation if layer._cell == "simple_rnn" else "tanh"
        specs.append((layer._cell, w["kernel"], w["recurrent_kernel"], w.get("bias"),
                      activation))
    T = x.shape[1]
    result = ops_internal.stacked_forward_checked(x, specs, max(2, min(16, T // 8)))
    if result is None:
        return None
    for layer in layers:  # what an inference call of each leaves behind: no tape, no masks
        layer._tape = None
        layer.last_dropout_mask = layer.last_recurrent_mask = None
    outputs, h_last = result
    return outputs if layers[-1].return_sequences else h_last
