"""Bad input gets a clear error (naming the argument, the rule and the value), never a crash;
and the awkward-but-valid inputs (non-contiguous, Fortran order, float16, T = 0, B = 0,
NaN/inf, huge values, a tape used twice) give defined results."""

from __future__ import annotations

import re

import numpy as np
import pytest

from _cells import (
    GATES,
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
from fastrnn import _core, ops
from fastrnn import reference as ref

CELLS = ["simple_rnn", "lstm", "gru"]
# "The same result" for float64 runs of equal inputs. Not bitwise: the kernels' last bit can
# depend on the address alignment of the arrays NumPy allocates for them (reported).
SAME = 1e-13
B, T, I, H = 2, 3, 4, 5  # noqa: E741


def case_for(cell, dtype=np.float32, seed=0, **options):
    return make_case(np.random.default_rng(seed), cell, B, T, I, H, dtype, **options)


def shape_error(name, expected, got):
    """The pattern of a wrong-shape message: argument name, expected shape, received shape."""
    return re.escape(f"`{name}`") + r".*expected.*" + re.escape(str(expected)) + r".*got " + (
        re.escape(str(got))
    )


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("cell", CELLS)
def test_x_must_be_3d(cell):
    case = case_for(cell)
    for bad in (case.x[0], case.x[None], np.float32(1.0)):
        with pytest.raises(ValueError, match=r"`x`: expected a 3-D array .* got shape"):
            forward(ops, case.with_(x=bad))


@pytest.mark.parametrize("cell", CELLS)
def test_x_needs_a_feature(cell):
    case = case_for(cell)
    with pytest.raises(ValueError, match=r"`x`: expected at least one feature, got shape"):
        forward(ops, case.with_(x=np.zeros((B, T, 0), np.float32)))


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_kernel_shape(cell):
    case, g = case_for(cell), GATES[cell]
    bad = [
        np.zeros((H, g * H + 1), np.float32),  # not gates * units wide
        np.zeros((H + 1, g * H), np.float32),
        np.zeros((0, 0), np.float32),  # no units
        np.zeros((g * H,), np.float32),  # wrong rank
    ]
    for u in bad:
        with pytest.raises(ValueError, match=rf"`recurrent_kernel`: expected shape \(units, {g} \* "
                           rf"units\) with units >= 1, got {re.escape(str(u.shape))}"):
            forward(ops, case.with_(recurrent_kernel=u))


@pytest.mark.parametrize("cell", CELLS)
def test_wrong_shape_of_each_argument_names_it(cell):
    case, G = case_for(cell), GATES[cell] * H
    wrong = {
        "h0": ((B, H + 1), (B, H)),
        "kernel": ((I + 1, G), (I, G)),
        "bias": ((G + 1,), (2, G) if cell == "gru" else (G,)),
        "mask": ((B + 1, H), (B, H)),
    }
    if cell == "lstm":
        wrong["c0"] = ((B, H - 1), (B, H))
    if cell == "gru":
        wrong["bias_rows"] = ((G,), (2, G))  # a Keras reset_after=False bias
    for name, (got, expected) in wrong.items():
        arg = name.replace("_rows", "")
        message_name = "recurrent_mask" if arg == "mask" else arg
        bad = case.with_(**{arg: np.zeros(got, np.float32)})
        with pytest.raises(ValueError, match=shape_error(message_name, expected, got)):
            forward(ops, bad)
    # A wrong rank is a wrong shape too.
    with pytest.raises(ValueError, match=shape_error("h0", (B, H), (B, 1, H))):
        forward(ops, case.with_(h0=np.zeros((B, 1, H), np.float32)))


@pytest.mark.parametrize("cell", CELLS)
def test_wrong_shape_of_upstream_gradients(cell):
    case = case_for(cell)
    _, _, tape = forward(ops, case)
    d_out, d_states = upstream(np.random.default_rng(1), case)
    with pytest.raises(ValueError, match=shape_error("d_outputs", (B, T, H), (B, T + 1, H))):
        backward(ops, cell, tape, np.zeros((B, T + 1, H), np.float32), d_states)
    with pytest.raises(ValueError, match=shape_error("d_outputs", (B, T, H), (B, H))):
        backward(ops, cell, tape, np.zeros((B, H), np.float32), d_states)
    for k in d_states:
        bad = dict(d_states, **{k: np.zeros((B + 1, H), np.float32)})
        with pytest.raises(ValueError, match=shape_error(f"d_{k}_last", (B, H), (B + 1, H))):
            backward(ops, cell, tape, d_out, bad)


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64, object])
def test_non_float_dtype_is_a_type_error(cell, dtype):
    case = case_for(cell)
    pattern = r"expected a float32 or float64 array, got dtype"
    with pytest.raises(TypeError, match=r"`x`: " + pattern):
        forward(ops, case.with_(x=case.x.astype(dtype)))
    with pytest.raises(TypeError, match=r"`kernel`: " + pattern):
        forward(ops, case.with_(kernel=case.kernel.astype(dtype)))
    with pytest.raises(TypeError, match=r"`recurrent_kernel`: " + pattern):
        forward(ops, case.with_(recurrent_kernel=case.recurrent_kernel.astype(dtype)))


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_dtypes_are_a_type_error(cell):
    case32, case64 = case_for(cell, np.float32, mask=True), case_for(cell, np.float64, mask=True)
    names = ["h0", "c0", "kernel", "recurrent_kernel", "bias", "mask"]
    for name in names if cell == "lstm" else [n for n in names if n != "c0"]:
        message_name = "recurrent_mask" if name == "mask" else name
        for x_case, other in ((case32, case64), (case64, case32)):
            bad = x_case.with_(**{name: getattr(other, name)})
            with pytest.raises(TypeError, match=rf"`{message_name}`: its dtype \w+ differs from "
                               rf"`x`'s {x_case.dtype}"):
                forward(ops, bad)
    _, _, tape = forward(ops, case32)
    d_out, d_states = upstream(np.random.default_rng(1), case64)
    with pytest.raises(TypeError, match=r"`d_outputs`: its dtype float64 differs"):
        backward(ops, cell, tape, d_out, None)


