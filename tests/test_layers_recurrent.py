"""Recurrent layers against independent references: PyTorch (forward and autograd), the
kernels' functional API with explicit masks and truncation, per-step NumPy loops.

Sizes are awkward on purpose (primes, 1) and weights random, so swapped gates or a transposed
kernel cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from _optional import lazy
from fastrnn import ops
from fastrnn.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN, TimeDistributed

torch = lazy("torch")  # the PyTorch tests skip without it


def randomize(layer, seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    values = []
    for name, w in zip(layer.weight_names, layer.weights):
        v = rng.uniform(-scale, scale, w.shape)
        values.append(v + 1.0 if name.endswith("gamma") else v)
    layer.set_weights(values)


def make(cls, units, features, seed=0, **kwargs):
    layer = cls(units, dtype="float64", **kwargs)
    layer.build((None, features))
    randomize(layer, seed)
    return layer


def data(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- PyTorch
def _gru_to_torch(a, H):
    """Keras GRU columns (z, r, h) -> PyTorch rows (r, z, n)."""
    return np.concatenate([a[..., H:2 * H], a[..., :H], a[..., 2 * H:]], axis=-1)


def torch_module(layer):
    """A PyTorch RNN/LSTM/GRU holding `layer`'s weights (batch_first)."""
    names = dict(zip(layer.weight_names, layer.get_weights()))
    K, U = names["kernel"], names["recurrent_kernel"]
    F, H = K.shape[0], layer.units
    b = names.get("bias")
    if isinstance(layer, SimpleRNN):
        mod = torch.nn.RNN(F, H, batch_first=True, nonlinearity=layer.activation,
                           bias=b is not None)
        b_ih, b_hh = b, None if b is None else np.zeros(H)
    elif isinstance(layer, LSTM):
        mod = torch.nn.LSTM(F, H, batch_first=True, bias=b is not None)
        b_ih, b_hh = b, None if b is None else np.zeros(4 * H)
    else:
        mod = torch.nn.GRU(F, H, batch_first=True, bias=b is not None)
        K, U = _gru_to_torch(K, H), _gru_to_torch(U, H)
        b_ih, b_hh = (None, None) if b is None else (_gru_to_torch(b[0], H),
                                                     _gru_to_torch(b[1], H))
    mod = mod.double()  # not torch.set_default_dtype: that would leak into other test files
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.from_numpy(K.T.copy()))
        mod.weight_hh_l0.copy_(torch.from_numpy(U.T.copy()))
        if b is not None:
            mod.bias_ih_l0.copy_(torch.from_numpy(b_ih))
            mod.bias_hh_l0.copy_(torch.from_numpy(b_hh))
    return mod


def _torch_grads(layer, mod, H):
    """fastrnn-layout gradients from a PyTorch module after backward."""
    K = mod.weight_ih_l0.grad.numpy().T
    U = mod.weight_hh_l0.grad.numpy().T
    gru = isinstance(layer, GRU)
    if gru:  # swapping the first two blocks is its own inverse
        K, U = _gru_to_torch(K, H), _gru_to_torch(U, H)
    out = {"kernel": K, "recurrent_kernel": U}
    if mod.bias:
        b_ih, b_hh = mod.bias_ih_l0.grad.numpy(), mod.bias_hh_l0.grad.numpy()
        if gru:
            out["bias"] = np.stack([_gru_to_torch(b_ih, H), _gru_to_torch(b_hh, H)])
        else:
            out["bias"] = b_ih  # b_hh is pinned to zero and has the same gradient
    return out


TORCH_CASES = [
    (SimpleRNN, {}), (SimpleRNN, {"activation": "relu"}), (SimpleRNN, {"use_bias": False}),
    (LSTM, {}), (LSTM, {"use_bias": False}), (GRU, {}), (GRU, {"use_bias": False}),
]


@pytest.mark.parametrize("cls, kwargs", TORCH_CASES,
                         ids=[f"{c.__name__}-{k}" for c, k in TORCH_CASES])
