"""The graph of layer calls a functional or subclassed model runs (:class:`Graph`).

The graph is found as Keras finds it: walking back from the outputs through the calls that
``layer(symbolic_tensor)`` recorded (:mod:`fastrnn.layers.symbolic`). Layers are ordered as
Keras orders them (by depth from the outputs, then by first visit), so ``get_weights()``
lists weights in Keras's order and weights copied from a Keras model of the same graph give
the same predictions. A forward pass runs the calls in that order, one ``layer.forward`` per
call; backward runs them in reverse, adding gradients where a tensor feeds several calls.
A layer called more than once shares its weights: its weight gradients add up.

A model holds its graph (``model._graph``) and hands it the arrays; the graph knows nothing of
models but the hooks it calls on its owner for activity regularizers (``_activity_*``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

import numpy as np

from .. import layers as layers_module
from ..layers.core import InputLayer
from ..layers.symbolic import SymbolicTensor
from .common import (
    add_grad,
    forward_with_mask,
    is_model,
    output_mask,
    overrides_compute_mask,
    shape_str,
    sublayers,
)

__all__ = ["Graph", "model_dtype", "stream_refusal"]


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
        if not isinstance(layer, InputLayer) and not layer.weights and not is_model(layer):
            layer.dtype = dtype
    return dtype


class Step:
    """One call of the graph, resolved to slot numbers (one slot per tensor)."""

    __slots__ = ("has_weights", "in_slots", "layer", "main_in", "main_is_list", "main_out",
                 "masked", "n_main", "out_slots", "outputs_is_list", "shared", "simple",
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
        produces = overrides_compute_mask(node.layer) if declared is None else declared
        self.masked = produces or any(s in may_mask for s in self.in_slots)
        if produces or (self.masked and getattr(node.layer, "supports_masking", False)):
            may_mask.update(self.out_slots)
        # the slot of the first main input and of the first output (the only ones of a
        # simple call)
        self.main_in, self.main_out = self.in_slots[0], self.out_slots[0]
        # The common call: one tensor in, one out, nothing else to look after.
        self.simple = not (self.main_is_list or self.state_slots or self.outputs_is_list
                           or shared or self.training is not None or self.masked)


def map_graph(inputs: list, outputs: list) -> tuple[list, list]:
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


def flatten_io(value: Any, what: str) -> tuple[list, Optional[list], str]:
    """``(tensors, dict keys or None, structure)`` for a model's `inputs`/`outputs`."""
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