@pytest.mark.parametrize("cell", CELLS)
def test_float16_is_computed_in_float32(cell):
    case = case_for(cell, np.float32)
    as16 = {k: getattr(case, k).astype(np.float16) for k in ("x", "h0", "kernel",
                                                            "recurrent_kernel", "bias")}
    half = case.with_(**as16)
    exact = case.with_(**{k: v.astype(np.float32) for k, v in as16.items()})
    out16, states16, tape16 = forward(ops, half)
    out32, states32, tape32 = forward(ops, exact)
    assert out16.dtype == np.float32
    assert_close(out16, out32, 1e-6, "outputs")
    for k in states32:
        assert_close(states16[k], states32[k], 1e-6, f"{k}_last")
    d_out = np.ones(out32.shape, np.float16)
    g16 = backward(ops, cell, tape16, d_out)
    g32 = backward(ops, cell, tape32, d_out.astype(np.float32))
    for k in g32:
        assert_close(g16[k], g32[k], 1e-6, f"d_{k}")


# ----------------------------------------------------------------------------- options
def test_bad_activation():
    case = case_for("simple_rnn")
    for bad in ("sigmoid", "Tanh", "", None):
        with pytest.raises(ValueError, match=r"`activation`: expected one of .*tanh.*got "
                           + re.escape(repr(bad))):
            forward(ops, case.with_(activation=bad))


@pytest.mark.parametrize("cell", CELLS)
def test_bad_truncate(cell):
    case = case_for(cell)
    _, _, tape = forward(ops, case)
    d_out, _ = upstream(np.random.default_rng(1), case)
    for bad in (0, -1, np.int64(0)):
        with pytest.raises(ValueError, match=rf"`truncate`: expected None or a positive integer, "
                           rf"got {bad}"):
            backward(ops, cell, tape, d_out, truncate=bad)
    for bad in (1.5, True, False, "2", np.bool_(True), 2.0):
        with pytest.raises(TypeError, match=r"`truncate`: expected None or a positive integer, "
                           r"got " + re.escape(repr(bad))):
            backward(ops, cell, tape, d_out, truncate=bad)
    # numpy integers are integers
    g = backward(ops, cell, tape, d_out, truncate=np.int32(2))
    np.testing.assert_array_equal(g["h0"], backward(ops, cell, tape, d_out, truncate=2)["h0"])


