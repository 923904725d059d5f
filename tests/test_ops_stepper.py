"""ops.Stepper: streaming one step at a time must equal the whole-sequence forward."""

import numpy as np
import pytest

from _tolerance import assert_within, recurrent_rtol
from fastrnn import ops

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _weights(cell, I, H, dtype, rng):
    g = GATES[cell]
    k = (rng.standard_normal((I, g * H)) * 0.5).astype(dtype)
    u = (rng.standard_normal((H, g * H)) * 0.5).astype(dtype)
    b = (rng.standard_normal((2, g * H) if cell == "gru" else (g * H,)) * 0.5).astype(dtype)
    return k, u, b


def _forward(cell, x, k, u, b, activation):
    if cell == "lstm":
        out, h, c, _ = ops.lstm_forward(x, None, None, k, u, b)
        return out, [h, c]
    if cell == "gru":
        out, h, _ = ops.gru_forward(x, None, k, u, b)
        return out, [h]
    out, h, _ = ops.simple_rnn_forward(x, None, k, u, b, activation)
    return out, [h]


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,T,I,H", [(1, 7, 14, 20), (3, 5, 2, 17), (2, 1, 1, 1)])
def test_steps_equal_forward(cell, dtype, B, T, I, H):
    rng = np.random.default_rng(B * 100 + H)
    k, u, b = _weights(cell, I, H, dtype, rng)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    activation = "relu" if cell == "simple_rnn" and H == 17 else "tanh"
    stepper = ops.Stepper(cell, k, u, b, batch_size=B, activation=activation, dtype=dtype)
    outs = np.stack([stepper.step(x[:, t]) for t in range(T)], axis=1)
    out, states = _forward(cell, x, k, u, b, activation)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(outs, out, rtol=tol, atol=tol)
    for got, want in zip(stepper.states, states):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_reset_and_given_states():
    rng = np.random.default_rng(0)
    k, u, b = _weights("lstm", 3, 4, np.float32, rng)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    st = ops.Stepper("lstm", k, u, b, batch_size=2)
    first = st.step(x)
    second = st.step(x)
    assert not np.allclose(first, second)
    st.reset_states()
    np.testing.assert_array_equal(st.step(x), first)
    h0 = rng.standard_normal((2, 4)).astype(np.float32)
    c0 = rng.standard_normal((2, 4)).astype(np.float32)
    st.reset_states([h0, c0])
    _, h, c, _ = ops.lstm_forward(x[:, None], h0, c0, k, u, b)
    np.testing.assert_allclose(st.step(x), h, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(st.states[1], c, rtol=1e-6, atol=1e-6)


def test_bad_input_is_a_clear_error():
    rng = np.random.default_rng(0)
    k, u, b = _weights("gru", 3, 4, np.float32, rng)
    with pytest.raises(ValueError, match="`cell`"):
        ops.Stepper("rnn", k, u, b)
    with pytest.raises(ValueError, match="`recurrent_kernel`"):
        ops.Stepper("lstm", k, u, b)
    with pytest.raises(ValueError, match="`batch_size`"):
        ops.Stepper("gru", k, u, b, batch_size=0)
    with pytest.raises(ValueError, match="`activation`"):
        ops.Stepper("gru", k, u, b, activation="relu")
    st = ops.Stepper("gru", k, u, b, batch_size=2)
    with pytest.raises(ValueError, match=r"`x`: expected shape \(2, 3\)"):
        st.step(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="`x`"):
        st.step(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="`states`"):
        st.reset_states([np.zeros((2, 4))] * 2)


@pytest.mark.parametrize("cell", list(GATES))
def test_backward_without_input_gradient(cell):
    """input_grad=False skips d_x and leaves every other gradient unchanged."""
    rng = np.random.default_rng(3)
    k, u, b = _weights(cell, 5, 7, np.float64, rng)
    x = rng.standard_normal((4, 6, 5))
    d = rng.standard_normal((4, 6, 7))
    if cell == "lstm":
        *_, tape = ops.lstm_forward(x, None, None, k, u, b)
    else:
        *_, tape = getattr(ops, f"{cell}_forward")(x, None, k, u, b)
    backward = getattr(ops, f"{cell}_backward")
    full, partial = backward(tape, d), backward(tape, d, input_grad=False)
    assert full["x"].shape == x.shape and partial["x"] is None
    for name, g in full.items():
        if name != "x":
            np.testing.assert_array_equal(partial[name], g)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("B,T,I,H", [(3, 7, 4, 5), (64, 30, 16, 64), (8, 6, 8, 464)])
@pytest.mark.parametrize("masked", [False, True])
def test_inference_without_tape_matches_training_forward(cell, B, T, I, H, masked):
    """keep_tape=False (one step of gate values, projection step by step) gives the same
    outputs and last states as the forward that records a tape, on every threading path."""
    rng = np.random.default_rng(B + H)
    k, u, b = _weights(cell, I, H, np.float32, rng)
    k *= 0.5
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    mask = ((rng.random((B, H)) < 0.75) / 0.75).astype(np.float32) if masked else None
    if cell == "lstm":
        c0 = rng.standard_normal((B, H)).astype(np.float32)
        with_tape = ops.lstm_forward(x, h0, c0, k, u, b, recurrent_mask=mask)
        without = ops.lstm_forward(x, h0, c0, k, u, b, recurrent_mask=mask, keep_tape=False)
    else:
        forward = getattr(ops, f"{cell}_forward")
        with_tape = forward(x, h0, k, u, b, recurrent_mask=mask)
        without = forward(x, h0, k, u, b, recurrent_mask=mask, keep_tape=False)
    assert without[-1] is None and with_tape[-1] is not None
    # the projection of the inputs step by step, or for all steps in one product: other
    # products, other rounding (the states of an LSTM's cell grow, hence the scale)
    rtol = recurrent_rtol(np.float32, B, T, I, H)
    for got, want in zip(without[:-1], with_tape[:-1]):
        assert_within(got, want, rtol)


def test_reused_buffers_never_alias_live_arrays():
    """The core recycles the memory of large returned arrays once they are freed: arrays that
    are still alive must never share memory with new ones, and recycled ones hold new values."""
    rng = np.random.default_rng(11)
    k, u, b = _weights("lstm", 8, 64, np.float32, rng)
    x = rng.standard_normal((32, 40, 8)).astype(np.float32)  # outputs and tape well over 64 KiB
    first = ops.lstm_forward(x, None, None, k, u, b)
    kept = first[0].copy()
    second = ops.lstm_forward(2 * x, None, None, k, u, b)
    assert not np.shares_memory(first[0], second[0])
    np.testing.assert_array_equal(first[0], kept)  # the live array was not overwritten
    del first
    third = ops.lstm_forward(x, None, None, k, u, b)  # may reuse first's memory
    np.testing.assert_array_equal(third[0], kept)
    assert not np.shares_memory(third[0], second[0])
