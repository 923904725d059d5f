"""Optimizers' use_ema (moving averages of the weights) and SwapEMAWeights: the averages
against their formula, a fit against TF-Keras's with copied weights (final weights and
validation losses), and the averages kept in the optimizer's saved state."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import callbacks, layers, optimizers


def test_average_follows_the_formula_and_overwrites():
    rng = np.random.default_rng(0)
    opt = optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.8,
                         ema_overwrite_frequency=3)
    w = [rng.normal(size=(4, 3)), rng.normal(size=5)]
    average = None
    for step in range(7):
        opt.apply_gradients(w, [rng.normal(size=x.shape) for x in w])
        if step in (2, 5):  # every third update the weights become the average
            for x, a in zip(w, opt.averages(w)):
                np.testing.assert_array_equal(x, a)
        new = [x.copy() for x in w]
        if average is None:
            average = new  # the first update: the weights themselves
        elif step not in (2, 5):
            average = [0.8 * a + 0.2 * x for a, x in zip(average, new)]
        else:
            average = new
        for a, mine in zip(average, opt.averages(w)):
            np.testing.assert_allclose(mine, a, rtol=1e-12)
    state = opt.get_state()
    assert "slots/0/average" in state
    again = optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.8,
                           ema_overwrite_frequency=3)
    again.set_state(state, w)
    np.testing.assert_array_equal(again.averages(w)[1], opt.averages(w)[1])
    config = optimizers.serialize(opt)["config"]
    assert (config["use_ema"], config["ema_momentum"], config["ema_overwrite_frequency"]) == \
        (True, 0.8, 3)
    assert optimizers.deserialize(optimizers.serialize(opt)).use_ema
    with pytest.raises(ValueError, match="use_ema=True"):
        optimizers.Adam().averages(w)
    with pytest.raises(ValueError, match="not the 2"):
        opt.averages(w[:1])


@pytest.mark.parametrize("swap_on_epoch,overwrite", [(False, None), (True, 4)])
def test_fit_with_ema_matches_tf_keras(swap_on_epoch, overwrite):
    keras = import_keras()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(24, 4)).astype(np.float32), rng.normal(size=(24, 2)).astype(
        np.float32)
    xv, yv = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 2)).astype(
        np.float32)
    kwargs = {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.7,
              "ema_overwrite_frequency": overwrite}
    mine = fastrnn.Sequential([layers.Input((4,)), layers.Dense(5, activation="tanh"),
                               layers.Dense(2)])
    mine.compile(optimizer=optimizers.Adam(**kwargs), loss="mse")
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                               keras.layers.Dense(2)])
    theirs.set_weights(mine.get_weights())
    theirs.compile(optimizer=keras.optimizers.Adam(**kwargs), loss="mse")
    fit = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0,
           "validation_data": (xv, yv)}
    ours = mine.fit(x, y, callbacks=[callbacks.SwapEMAWeights(swap_on_epoch)], **fit)
    ref = theirs.fit(x, y, callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch)], **fit)
    # float32 weights of size ~1 after 9 Adam steps of size <= 0.05
    np.testing.assert_allclose(ours.history["val_loss"], ref.history["val_loss"], rtol=1e-4)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_swap_needs_use_ema():
    model = fastrnn.Sequential([layers.Input((2,)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="SwapEMAWeights must be used when `use_ema=True`"):
        model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), verbose=0,
                  callbacks=[callbacks.SwapEMAWeights()])
    with pytest.raises(ValueError, match="`swap_on_epoch`"):
        callbacks.SwapEMAWeights(swap_on_epoch="yes")
