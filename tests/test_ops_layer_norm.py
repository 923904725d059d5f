"""The layer-normalized cells: fastrnn.ops.layer_norm_* (cpp/layer_norm_rnn.hpp)
against the NumPy oracle fastrnn.reference.layer_norm_*, float64 finite differences of every
gradient, masks, truncation, recurrent dropout, threads, bad arguments; the recurrent layers'
``layer_norm=True`` against the oracle; TF-Keras parity with Hands-On ML's LNSimpleRNNCell."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import _core, ops
from fastrnn import reference as ref
from fastrnn.layers import GRU, LSTM, SimpleRNN

CELLS = ("simple_rnn", "lstm", "gru")
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


# ----------------------------------------------------------------------------- harness
def make_case(cell, B, T, I, H, dtype=np.float64, seed=0, bias=True, h0=True,
              recurrent_mask=False, step_mask=False):
    """Random, non-constant arrays for one call (gamma around 1, beta around 0)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell] * H

    def w(*shape, scale=0.6):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    case = {
        "x": w(B, T, I, scale=1.0), "h0": w(B, H) if h0 else None,
        "c0": w(B, H) if (h0 and cell == "lstm") else None,
        "kernel": w(I, G), "recurrent_kernel": w(H, G),
        "bias": (w(2, G) if cell == "gru" else w(G)) if bias else None,
        "gamma": (1.0 + w(G, scale=0.3)).astype(dtype), "beta": w(G, scale=0.3),
        "recurrent_mask": None, "mask": None,
    }
    if recurrent_mask:
        case["recurrent_mask"] = ((rng.random((B, H)) > 0.3) / 0.7).astype(dtype)
    if step_mask:
        m = rng.random((B, T)) > 0.35
        m[0, :] = False  # a fully masked row keeps its initial state
        case["mask"] = m
    return case


