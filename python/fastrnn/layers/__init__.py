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

# Convolution, pooling and normalization for sequences.
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

# The rest of Keras 3's layers for sequences.
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax  # noqa: E402
from .attention import (  # noqa: E402
    AdditiveAttention,
    Attention,
    GroupQueryAttention,
    MultiHeadAttention,
)
from .convolutional import Conv1DTranspose, DepthwiseConv1D, SeparableConv1D  # noqa: E402
from .einsum_dense import EinsumDense  # noqa: E402
from .merging import (  # noqa: E402
    Dot,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import (  # noqa: E402
    GroupNormalization,
    Normalization,
    RMSNormalization,
    UnitNormalization,
)
from .pooling import AdaptiveAveragePooling1D, AdaptiveMaxPooling1D  # noqa: E402
from .regularization import (  # noqa: E402
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
)
from .reshaping import (  # noqa: E402
    ActivityRegularization,
    Cropping1D,
    Identity,
    Rescaling,
    UpSampling1D,
    ZeroPadding1D,
)
from .text import (  # noqa: E402
    CategoryEncoding,
    IntegerLookup,
    StringLookup,
    TextVectorization,
)

__all__ += [
    "ActivityRegularization", "ELU", "AdaptiveAveragePooling1D", "AdaptiveMaxPooling1D",
    "AdditiveAttention",
    "CategoryEncoding", "IntegerLookup",
    "AlphaDropout", "Attention", "Conv1DTranspose", "Cropping1D", "DepthwiseConv1D", "Dot",
    "EinsumDense", "GaussianDropout", "GaussianNoise", "GroupNormalization",
    "GroupQueryAttention", "Identity", "LeakyReLU",
    "MultiHeadAttention", "Normalization", "PReLU", "RMSNormalization", "ReLU", "Rescaling",
    "SeparableConv1D", "Softmax", "SpatialDropout1D", "StringLookup", "TextVectorization",
    "UnitNormalization", "UpSampling1D",
    "ZeroPadding1D", "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply",
    "subtract",
]

# Keras's other names for the same layers: one line each, all here.
AvgPool1D = AveragePooling1D
Convolution1D = Conv1D
Convolution1DTranspose = Conv1DTranspose
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
MaxPool1D = MaxPooling1D
SeparableConvolution1D = SeparableConv1D

__all__ += [
    "AvgPool1D", "Convolution1D", "Convolution1DTranspose", "GlobalAvgPool1D",
    "GlobalMaxPool1D", "MaxPool1D", "SeparableConvolution1D",
]
