"""model.stepper(): a whole model stepped one time step at a time must give, at step t, what
predict gives on the window x[:, :t + 1] (Sequential and functional chains, all three cells)."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _tolerance import assert_within, rounding_rtol
from fastrnn import layers, ops

CELLS = {"SimpleRNN": layers.SimpleRNN, "LSTM": layers.LSTM, "GRU": layers.GRU}
TOL = {np.float32: 1e-5, np.float64: 1e-10}


def _randomize(model, seed):
    """Random, non-constant weights (biases too, which the initializers leave at zero)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape) for w in model.get_weights()])


def _deep(cell, H, features, dtype, functional, head="last"):
    """cell(H, seq) -> Dropout -> cell(H2, seq) -> cell(H3[, seq]) -> head, a deep stack."""
    kw = {"dtype": np.dtype(dtype).name}
    c = CELLS[cell]
    act = {"activation": "relu"} if cell == "SimpleRNN" and H == 7 else {}
    first = {} if functional else {"input_shape": (None, features)}
    body = [c(H, return_sequences=True, **first, **act, **kw), layers.Dropout(0.3, **kw),
            c(H + 2, return_sequences=True, **kw), c(3, return_sequences=head != "last", **kw)]
    if head == "last":  # a recurrent layer returning its last state, then Dense layers
        body += [layers.Dense(4, activation="tanh", **kw), layers.Dense(1, **kw)]
    else:  # sequence to sequence: TimeDistributed(Dense) and Dense on (B, T, F)
        body += [layers.TimeDistributed(layers.Dense(5, activation="sigmoid", **kw)),
                 layers.Dense(2, activation="softmax", **kw)]
    if functional:
        x = inp = fastrnn.Input((None, features), dtype=kw["dtype"])
        for layer in body:
            x = layer(x)
        model = fastrnn.Model(inp, x)
    else:
        # (input_shape, not fastrnn.Input: a Sequential's InputLayer is float32 and rounds
        # float64 inputs through float32 in predict)
        model = fastrnn.Sequential(body)
        model.build()
    _randomize(model, H * 7 + features)
    return model


def _stream(stepper, x):
    return np.stack([stepper.step(x[:, t]) for t in range(x.shape[1])], axis=1)


def _windows(model, x):
    """predict on x[:, :t + 1] for every t, stacked on a time axis."""
    return np.stack([model.predict(x[:, :t + 1]) for t in range(x.shape[1])], axis=1)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", [(1, 1), (3, 7), (1, 33)])
def test_steps_equal_predict_on_growing_windows(cell, functional, dtype, B, H):
    model = _deep(cell, H, 2, dtype, functional)
    x = np.random.default_rng(B + H).standard_normal((B, 6, 2)).astype(dtype)
    stepper = model.stepper(batch_size=B)
    got = _stream(stepper, x)
    assert got.dtype == dtype and got.shape == (B, 6, 1)
    np.testing.assert_allclose(got, _windows(model, x), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequence_to_sequence_steps_equal_predict(cell, functional, dtype):
    model = _deep(cell, 7, 3, dtype, functional, head="sequence")
    x = np.random.default_rng(5).standard_normal((3, 8, 3)).astype(dtype)
    got = _stream(model.stepper(batch_size=3), x)
    np.testing.assert_allclose(got, model.predict(x), rtol=TOL[dtype], atol=TOL[dtype])
    # and the window view: step t is the last output of predict on x[:, :t + 1]
    np.testing.assert_allclose(got[:, 2], model.predict(x[:, :3])[:, -1], rtol=TOL[dtype],
                               atol=TOL[dtype])


def test_mixed_stack_and_nested_chain_model():
    """LSTM -> GRU -> SimpleRNN(linear) with Activation layers, with a Sequential nested in a
    functional model."""
    inner = fastrnn.Sequential([layers.GRU(5, return_sequences=True),
                                layers.Activation("swish")])
    inp = fastrnn.Input((None, 4), dtype="float64")
    y = layers.LSTM(6, return_sequences=True, dtype="float64")(inp)
    inner_f64 = fastrnn.Sequential([layers.GRU(5, return_sequences=True, dtype="float64"),
                                    layers.Activation("swish", dtype="float64")])
    y = inner_f64(y)
    y = layers.SimpleRNN(3, activation="linear", dtype="float64")(y)
    y = layers.Dense(2, activation="elu", dtype="float64")(y)
    model = fastrnn.Model(inp, y)
    _randomize(model, 11)
    del inner
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    got = _stream(model.stepper(batch_size=2), x)
    np.testing.assert_allclose(got, _windows(model, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softmax", "elu", "selu",
                                        "softplus", "softsign", "swish", "exponential",
                                        "linear"])
def test_dense_activations(activation):
    model = fastrnn.Sequential([layers.LSTM(4, dtype="float64", input_shape=(None, 2)),
                                layers.Dense(3, activation=activation, use_bias=False,
                                             dtype="float64")])
    model.build()
    _randomize(model, 3)
    x = np.random.default_rng(2).standard_normal((3, 4, 2)) * 3
    got = _stream(model.stepper(batch_size=3), x)
    np.testing.assert_allclose(got, _windows(model, x), rtol=1e-10, atol=1e-10)


def _jena(dtype=np.float32):
    model = fastrnn.Sequential([layers.LSTM(16, dtype=dtype, input_shape=(None, 14)),
                                layers.Dense(1, dtype=dtype)])
    model.build()
    _randomize(model, 0)
    return model


def test_reset_states_and_copies():
    model = _jena()
    x = np.random.default_rng(0).standard_normal((2, 7, 14)).astype(np.float32)
    s = model.stepper(batch_size=2)
    assert s.batch_size == 2
    first = _stream(s, x)
    states = s.states
    assert len(states) == 1 and [a.shape for a in states[0]] == [(2, 16), (2, 16)]
    states[0][0][:] = 99.0  # a copy: the stepper is unchanged
    later = _stream(s, x[:, :3])
    s.reset()
    assert all(not a.any() for a in s.states[0])
    np.testing.assert_array_equal(_stream(s, x), first)  # from zeros again
    # reset(states=...) continues from a given state as if never interrupted
    s.reset()
    _stream(s, x)
    saved = s.states
    s.reset()
    s.reset(states=saved)
    np.testing.assert_array_equal(_stream(s, x[:, :3]), later)


def test_states_after_steps_equal_the_layers_last_state():
    model = _jena(np.float64)
    x = np.random.default_rng(4).standard_normal((3, 5, 14))
    s = model.stepper(batch_size=3)
    _stream(s, x)
    lstm = layers.LSTM(16, return_state=True, dtype="float64")
    lstm.build((None, 14))
    lstm.set_weights(model.layers[0].get_weights())
    _, h, c = lstm.forward(x)
    np.testing.assert_allclose(s.states[0][0], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.states[0][1], c, rtol=1e-12, atol=1e-12)


def test_out_argument_is_written_and_returned():
    model = _jena()
    s = model.stepper()
    out = np.empty((1, 1), np.float32)
    x = np.ones((1, 14), np.float32)
    assert s.step(x, out=out) is out
    s.reset()
    np.testing.assert_array_equal(s.step(x), out)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_give_the_same_outputs(threads):
    """A batch big enough to be split over the threads (rows per thread through all stages)."""
    model = fastrnn.Sequential([fastrnn.Input((None, 8)),
                                layers.LSTM(96, return_sequences=True),
                                layers.GRU(64), layers.Dense(3)])
    model.build()
    _randomize(model, 9)
    x = np.random.default_rng(3).standard_normal((64, 4, 8)).astype(np.float32) * 0.3
    before = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(threads)
        got = _stream(model.stepper(batch_size=64), x)
    finally:
        fastrnn.set_num_threads(before)
    np.testing.assert_allclose(got, _windows(model, x), rtol=1e-5, atol=1e-5)


def test_stepper_is_a_snapshot_of_the_weights():
    model = _jena()
    model.compile(optimizer=fastrnn.optimizers.Adam(learning_rate=0.05), loss="mse")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 5, 14)).astype(np.float32)
    s = model.stepper(batch_size=32)
    before = _stream(s, x)
    model.fit(x, rng.standard_normal((32, 1)).astype(np.float32), epochs=2, verbose=0)
    s.reset()
    np.testing.assert_array_equal(_stream(s, x), before)  # the old stepper is unchanged
    fresh = _stream(model.stepper(batch_size=32), x)
    assert np.abs(fresh - before).max() > 1e-3  # the model itself did change
    np.testing.assert_allclose(fresh, _windows(model, x), rtol=1e-5, atol=1e-5)