# ----------------------------------------------------------------------------- tapes
def test_tape_from_another_cell():
    tapes = {cell: forward(ops, case_for(cell))[2] for cell in CELLS}
    for cell in CELLS:
        for other in CELLS:
            if other != cell:
                with pytest.raises(ValueError, match=rf"`tape`: it comes from {other}_forward, "
                                   rf"not {cell}_forward"):
                    backward(ops, cell, tapes[other], None)


@pytest.mark.parametrize("cell", CELLS)
def test_not_a_tape(cell):
    case = case_for(cell)
    ref_tape = forward(ref, case)[2]
    for bad in (None, {}, "tape", ref_tape, forward(ops, case)):
        with pytest.raises(TypeError, match=rf"`tape`: expected the tape returned by "
                           rf"fastrnn.ops.{cell}_forward, got {type(bad).__name__}"):
            backward(ops, cell, bad, None)


@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_tape_used_twice_and_after_other_calls(cell, activation):
    rng = np.random.default_rng(3)
    case = make_case(rng, cell, 3, 6, 4, 5, np.float32, activation=activation, mask=True)
    d_out, d_states = upstream(rng, case)
    _, _, tape = forward(ops, case)
    first = backward(ops, cell, tape, d_out, d_states, truncate=2)
    # Other calls in between (bigger ones too, which regrow the kernels' workspaces) must not
    # disturb what the tape holds.
    other = make_case(rng, cell, 7, 9, 3, 5, np.float32, activation=activation)
    _, _, other_tape = forward(ops, other)
    backward(ops, cell, other_tape, *upstream(rng, other))
    second = backward(ops, cell, tape, d_out, d_states, truncate=2)
    for k in first:
        assert_close(second[k], first[k], 1e-6, f"d_{k}")
    # ... and the tape still gives the gradient the reference gives.
    ref_grads = backward(ref, cell, forward(ref, case)[2], d_out, d_states, truncate=2)
    for k in first:
        assert_close(second[k], ref_grads[k], 1e-5, f"d_{k}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("module", ["ops", "reference"])
def test_outputs_are_read_only(cell, module):
    mod = ops if module == "ops" else ref
    out, states, tape = forward(mod, case_for(cell))
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1.0
    # The last states are the caller's to keep and change: the tape does not share them.
    before = backward(mod, cell, tape, None, {"h": np.ones_like(states["h"])})
    states["h"][...] = 7.0
    after = backward(mod, cell, tape, None, {"h": np.ones_like(states["h"])})
    assert_close(after["kernel"], before["kernel"], 1e-6, "d_kernel")


# ----------------------------------------------------------------------------- layouts
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_non_contiguous_and_fortran_inputs(cell, activation):
    rng = np.random.default_rng(4)
    case = make_case(rng, cell, 3, 5, 4, 6, np.float64, activation=activation, mask=True)
    d_out, d_states = upstream(rng, case)

    def fortran(a):
        return np.asfortranarray(a)

    def strided(a):  # the same values, every other element of a bigger array
        every_other = tuple(slice(None, None, 2) for _ in a.shape)
        big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
        big[every_other] = a
        return big[every_other]

    def time_major_view(a):  # a (B, T, n) view of a (T, B, n) array, as x often arrives
        return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1) if a.ndim == 3 else a

    names = ["x", "h0", "c0", "kernel", "recurrent_kernel", "bias", "mask"]
    out, states, tape = forward(ops, case)
    grads = backward(ops, cell, tape, d_out, d_states)
    for convert in (fortran, strided, time_major_view):
        layout = convert.__name__
        arrays = {n: getattr(case, n) for n in names}
        other = case.with_(**{n: convert(a) for n, a in arrays.items() if a is not None})
        assert not other.x.flags.c_contiguous
        o2, s2, t2 = forward(ops, other)
        assert_close(o2, out, SAME, layout)
        for k in states:
            assert_close(s2[k], states[k], SAME, layout)
        g2 = backward(ops, cell, t2, convert(d_out), d_states)
        for k in grads:
            assert_close(g2[k], grads[k], SAME, f"{layout} d_{k}")


