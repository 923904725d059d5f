"""Masks reaching BatchNormalization (statistics over unmasked positions only, as Keras) and
through TimeDistributed into its inner layer; Sequential.build with the batch axis."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import layers


def _masked_input(rng, B=6, T=5, C=3):
    x = rng.normal(size=(B, T, C))
    x[0, 3:] = 0.0  # padded steps, masked by Masking(0.0)
    x[2, 1:] = 0.0
    return x


def test_masked_batchnorm_forward_and_moving_statistics_by_numpy():
    rng = np.random.default_rng(0)
    x = _masked_input(rng)
    mask = np.any(x != 0, axis=-1)
    x = np.where(mask[..., None], x * 3 + 1, 0.0)
    bn = layers.BatchNormalization(momentum=0.5, dtype="float64")
    y = bn.forward(x, training=True, mask=mask)
    sel = x[mask]
    mean = sel.sum(0) / (mask.sum() + 1e-7)
    var = ((sel - mean) ** 2).sum(0) / (mask.sum() + 1e-7)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12)
    moving_mean, moving_var = bn.get_weights()[2:]
    np.testing.assert_allclose(moving_mean, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(moving_var, 0.5 + 0.5 * var, rtol=1e-12)
    # without a mask the padded zeros would pull the statistics: not the same
    plain = layers.BatchNormalization(dtype="float64").forward(x, training=True)
    assert not np.allclose(plain, y)


def test_masked_batchnorm_gradients_by_finite_differences():
    rng = np.random.default_rng(1)
    x = _masked_input(rng)
    mask = np.any(x != 0, axis=-1)
    bn = layers.BatchNormalization(dtype="float64", gamma_initializer="random_normal",
                                   beta_initializer="random_normal", seed=3)
    d_y = rng.normal(size=x.shape)
    bn.forward(x, training=True, mask=mask)
    d_x = bn.backward(d_y)
    d_gamma, d_beta = bn.grads[0].copy(), bn.grads[1].copy()
    stats = [w.copy() for w in bn.get_weights()]

    def loss(xv=x, gamma=None, beta=None):
        weights = [w.copy() for w in stats]
        if gamma is not None:
            weights[0] = gamma
        if beta is not None:
            weights[1] = beta
        bn.set_weights(weights)
        return float((bn.forward(xv, training=True, mask=mask) * d_y).sum())

    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        p, m = x.copy(), x.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (loss(p) - loss(m)) / (2 * eps)
    np.testing.assert_allclose(d_x, num, rtol=1e-6, atol=1e-8)
    for j in range(3):
        e = np.zeros(3)
        e[j] = eps
        g = stats[0]
        assert (loss(gamma=g + e) - loss(gamma=g - e)) / (2 * eps) == pytest.approx(
            d_gamma[j], rel=1e-6)
        b = stats[1]
        assert (loss(beta=b + e) - loss(beta=b - e)) / (2 * eps) == pytest.approx(
            d_beta[j], rel=1e-6)


def _bn_model(lib):
    L = lib.layers
    return lib.Sequential([L.Input((5, 3)), L.Masking(0.0), L.BatchNormalization(momentum=0.8),
                           L.LSTM(4), L.Dense(1)])


def test_masked_batchnorm_trains_like_keras():
    keras = import_keras()
    rng = np.random.default_rng(2)
    x, y = _masked_input(rng, B=12), rng.normal(size=(12, 1))
    km, fm = _bn_model(keras), _bn_model(fastrnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    fm.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):  # moving statistics included
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _nested(lib):
    # documents of 4 sentences of 6 word ids, 0 = padding; one LSTM reads each sentence
    L = lib.layers
    inp = L.Input((4, 6))
    emb = L.Embedding(12, 3, mask_zero=True)(inp)
    sent = L.TimeDistributed(L.LSTM(5))(emb)
    return lib.Model(inp, L.Dense(1)(L.Flatten()(sent)))


def test_time_distributed_passes_nested_masks_to_its_layer_like_keras():
    keras = import_keras()
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 12, size=(4, 4, 6))
    ids[:, :, 4:] = 0
    ids[1, 2, 2:] = 0
    y = rng.normal(size=(4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that Flatten drops the mask
        km, fm = _nested(keras), _nested(fastrnn)
        fm.set_weights(km.get_weights())
        km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        fm.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
        km.fit(ids, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    fm.fit(ids, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_time_distributed_hands_a_per_sample_mask_to_batchnorm():
    rng = np.random.default_rng(4)
    x = _masked_input(rng)
    mask = np.any(x != 0, axis=-1)
    td = layers.TimeDistributed(layers.BatchNormalization(dtype="float64"))
    bn = layers.BatchNormalization(dtype="float64")
    np.testing.assert_allclose(td.forward(x, training=True, mask=mask),
                               bn.forward(x, training=True, mask=mask), rtol=1e-12)
    with pytest.raises(ValueError, match="mask must have shape"):
        td.forward(x, training=True, mask=mask[:, :2])
    nested = np.ones((2, 3, 4), dtype=bool)
    nested[0, 1] = False  # a step of all padding
    np.testing.assert_array_equal(td.compute_mask(None, nested), [[1, 0, 1], [1, 1, 1]])


def test_sequential_build_takes_the_batch_axis_like_keras():
    model = fastrnn.Sequential([layers.Dense(4), layers.Dense(1)])
    model.build((None, 9))
    assert model.input_shape == (None, 9) and model.layers[0].get_weights()[0].shape == (9, 4)
    rnn = fastrnn.Sequential([layers.SimpleRNN(3), layers.Dense(1)])
    rnn.build((None, None, 2))
    assert rnn.input_shape == (None, None, 2)
    assert rnn.predict(np.ones((2, 7, 2))).shape == (2, 1)
    with pytest.raises(ValueError, match="`input_shape`.*batch axis"):
        fastrnn.Sequential([layers.Dense(1)]).build((9,))
