"""layers.RNN(cell): the built-in cells on the fused kernels (the same numbers as
SimpleRNN/LSTM/GRU), the step-by-step tape path (checked against the fused one and against
float64 finite differences), user cells, masks, states, truncation, saving, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _custom import check_layer_gradients
from fastrnn import layers, ops

CELLS = [(layers.SimpleRNNCell, layers.SimpleRNN, {}), (layers.LSTMCell, layers.LSTM, {}),
         (layers.GRUCell, layers.GRU, {})]


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _randomize(layer, seed=5):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w[...] = rng.normal(scale=0.5, size=w.shape)


@pytest.mark.parametrize("cell_cls,layer_cls,kw", CELLS, ids=["simple", "lstm", "gru"])
def test_rnn_of_a_builtin_cell_is_the_fused_layer(cell_cls, layer_cls, kw):
    rnn = layers.RNN(cell_cls(5, dtype="float64"), return_sequences=True, seed=3)
    ref = layer_cls(5, return_sequences=True, dtype="float64", seed=3)
    x = _x(4, 7, 3)
    y = rnn.forward(x)
    ref.forward(x)
    assert rnn._fused is not None
    assert rnn.weight_names == [f"{rnn.cell.name}/{n}" for n in ref.weight_names]
    for a, b in zip(rnn.get_weights(), ref.get_weights()):  # the same seed, the same draws
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(y, ref.forward(x))
    assert rnn.cell.kernel.value is rnn.weights[0]  # the cell owns the weights


@pytest.mark.parametrize("cell_cls,layer_cls,kw", CELLS, ids=["simple", "lstm", "gru"])
@pytest.mark.parametrize("options", [
    {"return_sequences": True},
    {"return_sequences": False, "go_backwards": True},
    {"return_sequences": True, "mask": True, "initial_state": True},
    {"return_sequences": True, "truncate_bptt": 3},
    {"return_sequences": False, "return_state": True, "mask": True},
    {"return_sequences": True, "zero_output_for_mask": True, "mask": True},
], ids=["seq", "back", "mask-h0", "tbptt", "state", "zero-mask"])
def test_step_path_equals_fused_path(cell_cls, layer_cls, kw, options):
    """StackedRNNCells([cell]) runs the same cell step by step on the tape."""
    options = dict(options)
    use_mask, use_h0 = options.pop("mask", False), options.pop("initial_state", False)
    fused = layers.RNN(cell_cls(4, dtype="float64"), **options)
    step = layers.RNN(layers.StackedRNNCells([cell_cls(4, dtype="float64")]), **options)
    B, T, F = 3, 8, 2
    x = _x(B, T, F)
    fused.build((T, F))
    step.build((T, F))
    _randomize(fused)
    step.set_weights(fused.get_weights())
    assert fused._fused is not None and step._fused is None
    kwargs = {}
    if use_mask:
        mask = np.ones((B, T), bool)
        mask[0, 5:] = False   # right padding
        mask[1, :2] = False   # left padding
        mask[2, [3, 4]] = False  # holes
        kwargs["mask"] = mask
    n_states = len(fused.cell.state_size) if isinstance(fused.cell.state_size, list) else 1
    if use_h0:
        kwargs["initial_state"] = [_x(B, 4, seed=10 + k) for k in range(n_states)]
    y1 = fused.forward(x, training=True, **kwargs)
    y2 = step.forward(x, training=True, **kwargs)
    outs1 = y1 if isinstance(y1, list) else [y1]
    outs2 = y2 if isinstance(y2, list) else [y2]
    for a, b in zip(outs1, outs2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    d = [_x(*o.shape, seed=20 + k) for k, o in enumerate(outs1)]
    d_arg = d if isinstance(y1, list) else d[0]
    dx1, dx2 = fused.backward(d_arg), step.backward(d_arg)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-10, atol=1e-12)
    for g1, g2 in zip(fused.grads, step.grads):
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
    if use_h0:
        for g1, g2 in zip(fused.initial_state_grads, step.initial_state_grads):
            np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


class MinimalRNNCell(layers.Layer):  # Keras's documentation example
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                initializer="uniform",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = h + ops.matmul(prev_output, self.recurrent_kernel)
        return output, [output]


class PeepholeCell(layers.Layer):
    """Two states of different sizes, a built-in sublayer, softplus and clipping."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, 2]
        self.output_size = units
        self.dense = layers.Dense(units, dtype=kwargs.get("dtype", "float32"))

    def build(self, input_shape):
        self.u = self.add_weight(shape=(self.units, self.units), name="u")
        self.v = self.add_weight(shape=(2, self.units), name="v")

    def call(self, inputs, states):
        h, s = states
        z = ops.tanh(self.dense(inputs) + ops.matmul(h, self.u) + ops.matmul(s, self.v))
        s_new = ops.clip(ops.softplus(s) * 0.5 + ops.mean(z, axis=-1, keepdims=True), -3, 3)
        return z, [z, s_new]


@pytest.mark.parametrize("options", [{}, {"go_backwards": True}, {"return_state": True},
                                     {"mask": True}, {"truncate_bptt": 2}])