def test_nan_input_streams_nan_without_crashing():
    s = _jena().stepper()
    x = np.full((1, 14), np.nan, np.float32)
    assert np.isnan(s.step(x)).all()
    assert np.isnan(s.step(np.zeros((1, 14), np.float32))).all()  # the state carries it
    s.reset()
    assert np.isfinite(s.step(np.zeros((1, 14), np.float32))).all()


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("x,error,match", [
    (np.zeros((2, 14), np.float32), ValueError, r"expected shape \(1, 14\).*got \(2, 14\)"),
    (np.zeros((1, 13), np.float32), ValueError, r"expected shape \(1, 14\)"),
    (np.zeros((1, 1, 14), np.float32), ValueError, r"argument `x`"),
    (np.zeros(14, np.float32), ValueError, r"argument `x`"),
    (np.zeros((1, 14), np.int64), TypeError, r"argument `x`.*int64"),
    (np.zeros((1, 14), bool), TypeError, r"argument `x`"),
    (np.array([["a"] * 14]), TypeError, r"argument `x`"),
])
def test_bad_step_input(x, error, match):
    s = _jena().stepper()
    with pytest.raises(error, match=match):
        s.step(x)


def test_step_converts_other_floats_and_views():
    s = _jena().stepper()
    x = np.random.default_rng(0).standard_normal((1, 28))
    a = s.step(x[:, ::2])  # float64, not contiguous
    s.reset()
    np.testing.assert_array_equal(a, s.step(np.ascontiguousarray(x[:, ::2], np.float32)))


def test_bad_out_and_batch_size():
    model = _jena()
    s = model.stepper()
    x = np.zeros((1, 14), np.float32)
    with pytest.raises(ValueError, match="argument `out`"):
        s.step(x, out=np.empty((1, 2), np.float32))
    with pytest.raises(ValueError, match="argument `out`"):
        s.step(x, out=np.empty((1, 1), np.float64))
    ro = np.empty((1, 1), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="argument `out`.*writeable"):
        s.step(x, out=ro)
    dense = ops.ModelStepper([("dense", "linear", np.ones((3, 3)), None, np.ones(3))], 2,
                             np.float64)
    xy = np.ones((2, 3))
    with pytest.raises(ValueError, match="argument `out`: must not overlap `x`"):
        dense.step(xy, out=xy)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="argument `batch_size`"):
            model.stepper(batch_size=bad)


def test_bad_states():
    s = _jena().stepper(batch_size=2)
    good = s.states
    with pytest.raises(ValueError, match="argument `states`"):
        s.reset(states=[])
    with pytest.raises(ValueError, match=r"argument `states\[0\]`"):
        s.reset(states=[[good[0][0]]])
    with pytest.raises(ValueError, match=r"states\[1\]"):
        s.reset(states=[[good[0][0] + 1, np.zeros((3, 16))]])
    with pytest.raises(TypeError, match=r"states\[0\]\[0\]"):
        s.reset(states=[[np.zeros((2, 16), int), good[0][1]]])
    assert all(not a.any() for a in s.states[0])  # nothing changed by the failed calls


