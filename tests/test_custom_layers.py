"""Keras-style layers of your own: build/add_weight, call in fastrnn.ops math, gradients from the
tape (float64 finite differences), tracked sublayers, models, saving, Lambda, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _custom import check_layer_gradients
from fastrnn import layers, ops
from fastrnn.autodiff import NoGradientError


class MyDense(layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = fastrnn.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_normal", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="random_normal",
                                    name="bias")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.kernel) + self.bias)


class Gated(layers.Layer):
    """Holds built-in layers (one of them used twice) and a weight of its own."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.proj = layers.Dense(2 * units, dtype=kwargs.get("dtype", "float32"))
        self.norm = layers.LayerNormalization(dtype=kwargs.get("dtype", "float32"))

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

    def call(self, inputs, training=None):
        z = self.proj(inputs)
        a, b = ops.split(z, 2, axis=-1)
        h = ops.tanh(a) * ops.sigmoid(b) * self.scale
        return self.norm(h) + self.norm(h * h)


class GatedActivationUnit(layers.Layer):  # Hands-On ML ch.15, as printed
    def __init__(self, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.activation = fastrnn.activations.get(activation)

    def call(self, inputs):
        n_filters = inputs.shape[-1] // 2
        linear_output = self.activation(inputs[..., :n_filters])
        gate = fastrnn.activations.sigmoid(inputs[..., n_filters:])
        return self.activation(linear_output) * gate


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


# ----------------------------------------------------------------------------- gradients
def test_add_weight_layer_gradients_match_finite_differences():
    layer = MyDense(3, activation="tanh", dtype="float64")
    layer._build_for((4,))
    check_layer_gradients(layer, _x(5, 4))


def test_sublayers_are_tracked_and_differentiated():
    layer = Gated(3, dtype="float64")
    layer._build_for((6, 4))
    p, n = layer.proj.name, layer.norm.name
    assert layer.weight_names == ["scale", f"{p}/kernel", f"{p}/bias", f"{n}/gamma",
                                  f"{n}/beta"]
    rng = np.random.default_rng(1)
    for w in layer.weights:  # not the initial ones/zeros: every gradient entry matters
        w[...] = rng.normal(size=w.shape)
    check_layer_gradients(layer, _x(2, 6, 4))


def test_gated_activation_unit_gradient_and_free_time_axis():
    layer = GatedActivationUnit(dtype="float64")
    layer._build_for((None, 6))
    assert layer._output_shape_for((None, 6)) == (None, 3)
    assert layer._output_shape_for((7, 6)) == (7, 3)
    check_layer_gradients(layer, _x(2, 5, 6))


def test_call_and_backward_written_by_hand():
    class Square(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs):
            self._x = np.asarray(inputs)
            return self._x ** 2 * self.w.value

        def backward(self, d_out):
            return 2 * self._x * self.w.value * d_out, [np.sum(d_out * self._x ** 2, axis=0)]

    layer = Square(dtype="float64")
    layer._build_for((3,))
    layer.weights[0][...] = [0.5, -1.0, 2.0]
    x = _x(4, 3)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, x ** 2 * [0.5, -1.0, 2.0])
    d = np.ones_like(y)
    np.testing.assert_allclose(layer.backward(d), 2 * x * [0.5, -1.0, 2.0])
    np.testing.assert_allclose(layer.grads[0], (x ** 2).sum(0))


def test_non_trainable_weights_and_frozen_layers_get_zero_gradients():
    class Affine(layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="a")
            self.b = self.add_weight(shape=(input_shape[-1],), initializer="zeros",
                                     trainable=False, name="b")

        def call(self, x):
            return x * self.a + self.b

    layer = Affine(dtype="float64")
    layer._build_for((3,))
    layer.forward(_x(2, 3), training=True)
    layer.backward(np.ones((2, 3)))
    assert np.any(layer.grads[0] != 0) and np.all(layer.grads[1] == 0)
    assert [w.shape for w in layer.non_trainable_weights] == [(3,)]
    layer.trainable = False
    layer.forward(_x(2, 3), training=True)
    layer.backward(np.ones((2, 3)))
    assert all(np.all(g == 0) for g in layer.grads)


