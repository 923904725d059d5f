"""`Sequential`: a model that is a chain of layers (the simplest graph), built lazily.

What every model has (the training engine, weights in one flat buffer, saving) comes from
:class:`fastrnn.models.Model`; a Sequential keeps its own list of layers (no graph): ``add``,
building from the first layer's ``input_shape`` or from the first data it sees, a
forward/backward that is one loop over the layers, and its config.

Reproducibility: :func:`fastrnn.set_seed` (or ``Sequential(seed=...)``) fixes the initial
weights, the dropout masks and the shuffling; on the same machine and thread count two runs
are bit-identical.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from .. import layers as layers_module
from .. import saving
from ..layers import symbolic
from ..layers.core import InputLayer
from ..layers.symbolic import SymbolicTensor
from .common import (
    check_input_array,
    forward_with_mask,
    output_mask,
    rebuild_layer,
    shape_str,
    stacked_forward,
    stacked_run,
    sublayers,
)
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers, trained on NumPy arrays like a Keras ``Sequential``.

    Args:
        layers: the layers, first to last (more can be added with :meth:`add`); the first may
            be ``fastrnn.Input(shape)`` to declare the input shape.
        name: the model's name (default ``"sequential"``, ``"sequential_1"``, ...).
        seed: a per-model seed; by default the seed comes from :func:`set_seed`, or is random.

    The model is built on its first ``fit``/``predict``/``evaluate``/call, from the first
    layer's ``input_shape`` if it has one, else from the data; or by :meth:`build`.
    """

    def __init__(self, layers: Optional[list] = None, name: Optional[str] = None,
                 seed: Optional[int] = None):
        self._init_model(name, seed, "sequential")
        self._layers: list = []
        self._build_shape: Optional[tuple] = None  # without the batch axis
        self._input_spec: Optional[tuple] = None  # None where any size is accepted
        self._output_shape: Optional[tuple] = None
        self._symbolic_io: Optional[tuple[list, list]] = None  # (inputs, outputs) when traced
        self._input_names = ["input"]
        self._output_names = ["output"]
        self._build_lock = threading.Lock()
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list:
        """The layers, first to last (a copy of the list), without the InputLayer of a
        ``fastrnn.Input`` given first (as Keras's: ``layers[0]`` is the first layer added
        after it)."""
        if self._layers and isinstance(self._layers[0], InputLayer):
            return self._layers[1:]
        return list(self._layers)

    def _unique_layers(self) -> list:
        return self._layers

    def _iter_all_layers(self) -> list:
        return [sub for layer in self._layers for sub in sublayers(layer)]

    def add(self, layer: Any) -> None:
        """Appends `layer`; a built model is rebuilt (keeping its weights) on its next use."""
        if isinstance(layer, SymbolicTensor):
            if self._layers or not isinstance(layer.producer, InputLayer):
                raise ValueError(
                    "Received a symbolic tensor in Sequential.add: only fastrnn.Input(shape), "
                    "as the first entry, declares the input shape; pass layers otherwise."
                )
            layer = layer.producer
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(
                "Received an invalid value for argument `layer`: expected a fastrnn layer "
                f"(fastrnn.layers.*), got {type(layer).__name__}."
            )
        if any(layer is other for other in self._layers):
            raise ValueError(f"Layer `{layer.name}` is already in model `{self.name}`.")
        self._layers.append(layer)
        self.__dict__.pop("_stacked_ends", None)
        if self.built:
            self.built = False

    def pop(self, rebuild: bool = True) -> Any:
        """Removes the last layer and returns it (Keras's ``pop``). The other layers keep
        their weights; a built model is rebuilt at once (`rebuild`) or on its next use."""
        if not any(not isinstance(layer, InputLayer) for layer in self._layers):
            raise TypeError(f"There are no layers in model `{self.name}` to pop.")
        layer = self._layers.pop()
        self.__dict__.pop("_stacked_ends", None)
        if self.built:
            self.built = False
            self._symbolic_io = None
            if rebuild and self._build_shape is not None:
                assert self._input_spec is not None
                with self._build_lock:
                    self._build_from(self._build_shape, self._input_spec)
        return layer

    @property
    def input_shape(self) -> Optional[tuple]:
        """The built input shape, with the batch axis as None."""
        shape = getattr(self, "_build_shape", None)
        return None if shape is None else (None, *shape)

    @input_shape.setter
    def input_shape(self, value: Any) -> None:  # Layer.__init__ assigns it; derived here
        pass

    @property
    def output_shape(self) -> Optional[tuple]:
        """The output shape, with the batch axis as None."""
        shape = getattr(self, "_output_shape", None)
        return None if shape is None else (None, *shape)

    @output_shape.setter
    def output_shape(self, value: Any) -> None:
        pass

    @property
    def _call_input_shape(self) -> Any:
        return self._input_spec

    @property
    def _output_shapes(self) -> list[tuple]:
        return [] if self._output_shape is None else [self._output_shape]

    @property
    def takes_input_list(self) -> bool:
        return False

    def build(self, input_shape: Optional[tuple] = None) -> None:
        """Builds every layer and packs all weights into one flat buffer.

        Args:
            input_shape: as in Keras, *with* the batch axis first: ``(None, 9)`` for vectors
                of 9 features, ``(None, None, 1)`` for univariate series of any length (the
                batch size, None or an integer, is not fixed by it). Defaults to the first
                layer's ``input_shape``.
        """
        if not self._layers:
            raise ValueError(f"Model `{self.name}` has no layers: add layers before building.")
        first = self._layers[0]
        declared = first.input_shape  # the declared shape before build, the built one after
        if input_shape is None:
            if declared is None:
                raise ValueError(
                    f"Model `{self.name}` cannot be built: its first layer `{first.name}` has no "
                    "`input_shape`; pass one to build() or call fit/predict on data."
                )
            input_shape = declared
            spec = tuple(declared)
        else:
            try:
                full = tuple(input_shape)
            except TypeError:
                full = ()
            if len(full) < 2:
                raise ValueError(
                    "Received an invalid value for argument `input_shape`: expected the batch "
                    "axis and at least one more, e.g. (None, 9) or (None, None, 1), got "
                    f"{input_shape!r}."
                )
            input_shape = full[1:]
            spec = tuple(input_shape)
        with self._build_lock:
            self._build_from(tuple(input_shape), spec)

    def _build_as_layer(self, input_shape: tuple) -> None:
        """Builds for inputs of `input_shape` without the batch axis (the layer protocol:
        this model called on a symbolic tensor inside another)."""
        with self._build_lock:
            self._build_from(tuple(input_shape), tuple(input_shape))

    def _build_from(self, shape: tuple, spec: tuple) -> None:
        shape = tuple(None if d is None else int(d) for d in shape)
        dtypes = {np.dtype(layer.dtype) for layer in self._layers
                  if not isinstance(layer, InputLayer)}
        if len(dtypes) > 1:
            raise ValueError(
                f"Model `{self.name}`: every layer must have the same dtype, got "
                f"{sorted(d.name for d in dtypes)}."
            )
        current = shape
        output_shapes = []
        for i, layer in enumerate(self._layers):
            if not layer.built:
                # Each layer gets its own stream, derived from the model's seed and its index.
                layer.rng = np.random.default_rng(
                    np.random.SeedSequence(self._seed_sequence.entropy, spawn_key=(i,)))
                layer._build_for(current)
            elif layer.input_shape is not None and len(layer.input_shape) != len(current):
                raise ValueError(
                    f"Layer `{layer.name}` was built for inputs {shape_str(layer.input_shape)} "
                    f"but receives {shape_str(current)} in model `{self.name}`."
                )
            current = tuple(layer._output_shape_for(current))
            output_shapes.append(current)
        self._layer_output_shapes = output_shapes
        self._build_shape = shape
        self._input_spec = spec
        self._output_shape = current
        self._dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self._set_input_grads()
        self._pack_weights()
        self.built = True
        self._trace_symbolic(shape)

    def _trace_symbolic(self, shape: tuple) -> None:
        """Records each layer's call on symbolic tensors, as Keras's Sequential is a functional
        model once its input shape is known: ``layer.input`` / ``layer.output`` and the
        model's ``inputs`` / ``outputs`` (e.g. ``Model(model.inputs, [layer.output for layer
        in model.layers])``). A layer that cannot be called symbolically leaves the model
        without them (it runs on arrays all the same)."""
        self._symbolic_io = None
        first = self._layers[0]
        nodes = first.__dict__.get("_inbound_nodes") if isinstance(first, InputLayer) else None
        try:
            if nodes:  # fastrnn.Input(...) given first: its tensor
                x = source = nodes[0].outputs[0]
            else:  # input_shape= or data: an InputLayer of the model's own, as Keras makes
                layer = InputLayer(input_shape=shape, dtype=self._dtype.name,
                                   name=f"{self.name}_input")
                x = source = symbolic.input_tensor(layer, shape, self._dtype, None)
            for layer in self._layers:
                if not isinstance(layer, InputLayer):
                    x = symbolic.call(layer, x)
        except (ValueError, TypeError, NotImplementedError, AttributeError):
            return
        if isinstance(x, SymbolicTensor):
            self._symbolic_io = ([source], [x])

    def _symbolic(self, what: str) -> tuple:
        """``(inputs, outputs)`` of the symbolic trace, building the model first when its
        input shape is declared (as Keras's Sequential is built from its Input)."""
        if not self.built and self._layers and self._layers[0].input_shape is not None:
            self.build()
        io = getattr(self, "_symbolic_io", None)
        if io is None:
            raise AttributeError(f"Sequential model `{self.name}` has no defined {what} yet: "
                                 "give fastrnn.Input(shape) first, or build it.")
        return io

    @property
    def inputs(self) -> list:
        """The symbolic input tensor, in a list (Keras's ``model.inputs``)."""
        return list(self._symbolic("inputs")[0])

    @property
    def outputs(self) -> list:
        """The symbolic output tensor, in a list (Keras's ``model.outputs``)."""
        return list(self._symbolic("outputs")[1])

    def _stream_graph(self) -> tuple[tuple[int, int, list], int]:
        """``((input slot, output slot, calls in run order), input rank without the batch
        axis)`` for the stepper: layer k reads slot k and gives slot k + 1."""
        assert self._input_spec is not None
        calls = [(layer, [k], k + 1) for k, layer in enumerate(self._layers)]
        return (0, len(calls), calls), len(self._input_spec)

    def _set_input_grads(self) -> None:
        for i, layer in enumerate(self._layers):
            # nothing consumes the first layer's d_x (unless this model is itself nested)
            layer.input_grad_needed = i > 0 or self.input_grad_needed

    def _ensure_built(self, x: np.ndarray) -> None:
        if self.built:
            return
        with self._build_lock:  # concurrent first calls build once
            if self.built:
                return
            first = self._layers[0] if self._layers else None
            if first is not None and first.input_shape is not None:
                declared = tuple(first.input_shape)
                self._build_from(declared, declared)
                return
            if not self._layers:
                raise ValueError(f"Model `{self.name}` has no layers: add layers first.")
            shape = tuple(x.shape[1:])
            # Built from data: only the feature axis is fixed when every layer allows it, so a
            # recurrent model accepts other sequence lengths later, as with
            # input_shape=[None, F]; otherwise (e.g. Flatten) the data's full shape.
            relaxed = (None,) * (len(shape) - 1) + shape[-1:]
            try:
                current = relaxed
                for layer in self._layers:
                    current = tuple(layer._output_shape_for(current))
            except (ValueError, TypeError):
                relaxed = shape
            self._build_from(relaxed, relaxed)

    def _require_built(self, what: str) -> None:
        # As Keras's: a model whose first layer declares its input shape is ready to use.
        if not self.built and self._layers and self._layers[0].input_shape is not None:
            self.build()
        super()._require_built(what)

    def _summary_ready(self) -> None:
        if not self.built and self._layers and self._layers[0].input_shape is not None:
            self.build()
        self._require_built("summary()")

    def _summary_rows(self) -> list[list[str]]:
        """A row per layer but the InputLayer (Keras's Sequential lists none)."""
        return [[f"{layer.name} ({type(layer).__name__})", shape_str((None, *shape)),
                 f"{layer.count_params():,}"]
                for layer, shape in zip(self._layers, self._layer_output_shapes)
                if not isinstance(layer, InputLayer)]

    def _unique_layers_in_summary(self) -> list:
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    # ------------------------------------------------------------------ arrays in
    def _check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]:
        """`x` as the one array the first layer takes (float in the model's dtype, or ints for
        an Embedding); builds the model if needed; checks rank and fixed dimensions."""
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            x = x[0]
        a = check_input_array(x, name)
        self._ensure_built(a)
        assert self._input_spec is not None  # built
        self._check_spec(a, self._input_spec, name)
        if type(self._layers[0]).__name__ == "Embedding" and a.dtype.kind in "biuf":
            # ids stay as given: float64 ids above 2**24 are exact, float32 would not be
            return [np.ascontiguousarray(a)]
        return [np.ascontiguousarray(a, dtype=self._dtype)]

    def _output_shapes_for(self, xs: list) -> list[tuple]:
        assert self._output_shape is not None  # built
        if None not in self._output_shape:
            return [self._output_shape]
        shape = tuple(xs[0].shape[1:])
        for layer in self._layers:
            shape = tuple(layer._output_shape_for(shape))
        return [shape]

    # ------------------------------------------------------------------ running the chain
    def _run_forward(self, xs: list, training: bool) -> list:
        x = xs[0]
        mask = None
        self._activity_reset()
        i = 0
        while i < len(self._layers):
            layer = self._layers[i]
            if not training and mask is None and x.ndim == 3 and x.shape[0] == 1 \
                    and x.shape[1] > 1:  # recurrent layers at once on one sequence
                end = self._stacked_end(i, x.dtype)
                y = stacked_forward(self._layers[i:end], x) if end > i else None
                if y is not None:
                    x, i = y, end
                    continue
            y = forward_with_mask(layer, x, mask, mask is not None, training)
            if getattr(layer, "_activity_regularizer", None) is not None:
                self._activity_forward(i, layer._activity_regularizer, y, training)
            mask = output_mask(layer, x, mask, mask is not None)
            x = y
            i += 1
        self._output_masks = [mask]
        return [x]

    def _stacked_end(self, start: int, dtype: np.dtype) -> int:
        """:func:`stacked_run` from layer `start`, kept until a layer is added or popped."""
        ends = self.__dict__.setdefault("_stacked_ends", {})
        key = (start, dtype)
        end = ends.get(key)
        if end is None:
            end = stacked_run(self._layers, start, dtype)
            if self.built:  # (every layer is then built: whether each can stack is settled)
                ends[key] = end
        return end

    def _run_backward(self, d_outputs: list) -> None:
        d = d_outputs[0]
        for i in range(len(self._layers) - 1, -1, -1):
            if self._activity_outputs:
                d = self._activity_backward(i, d)
            d = self._layers[i].backward(d)
        self._d_inputs = [d]

    def forward(self, x: Any, training: bool = False,  # type: ignore[override]
                mask: Any = None) -> Any:
        if not self.built:
            self._ensure_built(np.asarray(x))
        return self._run_forward([x], training)[0]

    def backward(self, d_out: Any) -> Any:
        self._run_backward([d_out])
        return self._d_inputs[0]

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = tuple(layer._output_shape_for(shape))
        return shape

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """The architecture: ``{"name", "layers": [serialized layers], "build_input_shape"}``."""
        return {
            "name": self.name,
            "layers": [layers_module.serialize(layer) for layer in self._layers],
            "build_input_shape": None if self._build_shape is None else list(self._build_shape),
        }

    @classmethod
    def _from_file_config(cls, config: dict, path: str) -> Sequential:
        """The model of a :meth:`get_config` dict, built when the config has its shape
        (``from_config``); errors name `path` (the file being loaded)."""
        layer_configs = config.get("layers")
        if not isinstance(layer_configs, list):
            raise ValueError(f"{path!r}: the model config has no list of layers.")
        model = cls([rebuild_layer(lc, path, f"config.layers[{k}]")
                     for k, lc in enumerate(layer_configs)], name=config.get("name"))
        shape = config.get("build_input_shape")
        if shape is not None:
            model.build((None, *shape))  # saved without the batch axis; build takes it
        return model

    def _class_name(self) -> str:
        return "Sequential"


saving.register_model_class("Sequential", Sequential)
