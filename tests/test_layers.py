"""One harness over every layer: shapes, float64 finite-difference gradients (d_x and every
weight), config and weight round trips, and `_bind`; then errors and the registry.

Recurrent-specific behaviour (PyTorch references, dropout masks, stateful, go_backwards,
Bidirectional, truncation, layer norm) is in test_layers_recurrent.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastrnn import layers
from fastrnn.layers import (
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Input,
    InputLayer,
    SimpleRNN,
    TimeDistributed,
)

F64 = {"dtype": "float64"}


# ----------------------------------------------------------------------------- helpers
def randomize(layer, seed=0):
    """Random, non-constant weights (every unit different), gamma around 1."""
    rng = np.random.default_rng(seed)
    values = []
    for name, w in zip(layer.weight_names, layer.weights):
        v = rng.uniform(-0.6, 0.6, w.shape)
        if name.endswith("gamma"):
            v += 1.0
        values.append(v)
    layer.set_weights(values)


def reseed(layer, seed=123):
    """Same dropout masks on every call: finite differences need a fixed function."""
    layer._rng = np.random.default_rng(seed)
    for sub in getattr(layer, "_sublayers", []):
        reseed(sub, seed)


def as_list(y):
    return list(y) if isinstance(y, list) else [y]


def run(layer, x, training=True):
    reseed(layer)
    layer.reset_states()
    return layer.forward(x, training=training)


def loss_of(layer, x, probes):
    return sum(float(np.sum(y * p)) for y, p in zip(as_list(run(layer, x)), probes))


def numeric_grad(f, a, indices, eps=1e-6):
    out = []
    for idx in indices:
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        out.append((up - down) / (2 * eps))
    return np.array(out)


def sample_indices(shape, rng, limit=40):
    all_idx = list(np.ndindex(*shape))
    if len(all_idx) <= limit:
        return all_idx
    pick = rng.choice(len(all_idx), size=limit, replace=False)
    return [all_idx[i] for i in pick]


# ----------------------------------------------------------------------------- cases
# (id, factory(**dtype_kwargs) -> layer, input shape with batch, build shape or None, int input)
def _seq(name, factory, shape=(3, 5, 2), build=None):
    return pytest.param(factory, shape, build, False, id=name)


RECURRENT_OPTIONS = {
    "last": {},
    "seq": {"return_sequences": True},
    "backwards": {"go_backwards": True, "return_sequences": True},
    "nobias": {"use_bias": False},
    "dropouts": {"dropout": 0.3, "recurrent_dropout": 0.4, "return_sequences": True},
    "truncate": {"truncate_bptt": 2, "return_sequences": True},
    "state": {"return_state": True, "return_sequences": True},
    "stateful": {"stateful": True},
    "ln": {"layer_norm": True, "return_sequences": True},
    "ln_drop_trunc": {"layer_norm": True, "dropout": 0.2, "recurrent_dropout": 0.3,
                      "truncate_bptt": 3, "go_backwards": True},
    "ln_state": {"layer_norm": True, "return_state": True, "use_bias": False},
}

CASES = []
for cls in (SimpleRNN, LSTM, GRU):
    for opt_name, opts in RECURRENT_OPTIONS.items():
        CASES.append(_seq(
            f"{cls.__name__}-{opt_name}",
            lambda cls=cls, opts=opts, **kw: cls(3, **opts, **kw),
            build=(None, 2),
        ))
    CASES.append(_seq(f"{cls.__name__}-units1-T7", lambda cls=cls, **kw: cls(1, **kw),
                      shape=(2, 7, 1)))
for act in ("relu", "linear"):
    CASES.append(_seq(f"SimpleRNN-{act}", lambda act=act, **kw: SimpleRNN(
        5, activation=act, return_sequences=True, **kw)))
    CASES.append(_seq(f"SimpleRNN-{act}-ln", lambda act=act, **kw: SimpleRNN(
        4, activation=act, layer_norm=True, **kw)))
for act in (None, "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "softplus", "softsign",
            "swish", "exponential"):
    CASES.append(pytest.param(lambda act=act, **kw: Dense(4, activation=act, **kw), (3, 5),
                              None, False, id=f"Dense-{act}"))
CASES += [
    pytest.param(lambda **kw: Dense(1, use_bias=False, **kw), (1, 3), None, False,
                 id="Dense-nobias-1"),
    pytest.param(lambda **kw: Dense(3, activation="softmax", **kw), (2, 5, 7), None, False,
                 id="Dense-rank3"),
    pytest.param(lambda **kw: Dense(2, **kw), (2, 3, 2, 3), None, False, id="Dense-rank4"),
    pytest.param(lambda **kw: Activation("tanh", **kw), (3, 4), None, False, id="Activation"),
    pytest.param(lambda **kw: Activation("softmax", **kw), (2, 3, 5), None, False,
                 id="Activation-softmax"),
    pytest.param(lambda **kw: Flatten(**kw), (2, 3, 5), None, False, id="Flatten"),
    pytest.param(lambda **kw: Dropout(0.4, **kw), (3, 4, 5), None, False, id="Dropout"),
    pytest.param(lambda **kw: InputLayer(shape=(5, 2), **kw), (3, 5, 2), None, False,
                 id="InputLayer"),
    pytest.param(lambda **kw: Embedding(7, 3, **kw), (3, 5), (None,), True, id="Embedding"),
    pytest.param(lambda **kw: TimeDistributed(Dense(3, activation="tanh", **kw)), (2, 4, 5),
                 (None, 5), False, id="TimeDistributed-Dense"),
    pytest.param(lambda **kw: TimeDistributed(Flatten(**kw)), (2, 3, 2, 2), None, False,
                 id="TimeDistributed-Flatten"),
    pytest.param(lambda **kw: TimeDistributed(SimpleRNN(2, **kw)), (2, 3, 4, 2), None, False,
                 id="TimeDistributed-SimpleRNN"),
]
for mode in ("concat", "sum", "mul", "ave", None):
    CASES.append(_seq(f"Bidirectional-LSTM-{mode}", lambda mode=mode, **kw: Bidirectional(
        LSTM(3, return_sequences=True, **kw), merge_mode=mode), build=(None, 2)))
CASES += [
    _seq("Bidirectional-GRU-last", lambda **kw: Bidirectional(GRU(2, **kw))),
    _seq("Bidirectional-SimpleRNN-state", lambda **kw: Bidirectional(
        SimpleRNN(3, return_state=True, dropout=0.2, **kw), merge_mode="sum")),
    _seq("Bidirectional-LSTM-state-ln", lambda **kw: Bidirectional(
        LSTM(2, return_state=True, return_sequences=True, layer_norm=True, **kw))),
]


def _make(factory, shape, build, ints, dtype="float64"):
    layer = factory(dtype=dtype)
    layer.build(build if build is not None else shape[1:])
    randomize(layer)
    rng = np.random.default_rng(1)
    if ints:
        x = rng.integers(0, 7, size=shape)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    return layer, x


def _full_shape(layer, x):
    out = layer.compute_output_shape(x.shape[1:])
    shapes = out if isinstance(out, list) else [out]
    return [(x.shape[0], *s) for s in shapes]


@pytest.mark.parametrize("factory, shape, build, ints", CASES)
def test_forward_shape_and_dtype(factory, shape, build, ints):
    for dtype in ("float32", "float64"):
        layer, x = _make(factory, shape, build, ints, dtype)
        for training in (False, True):
            ys = as_list(run(layer, x, training=training))
            assert [y.shape for y in ys] == _full_shape(layer, x)
            assert all(y.dtype == np.dtype(dtype) for y in ys)
        built_out = layer.output_shape
        assert built_out == layer.compute_output_shape(layer.input_shape)


@pytest.mark.parametrize("factory, shape, build, ints", CASES)
def test_gradients_match_finite_differences(factory, shape, build, ints):
    layer, x = _make(factory, shape, build, ints)
    # Truncated gradients are not the loss's gradient: test_layers_recurrent.py checks them
    # against ops and by their structure; here the same layer must give the full gradient.
    if getattr(layer, "truncate_bptt", None) is not None:
        layer.truncate_bptt = None
    rng = np.random.default_rng(2)
    probes = [rng.standard_normal(s) for s in _full_shape(layer, x)]
    ys = as_list(run(layer, x))
    d_out = probes if (isinstance(run(layer, x), list)) else probes[0]
    d_x = layer.backward(d_out)
    assert d_x.shape == x.shape
    f = lambda: loss_of(layer, x, probes)  # noqa: E731
    if ints:
        np.testing.assert_array_equal(d_x, 0)
    else:
        idx = sample_indices(x.shape, rng)
        np.testing.assert_allclose(
            [d_x[i] for i in idx], numeric_grad(f, x, idx), rtol=1e-5, atol=1e-7,
            err_msg="d_x")
    assert len(layer.grads) == len(layer.weights) == len(layer.weight_names)
    grads = [g.copy() for g in layer.grads]  # the FD loop runs forward only: grads stay put
    for name, w, g in zip(layer.weight_names, layer.weights, grads):
        assert g.shape == w.shape and g.dtype == w.dtype
        idx = sample_indices(w.shape, rng)
        np.testing.assert_allclose(
            [g[i] for i in idx], numeric_grad(f, w, idx), rtol=1e-5, atol=1e-7,
            err_msg=f"d {name}")
    assert ys  # forward returned something


@pytest.mark.parametrize("factory, shape, build, ints", CASES)
def test_config_and_weights_round_trip(factory, shape, build, ints):
    layer, x = _make(factory, shape, build, ints)
    config = json.loads(json.dumps(layers.serialize(layer)))
    clone = layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    clone.build(layer.input_shape)
    assert clone.count_params() == layer.count_params()
    assert clone.weight_names == layer.weight_names
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    for training in (False, True):
        for a, b in zip(as_list(run(clone, x, training)), as_list(run(layer, x, training))):
            np.testing.assert_array_equal(a, b)
    # get_weights returns copies.
    for w in layer.get_weights():
        w[...] = 7.0
    assert not any(np.all(w == 7.0) for w in layer.weights if w.size)


@pytest.mark.parametrize("factory, shape, build, ints", CASES)
def test_bind_moves_storage_into_views(factory, shape, build, ints):
    layer, x = _make(factory, shape, build, ints)
    before = [y.copy() for y in as_list(run(layer, x))]
    total = layer.count_params()
    params = np.zeros(total + 3)  # offset views, as in a model's flat buffer
    grads = np.full(total + 3, np.nan)
    pv, gv, offset = [], [], 3
    for w in layer.weights:
        pv.append(params[offset:offset + w.size].reshape(w.shape))
        gv.append(grads[offset:offset + w.size].reshape(w.shape))
        offset += w.size
    layer._bind(pv, gv)
    for a, b in zip(as_list(run(layer, x)), before):
        np.testing.assert_array_equal(a, b)
    probes = [np.ones_like(y) for y in before]
    layer.backward(probes if len(probes) > 1 else probes[0])
    assert not np.isnan(grads[3:]).any()  # backward wrote every gradient into the views
    for w, v in zip(layer.weights, pv):
        assert np.shares_memory(w, v)
    if total:
        params[3:] *= 0.5  # an in-place update of the flat buffer changes the layer
        changed = [y for y in as_list(run(layer, x))]
        assert any(not np.array_equal(a, b) for a, b in zip(changed, before))


def test_trainable_false_writes_zero_gradients():
    layer, x = _make(lambda **kw: LSTM(3, trainable=False, **kw), (2, 4, 2), None, False)
    run(layer, x)
    layer.backward(np.ones((2, 3)))
    assert all(np.all(g == 0) for g in layer.grads)
    wrapped = Bidirectional(GRU(2, **F64))
    wrapped.trainable = False
    assert not wrapped.forward_layer.trainable and not wrapped.backward_layer.trainable


def test_backward_overwrites_instead_of_accumulating():
    layer, x = _make(lambda **kw: Dense(3, **kw), (4, 2), None, False)
    run(layer, x)
    layer.backward(np.ones((4, 3)))
    first = [g.copy() for g in layer.grads]
    run(layer, x)
    layer.backward(np.ones((4, 3)))
    for a, b in zip(first, layer.grads):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- layouts
def test_keras_weight_layouts():
    shapes = {
        "simple": (SimpleRNN(5), [(3, 5), (5, 5), (5,)]),
        "lstm": (LSTM(5), [(3, 20), (5, 20), (20,)]),
        "gru": (GRU(5), [(3, 15), (5, 15), (2, 15)]),
        "lstm_ln": (LSTM(5, layer_norm=True), [(3, 20), (5, 20), (20,), (20,), (20,)]),
        "dense": (Dense(5), [(3, 5), (5,)]),
    }
    for layer, want in shapes.values():
        layer.build((None, 3))
        assert [w.shape for w in layer.get_weights()] == want
        assert all(w.dtype == np.float32 for w in layer.weights)
    lstm = shapes["lstm"][0]
    b = lstm.get_weights()[2]
    np.testing.assert_array_equal(b, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    assert lstm.weight_names == ["kernel", "recurrent_kernel", "bias"]
    bi = Bidirectional(GRU(2))
    bi.build((4, 3))
    assert [w.shape for w in bi.get_weights()] == [(3, 6), (2, 6), (2, 6)] * 2
    assert bi.weight_names[0] == "forward_" + bi.weight_names[0].split("forward_")[1]
    assert Embedding(10, 4, input_length=6).compute_output_shape((6,)) == (6, 4)


def test_seed_gives_identical_weights_and_overrides_model_rng():
    a, b = LSTM(4, seed=5), LSTM(4, seed=5)
    b.rng = np.random.default_rng(99)  # ignored: the layer has its own seed
    a.build((None, 3))
    b.build((None, 3))
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    c, d = LSTM(4), LSTM(4)
    c.rng = np.random.default_rng(5)  # what a model does for a layer without a seed
    d.rng = np.random.default_rng(5)
    c.build((None, 3))
    d.build((None, 3))
    for u, v in zip(c.get_weights(), d.get_weights()):
        np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------------------------- errors
def test_invalid_arguments_name_argument_rule_and_value():
    with pytest.raises(ValueError, match=r"Received an invalid value for argument `units`, "
                                         r"expected a positive integer, got 0\."):
        SimpleRNN(0)
    with pytest.raises(ValueError, match="`units`.*got -3"):
        Dense(-3)
    with pytest.raises(ValueError, match="`units`.*got 2.5"):
        LSTM(2.5)
    with pytest.raises(ValueError, match=r"`dropout`.*\[0, 1\).*got 1.0"):
        GRU(2, dropout=1.0)
    with pytest.raises(ValueError, match="`recurrent_dropout`.*got -0.1"):
        LSTM(2, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match="`truncate_bptt`.*got 0"):
        SimpleRNN(2, truncate_bptt=0)
    with pytest.raises(TypeError, match="`return_sequences`.*got 1"):
        SimpleRNN(2, return_sequences=1)
    with pytest.raises(ValueError, match="`dtype`.*float16"):
        Dense(2, dtype="float16")
    with pytest.raises(ValueError, match="`rate`"):
        Dropout(1.5)
    with pytest.raises(ValueError, match="`merge_mode`.*'max'"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(TypeError, match="`layer`.*Dense"):
        Bidirectional(Dense(2))
    with pytest.raises(TypeError, match="unexpected keyword.*kernel_regularizr"):
        LSTM(2, kernel_regularizr="l2")
    with pytest.raises(ValueError, match="`recurrent_regularizer`.*'l3'"):
        LSTM(2, recurrent_regularizer="l3")
    with pytest.raises(ValueError, match="`bias_constraint`.*int"):
        Dense(2, bias_constraint=3)
    with pytest.raises(ValueError, match="`input_shape`"):
        SimpleRNN(2, input_shape=(0, 1))
    with pytest.raises(ValueError, match="`seed`"):
        Dense(2, seed=-1)


def test_unsupported_options_raise_not_implemented():
    with pytest.raises(NotImplementedError, match="`activation`.*only 'tanh'.*'relu'"):
        LSTM(2, activation="relu")
    with pytest.raises(NotImplementedError, match="`activation`.*only 'tanh'.*'sigmoid'"):
        GRU(2, activation="sigmoid")
    with pytest.raises(NotImplementedError, match="`activation`.*'softmax'"):
        SimpleRNN(2, activation="softmax")
    with pytest.raises(NotImplementedError, match="`recurrent_activation`.*'hard_sigmoid'"):
        LSTM(2, recurrent_activation="hard_sigmoid")
    with pytest.raises(NotImplementedError, match="`reset_after`.*reset_after=True only"):
        GRU(2, reset_after=False)
    with pytest.raises(NotImplementedError, match="`activation`.*'glu'"):
        Dense(2, activation="glu")
    with pytest.raises(NotImplementedError, match="callable"):
        Dense(2, activation=np.tanh)


def test_feature_count_mismatch_names_expected_and_received():
    for layer, good, bad in (
        (LSTM(3), (2, 5, 4), (2, 5, 6)),
        (Dense(3), (2, 4), (2, 6)),
        (Bidirectional(GRU(2)), (2, 5, 4), (2, 5, 6)),
        (TimeDistributed(Dense(2)), (2, 5, 4), (2, 5, 6)),
    ):
        layer.forward(np.zeros(good, np.float32))
        with pytest.raises(ValueError, match="expected feature count 4, received 6"):
            layer.forward(np.zeros(bad, np.float32))
    rnn = SimpleRNN(2)
    rnn.build((None, 3))
    rnn.forward(np.zeros((1, 9, 3)))  # any length: the time axis was None
    with pytest.raises(ValueError, match="rank 3"):
        rnn.forward(np.zeros((4, 3)))
    fixed = SimpleRNN(2)
    fixed.build((5, 3))
    assert fixed.forward(np.zeros((1, 6, 3))).shape == (1, 2)  # Keras's: time stays free
    with pytest.raises(ValueError, match=r"\(time, features\)"):
        SimpleRNN(2).build((3,))
    with pytest.raises(ValueError, match="fixed shape|every non-batch dimension"):
        Flatten().build((None, 3))


def test_embedding_bad_ids():
    emb = Embedding(5, 2)
    np.testing.assert_array_equal(emb.forward(np.array([[0, 4]])).shape, (1, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 5\), got 5"):
        emb.forward(np.array([[1, 5]]))
    with pytest.raises(ValueError, match=r"got -1"):
        emb.forward(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="non-integer"):
        emb.forward(np.array([[0.5, 1.0]]))
    np.testing.assert_array_equal(emb.forward(np.array([[1.0, 2.0]])),
                                  emb.forward(np.array([[1, 2]])))
    with pytest.raises(TypeError, match="integer token ids"):
        emb.forward(np.array([["a"]]))


def test_set_weights_and_bind_errors():
    layer = GRU(2)
    with pytest.raises(RuntimeError, match="not built"):
        layer.set_weights([])
    layer.build((None, 3))
    with pytest.raises(ValueError, match="expects 3 weight arrays.*got 2"):
        layer.set_weights(layer.get_weights()[:2])
    bad = layer.get_weights()
    bad[2] = np.zeros(6)
    with pytest.raises(ValueError, match=r"`bias` has shape \(2, 6\).*\(6,\)"):
        layer.set_weights(bad)
    with pytest.raises(ValueError, match="weight_views"):
        layer._bind(layer.get_weights()[:1], layer.get_weights())
    with pytest.raises(RuntimeError, match=r"forward\(x, training=True\)"):
        layer.backward(np.zeros((1, 2)))
    layer.forward(np.zeros((1, 4, 3)), training=False)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((1, 2)))


def test_registry():
    assert layers.get("LSTM") is LSTM
    with pytest.raises(ValueError, match="`class_name`.*'Conv2D'"):
        layers.get("Conv2D")
    with pytest.raises(ValueError, match="'class_name' and 'config'"):
        layers.deserialize({"config": {}})
    layer = layers.deserialize({"class_name": "Dense", "config": {"units": 3}})
    assert isinstance(layer, Dense) and layer.units == 3
    inp = Input((None, 4))  # Keras 3: a symbolic tensor, made by an InputLayer
    assert inp.shape == (None, None, 4) and isinstance(inp.producer, InputLayer)
    assert inp.producer.input_shape == (None, 4)
    seq = layers.deserialize(layers.serialize(SimpleRNN(2, input_shape=(None, 4))))
    assert seq.input_shape == (None, 4) and not seq.built
