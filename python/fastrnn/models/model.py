"""`Model`: what every model is (layers whose weights live in one flat buffer, a layer itself),
and the functional model ``fastrnn.Model(inputs, outputs)``: a graph of layer calls.

The graph is found as Keras finds it: walking back from the outputs through the calls that
``layer(symbolic_tensor)`` recorded (:mod:`fastrnn.layers.symbolic`). Layers are ordered as
Keras orders them (by depth from the outputs, then by first visit), so ``get_weights()``
lists weights in Keras's order and weights copied from a Keras model of the same graph give
the same predictions. A forward pass runs the calls in that order, one ``layer.forward`` per
call; backward runs them in reverse, adding gradients where a tensor feeds several calls.
A layer called more than once shares its weights: its weight gradients add up.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Callable, Optional

import numpy as np

from .. import _seed, saving
from .. import layers as layers_module
from ..layers.base import Layer, first_shape_mismatch
from ..layers.core import InputLayer
from ..layers.symbolic import SymbolicTensor
from .common import aligned_zeros, check_input_array, check_name, shape_str, unique_model_name
from .trainer import Trainer

__all__ = ["Model"]


def model_dtype(name: str, layers: list) -> np.dtype:
    """The one dtype of the layers with weights; weightless layers (merges, shape layers,
    Dropout, ...) take it on, as Keras's follow their inputs."""
    weighted = [layer for layer in layers if layer.built and layer.weights]
    dtypes = {np.dtype(layer.dtype) for layer in weighted}
    if len(dtypes) > 1:
        raise ValueError(
            f"Model `{name}`: every layer with weights must have the same dtype, got "
            f"{sorted(d.name for d in dtypes)}."
        )
    dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
    for layer in layers:
        if not isinstance(layer, InputLayer) and not layer.weights and not isinstance(
                layer, Model):
            layer.dtype = dtype
    return dtype


def _sublayers(layer: Any) -> list:
    """`layer` and every layer inside it (wrappers' and nested models' layers)."""
    out = []
    stack = [layer]
    while stack:
        current = stack.pop()
        out.append(current)
        inner = getattr(current, "_unique_layers", None)
        if callable(inner) and isinstance(current, Model):
            stack.extend(inner())
            continue
        for attr in ("layer", "forward_layer", "backward_layer", "cell"):
            sub = getattr(current, attr, None)
            if isinstance(sub, Layer):
                stack.append(sub)
        stack.extend(current.__dict__.get("_tracked_layers", ()))
    return out


_loading_shapes = threading.local()


class expecting_weights:
    """Within it, building a model first checks its weight shapes against `shapes` (those
    of the file being loaded), before any buffer is allocated. Per thread."""

    def __init__(self, shapes: list):
        self.shapes = [tuple(s) for s in shapes]

    def __enter__(self) -> None:
        self._before = getattr(_loading_shapes, "shapes", None)
        _loading_shapes.shapes = self.shapes

    def __exit__(self, *exc: Any) -> None:
        _loading_shapes.shapes = self._before


def check_saved_shapes(model: str, mine: list, saved: list) -> None:
    if len(mine) != len(saved):
        raise ValueError(
            f"Model `{model}`: the file holds {len(saved)} weight arrays, the architecture it "
            f"describes has {len(mine)}."
        )
    for k, ((name, shape), want) in enumerate(zip(mine, saved)):
        if tuple(shape) != tuple(want):
            raise ValueError(
                f"Model `{model}`: weight {k} (`{name}`) has shape {tuple(shape)} in the "
                f"architecture the file describes, but the file holds an array of shape "
                f"{tuple(want)}."
            )


class _Step:
    """One call of the graph, resolved to slot numbers (see ``Model._run_forward``)."""

    __slots__ = ("has_weights", "in0", "in_slots", "layer", "main_is_list", "masked",
                 "n_main", "out0", "out_slots", "outputs_is_list", "shared", "simple",
                 "state_slots", "training")

    def __init__(self, node: Any, slot_of: dict, shared: bool, may_mask: set):
        self.layer = node.layer
        ins = [slot_of[id(t)] for t in node.inputs]
        self.in_slots = ins[:node.n_main]
        self.state_slots = ins[node.n_main:]
        self.n_main = node.n_main
        self.main_is_list = node.main_is_list
        self.out_slots = [slot_of[id(t)] for t in node.outputs]
        self.outputs_is_list = node.outputs_is_list
        self.training = node.training
        self.shared = shared
        self.has_weights = bool(node.layer.weights)
        # Whether a mask can reach or leave this call (masks start where a layer computes
        # one, e.g. Embedding(mask_zero=True) or Masking, and flow while layers pass them).
        declared = getattr(node.layer, "makes_mask", None)
        produces = _overrides_compute_mask(node.layer) if declared is None else declared
        self.masked = produces or any(s in may_mask for s in self.in_slots)
        if produces or (self.masked and getattr(node.layer, "supports_masking", False)):
            may_mask.update(self.out_slots)
        self.in0, self.out0 = self.in_slots[0], self.out_slots[0]
        # The common call: one tensor in, one out, nothing else to look after.
        self.simple = not (self.main_is_list or self.state_slots or self.outputs_is_list
                           or shared or self.training is not None or self.masked)


