"""Shared pieces of the benchmark suite: timing, thread control, machine facts, sgemm rate.

Everything here uses public tools only: ``time.perf_counter`` for clocks, ``threadpoolctl`` for
the BLAS thread pools, ``/proc`` and ``lscpu`` for the machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import importlib
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import numpy as np

#: Environment variables that make OpenBLAS choose slower kernels on some machines.
OPENBLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CLEAN_ENV_HINT = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"


# ----------------------------------------------------------------------------- optional imports
def optional_import(name: str) -> tuple[Optional[Any], str]:
    """Imports module `name`; returns ``(module, "")`` or ``(None, reason it is unavailable)``."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # an optional dependency may fail in any way while importing
        return None, f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- timing
@dataclasses.dataclass
class Timing:
    """Seconds per call: the median over `repeats` samples of `inner` calls each."""

    median: float
    minimum: float
    q1: float
    q3: float
    repeats: int
    inner: int
    samples: list[float] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def from_samples(cls, samples: list[float], inner: int) -> Timing:
        """Summarizes per-call times (each the mean over `inner` back-to-back calls)."""
        ordered = sorted(samples)
        quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
        return cls(
            median=statistics.median(ordered),
            minimum=ordered[0],
            q1=quartiles[0],
            q3=quartiles[2],
            repeats=len(ordered),
            inner=inner,
            samples=ordered,
        )

    @classmethod
    def combine(cls, parts: list[Timing]) -> Timing:
        """One timing from the samples of several (the rounds of an interleaved measurement)."""
        samples = [s for part in parts for s in part.samples]
        return cls.from_samples(samples, max(part.inner for part in parts))

    def as_dict(self) -> dict[str, float]:
        """The JSON form (seconds), without the raw samples."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "samples"}


@dataclasses.dataclass
class Budget:
    """How long to spend on one measurement and how many samples to take at least/at most."""

    seconds: float = 0.5
    min_repeats: int = 5
    #: The minimum for calls of 50 ms and more (quick runs take fewer samples of big sizes).
    min_repeats_slow: Optional[int] = None
    max_repeats: int = 200
    #: Calls shorter than this are grouped into one sample so clock resolution does not matter.
    min_sample_seconds: float = 2e-4
    #: Warm up for at least this long (and at least `warmup` calls): caches, JIT-compiled
    #: kernels and the other library's thread pool going idle after the switch.
    warmup_seconds: float = 0.05
    #: Implementations take turns this many times per case, each round taking its share of
    #: the samples: load from other processes then hits every implementation alike.
    rounds: int = 1
    #: Sleep this long before each measurement: the previous library's idle worker threads
    #: keep spinning for a while after its last call (OpenBLAS's for about 0.1 s; PyTorch's
    #: OpenMP workers longer: a fastrnn forward timed right after a PyTorch call measured 2x
    #: its time alone, and alone again after a 0.3 s pause), taking the cores the next
    #: implementation needs. Each implementation should start on quiet cores.
    settle_seconds: float = 0.3


def measure(fn: Callable[[], Any], budget: Budget, warmup: int = 1) -> Timing:
    """Times ``fn()``: warm-up calls, then enough samples to fill the budget; medians, not means.

    Warm-up runs `warmup` calls and then more until `budget.warmup_seconds` have passed.

    The warm-up (or, for calls under 20 ms, one more call) gives an estimate that sets the
    number of samples, so a 300 ms call is sampled `min_repeats` times and a 50 us call a few
    hundred times. The garbage collector is off while timing (as in :mod:`timeit`), so a
    collection lands in no sample.
    """
    if budget.settle_seconds > 0:
        time.sleep(budget.settle_seconds)
    estimate = 0.0
    calls, began = 0, time.perf_counter()
    while calls < warmup or (
        time.perf_counter() - began < budget.warmup_seconds and calls < 100 * max(warmup, 1)
    ):
        start = time.perf_counter()
        fn()
        estimate = time.perf_counter() - start
        calls += 1
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if estimate < 0.02:  # a warm-up this short may still be cold: estimate from a warm call
            start = time.perf_counter()
            fn()
            estimate = time.perf_counter() - start
        estimate = max(estimate, 1e-9)
        inner = 1
        if estimate < budget.min_sample_seconds:
            inner = int(budget.min_sample_seconds / estimate) + 1
        repeats = int(budget.seconds / (estimate * inner))
        least = budget.min_repeats
        if estimate >= 0.05 and budget.min_repeats_slow is not None:
            least = budget.min_repeats_slow
        repeats = max(least, min(budget.max_repeats, repeats))
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - start) / inner)
    finally:
        if was_enabled:
            gc.enable()
    return Timing.from_samples(samples, inner)


def split_budget(budget: Budget, rounds: int) -> Budget:
    """The share of `budget` for one of `rounds` interleaved rounds (warm-up kept whole)."""
    if rounds <= 1:
        return budget
    slow = budget.min_repeats_slow
    return dataclasses.replace(
        budget,
        seconds=budget.seconds / rounds,
        min_repeats=-(-budget.min_repeats // rounds),
        min_repeats_slow=None if slow is None else -(-slow // rounds),
        max_repeats=-(-budget.max_repeats // rounds),
    )


# ----------------------------------------------------------------------------- threads
@contextmanager
def pinned_threads(n: int) -> Iterator[dict[str, Any]]:
    """Gives every library in the process `n` threads for the duration of the block.

    NumPy's OpenBLAS (and any other BLAS loaded by then) through ``threadpoolctl``; fastrnn's
    core through ``fastrnn.set_num_threads``; PyTorch through ``torch.set_num_threads``. Import
    fastrnn and torch before entering, so threadpoolctl sees their libraries. Yields what was set.
    """
    import fastrnn

    threadpoolctl, _ = optional_import("threadpoolctl")
    torch, _ = optional_import("torch")
    previous_fastrnn = fastrnn.get_num_threads()
    previous_torch = torch.get_num_threads() if torch is not None else None
    limiter = threadpoolctl.threadpool_limits(limits=n) if threadpoolctl is not None else None
    fastrnn.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        yield {
            "threads": n,
            "fastrnn": fastrnn.get_num_threads(),
            "torch": torch.get_num_threads() if torch is not None else None,
            "threadpoolctl": threadpoolctl is not None,
        }
    finally:
        fastrnn.set_num_threads(previous_fastrnn)
        if torch is not None and previous_torch is not None:
            torch.set_num_threads(previous_torch)
        if limiter is not None:
            limiter.restore_original_limits()


# ----------------------------------------------------------------------------- machine facts
def cpu_model() -> str:
    """The CPU's model name from ``lscpu`` (or ``/proc/cpuinfo``, or the platform module)."""
    lscpu = shutil.which("lscpu")
    if lscpu:
        try:
            text = subprocess.run(
                [lscpu], capture_output=True, text=True, check=True, timeout=10
            ).stdout
            for line in text.splitlines():
                if line.startswith("Model name:"):
                    return line.split(":", 1)[1].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def openblas_environment() -> dict[str, Optional[str]]:
    """The values of OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in this process (None: unset)."""
    return {name: os.environ.get(name) for name in OPENBLAS_ENV_VARS}


