"""`Model`: what every model is (layers whose weights live in one flat buffer, trained by the
one engine of :mod:`.trainer`, a layer itself), and a subclassed model's runtime: a subclass
of ``Model`` with a ``call`` is traced into a :class:`~fastrnn.models.graph.Graph` on its first
data and runs that graph.

``Model(inputs, outputs)`` makes a :class:`~fastrnn.models.functional.Functional` (the class
registers itself as ``Model._functional_class`` when its module is imported: this module
imports no other model class). :class:`~fastrnn.models.sequential.Sequential` keeps its own
chain of layers. What a model must give the trainer (checked input arrays, a forward and a
backward pass, its output names and shapes) is the protocol of the methods below that start
with ``_check_inputs``/``_run_``; the file format is :mod:`fastrnn.saving`'s.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable, Optional

import numpy as np

from .. import _seed, saving
from ..export import onnx as onnx_export
from ..layers import symbolic, traced
from ..layers.base import Layer, _snake, first_shape_mismatch
from ..layers.core import Input, InputLayer
from ..layers.symbolic import SymbolicTensor
from . import stepper
from .common import (
    aligned_zeros,
    check_input_array,
    check_name,
    is_model,
    shape_str,
    sublayers,
    trainable_params,
    unique_model_name,
)
from .graph import Graph
from .trainer import Trainer

__all__ = ["Model"]


def _functional_arguments(args: tuple, kwargs: dict) -> bool:
    """Whether a ``Model(...)`` call gives a graph's inputs and outputs."""
    return (len(args) >= 2 or (len(args) == 1 and "outputs" in kwargs)
            or ("inputs" in kwargs and "outputs" in kwargs))