def _map_graph(inputs: list, outputs: list) -> tuple[list, list]:
    """``(nodes in run order, layers in Keras order)`` for the graph between the tensors."""
    finished: set = set()
    in_progress: set = set()
    ordered: list = []          # nodes, inputs first (depth-first post-order)
    first_visit: dict = {}      # layer id -> index of its first visit (pre-order)
    input_ids = {id(t) for t in inputs}

    def visit(root: SymbolicTensor) -> None:
        # Depth-first, inputs before the call (post-order), with an explicit stack so that a
        # graph of any depth is walked; a layer's first visit (pre-order) orders it in ties.
        stack = [(root, False)]
        while stack:
            tensor, expanded = stack.pop()
            node = tensor.node
            if expanded:
                in_progress.discard(id(node))
                finished.add(id(node))
                ordered.append(node)
                continue
            if id(node) in finished:
                continue
            if node.is_input and id(tensor) not in input_ids:
                raise ValueError(
                    f"Graph disconnected: the output depends on input {tensor.name!r} "
                    f"(layer `{tensor.producer.name}`), which is not among the model's inputs "
                    f"{[t.name for t in inputs]}; pass it in `inputs`."
                )
            if id(node) in in_progress:
                raise ValueError(f"The graph has a cycle through layer `{node.layer.name}`.")
            first_visit.setdefault(id(node.layer), len(first_visit))
            in_progress.add(id(node))
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(node.inputs))

    for t in outputs:
        visit(t)
    in_graph = {id(n) for n in ordered}
    node_depth: dict = {}
    layer_depth: dict = {}
    layer_of: dict = {}
    for node in reversed(ordered):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        layer_of[id(node.layer)] = node.layer
        node_depth[id(node)] = depth
        for t in node.inputs:
            parent = t.node
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:
        if id(t.node) not in in_graph:
            raise ValueError(
                f"Model input {t.name!r} (layer `{t.producer.name}`) is not used to compute "
                "any of the model's outputs; remove it from `inputs` or connect it."
            )
    run_order = sorted(ordered, key=lambda n: -node_depth[id(n)])  # stable: DFS order in ties
    layers = sorted(layer_of.values(), key=lambda lyr: (-layer_depth[id(lyr)],
                                                         first_visit[id(lyr)]))
    return run_order, layers


def _flatten_io(value: Any, what: str) -> tuple[list, Optional[list], str]:
    """``(tensors, dict keys or None, structure)`` for Model's `inputs`/`outputs`."""
    if isinstance(value, dict):
        keys, items, struct = list(value), list(value.values()), "dict"
    elif isinstance(value, (list, tuple)):
        keys, items, struct = None, list(value), "list"
    else:
        keys, items, struct = None, [value], "single"
    if not items:
        raise ValueError(f"Received an invalid value for argument `{what}`: it is empty.")
    for k, t in enumerate(items):
        if not isinstance(t, SymbolicTensor):
            raise ValueError(
                f"Received an invalid value for argument `{what}`: entry {k} is a "
                f"{type(t).__name__}, expected a symbolic tensor from fastrnn.Input(...) or "
                "from calling a layer on one (was a layer called on a NumPy array?)."
            )
    if len({id(t) for t in items}) != len(items):
        raise ValueError(f"Received an invalid value for argument `{what}`: a tensor appears "
                         "twice.")
    return items, keys, struct


