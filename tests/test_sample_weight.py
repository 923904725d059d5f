"""sample_weight and class_weight in fit/evaluate (arrays, per time step, the 3-tuple
validation_data, datasets): TF-Keras parity with copied weights (weights after 3 SGD steps,
evaluate), the Keras loss formula by hand, and the errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import layers, losses


class _Batches:
    """A re-iterable dataset of ready batches."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def _keras_fit(km, x, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, y, epochs=1, shuffle=False, verbose=0, **kwargs)


def _pair(keras, build_keras, build_fastrnn, loss, lr=0.1):
    km, fm = build_keras(keras), build_fastrnn()
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(lr), loss=loss)
    fm.compile(optimizer=fastrnn.optimizers.SGD(lr), loss=loss)
    return km, fm


def _dense(keras=None):
    lib = keras if keras is not None else fastrnn
    return lib.Sequential([lib.layers.Input((3,)), lib.layers.Dense(4, activation="tanh"),
                           lib.layers.Dense(2)])


def _seq(keras=None):
    lib = keras if keras is not None else fastrnn
    return lib.Sequential([lib.layers.Input((5, 2)),
                           lib.layers.SimpleRNN(4, return_sequences=True),
                           lib.layers.Dense(1)])


def _classifier(keras=None):
    lib = keras if keras is not None else fastrnn
    return lib.Sequential([lib.layers.Input((6, 2)), lib.layers.GRU(5),
                           lib.layers.Dense(3, activation="softmax")])


def test_sample_weight_three_sgd_steps_and_evaluate_match_keras():
    keras = import_keras()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 3)), rng.normal(size=(24, 2))
    w = rng.uniform(0, 3, size=24)
    km, fm = _pair(keras, _dense, _dense, "mse")
    _keras_fit(km, x, y, batch_size=8, sample_weight=w)
    fm.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, sample_weight=w)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    theirs = km.evaluate(x, y, sample_weight=w, verbose=0)
    assert fm.evaluate(x, y, sample_weight=w) == pytest.approx(theirs, rel=1e-5)


def test_per_time_step_weights_match_keras():
    keras = import_keras()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5, 2)), rng.normal(size=(12, 5, 1))
    w = rng.uniform(0, 2, size=(12, 5))
    w[:, :2] = 0.0  # warm-up steps not scored
    km, fm = _pair(keras, _seq, _seq, "mse")
    _keras_fit(km, x, y, batch_size=4, sample_weight=w)
    fm.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, sample_weight=w)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    theirs = km.evaluate(x, y, sample_weight=w, verbose=0)
    assert fm.evaluate(x, y, sample_weight=w) == pytest.approx(theirs, rel=1e-5)
    # (N,) weights on a sequence output weigh every step of a sample alike (Keras's loss
    # broadcasts them so; its TF data pipeline refuses them in evaluate)
    per_sample = rng.uniform(0, 2, size=12)
    assert fm.evaluate(x, y, sample_weight=per_sample) == pytest.approx(
        fm.evaluate(x, y, sample_weight=np.repeat(per_sample[:, None], 5, axis=1)), rel=1e-6)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_class_weight_matches_keras(loss):
    keras = import_keras()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(18, 6, 2))
    labels = rng.integers(0, 3, size=18)
    y = labels if loss.startswith("sparse") else np.eye(3)[labels]
    class_weight = {0: 0.5, 2: 4.0}  # class 1 left out: weight 1
    km, fm = _pair(keras, _classifier, _classifier, loss, lr=0.5)
    _keras_fit(km, x, y, batch_size=6, class_weight=class_weight)
    fm.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0, class_weight=class_weight)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weighted_loss_is_keras_sum_over_batch_size_formula():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 4, 3))
    w = rng.uniform(size=(6, 4))
    per = np.mean((y_pred - y_true) ** 2, axis=-1)
    expected = (per * w).sum() / per.size  # divided by the count, not by sum(w)
    mse = losses.MeanSquaredError()
    assert mse(y_true, y_pred, sample_weight=w) == pytest.approx(expected, rel=1e-12)
    value, grad = mse.value_and_gradient(y_true, y_pred, w)
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grad, 2 * (y_pred - y_true) * w[..., None] / y_pred.size,
                               rtol=1e-12)
    # (N,) weights broadcast over the time axis; (N, T, 1) is squeezed
    wn = rng.uniform(size=6)
    assert mse(y_true, y_pred, wn) == pytest.approx(mse(y_true, y_pred, np.repeat(
        wn[:, None], 4, axis=1)), rel=1e-12)
    assert mse(y_true, y_pred, w[..., None]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.MeanAbsoluteError(),
                                  losses.Huber(0.5), losses.BinaryCrossentropy(from_logits=True),
                                  losses.CategoricalCrossentropy(from_logits=True)])