def _refused(model, match):
    with pytest.raises(ValueError, match=match):
        model.stepper()


@pytest.mark.parametrize("make,match", [
    (lambda: [layers.Bidirectional(layers.LSTM(3))], r"`bidirectional.*Bidirectional.*end"),
    (lambda: [layers.LSTM(3, go_backwards=True)], r"LSTM.*go_backwards"),
    (lambda: [layers.Masking(), layers.LSTM(3)], r"Masking.*mask"),
    (lambda: [layers.Conv1D(2, 3), layers.LSTM(3)],
     r"Conv1D.*padding='valid'.*steps t \.\. t \+ 2.*only padding='causal' streams"),
    (lambda: [layers.Conv1D(2, 3, padding="same"), layers.LSTM(3)],
     r"Conv1D.*padding='same'.*steps after t.*only padding='causal'"),
    (lambda: [layers.Conv1D(2, 3, strides=2, padding="causal"), layers.LSTM(3)],
     r"Conv1D.*strides=2 gives one output every 2 input steps.*only strides=1"),
    (lambda: [layers.LSTM(3, return_sequences=True), layers.GlobalAveragePooling1D()],
     r"GlobalAveragePooling1D.*whole time axis"),
    (lambda: [layers.LSTM(3, return_sequences=True), layers.MaxPooling1D()],
     r"MaxPooling1D"),
    (lambda: [layers.LSTM(4, return_sequences=True), layers.GroupNormalization(2)],
     r"GroupNormalization.*whole time axis"),
    (lambda: [layers.LSTM(4, return_sequences=True), layers.UnitNormalization(axis=1)],
     r"UnitNormalization.*axis=1.*over the features"),
    (lambda: [layers.LSTM(4, return_sequences=True), layers.PReLU()],
     r"PReLU.*alpha \(6, 4\) has a slope per time step.*shared_axes=\[1\]"),
    (lambda: [layers.LSTM(4, return_sequences=True), layers.Softmax(axis=1)],
     r"Softmax.*axis=1.*features"),
    (lambda: [layers.Normalization(axis=None, mean=1.0, variance=2.0), layers.LSTM(3)],
     r"Normalization.*axis=None.*per feature"),
    (lambda: [layers.TimeDistributed(layers.Flatten())], r"TimeDistributed.*wraps a Flatten"),
    (lambda: [layers.LSTM(3, return_sequences=True), layers.Dense(2, activation="gelu")],
     r"Dense.*activation 'gelu' is not one the stepper computes"),
])
def test_refused_layers_name_the_layer_and_why(make, match):
    model = fastrnn.Sequential([fastrnn.Input((6, 2))] + make())
    model.build()
    _refused(model, match)


def test_refused_models():
    _refused(fastrnn.Sequential([fastrnn.Input((6, 2)), layers.Flatten(), layers.Dense(1)]),
             r"Flatten.*time axis")
    _refused(fastrnn.Sequential([fastrnn.Input((3,)), layers.Dense(1)]),
             r"not \(batch, time, features\)")
    _refused(fastrnn.Sequential([layers.LSTM(3)]), r"not been built")
    emb = fastrnn.Sequential([fastrnn.Input((None,), dtype="int32"),
                              layers.Embedding(10, 4, mask_zero=True), layers.LSTM(3)])
    _refused(emb, r"Embedding.*mask")
    _refused(fastrnn.Sequential([fastrnn.Input((None, 2)), layers.LSTM(3, return_sequences=True),
                                 layers.Embedding(10, 4)]), r"Embedding.*first layer")
    a, b = fastrnn.Input((None, 2)), fastrnn.Input((None, 2))
    _refused(fastrnn.Model([a, b], layers.LSTM(3)(layers.Add()([a, b]))), r"2 inputs")
    x = fastrnn.Input((None, 2))
    h = layers.LSTM(3, return_sequences=True)(x)
    _refused(fastrnn.Model(x, [h, layers.GRU(3, return_sequences=True)(x)]),
             r"1 inputs and 2 outputs.*one input and gives one output")
    out, state_h, state_c = layers.LSTM(3, return_state=True)(x)
    _refused(fastrnn.Model(x, out), r"several tensors")


