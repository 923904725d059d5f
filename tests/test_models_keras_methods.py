"""The Model methods and ``keras.models`` / ``keras.saving`` functions Keras code calls besides
fit/evaluate/predict: ``train_on_batch``, ``test_on_batch``, ``predict_on_batch``,
``reset_metrics``, ``evaluate(return_dict=True)``, ``get_layer``, ``to_json`` with
``model_from_json``, ``clone_model``, ``Sequential.layers`` without the InputLayer, and the
serialization helpers; against TF-Keras with copied weights where it is installed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import layers as L
from fastrnn import saving


def _data(n=16, t=7, f=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, t, f)).astype(np.float32),
            rng.standard_normal((n, 1)).astype(np.float32))


def _model(metrics=("mae",), optimizer="sgd"):
    fastrnn.set_seed(1)
    m = fastrnn.Sequential([fastrnn.Input((None, 3)), L.LSTM(5, return_sequences=True),
                            L.GRU(4), L.Dense(1)])
    m.compile(optimizer=optimizer, loss="mse", metrics=list(metrics))
    return m


# ------------------------------------------------------------------------- one batch
def test_train_on_batch_is_one_fit_step():
    x, y = _data()
    a, b = _model(), _model()
    loss, mae = a.train_on_batch(x, y)
    b.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert loss == pytest.approx(b.history.history["loss"][0], rel=1e-6)
    assert mae == pytest.approx(b.history.history["mae"][0], rel=1e-6)


def test_on_batch_return_conventions():
    x, y = _data()
    m = _model(metrics=())
    assert isinstance(m.train_on_batch(x, y), float)  # no metrics: the loss alone
    assert isinstance(m.test_on_batch(x, y), float)
    m = _model()
    got = m.train_on_batch(x, y, return_dict=True)
    assert list(got) == ["loss", "mae"]
    assert list(m.test_on_batch(x, y, return_dict=True)) == ["loss", "mae"]
    assert m.evaluate(x, y, return_dict=True, batch_size=4) == dict(
        zip(["loss", "mae"], m.evaluate(x, y, batch_size=4)))


def test_test_on_batch_is_evaluate_of_one_batch_and_changes_nothing():
    x, y = _data()
    m = _model()
    before = m.get_weights()
    assert m.test_on_batch(x, y) == pytest.approx(m.evaluate(x, y, batch_size=len(x)), rel=1e-6)
    for w0, w1 in zip(before, m.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_predict_on_batch_is_predict_and_returns_a_copy():
    x, _ = _data()
    m = _model()
    got = m.predict_on_batch(x)
    np.testing.assert_allclose(got, m.predict(x), rtol=1e-6, atol=1e-7)
    got[...] = 7.0
    assert not np.array_equal(m.predict_on_batch(x), got)


def test_on_batch_metrics_are_reset_each_call():
    """A batch's MAE is its own, not a running mean over earlier calls (Keras resets the
    metrics at the start of train_on_batch / test_on_batch)."""
    x, y = _data()
    m = _model()
    m.test_on_batch(x[:8] * 100, y[:8])  # a large error that must not carry over
    _, mae = m.test_on_batch(x[8:], y[8:])
    fresh = _model()
    assert mae == pytest.approx(fresh.test_on_batch(x[8:], y[8:])[1], rel=1e-6)
    m.reset_metrics()  # public, and harmless on an uncompiled model
    fastrnn.Sequential([L.Dense(1)]).reset_metrics()


def test_train_on_batch_with_weights_and_class_weight():
    x, y = _data()
    w = np.linspace(0.5, 2.0, len(x))
    a, b = _model(), _model()
    a.train_on_batch(x, y, sample_weight=w)
    b.fit(x, y, sample_weight=w, batch_size=len(x), shuffle=False, verbose=0)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    with pytest.raises(ValueError, match="class_weight"):
        a.train_on_batch(x, y, sample_weight=w, class_weight={0: 1.0})


def test_train_on_batch_nonfinite_loss_keeps_weights():
    x, y = _data()
    m = _model(metrics=())
    before = m.get_weights()
    y_bad = y.copy()
    y_bad[0] = np.nan
    loss = m.train_on_batch(x, y_bad)
    assert np.isnan(loss)
    for w0, w1 in zip(before, m.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert "weights from before it kept" in m.stop_reason
    assert np.isfinite(m.train_on_batch(x, y))


def test_on_batch_bad_input():
    x, y = _data()
    with pytest.raises(ValueError, match="compiled"):
        fastrnn.Sequential([fastrnn.Input((None, 3)), L.LSTM(2)]).train_on_batch(x, y)
    m = _model()
    with pytest.raises(ValueError, match="y"):
        m.train_on_batch(x, y[:3])
    with pytest.raises(ValueError):
        m.test_on_batch(x[..., :2], y)
    with pytest.raises(ValueError):
        m.predict_on_batch(np.ones((2, 3)))


# ------------------------------------------------------------------------- structure
def test_sequential_layers_omit_the_input_layer_and_get_layer():
    m = _model()
    assert [type(layer).__name__ for layer in m.layers] == ["LSTM", "GRU", "Dense"]
    assert m.get_layer(index=0) is m.layers[0]
    assert m.get_layer(index=-1) is m.layers[-1]
    assert m.get_layer(m.layers[1].name) is m.layers[1]
    with pytest.raises(ValueError, match="No such layer: nope"):
        m.get_layer("nope")
    with pytest.raises(ValueError, match="only has 3 layers"):
        m.get_layer(index=3)
    with pytest.raises(ValueError, match="Provide only"):
        m.get_layer("dense", 0)
    with pytest.raises(ValueError, match="Provide either"):
        m.get_layer()
    with pytest.raises(ValueError, match="index"):
        m.get_layer(index="0")


def test_functional_get_layer():
    i = fastrnn.Input((None, 3), name="x")
    h = L.LSTM(4, name="enc")(i)
    m = fastrnn.Model(i, L.Dense(2, name="head")(h))
    assert m.get_layer("enc") is m.layers[1]
    assert m.get_layer("x") is m.layers[0]  # a functional model lists its InputLayer, as Keras


# ------------------------------------------------------------------------- json, clone
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_to_json_round_trip(kind):
    if kind == "sequential":
        m = _model()
    else:
        i = fastrnn.Input((None, 3))
        h = L.Bidirectional(L.GRU(4, return_sequences=True))(i)
        m = fastrnn.Model(i, L.Dense(2)(L.GlobalAveragePooling1D()(h)))
    text = m.to_json(indent=2)
    assert json.loads(text)["class_name"] in ("Sequential", "Functional")
    m2 = fastrnn.models.model_from_json(text)
    assert type(m2) is type(m)
    assert [type(a).__name__ for a in m2.layers] == [type(a).__name__ for a in m.layers]
    m2.set_weights(m.get_weights())
    x, _ = _data()
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))


def test_model_from_json_bad_input():
    with pytest.raises(TypeError, match="json_string"):
        fastrnn.models.model_from_json(3)
    with pytest.raises(ValueError, match="not JSON"):
        fastrnn.models.model_from_json("{")
    with pytest.raises(ValueError, match="class 'Nope'"):
        fastrnn.models.model_from_json('{"class_name": "Nope", "config": {}}')
    with pytest.raises(ValueError, match="unknown layer class"):
        fastrnn.models.model_from_json(
            '{"class_name": "Sequential", "config": {"layers": [{"class_name": "Mine", '
            '"config": {}}]}}')


def test_clone_model_new_weights_same_architecture():
    m = _model()
    c = fastrnn.models.clone_model(m)
    assert c is not m and all(a is not b for a, b in zip(c.layers, m.layers))
    assert [w.shape for w in c.get_weights()] == [w.shape for w in m.get_weights()]
    assert not np.array_equal(c.get_weights()[0], m.get_weights()[0])
    c.set_weights(m.get_weights())
    x, _ = _data()
    np.testing.assert_array_equal(c.predict(x), m.predict(x))


def test_clone_model_clone_function_and_sharing():
    i = fastrnn.Input((None, 3))
    h = L.LSTM(4, name="enc")(i)
    m = fastrnn.Model(i, L.Dense(2, name="head")(h))
    c = fastrnn.models.clone_model(
        m, clone_function=lambda layer: L.GRU(4, name="enc_gru") if isinstance(layer, L.LSTM)
        else layer)
    assert [type(a).__name__ for a in c.layers] == ["InputLayer", "GRU", "Dense"]
    assert c.get_layer("head") is m.get_layer("head")  # returned as is: shared
    s = fastrnn.models.clone_model(_model(), clone_function=lambda layer: (
        L.SimpleRNN(4) if isinstance(layer, L.GRU) else type(layer).from_config(
            layer.get_config())))
    assert [type(a).__name__ for a in s.layers] == ["LSTM", "SimpleRNN", "Dense"]


def test_clone_model_input_tensors_recursive_and_refusals():
    inner = fastrnn.Sequential([fastrnn.Input((None, 3)), L.GRU(4)], name="inner")
    i = fastrnn.Input((None, 3))
    m = fastrnn.Model(i, L.Dense(1)(inner(i)))
    seen = []

    def fn(layer):
        seen.append(type(layer).__name__)
        return type(layer).from_config(layer.get_config())

    fastrnn.models.clone_model(m, clone_function=fn, recursive=True)
    assert "GRU" in seen and "Sequential" not in seen
    seen.clear()
    fastrnn.models.clone_model(m, clone_function=fn)
    assert "Sequential" in seen
    j = fastrnn.Input((None, 3), name="new_input")
    c = fastrnn.models.clone_model(m, input_tensors=j)
    assert c.inputs[0] is j
    with pytest.raises(ValueError, match="call_function"):
        fastrnn.models.clone_model(m, call_function=lambda *a: None)
    with pytest.raises(TypeError, match="model"):
        fastrnn.models.clone_model(L.Dense(1))
    with pytest.raises(ValueError, match="Sequential"):
        fastrnn.models.clone_model(_model(), input_tensors=j)
    with pytest.raises(TypeError, match="clone_function returned"):
        fastrnn.models.clone_model(m, clone_function=lambda layer: 3)


# ------------------------------------------------------------------------- keras.saving
def test_serialize_deserialize_round_trips():
    objs = [fastrnn.optimizers.Adam(learning_rate=0.003), fastrnn.losses.Huber(delta=2.0),
            fastrnn.metrics.MeanAbsoluteError(), fastrnn.initializers.GlorotUniform(seed=3),
            fastrnn.regularizers.L2(0.01), fastrnn.constraints.MaxNorm(2.0), L.GRU(3)]
    for obj in objs:
        data = saving.serialize_keras_object(obj)
        json.dumps(data)
        back = saving.deserialize_keras_object(data)
        assert type(back) is type(obj)
        assert saving.serialize_keras_object(back) == data
    assert saving.deserialize_keras_object(
        saving.serialize_keras_object(fastrnn.activations.relu)) is fastrnn.activations.relu
    assert saving.serialize_keras_object([1, "a", None, {"k": 2.5}]) == [1, "a", None,
                                                                         {"k": 2.5}]
    m = saving.deserialize_keras_object(saving.serialize_keras_object(_model()))
    assert [type(a).__name__ for a in m.layers] == ["LSTM", "GRU", "Dense"]


def test_custom_objects_registry_and_scope():
    class Twice(L.Layer):
        def forward(self, x, training=False):
            return x * 2

        def backward(self, d):
            return d * 2

    data = {"class_name": "Twice", "config": {"name": "t"}}
    with pytest.raises(ValueError, match="Twice"):
        saving.deserialize_keras_object(data)
    assert isinstance(saving.deserialize_keras_object(data, {"Twice": Twice}), Twice)
    with saving.custom_object_scope({"Twice": Twice}):
        assert isinstance(saving.deserialize_keras_object(data), Twice)
    assert saving.CustomObjectScope is saving.custom_object_scope
    saving.get_custom_objects()["Twice"] = Twice
    try:
        assert saving.get_registered_object("Twice") is Twice
        assert isinstance(saving.deserialize_keras_object(data), Twice)
    finally:
        del saving.get_custom_objects()["Twice"]
    assert saving.get_registered_object("Twice") is None
    assert saving.get_registered_name(Twice) == "Twice"
    with pytest.raises(TypeError, match="Cannot serialize"):
        saving.serialize_keras_object(object())
    with pytest.raises(ValueError, match="config"):
        saving.deserialize_keras_object({"no": "class"})


def test_saving_functions(tmp_path):
    x, _ = _data()
    m = _model()
    path = str(tmp_path / "m.fastrnn")
    fastrnn.models.save_model(m, path)
    np.testing.assert_array_equal(fastrnn.models.load_model(path).predict(x), m.predict(x))
    wpath = str(tmp_path / "w.npz")
    saving.save_weights(m, wpath)
    with pytest.raises(FileExistsError, match="overwrite"):
        saving.save_weights(m, wpath, overwrite=False)
    c = fastrnn.models.clone_model(m)
    saving.load_weights(c, wpath)
    np.testing.assert_array_equal(c.predict(x), m.predict(x))
    # skip_mismatch: a wider last layer keeps its own weights, the others load
    fastrnn.set_seed(1)
    other = fastrnn.Sequential([fastrnn.Input((None, 3)), L.LSTM(5, return_sequences=True),
                                L.GRU(4), L.Dense(2)])
    before = other.get_weights()
    with pytest.raises(ValueError):
        saving.load_weights(other, wpath)
    saving.load_weights(other, wpath, skip_mismatch=True)
    after = other.get_weights()
    np.testing.assert_array_equal(after[0], m.get_weights()[0])
    np.testing.assert_array_equal(after[-2], before[-2])


# ------------------------------------------------------------------------- TF-Keras parity
def test_on_batch_against_tf_keras():
    keras = import_keras()
    x, y = _data()
    m = _model(optimizer="sgd")
    k = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(5, return_sequences=True),
                          keras.layers.GRU(4), keras.layers.Dense(1)])
    k.compile(optimizer=keras.optimizers.SGD(), loss="mse", metrics=["mae"])
    k.set_weights(m.get_weights())
    assert [type(a).__name__ for a in k.layers] == [type(a).__name__ for a in m.layers]
    for _ in range(2):
        got, want = m.train_on_batch(x, y), k.train_on_batch(x, y)
        np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(m.test_on_batch(x, y), k.test_on_batch(x, y), rtol=2e-5)
    np.testing.assert_allclose(m.predict_on_batch(x), k.predict_on_batch(x), rtol=1e-4,
                               atol=1e-6)
    assert m.test_on_batch(x, y, return_dict=True).keys() == k.test_on_batch(
        x, y, return_dict=True).keys()
    for a, b in zip(m.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- symbolic views
def test_layer_output_builds_feature_extractors():
    """``Model(model.input, model.get_layer(name).output)`` and, for a Sequential,
    ``Model(model.inputs, [layer.output for layer in model.layers])``: Keras's feature
    extraction, giving what the layers compute."""
    x, _ = _data()
    i = fastrnn.Input((None, 3))
    h = L.LSTM(4, return_sequences=True, name="enc")(i)
    m = fastrnn.Model(i, L.Dense(1)(L.GRU(2)(h)))
    features = fastrnn.Model(m.input, m.get_layer("enc").output)
    np.testing.assert_array_equal(features.predict(x), m.get_layer("enc")(x))
    assert m.get_layer("enc").input is i and m.output is m.outputs[0]
    seq = _model()
    probe = fastrnn.Model(seq.inputs, [layer.output for layer in seq.layers])
    outs = probe.predict(x)
    assert [o.shape for o in outs] == [(16, 7, 5), (16, 4), (16, 1)]
    np.testing.assert_allclose(outs[-1], seq.predict(x), rtol=1e-6, atol=1e-7)
    merged = L.Concatenate()([L.Dense(2)(i), L.Dense(3)(i)])
    assert [t.shape for t in merged.producer.input] == [(None, None, 2), (None, None, 3)]
    for what in ("output", "input"):
        with pytest.raises(ValueError, match=f"never been called and thus has no defined {what}"):
            getattr(L.Dense(3), what)


def test_trainable_weights_and_variables_follow_freezing_as_keras():
    seq = fastrnn.Sequential([fastrnn.Input((None, 3)), L.LSTM(4, return_sequences=True),
                              L.BatchNormalization(), L.Dense(1)])
    seq.build()
    counts = (len(seq.trainable_weights), len(seq.non_trainable_weights))
    assert counts == (7, 2)  # BatchNormalization's moving statistics do not train
    assert [v.name for v in seq.non_trainable_variables] == ["moving_mean", "moving_variance"]
    assert len(seq.trainable_variables) == 7 and len(seq.variables) == 9
    seq.layers[0].trainable = False
    assert (len(seq.trainable_weights), len(seq.non_trainable_weights)) == (4, 5)
    seq.trainable = False
    assert (len(seq.trainable_weights), len(seq.non_trainable_weights)) == (0, 9)


def test_trainable_weight_counts_against_tf_keras():
    keras = import_keras()
    seq = fastrnn.Sequential([fastrnn.Input((None, 3)), L.LSTM(4, return_sequences=True),
                              L.BatchNormalization(), L.Dense(1)])
    k = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                          keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    seq.build()
    for frozen in (None, 0, 1):
        if frozen is not None:
            seq.layers[frozen].trainable = False
            k.layers[frozen].trainable = False
        assert [w.shape for w in seq.trainable_weights] == [
            tuple(w.shape) for w in k.trainable_weights]
        assert [w.shape for w in seq.non_trainable_weights] == [
            tuple(w.shape) for w in k.non_trainable_weights]
    assert [layer.output.shape for layer in seq.layers] == [
        tuple(layer.output.shape) for layer in k.layers]


# ------------------------------------------------------------------------- fit / evaluate steps
class _Batches:
    """A re-iterable dataset of (x, y) batches that counts the batches it gives."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size, self.given = x, y, size, 0

    def __iter__(self):
        for i in range(0, len(self.x), self.size):
            self.given += 1
            yield self.x[i:i + self.size], self.y[i:i + self.size]


