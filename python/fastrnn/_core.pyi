"""fastrnn._core, the compiled kernels (cpp/bindings/): its functions and their signatures.

Arrays are batch-major and in Keras's weight layout; every function takes float32 or float64
arrays of one dtype (chosen by its first array argument) and checks every argument, raising a
ValueError that names it. Only :mod:`fastrnn.ops` imports this module.
Checked against the built module by ``python -m mypy.stubtest fastrnn._core``.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

_Array = NDArray[Any]

__version__: str
MAX_THREADS: int

# ------------------------------------------------------------------------ recurrent cells
def simple_rnn_forward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    recurrent_mask: _Array | None = None,
    activation: str = "tanh",
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array]:
    """-> (outputs, h_last)"""

def stacked_forward(
    x: _Array, layers: list[tuple[str, _Array, _Array, _Array | None, str]], chunk: int = 6
) -> tuple[_Array, _Array] | None:
    """-> (outputs, h_last) of the last layer, or None (see cpp/bindings/stacked.cpp)"""

def simple_rnn_backward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    activation: str = "tanh",
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)"""

def lstm_forward(
    x: _Array,
    h0: _Array | None,
    c0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    recurrent_mask: _Array | None = None,
    keep_tape: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
    """-> (outputs, h_last, c_last, gates, cells); gates and cells are None without a tape"""

def lstm_backward(
    x: _Array,
    h0: _Array | None,
    c0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    gates: _Array,
    cells: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    d_c_last: _Array | None,
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias)"""

def gru_forward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    recurrent_mask: _Array | None = None,
    keep_tape: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array, _Array | None, _Array | None]:
    """-> (outputs, h_last, gates, hz_h); gates and hz_h are None without a tape"""

def gru_backward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    gates: _Array,
    hz_h: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias)"""

# ------------------------------------------------------------ layer-normalized cells
def layer_norm_simple_rnn_forward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    gamma: _Array,
    beta: _Array,
    epsilon: float,
    recurrent_mask: _Array | None = None,
    activation: str = "tanh",
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array, _Array, _Array]:
    """-> (outputs, h_last, xhat, rstd)"""

def layer_norm_simple_rnn_backward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    gamma: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    xhat: _Array,
    rstd: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    activation: str = "tanh",
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)"""

def layer_norm_lstm_forward(
    x: _Array,
    h0: _Array | None,
    c0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    gamma: _Array,
    beta: _Array,
    epsilon: float,
    recurrent_mask: _Array | None = None,
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array, _Array, _Array, _Array, _Array, _Array]:
    """-> (outputs, h_last, c_last, gates, cells, xhat, rstd)"""

def layer_norm_lstm_backward(
    x: _Array,
    h0: _Array | None,
    c0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    gamma: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    gates: _Array,
    cells: _Array,
    xhat: _Array,
    rstd: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    d_c_last: _Array | None,
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_c0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)"""

def layer_norm_gru_forward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    gamma: _Array,
    beta: _Array,
    epsilon: float,
    recurrent_mask: _Array | None = None,
    step_mask: _Array | None = None,
) -> tuple[_Array, _Array, _Array, _Array, _Array, _Array]:
    """-> (outputs, h_last, gates, hz_h, xhat, rstd)"""

def layer_norm_gru_backward(
    x: _Array,
    h0: _Array | None,
    kernel: _Array,
    recurrent_kernel: _Array,
    gamma: _Array,
    recurrent_mask: _Array | None,
    outputs: _Array,
    gates: _Array,
    hz_h: _Array,
    xhat: _Array,
    rstd: _Array,
    d_outputs: _Array | None,
    d_h_last: _Array | None,
    truncate: int = 0,
    input_grad: bool = True,
    step_mask: _Array | None = None,
) -> tuple[_Array | None, _Array, _Array, _Array, _Array, _Array, _Array]:
    """-> (d_x or None, d_h0, d_kernel, d_recurrent_kernel, d_bias, d_gamma, d_beta)"""

# ------------------------------------------------------------------ steps, model stepper
def simple_rnn_step(
    x: _Array,
    h: _Array,
    kernel: _Array,
    recurrent_kernel: _Array,
    bias: _Array | None,
    activation: str = "tanh",
) -> None:
    """One step; h (B, H) updated in place."""

