"""Step masks (Keras masking) in the kernels: ``fastrnn.ops.*_forward(..., mask=)`` against the
NumPy reference, float64 finite differences, PyTorch's packed sequences (right padding), the
defining property (a masked row equals the same row with its masked steps deleted), every
threads setting, and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _cells import (
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    backward,
    forward,
    grad_names,
    make_case,
    rtol_for,
    upstream,
)
from fastrnn import ops
from fastrnn import reference as ref


def step_mask(rng, kind: str, B: int, T: int) -> np.ndarray:
    """(B, T) bool masks of a kind: right/left padding, holes, a fully masked row, all kept."""
    lengths = rng.integers(0, T + 1, size=B)
    lengths[0] = T  # one full row
    if B > 1:
        lengths[1] = 1 if T > 0 else 0  # one row of a single step
    t = np.arange(T)[None, :]
    if kind == "right":
        return t < lengths[:, None]
    if kind == "left":
        return t >= T - lengths[:, None]
    if kind == "holes":
        m = rng.uniform(size=(B, T)) < 0.6
        if B > 2:
            m[2] = False  # a fully masked row
        return m
    assert kind == "all"
    return np.ones((B, T), bool)


MASK_KINDS = ["right", "left", "holes", "all"]


def masked_case(rng, cell, activation, B, T, I, H, dtype, kind, **kw):  # noqa: E741
    case = make_case(rng, cell, B, T, I, H, dtype, activation=activation, **kw)
    return case.with_(step_mask=step_mask(rng, kind, B, T))


def run(mod, case, d_out, d_states, truncate=None):
    out, states, tape = forward(mod, case)
    return out, states, backward(mod, case.cell, tape, d_out, d_states, truncate)


def compare(case, d_out, d_states, truncate=None, rtol=None):
    rtol = rtol or rtol_for(case.dtype, (*case.x.shape, case.recurrent_kernel.shape[0]))
    got = run(ops, case, d_out, d_states, truncate)
    want = run(ref, case, d_out, d_states, truncate)
    assert_close(got[0], want[0], rtol, "outputs")
    for name in want[1]:
        assert_close(got[1][name], want[1][name], rtol, f"state {name}")
    for name in grad_names(case.cell):
        assert_close(got[2][name], want[2][name], rtol, f"d_{name}")
    return got


# ----------------------------------------------------------------------------- the reference
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("truncate", [None, 3], ids=["full", "trunc3"])
def test_masked_kernels_match_reference(variant, kind, dtype, truncate):
    cell, activation = variant
    rng = np.random.default_rng(11)
    case = masked_case(rng, cell, activation, 6, 9, 5, 7, dtype, kind, mask=True)
    d_out, d_states = upstream(rng, case)
    compare(case, d_out, d_states, truncate)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_masked_kernels_without_optional_inputs(variant):
    cell, activation = variant
    rng = np.random.default_rng(3)
    case = masked_case(rng, cell, activation, 5, 8, 3, 5, np.float64, "holes",
                       h0=False, c0=False, bias=False)
    d_out, _ = upstream(rng, case)
    compare(case, d_out, None)
    compare(case, None, upstream(rng, case)[1])


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_the_reference_masks_as_the_definition_says(variant):
    """The oracle itself, by hand: a masked step repeats the state, a kept step is the cell."""
    cell, activation = variant
    rng = np.random.default_rng(8)
    case = masked_case(rng, cell, activation, 4, 6, 3, 5, np.float64, "holes", mask=True)
    out, _, _ = forward(ref, case)
    m = case.step_mask
    first = np.argmax(m, axis=1)
    for b in range(4):
        if not m[b].any():
            np.testing.assert_array_equal(out[b], np.broadcast_to(case.h0[b], out[b].shape))
            continue
        for t in range(6):
            if not m[b, t]:
                prev = out[b, t - 1] if t > 0 else case.h0[b]
                np.testing.assert_array_equal(out[b, t], prev)
        # up to the first kept step the state is h0: that step is one step of the cell from h0
        t0 = first[b]
        one, _, _ = forward(ref, case.with_(
            x=case.x[b:b + 1, t0:t0 + 1], h0=case.h0[b:b + 1], mask=case.mask[b:b + 1],
            c0=None if case.c0 is None else case.c0[b:b + 1], step_mask=None))
        np.testing.assert_allclose(out[b, t0], one[0, 0], rtol=1e-12)
        assert not np.allclose(one[0, 0], case.h0[b])


def test_all_kept_mask_is_bit_identical_to_no_mask():
    rng = np.random.default_rng(0)
    for cell, activation in VARIANTS:
        case = make_case(rng, cell, 7, 6, 4, 9, np.float32, activation=activation, mask=True)
        d_out, d_states = upstream(rng, case)
        a = run(ops, case, d_out, d_states)
        b = run(ops, case.with_(step_mask=np.ones((7, 6), bool)), d_out, d_states)
        np.testing.assert_array_equal(a[0], b[0])
        for name in grad_names(cell):
            np.testing.assert_array_equal(a[2][name], b[2][name])


# ----------------------------------------------------------------------------- deleted steps
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("kind", ["right", "left", "holes"])
def test_masked_row_equals_the_row_with_its_masked_steps_deleted(variant, kind):
    """Per row: last state(s), outputs at kept steps and every gradient equal those of the row
    run alone on its kept steps; no gradient reaches a masked step's input."""
    cell, activation = variant
    rng = np.random.default_rng(21)
    B, T = 6, 8
    case = masked_case(rng, cell, activation, B, T, 3, 5, np.float64, kind, mask=True)
    m = case.step_mask
    d_out, d_states = upstream(rng, case)
    d_out = d_out * m[:, :, None]  # a loss on the kept steps' outputs only
    out, states, grads = run(ops, case, d_out, d_states)
    assert np.all(grads["x"][~m] == 0.0)
    weight_sums = {n: 0.0 for n in ("kernel", "recurrent_kernel", "bias")}
    for b in range(B):
        keep = m[b]
        row = case.with_(
            x=np.ascontiguousarray(case.x[b:b + 1, keep]), h0=case.h0[b:b + 1],
            c0=None if case.c0 is None else case.c0[b:b + 1],
            mask=case.mask[b:b + 1], step_mask=None,
        )
        r_d_states = {k: v[b:b + 1] for k, v in d_states.items()}
        r_out, r_states, r_grads = run(ops, row, np.ascontiguousarray(d_out[b:b + 1, keep]),
                                       r_d_states)
        for name in states:
            assert_close(states[name][b:b + 1], r_states[name], 1e-10, f"row {b} state {name}")
        assert_close(out[b:b + 1, keep], r_out, 1e-10, f"row {b} outputs")
        assert_close(grads["x"][b:b + 1, keep], r_grads["x"], 1e-10, f"row {b} d_x")
        assert_close(grads["h0"][b:b + 1], r_grads["h0"], 1e-10, f"row {b} d_h0")
        if cell == "lstm":
            assert_close(grads["c0"][b:b + 1], r_grads["c0"], 1e-10, f"row {b} d_c0")
        for n in weight_sums:
            weight_sums[n] = weight_sums[n] + r_grads[n]
    for n, total in weight_sums.items():
        assert_close(grads[n], total, 1e-10, f"d_{n} summed over rows")