def test_steps_per_epoch_on_arrays_is_the_first_batches():
    x, y = _data(32)
    a, b = _model(), _model()
    a.fit(x, y, batch_size=8, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    b.fit(x[:16], y[:16], batch_size=8, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="steps_per_epoch=5.*only 4 batches"):
        a.fit(x, y, batch_size=8, steps_per_epoch=5, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        a.fit(x, y, steps_per_epoch=0, verbose=0)


def test_steps_per_epoch_on_a_dataset_reads_one_pass_across_epochs():
    x, y = _data(64)
    data = _Batches(x, y, 8)  # 8 batches in one pass
    m = _model(metrics=())
    with pytest.warns(UserWarning, match="ran out of data: epoch 3 had 2 of steps_per_epoch=3"):
        history = m.fit(data, epochs=5, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 3 and data.given == 8  # 3 + 3 + 2, then stop
    # the same batches as one fit over them in that order
    other = _model(metrics=())
    other.fit(_Batches(x, y, 8), epochs=1, verbose=0)
    for wa, wb in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_validation_freq_and_validation_steps():
    x, y = _data(32)
    seen = []

    class Probe(fastrnn.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append(len(self.model.history.history.get("loss", [])))

    m = _model()
    h = m.fit(x, y, batch_size=8, epochs=5, validation_data=(x, y), validation_freq=2,
              callbacks=[Probe()], verbose=0)
    assert len(h.history["loss"]) == 5 and len(h.history["val_loss"]) == 2
    assert seen == [1, 3]  # validated after epochs 2 and 4 (history holds the ones before)
    m = _model()
    h = m.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), validation_steps=1,
              validation_batch_size=8, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(x[:8], y[:8])[0], rel=1e-6)
    m = _model()
    data = _Batches(x, y, 8)
    h = m.fit(_Batches(x, y, 8), epochs=2, validation_data=data, validation_steps=1, verbose=0)
    assert data.given == 2  # one batch each epoch
    assert h.history["val_loss"][-1] == pytest.approx(m.evaluate(x[:8], y[:8])[0], rel=1e-6)
    with pytest.raises(ValueError, match="validation_freq"):
        m.fit(x, y, validation_freq=0, verbose=0)


def test_evaluate_and_predict_steps():
    x, y = _data(32)
    m = _model()
    assert m.evaluate(x, y, batch_size=8, steps=2) == pytest.approx(
        m.evaluate(x[:16], y[:16]), rel=1e-6)
    data = _Batches(x, y, 8)
    assert m.evaluate(data, steps=1) == pytest.approx(m.evaluate(x[:8], y[:8], batch_size=8),
                                                      rel=1e-6)
    assert data.given == 1
    np.testing.assert_array_equal(m.predict(x, batch_size=8, steps=3), m.predict(x[:24]))
    assert m.predict(_Batches(x, y, 8), steps=2).shape == (16, 1)
    with pytest.raises(ValueError, match="steps"):
        m.predict(x, steps=-1)


def test_compile_accepts_kerass_execution_settings():
    m = _model()
    m.compile(optimizer="adam", loss="mse", run_eagerly=True, steps_per_execution=8,
              jit_compile=False, auto_scale_loss=False, weighted_metrics=[])
    x, y = _data()
    assert np.isfinite(m.train_on_batch(x, y))
    for kwargs, match in (({"weighted_metrics": ["mae"]}, "weighted_metrics"),
                          ({"run_eagerly": "yes"}, "run_eagerly"),
                          ({"jit_compile": "xla"}, "jit_compile"),
                          ({"steps_per_execution": 0}, "steps_per_execution")):
        with pytest.raises(ValueError, match=match):
            m.compile(optimizer="sgd", loss="mae", **kwargs)
    assert m.get_compile_config()["loss"] == "mse"  # a refused compile changed nothing


# ------------------------------------------------------------------------- summary, pop
def _nested():
    inner = fastrnn.Sequential([fastrnn.Input((None, 3)),
                                L.GRU(4, return_sequences=True, name="inner_gru")], name="inner")
    i = fastrnn.Input((None, 3))
    m = fastrnn.Model(i, L.Dense(1, name="head")(L.LSTM(2, name="enc")(inner(i))))
    m.get_layer("head").trainable = False
    return m


def test_summary_options():
    m = _nested()
    text = m.summary(print_fn=None, expand_nested=True, show_trainable=True)
    lines = text.splitlines()
    assert "Trainable" in lines[2]
    nested = [line for line in lines if line.startswith("  inner_gru (GRU)")]
    assert len(nested) == 1 and nested[0].rstrip().endswith("Y")  # indented under `inner`
    assert next(line for line in lines if line.startswith("head")).rstrip().endswith("N")
    assert next(line for line in lines if line.startswith("input_layer")).rstrip().endswith("-")
    assert "inner_gru" not in m.summary(print_fn=None)  # not expanded by default
    part = m.summary(print_fn=None, layer_range=["inn.*", "enc"]).splitlines()
    names = [line.split(" ")[0] for line in part[4:] if line and line[0].isalpha()]
    assert names[:2] == ["inner", "enc"] and "head" not in names
    narrow = m.summary(print_fn=None, line_length=80, positions=[0.4, 0.6, 0.7, 1.0])
    assert max(len(line) for line in narrow.splitlines()) == 80
    for kwargs, match in (({"line_length": 3}, "line_length"),
                          ({"positions": [0.5, 0.2, 0.9, 1.0]}, "positions"),
                          ({"positions": [0.5]}, "positions"),
                          ({"layer_range": ["nope", "enc"]}, "layer_range"),
                          ({"layer_range": "enc"}, "layer_range")):
        with pytest.raises(ValueError, match=match):
            m.summary(print_fn=None, **kwargs)
    seq = _model()
    assert "InputLayer" not in seq.summary(print_fn=None)  # Keras lists none for a Sequential


def test_sequential_pop():
    x, y = _data()
    m = _model()
    m.fit(x, y, verbose=0)
    before = m.get_weights()
    last = m.pop()
    assert isinstance(last, L.Dense) and [type(a).__name__ for a in m.layers] == ["LSTM", "GRU"]
    assert m.output_shape == (None, 4) and m.output.shape == (None, 4)
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # the rest keep their weights
    m.add(L.Dense(2))
    m.compile(optimizer="adam", loss="mse")
    m.fit(x, np.ones((len(x), 2), np.float32), verbose=0)
    assert m.predict(x).shape == (len(x), 2)
    empty = fastrnn.Sequential([L.Dense(1)])
    empty.pop()
    with pytest.raises(TypeError, match="no layers"):
        empty.pop()
