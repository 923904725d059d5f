"""The functional API: fastrnn.Input / fastrnn.Model graphs, merges, shared layers, states."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import layers

F64 = {"dtype": "float64"}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _loss_and_grad(model, xs, ys):
    """The compiled loss and its gradient w.r.t. the flat parameter buffer."""
    xs = model._check_inputs(xs)
    ys = model._check_targets(ys, xs[0].shape[0])
    outs = model._run_forward(xs, training=True)
    loss, ds = model._loss_and_grads(ys, outs)
    model._run_backward(ds)
    return loss, model._grad_buffer.copy()


def _check_gradients(model, xs, ys, n_checks=40, seed=0, tol=1e-6):
    """Central finite differences on random parameters (float64) against backward."""
    model._ensure_packed()
    _, grad = _loss_and_grad(model, xs, ys)
    params = model._param_buffer
    rng = _rng(seed)
    idx = rng.choice(params.size, size=min(n_checks, params.size), replace=False)
    eps = 1e-6
    for i in idx:
        old = params[i]
        params[i] = old + eps
        up, _ = _loss_and_grad(model, xs, ys)
        params[i] = old - eps
        down, _ = _loss_and_grad(model, xs, ys)
        params[i] = old
        numeric = (up - down) / (2 * eps)
        assert abs(numeric - grad[i]) <= tol * max(1.0, abs(numeric)), (
            i, model.weight_names, numeric, grad[i])


def _two_input_model():
    seq = fastrnn.Input((None, 3), name="seq")
    static = fastrnn.Input((4,), name="static")
    h = layers.LSTM(5, **F64)(seq)
    s = layers.Dense(3, activation="tanh", **F64)(static)
    merged = layers.Concatenate()([h, s])
    out = layers.Dense(2, **F64)(merged)
    return fastrnn.Model([seq, static], out)


def test_functional_equals_sequential_with_the_same_weights():
    fastrnn.set_seed(1)
    seq = fastrnn.Sequential([layers.GRU(7, return_sequences=True, input_shape=(None, 2)),
                              layers.LSTM(5), layers.Dense(1)])
    inp = fastrnn.Input((None, 2))
    x = layers.GRU(7, return_sequences=True)(inp)
    x = layers.LSTM(5)(x)
    fun = fastrnn.Model(inp, layers.Dense(1)(x))
    seq.build()
    fun.set_weights(seq.get_weights())
    data = _rng().normal(size=(9, 11, 2)).astype(np.float32)
    np.testing.assert_array_equal(fun.predict(data), seq.predict(data))
    assert [w.shape for w in fun.get_weights()] == [w.shape for w in seq.get_weights()]


def test_two_inputs_gradients_through_a_merge():
    model = _two_input_model()
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(2)
    xs = [rng.normal(size=(6, 5, 3)), rng.normal(size=(6, 4))]
    y = rng.normal(size=(6, 2))
    _check_gradients(model, xs, y)
    # dict inputs by name, the same values
    np.testing.assert_array_equal(model.predict({"seq": xs[0], "static": xs[1]}),
                                  model.predict(xs))


def test_shared_layer_gradients_add_up():
    a = fastrnn.Input((3,))
    b = fastrnn.Input((3,))
    shared = layers.Dense(4, activation="tanh", **F64)
    merged = layers.Subtract()([shared(a), shared(b)])
    out = layers.Dense(1, **F64)(merged)
    model = fastrnn.Model([a, b], out)
    assert model.count_params() == 3 * 4 + 4 + 4 + 1  # the shared layer counts once
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(3)
    _check_gradients(model, [rng.normal(size=(5, 3)), rng.normal(size=(5, 3))],
                     rng.normal(size=(5, 1)))


def test_shared_recurrent_layer_keeps_each_calls_tape():
    a = fastrnn.Input((None, 2))
    b = fastrnn.Input((None, 2))
    shared = layers.LSTM(3, **F64)
    out = layers.Dense(1, **F64)(layers.Concatenate()([shared(a), shared(b)]))
    model = fastrnn.Model([a, b], out)
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(4)
    _check_gradients(model, [rng.normal(size=(4, 6, 2)), rng.normal(size=(4, 3, 2))],
                     rng.normal(size=(4, 1)))


def _encoder_decoder(cell=layers.LSTM):
    enc_in = fastrnn.Input((None, 2))
    dec_in = fastrnn.Input((None, 3))
    _, *states = cell(4, return_state=True, **F64)(enc_in)
    dec = cell(4, return_sequences=True, **F64)(dec_in, initial_state=states)
    out = layers.TimeDistributed(layers.Dense(2, **F64))(dec)
    return fastrnn.Model([enc_in, dec_in], out)


@pytest.mark.parametrize("cell", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_encoder_decoder_state_gradients(cell):
    model = _encoder_decoder(cell)
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(5)
    xs = [rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 4, 3))]
    _check_gradients(model, xs, rng.normal(size=(3, 4, 2)))


def test_repeat_vector_model_gradients_and_shapes():
    inp = fastrnn.Input((6, 1))
    code = layers.LSTM(4, **F64)(inp)
    rep = layers.RepeatVector(3)(code)
    dec = layers.GRU(5, return_sequences=True, **F64)(rep)
    out = layers.Dense(1, **F64)(dec)
    model = fastrnn.Model(inp, out)
    assert model.output_shape == (None, 3, 1)
    model.compile(loss="mae", optimizer="sgd")
    rng = _rng(6)
    _check_gradients(model, rng.normal(size=(4, 6, 1)), rng.normal(size=(4, 3, 1)))


def test_bidirectional_states_in_a_graph():
    inp = fastrnn.Input((None, 2))
    y, *states = layers.Bidirectional(layers.LSTM(3, return_state=True, **F64))(inp)
    assert len(states) == 4
    dec_in = fastrnn.Input((None, 2))
    dec = layers.Bidirectional(layers.LSTM(3, return_sequences=True, **F64))(
        dec_in, initial_state=states)
    out = layers.Dense(1, **F64)(layers.Concatenate()([layers.RepeatVector(4)(y), dec]))
    model = fastrnn.Model([inp, dec_in], out)
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(7)
    _check_gradients(model, [rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 4, 2))],
                     rng.normal(size=(3, 4, 1)))


def test_multi_output_losses_weights_and_history_keys():
    inp = fastrnn.Input((None, 2))
    h = layers.GRU(4)(inp)
    a = layers.Dense(1, name="price")(h)
    b = layers.Dense(3, activation="softmax", name="kind")(h)
    model = fastrnn.Model(inp, [a, b])
    model.compile(optimizer="adam",
                  loss={"price": "mse", "kind": "sparse_categorical_crossentropy"},
                  loss_weights={"price": 2.0, "kind": 0.5}, metrics={"kind": ["accuracy"]})
    rng = _rng(8)
    x = rng.normal(size=(20, 5, 2)).astype(np.float32)
    y = {"price": rng.normal(size=(20, 1)), "kind": rng.integers(0, 3, size=20)}
    hist = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, [y["price"], y["kind"]]))
    assert set(hist.history) == {"loss", "price_loss", "kind_loss", "kind_accuracy",
                                 "val_loss", "val_price_loss", "val_kind_loss",
                                 "val_kind_accuracy"}
    loss, price_loss, kind_loss, _ = model.evaluate(x, [y["price"], y["kind"]])
    assert loss == pytest.approx(2.0 * price_loss + 0.5 * kind_loss, rel=1e-6)
    pred = model.predict(x)
    assert isinstance(pred, list) and pred[0].shape == (20, 1) and pred[1].shape == (20, 3)


def test_nested_sequential_as_a_layer_trains_with_the_outer_model():
    inner = fastrnn.Sequential([layers.Dense(4, activation="tanh", **F64),
                                layers.Dense(2, **F64)])
    inp = fastrnn.Input((3,))
    out = layers.Dense(1, **F64)(inner(inp))
    model = fastrnn.Model(inp, out)
    assert model.count_params() == inner.count_params() + 3
    model.compile(loss="mse", optimizer="sgd")
    rng = _rng(9)
    _check_gradients(model, rng.normal(size=(5, 3)), rng.normal(size=(5, 1)))
    before = inner.get_weights()
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, inner.get_weights()))


def test_save_and_load_a_graph(tmp_path):
    model = _two_input_model()
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    rng = _rng(10)
    xs = [rng.normal(size=(8, 5, 3)), rng.normal(size=(8, 4))]
    model.fit(xs, rng.normal(size=(8, 2)), epochs=1, verbose=0)
    path = str(tmp_path / "two.fastrnn")
    model.save(path)
    loaded = fastrnn.load_model(path)
    assert isinstance(loaded, fastrnn.Model) and loaded.input_names == ["seq", "static"]
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    assert [lyr.name for lyr in loaded.layers] == [lyr.name for lyr in model.layers]
    assert loaded.metrics_names == model.metrics_names


def test_summary_shows_connections():
    text = _two_input_model().summary(print_fn=None)
    assert "Connected to" in text and "seq[0][0]" in text and "static[0][0]" in text


def test_keras_layer_order_for_weights():
    # Keras orders layers by depth from the outputs, then by first visit from the outputs.
    a = fastrnn.Input((2,), name="a")
    b = fastrnn.Input((2,), name="b")
    da = layers.Dense(3, name="da")(a)
    db = layers.Dense(3, name="db")(b)
    deep = layers.Dense(3, name="deep")(layers.Dense(3, name="pre")(da))
    out = layers.Dense(1, name="out")(layers.Concatenate(name="cat")([deep, db]))
    model = fastrnn.Model([a, b], out)
    # (what keras.Model gives for this graph)
    assert [lyr.name for lyr in model.layers] == ["a", "da", "pre", "b", "deep", "db", "cat",
                                                   "out"]
    assert [n.split("/")[0] for n in model.weight_names[::2]] == ["da", "pre", "deep", "db",
                                                                   "out"]


# ----------------------------------------------------------------------------- bad input
def test_layer_called_on_an_array_while_building_a_graph():
    inp = fastrnn.Input((3,))
    with pytest.raises(ValueError, match="mix of symbolic tensors and other values"):
        layers.Concatenate()([inp, np.zeros((1, 3))])
    eager = layers.Dense(2)(np.zeros((1, 3)))  # eager call: an array, as Keras
    with pytest.raises(ValueError, match="expected a symbolic tensor.*NumPy array"):
        fastrnn.Model(inp, eager)


def test_disconnected_and_unused_inputs():
    a = fastrnn.Input((3,), name="a")
    b = fastrnn.Input((3,), name="b")
    out = layers.Dense(1)(b)
    with pytest.raises(ValueError, match="Graph disconnected.*'b'"):
        fastrnn.Model(a, out)
    with pytest.raises(ValueError, match="input 'a'.*not used"):
        fastrnn.Model([a, b], out)


def test_merge_shape_mismatch_names_both_shapes():
    a = fastrnn.Input((None, 3))
    b = fastrnn.Input((None, 4))
    with pytest.raises(ValueError, match=r"input 0 has shape \(None, None, 3\), input 1 has "
                                         r"shape \(None, None, 4\)"):
        layers.Add()([a, b])
    with pytest.raises(ValueError, match="match except on the concatenation axis"):
        layers.Concatenate(axis=1)([a, b])


def test_initial_state_count_and_shape():
    inp = fastrnn.Input((None, 2))
    h = fastrnn.Input((5,))
    with pytest.raises(ValueError, match=r"expects `initial_state` \[h, c\]"):
        layers.LSTM(5)(inp, initial_state=[h])
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        layers.GRU(4)(inp, initial_state=[h])
    with pytest.raises(ValueError, match="takes no `initial_state`"):
        layers.Dense(4)(inp, initial_state=[h])


def test_fit_with_wrong_lists_and_dicts():
    model = _two_input_model()
    model.compile(loss="mse", optimizer="sgd")
    x = np.zeros((4, 5, 3))
    with pytest.raises(ValueError, match=r"2 inputs \['seq', 'static'\].*got list of length 1"):
        model.fit([x], np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"unknown \['other'\], missing \['static'\]"):
        model.fit({"seq": x, "other": x}, np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="unknown output name"):
        model.compile(loss={"nope": "mse"})


def test_model_needs_inputs_and_outputs():
    with pytest.raises(TypeError, match="needs both"):
        fastrnn.Model()


def test_a_failed_compile_changes_nothing():
    model = _two_input_model()
    model.compile(loss="mse", optimizer="adam")
    opt = model.optimizer
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile(loss="no_such_loss", optimizer="sgd")
    assert model.optimizer is opt and model.compiled


def test_activation_functions_on_symbolic_tensors_and_clear_session():
    fastrnn.backend.clear_session()
    inp = fastrnn.Input((3,))
    out = fastrnn.activations.relu(layers.Dense(2, name="pre")(inp))  # Hands-On ML's WaveNet
    model = fastrnn.Model(inp, out)
    assert type(model.layers[-1]).__name__ == "Activation"
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), np.maximum(model.layers[1](x), 0))
    assert layers.Dense(1).name == "dense"  # counters were reset
    fastrnn.backend.clear_session()
    assert layers.Dense(1).name == "dense"


def test_summary_counts_moving_statistics_as_non_trainable():
    inp = fastrnn.Input((3,))
    model = fastrnn.Model(inp, layers.Dense(1)(layers.BatchNormalization()(layers.Dense(4)(inp))))
    text = model.summary(print_fn=None)
    # as Keras: 16 + 16 (8 of them moving statistics) + 5
    assert "Total params: 37" in text and "Trainable params: 29" in text
    assert "Non-trainable params: 8" in text


def test_a_deep_graph_is_walked_without_recursion_limits():
    inp = fastrnn.Input((2,))
    x = inp
    for _ in range(1500):  # deeper than Python's default recursion limit
        x = layers.Activation("linear")(x)
    model = fastrnn.Model(inp, x)
    assert len(model.layers) == 1501
    np.testing.assert_array_equal(model.predict(np.ones((1, 2))), np.ones((1, 2)))


def test_only_calls_a_mask_can_reach_take_the_mask_aware_path():
    # Recurrent layers pass masks on but make none: without a mask source in the graph every
    # call runs on the plain path (the training step of a functional chain then costs what a
    # Sequential's does); after Embedding(mask_zero=True) the calls downstream are mask-aware.
    inp = fastrnn.Input((None, 1))
    h = layers.SimpleRNN(5, return_sequences=True)(inp)
    h = layers.LSTM(4, return_sequences=True)(h)
    h = layers.TimeDistributed(layers.Dense(3))(h)
    out = layers.GRU(2)(layers.LayerNormalization()(h))
    plain = fastrnn.Model(inp, out)
    assert [s.simple for s in plain._graph.steps] == [True] * 5

    ids = fastrnn.Input((None,), dtype="int64")
    e = layers.Embedding(10, 4, mask_zero=True)(ids)
    masked = fastrnn.Model(ids, layers.Dense(1)(layers.LSTM(3)(e)))
    assert [s.masked for s in masked._graph.steps] == [True, True, True]
    x = np.array([[3, 4, 0, 0], [5, 0, 0, 0]])
    y = masked.predict(x)
    np.testing.assert_allclose(y, masked.predict(x[:, :2]), rtol=1e-6, atol=1e-7)
