"""Kernel benchmarks: forward and forward+backward of whole sequences, three implementations.

Implementations, each given the same float32 arrays (batch-major ``(B, T, I)``):

- ``fastrnn``: :mod:`fastrnn.ops` (the C++ kernels);
- ``numpy``: :mod:`fastrnn.reference` (plain NumPy, the same signatures), when it exists;
- ``torch``: ``torch.nn.RNN/LSTM/GRU`` (``batch_first=True``) on the CPU, when installed.

"forward" is the call a user makes to get outputs: fastrnn and the NumPy reference record their
tape as always; PyTorch runs under ``torch.no_grad()``. "forward+backward" is a training step's
recurrent part: forward, then the gradients of every weight and of ``x`` for a random upstream
gradient on the outputs (PyTorch: autograd, ``x.requires_grad=True``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from bench_common import Budget, Timing, measure, optional_import, split_budget

CELLS = ("simple_rnn", "lstm", "gru")
CELL_NAMES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
PASSES = ("forward", "forward+backward")
IMPLEMENTATIONS = ("fastrnn", "numpy", "torch")


@dataclasses.dataclass(frozen=True)
class KernelCase:
    """One size: cell, batch B, time T, input features I, hidden units H, and its group."""

    cell: str
    batch: int
    time: int
    input: int
    hidden: int
    group: str  # "perf" (the target sizes), "hidden" or "batch" (the sweeps)

    @property
    def label(self) -> str:
        """E.g. ``LSTM 64x100x32x128`` (cell, batch, time, input, hidden)."""
        return f"{CELL_NAMES[self.cell]} {self.batch}x{self.time}x{self.input}x{self.hidden}"

    def gflop(self, pass_: str) -> float:
        """The FLOP count: 2*T*B*(I+H)*G*H for a forward, three times that with the backward."""
        g = GATES[self.cell]
        forward = 2.0 * self.time * self.batch * (self.input + self.hidden) * g * self.hidden
        return (forward if pass_ == "forward" else 3.0 * forward) / 1e9


# ----------------------------------------------------------------------------- the plan
PERF_SIZES = (  # (batch, time, input, hidden), the cells the targets name at that size
    ((32, 50, 1, 20), CELLS),
    ((64, 100, 32, 128), CELLS),
    ((64, 100, 256, 512), CELLS),
    ((32, 50, 512, 1024), ("lstm",)),
)


def plan(mode: str) -> list[KernelCase]:
    """The cases of a run. `mode` is ``"full"``, ``"quick"`` or ``"smoke"`` (the test's run)."""
    cases: list[KernelCase] = []
    perf = PERF_SIZES[:1] if mode == "smoke" else PERF_SIZES[:3] if mode == "quick" else PERF_SIZES
    for (b, t, i, h), cells in perf:
        cases += [KernelCase(c, b, t, i, h, "perf") for c in cells]
    if mode == "smoke":
        hiddens, batches, time, batch, hidden = (8, 16), (1, 4), 10, 4, 16
    elif mode == "quick":
        hiddens, batches, time, batch, hidden = (16, 64, 256), (1, 16, 128), 50, 32, 64
    else:
        hiddens = (16, 32, 64, 128, 256, 512, 1024)
        batches, time, batch, hidden = (1, 4, 16, 64, 256), 50, 32, 128
    for cell in CELLS:
        cases += [KernelCase(cell, batch, time, 32, h, "hidden") for h in hiddens]
    for cell in CELLS:
        cases += [KernelCase(cell, b, time, 32, hidden, "batch") for b in batches]
    return cases


# ----------------------------------------------------------------------------- the data
@dataclasses.dataclass
class CaseData:
    """Inputs, Keras-layout weights and an upstream gradient for one case (float32)."""

    x: np.ndarray  # (B, T, I)
    kernel: np.ndarray  # (I, G*H)
    recurrent_kernel: np.ndarray  # (H, G*H)
    bias: np.ndarray  # (G*H,), GRU: (2, 3H)
    d_outputs: np.ndarray  # (B, T, H)


def make_data(case: KernelCase, seed: int = 0) -> CaseData:
    """Random non-constant data, weights scaled so the gates stay out of saturation."""
    rng = np.random.default_rng(seed)
    b, t, i, h, g = case.batch, case.time, case.input, case.hidden, GATES[case.cell]
    f32 = np.float32
    bias_shape = (2, g * h) if case.cell == "gru" else (g * h,)
    return CaseData(
        x=rng.standard_normal((b, t, i), dtype=f32),
        kernel=(rng.standard_normal((i, g * h), dtype=f32) / np.sqrt(i)).astype(f32),
        recurrent_kernel=(rng.standard_normal((h, g * h), dtype=f32) / np.sqrt(h)).astype(f32),
        bias=(0.1 * rng.standard_normal(bias_shape, dtype=f32)).astype(f32),
        d_outputs=rng.standard_normal((b, t, h), dtype=f32),
    )


# ----------------------------------------------------------------------------- the callables
Calls = dict[str, Callable[[], Any]]  # pass name -> a zero-argument call


def ops_calls(module: Any, cell: str, data: CaseData) -> Calls:
    """Forward and forward+backward through a module with fastrnn.ops's functional API."""
    forward = getattr(module, f"{cell}_forward")
    backward = getattr(module, f"{cell}_backward")
    states = (None, None) if cell == "lstm" else (None,)
    args = (data.x, *states, data.kernel, data.recurrent_kernel, data.bias)

    def run_forward() -> Any:
        return forward(*args)

    def run_forward_backward() -> Any:
        tape = forward(*args)[-1]
        return backward(tape, data.d_outputs)

    return {"forward": run_forward, "forward+backward": run_forward_backward}


def torch_module(torch: Any, cell: str, data: CaseData) -> Any:
    """``nn.RNN/LSTM/GRU`` holding `data`'s weights (transposed; gate order left as is)."""
    nn = torch.nn
    kind = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    i, h = data.kernel.shape[0], data.recurrent_kernel.shape[0]
    module = kind(i, h, batch_first=True)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(data.kernel.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(data.recurrent_kernel.T.copy()))
        if cell == "gru":
            module.bias_ih_l0.copy_(torch.from_numpy(data.bias[0].copy()))
            module.bias_hh_l0.copy_(torch.from_numpy(data.bias[1].copy()))
        else:
            module.bias_ih_l0.copy_(torch.from_numpy(data.bias))
            module.bias_hh_l0.zero_()
    return module


def torch_calls(torch: Any, cell: str, data: CaseData) -> Calls:
    """PyTorch CPU: forward under no_grad; forward+backward through autograd."""
    module = torch_module(torch, cell, data)
    params = list(module.parameters())
    x = torch.from_numpy(data.x)
    x_grad = x.clone().requires_grad_(True)
    d_outputs = torch.from_numpy(data.d_outputs)

    def run_forward() -> Any:
        with torch.no_grad():
            return module(x)

    def run_forward_backward() -> Any:
        for p in params:  # fresh gradients each call, as fastrnn returns fresh arrays
            p.grad = None
        x_grad.grad = None
        outputs, _ = module(x_grad)
        outputs.backward(d_outputs)
        return x_grad.grad

    return {"forward": run_forward, "forward+backward": run_forward_backward}


def implementations() -> dict[str, tuple[Optional[Any], str]]:
    """Each implementation's module, or None and why it is unavailable."""
    import fastrnn

    reference, why = optional_import("fastrnn.reference")
    if reference is not None and not all(
        hasattr(reference, f"{c}_{p}") for c in CELLS for p in ("forward", "backward")
    ):
        reference, why = None, "fastrnn.reference lacks some *_forward/*_backward functions"
    torch, why_torch = optional_import("torch")
    return {
        "fastrnn": (fastrnn.ops, ""),
        "numpy": (reference, f"skipped: fastrnn.reference not available ({why})" if why else ""),
        "torch": (torch, f"skipped: torch not available ({why_torch})" if why_torch else ""),
    }


# ----------------------------------------------------------------------------- one case
def _max_abs_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def run_case(
    case: KernelCase,
    impls: dict[str, tuple[Optional[Any], str]],
    budget: Budget,
    sgemm_peak: Optional[float],
) -> list[dict[str, Any]]:
    """Times every pass of `case` for every implementation, one after the other.

    With ``budget.rounds > 1`` the implementations take turns several times and each one's
    samples are pooled, so a burst of load from other processes is shared out fairly.
    Returns one row per pass: times (median seconds and the sample spread), GFLOP/s, fastrnn's
    speed-up over the others (their time divided by fastrnn's: above 1 means fastrnn is faster),
    fastrnn's percent of the run's sgemm rate, and fastrnn's forward outputs' largest deviation
    from the NumPy reference's.
    """
    data = make_data(case)
    calls: dict[str, Calls] = {}
    results: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in PASSES}
    for name, (module, why) in impls.items():
        if module is None:
            for p in PASSES:
                results[p][name] = {"skipped": why}
            continue
        try:
            if name == "torch":
                calls[name] = torch_calls(module, case.cell, data)
            else:
                calls[name] = ops_calls(module, case.cell, data)
        except Exception as exc:  # report, do not abort the whole suite
            for p in PASSES:
                results[p][name] = {"error": f"{type(exc).__name__}: {exc}"}

    deviation = None
    if "fastrnn" in calls and "numpy" in calls:
        try:
            ours, theirs = calls["fastrnn"]["forward"](), calls["numpy"]["forward"]()
            deviation = _max_abs_diff(ours[0], theirs[0])
        except Exception:  # the timing below reports the failure
            deviation = None

    rows = []
    share = split_budget(budget, budget.rounds)
    for p in PASSES:
        gflop = case.gflop(p)
        parts: dict[str, list[Timing]] = {name: [] for name in calls}
        for _ in range(budget.rounds):  # implementations take turns, one after the other
            for name, c in calls.items():
                if name not in parts:  # failed in an earlier round
                    continue
                try:
                    parts[name].append(measure(c[p], share))
                except Exception as exc:
                    results[p][name] = {"error": f"{type(exc).__name__}: {exc}"}
                    del parts[name]
        for name, timings in parts.items():
            timing = Timing.combine(timings)
            results[p][name] = {
                "median_s": timing.median,
                "gflops": gflop / timing.median,
                "timing": timing.as_dict(),
            }
        rows.append(_row(case, p, gflop, results[p], sgemm_peak, deviation))
    return rows


