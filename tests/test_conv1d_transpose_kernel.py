"""The Conv1DTranspose core (cpp/conv1d.hpp, ``_core.conv1d_transpose_forward`` /
``_backward``) against the NumPy form in tests/_reference_layers.py, on every kernel set and both
float types, at Keras's geometries (strides, dilation, "valid"/"same", output_padding, one step,
one batch item, strides past the kernel); gradients by finite differences; bad input."""

from __future__ import annotations

import numpy as np
import pytest

import _reference_layers as ref
import fastrnn
from _layer_harness import numeric_gradient
from _tolerance import assert_within, rounding_rtol
from fastrnn import _core
from fastrnn.layers.convolutional import _transpose_left, conv1d_transpose_output_length

KERNEL_SETS = _core.available_kernel_sets()

# (B, T, C, F, K, strides, dilation, padding, output_padding)
CASES = [
    (2, 7, 5, 6, 4, 2, 1, "same", None),
    (3, 7, 5, 6, 4, 2, 1, "valid", None),
    (2, 6, 3, 4, 3, 1, 2, "valid", None),
    (2, 6, 3, 4, 3, 1, 2, "same", None),
    (2, 5, 4, 3, 2, 3, 1, "valid", 1),    # strides past the kernel, output_padding
    (2, 5, 4, 3, 3, 3, 1, "same", 2),
    (1, 1, 1, 1, 1, 1, 1, "valid", None),
    (1, 1, 3, 2, 5, 2, 1, "same", None),
    (4, 9, 2, 3, 1, 1, 1, "same", None),
    (2, 4, 6, 5, 5, 1, 1, "same", 0),
    (64, 50, 16, 16, 4, 2, 1, "same", None),   # enough work for two threads
]


def case_id(c) -> str:
    B, T, C, F, K, s, d, padding, op = c
    return f"B{B}-T{T}-C{C}-F{F}-K{K}-s{s}-d{d}-{padding}-op{op}"


def geometry(case) -> tuple[int, int, int, int]:
    """(strides, dilation, left, length) as the layer computes them."""
    B, T, C, F, K, s, d, padding, op = case
    length = conv1d_transpose_output_length(T, K, s, padding, op, d)
    return s, d, _transpose_left(length, s, (K - 1) * d + 1, padding), length


def make(rng, case, dtype):
    B, T, C, F, K = case[:5]
    return (rng.standard_normal((B, T, C)).astype(dtype),
            rng.standard_normal((K, F, C)).astype(dtype),
            rng.standard_normal(F).astype(dtype))


@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_reference(kernel_set_restored, kernel_set, dtype, case):
    _core.select_kernel_set(kernel_set)
    B, T, C, F, K, s, d = case[:7]
    strides, dilation, left, length = geometry(case)
    rng = np.random.default_rng(sum(case[:7]))
    x, kernel, bias = make(rng, case, dtype)
    y = _core.conv1d_transpose_forward(x, kernel, bias, strides, dilation, left, length)
    assert y.dtype == dtype and y.shape == (B, length, F)
    # an output step sums C products from each of the ceil(K / s) taps landing on it, and bias
    overlap = -(-K // s)
    assert_within(y, ref.conv1d_transpose_forward(x, kernel, bias, strides, dilation, left,
                                                  length),
                  rounding_rtol(dtype, terms=C * overlap + 1), what="y")
    d_y = rng.standard_normal(y.shape).astype(dtype)
    for use_bias, input_grad in ((True, True), (False, False)):
        got = _core.conv1d_transpose_backward(x, kernel, d_y, strides, dilation, left, use_bias,
                                              input_grad)
        want = ref.conv1d_transpose_backward(x, kernel, d_y, strides, dilation, left, use_bias,
                                             input_grad)
        # d_x sums K * F products; d_kernel and d_bias sum over the B * T input rows
        for name, g, terms, reduction in (("x", got[0], K * F, 0), ("kernel", got[1], 1, B * T),
                                          ("bias", got[2], 1, B * length)):
            if want[name] is None:
                assert g is None, name
                continue
            assert g.dtype == dtype and g.flags.c_contiguous
            assert_within(g, want[name], rounding_rtol(dtype, terms=terms, reduction=reduction),
                          what=name)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]], ids=case_id)