def blas_libraries() -> list[dict[str, Any]]:
    """threadpoolctl's view of every BLAS in the process: which library, version, kernel."""
    threadpoolctl, _ = optional_import("threadpoolctl")
    if threadpoolctl is None:
        return []
    rows = []
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        path = info.get("filepath", "")
        owner = "numpy" if "numpy" in path else "fastrnn" if "scipy_openblas32" in path else ""
        if not owner and "torch" in path:
            owner = "torch"
        rows.append(
            {
                "owner": owner or "other",
                "library": info.get("internal_api"),
                "version": info.get("version"),
                "kernel": info.get("architecture"),
                "threads": info.get("num_threads"),
                "threading_layer": info.get("threading_layer"),
                "filepath": path,
            }
        )
    return rows


def environment_report(threads: int) -> dict[str, Any]:
    """Date, machine, versions, thread counts and which kernels run: the results' header."""
    import fastrnn

    torch, _ = optional_import("torch")
    tensorflow_spec = importlib.util.find_spec("tensorflow")
    core = fastrnn._core
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "cores": usable_cores(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "fastrnn": getattr(fastrnn, "__version__", "unknown"),
            "torch": torch.__version__ if torch is not None else None,
            "tensorflow": "installed" if tensorflow_spec is not None else None,
        },
        "threads": threads,
        "fastrnn_kernel_set": core.kernel_set() if hasattr(core, "kernel_set") else None,
        "fastrnn_blas_config": core.blas_config() if hasattr(core, "blas_config") else None,
        "blas": blas_libraries(),
        "openblas_env": openblas_environment(),
        "load_average_1min": load_average(),
    }


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_warning(load: Optional[float], cores: int) -> Optional[str]:
    """A warning when other processes kept the cores busy: the timings are then noisier."""
    if load is None or load < 0.5:
        return None
    return (
        f"1-minute load average {load:.2f} on {cores} cores at the start: other processes "
        "competed for the CPU, so the timings are noisier than on an idle machine."
    )