# ----------------------------------------------------------------------------- in models
def _train_three_sgd_steps(model, x, y):
    model.compile(loss="mse", optimizer=fastrnn.optimizers.SGD(learning_rate=0.1))
    model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)


def _numpy_reference_three_steps(k1, b1, k2, b2, x, y):
    """The same model by hand in NumPy (forward and backward): Dense-tanh then MyDense."""
    for _ in range(3):
        h = np.tanh(x @ k1 + b1)
        out = h @ k2 + b2
        d_out = 2 * (out - y) / out.size
        g_k2, g_b2 = h.T @ d_out, d_out.sum(0)
        d_h = d_out @ k2.T * (1 - h * h)
        g_k1, g_b1 = x.T @ d_h, d_h.sum(0)
        k1, b1, k2, b2 = k1 - 0.1 * g_k1, b1 - 0.1 * g_b1, k2 - 0.1 * g_k2, b2 - 0.1 * g_b2
    return [k1, b1, k2, b2]


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_custom_layer_trains_in_models_like_numpy_by_hand(kind):
    x, y = _x(16, 4, seed=2), _x(16, 2, seed=3)
    if kind == "sequential":
        model = fastrnn.Sequential([layers.Dense(5, activation="tanh", input_shape=(4,),
                                                 dtype="float64"),
                                    MyDense(2, dtype="float64")])
        model.build()
    else:
        inp = fastrnn.Input((4,), dtype="float64")
        out = MyDense(2, dtype="float64")(layers.Dense(5, activation="tanh",
                                                      dtype="float64")(inp))
        model = fastrnn.Model(inp, out)
    start = model.get_weights()
    # weights live in the model's one flat buffer
    assert all(np.shares_memory(w, model._param_buffer) for w in model.weights)
    _train_three_sgd_steps(model, x, y)
    want = _numpy_reference_three_steps(*start, x, y)
    for got, ref in zip(model.get_weights(), want):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_ops_on_symbolic_tensors_are_graph_nodes():
    inp = fastrnn.Input((None, 4), dtype="float64")
    z = layers.Dense(6, dtype="float64")(inp)
    gated = ops.tanh(z[..., :3]) * ops.sigmoid(z[..., 3:]) + 1.0
    out = ops.mean(gated, axis=1) - ops.max(gated, axis=1) / 2
    model = fastrnn.Model(inp, out)
    x = _x(3, 5, 4)
    k, b = model.get_weights()
    zz = x @ k + b
    g = np.tanh(zz[..., :3]) / (1 + np.exp(-zz[..., 3:])) + 1.0
    np.testing.assert_allclose(model.predict(x), g.mean(1) - g.max(1) / 2, rtol=1e-12)
    assert model.output_shape == (None, 3)
    check_layer_gradients(model, x)


def test_a_layer_shared_between_inputs_of_different_fixed_lengths():
    gau = GatedActivationUnit()
    conv = layers.Conv1D(4, 2, padding="causal")
    a, b = fastrnn.Input((10, 3)), fastrnn.Input((6, 3))
    ya = layers.GlobalAveragePooling1D()(gau(conv(a)))
    yb = layers.GlobalAveragePooling1D()(gau(conv(b)))
    rnn = layers.GRU(3)
    model = fastrnn.Model([a, b], layers.Concatenate()([ya, yb, rnn(a), rnn(b)]))
    xa, xb = _x(2, 10, 3).astype("f4"), _x(2, 6, 3).astype("f4")
    out = model.predict([xa, xb])
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out[:, 4:7], rnn.forward(xa), rtol=1e-6)
    np.testing.assert_allclose(out[:, 7:], rnn.forward(xb), rtol=1e-6)
    np.testing.assert_allclose(out[:, 2:4], gau.forward(conv.forward(xb)).mean(1), rtol=1e-6)