@pytest.mark.parametrize("units, features, T", [(5, 3, 7), (1, 2, 3), (7, 1, 11)])
def test_matches_pytorch_forward_and_gradients(cls, kwargs, units, features, T):
    layer = make(cls, units, features, return_sequences=True, **kwargs)
    x = data(2, T, features)
    y = layer.forward(x, training=True)
    probe = data(2, T, units, seed=5)
    d_x = layer.backward(probe)

    mod = torch_module(layer)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt, _ = mod(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    (yt * torch.from_numpy(probe)).sum().backward()
    np.testing.assert_allclose(d_x, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    want = _torch_grads(layer, mod, units)
    for name, g in zip(layer.weight_names, layer.grads):
        np.testing.assert_allclose(g, want[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_lstm_return_state_matches_pytorch_and_float32_is_close():
    layer = make(LSTM, 4, 3, return_state=True)
    x = data(3, 6, 3)
    out, h, c = layer.forward(x)
    _, (ht, ct) = torch_module(layer)(torch.from_numpy(x))
    np.testing.assert_allclose(h, ht[0].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c, ct[0].detach().numpy(), atol=1e-12)
    np.testing.assert_array_equal(out, h)
    f32 = LSTM(4, return_state=True)
    f32.build((None, 3))
    f32.set_weights(layer.get_weights())
    out32, h32, c32 = f32.forward(x.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(c32, c, atol=1e-5)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_recurrent_dropout_is_one_mask_per_sequence_passed_to_the_kernel(cls):
    layer = make(cls, 5, 3, recurrent_dropout=0.4, dropout=0.3, return_sequences=True, seed=2)
    layer.seed = None
    layer._rng = np.random.default_rng(7)
    x = data(4, 6, 3)
    y = layer.forward(x, training=True)
    rec, inp = layer.last_recurrent_mask, layer.last_dropout_mask
    assert rec.shape == (4, 5) and inp.shape == (4, 3)
    np.testing.assert_allclose(np.unique(rec), [0.0, 1 / 0.6])
    np.testing.assert_allclose(np.unique(inp), [0.0, 1 / 0.7])
    w = layer.get_weights()
    xm = x * inp[:, None, :]  # the same input mask at every step
    if cls is SimpleRNN:
        want = ops.simple_rnn_forward(xm, None, *w, recurrent_mask=rec)[0]
    elif cls is LSTM:
        want = ops.lstm_forward(xm, None, None, *w, recurrent_mask=rec)[0]
    else:
        want = ops.gru_forward(xm, None, *w, recurrent_mask=rec)[0]
    # Not bit-equal: the kernel's SIMD path may depend on the arrays' alignment.
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-15)
    # The same seed draws the same masks; inference uses none.
    again = make(cls, 5, 3, recurrent_dropout=0.4, dropout=0.3, return_sequences=True, seed=2)
    again.seed = None
    again._rng = np.random.default_rng(7)
    np.testing.assert_allclose(again.forward(x, training=True), y, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(again.last_recurrent_mask, rec)
    plain = layer.forward(x, training=False)
    assert layer.last_recurrent_mask is None
    if cls is SimpleRNN:
        np.testing.assert_array_equal(plain, ops.simple_rnn_forward(x, None, *w)[0])


def test_simple_rnn_recurrent_mask_matches_a_per_step_numpy_loop():
    layer = make(SimpleRNN, 3, 2, recurrent_dropout=0.5, return_sequences=True)
    x = data(2, 5, 2)
    y = layer.forward(x, training=True)
    m = layer.last_recurrent_mask
    K, U, b = layer.get_weights()
    h = np.zeros((2, 3))
    for t in range(5):
        h = np.tanh(x[:, t] @ K + (m * h) @ U + b)  # the same m at every step
        np.testing.assert_allclose(y[:, t], h, atol=1e-12)


# ----------------------------------------------------------------------------- truncation
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncate_bptt_equals_ops_truncate(cls, k):
    layer = make(cls, 3, 2, return_sequences=True, truncate_bptt=k)
    x = data(2, 7, 2)
    probe = data(2, 7, 3, seed=3)
    layer.forward(x, training=True)
    d_x = layer.backward(probe)
    w = layer.get_weights()
    if cls is SimpleRNN:
        *_, tape = ops.simple_rnn_forward(x, None, *w)
        g = ops.simple_rnn_backward(tape, probe, truncate=k)
    elif cls is LSTM:
        *_, tape = ops.lstm_forward(x, None, None, *w)
        g = ops.lstm_backward(tape, probe, truncate=k)
    else:
        *_, tape = ops.gru_forward(x, None, *w)
        g = ops.gru_backward(tape, probe, truncate=k)
    np.testing.assert_array_equal(d_x, g["x"])
    for name, grad in zip(layer.weight_names, layer.grads):
        np.testing.assert_array_equal(grad, g[name])
    full = make(cls, 3, 2, return_sequences=True)
    full.forward(x, training=True)
    assert not np.allclose(full.backward(probe), d_x)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_truncation_cuts_the_gradient_k_steps_back(cls, layer_norm):
    """Loss on the last output only: inputs older than k steps get no gradient, the last k
    steps get exactly the full gradient (fast path and layer-norm path alike)."""
    T, k = 8, 3
    x = data(2, T, 2)
    probe = data(2, 4, seed=4)
    grads = {}
    for trunc in (None, k):
        layer = make(cls, 4, 2, truncate_bptt=trunc, layer_norm=layer_norm)
        layer.forward(x, training=True)
        grads[trunc] = layer.backward(probe)
    np.testing.assert_array_equal(grads[k][:, :T - k], 0)
    np.testing.assert_allclose(grads[k][:, T - k:], grads[None][:, T - k:], atol=1e-13)
    assert np.abs(grads[None][:, :T - k]).max() > 1e-6
    # k >= T is full BPTT.
    layer = make(cls, 4, 2, truncate_bptt=T, layer_norm=layer_norm)
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.backward(probe), grads[None], atol=1e-13)


# ----------------------------------------------------------------------------- stateful
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_stateful_carries_state_until_reset(cls, layer_norm):
    x = data(3, 9, 2)
    whole = make(cls, 4, 2, return_sequences=True, layer_norm=layer_norm).forward(x)
    layer = make(cls, 4, 2, return_sequences=True, stateful=True, layer_norm=layer_norm)
    parts = [layer.forward(x[:, :4]), layer.forward(x[:, 4:7], training=True),
             layer.forward(x[:, 7:])]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-13)
    assert len(layer.states) == (2 if cls is LSTM else 1)
    with pytest.raises(ValueError, match="fixed batch size.*batch size 3, got 2"):
        layer.forward(x[:2, :4])
    layer.reset_states()
    assert layer.states is None
    np.testing.assert_array_equal(layer.forward(x[:, :4]), parts[0])
    layer.reset_states()
    layer.forward(x[:2, :4])  # after a reset, a new batch size is fine


def test_stateful_declared_batch_size_and_gradient_stops_at_the_carried_state():
    layer = make(LSTM, 3, 2, stateful=True, batch_size=2)
    with pytest.raises(ValueError, match="batch size 2, got 3"):
        layer.forward(data(3, 4, 2))
    x = data(2, 8, 2)
    layer.forward(x[:, :4])
    layer.forward(x[:, 4:], training=True)
    d_x = layer.backward(np.ones((2, 3)))
    h, c = layer.initial_state_grads
    assert h.shape == (2, 3) and c.shape == (2, 3)
    # Same as an explicit initial state: the carried state is a constant input.
    fresh = make(LSTM, 3, 2)
    carried = make(LSTM, 3, 2, return_state=True).forward(x[:, :4])[1:]
    fresh.forward(x[:, 4:], training=True, initial_state=carried)
    np.testing.assert_allclose(fresh.backward(np.ones((2, 3))), d_x, atol=1e-13)


# ----------------------------------------------------------------------------- direction
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_go_backwards_processes_the_reversed_sequence(cls):
    x = data(2, 6, 3)
    back = make(cls, 4, 3, go_backwards=True, return_sequences=True)
    fwd = make(cls, 4, 3, return_sequences=True)
    y = back.forward(x, training=True)
    np.testing.assert_allclose(y, fwd.forward(x[:, ::-1].copy(), training=True), atol=1e-15)
    probe = data(2, 6, 4, seed=9)
    np.testing.assert_allclose(back.backward(probe), fwd.backward(probe)[:, ::-1], atol=1e-14)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(merge_mode):
    x = data(3, 5, 2)
    bi = Bidirectional(GRU(4, return_sequences=True, dtype="float64"), merge_mode=merge_mode)
    bi.build((None, 2))
    randomize(bi)
    fw_w, bw_w = bi.get_weights()[:3], bi.get_weights()[3:]
    y_f = ops.gru_forward(x, None, *fw_w)[0]
    y_b = ops.gru_forward(x[:, ::-1], None, *bw_w)[0][:, ::-1]  # re-reversed, as in Keras
    want = {"concat": np.concatenate([y_f, y_b], -1), "sum": y_f + y_b, "mul": y_f * y_b,
            "ave": (y_f + y_b) / 2, None: [y_f, y_b]}[merge_mode]
    got = bi.forward(x)
    for a, b in zip(got if merge_mode is None else [got], want if merge_mode is None
                    else [want]):
        np.testing.assert_allclose(a, b, atol=1e-13)
    shape = bi.compute_output_shape((5, 2))
    assert shape == ([(5, 4), (5, 4)] if merge_mode is None else
                     (5, 8) if merge_mode == "concat" else (5, 4))


def test_bidirectional_last_output_state_and_names():
    x = data(2, 6, 3)
    bi = Bidirectional(LSTM(3, return_state=True, dtype="float64", name="enc"))
    bi.build((None, 3))
    randomize(bi)
    out, h_f, c_f, h_b, c_b = bi.forward(x)
    w = bi.get_weights()
    _, hf, cf, _ = ops.lstm_forward(x, None, None, *w[:3])
    _, hb, cb, _ = ops.lstm_forward(x[:, ::-1], None, None, *w[3:])
    np.testing.assert_allclose(out, np.concatenate([hf, hb], -1), atol=1e-13)
    for a, b in ((h_f, hf), (c_f, cf), (h_b, hb), (c_b, cb)):
        np.testing.assert_allclose(a, b, atol=1e-13)
    assert bi.forward_layer.name == "forward_enc" and bi.backward_layer.name == "backward_enc"
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    assert bi.compute_output_shape((6, 3)) == [(6,), (3,), (3,), (3,), (3,)]
    seeded = Bidirectional(SimpleRNN(3, seed=4))
    assert seeded.backward_layer.seed == 5
    seeded.build((None, 2))
    assert not np.array_equal(seeded.get_weights()[0], seeded.get_weights()[3])


# ----------------------------------------------------------------------------- layer norm
def _torch_ln(a, gamma, beta, groups):
    B = a.shape[0]
    n = torch.nn.functional.layer_norm(a.reshape(B, groups, -1), (a.shape[1] // groups,),
                                       eps=1e-3)
    return n.reshape(B, -1) * gamma + beta


def torch_layer_norm_rnn(layer, x):
    """The documented layer-norm cells, step by step in PyTorch (autograd gives gradients)."""
    w = {n: torch.from_numpy(v.copy()).requires_grad_(True)
         for n, v in zip(layer.weight_names, layer.get_weights())}
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    H = layer.units
    K, U, g, b = w["kernel"], w["recurrent_kernel"], w["gamma"], w["beta"]
    bias = w.get("bias")
    h = torch.zeros(x.shape[0], H, dtype=torch.float64)
    c = torch.zeros(x.shape[0], H, dtype=torch.float64)
    outs = []
    for t in range(x.shape[1]):
        xk = xt[:, t] @ K
        hu = h @ U
        if isinstance(layer, SimpleRNN):
            a = xk + hu + (0 if bias is None else bias)
            n = _torch_ln(a, g, b, 1)
            h = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda v: v}[
                layer.activation](n)
        elif isinstance(layer, LSTM):
            n = _torch_ln(xk + hu + (0 if bias is None else bias), g, b, 4)
            i, f = torch.sigmoid(n[:, :H]), torch.sigmoid(n[:, H:2 * H])
            cand, o = torch.tanh(n[:, 2 * H:3 * H]), torch.sigmoid(n[:, 3 * H:])
            c = f * c + i * cand
            h = o * torch.tanh(c)
        else:
            if bias is not None:
                xk, hu = xk + bias[0], hu + bias[1]
            zr = torch.sigmoid(_torch_ln(xk[:, :2 * H] + hu[:, :2 * H], g[:2 * H], b[:2 * H], 2))
            z, r = zr[:, :H], zr[:, H:]
            n = torch.tanh(_torch_ln(xk[:, 2 * H:] + r * hu[:, 2 * H:], g[2 * H:], b[2 * H:], 1))
            h = z * h + (1 - z) * n
        outs.append(h)
    return torch.stack(outs, 1), xt, w


@pytest.mark.parametrize("cls, kwargs", [
    (SimpleRNN, {}), (SimpleRNN, {"activation": "relu"}), (SimpleRNN, {"use_bias": False}),
    (LSTM, {}), (GRU, {}), (GRU, {"use_bias": False}),
])
def test_layer_norm_matches_pytorch_cells(cls, kwargs):
    layer = make(cls, 5, 3, return_sequences=True, layer_norm=True, **kwargs)
    randomize(layer, scale=0.9)
    x = data(2, 6, 3)
    y = layer.forward(x, training=True)
    probe = data(2, 6, 5, seed=8)
    d_x = layer.backward(probe)
    yt, xt, w = torch_layer_norm_rnn(layer, x)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    (yt * torch.from_numpy(probe)).sum().backward()
    np.testing.assert_allclose(d_x, xt.grad.numpy(), atol=1e-11)
    for name, g in zip(layer.weight_names, layer.grads):
        np.testing.assert_allclose(g, w[name].grad.numpy(), atol=1e-11, err_msg=name)


def test_layer_norm_normalises_each_step():
    layer = make(SimpleRNN, 6, 2, return_sequences=True, layer_norm=True, activation="linear")
    layer.set_weights(layer.get_weights()[:3] + [np.ones(6), np.zeros(6)])
    y = layer.forward(data(3, 4, 2) * 50)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-10)
    np.testing.assert_allclose(y.var(-1), 1, atol=1e-3)


# ----------------------------------------------------------------------------- misc
def test_none_time_length_and_time_distributed_dense_per_step():
    rnn = SimpleRNN(4, return_sequences=True, input_shape=(None, 2))
    assert rnn.input_shape == (None, 2) and not rnn.built
    rnn.build(rnn.input_shape)
    assert rnn.output_shape == (None, 4)
    for T in (1, 3, 8):
        assert rnn.forward(np.zeros((2, T, 2), np.float32)).shape == (2, T, 4)
    td = TimeDistributed(Dense(3))
    d = Dense(3)
    y = rnn.forward(data(2, 5, 2))
    td.build((None, 4))
    d.build((None, 4))
    d.set_weights(td.get_weights())
    np.testing.assert_allclose(td.forward(y), d.forward(y), rtol=1e-6)
    np.testing.assert_allclose(td.forward(y)[:, 2], d.forward(y[:, 2]), rtol=1e-6)


def test_empty_time_axis_returns_the_initial_state():
    layer = make(LSTM, 3, 2, return_state=True, return_sequences=True)
    out, h, c = layer.forward(np.zeros((2, 0, 2)))
    assert out.shape == (2, 0, 3)
    np.testing.assert_array_equal(h, 0)


# ----------------------------------------------------------------------------- bad gradients
@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("sequences", [True, False])
def test_backward_with_a_wrongly_shaped_gradient_names_it(cls, sequences):
    # The layers call the core without fastrnn.ops's argument checks: the core's own checks
    # must still name the argument and the shapes, and the layer stay usable afterwards.
    layer = make(cls, 5, 3, return_sequences=sequences)
    x = data(4, 6, 3)
    y = layer.forward(x, training=True)
    name, want = ("d_outputs", r"\(4, 6, 5\)") if sequences else ("d_h_last", r"\(4, 5\)")
    with pytest.raises(ValueError, match=rf"`{name}`.*{want}.*\(4, 6, 7\)"):
        layer.backward(np.ones((4, 6, 7)))
    d_x = layer.backward(np.ones_like(y))
    assert d_x.shape == x.shape and np.isfinite(d_x).all()


def test_backward_of_a_reversed_layer_takes_a_strided_gradient():
    # A strided (non-contiguous) upstream gradient is made contiguous, not rejected.
    layer = make(LSTM, 4, 2, return_sequences=True, go_backwards=True)
    x = data(3, 5, 2)
    layer.forward(x, training=True)
    d = data(3, 5, 8, seed=2)
    strided = layer.backward(d[:, :, ::2])
    layer.forward(x, training=True)
    np.testing.assert_array_equal(strided, layer.backward(np.ascontiguousarray(d[:, :, ::2])))
