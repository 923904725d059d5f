"""`Functional`: the model ``fastrnn.Model(inputs, outputs)`` makes, a graph of layer calls
(:class:`~fastrnn.models.graph.Graph`) between symbolic inputs and outputs, and its config
(the graph as JSON, and back).

``Model(inputs, outputs)`` returns a ``Functional`` (``Model.__new__``), as Keras 3's does;
``isinstance(model, fastrnn.Model)`` holds for it.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import saving
from ..layers import symbolic
from ..layers.core import InputLayer
from ..saving import malformed_config as _bad
from .common import rebuild_layer
from .model import Model

__all__ = ["Functional"]


class Functional(Model):
    """A graph of layer calls: ``fastrnn.Model(inputs, outputs)`` (see :class:`Model`)."""

    def __init__(self, inputs: Any, outputs: Any, name: Optional[str] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        super().__init__(inputs, outputs, name=name, seed=seed, **kwargs)

    def get_config(self) -> dict:
        """The graph: the layers (serialized) and the calls between them, by position."""
        assert self._graph is not None
        return self._graph.config(self.name)

    @classmethod
    def _from_file_config(cls, config: dict, path: str) -> Functional:
        """The model of a :meth:`get_config` dict, its calls replayed on new symbolic tensors
        (``from_config``); errors name `path` (the file being loaded) and the entry."""
        layer_configs = config.get("layers")
        if not isinstance(layer_configs, list):
            raise _bad(path, "config.layers", "a list of layers", layer_configs)
        by_name: dict = {}
        for k, lc in enumerate(layer_configs):
            layer = rebuild_layer(lc, path, f"config.layers[{k}]")
            # the calls name the layer as the config does (a clone_function may rename it)
            name = (lc.get("config") or {}).get("name", layer.name)
            if name in by_name:
                raise _bad(path, f"config.layers[{k}]", "unique layer names", name)
            by_name[name] = layer
        nodes = config.get("nodes")
        if not isinstance(nodes, list):
            raise _bad(path, "config.nodes", "a list of calls", nodes)
        made: list = []  # per node: its output tensors

        def tensor(ref: Any, where: str) -> Any:
            if not (isinstance(ref, list) and len(ref) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in ref)):
                raise _bad(path, where, "[node, output]", ref)
            node, out = ref
            if not 0 <= node < len(made) or not 0 <= out < len(made[node]):
                raise _bad(path, where, "a reference to an earlier call's output", ref)
            return made[node][out]

        for k, entry in enumerate(nodes):
            where = f"config.nodes[{k}]"
            if not isinstance(entry, dict) or entry.get("layer") not in by_name:
                raise _bad(path, where, "a call of a layer listed in config.layers", entry)
            layer = by_name[entry["layer"]]
            refs = entry.get("inputs")
            if not isinstance(refs, list):
                raise _bad(path, f"{where}.inputs", "a list", refs)
            if isinstance(layer, InputLayer):
                if refs:
                    raise _bad(path, f"{where}.inputs", "no inputs for an InputLayer", refs)
                dt = layer.input_dtype if layer.input_dtype is not None else layer.dtype
                shape = tuple(layer.input_shape or ())  # an InputLayer's is always set
                made.append([symbolic.input_tensor(layer, shape, dt, layer.batch_size)])
                continue
            ins = [tensor(r, f"{where}.inputs[{j}]") for j, r in enumerate(refs)]
            n_main = entry.get("n_main")
            if not isinstance(n_main, int) or isinstance(n_main, bool) or \
                    not 1 <= n_main <= len(ins):
                raise _bad(path, f"{where}.n_main", f"an integer in [1, {len(ins)}]", n_main)
            main: Any = ins[:n_main] if entry.get("main_is_list") else ins[0]
            states = ins[n_main:] or None
            training = entry.get("training")
            if training not in (None, True, False):
                raise _bad(path, f"{where}.training", "null, true or false", training)
            out = symbolic.call(layer, main, initial_state=states, training=training)
            made.append(out if isinstance(out, list) else [out])

        def io(key: str) -> list:
            refs = config.get(key)
            if not isinstance(refs, list) or not refs:
                raise _bad(path, f"config.{key}", "a non-empty list", refs)
            return [tensor(r, f"config.{key}[{j}]") for j, r in enumerate(refs)]

        inputs, outputs = io("inputs"), io("outputs")

        def structure(tensors: list, which: str) -> Any:
            kind = config.get(f"{which}_struct")
            keys = config.get(f"{which}_keys")
            if kind == "dict":
                if not isinstance(keys, list) or len(keys) != len(tensors):
                    raise _bad(path, f"config.{which}_keys", f"{len(tensors)} names", keys)
                return dict(zip(keys, tensors))
            if kind == "single" and len(tensors) == 1:
                return tensors[0]
            return tensors

        return cls(structure(inputs, "inputs"), structure(outputs, "outputs"),
                   name=config.get("name"))

    def _class_name(self) -> str:
        return "Functional"


Model._functional_class = Functional
saving.register_model_class("Functional", Functional)
