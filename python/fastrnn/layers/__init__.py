"""Keras-style layers over the fused kernels of :mod:`fastrnn.ops`.

Every layer follows the interface of :class:`fastrnn.layers.Layer` (``build``,
``compute_output_shape``, ``forward``, ``backward``, ``weights``/``grads``/``weight_names``,
``_bind``, ``get_weights``/``set_weights``, ``get_config``/``from_config``, ``count_params``,
``reset_states``, ``rng``). :func:`serialize` / :func:`deserialize` / :func:`get` turn layers
into JSON-ready dicts and back.
"""

from __future__ import annotations

from .base import Layer, deserialize, get, serialize
from .core import Activation, Dense, Dropout, Embedding, Flatten, Input, InputLayer, Masking
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Permute,
    RepeatVector,
    Reshape,
    Subtract,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "Average",
    "Bidirectional",
    "Concatenate",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "Masking",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "RepeatVector",
    "Reshape",
    "SimpleRNN",
    "Subtract",
    "TimeDistributed",
    "deserialize",
    "get",
    "serialize",
]

# Convolution, pooling and normalization for sequences (issue 11).
from .convolutional import Conv1D  # noqa: E402
from .normalization import BatchNormalization, LayerNormalization  # noqa: E402
from .pooling import (  # noqa: E402
    AveragePooling1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)

__all__ += [
    "AveragePooling1D",
    "BatchNormalization",
    "Conv1D",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "LayerNormalization",
    "MaxPooling1D",
]

# Keras-style layers of your own (traced math), Lambda, RNN(cell) and the cells.
from .base import register_keras_serializable  # noqa: E402
from .rnn import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells  # noqa: E402
from .traced import Lambda, TracedOp  # noqa: E402

__all__ += [
    "RNN",
    "GRUCell",
    "LSTMCell",
    "Lambda",
    "SimpleRNNCell",
    "StackedRNNCells",
    "TracedOp",
    "register_keras_serializable",
]
