"""Masks through models: Sequential and graphs carry them to the recurrent layers and the
losses; against TF-Keras with copied weights when it is installed."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastrnn


def _padded_ids(rng, n=24, t=9, vocab=20, left=True):
    x = rng.integers(1, vocab, size=(n, t))
    lengths = rng.integers(1, t + 1, size=n)
    for i, n_keep in enumerate(lengths):
        if left:
            x[i, : t - n_keep] = 0
        else:
            x[i, n_keep:] = 0
    return x


def _classifier(lib, cell="SimpleRNN"):
    m = lib.Sequential([lib.layers.Embedding(20, 6, mask_zero=True),
                        getattr(lib.layers, cell)(5),
                        lib.layers.Dense(1, activation="sigmoid")])
    m.build((None, None))  # the batch axis first, as in Keras; sequences of any length
    return m


def _tagger(lib):
    inp = lib.Input((None,), dtype="int32")
    x = lib.layers.Embedding(20, 6, mask_zero=True)(inp)
    x = lib.layers.LSTM(5, return_sequences=True)(x)
    out = lib.layers.TimeDistributed(lib.layers.Dense(3, activation="softmax"))(x)
    return lib.Model(inp, out)


def test_masked_model_equals_the_rows_with_padding_removed():
    rng = np.random.default_rng(0)
    fastrnn.set_seed(1)
    model = _classifier(fastrnn, "LSTM")
    x = _padded_ids(rng)
    pred = model.predict(x)
    for i in range(len(x)):
        row = x[i][x[i] != 0][None]
        np.testing.assert_allclose(model.predict(row), pred[i:i + 1], rtol=1e-5, atol=1e-6)


def test_sequence_loss_counts_unmasked_steps_only():
    rng = np.random.default_rng(1)
    fastrnn.set_seed(2)
    model = _tagger(fastrnn)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"])
    x = _padded_ids(rng, left=False)
    y = rng.integers(0, 3, size=x.shape)
    loss, acc = model.evaluate(x, y)
    p = model.predict(x)
    keep = x != 0
    expect = -np.mean(np.log(np.take_along_axis(p, y[..., None], -1)[..., 0][keep]))
    assert loss == pytest.approx(expect, rel=1e-5)
    assert acc == pytest.approx(np.mean(p.argmax(-1)[keep] == y[keep]), rel=1e-6)
    # changing the targets at padded steps changes nothing
    y2 = np.where(keep, y, (y + 1) % 3)
    assert model.evaluate(x, y2)[0] == pytest.approx(loss, rel=1e-6)
    # and no gradient reaches the padding's embedding row
    emb = model.layers[1]
    before = emb.get_weights()[0][0].copy()
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(emb.get_weights()[0][0], before)


keras = None


def _keras():
    global keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    return keras


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("left", [True, False])
def test_masked_classifier_trains_like_keras(cell, left):
    k = _keras()
    rng = np.random.default_rng(3)
    k.utils.set_random_seed(4)
    km = _classifier(k, cell)
    fm = _classifier(fastrnn, cell)
    fm.set_weights(km.get_weights())
    x = _padded_ids(rng, left=left)
    y = rng.integers(0, 2, size=(len(x), 1)).astype(np.float32)
    np.testing.assert_allclose(fm.predict(x), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    for m, opt in ((km, k.optimizers.SGD(0.5)), (fm, fastrnn.optimizers.SGD(0.5))):
        m.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
        m.fit(x, y, batch_size=24, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(fm.evaluate(x, y), km.evaluate(x, y, verbose=0), rtol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_masked_sequence_model_trains_like_keras():
    k = _keras()
    rng = np.random.default_rng(5)
    k.utils.set_random_seed(6)
    km = _tagger(k)
    fm = _tagger(fastrnn)
    fm.set_weights(km.get_weights())
    x = _padded_ids(rng, left=False)
    y = rng.integers(0, 3, size=x.shape)
    for m, opt in ((km, k.optimizers.SGD(0.5)), (fm, fastrnn.optimizers.SGD(0.5))):
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    np.testing.assert_allclose(fm.evaluate(x, y), km.evaluate(x, y, verbose=0), rtol=1e-5)
    for m in (km, fm):
        m.fit(x, y, batch_size=24, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
