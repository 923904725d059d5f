"""Subclassed models (``class MyModel(fastrnn.Model)`` with layers as attributes and a ``call``):
traced into the functional graph engine, trained, saved and loaded; what cannot be traced is
refused with the line that did it."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, ops


class Forecaster(fastrnn.Model):
    def __init__(self, units=6, horizon=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn = layers.GRU(units, return_sequences=True)
        self.gate = layers.Dense(units)
        self.blocks = [layers.Dense(units, activation="tanh") for _ in range(2)]
        self.head = layers.Dense(horizon)
        self.dropout = layers.Dropout(0.5)

    def call(self, inputs, training=None):
        z = self.rnn(inputs)
        z = z * ops.sigmoid(self.gate(z))
        for block in self.blocks:
            z = block(z) + z
        return self.head(self.dropout(z[:, -1], training=training))


def _data(n=32, t=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, 3)).astype(np.float32)
    return x, np.stack([x[:, -1, 0], x[:, :, 1].mean(1)], axis=1)


def _numpy_forward(model, x):
    """The model's call by hand from its layers' forward passes (inference)."""
    z = model.rnn.forward(x)
    g = model.gate.forward(z)
    z = z / (1 + np.exp(-g))
    for block in model.blocks:
        z = block.forward(z) + z
    return model.head.forward(z[:, -1])


def test_subclassed_model_traces_trains_and_keeps_a_free_time_axis():
    x, y = _data()
    model = Forecaster()
    model.compile(loss="mse", optimizer="adam")
    loss = model.fit(x, y, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert loss[-1] < loss[0]
    assert model.built and model.input_shape == (None, None, 3)
    np.testing.assert_allclose(model.predict(x), _numpy_forward(model, x), rtol=1e-5,
                               atol=1e-6)
    assert model.predict(x[:, :4]).shape == (32, 2)  # another length
    assert all(np.shares_memory(w, model._param_buffer) for w in model.weights)
    names = {layer.name for layer in model.layers}
    assert {model.rnn.name, model.head.name, *(b.name for b in model.blocks)} <= names
    assert "Total params" in model.summary(print_fn=None)


def test_build_with_the_batch_axis_and_training_flag():
    model = Forecaster(units=4)
    model.build((None, 5, 3))
    assert model.output_shape == (None, 2)
    x, _ = _data(8, 5)
    a = model.predict(x)
    b = model(x, training=True)  # dropout on
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.predict(x), a)


def test_dict_inputs_and_nesting_in_a_functional_model():
    class TwoInputs(fastrnn.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.enc = layers.LSTM(4)
            self.mix = layers.Dense(1)

        def call(self, inputs):
            return self.mix(ops.concatenate([self.enc(inputs["seq"]), inputs["static"]],
                                            axis=-1))

    model = TwoInputs()
    x = {"seq": np.ones((3, 6, 2), "f4"), "static": np.ones((3, 5), "f4")}
    assert model.predict(x).shape == (3, 1)

    inner = Forecaster(units=3)
    inp = fastrnn.Input((None, 3))
    outer = fastrnn.Model(inp, layers.Dense(1)(inner(inp)))
    xs, _ = _data(4)
    assert outer.predict(xs).shape == (4, 1)


def test_save_and_load(tmp_path):
    x, y = _data()
    model = Forecaster(units=5, horizon=2, name="fc")
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "fc.fastrnn")
    model.save(path)
    with pytest.raises(ValueError, match="Forecaster.*custom_objects"):
        fastrnn.load_model(path)
    loaded = fastrnn.load_model(path, custom_objects={"Forecaster": Forecaster})
    assert isinstance(loaded, Forecaster) and loaded.units == 5 and loaded.name == "fc"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    loaded.fit(x, y, epochs=1, verbose=0)  # the optimizer state came back too

    @fastrnn.saving.register_keras_serializable(package="tests")
    class Registered(Forecaster):
        pass

    reg = Registered(units=3)
    reg.build((None, 4, 3))
    reg.save(str(tmp_path / "r.fastrnn"))
    assert type(fastrnn.load_model(str(tmp_path / "r.fastrnn"))) is Registered


def test_data_dependent_python_control_flow_is_refused_naming_the_line():
    class Branchy(fastrnn.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(1)

        def call(self, x):
            if ops.mean(x) > 0:
                return self.d(x)
            return self.d(-x)

    with pytest.raises(TypeError, match=r"test_custom_models\.py:\d+ \(`if ops\.mean\(x\) > 0:`\)"):
        Branchy().predict(np.ones((2, 3), "f4"))

    class Loops(fastrnn.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(1)

        def call(self, x):
            return self.d(sum(row for row in x))

    with pytest.raises(TypeError, match="cannot be iterated"):
        Loops().predict(np.ones((2, 3), "f4"))

    class NotATensor(fastrnn.Model):
        def call(self, x):
            return 3.0

    with pytest.raises(TypeError, match="call\\(\\) returned a float"):
        NotATensor().predict(np.ones((2, 3), "f4"))


def test_plain_model_still_needs_inputs_and_outputs():
    with pytest.raises(TypeError, match="needs both"):
        fastrnn.Model()
