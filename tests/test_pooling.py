"""1-D pooling: the kernels against the NumPy reference, finite differences, PyTorch and
TF-Keras parity, global pooling with masks, DLwP's Jena convnet, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastrnn
from _keras import import_keras, keras_predict
from fastrnn import layers, ops
from fastrnn import reference as ref

COMBOS = [(p, s, pad) for p, s, pad in itertools.product((1, 2, 3, 5), (None, 1, 2, 3),
                                                         ("valid", "same"))]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_match_reference(mode, dtype):
    rng = np.random.default_rng(0)
    for pool, strides, padding in COMBOS:
        for T in (5, 7, 12):
            if padding == "valid" and T < pool:
                continue
            x = rng.standard_normal((3, T, 5)).astype(dtype)
            y, tape = ops.pool1d_forward(x, pool, strides, padding, mode)
            want, ref_tape = ref.pool1d_forward(x, pool, strides, padding, mode)
            assert y.shape == want.shape and y.dtype == dtype
            np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
            d_y = rng.standard_normal(y.shape).astype(dtype)
            np.testing.assert_allclose(ops.pool1d_backward(tape, d_y),
                                       ref.pool1d_backward(ref_tape, d_y),
                                       rtol=1e-6, atol=1e-6, err_msg=str((pool, strides, T)))


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_gradients_by_finite_differences(mode, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 11, 3))  # distinct values: no ties in any window
    y, tape = ops.pool1d_forward(x, 3, 2, padding, mode)
    w = rng.standard_normal(y.shape)
    got = ops.pool1d_backward(tape, w)
    eps = 1e-6
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = np.sum(ops.pool1d_forward(x, 3, 2, padding, mode)[0] * w)
        flat[i] = old - eps
        down = np.sum(ops.pool1d_forward(x, 3, 2, padding, mode)[0] * w)
        flat[i] = old
        assert got.reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), abs=1e-7)


def test_matches_torch_pooling():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((4, 13, 6))
    for pool, strides in ((2, None), (3, 2), (4, 1), (5, 3)):
        for mine, theirs in ((layers.MaxPooling1D, torch.nn.MaxPool1d),
                             (layers.AveragePooling1D, torch.nn.AvgPool1d)):
            layer = mine(pool, strides, dtype="float64")
            y = layer.forward(x, training=True)
            xt = torch.from_numpy(x).transpose(1, 2).requires_grad_(True)
            yt = theirs(pool, strides).double()(xt).transpose(1, 2)
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
            w = np.random.default_rng(3).standard_normal(y.shape)
            yt.backward(torch.from_numpy(w))
            np.testing.assert_allclose(layer.backward(w), xt.grad.transpose(1, 2).numpy(),
                                       rtol=1e-12)


# ----------------------------------------------------------------------------- TF-Keras
@pytest.fixture(scope="module")
def keras():
    return import_keras()


@pytest.mark.parametrize("pool,strides,padding", COMBOS)
def test_matches_tf_keras(keras, pool, strides, padding):
    x = np.random.default_rng(4).standard_normal((2, 12, 3)).astype(np.float32)
    for mine, theirs in ((layers.MaxPooling1D, keras.layers.MaxPooling1D),
                         (layers.AveragePooling1D, keras.layers.AveragePooling1D)):
        layer = mine(pool, strides, padding)
        want = keras_predict(theirs(pool, strides, padding), x)
        y = layer.forward(x)
        assert y.shape == want.shape
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
        assert layer.compute_output_shape((12, 3)) == want.shape[1:]


def test_global_pooling_matches_tf_keras_with_and_without_mask(keras):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 9, 3)).astype(np.float32)
    mask = rng.random((4, 9)) < 0.6
    mask[:, 0] = True
    mask[1] = False
    mask[1, 4] = True  # a row with a single step
    for keepdims in (False, True):
        gap = layers.GlobalAveragePooling1D(keepdims=keepdims)
        theirs = keras.layers.GlobalAveragePooling1D(keepdims=keepdims)
        np.testing.assert_allclose(gap.forward(x), keras_predict(theirs, x), rtol=1e-5)
        with_mask = theirs(x, mask=mask).numpy()
        np.testing.assert_allclose(gap.forward(x, mask=mask), with_mask, rtol=1e-5, atol=1e-6)
        gmp = layers.GlobalMaxPooling1D(keepdims=keepdims)
        np.testing.assert_allclose(
            gmp.forward(x), keras_predict(keras.layers.GlobalMaxPooling1D(keepdims=keepdims), x))


def test_dlwp_jena_convnet_matches_tf_keras_with_copied_weights(keras):
    x = np.random.default_rng(6).standard_normal((4, 120, 14)).astype(np.float32)

    def convnet(L):  # Deep Learning with Python, ch. 10
        return [L.Conv1D(8, 24, activation="relu"), L.MaxPooling1D(2),
                L.Conv1D(8, 12, activation="relu"), L.MaxPooling1D(2),
                L.Conv1D(8, 6, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(1)]

    mine = fastrnn.Sequential([layers.InputLayer(shape=(120, 14))] + convnet(layers))
    mine.build()
    theirs = keras.models.Sequential([keras.layers.InputLayer(shape=(120, 14))]
                                     + convnet(keras.layers))
    theirs.set_weights(mine.get_weights())
    np.testing.assert_allclose(mine.predict(x), keras_predict(theirs, x), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- global pooling
def test_masked_global_pooling_and_its_gradient():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 2))
    mask = np.array([[1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    gap = layers.GlobalAveragePooling1D(dtype="float64")
    y = gap.forward(x, training=True, mask=mask)
    np.testing.assert_allclose(y[0], x[0, [0, 1, 3]].mean(axis=0))
    np.testing.assert_array_equal(y[1], 0)  # no step left: zeros
    np.testing.assert_allclose(y[2], x[2].mean(axis=0))
    d_x = gap.backward(np.ones((3, 2)))
    np.testing.assert_allclose(d_x[0, :, 0], [1 / 3, 1 / 3, 0, 1 / 3, 0, 0])
    np.testing.assert_array_equal(d_x[1], 0)
    gmp = layers.GlobalMaxPooling1D(dtype="float64")
    y = gmp.forward(x, training=True, mask=mask)
    np.testing.assert_allclose(y[0], x[0, [0, 1, 3]].max(axis=0))
    np.testing.assert_array_equal(y[1], 0)
    d_x = gmp.backward(np.ones((3, 2)))
    assert d_x.sum() == 4 and d_x[1].sum() == 0 and d_x[0, [2, 4, 5]].sum() == 0
    np.testing.assert_allclose(gmp.forward(x, training=True), x.max(axis=1))
    d_x = gmp.backward(np.full((3, 2), 2.0))
    np.testing.assert_array_equal(d_x, 2.0 * (x == x.max(axis=1, keepdims=True)))
    assert gap.compute_mask(x, mask) is None and gmp.compute_mask(x, mask) is None
    with pytest.raises(ValueError, match="mask must have shape"):
        gap.forward(x, mask=mask[:, :5])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,match", [
    (dict(pool_size=0), "`pool_size`"),
    (dict(pool_size=2, strides=0), "`strides`"),
    (dict(pool_size=2, strides=-1), "`strides`"),
    (dict(pool_size=2, padding="causal"), "`padding`"),
    (dict(pool_size=(2, 2)), "`pool_size`"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    for cls in (layers.MaxPooling1D, layers.AveragePooling1D):
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)


def test_lengths_that_reach_zero_and_bad_tapes_raise():
    with pytest.raises(ValueError, match="shorter than pool_size=4"):
        layers.MaxPooling1D(4).build((3, 2))
    layer = layers.AveragePooling1D(4)
    layer.build((None, 2))
    with pytest.raises(ValueError, match="fewer than pool_size=4"):
        layer.forward(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="rank 3"):
        layer.forward(np.zeros((1, 3)))
    assert layers.MaxPooling1D(4, padding="same").forward(np.ones((1, 3, 2))).shape == (1, 1, 2)
    y, tape = ops.pool1d_forward(np.ones((1, 6, 2)), 2)
    tape._arrays["argmax"][0, 0, 0] = 99  # a tampered tape must not write outside d_x
    with pytest.raises(ValueError, match="argmax"):
        ops.pool1d_backward(tape, y)
    with pytest.raises(ValueError, match="`d_y`"):
        ops.pool1d_backward(tape, np.ones((1, 2, 2)))
    with pytest.raises(TypeError, match="`tape`"):
        ops.pool1d_backward(None, y)