def _row(
    case: KernelCase,
    pass_: str,
    gflop: float,
    results: dict[str, dict[str, Any]],
    sgemm_peak: Optional[float],
    deviation: Optional[float],
) -> dict[str, Any]:
    fast = results.get("fastrnn", {}).get("median_s")
    speedups: dict[str, Optional[float]] = {}
    for other in ("numpy", "torch"):
        theirs = results.get(other, {}).get("median_s")
        speedups[other] = theirs / fast if fast and theirs else None
    pct = None
    if fast and sgemm_peak:
        pct = 100.0 * (gflop / fast) / sgemm_peak
    return {
        "group": case.group,
        "label": case.label,
        "cell": case.cell,
        "pass": pass_,
        "batch": case.batch,
        "time": case.time,
        "input": case.input,
        "hidden": case.hidden,
        "gflop": gflop,
        "results": results,
        "speedup_vs_numpy": speedups["numpy"],
        "speedup_vs_torch": speedups["torch"],
        "fastrnn_pct_of_sgemm": pct,
        "max_abs_diff_vs_numpy": deviation,
    }


# ----------------------------------------------------------------------------- masked batches
# A padded batch of variable-length sequences, LSTM forward+backward: fastrnn with a step mask
# against fastrnn on the same padded shape without one (target: at most 1.1x its cost), and
# PyTorch's way of skipping padding, pack_padded_sequence (plus its padded run, for scale).
MASKED_SIZES = ((32, 50, 1, 20), (64, 100, 32, 128))  # (batch, time, input, hidden)
MASKED_IMPLEMENTATIONS = ("fastrnn masked", "fastrnn unmasked", "torch packed", "torch padded")


