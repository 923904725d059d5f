"""TF-Keras parity of the custom-layer and custom-cell models of Hands-On ML ch.15 (their Keras 3
form): the same source runs on ``tensorflow.keras`` and on ``fastrnn`` (only the module
differs); from copied weights both predict alike and hold the same weights after 3 SGD steps.

Tolerances: float32 throughout; the models are a few layers deep over <= 12 steps, so the two
implementations' differently ordered float32 sums differ by a few ulps per product (1e-6
relative), growing through the recurrence and three updates to ~1e-5: checked at 1e-4.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras

RTOL, ATOL = 1e-4, 2e-5


def ln_rnn_model(keras):
    """The chapter's LNSimpleRNNCell inside RNN (Keras 3 form: no tf.zeros initial state)."""

    class LNSimpleRNNCell(keras.layers.Layer):
        def __init__(self, units, activation="tanh", **kwargs):
            super().__init__(**kwargs)
            self.state_size = units
            self.output_size = units
            self.simple_rnn_cell = keras.layers.SimpleRNNCell(units,
                                                              activation=None)
            self.layer_norm = keras.layers.LayerNormalization()
            self.activation = keras.activations.get(activation)

        def call(self, inputs, states):
            outputs, new_states = self.simple_rnn_cell(inputs, states)
            norm_outputs = self.activation(self.layer_norm(outputs))
            return norm_outputs, [norm_outputs]

    return keras.Sequential([
        keras.layers.Input(shape=[None, 3]),
        keras.layers.RNN(LNSimpleRNNCell(8), return_sequences=True),
        keras.layers.RNN(LNSimpleRNNCell(6), return_sequences=True),
        keras.layers.Dense(2),
    ])


def wavenet_model(keras):
    """The chapter's original WaveNet: GatedActivationUnit in residual blocks."""

    class GatedActivationUnit(keras.layers.Layer):
        def __init__(self, activation="tanh", **kwargs):
            super().__init__(**kwargs)
            self.activation = keras.activations.get(activation)

        def call(self, inputs):
            n_filters = inputs.shape[-1] // 2
            linear_output = self.activation(inputs[..., :n_filters])
            gate = keras.activations.sigmoid(inputs[..., n_filters:])
            return self.activation(linear_output) * gate

    def wavenet_residual_block(inputs, n_filters, dilation_rate):
        z = keras.layers.Conv1D(2 * n_filters, kernel_size=2, padding="causal",
                                dilation_rate=dilation_rate)(inputs)
        z = GatedActivationUnit()(z)
        z = keras.layers.Conv1D(n_filters, kernel_size=1)(z)
        return keras.layers.Add()([z, inputs]), z

    n_layers_per_block = 3
    n_blocks = 1
    n_filters = 8
    n_outputs = 4
    inputs = keras.layers.Input(shape=[None, 2])
    z = keras.layers.Conv1D(n_filters, kernel_size=2, padding="causal")(inputs)
    skip_to_last = []
    for dilation_rate in [2**i for i in range(n_layers_per_block)] * n_blocks:
        z, skip = wavenet_residual_block(z, n_filters, dilation_rate)
        skip_to_last.append(skip)
    z = keras.activations.relu(keras.layers.Add()(skip_to_last))
    z = keras.layers.Conv1D(n_filters, kernel_size=1, activation="relu")(z)
    Y_proba = keras.layers.Conv1D(n_outputs, kernel_size=1)(z)
    return keras.models.Model(inputs=[inputs], outputs=[Y_proba])


def _copy_weights(tf_model, model):
    """Layer by layer (the two models list their layers in the same order)."""
    model.build()
    tf_layers = [lyr for lyr in tf_model.layers if lyr.get_weights()]
    ours = [lyr for lyr in model.layers if lyr.weights]
    assert len(tf_layers) == len(ours)
    for a, b in zip(tf_layers, ours):
        assert type(a).__name__ == type(b).__name__
        b.set_weights(a.get_weights())


def _three_sgd_steps(model, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's own warnings
        model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)


def _quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("build,x_shape,y_shape", [
    (ln_rnn_model, (8, 7, 3), (8, 7, 2)),
    (wavenet_model, (6, 12, 2), (6, 12, 4)),
], ids=["ln_simple_rnn_cell", "wavenet_gated_activation_unit"])
def test_book_custom_models_train_like_tf_keras(build, x_shape, y_shape):
    keras = import_keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(np.float32)
    y = rng.normal(size=y_shape).astype(np.float32)
    keras.utils.set_random_seed(0)
    tf_model = _quietly(build, keras)
    _quietly(tf_model, x[:1])  # Keras builds a cell's inner layers on its first real call
    model = build(fastrnn)
    _copy_weights(tf_model, model)
    np.testing.assert_allclose(model.predict(x), _quietly(tf_model.predict, x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    tf_model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.05))
    model.compile(loss="mse", optimizer=fastrnn.optimizers.SGD(learning_rate=0.05))
    _three_sgd_steps(tf_model, x, y)
    _three_sgd_steps(model, x, y)
    tf_weights = [w for lyr in tf_model.layers for w in lyr.get_weights()]
    ours = [w for lyr in model.layers for w in lyr.get_weights()]
    assert len(tf_weights) == len(ours)
    for a, b in zip(ours, tf_weights):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert all(np.any(g != 0) for g in model.grads)  # every weight took part
    np.testing.assert_allclose(model.predict(x[:, :5]),
                               _quietly(tf_model.predict, x[:, :5], verbose=0),
                               rtol=RTOL, atol=ATOL)


def test_keras_subclassed_model_trains_like_tf_keras():
    keras = import_keras()

    def build(keras):
        class Residual(keras.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.rnn = keras.layers.GRU(6, return_sequences=True)
                self.hidden = keras.layers.Dense(6, activation="tanh")
                self.out = keras.layers.Dense(1)

            def call(self, inputs):
                z = self.rnn(inputs)
                z = self.hidden(z) + z
                return self.out(z[:, -1])
        return Residual()

    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 6, 3)).astype(np.float32)
    y = rng.normal(size=(10, 1)).astype(np.float32)
    tf_model, model = build(keras), build(fastrnn)
    _quietly(tf_model, x[:1])
    model.build((None, 6, 3))
    model.set_weights(tf_model.get_weights())  # the same order: the attributes'
    for name in ("rnn", "hidden", "out"):
        np.testing.assert_array_equal(getattr(model, name).get_weights()[0],
                                      getattr(tf_model, name).get_weights()[0])
    np.testing.assert_allclose(model.predict(x), _quietly(tf_model.predict, x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    tf_model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.05))
    model.compile(loss="mse", optimizer=fastrnn.optimizers.SGD(learning_rate=0.05))
    _three_sgd_steps(tf_model, x, y)
    _three_sgd_steps(model, x, y)
    for name in ("rnn", "hidden", "out"):
        tf_weights = getattr(tf_model, name).get_weights()
        for a, b in zip(getattr(model, name).get_weights(), tf_weights):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