def test_ops_model_stepper_checks_its_stages():
    k = np.zeros((2, 4), np.float32)
    u = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match="argument `stages`"):
        ops.ModelStepper([])
    with pytest.raises(ValueError, match=r"stages\[0\]"):
        ops.ModelStepper([("lstm", "tanh", k)])
    with pytest.raises(ValueError, match="unknown stage kind 'conv'"):
        ops.ModelStepper([("conv", "tanh", k, u, None)])
    with pytest.raises(ValueError, match=r"stages\[0\].kernel.*\(2, 4\).*\(2, 5\)"):
        ops.ModelStepper([("lstm", "tanh", np.zeros((2, 5), np.float32), u, None)])
    with pytest.raises(ValueError, match=r"stage 1: takes 3 features, the stage before gives 1"):
        ops.ModelStepper([("lstm", "tanh", k, u, None),
                          ("dense", "linear", np.zeros((3, 1), np.float32), None, None)])
    with pytest.raises(ValueError, match="LSTM and GRU use 'tanh'"):
        ops.ModelStepper([("lstm", "relu", k, u, None)])
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        ops.ModelStepper([("lstm", "tanh", k, u, None),
                          ("dense", "gelu", np.zeros((1, 1), np.float32), None, None)])
    with pytest.raises(TypeError, match=r"stages\[0\].kernel"):
        ops.ModelStepper([("lstm", "tanh", k.astype(int), u, None)])
    with pytest.raises(TypeError, match="argument `dtype`"):
        ops.ModelStepper([("lstm", "tanh", k, u, None)], dtype=np.int32)
    # the core itself, called without ops's conversions: errors, never a crash
    from fastrnn import _core
    with pytest.raises(ValueError, match=r"stages\[0\].kernel`: expected a NumPy array"):
        _core.ModelStepper([("dense", "linear", [[1.0]], None, None)], 1, "float32")
    with pytest.raises(ValueError, match="argument `dtype`"):
        _core.ModelStepper([("dense", "linear", np.ones((1, 1), np.float32), None, None)], 1,
                           "int8")
    with pytest.raises(ValueError, match="argument `batch_size`"):
        _core.ModelStepper([("dense", "linear", np.ones((1, 1), np.float32), None, None)], 0,
                           "float32")
    core = _core.ModelStepper([("lstm", "tanh", k, u, None)], 2, "float32")
    with pytest.raises(ValueError, match="argument `stage`"):
        core.get_state(1)
    with pytest.raises(ValueError, match=r"argument `x`.*float32"):
        core.step(np.zeros((2, 2)))


@pytest.mark.parametrize("functional", [False, True])
def test_embedding_first_steps_token_ids(functional):
    body = [layers.Embedding(11, 5, dtype="float64"),
            layers.GRU(7, return_sequences=True, dtype="float64"),
            layers.LSTM(4, dtype="float64"), layers.Dense(2, dtype="float64")]
    inp = fastrnn.Input((None,), dtype="int64")
    if functional:
        y = inp
        for layer in body:
            y = layer(y)
        model = fastrnn.Model(inp, y)
    else:
        model = fastrnn.Sequential([inp] + body)
        model.build()
    _randomize(model, 8)
    ids = np.random.default_rng(0).integers(0, 11, (3, 6))
    s = model.stepper(batch_size=3)
    got = np.stack([s.step(ids[:, t]) for t in range(6)], axis=1)
    want = np.stack([model.predict(ids[:, :t + 1]) for t in range(6)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    before = s.states
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 11\), got 11"):
        s.step(np.array([0, 11, 2]))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 11\), got -1"):
        s.step(np.array([-1, 1, 2]))
    with pytest.raises(TypeError, match="integer token ids"):
        s.step(np.zeros(3))
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        s.step(ids[:, :2])
    for a, b in zip(sum(s.states, []), sum(before, [])):  # the failed steps changed nothing
        np.testing.assert_array_equal(a, b)


def test_python_threads_step_steppers_at_once():
    """The GIL is released during a step: steppers stepped from several Python threads at once
    (two sharing one stepper, serialised by its lock) still give predict's outputs."""
    import threading

    model = _jena(np.float64)
    x = np.random.default_rng(12).standard_normal((4, 30, 14))
    want = model.predict(x)
    got: dict = {}
    shared = model.stepper(batch_size=4)

    def run(key, stepper):
        for t in range(30):
            y = stepper.step(x[:, t])
        got[key] = y

    workers = [threading.Thread(target=run, args=(k, model.stepper(batch_size=4)))
               for k in range(3)]
    workers.append(threading.Thread(target=lambda: [shared.step(x[:, 0]) for _ in range(50)]))
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for k in range(3):
        np.testing.assert_allclose(got[k], want, rtol=1e-10, atol=1e-10)
    assert np.isfinite(shared.states[0][0]).all()


# -- normalization, layer-normalized cells, causal convolutions, branches --------------------
# These models are compared with predict on the whole sequence: a return_sequences model at
# every step, the others at the last. The bound is _tolerance's: each stage of a step sums at
# most `terms` products, and an error made at one step is carried through the layers of every
# later step (`steps` = T times the stages).
def _rtol(dtype, terms, T, stages):
    return rounding_rtol(dtype, terms=terms, steps=T * stages)


def _model(body, features, functional, dtype):
    """`body` (a list of layers) after an input of (B, T, features), Sequential or functional;
    weights random, BatchNormalization's moving variance positive."""
    if functional:
        x = inp = fastrnn.Input((None, features), dtype=np.dtype(dtype).name)
        for layer in body:
            x = layer(x)
        model = fastrnn.Model(inp, x)
    else:
        model = fastrnn.Sequential(body)
        model.build((None, None, features))
    _randomize(model, features + len(body))
    _positive_variances(model)
    return model