class Model(Trainer, Layer):
    """A model: ``fastrnn.Model(inputs, outputs)`` builds a functional (graph) model (a
    :class:`~fastrnn.models.functional.Functional`); a subclass with a ``call`` is Keras's
    subclassed model.

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

    # What ``Model(inputs, outputs)`` makes: set by fastrnn.models.functional on import.
    _functional_class: Optional[type[Model]] = None
    _subclassed = False
    _fastrnn_tracking = False  # a subclass's attribute assignments track its layers
    # The graph a functional model is made of, or a subclassed one was traced into (None
    # before that; always None for a Sequential, which keeps its own chain).
    _graph: Optional[Graph] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Model and _functional_arguments(args, kwargs):
            assert Model._functional_class is not None
            cls = Model._functional_class
        return object.__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "call" in vars(cls) or any("call" in vars(c) for c in cls.__mro__[1:]
                                      if c not in (Model, Layer, Trainer, object)):
            cls._subclassed = True
            # a subclass's attribute assignments track its layers; its __init__ arguments are
            # recorded (its automatic config)
            if not cls._fastrnn_tracking:
                cls.__setattr__ = traced._tracking_setattr  # type: ignore[method-assign]
                cls._fastrnn_tracking = True
            if "__new__" not in vars(cls):
                cls.__new__ = traced._recording_new  # type: ignore[method-assign]

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
            self._init_model(name, seed, _snake(type(self).__name__))
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
        inputs = [Input(shape=tuple(s), dtype=dt, name=None if keys is None else keys[k])
                  for k, (s, dt) in enumerate(zip(specs, dtypes))]
        if struct == "dict" and keys is not None:
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
        tracked = self.__dict__.get("_tracked_layers", ()) if self._subclassed else None
        graph = Graph(inputs, outputs, self.name, tracked_layers=tracked)
        self._graph = graph
        self._input_names = list(graph.input_names)
        self._output_names = list(graph.output_names)
        self._dtype = graph.dtype
        self._set_input_grads()
        self._pack_weights()
        self.built = True

    def _set_input_grads(self) -> None:
        if self._graph is not None:
            self._graph.set_input_grads(self._input_grad_needed)

    def _stream_graph(self) -> tuple[tuple[int, int, list], int]:
        """``((input slot, output slot, calls in run order), input rank without the batch
        axis)`` for the stepper (see ``Graph.stream_calls``)."""
        assert self._graph is not None
        return self._graph.stream_calls(self.name), len(self._graph.input_specs[0])

    @property
    def input_shape(self) -> Any:
        """The input shape(s), with the batch axis as None (a list for several inputs)."""
        if self._graph is None:
            return None
        shapes = [(None, *s) for s in self._graph.input_specs]
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
    def _output_shapes(self) -> list[tuple]:
        """The output shapes without the batch axis (None entries: any size)."""
        return [] if self._graph is None else list(self._graph.output_shapes)

    @property
    def _call_input_shape(self) -> Any:
        """The input shape(s) without the batch axis (what a layer's input_shape holds)."""
        assert self._graph is not None
        specs = self._graph.input_specs
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
        layers = [] if self._graph is None else self._graph.layers
        if self._subclassed:
            return [layer for layer in layers if not isinstance(layer, InputLayer)]
        return list(layers)

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Any:
        """The layer called `name`, or at position `index` of :attr:`layers` (Keras's
        ``get_layer``; give one of the two)."""
        if name is not None and index is not None:
            raise ValueError("Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise ValueError(f"Received an invalid value for argument `index`: expected an "
                                 f"integer, got {index!r}.")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model "
                                 f"`{self.name}` only has {len(layers)} layers.")
            return layers[index]
        if name is not None:
            for layer in layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: "
                             f"{[layer.name for layer in layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def _unique_layers(self) -> list:
        return [] if self._graph is None else self._graph.layers

    @property
    def inputs(self) -> list:
        """The symbolic input tensors of the model's graph."""
        if self._graph is None:
            raise AttributeError(f"Model `{self.name}` has no graph yet, so no symbolic inputs.")
        return list(self._graph.inputs)

    @property
    def outputs(self) -> list:
        """The symbolic output tensors of the model's graph."""
        if self._graph is None:
            raise AttributeError(f"Model `{self.name}` has no graph yet, so no symbolic "
                                 "outputs.")
        return list(self._graph.outputs)

    @property
    def input(self) -> Any:
        """The symbolic input tensor, or the list of them for several inputs (Keras's
        ``model.input``)."""
        inputs = self.inputs
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self) -> Any:
        """The symbolic output tensor, or the list of them for several outputs (Keras's
        ``model.output``)."""
        outputs = self.outputs
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def _iter_all_layers(self) -> list:
        return [sub for layer in self._unique_layers() for sub in sublayers(layer)]

    # ------------------------------------------------------------------ arrays in
    def _check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]:
        """`x` as one checked array per input (float in the model's dtype, or integer ids)."""
        if self._subclassed and not self.built:
            self._build_subclassed_from(x)
        graph = self._graph
        assert graph is not None
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
        out: list = []
        for k, value in enumerate(xs):
            what = name if n_in == 1 else f"{name}[{names[k]!r}]"
            a = check_input_array(value, what)
            spec = graph.input_specs[k]
            self._check_spec(a, spec, what)
            if out and a.shape[0] != out[0].shape[0]:
                raise ValueError(
                    f"Received inconsistent data sizes: `{what}` has {a.shape[0]} samples, the "
                    f"first input {out[0].shape[0]}; expected the same number."
                )
            dt = graph.input_dtypes[k]
            if dt.kind in "biu" or (a.dtype.kind in "biuf" and graph.ids_only[k]):
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

    # ------------------------------------------------------------------ running
    def _run_forward(self, xs: list, training: bool) -> list:
        """The output arrays on the checked input arrays `xs` (the output masks are left in
        ``_output_masks``)."""
        assert self._graph is not None
        outs, self._output_masks = self._graph.forward(self, xs, training)
        return outs

    def _run_backward(self, d_outputs: list) -> None:
        """Backward from the outputs' gradients: weight gradients into the gradient buffer,
        the inputs' into ``_d_inputs``."""
        assert self._graph is not None
        self._d_inputs = self._graph.backward(self, d_outputs)

    # ------------------------------------------------------------------ a model as a layer
    def forward(self, x: Any, training: bool = False,  # type: ignore[override]
                mask: Any = None) -> Any:
        """The model's output(s) on already-checked arrays (its use as a layer); it takes no
        other keyword (a layer's ``**kwargs``), so a wrong one raises."""
        xs = list(x) if isinstance(x, (list, tuple)) and self.takes_input_list else [x]
        outs = self._run_forward(xs, training=training)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, d_out: Any) -> Any:
        self._run_backward(list(d_out) if len(self._output_names) > 1 else [d_out])
        d = self._d_inputs
        return d[0] if len(d) == 1 else d

    @property
    def takes_input_list(self) -> bool:
        return self._graph is not None and len(self._graph.input_slots) > 1

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
    def trainable_weights(self) -> list[np.ndarray]:
        """The weights that train: each trainable layer's own (a frozen layer's none, a
        BatchNormalization's moving statistics never), none when the model is frozen."""
        if not self.trainable:
            return []
        return [w for layer in self._unique_layers() for w in layer.trainable_weights]

    @property
    def variables(self) -> list:
        """Every layer's :attr:`~fastrnn.layers.Layer.variables`, in the order of
        :attr:`weights`."""
        return [v for layer in self._unique_layers() for v in layer.variables]

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
        expected = saving.expected_weight_shapes()
        if expected is not None:  # a file is being loaded: its weights must fit first
            saving.check_saved_shapes(self.name, [(f"{layer.name}/{n}", w.shape) for layer in layers
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
        onnx_export.export_onnx(self, filepath)

    def stepper(self, batch_size: int = 1) -> Any:
        """A streaming stepper of the whole model: one time step in, the model's output out.

        ``s = model.stepper(batch_size=B)``; ``s.step(x_t)`` takes one step ``(B, features)``
        of `B` independent streams and returns the model's output for it ``(B, out)``, every
        recurrent layer's state carried inside (from zeros). Feeding ``x[:, 0], x[:, 1], ...``
        gives at step ``t`` what ``predict(x[:, :t + 1])`` gives: the final output for a model
        whose last recurrent layer returns its last state, ``y[:, t]`` for a
        sequence-to-sequence one. ``s.reset()`` zeroes the states, ``s.reset(states=...)`` sets
        them, ``s.states`` copies them (one list per layer with a state, in run order: a
        recurrent layer's ``[h]``, LSTM ``[h, c]``, each ``(B, units)``; a causal Conv1D's
        ``[window]`` ``(B, span, channels)``, its last ``span`` inputs, oldest first).

        Each step is one C++ call for all layers (no allocation but the returned array, none
        with ``s.step(x_t, out=buffer)``; the GIL released). The weights are copied when the
        stepper is made: training the model afterwards does not change it (make a new one).
        A stepper keeps its own states: a stateful layer's carried state is neither read nor
        changed (pass it with ``reset(states=...)`` to continue from it).

        The model must have one input ``(batch, time, features)`` and one output, and be made
        of layers that act one step at a time: SimpleRNN/LSTM/GRU (with or without
        layer_norm; not go_backwards), Dense, Activation (and ReLU, ELU, Softmax of the
        default parameters), LayerNormalization, BatchNormalization (its moving
        statistics), Normalization (per feature), Conv1D with ``padding="causal"`` and
        ``strides=1`` (any kernel_size, dilation_rate, groups), TimeDistributed of the
        per-step layers, and the identities at inference (Dropout, the noise layers,
        Identity, InputLayer), in a chain or in branches joined by Add, Subtract, Multiply,
        Average, Maximum, Minimum or Concatenate (over the features); nested models are
        unrolled; a shared layer is a stage per call. An Embedding (without mask_zero) may
        come first: its steps take ``(B,)`` token ids. Anything else (Bidirectional,
        go_backwards, masks, pooling, Flatten, non-causal or strided convolutions, several
        inputs or outputs, ...) raises ``ValueError`` naming the layer and why it cannot
        stream.
        """
        return stepper.model_stepper(self, batch_size)

    # ------------------------------------------------------------------ summary
    def summary(self, line_length: Optional[int] = None, positions: Optional[list] = None,
                print_fn: Optional[Callable[[str], Any]] = print, expand_nested: bool = False,
                show_trainable: bool = False, layer_range: Optional[Any] = None) -> str:
        """Prints (with `print_fn`; None: not at all) and returns a Keras-like table of layers,
        output shapes, parameter counts and, for graphs, what each layer is connected to.

        Args:
            line_length: the table's width in characters (default 102, or 72 without the
                connections column).
            positions: where each column ends: fractions of `line_length` (values <= 1) or
                character positions, one per column.
            print_fn: called with the table's text; None: not printed (it is returned).
            expand_nested: list the layers of nested models under them, indented.
            show_trainable: a ``Trainable`` column: Y, N, or - for a layer without weights.
            layer_range: ``(first, last)`` layer names (regular expressions, both included):
                only the rows from the first layer matching `first` to the next matching
                `last`.
        """
        self._summary_ready()
        rows = self._summary_table(expand_nested, show_trainable)
        if layer_range is not None:
            rows = _rows_in_range(rows, layer_range)
        connected = self._graph is not None  # a graph's rows say what feeds each layer
        head = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected
                                                             else []) + (
            ["Trainable"] if show_trainable else [])
        widths = _column_widths(len(head), connected, show_trainable, line_length, positions)
        rule = "_" * sum(widths)

        def row(*cells: str) -> str:
            return "".join(c[:w - 1].ljust(w) for c, w in zip(cells, widths)).rstrip()

        lines = [f'Model: "{self.name}"', rule, row(*head), "=" * sum(widths)]
        for k, cells in enumerate(rows):
            flag = [cells[-1]] if show_trainable else []
            cells = cells[:-1] if show_trainable else cells
            extra = cells[4:] if connected and len(cells) > 4 else []
            main = (cells + ["", ""])[:4] if connected else cells[:3]  # nested rows padded
            lines.append(row(*main, *flag))
            for more in extra:
                lines.append(row("", "", "", more))
            lines.append("" if k < len(rows) - 1 else "=" * sum(widths))
        total = self.count_params()
        trainable = sum(trainable_params(layer) for layer in self._unique_layers())
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def _summary_table(self, expand_nested: bool, show_trainable: bool, depth: int = 0
                       ) -> list[list[str]]:
        """The rows of :meth:`summary` (nested models' rows after theirs when expanded)."""
        out = []
        for layer, cells in zip(self._unique_layers_in_summary(), self._summary_rows()):
            cells = list(cells)
            cells[0] = "  " * depth + cells[0]
            if show_trainable:
                cells.append("-" if not layer.weights else "Y" if layer.trainable else "N")
            out.append(cells)
            if expand_nested and is_model(layer):
                layer._summary_ready()
                out += layer._summary_table(True, show_trainable, depth + 1)
        return out

    def _unique_layers_in_summary(self) -> list:
        """The layers of :meth:`_summary_rows`, row by row."""
        return list(self._unique_layers())

    def _summary_ready(self) -> None:
        self._require_built("summary()")

    def _summary_rows(self) -> list[list[str]]:
        assert self._graph is not None
        return self._graph.summary_rows()

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """A subclassed model's config: its ``__init__`` arguments (Keras 3's automatic
        config), unless the class defines get_config. (A functional model's is its graph.)"""
        return traced.auto_config(self, {"name": self.name, "trainable": self.trainable,
                                         "dtype": self._dtype.name, "seed": None})

    @classmethod
    def from_config(cls, config: dict) -> Model:
        """The model of a ``get_config`` dict: a subclassed model from its ``__init__``
        arguments; a functional model or a Sequential by its class's own config code
        (``_from_file_config``); ``Model.from_config`` of a functional model's config
        rebuilds that graph (as Keras's)."""
        if cls._subclassed:
            config = {k: v for k, v in dict(config).items()
                      if k not in ("trainable", "dtype", "seed")}
            return cls(**config)
        target = Model._functional_class if cls is Model else cls
        assert target is not None
        return target._from_file_config(config, "<config>")

    @classmethod
    def _from_file_config(cls, config: dict, path: str) -> Model:
        """The model of a saved config, errors naming `path` (each model class defines it)."""
        raise NotImplementedError(f"{cls.__name__} has no saved config of its own.")

    def _class_name(self) -> str:
        """The class name the file records (a subclass: its registered name)."""
        return getattr(type(self), "_registered_name", None) or type(self).__name__

    def _saved_build_input(self) -> Optional[dict]:
        """What rebuilding a subclassed model needs besides its config: the input specs it
        was traced for (None for other models)."""
        return self._built_from if self._subclassed else None

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as a JSON string (Keras's ``to_json``; `kwargs` go to
        ``json.dumps``): ``{"class_name", "config"}``, what :func:`fastrnn.models.model_from_json`
        rebuilds (with new weights)."""
        return json.dumps(saving.serialize_model(self), **kwargs)

    def save(self, path: str) -> None:
        """Saves architecture, compile config, weights, optimizer state and random streams to
        `path` (the format: :mod:`fastrnn.saving`).

        `path` becomes one zip archive (any name; ``.fastrnn`` is customary) unless it is an
        existing directory, which then receives ``model.json`` and ``weights.npz``.
        """
        saving.save_model(self, path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"



def _column_widths(columns: int, connected: bool, show_trainable: bool,
                   line_length: Optional[int], positions: Optional[list]) -> list[int]:
    """Each summary column's width: from `positions` (fractions of `line_length` or character
    positions where columns end) or the defaults scaled to `line_length`."""
    default = [33, 27, 12] + ([30] if connected else []) + ([11] if show_trainable else [])
    if line_length is not None and (isinstance(line_length, bool) or not isinstance(
            line_length, int) or line_length < columns * 4):
        raise ValueError(f"Received an invalid value for argument `line_length`: expected an "
                         f"integer of at least {columns * 4}, got {line_length!r}.")
    length = line_length or sum(default)
    if positions is None:
        ends = list(np.cumsum(default) * length / sum(default))
    else:
        if not isinstance(positions, (list, tuple)) or len(positions) != columns or not all(
                isinstance(p, (int, float)) and not isinstance(p, bool) and p > 0
                for p in positions):
            raise ValueError(f"Received an invalid value for argument `positions`: expected "
                             f"{columns} positive numbers (fractions or character positions "
                             f"where the columns end), got {positions!r}.")
        ends = [p * length if p <= 1 else p for p in positions]
    ends = [int(round(e)) for e in ends]
    widths = [b - a for a, b in zip([0, *ends[:-1]], ends)]
    if any(w < 2 for w in widths):
        raise ValueError(f"Received an invalid value for argument `positions`: the columns must "
                         f"end in increasing order, got {positions!r}.")
    return widths


def _rows_in_range(rows: list, layer_range: Any) -> list:
    """The summary rows from the first whose layer name matches ``layer_range[0]`` to the next
    matching ``layer_range[1]`` (regular expressions)."""
    if not (isinstance(layer_range, (list, tuple)) and len(layer_range) == 2
            and all(isinstance(p, str) for p in layer_range)):
        raise ValueError("Received an invalid value for argument `layer_range`: expected two "
                         f"layer names (or patterns), got {layer_range!r}.")
    names = [cells[0].strip().split(" (")[0] for cells in rows]
    first = next((k for k, n in enumerate(names) if re.match(layer_range[0], n)), None)
    last = next((k for k, n in enumerate(names) if first is not None and k >= first
                 and re.match(layer_range[1], n)), None)
    if first is None or last is None:
        raise ValueError(f"Received an invalid value for argument `layer_range`: no layers "
                         f"from {layer_range[0]!r} to {layer_range[1]!r} among {names}.")
    return rows[first:last + 1]
