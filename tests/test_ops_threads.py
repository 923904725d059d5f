"""The threaded paths of the kernels: sizes big enough that the core splits the time loop by
batch rows and the weight gradients by rows (narrow G) or gate columns (G >= 2048), compared
with the NumPy reference and with a single-threaded run."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _cells import VARIANT_IDS, VARIANTS, assert_close, backward, forward, make_case, upstream
from _tolerance import assert_within, recurrent_rtol
from fastrnn import reference as ref

# (B, T, I, H): the batch split over threads (an odd batch too), and the hidden units split over
# threads (wide layers: (8, 6, 8, 464) for LSTM and GRU, (8, 5, 8, 800) for SimpleRNN); weight
# gradients split by rows, and by gate columns for the widest (LSTM at 512 units: G = 2048).
SHAPES = [
    (64, 30, 16, 64),
    (32, 12, 24, 160),
    (37, 9, 5, 97),
    (8, 6, 8, 464),
    (8, 5, 8, 800),
    (8, 4, 8, 512),
]


def _run(case, d_out, d_states, truncate):
    out, states, tape = forward(fastrnn.ops, case)
    grads = backward(fastrnn.ops, case.cell, tape, d_out, d_states, truncate)
    return out, states, grads


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask", [False, True], ids=["", "mask"])
def test_threaded_kernels_match_reference(two_threads, variant, shape, mask):
    cell, activation = variant
    rng = np.random.default_rng(sum(shape))
    case = make_case(rng, cell, *shape, np.float64, activation=activation, mask=mask)
    d_out, d_states = upstream(rng, case)
    out, states, grads = _run(case, d_out, d_states, truncate=7)
    r_out, r_states, r_tape = forward(ref, case)
    r_grads = backward(ref, cell, r_tape, d_out, d_states, truncate=7)
    assert_close(out, r_out, 1e-10, "outputs")
    for name in states:
        assert_close(states[name], r_states[name], 1e-10, f"state {name}")
    for name, g in grads.items():
        assert_close(g, r_grads[name], 1e-10, f"d_{name}")


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_threads_do_not_change_float32_results_beyond_rounding(two_threads, variant):
    cell, activation = variant
    rng = np.random.default_rng(5)
    case = make_case(rng, cell, 64, 20, 12, 96, np.float32, activation=activation)
    d_out, d_states = upstream(rng, case)
    two = _run(case, d_out, d_states, None)
    fastrnn.set_num_threads(1)
    one = _run(case, d_out, d_states, None)
    # Other row slices are other products for OpenBLAS, whose kernels (AVX2 ones among them)
    # may round a row differently with the row count: equal within rounding, not bits.
    (B, T, I), H = case.x.shape, case.recurrent_kernel.shape[0]
    assert_within(two[0], one[0], recurrent_rtol(np.float32, B, T, I, H), what="outputs")
    backward_rtol = recurrent_rtol(np.float32, B, T, I, H, backward=True)
    for name, g in two[2].items():
        assert_within(g, one[2][name], backward_rtol, what=f"d_{name}")


def test_outside_blas_thread_changes_do_not_stick():
    """threadpoolctl (or anyone) raising the core's OpenBLAS threads must not leave it there:
    the core threads its own work, and a multi-threaded BLAS inside its threads oversubscribes
    the cores."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    case = make_case(rng, "lstm", 4, 3, 2, 5, np.float32)

    def core_blas_threads():
        for info in threadpoolctl.threadpool_info():
            if info["filepath"].endswith("libscipy_openblas.so"):
                return info["num_threads"]
        return None

    with threadpoolctl.threadpool_limits(limits=2):
        if core_blas_threads() is None:
            pytest.skip("the core's OpenBLAS is not visible to threadpoolctl")
        forward(fastrnn.ops, case)
        assert core_blas_threads() == 1


def _flat(result) -> list[np.ndarray]:
    out, states, grads = result
    return [out, *states.values(), *grads.values()]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", [(48, 25, 12, 64), (8, 6, 8, 464)], ids=["rows", "units"])
def test_calls_from_many_python_threads_at_once(two_threads, variant, shape):
    """Kernels release the GIL, so several Python threads can be inside the core together; one
    of them gets the worker pool, the others run batch slices on threads of their own, or a
    unit split (LSTM/GRU at 464 units) all on their own thread. Every result must be what the
    same call gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    cell, activation = variant
    rng = np.random.default_rng(11)
    cases = [make_case(rng, cell, *shape, np.float64, activation=activation) for _ in range(4)]
    upstreams = [upstream(rng, case) for case in cases]
    alone = [_flat(_run(case, *u, None)) for case, u in zip(cases, upstreams)]

    def repeat(k: int) -> list[list[np.ndarray]]:
        return [_flat(_run(cases[k], *upstreams[k], None)) for _ in range(10)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(repeat, range(4)))
    for k in range(4):
        for run in together[k]:
            for got, want in zip(run, alone[k]):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _child_forward(conn, case) -> None:
    fastrnn.set_num_threads(2)
    conn.send(forward(fastrnn.ops, case)[0])
    conn.close()


def test_threads_work_in_a_forked_child(two_threads):
    """A child made by fork() after the parent used its worker threads has none of them: the
    core must start its own there instead of waiting for threads that do not exist."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() here")
    rng = np.random.default_rng(3)
    case = make_case(rng, "lstm", 64, 30, 16, 64, np.float32)
    want = forward(fastrnn.ops, case)[0]  # the parent's pool is up and running
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_forward, args=(send, case))
    child.start()
    try:
        assert receive.poll(60), "the forked child did not answer within 60 s (deadlocked?)"
        np.testing.assert_array_equal(receive.recv(), want)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def test_far_more_threads_than_cores_still_correct():
    """set_num_threads far beyond the cores: the core caps its slices (255) and stays right."""
    rng = np.random.default_rng(9)
    case = make_case(rng, "gru", 600, 20, 3, 8, np.float64)  # ~150 row slices
    d_out, d_states = upstream(rng, case)
    before = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(1)
        one = _flat(_run(case, d_out, d_states, None))
        fastrnn.set_num_threads(10_000)
        many = _flat(_run(case, d_out, d_states, None))
    finally:
        fastrnn.set_num_threads(before)
    for got, want in zip(many, one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_thread_count_changed_during_calls_in_other_threads():
    """set_num_threads while other Python threads are inside kernels (which run without the
    GIL): a call sizes its per-thread buffers from one reading of the count, so a change in
    the middle of it must neither overrun them nor change its result."""
    import threading

    rng = np.random.default_rng(12)
    case = make_case(rng, "lstm", 48, 25, 12, 64, np.float64)  # weights split by rows
    d_out, d_states = upstream(rng, case)
    before = fastrnn.get_num_threads()
    want = _flat(_run(case, d_out, d_states, None))
    stop = threading.Event()

    def flip() -> None:
        n = 0
        while not stop.is_set():
            fastrnn.set_num_threads(1 + n % 8)
            n += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        runs = [_flat(_run(case, d_out, d_states, None)) for _ in range(40)]
    finally:
        stop.set()
        flipper.join()
        fastrnn.set_num_threads(before)
    for run in runs:
        for got, expected in zip(run, want):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