def _positive_variances(model):
    rng = np.random.default_rng(7)
    for layer in _all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            weights = layer.get_weights()  # [gamma,] [beta,] moving_mean, moving_variance
            weights[-1] = rng.uniform(0.3, 2.0, weights[-1].shape)
            layer.set_weights(weights)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _check_streams(model, x, rtol):
    """Steps `model` over x (B, T, F): every step equals predict's (return_sequences) or the
    last step does; then reset / states / reset(states=...) round-trips continue the stream
    exactly."""
    B, T = x.shape[:2]
    s = model.stepper(batch_size=B)
    got = _stream(s, x)
    want = model.predict(x)
    if want.ndim == 3:
        assert_within(got, want, rtol, what="every step")
    else:
        assert_within(got[:, -1], want, rtol, what="last step")
    # a stream cut after 3 steps and continued from its saved states, on a fresh stepper
    # (whose buffers lie elsewhere: a vectorised sum may then round its last bit otherwise)
    s.reset()
    _stream(s, x[:, :3])
    saved = s.states
    rest = _stream(s, x[:, 3:])
    other = model.stepper(batch_size=B)
    other.reset(states=saved)
    assert_within(_stream(other, x[:, 3:]), rest, rtol, what="continued from saved states")
    s.reset()
    np.testing.assert_array_equal(_stream(s, x), got)  # from zeros again, the same buffers
    return got


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 4])
def test_normalization_layers_stream(functional, dtype, B):
    kw = {"dtype": np.dtype(dtype).name}
    body = [layers.LayerNormalization(**kw),  # first: on the model's input
            layers.LSTM(6, return_sequences=True, **kw),
            layers.BatchNormalization(**kw),
            layers.GRU(5, return_sequences=True, **kw),
            layers.LayerNormalization(center=False, epsilon=0.01, **kw),
            layers.BatchNormalization(scale=False, epsilon=0.1, **kw),
            layers.LayerNormalization(scale=False, center=False, **kw),
            layers.Dense(3, activation="tanh", **kw)]
    model = _model(body, 4, functional, dtype)
    x = np.random.default_rng(B).standard_normal((B, 7, 4)).astype(dtype) * 2
    _check_streams(model, x, _rtol(dtype, 6 + 6 + 1, 7, len(body)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalization_after_the_last_state(dtype):
    kw = {"dtype": np.dtype(dtype).name}
    body = [layers.SimpleRNN(5, **kw), layers.BatchNormalization(center=False, **kw),
            layers.LayerNormalization(**kw), layers.Dense(2, **kw)]
    model = _model(body, 3, False, dtype)
    x = np.random.default_rng(3).standard_normal((3, 6, 3)).astype(dtype)
    _check_streams(model, x, _rtol(dtype, 5 + 3 + 1, 6, len(body)))


def test_normalization_stage_options_are_checked():
    g = np.ones(3)
    with pytest.raises(ValueError, match=r"stages\[0\].moving_mean`: required"):
        ops.ModelStepper([("batch_norm", "linear", None, None, None, {"gamma": g})])
    with pytest.raises(ValueError, match=r"stages\[0\].moving_variance.*\(3,\).*\(2,\)"):
        ops.ModelStepper([("batch_norm", "linear", None, None, None,
                           {"moving_mean": g, "moving_variance": np.ones(2)})])
    with pytest.raises(ValueError, match=r"stages\[0\].epsilon`: expected a positive"):
        ops.ModelStepper([("layer_norm", "linear", None, None, None, {"gamma": g,
                                                                      "epsilon": 0.0})])
    with pytest.raises(ValueError, match=r"stage 0: its width is not known"):
        ops.ModelStepper([("layer_norm", "linear", None, None, None, {})])
    with pytest.raises(ValueError, match=r"stage 0: takes 3 features, the input has 2"):
        ops.ModelStepper([("layer_norm", "linear", None, None, None, {"gamma": g})],
                         input_dim=2)
    with pytest.raises(ValueError, match=r"stages\[0\]`: expected \(kind"):
        ops.ModelStepper([("layer_norm", "linear", None, None, None, "epsilon")])
    # a weightless first stage takes its width from input_dim
    s = ops.ModelStepper([("layer_norm", "linear", None, None, None, {"epsilon": 1e-3})],
                         2, np.float64, input_dim=3)
    x = np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(s.step(x), want, rtol=1e-12)
    assert s.states == []


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H,sequences", [(1, 5, True), (3, 9, False)])
def test_layer_norm_cells_stream(cell, functional, dtype, B, H, sequences):
    """Layer-normalized cells (with a plain one between them) equal predict, every step or
    the last; SimpleRNN also with relu."""
    kw = {"dtype": np.dtype(dtype).name}
    c = CELLS[cell]
    act = {"activation": "relu"} if cell == "SimpleRNN" and H == 9 else {}
    body = [c(H, return_sequences=True, layer_norm=True, **act, **kw),
            c(4, return_sequences=True, **kw),
            c(3, return_sequences=sequences, layer_norm=True, **kw),
            layers.Dense(2, **kw)]
    model = _model(body, 3, functional, dtype)
    x = np.random.default_rng(H).standard_normal((B, 6, 3)).astype(dtype)
    got = _check_streams(model, x, _rtol(dtype, H + 3 + 1, 6, len(body)))
    assert got.shape == (B, 6, 2)
    # the states after the steps are the layers' last states
    s = model.stepper(batch_size=B)
    _stream(s, x)
    first = [lyr for lyr in _all_layers(model) if isinstance(lyr, c)][0]
    ln = c(H, return_state=True, layer_norm=True, **act, **kw)
    ln.build((None, 3))
    ln.set_weights(first.get_weights())
    _, *last = ln.forward(x)
    for a, b in zip(s.states[0], last):
        assert_within(a, b, _rtol(dtype, H + 3 + 1, 6, 1), what="state")


def test_layer_norm_cell_stage_needs_gamma_and_beta():
    k = np.zeros((2, 4))
    u = np.zeros((1, 4))
    with pytest.raises(ValueError, match="needs both gamma and beta"):
        ops.ModelStepper([("lstm", "tanh", k, u, None, {"gamma": np.ones(4)})])
    with pytest.raises(ValueError, match=r"stages\[0\].beta.*\(4,\)"):
        ops.ModelStepper([("lstm", "tanh", k, u, None, {"gamma": np.ones(4),
                                                        "beta": np.ones(3)})])


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,K,dilation,groups", [(1, 3, 1, 1), (3, 2, 3, 2), (2, 4, 2, 1),
                                                 (2, 1, 1, 2)])