def masked_lengths(batch: int, time: int, seed: int = 0) -> np.ndarray:
    """Right-padded lengths, uniform in [time/2, time], the longest first row at full length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(1, time // 2), time + 1, size=batch)
    lengths[0] = time
    return lengths


def masked_calls(torch: Optional[Any], data: CaseData, lengths: np.ndarray) -> Calls:
    """Forward+backward of each of MASKED_IMPLEMENTATIONS (the torch ones when installed)."""
    import fastrnn

    ops = fastrnn.ops
    _, time, _ = data.x.shape
    mask = np.arange(time)[None, :] < lengths[:, None]
    args = (data.x, None, None, data.kernel, data.recurrent_kernel, data.bias)
    d_outputs = data.d_outputs * mask[:, :, None]

    def masked() -> Any:
        return ops.lstm_backward(ops.lstm_forward(*args, mask=mask)[-1], d_outputs)

    def unmasked() -> Any:
        return ops.lstm_backward(ops.lstm_forward(*args)[-1], d_outputs)

    calls: Calls = {"fastrnn masked": masked, "fastrnn unmasked": unmasked}
    if torch is None:
        return calls
    module = torch_module(torch, "lstm", data)
    params = list(module.parameters())
    x = torch.from_numpy(data.x).clone().requires_grad_(True)
    d_out = torch.from_numpy(d_outputs)
    t_lengths = torch.from_numpy(lengths.astype(np.int64))
    rnn = torch.nn.utils.rnn

    def step(packed: bool) -> Any:
        for p in params:
            p.grad = None
        x.grad = None
        if packed:
            seq = rnn.pack_padded_sequence(x, t_lengths, batch_first=True, enforce_sorted=False)
            out, _ = module(seq)
            out, _ = rnn.pad_packed_sequence(out, batch_first=True, total_length=time)
        else:
            out, _ = module(x)
        out.backward(d_out)
        return x.grad

    calls["torch packed"] = lambda: step(True)
    calls["torch padded"] = lambda: step(False)
    return calls


def _time_ratio(results: dict[str, dict[str, Any]]) -> Callable[[str, str], Optional[float]]:
    """ratio(a, b): a's median time over b's, or None when either is missing."""

    def ratio(a: str, b: str) -> Optional[float]:
        x, y = results[a].get("median_s"), results[b].get("median_s")
        return x / y if x and y else None

    return ratio


def run_masked(mode: str, impls: dict[str, tuple[Optional[Any], str]], budget: Budget,
               progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One row per size: each implementation's time and the ratios that matter."""
    sizes = MASKED_SIZES[:1] if mode == "smoke" else MASKED_SIZES
    torch = impls.get("torch", (None, ""))[0]
    rows = []
    for b, t, i, h in sizes:
        case = KernelCase("lstm", b, t, i, h, "masked")
        progress(f"{case.label} (masked)")
        lengths = masked_lengths(b, t)
        calls = masked_calls(torch, make_data(case), lengths)
        parts: dict[str, list[Timing]] = {name: [] for name in calls}
        share = split_budget(budget, budget.rounds)
        for _ in range(budget.rounds):  # take turns, as run_case does
            for name, call in calls.items():
                parts[name].append(measure(call, share))
        results: dict[str, dict[str, Any]] = {}
        for name in MASKED_IMPLEMENTATIONS:
            if name in parts:
                timing = Timing.combine(parts[name])
                results[name] = {"median_s": timing.median, "timing": timing.as_dict()}
            else:
                results[name] = {"skipped": "torch not available"}
        ratio = _time_ratio(results)
        rows.append({
            "label": case.label,
            "lengths_mean": float(lengths.mean()),
            "kept_fraction": float(lengths.mean() / t),
            "results": results,
            "masked_over_unmasked": ratio("fastrnn masked", "fastrnn unmasked"),
            "torch_packed_over_masked": ratio("torch packed", "fastrnn masked"),
            "torch_padded_over_unmasked": ratio("torch padded", "fastrnn unmasked"),
        })
    return rows