def test_gradients_by_finite_differences(case):
    """float64, loss = sum(y * d_y): central differences at every element of x, kernel, bias
    (the loss is linear in each: only rounding, ~1e-10 relative)."""
    strides, dilation, left, length = geometry(case)
    rng = np.random.default_rng(7)
    x, kernel, bias = make(rng, case, np.float64)
    d_y = rng.standard_normal((case[0], length, case[3]))

    def loss():
        y = _core.conv1d_transpose_forward(x, kernel, bias, strides, dilation, left, length)
        return float(np.sum(y * d_y))

    got = _core.conv1d_transpose_backward(x, kernel, d_y, strides, dilation, left)
    for name, a, g in zip(("x", "kernel", "bias"), (x, kernel, bias), got):
        numeric = [numeric_gradient(loss, a, i) for i in np.ndindex(a.shape)]
        np.testing.assert_allclose(g.reshape(-1), numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_threads_give_the_same_result():
    case = CASES[-1]
    strides, dilation, left, length = geometry(case)
    x, kernel, bias = make(np.random.default_rng(2), case, np.float32)
    d_y = np.ones((case[0], length, case[3]), np.float32)
    before = fastrnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fastrnn.set_num_threads(n)
            results.append((_core.conv1d_transpose_forward(x, kernel, bias, strides, dilation,
                                                           left, length),)
                           + _core.conv1d_transpose_backward(x, kernel, d_y, strides, dilation,
                                                             left))
    finally:
        fastrnn.set_num_threads(before)
    # other thread counts are other batch slices: the weight gradients' partial sums differ
    B, T, C, F, K = case[:5]
    rtol = rounding_rtol(np.float32, terms=K * F, reduction=B * length)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_within(a, b, rtol)


def test_empty_batch():
    x = np.zeros((0, 5, 3), np.float32)
    kernel = np.ones((2, 4, 3), np.float32)
    y = _core.conv1d_transpose_forward(x, kernel, None, 2, 1, 0, 10)
    assert y.shape == (0, 10, 4)
    d_x, d_kernel, d_bias = _core.conv1d_transpose_backward(x, kernel, y, 2, 1, 0)
    assert d_x.shape == x.shape and not d_kernel.any() and not d_bias.any()


@pytest.mark.parametrize("change,name", [
    (dict(x=np.ones((5, 3), np.float32)), "`x`"),
    (dict(x=np.ones((2, 5, 3), np.int32)), "`x`"),
    (dict(x=np.ones((2, 5, 6), np.float32)[:, :, ::2]), "`x`"),
    (dict(kernel=np.ones((2, 4), np.float32)), "`kernel`"),
    (dict(kernel=np.ones((2, 4, 5), np.float32)), "`kernel`"),
    (dict(kernel=np.ones((2, 4, 3), np.float64)), "`kernel`"),
    (dict(kernel=np.ones((0, 4, 3), np.float32)), "`kernel`"),
    (dict(bias=np.ones(5, np.float32)), "`bias`"),
    (dict(stride=0), "`stride`"),
    (dict(dilation=0), "`dilation`"),
    (dict(left=-1), "`left`"),
    (dict(left=2), "`left`"),           # more than span - 1 = 1
    (dict(length=-1), "`length`"),
    (dict(length=10**6), "`length`"),   # far past what the input reaches
])
def test_forward_rejects_bad_input(change, name):
    args = dict(x=np.ones((2, 5, 3), np.float32), kernel=np.ones((2, 4, 3), np.float32),
                bias=None, stride=2, dilation=1, left=0, length=10)
    with pytest.raises(ValueError, match=name):
        _core.conv1d_transpose_forward(**{**args, **change})


@pytest.mark.parametrize("change,name", [
    (dict(d_y=np.ones((2, 10), np.float32)), "`d_y`"),
    (dict(d_y=np.ones((2, 10, 5), np.float32)), "`d_y`"),
    (dict(d_y=np.ones((2, 10, 4), np.float64)), "`d_y`"),
    (dict(d_y=np.ones((2, 10**6, 4), np.float32)), "`length`"),
    (dict(x=np.ones((2, 5, 3), np.float16)), "`x`"),
])
def test_backward_rejects_bad_input(change, name):
    args = dict(x=np.ones((2, 5, 3), np.float32), kernel=np.ones((2, 4, 3), np.float32),
                d_y=np.ones((2, 10, 4), np.float32), stride=2, dilation=1, left=0)
    with pytest.raises(ValueError, match=name):
        _core.conv1d_transpose_backward(**{**args, **change})