def test_weighted_gradients_by_finite_differences(loss):
    rng = np.random.default_rng(4)
    y_pred = rng.normal(size=(5, 3))
    y_true = rng.uniform(size=(5, 3)) if "Categorical" not in type(loss).__name__ else \
        np.eye(3)[rng.integers(0, 3, 5)]
    w = rng.uniform(0, 2, size=5)
    _, grad = loss.value_and_gradient(y_true, y_pred, w)
    eps = 1e-6
    num = np.zeros_like(y_pred)
    for i in np.ndindex(*y_pred.shape):
        p, m = y_pred.copy(), y_pred.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (loss(y_true, p, w) - loss(y_true, m, w)) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_validation_triple_and_dataset_batches_use_their_weights():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    w = rng.uniform(0, 2, size=16)
    model = _dense()
    model.compile(optimizer="sgd", loss="mae")
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w))
    # the validation loss is evaluated after the epoch's updates
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x, y, sample_weight=w), rel=1e-6)
    assert model.evaluate(x, y, sample_weight=w) != pytest.approx(model.evaluate(x, y))
    batches = _Batches([(x[i:i + 4], y[i:i + 4], w[i:i + 4]) for i in range(0, 16, 4)])
    assert model.evaluate(batches) == pytest.approx(model.evaluate(x, y, sample_weight=w),
                                                    rel=1e-6)
    # the same training run from arrays and from (x, y, w) batches
    a, b = _dense(), _dense()
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer="sgd", loss="mse")
    a.fit(x, y, batch_size=4, shuffle=False, verbose=0, sample_weight=w)
    b.fit(batches, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-6)


def test_validation_split_holds_out_the_weights_too():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    w = rng.uniform(0, 2, size=20)
    model = _dense()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, sample_weight=w)
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[15:], y[15:], sample_weight=w[15:]), rel=1e-6)


def test_zero_weights_leave_samples_out_of_training():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    w = np.ones(10)
    w[5:] = 0.0
    a, b = _dense(), _dense()
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer="sgd", loss="mse")
    a.fit(x, y, batch_size=10, verbose=0, sample_weight=w)
    y2 = y.copy()
    y2[5:] = 1e3  # whatever these targets are, they weigh nothing
    b.fit(x, y2, batch_size=10, verbose=0, sample_weight=w)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-6)


def test_multi_output_weights_by_name_and_masked_steps():
    rng = np.random.default_rng(8)
    inp = fastrnn.Input((4, 2))
    seq = layers.SimpleRNN(3, return_sequences=True)(inp)
    out_a = layers.Dense(1, name="a")(seq)
    out_b = layers.Dense(2, name="b")(layers.GlobalAveragePooling1D()(seq))
    model = fastrnn.Model(inp, [out_a, out_b])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(6, 4, 2))
    ya, yb = rng.normal(size=(6, 4, 1)), rng.normal(size=(6, 2))
    wa = rng.uniform(size=(6, 4))
    total, la, lb = model.evaluate(x, [ya, yb], sample_weight={"a": wa})
    pa, pb = model.predict(x)
    assert la == pytest.approx(np.mean(((pa - ya) ** 2)[..., 0] * wa), rel=1e-5)
    assert lb == pytest.approx(np.mean((pb - yb) ** 2), rel=1e-5)
    assert total == pytest.approx(la + lb, rel=1e-6)
    # masked steps stay out; the weights of the others apply
    masked = fastrnn.Sequential([layers.Masking(0.0, input_shape=(4, 2)),
                                 layers.SimpleRNN(3, return_sequences=True), layers.Dense(1)])
    masked.compile(optimizer="sgd", loss="mse")
    xm = x.copy()
    xm[:, -1] = 0.0
    value = masked.evaluate(xm, ya, sample_weight=wa)
    p = masked.predict(xm)
    per = ((p - ya) ** 2)[..., 0][:, :3] * wa[:, :3]
    assert value == pytest.approx(per.sum() / per.size, rel=1e-5)


def test_bad_sample_and_class_weights_name_the_argument():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    model = _dense()
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match="`class_weight` and `sample_weight`"):
        model.fit(x, y, sample_weight=np.ones(8), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight`.*7"):
        model.fit(x, y, sample_weight=np.ones(7), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight`.*shape"):
        model.fit(x, y, sample_weight=np.ones((8, 5)), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight`.*NaN"):
        model.fit(x, y, sample_weight=np.full(8, np.nan), verbose=0)
    with pytest.raises(ValueError, match="`class_weight`"):
        model.fit(x, y, class_weight={"a": 1.0}, verbose=0)
    with pytest.raises(ValueError, match="`validation_data\\[2\\]`"):
        model.fit(x, y, validation_data=(x, y, np.ones(3)), verbose=0)
    with pytest.raises(ValueError, match="dataset"):
        model.fit(_Batches([(x, y)]), sample_weight=np.ones(8), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