# ----------------------------------------------------------------------------- empty
# Regression: with T = 0, every ops.*_backward once raised IndexError (it took the shape of
# d_h_last from `outputs[:, 0, :]`).
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize(("b", "t"), [(2, 0), (0, 3), (0, 0)], ids=["T=0", "B=0", "both"])
@pytest.mark.parametrize("module", ["ops", "reference"])
def test_empty_batch_or_sequence(cell, activation, b, t, module):
    mod = ops if module == "ops" else ref
    rng = np.random.default_rng(5)
    case = make_case(rng, cell, b, t, 3, 4, np.float64, activation=activation)
    out, states, tape = forward(mod, case)
    assert out.shape == (b, t, 4)
    np.testing.assert_array_equal(states["h"], case.h0)
    if cell == "lstm":
        np.testing.assert_array_equal(states["c"], case.c0)
    # Without h0, the last state is zeros.
    _, states0, _ = forward(mod, case.with_(h0=None, c0=None))
    np.testing.assert_array_equal(states0["h"], np.zeros((b, 4)))
    d_out, d_states = upstream(rng, case)
    for truncate in (None, 2):
        grads = backward(mod, cell, tape, d_out, d_states, truncate)
        assert sorted(grads) == sorted(grad_names(cell))
        assert grads["x"].shape == (b, t, 3)
        for k in ("kernel", "recurrent_kernel", "bias"):
            assert grads[k].shape == getattr(case, k).shape
            np.testing.assert_array_equal(grads[k], 0.0)
        np.testing.assert_array_equal(grads["h0"], d_states["h"])  # nothing in between
        if cell == "lstm":
            np.testing.assert_array_equal(grads["c0"], d_states["c"])
        no_upstream = backward(mod, cell, tape, None, None, truncate)
        np.testing.assert_array_equal(no_upstream["h0"], np.zeros((b, 4)))


# ----------------------------------------------------------------------------- NaN, inf, huge
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_nan_in_x_stays_in_its_batch_row(cell, activation, dtype):
    rng = np.random.default_rng(6)
    case = make_case(rng, cell, 3, 5, 4, 6, dtype, activation=activation)
    clean, _, _ = forward(ops, case)
    x = case.x.copy()
    x[1, 2, 0] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        out, states, tape = forward(ops, case.with_(x=x))
        grads = backward(ops, cell, tape, *upstream(rng, case))
    assert np.isnan(out[1, 2:]).all()  # from the NaN step on, that row is NaN
    assert np.isnan(states["h"][1]).all()
    rtol = rtol_for(dtype, (3, 5, 4, 6))
    assert_close(out[1, :2], clean[1, :2], rtol, "before the NaN")  # unchanged
    assert_close(out[[0, 2]], clean[[0, 2]], rtol, "other rows")  # unchanged
    assert np.isnan(grads["kernel"]).any()  # the gradient admits it saw a NaN
    assert np.isfinite(grads["x"][[0, 2]]).all()


