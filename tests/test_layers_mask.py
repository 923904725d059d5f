"""Masks at the layer level: Masking, Embedding(mask_zero=True), the recurrent layers (both the
fused and the layer-norm path), Bidirectional and TimeDistributed; the compute_mask protocol;
the masked == deleted-steps property per row; and parity with TF-Keras 3 (copied weights,
float64) when tensorflow imports."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.layers import (
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    SimpleRNN,
    TimeDistributed,
)

CELLS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def make_mask(rng, kind: str, B: int, T: int) -> np.ndarray:
    """right/left padding, holes; row 0 full, row 1 one step, row 2 fully masked."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0], lengths[1], lengths[2] = T, 1, 0
    t = np.arange(T)[None, :]
    if kind == "right":
        return t < lengths[:, None]
    if kind == "left":
        return t >= T - lengths[:, None]
    m = rng.uniform(size=(B, T)) < 0.6
    m[0], m[2] = True, False
    return m


def make_layer(cell: str, units: int, seed: int = 0, **kw):
    return CELLS[cell](units, dtype="float64", seed=seed, **kw)


def randomize(layer, rng):
    """Random, non-constant weights (the bias too)."""
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])


# ----------------------------------------------------------------------------- protocol
def test_compute_mask_protocol():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 2))
    x[0, 1] = 0.0
    m = np.ones((3, 4), bool)
    m[1, 2] = False
    assert Masking().compute_mask(x, None).tolist() == np.any(x != 0, axis=-1).tolist()
    assert Masking(mask_value=0.5).compute_mask(np.full((1, 2, 3), 0.5), m).tolist() == [
        [False, False]]
    ids = np.array([[0, 3, 1], [2, 0, 0]])
    np.testing.assert_array_equal(Embedding(5, 2, mask_zero=True).compute_mask(ids, None),
                                  ids != 0)
    assert Embedding(5, 2).compute_mask(ids, m) is None
    for layer in (Dense(2), Dropout(0.3), Activation("tanh"), TimeDistributed(Dense(2))):
        assert layer.supports_masking
        assert layer.compute_mask(x, m) is m
    assert Flatten().compute_mask(x, m) is None
    # every layer that supports masking takes `mask=` in forward (the model may pass it)
    import inspect

    for layer in (Dense(2), Dropout(0.3), Activation("tanh"), TimeDistributed(Dense(2)),
                  Masking(), Embedding(5, 2, mask_zero=True), LSTM(2),
                  Bidirectional(GRU(2))):
        assert layer.supports_masking
        assert "mask" in inspect.signature(layer.forward).parameters
    for cell in CELLS:
        assert make_layer(cell, 2, return_sequences=True).compute_mask(x, m) is m
        assert make_layer(cell, 2).compute_mask(x, m) is None
        n = 2 if cell == "lstm" else 1
        assert make_layer(cell, 2, return_state=True).compute_mask(x, m) == [None] * (1 + n)
        got = make_layer(cell, 2, return_sequences=True, return_state=True).compute_mask(x, m)
        assert got[0] is m and got[1:] == [None] * n
    bi = Bidirectional(LSTM(2, return_sequences=True))
    assert bi.compute_mask(x, m) is m
    assert Bidirectional(LSTM(2)).compute_mask(x, m) is None
    got = Bidirectional(GRU(2, return_sequences=True), merge_mode=None).compute_mask(x, m)
    assert got[0] is m and got[1] is m
    got = Bidirectional(LSTM(2, return_sequences=True, return_state=True)).compute_mask(x, m)
    assert got[0] is m and got[1:] == [None] * 4


def test_masking_layer_forward_backward_and_config():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 3))
    x[0, 1] = 7.0
    x[1, 4] = 7.0
    x[1, 2, 0] = 7.0  # not every feature: kept
    layer = Masking(mask_value=7.0, dtype="float64")
    y = layer.forward(x, training=True)
    keep = np.ones((2, 5), bool)
    keep[0, 1] = keep[1, 4] = False
    np.testing.assert_array_equal(layer.compute_mask(x, None), keep)
    np.testing.assert_array_equal(y, x * keep[..., None])
    d = rng.normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(d), d * keep[..., None])
    again = Masking.from_config(layer.get_config())
    assert again.mask_value == 7.0
    with pytest.raises(TypeError, match="`mask_value`"):
        Masking(mask_value="zero")