# ----------------------------------------------------------------------------- saving
def test_save_and_load_with_custom_objects_and_registration(tmp_path):
    model = fastrnn.Sequential([layers.Conv1D(6, 2, padding="causal", input_shape=[None, 2]),
                                GatedActivationUnit(), MyDense(1, activation="relu")])
    model.compile(loss="mse", optimizer="adam")
    x = _x(8, 5, 2).astype("f4")
    model.fit(x, _x(8, 5, 1).astype("f4"), epochs=1, verbose=0)
    path = str(tmp_path / "m.fastrnn")
    model.save(path)
    with pytest.raises(ValueError, match="GatedActivationUnit.*custom_objects"):
        fastrnn.load_model(path)
    loaded = fastrnn.load_model(path, custom_objects={"GatedActivationUnit": GatedActivationUnit,
                                                      "MyDense": MyDense})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[2].activation is fastrnn.activations.relu

    @fastrnn.saving.register_keras_serializable(package="tests")
    class Registered(GatedActivationUnit):
        pass

    model2 = fastrnn.Sequential([layers.Dense(4, input_shape=(3,)), Registered()])
    model2.save(str(tmp_path / "r.fastrnn"))
    again = fastrnn.load_model(str(tmp_path / "r.fastrnn"))
    assert type(again.layers[1]) is Registered


def test_custom_get_config_and_unsaveable_arguments(tmp_path):
    class WithConfig(MyDense):
        def get_config(self):
            return {**super().get_config(), "units": self.units}

    layer = WithConfig(3, name="wc")
    assert layer.get_config()["units"] == 3 and "activation" not in layer.get_config()

    class Opaque(layers.Layer):
        def __init__(self, table, **kwargs):
            super().__init__(**kwargs)
            self.table = table

        def call(self, x):
            return x

    model = fastrnn.Sequential([layers.Dense(2, input_shape=(3,)), Opaque(object())])
    model.build()
    with pytest.raises(NotImplementedError, match="get_config"):
        model.save(str(tmp_path / "o.fastrnn"))


def test_lambda_layers(tmp_path):
    def gelu_ish(x, k=1.0):
        return x * ops.sigmoid(1.702 * k * x)

    model = fastrnn.Sequential([layers.Dense(4, input_shape=(3,)),
                                layers.Lambda(gelu_ish, arguments={"k": 2.0}),
                                layers.Lambda(ops.tanh), layers.Dense(1)])
    x = _x(5, 3).astype("f4")
    y = model.predict(x)
    model.save(str(tmp_path / "l.fastrnn"))
    with pytest.raises(ValueError, match="gelu_ish"):
        fastrnn.load_model(str(tmp_path / "l.fastrnn"))
    loaded = fastrnn.load_model(str(tmp_path / "l.fastrnn"),
                                custom_objects={"gelu_ish": gelu_ish})
    np.testing.assert_array_equal(loaded.predict(x), y)
    lam = layers.Lambda(lambda v: ops.square(v) * 3, dtype="float64")
    lam._build_for((4,))
    check_layer_gradients(lam, _x(2, 4))
    anonymous = fastrnn.Sequential([layers.Dense(2, input_shape=(3,)),
                                    layers.Lambda(lambda v: ops.square(v) * 3)])
    anonymous.build()
    with pytest.raises(NotImplementedError, match="lambda expression"):
        anonymous.save(str(tmp_path / "a.fastrnn"))


# ----------------------------------------------------------------------------- bad input
def test_add_weight_bad_arguments():
    class Bad(layers.Layer):
        def __init__(self, shape=None, init="zeros", **kwargs):
            super().__init__(**kwargs)
            self.shape_, self.init = shape, init

        def build(self, input_shape):
            self.w = self.add_weight(shape=self.shape_, initializer=self.init, name="w")

        def call(self, x):
            return x * self.w

    with pytest.raises(ValueError, match="argument `shape` of weight `bad/w`.*None"):
        Bad(shape=(None, 3), name="bad")._build_for((3,))
    with pytest.raises(ValueError, match="argument `shape`.*-2"):
        Bad(shape=(-2,))._build_for((3,))
    with pytest.raises(ValueError, match="argument `initializer`.*not_an_init"):
        Bad(shape=(3,), init="not_an_init")._build_for((3,))