class Graph:
    """The calls between symbolic `inputs` and `outputs`, ready to run on arrays.

    Args:
        inputs, outputs: a symbolic tensor, or a list or dict of them (dict keys name them).
        model_name: the owner's name, for error messages.
        tracked_layers: a subclassed model's layers in attribute order (Keras's weight order
            for such a model: these first, then the graph's other layers); None for a
            functional model (Keras's graph order).
    """

    def __init__(self, inputs: Any, outputs: Any, model_name: str,
                 tracked_layers: Optional[list] = None):
        ins, in_keys, self.inputs_struct = flatten_io(inputs, "inputs")
        outs, out_keys, self.outputs_struct = flatten_io(outputs, "outputs")
        for k, t in enumerate(ins):
            if not t.node.is_input:
                raise ValueError(
                    f"Received an invalid value for argument `inputs`: entry {k} comes from "
                    f"layer `{t.producer.name}`; model inputs must be tensors made by "
                    "fastrnn.Input(...)."
                )
        nodes, layers = map_graph(ins, outs)
        if tracked_layers is not None:
            in_graph = {id(layer) for layer in layers}
            tracked = [layer for layer in tracked_layers if id(layer) in in_graph]
            seen = {id(layer) for layer in tracked}
            layers = tracked + [layer for layer in layers if id(layer) not in seen]
        self.layers = layers
        self.inputs = ins
        self.outputs = outs
        self.input_names = in_keys or [t.producer.name for t in ins]
        names = out_keys or [t.producer.name for t in outs]
        if len(set(names)) != len(names):  # one layer giving several outputs
            names = [n if names.count(n) == 1 else f"{n}_{t.tensor_index}"
                     for n, t in zip(names, outs)]
        self.output_names = names
        self.dtype = model_dtype(model_name, layers)
        # Slots: one per tensor; steps: one per non-input call, in run order.
        slot_of: dict = {}
        for node in nodes:
            for t in node.outputs:
                slot_of[id(t)] = len(slot_of)
        calls: dict = defaultdict(int)
        for node in nodes:
            calls[id(node.layer)] += 1
        may_mask: set = set()
        self.steps = [Step(n, slot_of, calls[id(n.layer)] > 1, may_mask) for n in nodes
                      if not n.is_input]
        self.nodes = nodes
        self.n_slots = len(slot_of)
        self.input_slots = [slot_of[id(t)] for t in ins]
        self.output_slots = [slot_of[id(t)] for t in outs]
        self.input_specs = [t.shape[1:] for t in ins]
        self.input_dtypes = [t.dtype for t in ins]
        consumers: dict = defaultdict(list)
        for step in self.steps:
            for s in step.in_slots + step.state_slots:
                consumers[s].append(step.layer)
        # Integer arrays stay integers where only Embeddings read them (exact token ids).
        self.ids_only = [all(type(lyr).__name__ == "Embedding" for lyr in consumers[s])
                         for s in self.input_slots]
        self.output_shapes = [t.shape[1:] for t in outs]
        self._vals: Optional[list] = None
        self._snapshots: Optional[dict] = None
        self.d_inputs: list = []

    def set_input_grads(self, all_needed: bool) -> None:
        """A call needs its input gradient unless all its main inputs are model inputs that
        nothing differentiates (`all_needed`: a nested model must return d_inputs)."""
        inputs = set(self.input_slots)
        needs: dict = {}
        for step in self.steps:
            from_inputs = all(s in inputs for s in step.in_slots)
            need = not from_inputs or all_needed
            needs[id(step.layer)] = needs.get(id(step.layer), False) or need
        for step in self.steps:
            step.layer.input_grad_needed = needs[id(step.layer)]

    # ------------------------------------------------------------------ running
    def forward(self, owner: Any, xs: list, training: bool) -> tuple[list, list]:
        """``(outputs, output masks)`` on the checked input arrays `xs`; `owner` is the model
        (its activity-regularizer hooks run here)."""
        vals: list = [None] * self.n_slots
        masks: list = [None] * self.n_slots
        for s, x in zip(self.input_slots, xs):
            vals[s] = x
        snapshots: Optional[dict] = {} if training else None
        owner._activity_reset()
        for k, step in enumerate(self.steps):
            if step.simple:
                vals[step.main_out] = out = step.layer.forward(vals[step.main_in],
                                                               training=training)
                if getattr(step.layer, "_activity_regularizer", None) is not None:
                    owner._activity_forward(k, step.layer._activity_regularizer, out, training)
                continue
            layer = step.layer
            if step.main_is_list:
                arg: Any = [vals[s] for s in step.in_slots]
                mask: Any = [masks[s] for s in step.in_slots]
                has_mask = any(m is not None for m in mask)
            else:
                arg = vals[step.main_in]
                mask = masks[step.main_in]
                has_mask = mask is not None
            kwargs = {}
            if step.state_slots:
                kwargs["initial_state"] = [vals[s] for s in step.state_slots]
            run_training = training if step.training is None else step.training
            out = forward_with_mask(layer, arg, mask, has_mask, run_training, **kwargs)
            if step.shared and snapshots is not None:
                snapshots[k] = [(obj, dict(obj.__dict__)) for obj in sublayers(layer)]
            if getattr(layer, "_activity_regularizer", None) is not None:
                owner._activity_forward(k, layer._activity_regularizer, out, training)
            if step.outputs_is_list:
                for s, o in zip(step.out_slots, out):
                    vals[s] = o
            else:
                vals[step.main_out] = out
            out_mask = output_mask(layer, arg, mask, has_mask)
            if out_mask is not None:
                if step.outputs_is_list:
                    for s, m in zip(step.out_slots, out_mask if isinstance(out_mask, list)
                                    else [out_mask] * len(step.out_slots)):
                        masks[s] = m
                else:
                    masks[step.main_out] = out_mask
        self._snapshots = snapshots
        self._vals = vals if training else None
        return [vals[s] for s in self.output_slots], [masks[s] for s in self.output_slots]

    def backward(self, owner: Any, d_outputs: list) -> list:
        """The gradients of the inputs (None where nothing flows), given the outputs'; the
        layers' weight gradients are left in their gradient buffers."""
        grads: list = [None] * self.n_slots
        for s, d in zip(self.output_slots, d_outputs):
            add_grad(grads, s, d)
        snapshots = self._snapshots or {}
        seen: set = set()
        for k in range(len(self.steps) - 1, -1, -1):
            step = self.steps[k]
            layer = step.layer
            if k in owner._activity_outputs:  # the output penalty's gradient joins first
                if step.outputs_is_list:
                    d_act = owner._activity_backward(k, [grads[s] for s in step.out_slots])
                else:
                    d_act = [owner._activity_backward(k, grads[step.main_out])]
                for s, d in zip(step.out_slots, d_act):
                    grads[s] = d
            if step.simple and grads[step.main_out] is not None:
                d_out, grads[step.main_out] = grads[step.main_out], None  # freed once used
                add_grad(grads, step.main_in, layer.backward(d_out))
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
                assert self._vals is not None
                ds = [np.zeros_like(self._vals[s]) for s in step.out_slots]
                d_arg = ds if step.outputs_is_list else ds[0]
            d_in = layer.backward(d_arg)
            if stash is not None:
                for g, s in zip(layer.grads, stash):
                    g += s
            if step.main_is_list:
                for s, d in zip(step.in_slots, d_in or [None] * len(step.in_slots)):
                    add_grad(grads, s, d)
            else:
                add_grad(grads, step.main_in, d_in)
            if step.state_slots:
                for s, d in zip(step.state_slots, getattr(layer, "initial_state_grads", ())):
                    add_grad(grads, s, d)
        # Let go of this batch's intermediate arrays now: the core recycles their memory for
        # the next batch only once nothing refers to them.
        self._vals = self._snapshots = None
        return [grads[s] for s in self.input_slots]

    # ------------------------------------------------------------------ describing
    def stream_calls(self, model_name: str) -> tuple[int, int, list]:
        """``(input slot, output slot, calls)`` for ``model.stepper()``: the calls in run order,
        each ``(layer, its main input slots, its output slot)``, when the graph has one input
        and one output and every call gives one tensor (a merge may take several); else
        ``ValueError`` naming why. Which layers can stream is the stepper's to say."""
        if len(self.input_slots) != 1 or len(self.output_slots) != 1:
            raise ValueError(
                f"Model `{model_name}` cannot be streamed by model.stepper(): it has "
                f"{len(self.input_slots)} inputs and {len(self.output_slots)} outputs; "
                "the stepper takes one input and gives one output."
            )
        calls = []
        for step in self.steps:
            if step.state_slots or step.outputs_is_list:
                raise _refuse(step.layer, "it takes or gives several tensors (initial states or "
                              "return_state), which the stepper does not pass between layers")
            if step.training is not None:
                raise _refuse(step.layer, f"it was called with training={step.training}, "
                              "which predict honours and a stepper cannot")
            calls.append((step.layer, list(step.in_slots), step.main_out))
        return self.input_slots[0], self.output_slots[0], calls

    def summary_rows(self) -> list[list[str]]:
        """Per layer: name (type), output shape, parameters, what it is connected to."""
        rows = []
        in_model = {id(n) for n in self.nodes}
        for layer in self.layers:
            nodes = [n for n in layer._inbound_nodes if id(n) in in_model]
            shapes = [t.shape for n in nodes[:1] for t in n.outputs]
            shape = shapes[0] if len(shapes) == 1 else list(shapes)
            links: list[str] = []
            for n in nodes:
                links.extend(f"{t.producer.name}[{t.node_index}][{t.tensor_index}]"
                             for t in n.inputs)
            rows.append([f"{layer.name} ({type(layer).__name__})", shape_str(shape),
                         f"{layer.count_params():,}", links[0] if links else "-", *links[1:]])
        return rows

    def config(self, name: str) -> dict:
        """The graph as JSON: the layers (serialized) and the calls between them, by
        position (read back by ``Functional.from_config``)."""
        position = {id(n): k for k, n in enumerate(self.nodes)}
        nodes = []
        for node in self.nodes:
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
            "name": name,
            "layers": [layers_module.serialize(layer) for layer in self.layers],
            "nodes": nodes,
            "inputs": [where(t) for t in self.inputs],
            "outputs": [where(t) for t in self.outputs],
            "input_keys": self.input_names if self.inputs_struct == "dict" else None,
            "output_keys": self.output_names if self.outputs_struct == "dict" else None,
            "inputs_struct": self.inputs_struct,
            "outputs_struct": self.outputs_struct,
        }


def stream_refusal(layer: Any, why: str) -> ValueError:
    """The error for a layer that ``model.stepper()`` cannot stream, saying `why`."""
    return ValueError(
        f"Layer `{layer.name}` ({type(layer).__name__}) cannot be streamed by model.stepper(): "
        f"{why}."
    )


_refuse = stream_refusal