# ----------------------------------------------------------------------------- gradients
def numeric_gradient(loss, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(a)
    flat, gf = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = loss()
        flat[i] = keep - eps
        down = loss()
        flat[i] = keep
        gf[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("kind", ["left", "holes"])
def test_masked_gradients_by_finite_differences(variant, kind):
    cell, activation = variant
    rng = np.random.default_rng(4)
    case = masked_case(rng, cell, activation, 3, 6, 2, 3, np.float64, kind, mask=True)
    d_out, d_states = upstream(rng, case)
    _, _, grads = run(ops, case, d_out, d_states)

    def loss():
        out, states, _ = forward(ops, case)
        total = float(np.sum(out * d_out))
        return total + sum(float(np.sum(states[k] * d_states[k])) for k in states)

    arrays = {"x": case.x, "h0": case.h0, "c0": case.c0, "kernel": case.kernel,
              "recurrent_kernel": case.recurrent_kernel, "bias": case.bias}
    for name in grad_names(cell):
        numeric = numeric_gradient(loss, arrays[name])
        assert_close(grads[name], numeric, 1e-6, f"d_{name}")


# ----------------------------------------------------------------------------- threads
@pytest.fixture
def threads_setting(request):
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fastrnn.set_num_threads(before)


# Batch split (odd batch), and units split over threads (wide layers), as test_ops_threads.
THREAD_SHAPES = [(64, 20, 16, 64), (37, 9, 5, 97), (32, 6, 8, 464), (32, 5, 8, 800)]


@pytest.mark.parametrize("threads_setting", [1, 2, 3], indirect=True)
@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[3], VARIANTS[4]],
                         ids=["rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("shape", THREAD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_masked_kernels_at_every_threads_setting(threads_setting, variant, shape):
    cell, activation = variant
    rng = np.random.default_rng(sum(shape))
    case = masked_case(rng, cell, activation, *shape, np.float64, "holes", mask=True)
    d_out, d_states = upstream(rng, case)
    compare(case, d_out, d_states, truncate=4)


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_right_padding_matches_torch_packed_sequences(cell):
    torch = pytest.importorskip("torch")
    from test_ops_torch import TorchCell

    rng = np.random.default_rng(17)
    B, T, H = 5, 7, 6
    case = masked_case(rng, cell, "tanh", B, T, 4, H, np.float64, "right")
    lengths = case.step_mask.sum(axis=1)
    lengths[lengths == 0] = 1  # torch rejects empty sequences
    case = case.with_(step_mask=np.arange(T)[None, :] < lengths[:, None])
    d_states = upstream(rng, case)[1]
    d_out = upstream(rng, case)[0] * case.step_mask[:, :, None]
    out, states, grads = run(ops, case, d_out, d_states)

    tc = TorchCell(case, torch.float64)
    x = tc.tensor(case.x)
    h0 = tc.tensor(case.h0[None])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    if cell == "lstm":
        c0 = tc.tensor(case.c0[None])
        y, (hn, cn) = tc.module(packed, (h0, c0))
    else:
        y, hn = tc.module(packed, h0)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    loss = (y * torch.from_numpy(d_out)).sum() + (hn[0] * torch.from_numpy(d_states["h"])).sum()
    if cell == "lstm":
        loss = loss + (cn[0] * torch.from_numpy(d_states["c"])).sum()
    loss.backward()
    m = case.step_mask
    np.testing.assert_allclose(out[m], y.detach().numpy()[m], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states["h"], hn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(states["c"], cn[0].detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grads["c0"], c0.grad[0].numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grads["x"], x.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grads["h0"], h0.grad[0].numpy(), rtol=1e-9, atol=1e-11)
    mod = tc.module
    np.testing.assert_allclose(grads["kernel"][:, tc.order].T, mod.weight_ih_l0.grad.numpy(),
                               rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(grads["recurrent_kernel"][:, tc.order].T,
                               mod.weight_hh_l0.grad.numpy(), rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- the rest
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masked_inference_without_tape_matches(cell):
    rng = np.random.default_rng(2)
    case = masked_case(rng, cell, None, 5, 9, 3, 6, np.float32, "holes")
    out, states, _ = forward(ops, case)
    fwd = getattr(ops, f"{cell}_forward")
    if cell == "lstm":
        o2, h2, c2, tape = fwd(case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel,
                               case.bias, mask=case.step_mask, keep_tape=False)
        np.testing.assert_array_equal(c2, states["c"])
    else:
        o2, h2, tape = fwd(case.x, case.h0, case.kernel, case.recurrent_kernel, case.bias,
                           mask=case.step_mask, keep_tape=False)
    assert tape is None
    np.testing.assert_array_equal(o2, out)
    np.testing.assert_array_equal(h2, states["h"])


def test_mask_accepts_integers_and_uint8():
    rng = np.random.default_rng(1)
    case = masked_case(rng, "lstm", None, 4, 5, 3, 4, np.float64, "holes")
    out = forward(ops, case)[0]
    for m in (case.step_mask.astype(np.uint8), case.step_mask.astype(np.int64) * 3,
              case.step_mask.tolist(), np.asfortranarray(case.step_mask)):
        np.testing.assert_array_equal(forward(ops, case.with_(step_mask=m))[0], out)


@pytest.mark.parametrize(
    "value, error, words",
    [
        (np.ones((4, 6), bool), ValueError, ["`mask`", "(4, 5)", "(4, 6)"]),
        (np.ones((4,), bool), ValueError, ["`mask`", "(batch, time)"]),
        (np.ones((4, 5), np.float32), TypeError, ["`mask`", "float32"]),
        (np.array([["a"] * 5] * 4), TypeError, ["`mask`"]),
    ],
)
@pytest.mark.parametrize("module", [ops, ref], ids=["ops", "reference"])
def test_bad_masks_are_named(value, error, words, module):
    rng = np.random.default_rng(1)
    case = make_case(rng, "gru", 4, 5, 3, 4, np.float64)
    with pytest.raises(error) as info:
        forward(module, case.with_(step_mask=value))
    for w in words[:1 if module is ref else None]:
        assert w in str(info.value)


def test_core_checks_the_step_mask_too():
    """The layers call the core without ops's checks; the core still names a bad mask."""
    rng = np.random.default_rng(1)
    case = make_case(rng, "lstm", 4, 5, 3, 4, np.float64)
    args = (case.x, case.h0, case.c0, case.kernel, case.recurrent_kernel, case.bias)
    for bad in (np.ones((4, 4), bool), np.ones((4, 5), np.int32), np.ones((4, 10), bool)[:, ::2]):
        with pytest.raises(ValueError, match="step_mask"):
            fastrnn._core.lstm_forward(*args, step_mask=bad)


def test_empty_batch_and_zero_steps_with_a_mask():
    rng = np.random.default_rng(1)
    for B, T in ((0, 4), (3, 0)):
        case = make_case(rng, "lstm", B, T, 3, 4, np.float64)
        case = case.with_(step_mask=np.ones((B, T), bool))
        out, states, tape = forward(ops, case)
        assert out.shape == (B, T, 4)
        np.testing.assert_array_equal(states["h"], case.h0)
        g = backward(ops, "lstm", tape, None, None)
        assert g["x"].shape == (B, T, 3)
