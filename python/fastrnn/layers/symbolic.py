"""Symbolic tensors and nodes: what calling a layer on ``fastrnn.Input(...)`` records.

A :class:`SymbolicTensor` stands for an array of a known shape (batch axis None) that does not
exist yet. Calling a layer on one builds the layer (its weights are initialised then, as in
Keras) and records a :class:`Node` on the layer: which tensors went in, which came out. A
model (``fastrnn.Model(inputs, outputs)``) walks those records back from its outputs to find
its graph; nothing here computes anything.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _seed
from .. import math as _math
from ..autodiff import SYMBOLIC_TYPES

__all__ = ["Node", "SymbolicTensor", "is_symbolic"]


class SymbolicTensor:
    """A graph edge: the shape (batch axis first, None) and dtype of a future array.

    ``producer`` is the layer whose call made it, ``node_index`` which of that layer's calls,
    ``tensor_index`` which of the call's outputs.
    """

    __slots__ = ("dtype", "name", "node_index", "producer", "shape", "tensor_index")

    def __init__(self, shape: tuple, dtype: Any, producer: Any, node_index: int,
                 tensor_index: int = 0, name: Optional[str] = None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.producer = producer
        self.node_index = node_index
        self.tensor_index = tensor_index
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> Node:
        return self.producer._inbound_nodes[self.node_index]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            f"{self!r} is symbolic (a placeholder in a model being built) and has no values: "
            "build a fastrnn.Model from it and call predict() on arrays."
        )

    def __repr__(self) -> str:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in self.shape) + ")"
        return (f"<SymbolicTensor shape={shape} dtype={self.dtype.name} "
                f"from {getattr(self.producer, 'name', '?')!r}>")

    def __bool__(self) -> bool:
        raise TypeError(
            f"A symbolic tensor was used as a Python bool{_user_line()}: Python control flow "
            "that depends on a tensor's values (if/while/and/or on it) cannot be traced into a "
            "model's graph. Use fastrnn.ops.where(condition, x1, x2), or put the branch in a "
            "custom layer's call (which runs on arrays).")

    def __iter__(self) -> Any:
        raise TypeError(
            f"A symbolic tensor cannot be iterated over{_user_line()}: its batch size is not "
            "known while the model is built. Index it (x[:, 0]) or use fastrnn.ops.split.")

    def __float__(self) -> float:
        raise TypeError(f"A symbolic tensor has no value to convert to a number{_user_line()}.")

    __int__ = __index__ = __float__


def _user_line() -> str:
    """`` at file:line (`code`)`` of the innermost frame outside fastrnn, or ``""``."""
    import linecache
    import os
    import sys
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
    if frame is None:
        return ""
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f" at {frame.f_code.co_filename}:{frame.f_lineno} (`{code}`)"


class Node:
    """One call of a layer on symbolic tensors.

    ``inputs`` lists every tensor the call took: the main input(s) first (``n_main`` of them;
    ``main_is_list`` when the layer takes a list, as merges do), then the ``initial_state``
    tensors of a recurrent layer. ``outputs`` lists what it returned (``outputs_is_list`` when
    the layer returns a list, e.g. ``return_state=True``). ``training`` is the call's fixed
    ``training=`` argument, or None to follow the model.
    """

    __slots__ = ("inputs", "is_input", "layer", "main_is_list", "n_main", "outputs",
                 "outputs_is_list", "training")

    def __init__(self, layer: Any, inputs: list, n_main: int, main_is_list: bool,
                 training: Optional[bool] = None, is_input: bool = False):
        self.layer = layer
        self.inputs = list(inputs)
        self.n_main = n_main
        self.main_is_list = main_is_list
        self.training = training
        self.is_input = is_input
        self.outputs: list[SymbolicTensor] = []
        self.outputs_is_list = False

    @property
    def parents(self) -> list[Node]:
        return [t.node for t in self.inputs]


SYMBOLIC_TYPES.append(SymbolicTensor)
_math.install_operators(SymbolicTensor)


def is_symbolic(value: Any) -> bool:
    """True when `value` is a SymbolicTensor or a list/tuple holding one."""
    if isinstance(value, SymbolicTensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, SymbolicTensor) for v in value)
    return False


def _shape_text(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _as_tensor_list(layer: Any, value: Any, what: str) -> list[SymbolicTensor]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for k, v in enumerate(items):
        if not isinstance(v, SymbolicTensor):
            raise ValueError(
                f"Layer `{layer.name}` was called on a mix of symbolic tensors and other values: "
                f"{what}[{k}] is a {type(v).__name__}. While a model is being built every input "
                "must come from fastrnn.Input(...) or from another layer's call on one."
            )
    return items


def new_node(layer: Any, node: Node) -> int:
    """Appends `node` to `layer`'s call records; returns its index."""
    nodes = layer.__dict__.setdefault("_inbound_nodes", [])
    nodes.append(node)
    return len(nodes) - 1