def test_weights_created_in_call_are_refused():
    class Lazy(layers.Layer):
        def call(self, x):
            self.w = self.add_weight(shape=(x.shape[-1],), name="late")
            return x * self.w

    with pytest.raises(RuntimeError, match="outside `build`"):
        Lazy()._build_for((3,))


def test_an_operation_without_gradient_is_refused_when_the_layer_is_built():
    class UsesNumpy(layers.Layer):
        def call(self, x):
            return np.arctan(x)

    with pytest.raises(NoGradientError, match="numpy.arctan"):
        fastrnn.Sequential([layers.Dense(3, input_shape=(2,)), UsesNumpy()]).build()


def test_old_positional_add_weight_still_works():
    layer = layers.Dense(3)
    layer.build((2,))
    assert layer.weight_names == ["kernel", "bias"]
    v = layer.add_weight("extra", (2,), "ones")
    assert isinstance(v, fastrnn.autodiff.Variable) and np.all(v.numpy() == 1)
    reg = layers.Dense(2)
    reg.add_weight(shape=(2,), name="r", regularizer="l2", constraint="non_neg")
    assert reg._weight_regularizers == {"r": "l2"} and reg._weight_constraints == {"r": "non_neg"}


def test_built_in_models_never_take_the_traced_path():
    model = fastrnn.Sequential([layers.SimpleRNN(4, return_sequences=True, input_shape=[None, 1]),
                                layers.SimpleRNN(4), layers.Dense(1)])
    model.build()
    assert not any(layer._keras_style for layer in model._iter_all_layers())


def test_a_call_with_a_mask_argument_gets_the_mask_in_models():
    class ZeroMasked(layers.Layer):
        supports_masking = True

        def call(self, inputs, mask=None):
            keep = 1.0 if mask is None else ops.cast(mask, inputs.dtype)[..., None]
            return ops.square(inputs) * keep

    x = _x(3, 5, 2).astype("f4")
    x[0, 3:] = 0.0
    x[1, 4:] = 0.0
    model = fastrnn.Sequential([layers.Masking(0.0, input_shape=(None, 2)), ZeroMasked(),
                                layers.LSTM(3)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, np.ones((3, 3), "f4"), epochs=1, verbose=0)
    out = model.layers[1].forward(x, mask=np.abs(x).sum(-1) > 0)
    np.testing.assert_array_equal(out[0, 3:], 0)
    masked = fastrnn.Model(*(lambda i: (i, ZeroMasked()(layers.Masking(0.0)(i))))(
        fastrnn.Input((None, 2))))
    np.testing.assert_allclose(masked.predict(x), x ** 2 * (np.abs(x).sum(-1) > 0)[..., None])


def test_hand_written_backward_trains_in_a_model_like_the_traced_one():
    class ScaleByHand(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs):
            self._x = np.asarray(inputs)
            return self._x * self.w.value

        def backward(self, d_out):
            grad_w = np.sum(d_out * self._x, axis=tuple(range(d_out.ndim - 1)))
            return d_out * self.w.value, [grad_w]

    class ScaleTraced(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs):
            return inputs * self.w

    x, y = _x(12, 5, 3, seed=7), _x(12, 5, 1, seed=8)
    results = []
    for scale in (ScaleByHand, ScaleTraced):
        fastrnn.set_seed(3)
        model = fastrnn.Sequential([layers.Dense(3, input_shape=(None, 3), dtype="float64"),
                                    scale(dtype="float64"), layers.Dense(1, dtype="float64")])
        _train_three_sgd_steps(model, x, y)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(results[0][2], 1.0)  # the hand-written gradient moved `w`