def lstm_step(
    x: _Array, h: _Array, c: _Array, kernel: _Array, recurrent_kernel: _Array, bias: _Array | None
) -> None:
    """One step; h and c (B, H) updated in place."""

def gru_step(
    x: _Array, h: _Array, kernel: _Array, recurrent_kernel: _Array, bias: _Array | None
) -> None:
    """One step; h (B, H) updated in place."""

class _Pybind11Type(type):
    """The metaclass of pybind11's classes (pybind11_builtins.pybind11_type)."""

class ModelStepper(metaclass=_Pybind11Type):
    """Stages stepped together (each reading the model's input or earlier stages), every
    state advanced one step a call."""

    def __init__(self, stages: list[Any], batch_size: int, dtype: str,
                 in_features: int = 0) -> None:
        """stages: [(kind, activation, kernel, recurrent_kernel, bias[, options])], first to
        last; in_features: the input's width (0: from the first stage's weights)."""
    def step(self, x: _Array, out: _Array | None = None) -> _Array:
        """x (B, I) -> (B, O), every state advanced one step; written into `out` if given."""
    def reset(self) -> None:
        """Every state to zeros."""
    def get_state(self, stage: int) -> list[_Array]: ...
    def set_state(self, stage: int, states: list[_Array]) -> None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def in_features(self) -> int: ...
    @property
    def vocabulary(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    @property
    def dtype(self) -> str: ...

# ------------------------------------------------------------------ optimizers, products
def sgd_update(
    param: _Array,
    grad: _Array,
    velocity: _Array | None,
    learning_rate: float,
    momentum: float,
    nesterov: bool,
) -> tuple[()]:
    """SGD step, in place."""

def adam_update(
    param: _Array,
    grad: _Array,
    m: _Array,
    v: _Array,
    v_hat: _Array | None,
    alpha: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
) -> tuple[()]:
    """Adam step, in place; alpha is the bias-corrected learning rate."""

def rmsprop_update(
    param: _Array,
    grad: _Array,
    v: _Array,
    average_grad: _Array | None,
    momentum_buffer: _Array | None,
    learning_rate: float,
    rho: float,
    momentum: float,
    epsilon: float,
) -> tuple[()]:
    """RMSprop step, in place."""

def matmul(
    a: _Array,
    b: _Array,
    trans_a: bool = False,
    trans_b: bool = False,
    bias: _Array | None = None,
) -> _Array:
    """op(a) @ op(b) (+ bias, shape (N,)) for 2-D float arrays of one dtype -> (M, N)"""

def _packed_product(
    a: _Array,
    w: _Array,
    c: _Array,
    beta: float = 0.0,
    c0: int = 0,
    c1: int = -1,
    blas: bool = False,
    repeat: int = 1,
) -> _Array:
    """Test-only: columns [c0, c1) of a @ w + beta c by the packed micro-kernel."""

def _set_packed_products(mode: str) -> None:
    """Test-only: whether the recurrent products use the packed micro-kernel."""

# ------------------------------------------------------------------------ sequence layers
def conv1d_forward(
    x: _Array,
    kernel: _Array,
    bias: _Array | None = None,
    stride: int = 1,
    dilation: int = 1,
    pad_left: int = 0,
    pad_right: int = 0,
    groups: int = 1,
) -> _Array:
    """-> y (B, L, O)"""

def conv1d_backward(
    x: _Array,
    kernel: _Array,
    d_y: _Array,
    stride: int = 1,
    dilation: int = 1,
    pad_left: int = 0,
    pad_right: int = 0,
    groups: int = 1,
    use_bias: bool = True,
    input_grad: bool = True,
) -> tuple[_Array | None, _Array, _Array | None]:
    """-> (d_x or None, d_kernel, d_bias or None)"""

def conv1d_transpose_forward(
    x: _Array,
    kernel: _Array,
    bias: _Array | None = None,
    stride: int = 1,
    dilation: int = 1,
    left: int = 0,
    length: int = 0,
) -> _Array:
    """-> y (B, length, F): steps [left, left + length) of the transposed convolution of x
    (B, T, C) by kernel (K, F, C)"""

def conv1d_transpose_backward(
    x: _Array,
    kernel: _Array,
    d_y: _Array,
    stride: int = 1,
    dilation: int = 1,
    left: int = 0,
    use_bias: bool = True,
    input_grad: bool = True,
) -> tuple[_Array | None, _Array, _Array | None]:
    """-> (d_x or None, d_kernel, d_bias or None)"""

def attention_forward(
    q: _Array,
    k: _Array,
    v: _Array,
    keep: NDArray[np.bool_] | NDArray[np.uint8] | None = None,
    drop: _Array | None = None,
    causal: bool = False,
) -> tuple[_Array, _Array]:
    """-> (p (B, H, Tq, Tv), ctx (B, Tq, H, Dv)); q (B, Tq, H, Dk) already scaled"""

def attention_backward(
    q: _Array,
    k: _Array,
    v: _Array,
    p: _Array,
    d_ctx: _Array,
    drop: _Array | None = None,
    d_p: _Array | None = None,
    causal: bool = False,
    d_q_scale: float = 1.0,
) -> tuple[_Array, _Array, _Array]:
    """-> (d_q (B, Tq, H, Dk) times d_q_scale, d_k (B, Tv, Hkv, Dk), d_v (B, Tv, Hkv, Dv))"""

def pool1d_forward(
    x: _Array,
    pool_size: int,
    stride: int,
    pad_left: int = 0,
    pad_right: int = 0,
    mode: str = "max",
    keep_argmax: bool = True,
) -> tuple[_Array, NDArray[np.int32] | None]:
    """-> (y (B, L, C), argmax int32 (B, L, C) or None)"""

def pool1d_backward(
    d_y: _Array,
    argmax: NDArray[np.int32] | None,
    steps: int,
    pool_size: int,
    stride: int,
    pad_left: int = 0,
    pad_right: int = 0,
) -> _Array:
    """-> d_x (B, steps, C); argmax None: average pooling"""

def layer_norm_forward(
    x: _Array, gamma: _Array | None, beta: _Array | None, epsilon: float
) -> tuple[_Array, _Array, _Array]:
    """-> (y (N, C), mean (N,), rstd (N,))"""

def layer_norm_backward(
    d_y: _Array,
    x: _Array,
    mean: _Array,
    rstd: _Array,
    gamma: _Array | None,
    want_gamma: bool = True,
    want_beta: bool = True,
    input_grad: bool = True,
) -> tuple[_Array | None, _Array | None, _Array | None]:
    """-> (d_x or None, d_gamma or None, d_beta or None)"""

def batch_norm_moments(x: _Array) -> tuple[_Array, _Array]:
    """-> (mean (C,), biased variance (C,)) over the rows of x (N, C)"""

def batch_norm_apply(x: _Array, scale: _Array, shift: _Array) -> _Array:
    """-> x * scale + shift (N, C)"""

def batch_norm_backward(
    d_y: _Array,
    x: _Array,
    mean: _Array,
    rstd: _Array,
    scale: _Array,
    input_grad: bool = True,
) -> tuple[_Array | None, _Array, _Array]:
    """-> (d_x or None, d_gamma (C,), d_beta (C,))"""

# ----------------------------------------------------------------------------- settings
def set_num_threads(n: int) -> None:
    """Threads used by the core (at most MAX_THREADS; larger counts are capped)."""

def get_num_threads() -> int: ...
def blas_config() -> str:
    """OpenBLAS build configuration and the kernel (core) it chose for this CPU."""

def kernel_set() -> str:
    """The instruction-set variant of the kernels in use."""

def available_kernel_sets() -> list[str]:
    """The kernel sets built into this module and supported by this CPU, best last."""

def select_kernel_set(name: str) -> None:
    """Switches the kernel set (tests, benchmarks); ValueError when it cannot run here."""

def _debug_fill_nan() -> bool:
    """Whether FASTRNN_DEBUG_FILL_NAN was set when the core first handed out a buffer."""

def _debug_empty(n: int) -> NDArray[np.float64]:
    """An array as a kernel gets it for an output (NaN in the debug mode)."""

def _debug_hold_locks(milliseconds: int) -> None:
    """Holds the core's process-wide locks for a while (fork tests)."""