def test_causal_conv1d_streams(functional, dtype, B, K, dilation, groups):
    """Causal convolutions (first, and after a recurrent layer), with dilation and groups,
    over more steps than their receptive field: the ring buffer wraps around."""
    kw = {"dtype": np.dtype(dtype).name}
    body = [layers.Conv1D(6, K, padding="causal", dilation_rate=dilation, groups=groups,
                          activation="relu", **kw),
            layers.GRU(5, return_sequences=True, **kw),
            layers.Conv1D(3, 2, padding="causal", use_bias=False, **kw),
            layers.Conv1D(2, 3, padding="causal", dilation_rate=2, activation="tanh", **kw)]
    model = _model(body, 4, functional, dtype)
    T = 11
    x = np.random.default_rng(K * 10 + dilation).standard_normal((B, T, 4)).astype(dtype)
    _check_streams(model, x, _rtol(dtype, K * 4 + 5 + 1, T, len(body)))


@pytest.mark.parametrize("T", [2, 9])
def test_conv1d_state_is_the_window_of_its_last_inputs(T):
    model = _model([layers.Conv1D(3, 3, padding="causal", dilation_rate=2, dtype="float64"),
                    layers.LSTM(2, dtype="float64")], 2, False, np.float64)
    x = np.random.default_rng(T).standard_normal((2, T, 2))
    s = model.stepper(batch_size=2)
    _stream(s, x)
    (window,), (h, c) = s.states
    span = 5
    want = np.concatenate([np.zeros((2, span, 2)), x], axis=1)[:, -span:]
    np.testing.assert_array_equal(window, want)  # oldest first, zeros before the first step
    with pytest.raises(ValueError, match=r"states\[0\].*\(2, 5, 2\)"):
        s.reset(states=[[window[:, 1:]], [h, c]])
    with pytest.raises(ValueError, match=r"states\[0\]`: expected a list of 1 array"):
        s.reset(states=[[window, window], [h, c]])
    s.reset()
    assert not s.states[0][0].any()


def test_conv1d_stage_checks():
    with pytest.raises(ValueError, match=r"stages\[0\].kernel`: expected a 3-D array"):
        ops.ModelStepper([("conv1d", "linear", np.ones((2, 3)), None, None, {})])
    with pytest.raises(ValueError, match=r"dilation and groups must be positive"):
        ops.ModelStepper([("conv1d", "linear", np.ones((2, 3, 4)), None, None,
                           {"dilation": 0})])
    with pytest.raises(ValueError, match=r"groups dividing"):
        ops.ModelStepper([("conv1d", "linear", np.ones((2, 3, 4)), None, None,
                           {"groups": 3})])


def _branched(dtype, sequences=True):
    """A graph of branches from the input (LSTM, causal Conv1D, layer-normalized GRU) joined
    by every merge, the input itself concatenated in, a residual Dense from the input."""
    kw = {"dtype": np.dtype(dtype).name}
    x = fastrnn.Input((None, 4), dtype=kw["dtype"])
    a = layers.LSTM(6, return_sequences=True, **kw)(x)
    b = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="tanh", **kw)(x)
    c = layers.GRU(6, return_sequences=True, layer_norm=True, **kw)(x)
    m = layers.Multiply(**kw)([layers.Add(**kw)([a, b]), c])
    avg = layers.Average(**kw)([a, b, c])
    sub = layers.Subtract(**kw)([layers.Maximum(**kw)([a, c]), layers.Minimum(**kw)([b, c])])
    cat = layers.Concatenate(**kw)([m, avg, sub, x])  # 6 + 6 + 6 + 4 features
    y = layers.Dense(5, activation="relu", **kw)(layers.LayerNormalization(**kw)(cat))
    y = layers.Add(**kw)([y, layers.Dense(5, **kw)(x)])
    y = layers.BatchNormalization(**kw)(layers.Dropout(0.5, **kw)(y))
    y = layers.LSTM(3, return_sequences=sequences, **kw)(y)
    model = fastrnn.Model(x, layers.Dense(2, **kw)(y))
    _randomize(model, 21)
    _positive_variances(model)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,sequences", [(1, True), (4, False), (3, True)])
