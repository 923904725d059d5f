"""Streaming a whole model: :meth:`Model.stepper` turns a chain of layers into the stages of an
:class:`fastrnn.ops.ModelStepper` (one C++ call a step for the whole model).

A model streams when it is a chain (one input ``(batch, time, features)``, one output, each
layer feeding the next; nested chain models are unrolled) of layers that each act on one time
step given the state carried from the last: SimpleRNN, LSTM and GRU (plain cells, any
``return_sequences``), Dense, TimeDistributed(Dense), Activation, and the identities at
inference (Dropout, InputLayer). An Embedding (without ``mask_zero``) may come first: the
input is then ``(batch, time)`` token ids, and a step takes ``(batch,)`` ids. Everything else
is refused, naming the layer and why.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from ..layers.convolutional import Conv1D
from ..layers.core import Activation, Dense, Dropout, Embedding, Flatten, InputLayer, Masking
from ..layers.normalization import BatchNormalization, LayerNormalization
from ..layers.recurrent import _RNN, LN_EPSILON
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
    "GroupNormalization": "it normalizes over groups of channels with statistics the stepper "
                          "does not compute",
    "Masking": "masks cannot stream (a masked step is simply a step not fed)",
}
_KNOWN = ("SimpleRNN, LSTM, GRU, Dense, TimeDistributed(Dense), Activation, "
          "LayerNormalization, BatchNormalization, causal Conv1D, Dropout and InputLayer")


def _chain(model: Any) -> list:
    """The model's layers in the order one step runs them (nested chain models unrolled)."""
    model._require_built("stepper()")
    layers, rank = model._stream_layers()
    first = next((lyr for lyr in layers if not isinstance(lyr, InputLayer)), None)
    ids = isinstance(first, Embedding)
    if ids:
        _stages(first, [])  # refused with the reason when it cannot stream
    if rank != (1 if ids else 2):
        raise ValueError(
            f"Model `{model.name}` cannot be streamed by model.stepper(): its input is not "
            f"(batch, time, features) (got rank {rank + 1}), so it has no time steps."
        )
    flat: list = []
    for layer in layers:
        if is_model(layer):
            flat.extend(_chain(layer))
        else:
            flat.append(layer)
    return flat


def _stages(layer: Any, stages: list) -> None:
    """Appends the stages of one layer (none for identities at inference)."""
    if isinstance(layer, (InputLayer, Dropout)):
        return
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
    if isinstance(layer, TimeDistributed):
        if not isinstance(layer.layer, (Dense, Activation, Dropout)):
            raise _refuse(layer, f"it wraps a {type(layer.layer).__name__}; the stepper "
                          "streams TimeDistributed(Dense), (Activation) and (Dropout)")
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


def model_stepper(model: Any, batch_size: int = 1) -> ops.ModelStepper:
    """The stepper of `model` (see :meth:`fastrnn.Model.stepper`)."""
    stages: list = []
    for layer in _chain(model):
        _stages(layer, stages)
    if not stages:
        raise ValueError(
            f"Model `{model.name}` has nothing to stream: no layer with weights or activation."
        )
    features = _input_features(model)
    return ops.ModelStepper(stages, batch_size, np.dtype(model.dtype), input_dim=features)


def _input_features(model: Any) -> Optional[int]:
    """The features of the model's input steps, or None (token ids, or not known)."""
    shape = model.input_shape
    if not isinstance(shape, tuple) or len(shape) != 3 or not isinstance(shape[-1], int):
        return None
    return shape[-1]