def upstream(cell, B, T, H, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    d = [rng.standard_normal((B, T, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)]
    if cell == "lstm":
        d.append(rng.standard_normal((B, H)).astype(dtype))
    return d


def forward(mod, cell, c, keep_tape=True):
    """(outputs, [h_last(, c_last)], tape) of mod's layer-normalized `cell`."""
    kw = {"recurrent_mask": c["recurrent_mask"], "mask": c["mask"]}
    if mod is ops:
        kw["keep_tape"] = keep_tape
    w = (c["kernel"], c["recurrent_kernel"], c["bias"], c["gamma"], c["beta"])
    if cell == "lstm":
        out, h, cl, tape = mod.layer_norm_lstm_forward(c["x"], c["h0"], c["c0"], *w, **kw)
        return out, [h, cl], tape
    f = mod.layer_norm_simple_rnn_forward if cell == "simple_rnn" else mod.layer_norm_gru_forward
    out, h, tape = f(c["x"], c["h0"], *w, **kw)
    return out, [h], tape


def backward(mod, cell, tape, d, truncate=None):
    f = getattr(mod, f"layer_norm_{cell}_backward")
    return f(tape, d[0], *d[1:], truncate=truncate)


def assert_close(got, want, dtype, what=""):
    if want is None:
        assert got is None, what
        return
    tol = 1e-11 if dtype == np.float64 else 2e-4
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def check_against_reference(cell, c, dtype, truncate=None):
    B, T, _ = c["x"].shape
    H = c["recurrent_kernel"].shape[0]
    d = upstream(cell, B, T, H, dtype)
    out, last, tape = forward(ops, cell, c)
    r_out, r_last, r_tape = forward(ref, cell, c)
    assert out.dtype == dtype
    assert_close(out, r_out, dtype, "outputs")
    for k, (a, b) in enumerate(zip(last, r_last)):
        assert_close(a, b, dtype, f"last state {k}")
    g, rg = backward(ops, cell, tape, d, truncate), backward(ref, cell, r_tape, d, truncate)
    assert set(g) == set(rg)
    for name in rg:
        assert_close(g[name], rg[name], dtype, name)
    return g


# ----------------------------------------------------------------------------- vs reference
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("T", [1, 9])
@pytest.mark.parametrize("H", [1, 5, 20, 33])
@pytest.mark.parametrize("B", [1, 3, 7])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_reference_at_awkward_sizes(cell, B, H, T, dtype):
    check_against_reference(cell, make_case(cell, B, T, 3, H, dtype, seed=B * 100 + H), dtype)


VARIANTS = {
    "no_bias_no_h0": dict(bias=False, h0=False),
    "step_mask": dict(step_mask=True),
    "recurrent_mask": dict(recurrent_mask=True),
    "everything": dict(step_mask=True, recurrent_mask=True),
}


@pytest.mark.parametrize("truncate", [None, 1, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("cell", CELLS)
def test_masks_truncation_and_recurrent_dropout_match_reference(cell, variant, truncate):
    for dtype in (np.float64, np.float32):
        c = make_case(cell, 5, 8, 4, 7, dtype, seed=3, **VARIANTS[variant])
        check_against_reference(cell, c, dtype, truncate)


@pytest.mark.parametrize("cell", CELLS)
def test_relu_and_linear_simple_rnn_and_masked_rows(cell):
    if cell == "simple_rnn":
        for act in ("relu", "linear"):
            c = make_case(cell, 4, 6, 3, 5, step_mask=True)
            args = (c["x"], c["h0"], c["kernel"], c["recurrent_kernel"], c["bias"], c["gamma"],
                    c["beta"], act)
            out, h, tape = ops.layer_norm_simple_rnn_forward(*args, mask=c["mask"])
            r_out, r_h, r_tape = ref.layer_norm_simple_rnn_forward(*args, mask=c["mask"])
            assert_close(out, r_out, np.float64, act)
            d = upstream(cell, 4, 6, 5)
            g, rg = backward(ops, cell, tape, d), backward(ref, cell, r_tape, d)
            for name in rg:
                assert_close(g[name], rg[name], np.float64, f"{act} {name}")
    # a fully masked row (row 0) keeps its initial state and passes its gradient through
    c = make_case(cell, 3, 5, 2, 4, step_mask=True)
    out, last, tape = forward(ops, cell, c)
    np.testing.assert_array_equal(last[0][0], c["h0"][0])
    d = upstream(cell, 3, 5, 4)
    g = backward(ops, cell, tape, d)
    np.testing.assert_allclose(g["h0"][0], d[0][0].sum(axis=0) + d[1][0], rtol=1e-12)


@pytest.mark.parametrize("packed", ["auto", "always"])
@pytest.mark.parametrize("kernel_set", _core.available_kernel_sets())
@pytest.mark.parametrize("cell", CELLS)
def test_every_kernel_set_and_the_packed_product(cell, kernel_set, packed):
    """Each instruction set's copy (the row passes' last packet is masked on AVX2/AVX-512 and
    zero-padded on the baseline) and the step products by the packed micro-kernel."""
    before = _core.kernel_set()
    try:
        _core.select_kernel_set(kernel_set)
        _core._set_packed_products(packed)
        for dtype in (np.float32, np.float64):
            for H in (5, 20, 33):
                c = make_case(cell, 6, 7, 3, H, dtype, seed=H, step_mask=True,
                              recurrent_mask=True)
                check_against_reference(cell, c, dtype, truncate=4)
    finally:
        _core._set_packed_products("auto")
        _core.select_kernel_set(before)


# ----------------------------------------------------------------------------- gradients
def _loss(cell, c, d):
    out, last, _ = forward(ops, cell, c, keep_tape=False)
    return float(np.sum(out * d[0]) + sum(np.sum(s * u) for s, u in zip(last, d[1:])))


@pytest.mark.parametrize("variant", ["plain", "masks"])
@pytest.mark.parametrize("cell", CELLS)
def test_finite_differences_of_every_input(cell, variant):
    masks = variant == "masks"
    c = make_case(cell, 3, 5, 2, 3, seed=7, step_mask=masks, recurrent_mask=masks)
    d = upstream(cell, 3, 5, 3)
    _, _, tape = forward(ops, cell, c)
    g = backward(ops, cell, tape, d)
    names = ["x", "h0", "kernel", "recurrent_kernel", "bias", "gamma", "beta"]
    if cell == "lstm":
        names.append("c0")
    eps = 1e-6
    for name in names:
        a = c[name]
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            keep = a[idx]
            a[idx] = keep + eps
            plus = _loss(cell, c, d)
            a[idx] = keep - eps
            minus = _loss(cell, c, d)
            a[idx] = keep
            num[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(g[name], num, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_truncation_cuts_exactly_k_steps_back(cell):
    """With truncate=k and only h_last's gradient given, x gets no gradient more than k steps
    before the end and h0 none; truncate=T is full BPTT."""
    c = make_case(cell, 2, 7, 3, 4, seed=11)
    B, T, H = 2, 7, 4
    d = [np.zeros((B, T, H))] + [np.ones((B, H))] + ([np.zeros((B, H))] if cell == "lstm" else [])
    _, _, tape = forward(ops, cell, c)
    g = backward(ops, cell, tape, d, truncate=3)
    assert np.all(g["x"][:, :T - 3] == 0) and np.any(g["x"][:, T - 3:] != 0)
    assert np.all(g["h0"] == 0)
    full = backward(ops, cell, tape, d, truncate=T)
    none = backward(ops, cell, tape, d)
    for name in none:
        np.testing.assert_array_equal(full[name], none[name], err_msg=name)


# ----------------------------------------------------------------------------- threads
@pytest.mark.parametrize("cell", CELLS)
def test_threads_one_two_three_agree(cell):
    before = fastrnn.get_num_threads()
    c = make_case(cell, 37, 30, 5, 33, seed=2, step_mask=True, recurrent_mask=True)
    d = upstream(cell, 37, 30, 33)
    results = []
    try:
        for threads in (1, 2, 3):
            fastrnn.set_num_threads(threads)
            out, last, tape = forward(ops, cell, c)
            results.append((out, last, backward(ops, cell, tape, d, truncate=11)))
    finally:
        fastrnn.set_num_threads(before)
    out1, last1, g1 = results[0]
    for out, last, g in results[1:]:
        # (a slice's GEMMs may block their sums differently: equal to rounding)
        np.testing.assert_allclose(out, out1, rtol=1e-12, atol=1e-13)
        for a, b in zip(last, last1):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        for name in g1:  # weight gradients: partial sums over row slices, another order
            np.testing.assert_allclose(g[name], g1[name], rtol=1e-12, atol=1e-12, err_msg=name)
    r_out, _, r_tape = forward(ref, cell, c)
    assert_close(out1, r_out, np.float64)
    rg = backward(ref, cell, r_tape, d, truncate=11)
    for name in rg:
        assert_close(g1[name], rg[name], np.float64, name)


# ----------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_and_no_steps(cell):
    for B, T in ((0, 4), (2, 0)):
        c = make_case(cell, B, T, 3, 4)
        out, last, tape = forward(ops, cell, c)
        assert out.shape == (B, T, 4)
        if c["h0"] is not None and B:
            np.testing.assert_array_equal(last[0], c["h0"])
        g = backward(ops, cell, tape, upstream(cell, B, T, 4))
        assert g["gamma"].shape == (GATES[cell] * 4,) and not np.any(g["gamma"])
        assert g["x"].shape == (B, T, 3)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_without_tape_and_input_grad_off(cell):
    c = make_case(cell, 3, 4, 2, 5, dtype=np.float32)
    out, last, tape = forward(ops, cell, c, keep_tape=False)
    out2, last2, tape2 = forward(ops, cell, c)
    assert tape is None
    np.testing.assert_array_equal(out, out2)
    d = upstream(cell, 3, 4, 5, np.float32)
    g = getattr(ops, f"layer_norm_{cell}_backward")(tape2, d[0], *d[1:], input_grad=False)
    assert g["x"] is None and g["gamma"].dtype == np.float32
    assert not out2.flags.writeable  # the tape shares the outputs


# ----------------------------------------------------------------------------- bad arguments
def _lstm_args(**change):
    c = make_case("lstm", 2, 3, 2, 4)
    c.update(change)
    return c


def test_bad_arguments_raise_clear_errors():
    c = _lstm_args()
    args = lambda c: (c["x"], c["h0"], c["c0"], c["kernel"], c["recurrent_kernel"], c["bias"])  # noqa: E731
    with pytest.raises(ValueError, match="`gamma`.*expected shape \\(16,\\)"):
        ops.layer_norm_lstm_forward(*args(c), c["gamma"][:4], c["beta"])
    with pytest.raises(TypeError, match="`beta`.*float32"):
        ops.layer_norm_lstm_forward(*args(c), c["gamma"], c["beta"].astype(np.float32))
    with pytest.raises(TypeError, match="`gamma`"):
        ops.layer_norm_lstm_forward(*args(c), np.ones(16, int), c["beta"])
    for eps in (0.0, -1.0, float("nan"), float("inf"), "a"):
        with pytest.raises(ValueError, match="`epsilon`"):
            ops.layer_norm_lstm_forward(*args(c), c["gamma"], c["beta"], epsilon=eps)
    with pytest.raises(ValueError, match="`activation`"):
        ops.layer_norm_simple_rnn_forward(c["x"], None, np.ones((2, 4)), np.ones((4, 4)), None,
                                          np.ones(4), np.zeros(4), "sigmoid")
    with pytest.raises(ValueError, match="`mask`"):
        ops.layer_norm_lstm_forward(*args(c), c["gamma"], c["beta"], mask=np.ones((2, 4), bool))
    # tapes: a plain tape to a layer-norm backward and back, and a foreign object
    _, _, _, plain = ops.lstm_forward(*args(c))
    with pytest.raises(ValueError, match="`tape`.*lstm_forward"):
        ops.layer_norm_lstm_backward(plain, None)
    _, _, _, ln = ops.layer_norm_lstm_forward(*args(c), c["gamma"], c["beta"])
    with pytest.raises(ValueError, match="`tape`.*layer_norm_lstm_forward"):
        ops.lstm_backward(ln, None)
    with pytest.raises(TypeError, match="`tape`"):
        ops.layer_norm_gru_backward(object(), None)
    with pytest.raises(ValueError, match="`d_outputs`"):
        ops.layer_norm_lstm_backward(ln, np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="`truncate`"):
        ops.layer_norm_lstm_backward(ln, None, truncate=0)


def test_core_checks_every_array_itself():
    """The layers call the core without ops's checks: it must refuse bad arrays by name."""
    c = make_case("gru", 2, 3, 2, 4)
    x, K, U, b, gm, be = c["x"], c["kernel"], c["recurrent_kernel"], c["bias"], c["gamma"], \
        c["beta"]
    with pytest.raises(ValueError, match="`gamma`"):
        _core.layer_norm_gru_forward(x, None, K, U, b, gm[:3], be, 1e-3)
    with pytest.raises(ValueError, match="`beta`"):
        _core.layer_norm_gru_forward(x, None, K, U, b, gm, be[::2], 1e-3)
    with pytest.raises(ValueError, match="`epsilon`"):
        _core.layer_norm_gru_forward(x, None, K, U, b, gm, be, -1.0)
    out, h, gates, hz_h, xhat, rstd = _core.layer_norm_gru_forward(x, None, K, U, b, gm, be, 1e-3)
    assert xhat.shape == (2, 3, 12) and rstd.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="`xhat`"):
        _core.layer_norm_gru_backward(x, None, K, U, gm, None, out, gates, hz_h, xhat[:, :2],
                                      rstd, None, None)
    with pytest.raises(ValueError, match="`rstd`"):
        _core.layer_norm_gru_backward(x, None, K, U, gm, None, out, gates, hz_h, xhat,
                                      rstd.astype(np.float32), None, None)
    with pytest.raises(ValueError, match="`rstd`"):
        _core.layer_norm_simple_rnn_backward(x, None, K[:, :4].copy(), U[:, :4].copy(),
                                             gm[:4].copy(), None, out, xhat[:, :, :4].copy(),
                                             rstd, None, None)


# ----------------------------------------------------------------------------- the layers
LAYERS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


@pytest.mark.parametrize("options", [
    {},
    {"return_sequences": True, "go_backwards": True},
    {"return_sequences": True, "dropout": 0.3, "recurrent_dropout": 0.4, "truncate_bptt": 3},
    {"return_sequences": True, "masked": True},
], ids=["last", "backwards", "dropout_truncate", "masked"])
@pytest.mark.parametrize("cell", CELLS)
def test_layer_equals_reference(cell, options):
    """The layer's layer_norm=True path (one fused call) against the oracle, which is the
    layers' former per-step NumPy code: outputs, input gradient, every weight gradient."""
    options = dict(options)
    masked = options.pop("masked", False)
    layer = LAYERS[cell](6, layer_norm=True, dtype="float64", seed=1, **options)
    rng = np.random.default_rng(4)
    B, T, F = 4, 7, 3
    layer.build((T, F))
    layer.set_weights([rng.normal(0, 0.5, w.shape) + (1.0 if n == "gamma" else 0.0)
                       for n, w in zip(layer.weight_names, layer.get_weights())])
    x = rng.normal(size=(B, T, F))
    mask = rng.random((B, T)) > 0.3 if masked else None
    h0 = rng.normal(size=(B, 6))
    init = [h0, rng.normal(size=(B, 6))] if cell == "lstm" else h0
    y = layer.forward(x, training=True, initial_state=init, mask=mask)
    d_y = rng.normal(size=y.shape)
    d_x = layer.backward(d_y)
    # the oracle on the same inputs, masks and weights
    w = dict(zip(layer.weight_names, layer.get_weights()))
    xs = x if layer.last_dropout_mask is None else x * layer.last_dropout_mask[:, None, :]
    steps = mask
    if layer.go_backwards:
        xs = xs[:, ::-1]
    c = {"x": xs, "h0": h0, "c0": init[1] if cell == "lstm" else None, "kernel": w["kernel"],
         "recurrent_kernel": w["recurrent_kernel"], "bias": w.get("bias"), "gamma": w["gamma"],
         "beta": w["beta"], "recurrent_mask": layer.last_recurrent_mask, "mask": steps}
    out, last, tape = forward(ref, cell, c)
    want, d_out = (out, d_y) if layer.return_sequences else (last[0], None)
    if masked:  # Keras's outputs: zeros before a row's first unmasked step (h0 is given)
        keep = np.logical_or.accumulate(mask, axis=1)[:, :, None]
        want, d_out = want * keep, d_out * keep
    np.testing.assert_allclose(y, want, atol=1e-12)
    d_last = [None if layer.return_sequences else d_y] + ([None] if cell == "lstm" else [])
    rg = getattr(ref, f"layer_norm_{cell}_backward")(tape, d_out, *d_last,
                                                     truncate=layer.truncate_bptt)
    want_dx = rg["x"]
    if layer.last_dropout_mask is not None:
        want_dx = want_dx * layer.last_dropout_mask[:, None, :]
    if layer.go_backwards:
        want_dx = want_dx[:, ::-1]
    np.testing.assert_allclose(d_x, want_dx, atol=1e-11)
    for name, g in zip(layer.weight_names, layer.grads):
        np.testing.assert_allclose(g, rg[name], atol=1e-11, err_msg=name)
    np.testing.assert_allclose(layer.initial_state_grads[0], rg["h0"], atol=1e-11)


@pytest.mark.parametrize("cell", CELLS)
def test_layer_stateful_and_return_state(cell):
    cls = LAYERS[cell]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 8, 2)).astype(np.float32)
    whole = cls(5, layer_norm=True, return_sequences=True, seed=3)
    parts = cls(5, layer_norm=True, return_sequences=True, stateful=True, seed=3)
    y = whole.forward(x)
    y2 = np.concatenate([parts.forward(x[:, :4]), parts.forward(x[:, 4:])], axis=1)
    np.testing.assert_allclose(y, y2, rtol=1e-6, atol=1e-6)
    with_state = cls(5, layer_norm=True, return_state=True, seed=3)
    out, *states = with_state.forward(x, training=True)
    assert len(states) == (2 if cell == "lstm" else 1)
    np.testing.assert_array_equal(out, states[0])
    with_state.backward([None, np.ones_like(out)] + [None] * (len(states) - 1))
    assert {"gamma", "beta"} <= set(with_state.weight_names)


def test_layer_norm_model_saves_and_loads(tmp_path):
    model = fastrnn.models.Sequential([
        SimpleRNN(4, layer_norm=True, return_sequences=True, input_shape=(None, 1)),
        GRU(3, layer_norm=True), fastrnn.layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(2, 5, 1)).astype(np.float32)
    model.predict(x)
    names = [n for layer in model.layers for n in getattr(layer, "weight_names", [])]
    assert names.count("gamma") == 2 and names.count("beta") == 2
    path = str(tmp_path / "ln.keras")
    model.save(path)
    loaded = fastrnn.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ----------------------------------------------------------------------------- TF-Keras
def _keras_ln_simple_rnn(keras, units, features):
    """Hands-On ML's LNSimpleRNNCell (ch.15): SimpleRNNCell(activation=None), then
    LayerNormalization, then the activation; wrapped in keras.layers.RNN."""

    class LNSimpleRNNCell(keras.layers.Layer):
        def __init__(self, units, activation="tanh", **kwargs):
            super().__init__(**kwargs)
            self.state_size = units
            self.output_size = units
            self.simple_rnn_cell = keras.layers.SimpleRNNCell(units, activation=None)
            self.layer_norm = keras.layers.LayerNormalization()
            self.activation = keras.activations.get(activation)

        def build(self, input_shape):
            self.simple_rnn_cell.build(input_shape)
            self.layer_norm.build((None, self.state_size))
            self.built = True

        def call(self, inputs, states):
            outputs, _ = self.simple_rnn_cell(inputs, states)
            norm_outputs = self.activation(self.layer_norm(outputs))
            return norm_outputs, [norm_outputs]

    layer = keras.layers.RNN(LNSimpleRNNCell(units), return_sequences=True)
    layer.build((None, None, features))
    return layer


def test_matches_tf_keras_ln_simple_rnn_cell_and_sgd_steps():
    keras = import_keras()
    import tensorflow as tf

    units, features, B, T = 5, 3, 4, 6
    rng = np.random.default_rng(0)
    k_layer = _keras_ln_simple_rnn(keras, units, features)
    ours = SimpleRNN(units, layer_norm=True, return_sequences=True)
    ours.build((T, features))
    weights = [rng.normal(0, 0.5, (features, units)), rng.normal(0, 0.5, (units, units)),
               rng.normal(0, 0.2, units), 1 + rng.normal(0, 0.2, units), rng.normal(0, 0.2, units)]
    weights = [w.astype(np.float32) for w in weights]
    ours.set_weights(weights)
    cell = k_layer.cell
    k_vars = [cell.simple_rnn_cell.kernel, cell.simple_rnn_cell.recurrent_kernel,
              cell.simple_rnn_cell.bias, cell.layer_norm.gamma, cell.layer_norm.beta]
    for v, w in zip(k_vars, weights):
        v.assign(w)
    x = rng.normal(size=(B, T, features)).astype(np.float32)
    target = rng.normal(size=(B, T, units)).astype(np.float32)
    lr = 0.1
    for _ in range(3):  # a few SGD steps on the squared error, each side on its own
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tf.GradientTape() as tape:
                k_y = k_layer(x)
                k_loss = tf.reduce_sum((k_y - target) ** 2)
            k_grads = tape.gradient(k_loss, k_vars)
        y = ours.forward(x, training=True)
        np.testing.assert_allclose(y, k_y.numpy(), rtol=1e-3, atol=5e-5)
        ours.backward(2 * (y - target))
        for name, g, kg in zip(ours.weight_names, ours.grads, k_grads):
            np.testing.assert_allclose(g, kg.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
        ours.set_weights([w - lr * g for w, g in zip(ours.get_weights(), ours.grads)])
        for v, g in zip(k_vars, k_grads):
            v.assign_sub(lr * g)
    for w, v in zip(ours.get_weights(), k_vars):
        np.testing.assert_allclose(w, v.numpy(), rtol=1e-3, atol=5e-5)
