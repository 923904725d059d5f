"""LayerNormalization and BatchNormalization: kernels against the NumPy reference, finite
differences, PyTorch and TF-Keras parity, moving statistics through fit, config, errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _keras import import_keras, keras_predict
from fastrnn import layers, ops, optimizers
from fastrnn import reference as ref

SHAPES = [(4, 7, 5), (1, 1, 1), (3, 2, 13), (6, 3)]


def _affine(C, rng, dtype, center, scale):
    gamma = rng.standard_normal(C).astype(dtype) if scale else None
    beta = rng.standard_normal(C).astype(dtype) if center else None
    return gamma, beta


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False),
                                          (False, False)])
def test_layer_norm_matches_reference(shape, dtype, center, scale):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma, beta = _affine(shape[-1], rng, dtype, center, scale)
    y, tape = ops.layer_norm_forward(x, gamma, beta, 1e-3)
    y_ref, tape_ref = ref.layer_norm_forward(x, gamma, beta, 1e-3)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    d_y = rng.standard_normal(shape).astype(dtype)
    got, want = ops.layer_norm_backward(tape, d_y), ref.layer_norm_backward(tape_ref, d_y)
    np.testing.assert_allclose(got["x"], want["x"], rtol=tol * 10, atol=tol * 10)
    for name, present in (("gamma", scale), ("beta", center)):
        if present:
            np.testing.assert_allclose(got[name], want[name], rtol=tol * 10, atol=tol * 10)
        else:
            assert got[name] is None


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_reference(shape, dtype, training):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 2 - 3).astype(dtype)
    gamma, beta = _affine(shape[-1], rng, dtype, True, True)
    stats = {} if training else dict(mean=rng.standard_normal(shape[-1]).astype(dtype),
                                      variance=rng.random(shape[-1]).astype(dtype) + 0.5)
    y, mean, var, tape = ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3, **stats)
    y_ref, mean_ref, var_ref, tape_ref = ref.batch_norm_forward(x, gamma, beta, epsilon=1e-3,
                                                                **stats)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, mean_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(var, var_ref, rtol=tol, atol=tol)
    d_y = rng.standard_normal(shape).astype(dtype)
    got, want = ops.batch_norm_backward(tape, d_y), ref.batch_norm_backward(tape_ref, d_y)
    for name in ("x", "gamma", "beta"):
        np.testing.assert_allclose(got[name], want[name], rtol=tol * 100, atol=tol * 100)


def _finite_differences(forward, arrays, w, eps=1e-6):
    grads = []
    for arr in arrays:
        g = np.empty(arr.size)
        flat = arr.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = np.sum(forward() * w)
            flat[i] = old - eps
            down = np.sum(forward() * w)
            flat[i] = old
            g[i] = (up - down) / (2 * eps)
        grads.append(g.reshape(arr.shape))
    return grads


def test_gradients_by_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    w = rng.standard_normal(x.shape)
    got = ops.layer_norm_backward(ops.layer_norm_forward(x, gamma, beta)[1], w)
    fd = _finite_differences(lambda: ops.layer_norm_forward(x, gamma, beta)[0],
                             [x, gamma, beta], w)
    for name, want in zip(("x", "gamma", "beta"), fd):
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)
    got = ops.batch_norm_backward(ops.batch_norm_forward(x, gamma, beta)[3], w)
    fd = _finite_differences(lambda: ops.batch_norm_forward(x, gamma, beta)[0],
                             [x, gamma, beta], w)
    for name, want in zip(("x", "gamma", "beta"), fd):
        np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_threads_give_the_same_result():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 120, 14)).astype(np.float32)
    d_y = rng.standard_normal(x.shape).astype(np.float32)
    before = fastrnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fastrnn.set_num_threads(n)
            y, tape = ops.layer_norm_forward(x, np.ones(14, np.float32), None)
            z, mean, var, btape = ops.batch_norm_forward(x)
            results.append((y, ops.layer_norm_backward(tape, d_y)["gamma"], z, mean, var,
                            ops.batch_norm_backward(btape, d_y)["x"]))
    finally:
        fastrnn.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(r, results[0]):  # (d_gamma: float sums of 430,080 rows, in pieces)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


# ----------------------------------------------------------------------------- PyTorch
def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 7))
    layer = layers.LayerNormalization(epsilon=1e-5, dtype="float64", gamma_initializer="uniform",
                                      beta_initializer="uniform", seed=0)
    y = layer.forward(x, training=True)
    norm = torch.nn.LayerNorm(7, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(layer.get_weights()[0]))
        norm.bias.copy_(torch.from_numpy(layer.get_weights()[1]))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = norm(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(x.shape)
    yt.backward(torch.from_numpy(w))
    np.testing.assert_allclose(layer.backward(w), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.grads[0], norm.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(layer.grads[1], norm.bias.grad.numpy(), rtol=1e-9)


def test_batch_norm_matches_torch_batchnorm1d():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 9, 4)) * 2 + 1
    layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype="float64",
                                      gamma_initializer="uniform", beta_initializer="uniform",
                                      seed=0)
    y = layer.forward(x, training=True)
    bn = torch.nn.BatchNorm1d(4, eps=1e-5, momentum=0.1).double()  # torch's = 1 - Keras's
    gamma, beta = layer.get_weights()[:2]
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    xt = torch.from_numpy(x).transpose(1, 2).requires_grad_(True)  # (N, C, L)
    yt = bn(xt).transpose(1, 2)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[2], bn.running_mean.numpy(), rtol=1e-10)
    # PyTorch's running variance uses the unbiased batch variance, Keras's the biased one.
    n = x.shape[0] * x.shape[1]
    unbiased = (layer.get_weights()[3] - 0.9) / 0.1 * n / (n - 1)
    np.testing.assert_allclose(0.9 + 0.1 * unbiased, bn.running_var.numpy(), rtol=1e-10)
    w = rng.standard_normal(x.shape)
    yt.backward(torch.from_numpy(w))
    np.testing.assert_allclose(layer.backward(w), xt.grad.transpose(1, 2).numpy(), rtol=1e-8,
                               atol=1e-11)
    np.testing.assert_allclose(layer.grads[0], bn.weight.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(layer.grads[1], bn.bias.grad.numpy(), rtol=1e-9)
    np.testing.assert_array_equal(layer.grads[2], 0)
    np.testing.assert_array_equal(layer.grads[3], 0)


# ----------------------------------------------------------------------------- TF-Keras
@pytest.fixture(scope="module")
def keras():
    return import_keras()


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_layer_norm_matches_tf_keras(keras, center, scale):
    x = np.random.default_rng(6).standard_normal((3, 5, 7)).astype(np.float32) * 4
    mine = layers.LayerNormalization(center=center, scale=scale, gamma_initializer="uniform",
                                     beta_initializer="uniform", seed=0)
    y = mine.forward(x)
    theirs = keras.layers.LayerNormalization(center=center, scale=scale)
    theirs.build((None, 5, 7))
    theirs.set_weights(mine.get_weights())
    np.testing.assert_allclose(y, keras_predict(theirs, x), rtol=1e-4, atol=1e-5)


def test_batch_norm_matches_tf_keras_in_training_and_inference(keras):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((8, 5, 3)) * 3 + 2).astype(np.float32)
    mine = layers.BatchNormalization(momentum=0.8, gamma_initializer="uniform",
                                     beta_initializer="uniform", seed=0)
    mine.build((5, 3))
    theirs = keras.layers.BatchNormalization(momentum=0.8)
    theirs.build((None, 5, 3))
    theirs.set_weights(mine.get_weights())
    assert [w.name for w in theirs.weights] == mine.weight_names  # Keras's order
    np.testing.assert_allclose(mine.forward(x, training=True), theirs(x, training=True).numpy(),
                               rtol=1e-4, atol=1e-5)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):  # moving statistics too
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mine.forward(x), keras_predict(theirs, x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- the layers
@pytest.mark.parametrize("optimizer", [lambda: optimizers.Adam(0.01), lambda: "rmsprop",
                                       lambda: optimizers.SGD(0.1, momentum=0.9)])
def test_fit_moves_the_moving_statistics_only_by_their_update(optimizer):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.standard_normal((64, 1))
    model = fastrnn.Sequential([layers.Dense(3, input_shape=[4]),
                                layers.BatchNormalization(momentum=0.5), layers.Dense(1)])
    model.compile(loss="mse", optimizer=optimizer())
    model.build()
    kernel, bias = model.layers[0].get_weights()
    h = x @ kernel + bias  # what the BN layer sees in the one batch of the first step
    gamma_before = model.layers[1].get_weights()[0]
    model.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
    _, _, moving_mean, moving_var = model.layers[1].get_weights()
    np.testing.assert_allclose(moving_mean, 0.5 * h.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moving_var, 0.5 + 0.5 * h.var(axis=0), rtol=1e-5)
    assert not np.array_equal(model.layers[1].get_weights()[0], gamma_before)  # gamma trains


def test_frozen_batch_norm_uses_the_moving_statistics_and_saves_them(tmp_path):
    layer = layers.BatchNormalization(trainable=False)
    x = np.random.default_rng(9).standard_normal((10, 3)).astype(np.float32) + 5
    np.testing.assert_allclose(layer.forward(x, training=True), x / np.sqrt(1 + 1e-3),
                               rtol=1e-6)
    np.testing.assert_array_equal(layer.get_weights()[2], 0)  # not updated
    d_x = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(d_x, np.full_like(x, 1 / np.sqrt(1 + 1e-3)), rtol=1e-6)
    assert layer.non_trainable_weight_names == ["moving_mean", "moving_variance"]
    model = fastrnn.Sequential([layers.BatchNormalization(input_shape=[3], momentum=0.0)])
    model.predict(x)
    model.layers[0].forward(x, training=True)
    model.save(tmp_path / "bn.zip")
    loaded = fastrnn.load_model(tmp_path / "bn.zip")
    np.testing.assert_allclose(loaded.layers[0].get_weights()[2], x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


def test_config_round_trip_and_masks():
    for layer in (layers.LayerNormalization(epsilon=1e-5, center=False),
                  layers.BatchNormalization(momentum=0.9, scale=False)):
        clone = layers.deserialize(layers.serialize(layer))
        assert clone.get_config() == layer.get_config()
        mask = np.ones((2, 3), bool)
        assert layer.supports_masking and layer.compute_mask(None, mask) is mask
        y = layer.forward(np.ones((2, 3, 4)), mask=mask)
        assert y.shape == (2, 3, 4)


@pytest.mark.parametrize("cls", [layers.LayerNormalization, layers.BatchNormalization])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="`epsilon`"):
        cls(epsilon=0)
    with pytest.raises(NotImplementedError, match="last axis"):
        cls(axis=1).build((5, 3))
    with pytest.raises(NotImplementedError, match="`axis`"):
        cls(axis=[1, 2])
    with pytest.raises(TypeError, match="`center`"):
        cls(center=1)
    if cls is layers.BatchNormalization:
        with pytest.raises(ValueError, match="`momentum`"):
            cls(momentum=1.0)
    with pytest.raises(ValueError, match="`gamma`"):
        ops.layer_norm_forward(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="empty batch"):
        ops.batch_norm_forward(np.ones((0, 3)))