def test_branches_and_merges_stream(dtype, B, sequences):
    model = _branched(dtype, sequences)
    x = np.random.default_rng(B).standard_normal((B, 9, 4)).astype(dtype)
    _check_streams(model, x, _rtol(dtype, 22 + 5 + 1, 9, 17))
    # the stages with a state: the two LSTMs [h, c], the GRU [h] and the Conv1D [window]
    assert sorted(len(st) for st in model.stepper().states) == [1, 1, 2, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nested_models_in_a_branched_graph(dtype):
    """A Sequential and a functional model (itself branched) nested in branches; an
    Activation reading the input first."""
    kw = {"dtype": np.dtype(dtype).name}
    inner_in = fastrnn.Input((None, 5), dtype=kw["dtype"])
    p = layers.SimpleRNN(4, return_sequences=True, **kw)(inner_in)
    q = layers.Conv1D(4, 2, padding="causal", **kw)(inner_in)
    inner = fastrnn.Model(inner_in, layers.Concatenate(**kw)([p, q]))  # 8 features
    seq = fastrnn.Sequential([layers.GRU(8, return_sequences=True, input_shape=(None, 5), **kw),
                              layers.LayerNormalization(**kw)])
    x = fastrnn.Input((None, 5), dtype=kw["dtype"])
    t = layers.Activation("tanh", **kw)(x)
    y = layers.Maximum(**kw)([inner(t), seq(x)])
    model = fastrnn.Model(x, layers.Dense(3, **kw)(y))
    _randomize(model, 4)
    x_ = np.random.default_rng(9).standard_normal((2, 7, 5)).astype(dtype)
    _check_streams(model, x_, _rtol(dtype, 8 + 5 + 1, 7, 8))


def test_a_merge_of_the_input_with_itself():
    x = fastrnn.Input((None, 3), dtype="float64")
    y = layers.Subtract(dtype="float64")([layers.Dense(3, dtype="float64")(x), x])
    model = fastrnn.Model(x, layers.Concatenate(dtype="float64")([y, x, y]))
    _randomize(model, 2)
    x_ = np.random.default_rng(0).standard_normal((2, 4, 3))
    _check_streams(model, x_, 1e-14)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_give_the_same_outputs_on_a_graph(threads):
    """Rows split over threads through every new kind of stage: the conv windows, the
    layer-normalized cells and the merges keep each row's own."""
    x_in = fastrnn.Input((None, 8))
    a = layers.LSTM(64, return_sequences=True, layer_norm=True)(x_in)
    b = layers.Conv1D(64, 4, padding="causal", dilation_rate=2, activation="relu")(x_in)
    y = layers.LayerNormalization()(layers.Add()([a, b]))
    y = layers.Concatenate()([layers.GRU(48, layer_norm=True, return_sequences=True)(y),
                              layers.BatchNormalization()(b)])
    model = fastrnn.Model(x_in, layers.Dense(3)(y))
    _randomize(model, 9)
    _positive_variances(model)
    x = np.random.default_rng(3).standard_normal((64, 6, 8)).astype(np.float32) * 0.3
    before = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(threads)
        s = model.stepper(batch_size=64)
        got = _stream(s, x)
        states = s.states
    finally:
        fastrnn.set_num_threads(before)
    assert_within(got, model.predict(x), _rtol(np.float32, 64 + 112 + 1, 6, 9))
    one = model.stepper(batch_size=64)
    _stream(one, x)
    for mine, theirs in zip(sum(states, []), sum(one.states, [])):
        assert_within(mine, theirs, _rtol(np.float32, 64 + 112 + 1, 6, 9))


def test_refused_graphs_name_the_layer():
    x = fastrnn.Input((None, 4))
    a = layers.LSTM(3, return_sequences=True)(x)
    b = layers.GRU(3, return_sequences=True)(x)
    _refused(fastrnn.Model(x, layers.Concatenate(axis=1)([a, b])),
             r"`concatenate.*\(Concatenate\).*axis 1, not the features")
    _refused(fastrnn.Model(x, layers.Dot(axes=2)([a, b])), r"Dot.*takes 2 tensors")
    _refused(fastrnn.Model(x, layers.Add()([a, layers.LSTM(3, go_backwards=True,
                                                           return_sequences=True)(x)])),
             r"LSTM.*go_backwards")
    _refused(fastrnn.Model(x, layers.Add()([a, layers.Bidirectional(
        layers.GRU(3, return_sequences=True), merge_mode="sum")(x)])), r"Bidirectional")
    _refused(fastrnn.Model(x, layers.Add()([a, layers.Conv1D(3, 2, padding="same")(x)])),
             r"Conv1D.*padding='same'")
    ids = fastrnn.Input((None,), dtype="int64")
    e = layers.Add()([layers.Embedding(10, 3)(ids), layers.Embedding(10, 3)(ids)])
    _refused(fastrnn.Model(ids, layers.LSTM(2)(e)),
             r"Embedding.*token ids, which only the first Embedding may")


def test_stage_inputs_are_checked():
    d = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"stage 0: reads stage 0, which does not come before"):
        ops.ModelStepper([("dense", "linear", d, None, None, {"inputs": [0]})])
    with pytest.raises(ValueError, match=r"stage 1: only a merge reads several stages"):
        ops.ModelStepper([("dense", "linear", d, None, None),
                          ("dense", "linear", d, None, None, {"inputs": [0, -1]})])
    with pytest.raises(ValueError, match=r"stage 2: a merge reads exactly two stages"):
        ops.ModelStepper([("dense", "linear", d, None, None), ("dense", "linear", d, None, None),
                          ("subtract", "linear", None, None, None, {"inputs": [0, 1, -1]})])
    with pytest.raises(ValueError, match=r"stage 1: merges widths 2 and 3 element by element"):
        ops.ModelStepper([("dense", "linear", np.ones((3, 2)), None, None),
                          ("add", "linear", None, None, None, {"inputs": [0, -1]})])
    with pytest.raises(ValueError, match=r"stage 1: takes 3 features, the input has 2"):
        ops.ModelStepper([("dense", "linear", np.ones((2, 3)), None, None),
                          ("dense", "linear", d, None, None, {"inputs": [-1]})])
    s = ops.ModelStepper([("dense", "linear", np.eye(2) * 2, None, None),
                          ("concatenate", "linear", None, None, None, {"inputs": [-1, 0, -1]}),
                          ("maximum", "linear", None, None, None, {"inputs": [1, 1]})],
                         1, np.float64)
    np.testing.assert_array_equal(s.step(np.array([[1.0, -1.0]])),
                                  [[1.0, -1.0, 2.0, -2.0, 1.0, -1.0]])