class Model(Trainer, Layer):
    """A model: ``fastrnn.Model(inputs, outputs)`` builds a functional (graph) model.

    Args:
        inputs: a tensor from :func:`fastrnn.Input`, or a list or dict of them.
        outputs: a symbolic tensor from a layer call on those inputs, or a list or dict of
            them (dict keys name the outputs).
        name: the model's name (default ``"functional"``, ``"functional_1"``, ...).
        seed: a seed for the shuffling of ``fit`` (weights were drawn when the layers were
            first called; :func:`fastrnn.set_seed` before building fixes them).

    The model trains, evaluates, predicts, saves and loads like :class:`fastrnn.Sequential`
    (one training engine); arrays go in as the inputs were given (one array, a list in the
    order of `inputs`, or a dict by input name) and targets likewise by output. A model is a
    layer too: calling it on symbolic tensors nests it in another model.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "call" in vars(cls) or any("call" in vars(c) for c in cls.__mro__[1:]
                                      if c not in (Model, Layer, Trainer, object)):
            from ..layers import traced
            cls._subclassed = True
            if not getattr(cls, "_fastrnn_tracking", False):
                cls.__setattr__ = traced._tracking_setattr
                cls._fastrnn_tracking = True
            if "__new__" not in vars(cls):
                cls.__new__ = traced._recording_new

    _subclassed = False

    def __init__(self, inputs: Any = None, outputs: Any = None, name: Optional[str] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        if self._subclassed and inputs is None and outputs is None:
            # Keras's subclassing: layers as attributes, a `call`; traced into a graph when
            # the model first sees data (or build(input_shape)).
            for key in ("trainable", "dtype"):
                kwargs.pop(key, None)
            if kwargs:
                raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) "
                                f"{sorted(kwargs)}.")
            self._init_model(name, seed, _snake_name(type(self).__name__))
            self._input_names = ["input"]
            self._output_names = ["output"]
            return
        if inputs is None or outputs is None:
            raise TypeError(
                "fastrnn.Model(inputs, outputs) builds a functional model and needs both: "
                "inputs from fastrnn.Input(...) and outputs from layer calls on them "
                "(or subclass fastrnn.Model and define call())."
            )
        if kwargs:
            raise TypeError(f"Model got unexpected keyword argument(s) {sorted(kwargs)}.")
        self._init_model(name, seed, "functional")
        self._build_graph(inputs, outputs)

    # ------------------------------------------------------------------ subclassed models
    def _trace_call(self, specs: list, dtypes: list, struct: str, keys: Optional[list]) -> None:
        """Traces ``self.call`` on symbolic inputs (shapes without the batch axis) into this
        model's graph, as a functional model's."""
        from ..layers import traced
        from ..layers.core import Input
        inputs = [Input(shape=tuple(s), dtype=dt, name=None if keys is None else keys[k])
                  for k, (s, dt) in enumerate(zip(specs, dtypes))]
        if struct == "dict":
            arg: Any = dict(zip(keys, inputs))
        elif struct == "list":
            arg = list(inputs)
        else:
            arg = inputs[0]
        takes_training, takes_mask, _ = traced._call_params(type(self))
        kwargs = {"training": None} if takes_training else {}
        outputs = self.call(arg, **kwargs)
        flat = outputs if isinstance(outputs, (list, tuple)) else (
            list(outputs.values()) if isinstance(outputs, dict) else [outputs])
        for k, t in enumerate(flat):
            if not isinstance(t, SymbolicTensor):
                raise TypeError(
                    f"Model `{self.name}`: call() returned a {type(t).__name__}"
                    f"{'' if len(flat) == 1 else f' at position {k}'}; it must return the "
                    "outputs of layers or fastrnn.ops functions applied to its inputs.")
        if getattr(self, "compiled", False) and len(flat) != len(self._output_names):
            raise ValueError(
                f"Model `{self.name}` was compiled for {len(self._output_names)} output(s) "
                f"before it was built, and its call() returns {len(flat)}: build the model "
                "(model.build(input_shape) or predict on a batch) before compile().")
        names = self._output_names
        self._build_graph(arg, outputs)
        if getattr(self, "compiled", False) and len(flat) == 1:
            self._output_names = names
        self._built_from = {"specs": [list(s) for s in specs],
                            "dtypes": [np.dtype(d).name for d in dtypes],
                            "struct": struct, "keys": keys}

    def _build_subclassed_from(self, x: Any) -> None:
        """Builds a subclassed model from its first data: the time axes left free when the
        call allows it (as Sequential does), else the data's own shape."""
        if isinstance(x, dict):
            keys, arrays, struct = list(x), list(x.values()), "dict"
        elif isinstance(x, (list, tuple)) and not (len(x) and np.isscalar(x[0])):
            keys, arrays, struct = None, list(x), "list"
        else:
            keys, arrays, struct = None, [x], "single"
        arrays = [check_input_array(a, "x") for a in arrays]
        dtypes = [a.dtype if a.dtype.kind in "biu" else self._dtype for a in arrays]
        exact = [tuple(a.shape[1:]) for a in arrays]
        relaxed = [(None,) * (len(s) - 1) + s[-1:] if len(s) > 1 else s for s in exact]
        if relaxed != exact:
            try:
                self._trace_call(relaxed, dtypes, struct, keys)
                return
            except (ValueError, TypeError, NotImplementedError):
                for layer in self.__dict__.get("_tracked_layers", ()):
                    layer.__dict__.pop("_inbound_nodes", None)
        self._trace_call(exact, dtypes, struct, keys)

    def _build_for(self, input_shape: Any, dtype: Any = None) -> None:
        if self._subclassed and not self.built:
            specs = input_shape if isinstance(input_shape, list) else [input_shape]
            dts = dtype if isinstance(dtype, list) else [dtype or self._dtype] * len(specs)
            self._trace_call([tuple(s) for s in specs], dts,
                             "list" if isinstance(input_shape, list) else "single", None)
            return
        # as a layer, shapes come without the batch axis (Sequential.build takes it, as Keras's)
        getattr(self, "_build_as_layer", self.build)(input_shape)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """A functional model's call: its graph on symbolic inputs (subclasses define theirs)."""
        if self._subclassed:
            raise NotImplementedError(f"{type(self).__name__} must define call().")
        from ..layers import symbolic
        return symbolic.call(self, inputs, training=training)

    # ------------------------------------------------------------------ state common to all
    def _init_model(self, name: Optional[str], seed: Optional[int], default_name: str) -> None:
        check_name(name)
        Layer.__init__(self, name=name or unique_model_name(default_name))
        self._seed_sequence = _seed.new_seed_sequence(seed)
        # The shuffling stream outlives one fit: a second fit continues it deterministically.
        self._shuffle_rng = np.random.default_rng(
            np.random.SeedSequence(self._seed_sequence.entropy, spawn_key=(2**20,)))
        self.built = False
        self.compiled = False
        self.optimizer: Any = None
        self.loss: Any = None
        self.stop_training = False
        self.stop_reason: Optional[str] = None
        self.history: Any = None
        self._dtype = np.dtype(np.float32)
        self._param_buffer: Optional[np.ndarray] = None
        self._grad_buffer: Optional[np.ndarray] = None
        self._param_views: list[np.ndarray] = []
        self._grad_views: list[np.ndarray] = []
        self._packed_ids: tuple = ()
        self._input_grad_needed = False
        self._per_thread = threading.local()

    # What a forward leaves for the code right after it (predict's and evaluate's masks) is
    # kept per thread: concurrent calls on one model never read each other's.
    @property
    def _output_masks(self) -> list:
        return getattr(self._per_thread, "output_masks", [])

    @_output_masks.setter
    def _output_masks(self, value: list) -> None:
        self._per_thread.output_masks = value

    @property
    def _predicted_masks(self) -> Optional[list]:
        return getattr(self._per_thread, "predicted_masks", None)

    @_predicted_masks.setter
    def _predicted_masks(self, value: Optional[list]) -> None:
        self._per_thread.predicted_masks = value

    # ------------------------------------------------------------------ the graph
    def _build_graph(self, inputs: Any, outputs: Any) -> None:
        ins, in_keys, self._inputs_struct = _flatten_io(inputs, "inputs")
        outs, out_keys, self._outputs_struct = _flatten_io(outputs, "outputs")
        for k, t in enumerate(ins):
            if not t.node.is_input:
                raise ValueError(
                    f"Received an invalid value for argument `inputs`: entry {k} comes from "
                    f"layer `{t.producer.name}`; model inputs must be tensors made by "
                    "fastrnn.Input(...)."
                )
        nodes, layers = _map_graph(ins, outs)
        if self._subclassed:
            # Keras's order for a subclassed model: its layers as its attributes list them
            # (so weights copied from a Keras model of the same class line up), then the
            # graph's other nodes (inputs, ops).
            in_graph = {id(layer) for layer in layers}
            tracked = [layer for layer in self.__dict__.get("_tracked_layers", ())
                       if id(layer) in in_graph]
            seen = {id(layer) for layer in tracked}
            layers = tracked + [layer for layer in layers if id(layer) not in seen]
        self._graph_layers = layers
        self._inputs = ins
        self._outputs = outs
        self._input_names = in_keys or [t.producer.name for t in ins]
        names = out_keys or [t.producer.name for t in outs]
        if len(set(names)) != len(names):  # one layer giving several outputs
            names = [n if names.count(n) == 1 else f"{n}_{t.tensor_index}"
                     for n, t in zip(names, outs)]
        self._output_names = names
        self._dtype = model_dtype(self.name, layers)
        # Slots: one per tensor; steps: one per non-input call, in run order.
        slot_of: dict = {}
        for node in nodes:
            for t in node.outputs:
                slot_of[id(t)] = len(slot_of)
        calls = defaultdict(int)
        for node in nodes:
            calls[id(node.layer)] += 1
        may_mask: set = set()
        self._steps = [_Step(n, slot_of, calls[id(n.layer)] > 1, may_mask) for n in nodes
                       if not n.is_input]
        self._nodes = nodes
        self._n_slots = len(slot_of)
        self._input_slots = [slot_of[id(t)] for t in ins]
        self._output_slots = [slot_of[id(t)] for t in outs]
        self._input_specs = [t.shape[1:] for t in ins]
        self._input_dtypes = [t.dtype for t in ins]
        consumers: dict = defaultdict(list)
        for step in self._steps:
            for s in step.in_slots + step.state_slots:
                consumers[s].append(step.layer)
        # Integer arrays stay integers where only Embeddings read them (exact token ids).
        self._ids_only = [all(type(lyr).__name__ == "Embedding" for lyr in consumers[s])
                          for s in self._input_slots]
        self._output_shapes = [t.shape[1:] for t in outs]
        self._set_input_grads()
        self._pack_weights()
        self.built = True

    def _set_input_grads(self) -> None:
        """A call needs its input gradient unless all its main inputs are model inputs that
        nothing differentiates (a nested model that must return d_inputs needs them all)."""
        inputs = set(self._input_slots)
        needs: dict = {}
        for step in self._steps:
            from_inputs = all(s in inputs for s in step.in_slots)
            need = not from_inputs or self._input_grad_needed
            needs[id(step.layer)] = needs.get(id(step.layer), False) or need
        for step in self._steps:
            step.layer.input_grad_needed = needs[id(step.layer)]

    @property
    def input_shape(self) -> Any:
        """The input shape(s), with the batch axis as None (a list for several inputs)."""
        specs = getattr(self, "_input_specs", None)
        if specs is None:
            return None
        shapes = [(None, *s) for s in specs]
        return shapes[0] if len(shapes) == 1 else shapes

    @input_shape.setter
    def input_shape(self, value: Any) -> None:  # Layer.__init__ assigns it; derived here
        pass

    @property
    def output_shape(self) -> Any:
        """The output shape(s), with the batch axis as None (a list for several outputs)."""
        shapes = [(None, *s) for s in getattr(self, "_output_shapes", None) or []]
        if not shapes:
            return None
        return shapes[0] if len(shapes) == 1 else shapes

    @output_shape.setter
    def output_shape(self, value: Any) -> None:
        pass

    @property
    def _call_input_shape(self) -> Any:
        """The input shape(s) without the batch axis (what a layer's input_shape holds)."""
        specs = self._input_specs
        return specs[0] if len(specs) == 1 else list(specs)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the model's weights (and of its float inputs)."""
        return self._dtype

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self._dtype = np.dtype(value)

    @property
    def input_grad_needed(self) -> bool:
        return getattr(self, "_input_grad_needed", False)

    @input_grad_needed.setter
    def input_grad_needed(self, value: bool) -> None:
        self._input_grad_needed = bool(value)
        if getattr(self, "built", False):
            self._set_input_grads()

    @property
    def layers(self) -> list:
        """The layers in Keras's order (InputLayers first), each once. A subclassed model:
        the layers its call used, in attribute order, then the op nodes (no InputLayer)."""
        if self._subclassed:
            return [layer for layer in getattr(self, "_graph_layers", [])
                    if not isinstance(layer, InputLayer)]
        return list(self._graph_layers)

    def _unique_layers(self) -> list:
        return self._graph_layers

    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def _iter_all_layers(self) -> list:
        return [sub for layer in self._unique_layers() for sub in _sublayers(layer)]

    # ------------------------------------------------------------------ arrays in
    def _check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]:
        """`x` as one checked array per input (float in the model's dtype, or integer ids)."""
        if self._subclassed and not self.built:
            self._build_subclassed_from(x)
        names = self._input_names
        n_in = len(names)
        if isinstance(x, dict):
            xs = self._from_dict(x, names, name)
        elif n_in == 1:
            xs = [x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x]
        elif isinstance(x, (list, tuple)) and len(x) == n_in:
            xs = list(x)
        else:
            raise ValueError(
                f"Received an invalid value for argument `{name}`: model `{self.name}` has "
                f"{n_in} inputs {names}, so `{name}` must be a list of {n_in} arrays or a dict "
                f"keyed by those names, got {type(x).__name__}"
                f"{f' of length {len(x)}' if isinstance(x, (list, tuple)) else ''}."
            )
        out = []
        for k, value in enumerate(xs):
            what = name if n_in == 1 else f"{name}[{names[k]!r}]"
            a = check_input_array(value, what)
            spec = self._input_specs[k]
            self._check_spec(a, spec, what)
            if out and a.shape[0] != out[0].shape[0]:
                raise ValueError(
                    f"Received inconsistent data sizes: `{what}` has {a.shape[0]} samples, the "
                    f"first input {out[0].shape[0]}; expected the same number."
                )
            dt = self._input_dtypes[k]
            if dt.kind in "biu" or (a.dtype.kind in "biuf" and self._ids_only[k]):
                # ids stay as given (float64 ids above 2**24 are exact, float32 would not be)
                out.append(np.ascontiguousarray(a))
            else:
                out.append(np.ascontiguousarray(a, dtype=self._dtype))
        return out

    def _check_spec(self, a: np.ndarray, spec: tuple, what: str) -> None:
        if a.ndim != len(spec) + 1:
            raise ValueError(
                f"Received an invalid value for argument `{what}`: model `{self.name}` expects "
                f"inputs of rank {len(spec) + 1}, shape {shape_str((None, *spec))}, got an "
                f"array of shape {a.shape}."
            )
        mismatch = first_shape_mismatch(spec, a.shape)
        if mismatch is not None:
            axis, want, got = mismatch
            kind = "features" if axis == a.ndim - 1 else f"entries on axis {axis}"
            raise ValueError(
                f"Received an invalid value for argument `{what}`: model `{self.name}` was "
                f"built for inputs {shape_str((None, *spec))} ({want} {kind}), got an "
                f"array of shape {a.shape} ({got} {kind})."
            )

    def _output_shapes_for(self, xs: list) -> list[tuple]:
        """Output shapes (without batch) for inputs shaped like `xs` (fills None lengths)."""
        if all(None not in s for s in self._output_shapes):
            return self._output_shapes
        outs = self._run_forward([x[:1] for x in xs], training=False)
        return [o.shape[1:] for o in outs]

    # ------------------------------------------------------------------ running the graph
    def _run_forward(self, xs: list, training: bool) -> list:
        vals: list = [None] * self._n_slots
        masks: list = [None] * self._n_slots
        for s, x in zip(self._input_slots, xs):
            vals[s] = x
        snapshots = {} if training else None
        self._activity_reset()
        for k, step in enumerate(self._steps):
            if step.simple:
                vals[step.out0] = out = step.layer.forward(vals[step.in0], training=training)
                if getattr(step.layer, "_activity_regularizer", None) is not None:
                    self._activity_forward(k, step.layer._activity_regularizer, out, training)
                continue
            layer = step.layer
            if step.main_is_list:
                arg: Any = [vals[s] for s in step.in_slots]
                mask: Any = [masks[s] for s in step.in_slots]
                has_mask = any(m is not None for m in mask)
            else:
                arg = vals[step.in_slots[0]]
                mask = masks[step.in_slots[0]]
                has_mask = mask is not None
            kwargs = {}
            if step.state_slots:
                kwargs["initial_state"] = [vals[s] for s in step.state_slots]
            if has_mask and (getattr(layer, "supports_masking", False)
                             or getattr(layer, "_keras_style", False)) and _takes_mask(layer):
                kwargs["mask"] = mask
            run_training = training if step.training is None else step.training
            out = layer.forward(arg, training=run_training, **kwargs)
            if step.shared and snapshots is not None:
                snapshots[k] = [(obj, dict(obj.__dict__)) for obj in _sublayers(layer)]
            if getattr(layer, "_activity_regularizer", None) is not None:
                self._activity_forward(k, layer._activity_regularizer, out, training)
            if step.outputs_is_list:
                for s, o in zip(step.out_slots, out):
                    vals[s] = o
            else:
                vals[step.out_slots[0]] = out
            out_mask = _output_mask(layer, arg, mask, has_mask)
            if out_mask is not None:
                if step.outputs_is_list:
                    for s, m in zip(step.out_slots, out_mask if isinstance(out_mask, list)
                                    else [out_mask] * len(step.out_slots)):
                        masks[s] = m
                else:
                    masks[step.out_slots[0]] = out_mask
        self._snapshots = snapshots
        self._vals = vals if training else None
        self._output_masks = [masks[s] for s in self._output_slots]
        return [vals[s] for s in self._output_slots]

    def _run_backward(self, d_outputs: list) -> None:
        grads: list = [None] * self._n_slots
        for s, d in zip(self._output_slots, d_outputs):
            _add(grads, s, d)
        snapshots = self._snapshots or {}
        seen: set = set()
        for k in range(len(self._steps) - 1, -1, -1):
            step = self._steps[k]
            layer = step.layer
            if k in self._activity_outputs:  # the output penalty's gradient joins first
                if step.outputs_is_list:
                    d_act = self._activity_backward(k, [grads[s] for s in step.out_slots])
                else:
                    d_act = [self._activity_backward(k, grads[step.out_slots[0]])]
                for s, d in zip(step.out_slots, d_act):
                    grads[s] = d
            if step.simple and grads[step.out0] is not None:
                d_out, grads[step.out0] = grads[step.out0], None  # freed as soon as used
                _add(grads, step.in0, layer.backward(d_out))
                continue
            ds = [grads[s] for s in step.out_slots]
            for s in step.out_slots:
                grads[s] = None  # each gradient array is let go once its call has used it
            if all(d is None for d in ds) and not step.has_weights:
                continue  # nothing flows back through this call
            d_arg = ds if step.outputs_is_list else ds[0]
            stash = None
            if step.shared:
                for obj, state in snapshots.get(k, ()):
                    obj.__dict__.update(state)
                if id(layer) in seen:
                    stash = [g.copy() for g in layer.grads]
                seen.add(id(layer))
            if all(d is None for d in ds):  # e.g. an output without a loss
                ds = [np.zeros_like(self._vals[s]) for s in step.out_slots]
                d_arg = ds if step.outputs_is_list else ds[0]
            d_in = layer.backward(d_arg)
            if stash is not None:
                for g, s in zip(layer.grads, stash):
                    g += s
            if step.main_is_list:
                for s, d in zip(step.in_slots, d_in or [None] * len(step.in_slots)):
                    _add(grads, s, d)
            else:
                _add(grads, step.in_slots[0], d_in)
            if step.state_slots:
                for s, d in zip(step.state_slots, getattr(layer, "initial_state_grads", ())):
                    _add(grads, s, d)
        self._d_inputs = [grads[s] for s in self._input_slots]
        # Let go of this batch's intermediate arrays now: the core recycles their memory for
        # the next batch only once nothing refers to them.
        self._vals = self._snapshots = None

    # ------------------------------------------------------------------ a model as a layer
    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        """The model's output(s) on already-checked arrays (its use as a layer)."""
        xs = list(x) if isinstance(x, (list, tuple)) and len(self._input_slots) > 1 else [x]
        outs = self._run_forward(xs, training=training)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, d_out: Any) -> Any:
        self._run_backward(list(d_out) if len(self._output_slots) > 1 else [d_out])
        d = self._d_inputs
        return d[0] if len(d) == 1 else d

    @property
    def takes_input_list(self) -> bool:
        return len(getattr(self, "_input_slots", ())) > 1

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = list(self._output_shapes)
        return shapes[0] if len(shapes) == 1 else shapes

    def build(self, input_shape: Any = None) -> None:
        """A functional model: nothing to do (it is built when it is made). A subclassed one:
        traces its ``call`` on inputs of `input_shape` (with the batch axis, as Keras: e.g.
        ``(None, 50, 1)``; a list of shapes for several inputs)."""
        if not self._subclassed or self.built:
            return
        if input_shape is None:
            raise ValueError(f"Model `{self.name}` needs `input_shape` to be built, e.g. "
                             "model.build((None, time, features)).")
        many = isinstance(input_shape, list) and input_shape and isinstance(
            input_shape[0], (list, tuple))
        shapes = list(input_shape) if many else [input_shape]
        specs = []
        for s in shapes:
            s = tuple(s)
            if len(s) < 2:
                raise ValueError(
                    f"Received an invalid value for argument `input_shape` of `{self.name}`."
                    f"build, expected shapes with the batch axis first, got {input_shape!r}.")
            specs.append(s[1:])
        self._trace_call(specs, [self._dtype] * len(specs), "list" if many else "single", None)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """On symbolic tensors: nests the model in another. On arrays: its output(s) on `x`
        in one batch (checked like ``predict``'s input)."""
        from ..layers import symbolic
        if symbolic.is_symbolic(x):
            return symbolic.call(self, x, **kwargs)
        training = bool(kwargs.pop("training", args[0] if args else False))
        outs = self._run_forward(self._check_inputs(x), training=training)
        outs = [np.array(o) for o in outs]
        return outs[0] if len(outs) == 1 else outs

    # ------------------------------------------------------------------ weights
    @property
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self._unique_layers() for w in layer.weights]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self._unique_layers() for g in layer.grads]

    @property
    def weight_names(self) -> list[str]:
        return [f"{layer.name}/{n}" for layer in self._unique_layers()
                for n in layer.weight_names]

    def _bind(self, weight_views: list[np.ndarray], grad_views: list[np.ndarray]) -> None:
        offset = 0
        for layer in self._unique_layers():
            n = len(layer.weights)
            layer._bind(weight_views[offset:offset + n], grad_views[offset:offset + n])
            offset += n

    def _pack_weights(self) -> None:
        """One flat parameter buffer and one flat gradient buffer; layers get views."""
        layers = self._unique_layers()
        expected = getattr(_loading_shapes, "shapes", None)
        if expected is not None:  # a file is being loaded: its weights must fit first
            check_saved_shapes(self.name, [(f"{layer.name}/{n}", w.shape) for layer in layers
                                           for n, w in zip(layer.weight_names, layer.weights)],
                               expected)
        total = sum(w.size for layer in layers for w in layer.weights)
        params = aligned_zeros(total, self._dtype)
        grads = aligned_zeros(total, self._dtype)
        param_views, grad_views = [], []
        offset = 0
        for layer in layers:
            pv, gv = [], []
            for w in layer.weights:
                pv.append(params[offset:offset + w.size].reshape(w.shape))
                gv.append(grads[offset:offset + w.size].reshape(w.shape))
                offset += w.size
            layer._bind(pv, gv)
            param_views.extend(pv)
            grad_views.extend(gv)
        self._param_buffer, self._grad_buffer = params, grads
        self._param_views, self._grad_views = param_views, grad_views
        self._packed_ids = tuple(id(w) for w in self.weights)

    def _ensure_packed(self) -> None:
        """Re-packs when a layer's storage moved (e.g. into an outer model's buffer)."""
        if tuple(id(w) for w in self.weights) != self._packed_ids:
            self._pack_weights()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"Model `{self.name}` has not been built yet, so {what} is not available: "
                "call build(input_shape), fit or predict first, or give the first layer an "
                "`input_shape`."
            )

    def count_params(self) -> int:
        """The number of scalar parameters."""
        self._require_built("count_params()")
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, layer by layer, in Keras order."""
        self._require_built("get_weights()")
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list) -> None:
        """Sets every weight from a list shaped like :meth:`get_weights`'s (all arrays are
        checked and converted before any is assigned)."""
        self._require_built("set_weights()")
        mine = self.weights
        if not isinstance(weights, (list, tuple)) or len(weights) != len(mine):
            raise ValueError(
                f"Model `{self.name}` expects {len(mine)} weight arrays, got "
                f"{len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__}."
            )
        arrays = []
        for k, (view, w) in enumerate(zip(mine, weights)):
            a = np.asarray(w)
            if a.dtype.kind not in "biuf":
                raise ValueError(
                    f"Model `{self.name}`: weight {k} must be a real numeric array, got dtype "
                    f"{a.dtype}."
                )
            if a.shape != view.shape:
                raise ValueError(
                    f"Model `{self.name}`: weight {k} has shape {view.shape}, the value given "
                    f"has shape {a.shape}."
                )
            arrays.append(a.astype(view.dtype, copy=False))
        for view, a in zip(mine, arrays):
            view[...] = a

    def save_weights(self, path: str) -> None:
        """Writes the weights to an ``.npz`` file at exactly `path` (written atomically)."""
        self._require_built("save_weights()")
        saving.save_weights_file(path, self.get_weights(), self.weight_names)

    def load_weights(self, path: str) -> None:
        """Reads weights written by :meth:`save_weights` (or inside a :meth:`save` archive)."""
        self._require_built("load_weights()")
        self.set_weights(saving.load_weights_file(path))

    def reset_states(self) -> None:
        """Clears the carried state of every stateful layer."""
        for layer in self._unique_layers():
            layer.reset_states()

    def export(self, filepath: Any, format: str = "onnx") -> None:
        """Writes the model for inference elsewhere (Keras 3's name); `format`: ``"onnx"``.

        The ONNX graph (see :mod:`fastrnn.export.onnx`) uses ONNX's own RNN/LSTM/GRU
        operators, has dynamic ``batch`` and ``time`` axes, and takes and gives every
        recurrent layer's state (``<layer>/h``, ``<layer>/h_out``, ...) so that a stream can be
        run piece by piece. Needs ``pip install "fastrnn[onnx]"``. A layer ONNX cannot express
        raises ``ValueError`` naming it; a failed export leaves no file behind.
        """
        if format != "onnx":
            raise ValueError(
                "Received an invalid value for argument `format`, expected 'onnx' (fastrnn "
                f"exports ONNX only), got {format!r}."
            )
        from ..export import export_onnx

        export_onnx(self, filepath)

    def stepper(self, batch_size: int = 1) -> Any:
        """A streaming stepper of the whole model: one time step in, the model's output out.

        ``s = model.stepper(batch_size=B)``; ``s.step(x_t)`` takes one step ``(B, features)``
        of `B` independent streams and returns the model's output for it ``(B, out)``, every
        recurrent layer's state carried inside (from zeros). Feeding ``x[:, 0], x[:, 1], ...``
        gives at step ``t`` what ``predict(x[:, :t + 1])`` gives: the final output for a model
        whose last recurrent layer returns its last state, ``y[:, t]`` for a
        sequence-to-sequence one. ``s.reset()`` zeroes the states, ``s.reset(states=...)`` sets
        them, ``s.states`` copies them (one list per recurrent layer: ``[h]``, LSTM ``[h, c]``).

        Each step is one C++ call for all layers (no allocation but the returned array, none
        with ``s.step(x_t, out=buffer)``; the GIL released). The weights are copied when the
        stepper is made: training the model afterwards does not change it (make a new one).
        A stepper keeps its own states: a stateful layer's carried state is neither read nor
        changed (pass it with ``reset(states=...)`` to continue from it).

        The model must be a chain (one input ``(batch, time, features)``, one output, each layer
        feeding the next) of SimpleRNN/LSTM/GRU (without layer_norm or go_backwards), Dense,
        TimeDistributed(Dense), Activation, Dropout and InputLayer, optionally after an
        Embedding (without mask_zero) as the first layer, whose steps take ``(B,)`` token ids;
        anything else raises ``ValueError`` naming the layer and why it cannot stream.
        """
        from .stepper import model_stepper  # (stepper.py needs the model classes)

        return model_stepper(self, batch_size)

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn: Optional[Callable[[str], Any]] = print) -> str:
        """Prints (with `print_fn`; None: not at all) and returns a Keras-like table of layers,
        output shapes, parameter counts and, for graphs, what each layer is connected to."""
        self._summary_ready()
        rows = self._summary_rows()
        connected = any(len(r) > 3 for r in rows)
        widths = (33, 27, 12, 30) if connected else (33, 27, 12)
        rule = "_" * sum(widths)

        def row(*cells: str) -> str:
            return "".join(c[:w - 1].ljust(w) for c, w in zip(cells, widths)).rstrip()

        head = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected
                                                             else [])
        lines = [f'Model: "{self.name}"', rule, row(*head), "=" * sum(widths)]
        for k, cells in enumerate(rows):
            extra = cells[4:] if len(cells) > 4 else []
            lines.append(row(*cells[:4]))
            for more in extra:
                lines.append(row("", "", "", more))
            lines.append("" if k < len(rows) - 1 else "=" * sum(widths))
        total = self.count_params()
        trainable = sum(_trainable_params(layer) for layer in self._unique_layers())
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def _summary_ready(self) -> None:
        self._require_built("summary()")

    def _summary_rows(self) -> list[list[str]]:
        rows = []
        in_model = {id(n) for n in self._nodes}
        for layer in self._graph_layers:
            nodes = [n for n in layer._inbound_nodes if id(n) in in_model]
            shapes = [t.shape for n in nodes[:1] for t in n.outputs]
            shape = shapes[0] if len(shapes) == 1 else list(shapes)
            links = []
            for n in nodes:
                links.extend(f"{t.producer.name}[{t.node_index}][{t.tensor_index}]"
                             for t in n.inputs)
            cells = [f"{layer.name} ({type(layer).__name__})", shape_str(shape),
                     f"{layer.count_params():,}", links[0] if links else "-", *links[1:]]
            rows.append(cells)
        return rows

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """The graph: the layers (serialized) and the calls between them, by position. A
        subclassed model: its ``__init__`` arguments (Keras 3's automatic config), unless the
        class defines get_config."""
        if self._subclassed:
            from ..layers import traced
            return traced.auto_config(self, {"name": self.name, "trainable": self.trainable,
                                             "dtype": self._dtype.name, "seed": None})
        return self._graph_config()

    def _graph_config(self) -> dict:
        position = {id(n): k for k, n in enumerate(self._nodes)}
        nodes = []
        for node in self._nodes:
            nodes.append({
                "layer": node.layer.name,
                "inputs": [[position[id(t.node)], t.tensor_index] for t in node.inputs],
                "n_main": node.n_main,
                "main_is_list": node.main_is_list,
                "training": node.training,
            })

        def where(t: SymbolicTensor) -> list:
            return [position[id(t.node)], t.tensor_index]

        return {
            "name": self.name,
            "layers": [layers_module.serialize(layer) for layer in self._graph_layers],
            "nodes": nodes,
            "inputs": [where(t) for t in self._inputs],
            "outputs": [where(t) for t in self._outputs],
            "input_keys": self._input_names if self._inputs_struct == "dict" else None,
            "output_keys": self._output_names if self._outputs_struct == "dict" else None,
            "inputs_struct": self._inputs_struct,
            "outputs_struct": self._outputs_struct,
        }

    @classmethod
    def from_config(cls, config: dict) -> Model:
        if cls._subclassed:
            config = {k: v for k, v in dict(config).items()
                      if k not in ("trainable", "dtype", "seed")}
            return cls(**config)
        from .serialization import functional_from_config
        return functional_from_config(config)

    def _class_name(self) -> str:
        if self._subclassed:
            return getattr(type(self), "_registered_name", None) or type(self).__name__
        return "Functional"

    def save(self, path: str) -> None:
        """Saves architecture, compile config and weights to `path` (see fastrnn.saving).

        `path` becomes one zip archive (any name; ``.fastrnn`` is customary) unless it is an
        existing directory, which then receives ``model.json`` and ``weights.npz``.
        """
        self._save(path)

    def _save(self, path: str, progress: Optional[dict] = None) -> None:
        """:meth:`save`, with `progress` (JSON-ready: where a training run stands) kept in the
        config too (``BackupAndRestore``'s backups are model files with it)."""
        from .serialization import compile_config
        self._require_built("save()")
        config = {
            "format": saving.FORMAT_NAME,
            "format_version": saving.FORMAT_VERSION,
            "class_name": self._class_name(),
            "config": self.get_config(),
            "compile_config": compile_config(self),
        }
        if self._subclassed:
            config["subclassed"] = True
            config["build_input"] = self._built_from
        weights, names = self.get_weights(), self.weight_names
        # What continuing training exactly needs: the optimizer's slots (after the weights),
        # its step count and learning rate, and the random streams of shuffling and dropout.
        if getattr(self, "compiled", False):
            state = self.optimizer.get_state()
            slots = [k for k in state if k.startswith("slots/")]
            config["optimizer_state"] = {"iterations": int(state["iterations"]),
                                         "learning_rate": float(state["learning_rate"]),
                                         "slots": slots}
            weights += [state[k] for k in slots]
            names += [f"optimizer/{k}" for k in slots]
        config["rng_state"] = [None if g is None else g.bit_generator.state
                               for g in self._rng_generators()[:-1]]
        if progress is not None:
            config["training_progress"] = progress
        saving.save_archive(path, config, weights, names)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _snake_name(name: str) -> str:
    from ..layers.base import _snake
    return _snake(name)


def _trainable_params(layer: Any) -> int:
    """Parameters the optimizer changes: none of a frozen layer, and not the ones a layer
    updates itself (BatchNormalization's moving statistics)."""
    if not layer.trainable:
        return 0
    if isinstance(layer, Model):
        return sum(_trainable_params(inner) for inner in layer._unique_layers())
    frozen = set(getattr(layer, "non_trainable_weight_names", ()))
    return int(sum(w.size for name, w in zip(layer.weight_names, layer.weights)
                   if name not in frozen))


def _add(grads: list, slot: int, d: Any) -> None:
    if d is None:
        return
    grads[slot] = d if grads[slot] is None else grads[slot] + d


_TAKES_MASK: dict = {}


def _takes_mask(layer: Any) -> bool:
    """Whether ``layer.forward`` has a `mask` parameter (checked once per class)."""
    cls = type(layer)
    found = _TAKES_MASK.get(cls)
    if found is None:
        if getattr(cls, "_keras_style", False):  # Keras's: a call with a `mask` argument
            from ..layers import traced
            found = _TAKES_MASK[cls] = traced._call_params(cls)[1]
        else:
            import inspect
            found = _TAKES_MASK[cls] = "mask" in inspect.signature(cls.forward).parameters
    return found


def _overrides_compute_mask(layer: Any) -> bool:
    """Whether the layer computes masks of its own (rather than passing one on or none)."""
    base = getattr(Layer, "compute_mask", None)
    mine = getattr(type(layer), "compute_mask", None)
    return mine is not None and mine is not base


def _output_mask(layer: Any, arg: Any, mask: Any, has_mask: bool) -> Any:
    """The mask a call passes on (Keras's ``compute_mask``); None when no mask flows."""
    compute = getattr(layer, "compute_mask", None)
    if compute is None:
        return None
    if not has_mask and type(layer).compute_mask is getattr(Layer, "compute_mask", None):
        return None  # the default passes an absent mask on as absent
    return compute(arg, mask if has_mask else None)
