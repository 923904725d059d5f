"""Streaming a whole model: :meth:`Model.stepper` turns a model's layers into the stages of an
:class:`fastrnn.ops.ModelStepper` (one C++ call a step for the whole model). A model streams
when it has one input ``(batch, time, features)`` and one output, and each of its layers acts
on one time step given the state carried from the last: SimpleRNN, LSTM and GRU (plain or
``layer_norm=True`` cells, any ``return_sequences``), Dense, TimeDistributed(Dense),
Activation, LayerNormalization, BatchNormalization (at inference: its moving statistics),
Conv1D with ``padding="causal"`` and ``strides=1`` (its state: the window of its last
``(kernel_size - 1) * dilation_rate + 1`` inputs), and the identities at inference (Dropout,
the noise layers, Identity, InputLayer); the activation layers ReLU, LeakyReLU, PReLU (its
slopes shared over the time axis), ELU and Softmax (over the features), Normalization with
statistics per feature, UnitNormalization and RMSNormalization (over the features), and
TimeDistributed of any of these per-step layers. The layers may form a graph: branches that
meet again in Add, Subtract, Multiply, Average, Maximum, Minimum or Concatenate (over the
features); each call becomes a stage that names the stages it reads, run in the graph's order
(a chain is the case where each reads the one before); a layer called more than once (shared
weights) becomes one stage per call, each with its own state, as each call runs its own
sequence. Nested models are unrolled into the same stages. An Embedding (without ``mask_zero``)
may come first: the input is then ``(batch, time)`` token ids, and a step takes ``(batch,)``
ids. Everything else is refused, naming the layer and why.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from ..layers.activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from ..layers.convolutional import Conv1D
from ..layers.core import Activation, Dense, Dropout, Embedding, Flatten, InputLayer, Masking
from ..layers.merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from ..layers.normalization import (
    BatchNormalization,
    LayerNormalization,
    Normalization,
    RMSNormalization,
    UnitNormalization,
)
from ..layers.recurrent import _RNN, LN_EPSILON
from ..layers.regularization import _Noise
from ..layers.reshaping import Identity
from ..layers.wrappers import Bidirectional, TimeDistributed
from .common import is_model
from .graph import stream_refusal as _refuse

__all__ = ["model_stepper"]

# Why a layer (by class name) cannot be stepped one time step at a time.
_REFUSED = {
    "Bidirectional": "its backward direction reads the sequence from its end, which a stream "
                     "has not seen yet",
    "MaxPooling1D": "it pools over windows of time steps",
    "AveragePooling1D": "it pools over windows of time steps",
    "GlobalMaxPooling1D": "it reduces over the whole time axis",
    "GlobalAveragePooling1D": "it reduces over the whole time axis",
    "Flatten": "it flattens the time axis into the features",
    "RepeatVector": "it repeats a vector over a new time axis",
    "Reshape": "it reshapes across the time axis",
    "Permute": "it permutes the time axis",
    "GroupNormalization": "its statistics run over the whole time axis (each group of "
                          "channels at every step), which a stream has not seen yet",
    "Masking": "masks cannot stream (a masked step is simply a step not fed)",
}
# The activations a stage computes (cpp/model_stepper.hpp); others are refused by name.
_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "softplus",
                "softsign", "swish", "exponential")
_KNOWN = ("SimpleRNN, LSTM, GRU, Dense, Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, "
          "LayerNormalization, BatchNormalization, Normalization, UnitNormalization, "
          "RMSNormalization, causal Conv1D, TimeDistributed of the per-step ones, and the "
          "identities at inference (Dropout and the noise layers, Identity, InputLayer)")
# Layers that act on each step's features alone: what TimeDistributed may wrap.
_PER_STEP = (Dense, Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, LayerNormalization,
             BatchNormalization, Normalization, UnitNormalization, RMSNormalization, Dropout,
             _Noise, Identity)


def _stream_graph(model: Any) -> tuple[int, int, list, bool]:
    """``(input slot, output slot, calls in run order, whether the input is token ids)`` of
    a model (a nested model's calls are its own, with slots of its own)."""
    model._require_built("stepper()")
    (first_slot, last_slot, calls), rank = model._stream_graph()
    first = next((lyr for lyr, _, _ in calls if not isinstance(lyr, InputLayer)), None)
    ids = isinstance(first, Embedding)
    if ids:
        _stages(first, [])  # refused with the reason when it cannot stream
    if rank != (1 if ids else 2):
        raise ValueError(
            f"Model `{model.name}` cannot be streamed by model.stepper(): its input is not "
            f"(batch, time, features) (got rank {rank + 1}), so it has no time steps."
        )
    return first_slot, last_slot, calls, ids


def _add_model(model: Any, source: int, stages: list) -> int:
    """Appends the stages of `model`'s calls, its input read from stage `source` (-1: the
    stepper's input); returns the stage that gives its output (or `source` itself when every
    call is an identity)."""
    first_slot, last_slot, calls, _ = _stream_graph(model)
    where = {first_slot: source}  # slot -> the stage that gives it
    for layer, in_slots, out_slot in calls:
        sources = [where[s] for s in in_slots]
        if is_model(layer):
            where[out_slot] = _add_model(layer, sources[0], stages)
        else:
            where[out_slot] = _add_layer(layer, sources, stages)
    return where[last_slot]


_MERGES = {Add: "add", Subtract: "subtract", Multiply: "multiply", Average: "average",
           Maximum: "maximum", Minimum: "minimum", Concatenate: "concatenate"}


def _add_layer(layer: Any, sources: list, stages: list) -> int:
    """Appends the stage of one call of `layer`, reading stages `sources`; returns the stage
    that gives its output (its input's for an identity)."""
    kind = _MERGES.get(type(layer))
    if kind is not None:
        if kind == "concatenate":
            rank = len(layer.input_shape[0])
            if layer._axis(rank) != rank - 1:
                raise _refuse(layer, f"it concatenates along axis {layer.axis}, not the "
                              "features (the last axis); only the features stream")
        stages.append((kind, "linear", None, None, None, {"inputs": sources}))
        return len(stages) - 1
    if len(sources) != 1:
        raise _refuse(layer, f"it takes {len(sources)} tensors; the stepper merges several "
                      "only with Add, Subtract, Multiply, Average, Maximum, Minimum and "
                      "Concatenate")
    if stages and stages[0][0] == "embedding" and sources[0] == -1:
        raise _refuse(layer, "it reads the token ids, which only the first Embedding may")
    if isinstance(layer, Embedding) and sources[0] != -1:
        raise _refuse(layer, "an Embedding streams only as the first layer (token ids in)")
    count = len(stages)
    _stages(layer, stages)
    if len(stages) == count:  # an identity at inference
        return sources[0]
    stage = stages[-1]
    options = dict(stage[5]) if len(stage) == 6 else {}
    options["inputs"] = sources
    stages[-1] = (*stage[:5], options)
    return len(stages) - 1


def _stages(layer: Any, stages: list) -> None:
    """Appends the stages of one layer (none for identities at inference)."""
    if isinstance(layer, (InputLayer, Dropout, _Noise, Identity)):
        return  # identities at inference (ActivityRegularization is an Identity)
    activation_stage = _activation_stage(layer)
    if activation_stage is not None:
        stages.append(activation_stage)
        return
    if isinstance(layer, (Dense, Activation, Conv1D)) and layer.activation not in _ACTIVATIONS:
        raise _refuse(layer, f"its activation {layer.activation!r} is not one the stepper "
                      f"computes ({', '.join(_ACTIVATIONS)})")
    if isinstance(layer, _RNN):
        if layer.go_backwards:
            raise _refuse(layer, "go_backwards=True reads the sequence from its end, which a "
                          "stream has not seen yet")
        w = layer._named()
        stage: tuple[Any, ...] = (layer._cell, layer.activation, w["kernel"],
                                  w["recurrent_kernel"], w.get("bias"))
        if layer.layer_norm:  # the layer-normalized cell: each gate block normalized
            stage += ({"gamma": w["gamma"], "beta": w["beta"], "epsilon": LN_EPSILON},)
        stages.append(stage)
        return
    if isinstance(layer, Dense):
        bias = layer.weights[1] if layer.use_bias else None
        stages.append(("dense", layer.activation, layer.weights[0], None, bias))
        return
    if isinstance(layer, Activation):
        stages.append(("activation", layer.activation, None, None, None))
        return
    if isinstance(layer, Conv1D):
        if layer.padding != "causal":
            raise _refuse(layer, f"padding={layer.padding!r} makes output step t read input "
                          + ("steps after t, which a stream has not seen yet"
                             if layer.padding == "same" else
                             f"steps t .. t + {layer.span - 1} (its output is shorter than its "
                             "input)") + "; only padding='causal' streams")
        if layer.strides != 1:
            raise _refuse(layer, f"strides={layer.strides} gives one output every "
                          f"{layer.strides} input steps, not one a step; only strides=1 streams")
        bias = layer.weights[1] if layer.use_bias else None
        stages.append(("conv1d", layer.activation, layer.weights[0], None, bias,
                       {"dilation": layer.dilation_rate, "groups": layer.groups}))
        return
    if isinstance(layer, LayerNormalization):  # over the features of each step
        gamma, beta = layer._affine()
        stages.append(("layer_norm", "linear", None, None, None,
                       {"gamma": gamma, "beta": beta, "epsilon": layer.epsilon}))
        return
    if isinstance(layer, BatchNormalization):  # at inference: the moving statistics
        gamma, beta = layer._affine()
        stages.append(("batch_norm", "linear", None, None, None,
                       {"gamma": gamma, "beta": beta, "epsilon": layer.epsilon,
                        "moving_mean": layer.weights[-2], "moving_variance": layer.weights[-1]}))
        return
    if isinstance(layer, Normalization):  # per feature: the batch_norm stage's affine map
        stages.append(("batch_norm", "linear", None, None, None, _normalization(layer)))
        return
    if isinstance(layer, (UnitNormalization, RMSNormalization)):
        stages.append(_row_normalization(layer))
        return
    if isinstance(layer, TimeDistributed):
        if not isinstance(layer.layer, _PER_STEP):
            raise _refuse(layer, f"it wraps a {type(layer.layer).__name__}; the stepper "
                          "streams TimeDistributed of layers that act on each step's features "
                          "(Dense, activations, normalizations, the identities)")
        _stages(layer.layer, stages)
        return
    if isinstance(layer, Embedding):
        if layer.mask_zero:
            raise _refuse(layer, "masks cannot stream (a masked step is simply a step not fed)")
        if stages:
            raise _refuse(layer, "an Embedding streams only as the first layer (token ids in)")
        stages.append(("embedding", "linear", layer.weights[0], None, None))
        return
    if isinstance(layer, (Bidirectional, Flatten, Masking)) or type(layer).__name__ in _REFUSED:
        raise _refuse(layer, _REFUSED[type(layer).__name__])
    raise _refuse(layer, f"the stepper streams {_KNOWN}")


def _activation_stage(layer: Any) -> Optional[tuple]:
    """The stage of an activation layer (ReLU, LeakyReLU, PReLU, ELU, Softmax); None for
    other layers. What a stage cannot compute is refused naming it."""
    dtype = np.dtype(layer.dtype)
    if isinstance(layer, ReLU):
        if layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0:
            return ("activation", "relu", None, None, None)
        return ("relu", "linear", None, None, None, {
            "slope": np.array([layer.negative_slope], dtype), "threshold": layer.threshold,
            "max_value": layer.max_value, "inclusive": False})
    if isinstance(layer, LeakyReLU):
        return ("relu", "linear", None, None, None, {
            "slope": np.array([layer.negative_slope], dtype), "inclusive": True})
    if isinstance(layer, PReLU):
        alpha = np.asarray(layer.weights[0])  # (T or 1, F or 1); in TimeDistributed (F or 1,)
        if alpha.ndim != 1 and (alpha.ndim != 2 or alpha.shape[0] != 1):
            raise _refuse(layer, f"its alpha {alpha.shape} has a slope per time step (shared_axes="
                          f"{list(layer.shared_axes) or None} does not share axis 1), which a "
                          "stream past those steps has not got; build it with shared_axes=[1]")
        return ("relu", "linear", None, None, None, {"slope": alpha.reshape(-1),
                                                     "inclusive": True})
    if isinstance(layer, ELU):
        if layer.alpha == 1.0:
            return ("activation", "elu", None, None, None)
        return ("activation", "elu", None, None, None, {"alpha": layer.alpha})
    if isinstance(layer, Softmax):
        if tuple(a % 3 for a in layer._axes) != (2,):  # a stream's tensors: (B, T, F)
            raise _refuse(layer, f"axis={layer.axis}: only a softmax over the features (the "
                          "last axis) streams")
        return ("activation", "softmax", None, None, None)
    return None


def _row_normalization(layer: Any) -> tuple:
    """The stage of a UnitNormalization or RMSNormalization over the features of each
    step; other axes are refused naming them."""
    if isinstance(layer, RMSNormalization):  # fastrnn's normalizes the last axis only
        return ("rms_norm", "linear", None, None, None,
                {"scale": layer.weights[0], "epsilon": layer.epsilon})
    if tuple(a % 3 for a in layer._axes) != (2,):
        raise _refuse(layer, f"axis={layer.axis}: only a normalization over the features (the "
                      "last axis) streams")
    return ("unit_norm", "linear", None, None, None)


def _normalization(layer: Normalization) -> dict:
    """A per-feature Normalization as the batch_norm stage's ``(x - mean) / sqrt(variance +
    epsilon) * gamma + beta``: the layer's std squared as the variance, epsilon the smallest
    positive float (``invert``: mean 0, variance 1, gamma = std, beta = mean)."""
    if layer.input_shape is None or len(layer._kept(len(layer.input_shape) + 1)) != 1 or \
            layer._kept(len(layer.input_shape) + 1)[0] != len(layer.input_shape):
        raise _refuse(layer, f"axis={layer.axis}: only statistics per feature (the last "
                      "axis) stream")
    mean, std = (a.reshape(-1) for a in layer._broadcast(len(layer.input_shape) + 1))
    ones, zeros = np.ones_like(std), np.zeros_like(std)
    tiny = float(np.finfo(layer.dtype).tiny)  # the stage's epsilon must be positive
    if layer.invert:
        return {"gamma": std, "beta": mean, "epsilon": tiny, "moving_mean": zeros,
                "moving_variance": ones}
    return {"gamma": ones, "beta": zeros, "epsilon": tiny, "moving_mean": mean,
            "moving_variance": std * std}


def model_stepper(model: Any, batch_size: int = 1) -> ops.ModelStepper:
    """The stepper of `model` (see :meth:`fastrnn.Model.stepper`)."""
    stages: list = []
    last = _add_model(model, -1, stages)
    if not stages:
        raise ValueError(
            f"Model `{model.name}` has nothing to stream: no layer with weights or activation."
        )
    if last != len(stages) - 1:  # every call leads to the output, so the output comes last
        raise ValueError(f"Model `{model.name}` cannot be streamed by model.stepper(): its "
                         "output does not come from its last layer.")
    features = _input_features(model)
    return ops.ModelStepper(stages, batch_size, np.dtype(model.dtype), input_dim=features)


def _input_features(model: Any) -> Optional[int]:
    """The features of the model's input steps, or None (token ids, or not known)."""
    shape = model.input_shape
    if not isinstance(shape, tuple) or len(shape) != 3 or not isinstance(shape[-1], int):
        return None
    return shape[-1]
