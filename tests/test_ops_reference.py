"""The C++ kernels (fastrnn.ops) against the NumPy oracle (fastrnn.reference).

Every cell and SimpleRNN activation, forward and backward, full and truncated BPTT, with and
without h0 / c0 / bias / recurrent_mask / d_outputs / d_h_last, on many awkward shapes
(sizes 1 and primes), in float32 and float64, and on every instruction-set variant of the
kernels this CPU can run.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from fastrnn import _core, ops
from fastrnn import reference as ref

# (B, T, I, H): ones in every position, primes, and a few ordinary sizes.
SHAPES = [
    (1, 1, 1, 1),
    (1, 6, 1, 1),
    (2, 1, 3, 1),
    (1, 1, 4, 3),
    (3, 7, 5, 11),
    (2, 13, 1, 2),
    (5, 2, 7, 3),
    (4, 11, 3, 5),
    (1, 17, 2, 7),
    (7, 3, 2, 13),
    (2, 9, 3, 4),
]

# Which optional inputs are present: every one, none, and mixes.
OPTIONS = [
    dict(h0=True, c0=True, bias=True, mask=True),
    dict(h0=False, c0=False, bias=False, mask=False),
    dict(h0=True, c0=False, bias=False, mask=True),
    dict(h0=False, c0=True, bias=True, mask=False),
]

DTYPES = [np.float32, np.float64]


def truncations(T: int) -> list:
    """Full BPTT, k = 1, k dividing T or not, k = T and k > T."""
    return list(dict.fromkeys([None, 1, 2, 3, T, T + 3]))


def compare_forward(case, rtol, what):
    out_c, states_c, tape_c = forward(ops, case)
    out_r, states_r, tape_r = forward(ref, case)
    assert_close(out_c, out_r, rtol, f"{what} outputs")
    for name in states_r:
        assert_close(states_c[name], states_r[name], rtol, f"{what} {name}_last")
    # The last state is the last output.
    np.testing.assert_array_equal(states_c["h"], out_c[:, -1])
    return tape_c, tape_r


def compare_backward(case, tape_c, tape_r, d_out, d_states, truncate, rtol, what):
    g_c = backward(ops, case.cell, tape_c, d_out, d_states, truncate)
    g_r = backward(ref, case.cell, tape_r, d_out, d_states, truncate)
    assert sorted(g_c) == sorted(grad_names(case.cell)) == sorted(g_r)
    for name in g_r:
        assert_close(g_c[name], g_r[name], rtol, f"{what} truncate={truncate} d_{name}")
    return g_c


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_matches_reference(cell, activation, shape, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((cell, activation, shape)).encode()))  # stable
    rtol = rtol_for(dtype, shape)
    for options in OPTIONS:
        case = make_case(rng, cell, *shape, dtype, activation=activation, **options)
        what = f"{cell}/{activation} {shape} {options}"
        tape_c, tape_r = compare_forward(case, rtol, what)
        d_out, d_states = upstream(rng, case)
        for truncate in truncations(shape[1]):
            compare_backward(case, tape_c, tape_r, d_out, d_states, truncate, rtol, what)
        # Gradient only through the last state(s), and only through the outputs.
        for truncate in (None, 2):
            compare_backward(case, tape_c, tape_r, None, d_states, truncate, rtol, what)
            compare_backward(case, tape_c, tape_r, d_out, None, truncate, rtol, what)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    variant=st.sampled_from(VARIANTS),
    B=st.integers(1, 5),
    T=st.integers(1, 12),
    I=st.integers(1, 6),  # noqa: E741
    H=st.integers(1, 9),
    options=st.sampled_from(OPTIONS),
    dtype=st.sampled_from(DTYPES),
    truncate=st.one_of(st.none(), st.integers(1, 14)),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference_random_shapes(variant, B, T, I, H, options, dtype, truncate, seed):  # noqa: E741
    cell, activation = variant
    rng = np.random.default_rng(seed)
    rtol = rtol_for(dtype, (B, T, I, H))
    case = make_case(rng, cell, B, T, I, H, dtype, activation=activation, **options)
    tape_c, tape_r = compare_forward(case, rtol, "random")
    d_out, d_states = upstream(rng, case)
    compare_backward(case, tape_c, tape_r, d_out, d_states, truncate, rtol, "random")


# Many rows of a narrow layer: the core cuts the input projection, d_x and the weight gradients
# into pieces of rows (products small enough for OpenBLAS's in-place kernels), with a ragged
# last piece here; the pieces must add up to the reference's single products.
MANY_ROWS = [(64, 60, 16, 24), (130, 33, 7, 16)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", MANY_ROWS, ids=["x".join(map(str, s)) for s in MANY_ROWS])
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_products_over_many_rows_match_reference(cell, activation, shape, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((cell, activation, shape)).encode()))
    rtol = rtol_for(dtype, shape)
    case = make_case(rng, cell, *shape, dtype, activation=activation, **OPTIONS[0])
    what = f"{cell}/{activation} {shape}"
    tape_c, tape_r = compare_forward(case, rtol, what)
    d_out, d_states = upstream(rng, case)
    for truncate in (None, 5):
        compare_backward(case, tape_c, tape_r, d_out, d_states, truncate, rtol, what)


# Mid-sized layers: the core multiplies each step by the recurrent kernel stored in panels of
# columns (U forward, U^T backward), with ragged last panels here; at 300 rows a panel is
# multiplied in narrower parts, and the backward's panels no longer pay (the whole U^T is used).
PANEL_SHAPES = [(48, 5, 8, 100), (40, 4, 8, 200), (300, 3, 4, 100)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", PANEL_SHAPES, ids=["x".join(map(str, s)) for s in PANEL_SHAPES])
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_recurrent_products_by_panels_match_reference(cell, activation, shape, dtype, threads):
    rng = np.random.default_rng(zlib.crc32(repr((cell, activation, shape)).encode()))
    rtol = rtol_for(dtype, shape)
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        for options in (OPTIONS[0], OPTIONS[3]):
            case = make_case(rng, cell, *shape, dtype, activation=activation, **options)
            what = f"{cell}/{activation} {shape} threads={threads} {options}"
            tape_c, tape_r = compare_forward(case, rtol, what)
            d_out, d_states = upstream(rng, case)
            compare_backward(case, tape_c, tape_r, d_out, d_states, None, rtol, what)
    finally:
        fastrnn.set_num_threads(before)


@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_results_keep_the_input_dtype(cell, activation):
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        case = make_case(rng, cell, 2, 3, 2, 3, dtype, activation=activation, mask=True)
        for mod in (ops, ref):
            out, states, tape = forward(mod, case)
            grads = backward(mod, cell, tape, *upstream(rng, case))
            arrays = [out, *states.values(), *grads.values()]
            assert all(a.dtype == dtype for a in arrays), (mod.__name__, dtype)


@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_truncate_at_least_T_is_full_bptt_and_shorter_is_not(cell, activation):
    # Guards the comparisons above against a truncate argument that is silently ignored.
    rng = np.random.default_rng(2)
    case = make_case(rng, cell, 3, 6, 2, 4, np.float64, activation=activation)
    d_out, d_states = upstream(rng, case)
    _, _, tape = forward(ops, case)
    full = backward(ops, cell, tape, d_out, d_states, None)
    for k in (6, 7, 100):
        cut = backward(ops, cell, tape, d_out, d_states, k)
        for name in full:
            assert_close(cut[name], full[name], 1e-13, f"k={k} d_{name}")
    for k in (1, 2, 4):
        cut = backward(ops, cell, tape, d_out, d_states, k)
        assert not np.allclose(cut["recurrent_kernel"], full["recurrent_kernel"]), k
        assert not np.allclose(cut["h0"], full["h0"]), k


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("what", ["kernel", "recurrent_kernel", "bias"])
def test_swapped_gates_or_units_change_the_result(cell, what):
    # The random weights of these tests must tell gates (and units) apart: a kernel with two
    # gate blocks swapped (or, for SimpleRNN, two units) has to give a different answer,
    # otherwise a gate-order bug could pass the comparisons above.
    rng = np.random.default_rng(3)
    case = make_case(rng, cell, 2, 4, 3, 3, np.float64)
    H = 3
    w = getattr(case, what).copy()
    if cell == "simple_rnn":
        w[..., [0, 1]] = w[..., [1, 0]]
    else:
        a, b = w[..., :H].copy(), w[..., H : 2 * H].copy()
        w[..., :H], w[..., H : 2 * H] = b, a
    out, _, _ = forward(ref, case)
    swapped, _, _ = forward(ops, case.with_(**{what: w}))
    assert np.max(np.abs(out - swapped)) > 1e-3


# ----------------------------------------------------------------------------- kernel sets
@pytest.fixture
def restore_kernel_set():
    original = _core.kernel_set()
    try:
        yield original
    finally:
        _core.select_kernel_set(original)
    assert _core.kernel_set() == original


def test_kernel_set_names(restore_kernel_set):
    names = _core.available_kernel_sets()
    assert names and len(set(names)) == len(names)
    assert restore_kernel_set in names
    with pytest.raises(ValueError, match="unknown kernel set 'no-such-set'"):
        _core.select_kernel_set("no-such-set")
    assert _core.kernel_set() == restore_kernel_set  # a failed switch changes nothing


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("cell", "activation"), VARIANTS, ids=VARIANT_IDS)
def test_every_kernel_set_matches_reference(restore_kernel_set, cell, activation, dtype):
    # H = 19 and 37 are not multiples of any vector width, so the vector loops' tails run too.
    rng = np.random.default_rng(4)
    rtol = rtol_for(dtype, (5, 9, 17, 37))  # the largest of the cases below
    cases = [
        make_case(rng, cell, 5, 9, 17, 19, dtype, activation=activation, mask=True),
        make_case(rng, cell, 3, 4, 6, 37, dtype, activation=activation, h0=False, bias=False),
    ]
    for case in cases:
        d_out, d_states = upstream(rng, case)
        _, _, tape_r = forward(ref, case)
        results = {}
        for name in _core.available_kernel_sets():
            _core.select_kernel_set(name)
            assert _core.kernel_set() == name
            tape_c, _ = compare_forward(case, rtol, name)
            results[name] = compare_backward(case, tape_c, tape_r, d_out, d_states, 3, rtol, name)
        first = next(iter(results.values()))
        for name, grads in results.items():
            for g in grads:
                assert_close(grads[g], first[g], rtol, f"{name} vs the first set: d_{g}")


def test_reference_keeps_the_ops_signatures():
    """The oracle's promise: the same functions, arguments and return values as fastrnn.ops
    (every name of its ``__all__`` is one of ops', with the same parameters in the same
    order and kinds), and both ``__all__`` lists name every function they define."""
    import inspect

    from fastrnn import ops, reference

    for name in reference.__all__:
        mine, theirs = getattr(reference, name), getattr(ops, name)
        if inspect.isclass(mine):
            continue
        ours = [(p.name, p.kind) for p in inspect.signature(mine).parameters.values()]
        fast = [(p.name, p.kind) for p in inspect.signature(theirs).parameters.values()]
        assert ours == fast, name
    for module in (ops, reference):
        defined = {n for n, v in vars(module).items() if not n.startswith("_")
                   and inspect.isfunction(v) and v.__module__.startswith(module.__name__)}
        assert defined <= set(module.__all__), (module.__name__, defined - set(module.__all__))
    kernels = {n for n in ops.__all__ if n.endswith(("_forward", "_backward"))}
    assert kernels == {n for n in reference.__all__ if n.endswith(("_forward", "_backward"))}


def test_reference_keep_tape_and_input_grad_as_the_ops():
    """``keep_tape=False`` gives no tape, ``input_grad=False`` no gradient of x, in both."""
    from fastrnn import reference

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 3))
    k, u, b = (rng.standard_normal(s) for s in ((3, 8), (2, 8), (8,)))
    for module in (ops, reference):
        assert module.lstm_forward(x, None, None, k, u, b, keep_tape=False)[-1] is None
        out, _, _, tape = module.lstm_forward(x, None, None, k, u, b)
        grads = module.lstm_backward(tape, np.ones_like(out), input_grad=False)
        assert grads["x"] is None and grads["kernel"].shape == (3, 8)
        y, pool_tape = module.pool1d_forward(x, 2)
        assert module.pool1d_forward(x, 2, keep_tape=False)[1] is None
        assert module.pool1d_backward(pool_tape, np.ones_like(y)).shape == x.shape
