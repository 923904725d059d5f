"""The core's process-level reliability: per-thread memory bounded whatever
set_num_threads asks, fork() safety of its locks, and the NaN-fill debug mode.

The memory and debug-mode checks run in subprocesses (a memory limit, an environment
variable read once); the fork checks fork this process and wait for the child with a
timeout, so a deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from _cells import backward, forward, make_case, upstream
from fastrnn import _core

PYTHON_DIR = str(Path(fastrnn.__file__).resolve().parents[1])
TESTS_DIR = str(Path(__file__).resolve().parent)


def run_python(code: str, env: dict | None = None, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [PYTHON_DIR, TESTS_DIR]), **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# -- set_num_threads: capped, and buffers sized by the slices used --------------------------
def test_set_num_threads_caps_far_too_many_threads():
    before = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(100_000)
        assert fastrnn.get_num_threads() == _core.MAX_THREADS == 255
        fastrnn.set_num_threads(7)
        assert fastrnn.get_num_threads() == 7
        with pytest.raises(ValueError, match="`n`"):
            fastrnn.set_num_threads(0)
        with pytest.raises(ValueError, match="`n`"):
            fastrnn.set_num_threads(2.0)
    finally:
        fastrnn.set_num_threads(before)


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer reserves terabytes of address space and keeps "
                    "freed memory in quarantine: no memory limit or peak to measure")
def test_many_threads_do_not_grow_the_backward_workspace():
    """The weight phase's partial sums were sized by the requested thread count: 10,000
    threads on an LSTM(256) backward asked for ~22 GB (9.5 GB at 100,000 on the issue's
    model). Now they are sized by the row slices the call can use (B / 4 here: 2)."""
    out = run_python("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        import numpy as np
        import fastrnn
        from _cells import backward, forward, make_case, upstream

        rng = np.random.default_rng(0)
        case = make_case(rng, "lstm", 8, 3, 8, 256, np.float64)  # G = 1024: row split
        d_out, d_states = upstream(rng, case)

        def step():
            out, states, tape = forward(fastrnn.ops, case)
            return backward(fastrnn.ops, "lstm", tape, d_out, d_states, None)

        fastrnn.set_num_threads(1)
        want = step()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for n in (10_000, 100_000):
            fastrnn.set_num_threads(n)
            got = step()
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12)
        print(grown)
    """)
    grown_mib = int(out.split()[-1]) / 1024
    assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB with 100,000 threads"


# -- fork ------------------------------------------------------------------------------------
def _kernel_case():
    """A GRU case big enough for pooled buffers and the worker pool, with its results."""
    rng = np.random.default_rng(5)
    case = make_case(rng, "gru", 64, 20, 16, 64, np.float64)
    d_out, d_states = upstream(rng, case)
    want_out, _, tape = forward(fastrnn.ops, case)
    want = backward(fastrnn.ops, "gru", tape, d_out, d_states, None)
    return case, d_out, d_states, want_out, want


def _fork_and_run_kernel(prepared=None, seconds: float = 60) -> None:
    """Forks; the child runs a threaded forward and backward (pooled buffers, worker pool)
    and exits 0 if they match the parent's; fails if the child hangs or differs."""
    case, d_out, d_states, want_out, want = prepared or _kernel_case()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 3
        try:
            fastrnn.set_num_threads(2)
            out, _, tape = forward(fastrnn.ops, case)
            grads = backward(fastrnn.ops, "gru", tape, d_out, d_states, None)
            same = np.array_equal(out, want_out) and all(
                np.allclose(grads[k], want[k], rtol=1e-12, atol=1e-12) for k in want)
            status = 0 if same else 1
        finally:
            os._exit(status)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, "the child's kernels differ"
            return
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child's kernel did not finish within {seconds} s (deadlocked)")


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")


@needs_fork
def test_fork_while_another_thread_holds_the_core_locks(two_threads):
    """A fork() at the moment another thread holds the worker pool's or the buffer pool's
    lock: without the atfork handlers the child inherits the lock held, and its first kernel
    waits for ever (this test then times out)."""
    prepared = _kernel_case()  # (the parent's own kernels would wait for the locks)
    holder = threading.Thread(target=_core._debug_hold_locks, args=(400,))
    holder.start()
    time.sleep(0.1)  # the locks are now held by `holder`
    try:
        _fork_and_run_kernel(prepared, seconds=30)
    finally:
        holder.join()


@needs_fork
def test_fork_while_other_threads_run_kernels(two_threads):
    rng = np.random.default_rng(8)
    case = make_case(rng, "lstm", 64, 20, 16, 64, np.float32)
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            forward(fastrnn.ops, case)

    workers = [threading.Thread(target=busy) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(5):
            _fork_and_run_kernel()
    finally:
        stop.set()
        for worker in workers:
            worker.join()


# -- FASTRNN_DEBUG_FILL_NAN ------------------------------------------------------------------
def test_debug_fill_nan_mode_fills_every_handed_out_buffer():
    out = run_python("""
        import numpy as np
        import fastrnn
        from fastrnn import _core
        from _cells import backward, forward, make_case, upstream

        assert _core._debug_fill_nan()
        for n in (3, 100_000):  # malloc'd and pooled sizes
            assert np.isnan(_core._debug_empty(n)).all()
            a = _core._debug_empty(n)
            a[:] = 1.0
            del a  # the pooled buffer goes back, holding ones
            assert np.isnan(_core._debug_empty(n)).all()  # handed out again: NaN again
        # the kernels write every element: no NaN comes out of a real call
        rng = np.random.default_rng(1)
        for cell in ("simple_rnn", "lstm", "gru"):
            case = make_case(rng, cell, 33, 7, 5, 24, np.float32)
            d_out, d_states = upstream(rng, case)
            out, states, tape = forward(fastrnn.ops, case)
            grads = backward(fastrnn.ops, cell, tape, d_out, d_states, None)
            for array in (out, *states.values(), *grads.values()):
                assert np.isfinite(array).all(), cell
        print("ok")
    """, env={"FASTRNN_DEBUG_FILL_NAN": "1"})
    assert out.strip() == "ok"
    if os.environ.get("FASTRNN_DEBUG_FILL_NAN", "0") in ("", "0"):
        assert not _core._debug_fill_nan()
