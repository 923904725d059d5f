"""fastrnn.ops.matmul: the 2-D product the layers use, against NumPy, threaded and not."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 3, 5), (1600, 20, 10), (700, 301, 257)])
def test_matches_numpy(dtype, trans_a, trans_b, threads, m, k, n):
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)  # (700, 301, 257) is large enough to split its rows
    try:
        got = ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    finally:
        fastrnn.set_num_threads(before)
    assert got.dtype == dtype and got.shape == (m, n)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(k))


def test_empty_inner_dimension_gives_zeros():
    got = ops.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32))
    np.testing.assert_array_equal(got, np.zeros((3, 4), np.float32))


def test_views_and_lists_are_accepted():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]  # not contiguous
    np.testing.assert_allclose(ops.matmul(a, [[1.0], [2.0], [3.0]]), a @ [[1.0], [2.0], [3.0]])


@pytest.mark.parametrize(
    "a,b,error,match",
    [
        (np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), ValueError, "inner dimensions"),
        (np.ones(3, np.float32), np.ones((3, 2), np.float32), ValueError, "argument `a`"),
        (np.ones((2, 3), np.float32), np.ones((3, 2), np.float64), TypeError, "argument `b`"),
        (np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), TypeError, "argument `a`"),
    ],
)
def test_bad_input_names_the_argument(a, b, error, match):
    with pytest.raises(error, match=match):
        ops.matmul(a, b)


@pytest.mark.parametrize(
    "a,b,match",
    [
        (np.ones((4, 6), np.float32)[:, ::2], np.ones((3, 2), np.float32), "C-contiguous"),
        (np.ones(3, np.float32), np.ones((3, 2), np.float32), "2-D"),
        (np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), "inner dimensions"),
        (np.ones((2, 3), np.float32), np.ones((3, 2), np.float64), "argument `b`"),
        (np.ones((2, 3), np.int32), np.ones((3, 2), np.int32), "argument `a`"),
    ],
)
def test_core_matmul_rejects_bad_input_without_crashing(a, b, match):
    """The binding checks for itself too (it is reachable as fastrnn._core.matmul)."""
    from fastrnn import _core

    with pytest.raises(ValueError, match=match):
        _core.matmul(a, b, False, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k,n", [(1, 16, 1), (7, 3, 5), (1600, 20, 10), (700, 301, 257),
                                   (3, 0, 4), (0, 5, 2)])
def test_affine_adds_the_bias_to_every_row(dtype, threads, m, k, n):
    """Dense's product: x @ w + bias in one core call (the bias is where the product starts,
    also when the inner dimension is empty and for row slices over threads)."""
    rng = np.random.default_rng(m * 7 + k + n)
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        got = ops.internal.affine_checked(x, w, bias)
        plain = ops.internal.affine_checked(x, w, None)
    finally:
        fastrnn.set_num_threads(before)
    want = x.astype(np.float64) @ w.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, want + bias, rtol=tol, atol=tol * np.sqrt(k + 1))
    np.testing.assert_allclose(plain, want, rtol=tol, atol=tol * np.sqrt(k + 1))


@pytest.mark.parametrize("bias, match", [
    (np.zeros(3, np.float32), r"`bias`.*shape \(4,\), got float32 \(3,\)"),
    (np.zeros((1, 4), np.float32), r"`bias`"),
    (np.zeros(4, np.float64), r"`bias`.*float32"),
    (np.zeros(8, np.float32)[::2], r"`bias`.*C-contiguous"),
])
def test_core_matmul_rejects_a_bad_bias(bias, match):
    from fastrnn import _core
    with pytest.raises(ValueError, match=match):
        _core.matmul(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), False, False, bias)