def openblas_env_warning(env: dict[str, Optional[str]]) -> Optional[str]:
    """A warning when OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set, naming the clean command."""
    set_vars = [f"{k}={v}" for k, v in env.items() if v is not None]
    if not set_vars:
        return None
    return (
        f"{', '.join(set_vars)} set in the environment: OpenBLAS may pick slower kernels. "
        f"Run as `{CLEAN_ENV_HINT} python benchmarks/run.py ...` for representative numbers."
    )


# ----------------------------------------------------------------------------- peak memory
def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Resets the kernel's resident-set high-water mark (Linux ``clear_refs``); True if it did."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> Optional[float]:
    """Current resident set size in MiB (Linux), or None."""
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """The resident-set high-water mark in MiB (since the last :func:`reset_peak_rss`)."""
    kib = _proc_status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- sgemm
def sgemm_shapes(quick: bool) -> list[tuple[str, int, int, int]]:
    """(label, M, N, K): square sizes for the peak, then the shapes an RNN step multiplies."""
    square = [1024, 2048] if quick else [1024, 1536, 2048]
    shapes = [(f"square {n}", n, n, n) for n in square]
    shapes += [
        ("LSTM step, book scale (B32 H20)", 32, 80, 20),
        ("LSTM step H128 (B64)", 64, 512, 128),
        ("LSTM step H512 (B64)", 64, 2048, 512),
        ("LSTM step H1024 (B32)", 32, 4096, 1024),
        ("LSTM step H1024 (B64)", 64, 4096, 1024),
    ]
    if not quick:
        shapes.append(("LSTM input projection (6400 rows, I256 H512)", 6400, 2048, 256))
    return shapes


def sgemm_rates(quick: bool, budget: Budget) -> list[dict[str, Any]]:
    """NumPy float32 matmul GFLOP/s (NumPy's OpenBLAS) at :func:`sgemm_shapes`."""
    rng = np.random.default_rng(0)
    rows = []
    for label, m, n, k in sgemm_shapes(quick):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), dtype=np.float32)
        timing = measure(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), budget)
        rows.append(
            {
                "label": label,
                "m": m,
                "n": n,
                "k": k,
                "median_s": timing.median,
                "gflops": 2.0 * m * n * k / timing.median / 1e9,
                "timing": timing.as_dict(),
            }
        )
    return rows


def sgemm_peak(rows: list[dict[str, Any]]) -> Optional[float]:
    """The best square-size sgemm rate of a run (GFLOP/s): the yardstick for 'percent of sgemm'."""
    rates = [r["gflops"] for r in rows if r["label"].startswith("square")]
    return max(rates) if rates else None
