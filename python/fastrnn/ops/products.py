"""Products and optimizer updates: :func:`matmul` through the core's OpenBLAS, and the
in-place SGD, Adam and RMSprop updates :mod:`fastrnn.optimizers` runs over the flat parameter
buffer.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .. import math as _math
from .arrays import FLOAT_DTYPES, ArrayLike, checked_array

__all__ = [
    "adam_update",
    "matmul",
    "rmsprop_update",
    "sgd_update",
]


def matmul(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` for 2-D float arrays, through the core's OpenBLAS.

    Without `trans_a`/`trans_b` it is also Keras's ``ops.matmul``: on traced values (inside a
    layer's ``call``), layer weights, symbolic tensors and arrays of more than two axes it
    runs :func:`fastrnn.math.matmul` (NumPy's rules, with gradients).

    ``op`` transposes when `trans_a` / `trans_b` is set (no copy is made for it). Large
    products are split over the core's threads (``fastrnn.set_num_threads``); the layers use
    this rather than NumPy's ``@`` so that training never wakes a second BLAS thread pool.

    Args:
        a: ``(M, K)``, or ``(K, M)`` with `trans_a`.  b: ``(K, N)``, or ``(N, K)`` with `trans_b`.

    Returns:
        ``(M, N)``, in the dtype of `a` (float32 or float64; `b` must have the same dtype).
    """
    if not (  # the common case (every call from a layer) goes straight to the core
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.ndim == 2
        and b.ndim == 2
        and a.dtype in FLOAT_DTYPES
        and b.dtype == a.dtype
        and a.flags.c_contiguous
        and b.flags.c_contiguous
    ):
        if not (trans_a or trans_b) and (_math._traceable(a) or _math._traceable(b)
                                         or np.ndim(a) > 2 or np.ndim(b) > 2):
            # traced values, weights, symbolic tensors or stacks of matrices: Keras's matmul
            product: np.ndarray = _math.matmul(a, b)
            return product
        a = checked_array("a", a, None, (-1, -1), "(rows, columns)")
        b = checked_array("b", b, a.dtype, (-1, -1), "(rows, columns)")
    inner_a = a.shape[0] if trans_a else a.shape[1]
    inner_b = b.shape[1] if trans_b else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(
            f"Received invalid values for arguments `a` and `b`: op(a) is "
            f"{a.shape[::-1] if trans_a else a.shape} and op(b) is "
            f"{b.shape[::-1] if trans_b else b.shape}; their inner dimensions differ."
        )
    return _core.matmul(a, b, bool(trans_a), bool(trans_b))


def affine_checked(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """``x @ w + bias`` in one core call, for a layer's own checked arrays (C-contiguous, one
    float dtype): x ``(M, K)``, w ``(K, N)``, bias ``(N,)`` or None -> ``(M, N)``. The bias
    is where the product starts, so it costs no pass of its own."""
    return _core.matmul(x, w, False, False, bias)


# ----------------------------------------------------------------------------- optimizers
# In-place updates over flat parameter buffers (one C++ pass per step instead of a dozen
# NumPy passes). Every array: C-contiguous, writeable, float32 or float64, one shape.
def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: Optional[np.ndarray],
    learning_rate: float,
    momentum: float = 0.0,
    nesterov: bool = False,
) -> None:
    """``w -= lr g``; with ``velocity``: ``v = mu v - lr g``, ``w += v`` (Nesterov:
    ``w += mu v - lr g``). Updates ``param`` and ``velocity`` in place."""
    _core.sgd_update(param, grad, velocity, learning_rate, momentum, nesterov)


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    v_hat: Optional[np.ndarray],
    alpha: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
) -> None:
    """Keras Adam: ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``w -= alpha m / (sqrt(v) + eps)`` with ``alpha`` the bias-corrected learning rate;
    ``v_hat`` (AMSGrad) replaces ``v`` by ``max(v_hat, v)``. In place."""
    _core.adam_update(param, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon)


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    v: np.ndarray,
    average_grad: Optional[np.ndarray],
    momentum_buffer: Optional[np.ndarray],
    learning_rate: float,
    rho: float,
    momentum: float,
    epsilon: float,
) -> None:
    """Keras RMSprop (centered when ``average_grad`` is given, with momentum when
    ``momentum_buffer`` is given). In place."""
    _core.rmsprop_update(
        param, grad, v, average_grad, momentum_buffer, learning_rate, rho, momentum, epsilon
    )