@pytest.mark.parametrize("mode", ["always", "never"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_cells_with_and_without_the_packed_product(mode, dtype):
    """The stepper packs a cell's recurrent kernel once for the micro-kernel where that pays
    (decided when it is made); forced either way, the layer-normalized cells still give
    predict's outputs."""
    from fastrnn import _core

    kw = {"dtype": np.dtype(dtype).name}
    body = [layers.LSTM(24, return_sequences=True, layer_norm=True, **kw),
            layers.GRU(16, return_sequences=True, layer_norm=True, **kw),
            layers.SimpleRNN(8, layer_norm=True, **kw), layers.Dense(2, **kw)]
    model = _model(body, 5, True, dtype)
    x = np.random.default_rng(5).standard_normal((4, 6, 5)).astype(dtype)
    _core._set_packed_products(mode)
    try:
        s = model.stepper(batch_size=4)
    finally:
        _core._set_packed_products("auto")
    got = _stream(s, x)
    assert_within(got[:, -1], model.predict(x), _rtol(dtype, 24 + 24 + 1, 6, len(body)))


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_noise_identity_and_normalization_layers_stream(functional, dtype):
    """The activation layers of default parameters, the noise layers and Identity (identities
    at inference), Normalization (adapted, and inverted) and TimeDistributed of per-step
    layers stream as predict computes them."""
    kw = {"dtype": np.dtype(dtype).name}
    rng = np.random.default_rng(3)
    norm = layers.Normalization(**kw)
    norm.adapt(rng.standard_normal((40, 7, 4)) * 3.0 + 2.0)
    body = [norm, layers.GaussianNoise(0.5, **kw), layers.LSTM(6, return_sequences=True, **kw),
            layers.SpatialDropout1D(0.5, **kw), layers.ReLU(**kw),
            layers.TimeDistributed(layers.LayerNormalization(**kw)),
            layers.GaussianDropout(0.3, **kw), layers.AlphaDropout(0.2, **kw),
            layers.Identity(**kw), layers.ActivityRegularization(0.1, **kw),
            layers.GRU(5, return_sequences=True, **kw), layers.ELU(**kw),
            layers.TimeDistributed(layers.Dense(3, **kw)), layers.Softmax(**kw),
            layers.Normalization(invert=True, mean=[1.0, -2.0, 0.5],
                                 variance=[4.0, 0.25, 9.0], **kw)]
    model = _model(body, 4, functional, dtype)
    norm.adapt(  # _model randomized every weight: the statistics again
        rng.standard_normal((40, 7, 4)) * 3.0 + 2.0)
    x = rng.standard_normal((3, 7, 4)).astype(dtype) * 3 + 2
    _check_streams(model, x, _rtol(dtype, 6 + 6 + 1, 7, len(body)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shared_layers_stream_one_stage_a_call(dtype):
    """A layer called twice becomes two stages: a shared Dense twice in a chain, a shared LSTM
    on two branches, each call with its own state (as each call runs its own sequence)."""
    kw = {"dtype": np.dtype(dtype).name}
    x = fastrnn.Input((None, 3), **kw)
    dense = layers.Dense(3, activation="tanh", **kw)
    rnn = layers.LSTM(5, return_sequences=True, **kw)
    a = rnn(dense(dense(x)))
    b = rnn(layers.Dense(3, **kw)(x))
    model = fastrnn.Model(x, layers.Dense(2, **kw)(layers.Concatenate()([a, b])))
    _randomize(model, 11)
    assert len(model.stepper().states) == 2  # one state per call of the LSTM
    xs = np.random.default_rng(4).standard_normal((2, 6, 3)).astype(dtype)
    _check_streams(model, xs, _rtol(dtype, 10, 6, 6))


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 3])
def test_parametric_activations_and_row_normalizations_stream(functional, dtype, B):
    """ReLU with its parameters, LeakyReLU, PReLU (slopes per feature and one for all, also in
    TimeDistributed), ELU(alpha), UnitNormalization and RMSNormalization stream as predict
    computes them (each slope, cap and scale random)."""
    kw = {"dtype": np.dtype(dtype).name}
    body = [layers.LSTM(6, return_sequences=True, **kw), layers.LeakyReLU(0.2, **kw),
            layers.PReLU(shared_axes=[1], **kw),
            layers.ReLU(max_value=0.3, negative_slope=0.1, threshold=0.05, **kw),
            layers.UnitNormalization(**kw), layers.GRU(5, return_sequences=True, **kw),
            layers.ELU(alpha=0.5, **kw), layers.RMSNormalization(**kw),
            layers.TimeDistributed(layers.PReLU(**kw)),
            layers.PReLU(shared_axes=[1, 2], **kw), layers.Dense(3, **kw),
            layers.ReLU(negative_slope=0.2, **kw)]
    model = _model(body, 4, functional, dtype)
    x = np.random.default_rng(5).standard_normal((B, 7, 4)).astype(dtype) * 2
    assert model.predict(x).min() < 0 < model.predict(x).max()  # both sides of each slope
    _check_streams(model, x, _rtol(dtype, 6 + 6 + 1, 7, len(body)))


def test_relu_and_row_normalization_stage_options_are_checked():
    lstm = ("lstm", "tanh", np.full((2, 12), 0.5, np.float32), np.zeros((3, 12), np.float32),
            None)
    with pytest.raises(ValueError, match=r"stages\[1\].slope`: required"):
        ops.ModelStepper([lstm, ("relu", "linear", None, None, None, {})])
    with pytest.raises(ValueError, match=r"stage 1: takes 2 features, the stage before gives 3"):
        ops.ModelStepper([lstm, ("relu", "linear", None, None, None,
                                 {"slope": np.ones(2, np.float32)})])
    with pytest.raises(ValueError, match=r"stage 1: threshold and max_value must be numbers"):
        ops.ModelStepper([lstm, ("relu", "linear", None, None, None,
                                 {"slope": np.ones(1, np.float32), "threshold": float("nan")})])
    with pytest.raises(ValueError, match=r"stage 1: takes 4 features, the stage before gives 3"):
        ops.ModelStepper([lstm, ("rms_norm", "linear", None, None, None,
                                 {"scale": np.ones(4, np.float32)})])
    with pytest.raises(ValueError, match=r"stages\[1\].scale`: required"):
        ops.ModelStepper([lstm, ("rms_norm", "linear", None, None, None, {})])
    s = ops.ModelStepper([lstm, ("unit_norm", "linear", None, None, None)])
    y = s.step(np.ones((1, 2), np.float32))
    assert y.shape == (1, 3)
    np.testing.assert_allclose(np.sum(y * y), 1.0, rtol=1e-6)