def test_user_cell_gradients_match_finite_differences(options):
    options = dict(options)
    kwargs = {}
    if options.pop("mask", False):
        mask = np.ones((2, 5), bool)
        mask[0, 3:] = False
        mask[1, 1] = False
        kwargs["mask"] = mask
    rnn = layers.RNN(PeepholeCell(3, dtype="float64"), return_sequences=True, **options)
    rnn.build((5, 2))
    _randomize(rnn)
    assert rnn.weight_names[:2] == ["peephole_cell/u", "peephole_cell/v"] or \
        rnn.weight_names[0].endswith("/u")
    if options.get("truncate_bptt"):
        # the truncated gradient is not the full one: compare with the full one's pieces
        full = layers.RNN(PeepholeCell(3, dtype="float64"), return_sequences=True)
        full.build((5, 2))
        full.set_weights(rnn.get_weights())
        x = _x(2, 5, 2)
        d = _x(2, 5, 3, seed=4)
        full.forward(x, training=True)
        rnn.forward(x, training=True)
        g_full, g_trunc = full.backward(d), rnn.backward(d)
        np.testing.assert_allclose(g_full[:, 3:], g_trunc[:, 3:], rtol=1e-12)  # last chunk
        assert not np.allclose(g_full[:, :3], g_trunc[:, :3])
        return
    check_layer_gradients(rnn, _x(2, 5, 2), **kwargs)


def test_minimal_cell_in_a_model_trains_saves_and_loads(tmp_path):
    model = fastrnn.Sequential([
        layers.RNN(MinimalRNNCell(8), return_sequences=True, input_shape=[None, 2]),
        layers.RNN([MinimalRNNCell(4), layers.GRUCell(3)]),
        layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    x = _x(16, 6, 2).astype("f4")
    y = x.sum(axis=(1, 2))[:, None]
    h = model.fit(x, y, epochs=8, verbose=0).history["loss"]
    assert h[-1] < h[0]
    assert model.predict(x[:, :4]).shape == (16, 1)  # any length after build
    path = str(tmp_path / "cells.fastrnn")
    model.save(path)
    with pytest.raises(ValueError, match="MinimalRNNCell"):
        fastrnn.load_model(path)
    loaded = fastrnn.load_model(path, custom_objects={"MinimalRNNCell": MinimalRNNCell})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert model.weight_names[0].startswith(model.layers[0].name + "/minimal_rnn_cell")


def test_initial_state_and_return_state_in_a_functional_model():
    inp = fastrnn.Input((None, 3))
    h0 = fastrnn.Input((4,))
    seq, h = layers.RNN(MinimalRNNCell(4), return_sequences=True, return_state=True)(
        inp, initial_state=[h0])
    model = fastrnn.Model([inp, h0], [seq, h])
    x, s = _x(2, 5, 3).astype("f4"), _x(2, 4).astype("f4")
    out_seq, out_h = model.predict([x, s])
    np.testing.assert_allclose(out_seq[:, -1], out_h)
    cell = model.layers[-1].cell
    k, u = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
    state = s
    for t in range(5):
        state = x[:, t] @ k + state @ u
    np.testing.assert_allclose(out_h, state, rtol=1e-5, atol=1e-6)


def test_stateful_rnn_carries_states_between_calls():
    rnn = layers.RNN(MinimalRNNCell(3, dtype="float64"), stateful=True)
    x = _x(2, 6, 2)
    whole = layers.RNN(MinimalRNNCell(3, dtype="float64"))
    whole.build((6, 2))
    rnn.build((None, 2))
    rnn.set_weights(whole.get_weights())
    rnn.forward(x[:, :4])
    np.testing.assert_allclose(rnn.forward(x[:, 4:]), whole.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match="fixed batch size"):
        rnn.forward(x[:1])
    rnn.reset_states()
    np.testing.assert_allclose(rnn.forward(x[:, :4]), whole.forward(x[:, :4]), rtol=1e-12)


def test_gru_cell_reset_before_runs_step_by_step():
    rnn = layers.RNN(layers.GRUCell(3, reset_after=False, dtype="float64"))
    rnn.build((4, 2))
    assert rnn._fused is None and rnn.weights[2].shape == (9,)
    _randomize(rnn)
    check_layer_gradients(rnn, _x(2, 4, 2))


def test_bad_cells():
    class NoState(layers.Layer):
        def call(self, inputs, states):
            return inputs, states

    with pytest.raises(ValueError, match="no `state_size`"):
        layers.RNN(NoState())
    with pytest.raises(ValueError, match="expected a cell"):
        layers.RNN("lstm")

    class BadSize(NoState):
        state_size = 0

    with pytest.raises(ValueError, match="state_size"):
        layers.RNN(BadSize())

    class WrongReturn(NoState):
        state_size = 2

        def call(self, inputs, states):
            return inputs

    with pytest.raises(ValueError, match=r"\(output, new_states\)"):
        layers.RNN(WrongReturn()).forward(np.zeros((1, 3, 2), "f4"))
    with pytest.raises(ValueError, match="positive integer"):
        layers.LSTMCell(0)


def test_cells_config_round_trip():
    for cell in (layers.SimpleRNNCell(3, activation="relu"), layers.LSTMCell(4,
                 unit_forget_bias=False), layers.GRUCell(2, reset_after=False),
                 layers.StackedRNNCells([layers.LSTMCell(2), layers.GRUCell(3)])):
        rnn = layers.RNN(cell, return_sequences=True, go_backwards=True)
        again = layers.deserialize(layers.serialize(rnn))
        assert again.get_config() == rnn.get_config()


def test_bidirectional_rnn_of_cells():
    x = _x(3, 6, 2)
    fused = layers.Bidirectional(layers.RNN(layers.LSTMCell(3, dtype="float64"),
                                            return_sequences=True))
    ref = layers.Bidirectional(layers.LSTM(3, return_sequences=True, dtype="float64"))
    fused.build((6, 2))
    ref.build((6, 2))
    _randomize(fused)
    ref.set_weights(fused.get_weights())
    np.testing.assert_array_equal(fused.forward(x), ref.forward(x))
    own = layers.Bidirectional(layers.RNN(PeepholeCell(2, dtype="float64")), merge_mode="sum")
    own.build((6, 2))
    _randomize(own)
    assert own.weight_names[0].startswith("forward_")
    check_layer_gradients(own, x)
