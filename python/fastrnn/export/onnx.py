"""ONNX export of Sequential and functional models, built with ``onnx.helper``.

Recurrent layers become ONNX's own ``RNN``, ``LSTM`` and ``GRU`` operators, their weights laid
out as ONNX wants them: ``W (1, G, I)``, ``R (1, G, H)``, ``B (1, 2G)`` (input bias, then
recurrent bias), gates in ONNX's order (LSTM ``i, o, f, c``; Keras's is ``i, f, c, o``; GRU
``z, r, h`` as Keras, with ``linear_before_reset=1``, which is Keras's ``reset_after=True``).
The operators run time-major (``layout=0``, the layout onnxruntime's CPU kernels take), so the
graph transposes ``(batch, time, features)`` around them; the graph's own inputs and outputs
stay batch-major, with dynamic ``batch`` and ``time`` axes.

Recurrent states are graph inputs and outputs: every recurrent layer whose initial state is not
another tensor of the graph gets optional inputs ``<layer>/h`` (LSTM also ``<layer>/c``),
``(batch, units)``, zeros when not fed, and every recurrent layer gives ``<layer>/h_out`` (and
``<layer>/c_out``), its state after the last step. Feeding each call's ``*_out`` into the next
call's inputs streams a sequence in pieces (one step at a time if need be), as a stateful model
or :meth:`fastrnn.Model.stepper` does. (ONNX has no optional graph inputs but initializers
that are also inputs: onnxruntime lists them under ``get_overridable_initializers()``, not
``get_inputs()``, and warns once that it cannot constant-fold them.)

Masks (``Masking``, ``Embedding(mask_zero=True)``) follow fastrnn's (TF-Keras's) semantics: a
masked step leaves the state unchanged. ONNX's operators only skip steps at the end of a row
(``sequence_lens``), so each row's unmasked steps are first gathered to its front (in order),
run with ``sequence_lens``, and the outputs scattered back where ``return_sequences`` needs
them.

Layers: InputLayer, Dense, Activation, Dropout (the identity), Flatten, Embedding, Masking,
SimpleRNN/LSTM/GRU (``go_backwards``, ``return_sequences``, ``return_state``, ``stateful``,
masks; not ``layer_norm``), Bidirectional, TimeDistributed, Conv1D, MaxPooling1D,
AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, LayerNormalization,
BatchNormalization (inference form), Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate, RepeatVector, Reshape, Permute, and nested models of these. Anything else raises
``ValueError`` naming the layer and why.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

import numpy as np

__all__ = ["export_onnx"]

OPSET = 17  # LayerNormalization; onnxruntime >= 1.14 runs it
IR_VERSION = 8  # what opset 17 needs, readable by older runtimes too
_INT64_MIN = -(2**63)
_MAX_BYTES = 2_000_000_000  # protobuf's limit for one serialized model is 2 GiB

# ONNX activations of the names fastrnn's layers use (None: the identity).
_UNARY = {"linear": None, "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "elu": "Elu",
          "softplus": "Softplus", "softsign": "Softsign", "exponential": "Exp"}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            'Exporting to ONNX needs the `onnx` package: pip install "fastrnn[onnx]".'
        ) from None
    return onnx


class _Refused(ValueError):
    pass


def _refuse(layer: Any, why: str) -> _Refused:
    return _Refused(
        f"Layer `{layer.name}` ({type(layer).__name__}) cannot be exported to ONNX: {why}."
    )


class _Graph:
    """The nodes, weights, inputs and outputs of the graph being built."""

    def __init__(self, onnx: Any, dtype: np.dtype):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = dtype
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._names: set = set()
        self._consts: dict = {}

    def name(self, base: str) -> str:
        base = base or "t"
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def weight(self, array: np.ndarray, base: str) -> str:
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array),
                                                                   name))
        return name

    def const(self, values: Any, dtype: Any = np.int64) -> str:
        a = np.asarray(values, dtype=dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        if key not in self._consts:
            self._consts[key] = self.weight(a, "const")
        return self._consts[key]

    def scalar(self, value: float) -> str:
        return self.const(value, self.dtype)

    def op(self, op_type: str, inputs: list, n_out: int = 1, base: str = "",
           **attrs: Any) -> Any:
        outs = [self.name(f"{base or op_type.lower()}") for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.name(f"node_{op_type}"), **attrs))
        return outs[0] if n_out == 1 else outs

    # ---------------------------------------------------------------- small idioms
    def shape_of(self, x: str, start: int, end: Optional[int] = None) -> str:
        """Dims ``[start, end)`` of `x`'s shape, an int64 vector."""
        attrs = {"start": start} if end is None else {"start": start, "end": end}
        return self.op("Shape", [x], **attrs)

    def activation(self, name: str, x: str) -> str:
        if name in _UNARY:
            op = _UNARY[name]
            return x if op is None else self.op(op, [x])
        if name == "softmax":
            return self.op("Softmax", [x], axis=-1)
        if name == "selu":
            return self.op("Selu", [x], alpha=1.6732632423543772, gamma=1.0507009873554805)
        if name == "swish":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        raise _Refused(f"the activation {name!r} has no ONNX form here")

    def reverse_time(self, x: str) -> str:
        return self.op("Slice", [x, self.const([-1]), self.const([_INT64_MIN]),
                                 self.const([1]), self.const([-1])])