def test_embedding_mask_zero_config_and_output_at_padding():
    emb = Embedding(6, 3, mask_zero=True, dtype="float64", seed=1)
    ids = np.array([[0, 2, 5, 0]])
    y = emb.forward(ids)
    np.testing.assert_array_equal(y[0, 0], emb.get_weights()[0][0])  # row 0, as Keras
    assert emb.get_config()["mask_zero"] is True
    assert Embedding.from_config(emb.get_config()).mask_zero


@pytest.mark.parametrize("cell", list(CELLS))
def test_bad_masks_are_named(cell):
    layer = make_layer(cell, 3)
    x = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="`mask`.*\\(2, 4\\)"):
        layer.forward(x, mask=np.ones((2, 5), bool))
    with pytest.raises(TypeError, match="`mask`"):
        layer.forward(x, mask=np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="mask"):
        TimeDistributed(Dense(2)).forward(x, mask=np.ones((2, 3), bool))


# ----------------------------------------------------------------------------- deleted steps
def run_layer(layer, x, mask, d_out):
    y = layer.forward(x, training=True, mask=mask)
    d_x = layer.backward(d_out)
    return y, d_x, [g.copy() for g in layer.grads]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("kind", ["right", "left", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "back"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["fused", "ln"])
def test_masked_layer_equals_deleted_steps_per_row(cell, kind, go_backwards, layer_norm):
    rng = np.random.default_rng(5)
    B, T, F, H = 5, 7, 3, 4
    layer = make_layer(cell, H, go_backwards=go_backwards, layer_norm=layer_norm)
    layer.build((None, F))
    randomize(layer, rng)
    x = rng.normal(size=(B, T, F))
    m = make_mask(rng, kind, B, T)
    d_out = rng.normal(size=(B, H))
    y, d_x, grads = run_layer(layer, x, m, d_out)
    assert np.all(np.isfinite(y)) and np.all(y[2] == 0.0)  # the fully masked row: zeros
    assert np.all(d_x[~m] == 0.0)  # no gradient reaches a masked step
    total = [np.zeros_like(g) for g in grads]
    for b in range(B):
        keep = m[b]
        y_b, d_x_b, g_b = run_layer(layer, x[b:b + 1, keep], None, d_out[b:b + 1])
        np.testing.assert_allclose(y[b:b + 1], y_b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d_x[b:b + 1, keep], d_x_b, rtol=1e-9, atol=1e-12)
        total = [t + g for t, g in zip(total, g_b)]
    for g, t in zip(grads, total):
        np.testing.assert_allclose(g, t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
def test_return_sequences_repeats_the_last_unmasked_output(cell):
    rng = np.random.default_rng(2)
    layer = make_layer(cell, 3, return_sequences=True)
    x = rng.normal(size=(4, 6, 2))
    m = make_mask(rng, "holes", 4, 6)
    m[3] = [False, False, True, False, True, False]
    y = layer.forward(x, mask=m)
    for b in range(4):
        last = np.zeros(3)
        for t in range(6):
            if m[b, t]:
                last = y[b, t]
            else:
                np.testing.assert_array_equal(y[b, t], last)
    # with zero_output_for_mask, zeros at every masked step, the same elsewhere
    layer.zero_output_for_mask = True
    z = layer.forward(x, mask=m)
    np.testing.assert_array_equal(z[m], y[m])
    assert np.all(z[~m] == 0.0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_initial_state_is_kept_but_not_output_before_the_first_step(cell):
    """Keras: state h0 carried over leading masked steps, but the outputs there are zeros (and
    get no gradient); a fully masked row returns its initial state as state, zeros as output."""
    rng = np.random.default_rng(3)
    H = 3
    n = 2 if cell == "lstm" else 1
    layer = make_layer(cell, H, return_sequences=True, return_state=True)
    x = rng.normal(size=(3, 5, 2))
    m = make_mask(rng, "left", 3, 5)
    h0 = [rng.normal(size=(3, H)) for _ in range(n)]
    y, *states = layer.forward(x, training=True, initial_state=h0, mask=m)
    lead = ~np.logical_or.accumulate(m, axis=1)
    assert np.all(y[lead] == 0.0)
    np.testing.assert_array_equal(states[0][2], h0[0][2])
    d_y = rng.normal(size=y.shape)
    layer.backward([d_y] + [None] * n)
    d_h0 = layer.initial_state_grads[0]
    d_y2 = d_y.copy()
    d_y2[lead] += 100.0  # gradients at outputs Keras zeroes change nothing
    layer.forward(x, training=True, initial_state=h0, mask=m)
    layer.backward([d_y2] + [None] * n)
    np.testing.assert_allclose(layer.initial_state_grads[0], d_h0, rtol=1e-12)
    last = make_layer(cell, H)
    last.build((None, 2))
    last.set_weights(layer.get_weights())
    out = last.forward(x, initial_state=h0, mask=m)
    assert np.all(out[2] == 0.0)


def test_embedding_row_zero_gets_no_gradient_from_padding():
    rng = np.random.default_rng(4)
    emb = Embedding(7, 3, mask_zero=True, dtype="float64", seed=0)
    lstm = LSTM(4, dtype="float64", seed=1)
    ids = rng.integers(1, 7, size=(5, 6))
    ids[:, 4:] = 0
    ids[1, :2] = 0
    e = emb.forward(ids, training=True)
    mask = emb.compute_mask(ids, None)
    lstm.forward(e, training=True, mask=mask)
    emb.backward(lstm.backward(rng.normal(size=(5, 4))))
    d_emb = emb.grads[0]
    assert np.all(d_emb[0] == 0.0)
    assert np.all(np.any(d_emb[1:] != 0.0, axis=1)[np.unique(ids[ids > 0]) - 1])


def test_stateful_masked_batches_carry_the_masked_state():
    rng = np.random.default_rng(6)
    layer = make_layer("gru", 3, stateful=True)
    layer.build((None, 2))
    x = rng.normal(size=(2, 8, 2))
    m = make_mask(rng, "holes", 3, 8)[:2]
    m[1, 3:5] = False
    whole = make_layer("gru", 3)
    whole.build((None, 2))
    whole.set_weights(layer.get_weights())
    want = whole.forward(x, mask=m)
    layer.forward(x[:, :4], mask=m[:, :4])
    got = layer.forward(x[:, 4:], mask=m[:, 4:])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_truncated_bptt_with_a_mask_matches_the_kernels_rule():
    """truncate_bptt counts steps, masked or not: the fused and the layer-norm-free reference
    path (fastrnn.reference) agree."""
    from fastrnn import reference as ref

    rng = np.random.default_rng(7)
    layer = make_layer("lstm", 3, truncate_bptt=2, return_sequences=True)
    layer.build((6, 2))
    randomize(layer, rng)
    x = rng.normal(size=(3, 6, 2))
    m = make_mask(rng, "holes", 3, 6)
    d_y = rng.normal(size=(3, 6, 3)) * m[..., None]
    layer.forward(x, training=True, mask=m)
    d_x = layer.backward(d_y)
    k, u, b = layer.get_weights()
    out, _, _, tape = ref.lstm_forward(x, None, None, k, u, b, mask=m)
    g = ref.lstm_backward(tape, d_y, truncate=2)
    np.testing.assert_allclose(d_x, g["x"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[1], g["recurrent_kernel"], rtol=1e-10, atol=1e-12)


def test_dropout_and_recurrent_dropout_with_a_mask_are_finite_and_skip_masked_steps():
    rng = np.random.default_rng(8)
    layer = make_layer("lstm", 4, dropout=0.3, recurrent_dropout=0.3, return_sequences=True)
    x = rng.normal(size=(5, 6, 3))
    m = make_mask(rng, "right", 5, 6)
    y = layer.forward(x, training=True, mask=m)
    d_x = layer.backward(rng.normal(size=y.shape))
    assert np.all(np.isfinite(y)) and np.all(d_x[~m] == 0.0)


def test_bidirectional_each_direction_sees_only_unmasked_steps():
    rng = np.random.default_rng(9)
    bi = Bidirectional(GRU(3, dtype="float64", seed=0), dtype="float64")
    bi.build((None, 2))
    x = rng.normal(size=(4, 6, 2))
    m = make_mask(rng, "holes", 4, 6)
    y = bi.forward(x, training=True, mask=m)
    d_x = bi.backward(rng.normal(size=y.shape))
    assert np.all(d_x[~m] == 0.0)
    for b in (0, 1, 3):
        row = bi.forward(x[b:b + 1, m[b]])
        np.testing.assert_allclose(y[b:b + 1], row, rtol=1e-10, atol=1e-12)
    assert np.all(y[2] == 0.0)
    seq = Bidirectional(LSTM(3, dtype="float64", seed=0, return_sequences=True),
                        dtype="float64")
    ys = seq.forward(x, mask=m)
    assert np.all(ys[~m] == 0.0)  # zero_output_for_mask, as Keras sets it


def test_time_distributed_passes_the_mask_on():
    td = TimeDistributed(Dense(2, dtype="float64"), dtype="float64")
    x = np.ones((2, 3, 4))
    m = np.array([[True, False, True], [False, False, True]])
    y = td.forward(x, mask=m)
    assert y.shape == (2, 3, 2)
    assert td.compute_mask(x, m) is m


# ----------------------------------------------------------------------------- TF-Keras
def keras_or_skip():
    pytest.importorskip("tensorflow")
    import keras

    return keras


def keras_rnn(keras, cell: str, units: int, **kw):
    cls = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
           "gru": keras.layers.GRU}[cell]
    return cls(units, dtype="float64", **kw)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "back"])
@pytest.mark.parametrize("kind", ["right", "left", "holes"])
def test_embedding_mask_zero_rnn_matches_keras(cell, return_sequences, go_backwards, kind):
    keras = keras_or_skip()
    import tensorflow as tf

    rng = np.random.default_rng(10)
    B, T, V, E, H = 5, 6, 9, 3, 4
    m = make_mask(rng, kind, B, T)
    ids = np.where(m, rng.integers(1, V, size=(B, T)), 0)
    emb = Embedding(V, E, mask_zero=True, dtype="float64", seed=0)
    rnn = make_layer(cell, H, return_sequences=return_sequences, go_backwards=go_backwards)
    rnn.build((T, E))
    randomize(rnn, rng)
    emb.build((T,))
    emb.set_weights([rng.normal(size=(V, E))])
    e = emb.forward(ids, training=True)
    y = rnn.forward(e, training=True, mask=emb.compute_mask(ids, None))
    d_y = rng.normal(size=y.shape)
    emb.backward(rnn.backward(d_y))

    k_emb = keras.layers.Embedding(V, E, mask_zero=True, dtype="float64")
    k_rnn = keras_rnn(keras, cell, H, return_sequences=return_sequences,
                      go_backwards=go_backwards)
    k_ids = tf.constant(ids)
    k_rnn(k_emb(k_ids), mask=k_emb.compute_mask(k_ids))  # builds both
    k_emb.set_weights(emb.get_weights())
    k_rnn.set_weights(rnn.get_weights())

    variables = k_emb.trainable_variables + k_rnn.trainable_variables
    with tf.GradientTape() as tape:
        out = k_rnn(k_emb(k_ids), mask=k_emb.compute_mask(k_ids))
        total = tf.reduce_sum(out * d_y)
    grads = tape.gradient(total, variables)
    np.testing.assert_allclose(y, out.numpy(), rtol=1e-9, atol=1e-11)
    ours = emb.grads + rnn.grads
    for g_ours, g_keras, v in zip(ours, grads, variables):
        g_keras = tf.convert_to_tensor(g_keras).numpy()
        np.testing.assert_allclose(g_ours, g_keras, rtol=1e-8, atol=1e-10, err_msg=v.name)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "back"])