@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_inf_in_x_follows_the_math(cell, activation, dtype):
    # tanh and sigmoid saturate at +-inf, so for them an infinite input gives finite outputs;
    # relu and linear pass inf (and inf - inf = NaN) on. Either way: what the reference says,
    # and the other batch rows do not notice.
    rng = np.random.default_rng(7)
    case = make_case(rng, cell, 3, 5, 4, 6, dtype, activation=activation)
    clean, _, _ = forward(ops, case)
    x = case.x.copy()
    x[1, 2, 0] = np.inf
    x[1, 3, 1] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        out, _, tape = forward(ops, case.with_(x=x))
        expected, _, _ = forward(ref, case.with_(x=x))
        backward(ops, cell, tape, *upstream(rng, case))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert_close(out[[0, 2]], clean[[0, 2]], rtol_for(dtype, (3, 5, 4, 6)), "other rows")
    if activation in (None, "tanh"):
        assert np.isfinite(out).all()
        assert not np.array_equal(out[1, 2:], clean[1, 2:])
    else:
        assert not np.isfinite(out[1, 2:]).all()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_huge_inputs_saturate_without_nan(cell, dtype):
    rng = np.random.default_rng(8)
    case = make_case(rng, cell, 3, 6, 4, 5, dtype)
    x = case.x.copy()
    x[0] = 1e30
    x[1] = -1e30
    x[2, ::2] = 1e30 * np.sign(x[2, ::2])
    huge = case.with_(x=x)
    for mod in (ops, ref):
        out, states, tape = forward(mod, huge)
        grads = backward(mod, cell, tape, *upstream(rng, case))
        # tanh and o * tanh(c) stay within [-1, 1]; a GRU blends in h0 as well.
        bound = 1 if cell != "gru" else max(1, np.max(np.abs(case.h0)))
        assert np.isfinite(out).all() and (np.abs(out) <= bound * (1 + 1e-6)).all(), mod.__name__
        for k, v in {**states, **grads}.items():
            assert np.isfinite(v).all(), f"{mod.__name__} {k}"
    assert_close(forward(ops, huge)[0], forward(ref, huge)[0], 1e-5, "outputs")


# ----------------------------------------------------------------------------- _core
def test_core_rejects_wrong_shapes_with_value_error():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((B, T, I))
    u = rng.standard_normal((H, 4 * H))
    with pytest.raises(ValueError, match=r"argument `kernel`: expected a float64 array of shape "
                       r"\(4, 20\), got float64 \(4, 21\)"):
        _core.lstm_forward(x, None, None, np.zeros((I, 4 * H + 1)), u, None, None)
    with pytest.raises(ValueError, match=r"argument `h0`"):
        _core.simple_rnn_forward(x, np.zeros((B + 1, H)), np.zeros((I, H)), np.zeros((H, H)),
                                 None, None, "tanh")
    with pytest.raises(ValueError, match=r"argument `x`: expected a 3-D array"):
        _core.gru_forward(x[0], None, np.zeros((I, 3 * H)), np.zeros((H, 3 * H)), None, None)
    with pytest.raises(ValueError, match=r"argument `x`: expected float32 or float64"):
        _core.gru_forward(x.astype(np.int64), None, np.zeros((I, 3 * H)),
                          np.zeros((H, 3 * H)), None, None)
    with pytest.raises(ValueError, match=r"argument `kernel`: expected a float64 array"):
        _core.gru_forward(x, None, np.zeros((I, 3 * H), np.float32), np.zeros((H, 3 * H)), None,
                          None)
    with pytest.raises(ValueError, match=r"argument `kernel`: must be C-contiguous"):
        _core.gru_forward(x, None, np.zeros((3 * H, I)).T, np.zeros((H, 3 * H)), None, None)
    with pytest.raises(ValueError, match=r"argument `activation`"):
        _core.simple_rnn_forward(x, None, np.zeros((I, H)), np.zeros((H, H)), None, None, "elu")


def test_core_backward_rejects_a_mismatched_tape():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((B, T, I))
    k, u = rng.standard_normal((I, 3 * H)), rng.standard_normal((H, 3 * H))
    out, _, gates, hz_h = _core.gru_forward(x, None, k, u, None, None)
    with pytest.raises(ValueError, match=r"argument `gates`"):
        _core.gru_backward(x, None, k, u, None, out, gates[:, :-1], hz_h, None, None, 0)
    with pytest.raises(ValueError, match=r"argument `outputs`"):
        _core.gru_backward(x, None, k, u, None, out[:1], gates, hz_h, None, None, 0)
    with pytest.raises(ValueError, match=r"argument `truncate`"):
        _core.gru_backward(x, None, k, u, None, out, gates, hz_h, None, None, -1)
    k4, u4 = rng.standard_normal((I, 4 * H)), rng.standard_normal((H, 4 * H))
    out, _, _, gates, cells = _core.lstm_forward(x, None, None, k4, u4, None, None)
    with pytest.raises(ValueError, match=r"argument `cells`"):
        _core.lstm_backward(x, None, None, k4, u4, None, out, gates, cells[..., :-1], None, None,
                            None, 0)