class _Exporter:
    """Walks a model's calls and emits their ONNX nodes. Tensors are names; masks are names of
    bool ``(batch, time)`` tensors, or None."""

    def __init__(self, g: _Graph):
        self.g = g

    # ---------------------------------------------------------------- models
    def model(self, model: Any, xs: list) -> tuple[list, list]:
        """Emits `model` on the tensors `xs`: ``(outputs, output masks)``."""
        if model._graph is None:  # a Sequential: its own chain of layers
            x, mask = xs[0], None
            for layer in model._layers:
                outs, masks = self.layer(layer, x, mask, None, model)
                if len(outs) != 1:
                    raise _refuse(layer, "it gives several tensors inside a Sequential model")
                x, mask = outs[0], masks[0]
            return [x], [mask]
        graph = model._graph
        vals: dict = dict(zip(graph.input_slots, xs))
        masks: dict = {}
        for step in graph.steps:
            layer = step.layer
            if step.training:
                raise _refuse(layer, "it was called with training=True (dropout or batch "
                              "statistics at inference), which a fixed graph cannot reproduce")
            if step.main_is_list:
                arg: Any = [vals[s] for s in step.in_slots]
                mask: Any = [masks.get(s) for s in step.in_slots]
            else:
                arg, mask = vals[step.main_in], masks.get(step.main_in)
            states = [vals[s] for s in step.state_slots] or None
            outs, out_masks = self.layer(layer, arg, mask, states, model)
            if len(outs) != len(step.out_slots):
                raise _refuse(layer, f"it gives {len(outs)} tensors where the graph has "
                              f"{len(step.out_slots)}")
            for s, o, m in zip(step.out_slots, outs, out_masks):
                vals[s], masks[s] = o, m
        return ([vals[s] for s in graph.output_slots],
                [masks.get(s) for s in graph.output_slots])

    # ---------------------------------------------------------------- one call
    def layer(self, layer: Any, x: Any, mask: Any, states: Optional[list],
              owner: Any) -> tuple[list, list]:
        from .. import layers as L
        from ..layers.pooling import _GlobalPooling1D, _Pooling1D
        from ..layers.recurrent import _RNN

        g = self.g
        if _is_model(layer):
            outs, masks = self.model(layer, list(x) if isinstance(x, list) else [x])
            return outs, masks
        if states is not None and not isinstance(layer, (_RNN, L.Bidirectional)):
            raise _refuse(layer, "it takes initial states")
        if isinstance(layer, _RNN):
            outs = self.recurrent(layer, x, mask, states)
            outs = outs if layer.return_state else outs[:1]
            out_mask = mask if layer.return_sequences else None
            return outs, [out_mask] + [None] * (len(outs) - 1)
        if isinstance(layer, L.Bidirectional):
            return self.bidirectional(layer, x, mask, states)
        if isinstance(layer, (L.InputLayer, L.Dropout)):
            return [x], [mask]
        if isinstance(layer, L.Dense):
            return [self.dense(layer, x)], [mask]
        if isinstance(layer, L.Activation):
            return [g.activation(layer.activation, x)], [mask]
        if isinstance(layer, L.TimeDistributed):
            return [self.time_distributed(layer, x, owner)], [mask]
        if isinstance(layer, L.Flatten):
            return [g.op("Flatten", [x], axis=1)], [None]
        if isinstance(layer, L.Embedding):
            return self.embedding(layer, x)
        if isinstance(layer, L.Masking):
            keep = g.op("ReduceMax", [g.op("Cast", [g.op("Not", [g.op(
                "Equal", [x, g.scalar(layer.mask_value)])])], to=g.elem)], axes=[-1],
                keepdims=1)
            new_mask = g.op("Cast", [g.op("Squeeze", [keep, g.const([-1])])],
                            to=self.g.onnx.TensorProto.BOOL)
            return [g.op("Mul", [x, keep])], [new_mask]
        if isinstance(layer, L.Conv1D):
            return [self.conv1d(layer, x)], [None]
        if isinstance(layer, _Pooling1D):
            return [self.pooling(layer, x)], [None]
        if isinstance(layer, _GlobalPooling1D):
            return [self.global_pooling(layer, x, mask)], [None]
        if isinstance(layer, L.LayerNormalization):
            return [self.layer_norm(layer, x)], [mask]
        if isinstance(layer, L.BatchNormalization):
            return [self.batch_norm(layer, x)], [mask]
        merged = self.merge(layer, x, mask)
        if merged is not None:
            return merged
        if isinstance(layer, L.RepeatVector):
            y = g.op("Expand", [g.op("Unsqueeze", [x, g.const([1])]),
                                g.const([1, layer.n, 1])])
            return [y], [None]
        if isinstance(layer, L.Reshape):
            return [g.op("Reshape", [x, g.const([0, *layer.target_shape])])], [None]
        if isinstance(layer, L.Permute):
            return [g.op("Transpose", [x], perm=[0, *layer.dims])], [None]
        raise _refuse(layer, "fastrnn has no ONNX form for this layer type")

    # ---------------------------------------------------------------- feed-forward
    def dense(self, layer: Any, x: str) -> str:
        g = self.g
        y = g.op("MatMul", [x, g.weight(layer.weights[0], f"{layer.name}/kernel")])
        if layer.use_bias:
            y = g.op("Add", [y, g.weight(layer.weights[1], f"{layer.name}/bias")])
        try:
            return g.activation(layer.activation, y)
        except _Refused as e:
            raise _refuse(layer, str(e)) from None

    def time_distributed(self, layer: Any, x: str, owner: Any) -> str:
        from .. import layers as L

        g = self.g
        inner = layer.layer
        if isinstance(inner, (L.Dense, L.Activation, L.Dropout)):  # act on the last axis only
            return self.layer(inner, x, None, None, owner)[0][0]
        flat = g.op("Reshape", [x, g.op("Concat", [g.const([-1]), g.shape_of(x, 2)], axis=0)])
        outs, _ = self.layer(inner, flat, None, None, owner)
        if len(outs) != 1:
            raise _refuse(layer, "its layer gives several tensors")
        shape = g.op("Concat", [g.shape_of(x, 0, 2), g.shape_of(outs[0], 1)], axis=0)
        return g.op("Reshape", [outs[0], shape])

    def embedding(self, layer: Any, ids: str) -> tuple[list, list]:
        g = self.g
        index = g.op("Cast", [ids], to=g.onnx.TensorProto.INT64)
        y = g.op("Gather", [g.weight(layer.weights[0], f"{layer.name}/embeddings"), index],
                 axis=0)
        mask = None
        if layer.mask_zero:
            mask = g.op("Not", [g.op("Equal", [index, g.const(0)])])
        return [y], [mask]

    def conv1d(self, layer: Any, x: str) -> str:
        g = self.g
        w = np.transpose(layer.weights[0], (2, 1, 0))  # (K, C/groups, O) -> (O, C/groups, K)
        inputs = [g.op("Transpose", [x], perm=[0, 2, 1]),
                  g.weight(w, f"{layer.name}/kernel")]
        if layer.use_bias:
            inputs.append(g.weight(layer.weights[1], f"{layer.name}/bias"))
        attrs: dict = {"kernel_shape": [layer.kernel_size], "strides": [layer.strides],
                       "dilations": [layer.dilation_rate], "group": layer.groups}
        if layer.padding == "same" and layer.strides > 1:  # (Keras: then no dilation)
            attrs["auto_pad"] = "SAME_UPPER"  # Keras's pads: the odd zero at the end
        elif layer.padding == "same":
            attrs["pads"] = [(layer.span - 1) // 2, layer.span - 1 - (layer.span - 1) // 2]
        elif layer.padding == "causal":
            attrs["pads"] = [layer.span - 1, 0]
        else:
            attrs["pads"] = [0, 0]
        y = g.op("Transpose", [g.op("Conv", inputs, **attrs)], perm=[0, 2, 1])
        try:
            return g.activation(layer.activation, y)
        except _Refused as e:
            raise _refuse(layer, str(e)) from None

    def pooling(self, layer: Any, x: str) -> str:
        g = self.g
        attrs: dict = {"kernel_shape": [layer.pool_size], "strides": [layer.strides]}
        if layer.padding == "same":
            attrs["auto_pad"] = "SAME_UPPER"
        op = "MaxPool" if layer._mode == "max" else "AveragePool"
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # the padding takes no part in a window
        y = g.op(op, [g.op("Transpose", [x], perm=[0, 2, 1])], **attrs)
        return g.op("Transpose", [y], perm=[0, 2, 1])

    def global_pooling(self, layer: Any, x: str, mask: Optional[str]) -> str:
        g = self.g
        keep = int(layer.keepdims)
        average = type(layer).__name__ == "GlobalAveragePooling1D"
        if mask is None:
            return g.op("ReduceMean" if average else "ReduceMax", [x], axes=[1], keepdims=keep)
        m = g.op("Unsqueeze", [g.op("Cast", [mask], to=g.elem), g.const([-1])])  # (B, T, 1)
        if average:
            total = g.op("ReduceSum", [g.op("Mul", [x, m]), g.const([1])], keepdims=keep)
            count = g.op("ReduceSum", [m, g.const([1])], keepdims=keep)
            return g.op("Div", [total, g.op("Max", [count, g.scalar(1.0)])])
        masked = g.op("Where", [g.op("Cast", [m], to=g.onnx.TensorProto.BOOL), x,
                                g.scalar(-np.inf)])
        y = g.op("ReduceMax", [masked], axes=[1], keepdims=keep)
        any_step = g.op("ReduceMax", [m], axes=[1], keepdims=keep)  # 0 for rows without steps
        return g.op("Where", [g.op("Cast", [any_step], to=g.onnx.TensorProto.BOOL), y,
                              g.scalar(0.0)])

    def layer_norm(self, layer: Any, x: str) -> str:
        g = self.g
        gamma, beta = layer._affine()
        C = layer.input_shape[-1]
        scale = gamma if gamma is not None else np.ones(C, g.dtype)
        inputs = [x, g.weight(scale, f"{layer.name}/gamma")]
        if beta is not None:
            inputs.append(g.weight(beta, f"{layer.name}/beta"))
        return g.op("LayerNormalization", inputs, axis=-1, epsilon=layer.epsilon)

    def batch_norm(self, layer: Any, x: str) -> str:
        g = self.g
        gamma, beta = layer._affine()
        mean, variance = layer.weights[-2], layer.weights[-1]
        # y = (x - mean) / sqrt(var + eps) * gamma + beta, with the moving statistics.
        scale = 1.0 / np.sqrt(variance.astype(np.float64) + layer.epsilon)
        if gamma is not None:
            scale = scale * gamma
        shift = -mean * scale + (0.0 if beta is None else beta)
        y = g.op("Mul", [x, g.weight(scale.astype(g.dtype), f"{layer.name}/scale")])
        return g.op("Add", [y, g.weight(shift.astype(g.dtype), f"{layer.name}/shift")])

    def merge(self, layer: Any, xs: Any, masks: Any) -> Optional[tuple[list, list]]:
        from .. import layers as L

        g = self.g
        kinds = {L.Add: "Sum", L.Maximum: "Max", L.Minimum: "Min"}
        if isinstance(layer, L.Average):
            y = g.op("Div", [g.op("Sum", list(xs)), g.scalar(float(len(xs)))])
        elif type(layer) in kinds:
            y = g.op(kinds[type(layer)], list(xs))
        elif isinstance(layer, L.Subtract):
            y = g.op("Sub", list(xs))
        elif isinstance(layer, L.Multiply):
            y = xs[0]
            for other in xs[1:]:
                y = g.op("Mul", [y, other])
        elif isinstance(layer, L.Concatenate):
            y = g.op("Concat", list(xs), axis=layer.axis)
        else:
            return None
        present = [m for m in (masks or []) if m is not None]
        if not present:
            return [y], [None]
        if isinstance(layer, L.Concatenate) and layer.axis in (1, -len(layer.input_shape[0])):
            raise _refuse(layer, "it concatenates masked sequences along the time axis")
        out = present[0]
        for m in present[1:]:
            out = g.op("And", [out, m])
        return [y], [out]

    # ---------------------------------------------------------------- recurrent
    def bidirectional(self, layer: Any, x: str, mask: Optional[str],
                      states: Optional[list]) -> tuple[list, list]:
        g = self.g
        n = layer.forward_layer._n_states
        s_f = s_b = None
        if states is not None:
            s_f, s_b = states[:n], states[n:]
        y_f, *st_f = self.recurrent(layer.forward_layer, x, mask, s_f)
        y_b, *st_b = self.recurrent(layer.backward_layer, x, mask, s_b)
        if layer.return_sequences:
            y_b = g.reverse_time(y_b)  # back into input order
        out_mask = mask if layer.return_sequences else None
        mode = layer.merge_mode
        if mode is None:
            outs, masks = [y_f, y_b], [out_mask, out_mask]
        else:
            if mode == "concat":
                y = g.op("Concat", [y_f, y_b], axis=-1)
            elif mode == "sum":
                y = g.op("Add", [y_f, y_b])
            elif mode == "mul":
                y = g.op("Mul", [y_f, y_b])
            else:
                y = g.op("Mul", [g.op("Add", [y_f, y_b]), g.scalar(0.5)])
            outs, masks = [y], [out_mask]
        if layer.return_state:
            extra = st_f + st_b
            return outs + extra, masks + [None] * len(extra)
        return outs, masks

    def _weights(self, layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ONNX's W (1, G, I), R (1, G, H), B (1, 2G) from the layer's Keras-layout weights."""
        w = layer._named()
        H = layer.units
        kernel, recurrent = w["kernel"], w["recurrent_kernel"]
        G = kernel.shape[1]
        bias = w.get("bias")
        if layer._cell == "gru":
            b_in, b_rec = (bias[0], bias[1]) if bias is not None else (np.zeros(G),) * 2
        else:
            b_in = bias if bias is not None else np.zeros(G)
            b_rec = np.zeros(G)
        order = np.arange(G)
        if layer._cell == "lstm":  # Keras i, f, c, o -> ONNX i, o, f, c
            order = np.concatenate([np.arange(k * H, (k + 1) * H) for k in (0, 3, 1, 2)])
        W = kernel[:, order].T[None]
        R = recurrent[:, order].T[None]
        B = np.concatenate([b_in[order], b_rec[order]])[None]
        dtype = self.g.dtype
        return W.astype(dtype), R.astype(dtype), B.astype(dtype)

    def _initial_state(self, layer: Any, x: str, given: Optional[str], which: str) -> str:
        """``(1, B, H)``: the given state tensor, or an optional graph input (zeros)."""
        g = self.g
        if given is None:
            name = g.name(f"{layer.name}/{which}")
            g.initializers.append(g.onnx.numpy_helper.from_array(
                np.zeros((1, layer.units), g.dtype), name))  # the default when not fed
            g.inputs.append(g.helper.make_tensor_value_info(name, g.elem,
                                                            ["batch", layer.units]))
            shape = g.op("Concat", [g.shape_of(x, 0, 1), g.const([layer.units])], axis=0)
            given = g.op("Expand", [name, shape])
        return g.op("Unsqueeze", [given, g.const([0])])

    def _state_output(self, layer: Any, value: str, which: str) -> str:
        g = self.g
        name = g.name(f"{layer.name}/{which}_out")
        g.nodes.append(g.helper.make_node("Identity", [value], [name],
                                          name=g.name("node_Identity")))
        g.outputs.append(g.helper.make_tensor_value_info(name, g.elem, ["batch", layer.units]))
        return name

    def recurrent(self, layer: Any, x: str, mask: Optional[str],
                  states: Optional[list]) -> list:
        """``[y, h(, c)]``: the layer's output (as fastrnn gives it) and its last states."""
        g = self.g
        if layer.layer_norm:
            raise _refuse(layer, "it is layer-normalized (layer_norm=True); ONNX's RNN, LSTM "
                          "and GRU operators normalize nothing")
        n_states = layer._n_states
        given = list(states) if states is not None else [None] * n_states
        if len(given) != n_states:
            raise _refuse(layer, f"it takes {n_states} initial states, got {len(given)}")
        init = [self._initial_state(layer, x, s, w) for s, w in zip(given, ("h", "c"))]
        if layer.go_backwards:
            x = g.reverse_time(x)
            mask = None if mask is None else g.reverse_time(mask)
        lens = counts = None
        if mask is not None:
            x, lens, counts = self._compact(x, mask)
        W, R, B = self._weights(layer)
        xt = g.op("Transpose", [x], perm=[1, 0, 2])  # (T, B, I): layout=0
        inputs = [xt, g.weight(W, f"{layer.name}/W"), g.weight(R, f"{layer.name}/R"),
                  g.weight(B, f"{layer.name}/B"), lens or "", init[0]]
        attrs: dict = {"hidden_size": layer.units}
        op = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[layer._cell]
        if op == "RNN":
            act = {"tanh": "Tanh", "relu": "Relu", "linear": "Affine"}[layer.activation]
            attrs["activations"] = [act]
            if act == "Affine":
                attrs["activation_alpha"], attrs["activation_beta"] = [1.0], [0.0]
        elif op == "GRU":
            attrs["linear_before_reset"] = 1
        else:
            inputs.append(init[1])
        n_out = 2 + (op == "LSTM")
        names = [g.name(f"{layer.name}/Y") if layer.return_sequences else ""]
        names += [g.name(f"{layer.name}/Y_{s}") for s in ("h", "c")[:n_out - 1]]
        g.nodes.append(g.helper.make_node(op, inputs, names, name=g.name(f"node_{op}"),
                                          **attrs))
        last = [g.op("Squeeze", [s, g.const([0])]) for s in names[1:]]
        if lens is not None:  # a row without any unmasked step keeps its initial state
            has = g.op("Unsqueeze", [g.op("Greater", [lens, g.const(0, np.int32)]),
                                     g.const([-1])])
            last = [g.op("Where", [has, s, g.op("Squeeze", [i, g.const([0])])])
                    for s, i in zip(last, init)]
        last = [self._state_output(layer, s, w) for s, w in zip(last, ("h", "c"))]
        if layer.return_sequences:
            y = g.op("Transpose", [g.op("Squeeze", [names[0], g.const([1])])], perm=[1, 0, 2])
            if mask is not None:
                y = self._scatter(layer, y, mask, counts)
        else:
            y = last[0]
            if mask is not None:  # Keras outputs zeros for a row without unmasked steps
                any_step = g.op("Cast", [g.op("Unsqueeze", [
                    g.op("Greater", [lens, g.const(0, np.int32)]), g.const([-1])])], to=g.elem)
                y = g.op("Mul", [y, any_step])
        return [y, *last]

    def _compact(self, x: str, mask: str) -> tuple[str, str, str]:
        """Each row's unmasked steps moved to its front, in order: ``(x, lengths (B,) int32,
        running count of unmasked steps (B, T) int64)``."""
        g = self.g
        m = g.op("Cast", [mask], to=g.onnx.TensorProto.INT64)  # (B, T)
        T = g.shape_of(x, 1, 2)
        steps = g.op("Range", [g.const(0), g.op("Squeeze", [T, g.const([0])]), g.const(1)])
        # Sort key: unmasked steps first, each group in time order (all keys distinct).
        key = g.op("Add", [g.op("Mul", [g.op("Sub", [g.const(1), m]), T]), steps])
        _, perm = g.op("TopK", [key, T], n_out=2, axis=1, largest=0, sorted=1)
        index = g.op("Expand", [g.op("Unsqueeze", [perm, g.const([-1])]), g.op("Shape", [x])])
        x = g.op("GatherElements", [x, index], axis=1)
        lens = g.op("Cast", [g.op("ReduceSum", [m, g.const([1])], keepdims=0)],
                    to=g.onnx.TensorProto.INT32)
        counts = g.op("CumSum", [m, g.const(1)])
        return x, lens, counts

    def _scatter(self, layer: Any, y: str, mask: str, counts: str) -> str:
        """The outputs of compacted rows back at their steps; a masked step repeats the last
        unmasked output (zeros before the first; always zeros with zero_output_for_mask)."""
        g = self.g
        where = g.op("Max", [g.op("Sub", [counts, g.const(1)]), g.const(0)])  # (B, T)
        index = g.op("Expand", [g.op("Unsqueeze", [where, g.const([-1])]), g.op("Shape", [y])])
        y = g.op("GatherElements", [y, index], axis=1)
        keep = mask if layer.zero_output_for_mask else g.op("GreaterOrEqual",
                                                             [counts, g.const(1)])
        keep = g.op("Unsqueeze", [g.op("Cast", [keep], to=g.elem), g.const([-1])])
        return g.op("Mul", [y, keep])


def _input_info(g: _Graph, model: Any) -> list:
    """``(name, element type, shape)`` of each model input."""
    from ..layers import Embedding, InputLayer
    infos = []
    if model._graph is None:  # a Sequential
        specs = [model._input_spec]
        first = next((lyr for lyr in model._layers if not isinstance(lyr, InputLayer)), None)
        declared = getattr(model._layers[0], "input_dtype", None)
        if declared is not None and np.dtype(declared).kind in "iu":
            dtypes = [np.dtype(declared)]
        else:
            dtypes = [np.dtype(np.int64) if isinstance(first, Embedding) else g.dtype]
        names = ["input"]
    else:
        specs = model._graph.input_specs
        dtypes = [dt if np.dtype(dt).kind in "iu" else g.dtype
                  for dt in model._graph.input_dtypes]
        names = model.input_names
    for name, spec, dt in zip(names, specs, dtypes):
        dims = ["batch"] + [("time" if k == 0 and len(spec) > 1 else f"{name}_dim{k + 1}")
                            if d is None else int(d) for k, d in enumerate(spec)]
        elem = g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        infos.append((name, elem, dims))
    return infos


def _atomic_save(onnx: Any, proto: Any, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastrnn-export-", suffix=".onnx", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "Received an invalid value for argument `filepath`, expected a path (str or "
            f"os.PathLike), got {type(path).__name__}."
        )
    path = os.fspath(path)
    if not path:
        raise ValueError("Received an invalid value for argument `filepath`: it is empty.")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"Received an invalid value for argument `filepath`: {path!r} is a directory; "
            "give a file name such as 'model.onnx'."
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Received an invalid value for argument `filepath`: the directory {folder!r} "
            "does not exist; create it first."
        )
    if not os.access(folder, os.W_OK):
        raise PermissionError(
            f"Received an invalid value for argument `filepath`: the directory {folder!r} "
            "is not writable."
        )
    return path


def build_onnx(model: Any) -> Any:
    """The ONNX ``ModelProto`` of `model` (checked with ``onnx.checker``); see the module
    docstring for what it holds."""
    onnx = _import_onnx()
    if not _is_model(model):
        raise TypeError(
            "Received an invalid value for argument `model`, expected a fastrnn model, got "
            f"{type(model).__name__}."
        )
    model._require_built("export()")
    dtype = np.dtype(model.dtype)
    if dtype != np.float32:
        raise ValueError(
            f"Model `{model.name}` has {dtype.name} weights; ONNX export supports float32 "
            "models (onnxruntime's recurrent operators run float32)."
        )
    total = sum(w.nbytes for w in model.weights)
    if total > _MAX_BYTES:
        raise ValueError(
            f"Model `{model.name}` has {total / 1e9:.2f} GB of weights; one ONNX file holds "
            "at most 2 GB."
        )
    g = _Graph(onnx, dtype)
    names = ["output"] if _is_sequential(model) else model.output_names
    g._names.update(names)  # the outputs keep the model's names
    xs = []
    for name, elem, dims in _input_info(g, model):
        g._names.add(name)
        g.inputs.append(onnx.helper.make_tensor_value_info(name, elem, dims))
        xs.append(name)
    try:
        outs, _ = _Exporter(g).model(model, xs)
    except _Refused as e:
        raise ValueError(str(e)) from None
    results = []
    for k, (name, value) in enumerate(zip(names, outs)):
        g.nodes.append(onnx.helper.make_node("Identity", [value], [name],
                                             name=g.name("node_Identity")))
        rank = 1 + len(model._output_shapes[k])
        dims = ["batch"] + [f"{name}_dim{j}" for j in range(1, rank)]
        results.append(onnx.helper.make_tensor_value_info(name, g.elem, dims))
    graph = onnx.helper.make_graph(g.nodes, model.name, g.inputs, results + g.outputs,
                                   g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   ir_version=IR_VERSION, producer_name="fastrnn")
    onnx.checker.check_model(proto)
    return proto


def _is_model(layer: Any) -> bool:
    """A fastrnn model (read through its attributes: this module imports no model module,
    so that models can offer ``export``)."""
    return callable(getattr(type(layer), "_unique_layers", None))


def _is_sequential(model: Any) -> bool:
    """A model with its own chain of layers rather than a graph."""
    return model._graph is None


def export_onnx(model: Any, filepath: Any) -> None:
    """Writes `model` as an ONNX file at `filepath` (atomically: a failed export leaves no
    file and does not touch an existing one). See the module docstring for the graph."""
    path = _check_path(filepath)
    proto = build_onnx(model)
    _atomic_save(_import_onnx(), proto, path)