def test_masking_rnn_with_initial_state_and_return_state_matches_keras(
    cell, return_sequences, go_backwards
):
    """Masking -> RNN with an initial state (so Keras's zeros before the first unmasked step
    differ from the carried state) and return_state, holes and a fully masked row."""
    keras = keras_or_skip()
    import tensorflow as tf

    rng = np.random.default_rng(11)
    B, T, F, H = 5, 6, 3, 4
    n = 2 if cell == "lstm" else 1
    m = make_mask(rng, "holes", B, T)
    m[3, :2] = False  # a row with leading masked steps
    x = rng.normal(size=(B, T, F)) * m[..., None]
    s0 = [rng.normal(size=(B, H)) for _ in range(n)]
    masking = Masking(dtype="float64")
    rnn = make_layer(cell, H, return_sequences=return_sequences, return_state=True,
                     go_backwards=go_backwards)
    rnn.build((T, F))
    randomize(rnn, rng)
    xm = masking.forward(x, training=True)
    y, *states = rnn.forward(xm, training=True, initial_state=s0,
                             mask=masking.compute_mask(x, None))
    d_y, d_h = rng.normal(size=y.shape), rng.normal(size=states[0].shape)
    rnn.backward([d_y, d_h] + [None] * (n - 1))

    k_masking = keras.layers.Masking(dtype="float64")
    k_rnn = keras_rnn(keras, cell, H, return_sequences=return_sequences, return_state=True,
                      go_backwards=go_backwards)
    xt = tf.constant(x)
    k_s0 = [tf.constant(s) for s in s0]
    k_mask = k_masking.compute_mask(xt)  # passed explicitly: eager calls may not carry it
    k_rnn(k_masking(xt), initial_state=k_s0, mask=k_mask)
    k_rnn.set_weights(rnn.get_weights())
    with tf.GradientTape() as tape:
        tape.watch(k_s0)
        k_y, *k_states = k_rnn(k_masking(xt), initial_state=k_s0, mask=k_mask)
        total = tf.reduce_sum(k_y * d_y) + tf.reduce_sum(k_states[0] * d_h)
    grads = tape.gradient(total, k_rnn.trainable_variables + k_s0)
    for ours, theirs in zip([y, *states], [k_y, *k_states]):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-11)
    for ours, theirs in zip(rnn.grads + rnn.initial_state_grads, grads):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_masked_matches_keras(cell, return_sequences, merge_mode):
    keras = keras_or_skip()
    import tensorflow as tf

    rng = np.random.default_rng(12)
    B, T, F, H = 5, 6, 3, 4
    m = make_mask(rng, "holes", B, T)
    x = rng.normal(size=(B, T, F))
    bi = Bidirectional(make_layer(cell, H, return_sequences=return_sequences),
                       merge_mode=merge_mode, dtype="float64")
    bi.build((T, F))
    for inner in bi._sublayers:
        randomize(inner, rng)
    y = bi.forward(x, training=True, mask=m)
    d_y = rng.normal(size=y.shape)
    d_x = bi.backward(d_y)

    k_bi = keras.layers.Bidirectional(
        keras_rnn(keras, cell, H, return_sequences=return_sequences), merge_mode=merge_mode,
        dtype="float64")
    xt, mt = tf.constant(x), tf.constant(m)
    k_bi(xt, mask=mt)
    k_bi.set_weights(bi.get_weights())
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = k_bi(xt, mask=mt)
        total = tf.reduce_sum(out * d_y)
    grads = tape.gradient(total, k_bi.trainable_variables + [xt])
    np.testing.assert_allclose(y, out.numpy(), rtol=1e-9, atol=1e-11)
    for ours, theirs in zip(bi.grads + [d_x], grads):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-8, atol=1e-10)


def test_bidirectional_return_state_masked_matches_keras():
    keras = keras_or_skip()
    import tensorflow as tf

    rng = np.random.default_rng(13)
    B, T, F, H = 5, 6, 3, 4
    m = make_mask(rng, "left", B, T)
    x = rng.normal(size=(B, T, F))
    bi = Bidirectional(make_layer("lstm", H, return_sequences=True, return_state=True),
                       dtype="float64")
    bi.build((T, F))
    for inner in bi._sublayers:
        randomize(inner, rng)
    got = bi.forward(x, mask=m)
    k_bi = keras.layers.Bidirectional(
        keras_rnn(keras, "lstm", H, return_sequences=True, return_state=True), dtype="float64")
    xt, mt = tf.constant(x), tf.constant(m)
    k_bi(xt, mask=mt)
    k_bi.set_weights(bi.get_weights())
    want = k_bi(xt, mask=mt)
    assert len(got) == len(want) == 5
    for ours, theirs in zip(got, want):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-11)