def _compatible(built: Any, given: Any) -> bool:
    if isinstance(built, list) or isinstance(given, list):
        if not (isinstance(built, list) and isinstance(given, list)) or len(built) != len(given):
            return False
        return all(_compatible(b, g) for b, g in zip(built, given))
    if built is None:
        return True
    if len(built) != len(given):
        return False
    return all(b is None or g is None or b == g for b, g in zip(built, given))


def call(layer: Any, inputs: Any, initial_state: Any = None, training: Optional[bool] = None,
         **kwargs: Any) -> Any:
    """Records ``layer(inputs, initial_state=..., training=...)`` on symbolic tensors (building
    the layer on its first call) and returns the symbolic output(s)."""
    if kwargs:
        raise TypeError(
            f"Layer `{layer.name}` got unexpected keyword argument(s) {sorted(kwargs)} in a "
            "symbolic call; supported: initial_state, training."
        )
    if training is not None and not isinstance(training, (bool, np.bool_)):
        raise TypeError(
            f"Received an invalid value for argument `training` of layer `{layer.name}`, "
            f"expected None, True or False, got {training!r}."
        )
    main_is_list = isinstance(inputs, (list, tuple))
    main = _as_tensor_list(layer, inputs, "inputs")
    if main_is_list and not getattr(layer, "takes_input_list", False):
        if len(main) != 1:
            raise ValueError(
                f"Layer `{layer.name}` ({type(layer).__name__}) takes one input tensor, got a "
                f"list of {len(main)}; merge them first (e.g. layers.Concatenate())."
            )
        main_is_list = False
    if not main_is_list and getattr(layer, "takes_input_list", False):
        raise ValueError(
            f"Layer `{layer.name}` ({type(layer).__name__}) takes a list of input tensors, got "
            "a single tensor."
        )
    states: list[SymbolicTensor] = []
    if initial_state is not None:
        states = _as_tensor_list(layer, initial_state, "initial_state")
        check = getattr(layer, "check_initial_state_shapes", None)
        if check is None:
            raise ValueError(
                f"Layer `{layer.name}` ({type(layer).__name__}) takes no `initial_state`; only "
                "recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional) do."
            )
    shapes: Any = [t.shape[1:] for t in main] if main_is_list else main[0].shape[1:]
    if not layer.built:
        if layer.seed is None:
            layer.rng = np.random.default_rng(_seed.new_seed_sequence())
        dtypes = [t.dtype for t in main]
        dtype = None if all(d.kind == "f" for d in dtypes) else (
            dtypes if main_is_list else dtypes[0])
        layer._build_for(shapes, dtype=dtype)  # (a nested model: without the batch axis too)
    else:
        built = getattr(layer, "_call_input_shape", layer.input_shape)
        if not _compatible(built, shapes):
            relaxed = _free_axes(layer, built, shapes)
            if relaxed is None:
                raise ValueError(
                    f"Layer `{layer.name}` was built for inputs "
                    f"{_shape_text(_with_batch(built))} and cannot be called on "
                    f"{_shape_text(_with_batch(shapes))}."
                )
            layer.input_shape = relaxed
    if states:
        layer.check_initial_state_shapes([t.shape[1:] for t in states])
    out_shape = layer._output_shape_for(shapes)
    node = Node(layer, main + states, len(main), main_is_list, training=training)
    index = new_node(layer, node)
    out_dtype = getattr(layer, "output_dtype", None) or layer.dtype
    if isinstance(out_shape, list):
        node.outputs = [SymbolicTensor((None, *s), out_dtype, layer, index, k)
                        for k, s in enumerate(out_shape)]
        node.outputs_is_list = True
        return list(node.outputs)
    node.outputs = [SymbolicTensor((None, *out_shape), out_dtype, layer, index, 0)]
    return node.outputs[0]


def _free_axes(layer: Any, built: Any, given: Any) -> Any:
    """The built input shape with None where `given` differs from it, when only axes
    other than the feature (last) axis differ (as Keras, whose layers fix only the features);
    None when the call cannot share the layer's weights. Models keep their input specs."""
    if callable(getattr(layer, "_unique_layers", None)):
        return None
    if isinstance(built, list) or isinstance(given, list):
        if not (isinstance(built, list) and isinstance(given, list)) or len(built) != len(given):
            return None
        parts = [_free_axes(layer, b, g) for b, g in zip(built, given)]
        return None if any(p is None for p in parts) else parts
    built, given = tuple(built), tuple(given)
    if len(built) != len(given) or not built:
        return None
    if built[-1] is not None and given[-1] is not None and built[-1] != given[-1]:
        return None
    return tuple(b if b == g else None for b, g in zip(built, given))


def _with_batch(shape: Any) -> Any:
    if isinstance(shape, list):
        return [_with_batch(s) for s in shape]
    return (None, *shape) if shape is not None else (None,)


def input_tensor(layer: Any, shape: tuple, dtype: Any, batch_size: Optional[int]) -> SymbolicTensor:
    """The tensor an InputLayer stands for (the graph's source)."""
    node = Node(layer, [], 0, False, is_input=True)
    index = new_node(layer, node)
    t = SymbolicTensor((batch_size, *shape), dtype, layer, index, 0, name=layer.name)
    node.outputs = [t]
    return t
