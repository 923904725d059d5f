"""Inference latency at batch 1, for online forecasting: an LSTM with 14 inputs (Jena-shaped).

Two ways to call a model on one series:

- whole sequence: one forward over a window of ``T`` steps;
- streaming: one step per call (``T = 1``), the state ``(h, c)`` carried from call to call, as a
  forecaster does when a new sample arrives. fastrnn: ``ops.lstm_forward`` with ``h0``/``c0``;
  PyTorch: one ``nn.LSTM`` call with ``(h, c)``, under ``torch.no_grad()`` (58 us at hidden 20,
  74 us at hidden 128 when the targets were set).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import numpy as np

from bench_common import Budget, measure

INPUTS = 14
STREAM_LENGTH = 256  # distinct input steps cycled through while streaming


def plan(mode: str) -> list[tuple[str, int, int]]:
    """(kind, hidden, time) of every measurement."""
    window = 16 if mode == "smoke" else 120
    hiddens = (20,) if mode == "smoke" else (20, 128)
    rows = [("streaming step", h, 1) for h in hiddens]
    rows += [("whole sequence", h, window) for h in hiddens]
    return rows


def _weights(hidden: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    kernel = (rng.standard_normal((INPUTS, 4 * hidden), dtype=f32) / np.sqrt(INPUTS)).astype(f32)
    recurrent = (rng.standard_normal((hidden, 4 * hidden), dtype=f32) / np.sqrt(hidden)).astype(f32)
    bias = (0.1 * rng.standard_normal(4 * hidden, dtype=f32)).astype(f32)
    return kernel, recurrent, bias


def _ops_call(module: Any, kind: str, hidden: int, time: int) -> Callable[[], Any]:
    """A zero-argument call through an ops-like module (fastrnn.ops or fastrnn.reference)."""
    kernel, recurrent, bias = _weights(hidden)
    rng = np.random.default_rng(1)
    if kind == "whole sequence":
        x = rng.standard_normal((1, time, INPUTS), dtype=np.float32)
        return lambda: module.lstm_forward(x, None, None, kernel, recurrent, bias)
    steps = rng.standard_normal((STREAM_LENGTH, 1, 1, INPUTS), dtype=np.float32)
    state: dict[str, Any] = {
        "h": np.zeros((1, hidden), np.float32),
        "c": np.zeros((1, hidden), np.float32),
        "i": 0,
    }

    def step() -> Any:
        i = state["i"]
        out, state["h"], state["c"], _ = module.lstm_forward(
            steps[i], state["h"], state["c"], kernel, recurrent, bias
        )
        state["i"] = (i + 1) % STREAM_LENGTH
        return out

    return step


def _torch_call(torch: Any, kind: str, hidden: int, time: int) -> Callable[[], Any]:
    kernel, recurrent, bias = _weights(hidden)
    module = torch.nn.LSTM(INPUTS, hidden, batch_first=True)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(bias))
        module.bias_hh_l0.zero_()
    rng = np.random.default_rng(1)
    if kind == "whole sequence":
        x = torch.from_numpy(rng.standard_normal((1, time, INPUTS), dtype=np.float32))
        return lambda: module(x)
    steps = torch.from_numpy(rng.standard_normal((STREAM_LENGTH, 1, 1, INPUTS), dtype=np.float32))
    state: dict[str, Any] = {
        "hc": (torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden)),
        "i": 0,
    }

    def step() -> Any:
        i = state["i"]
        out, state["hc"] = module(steps[i], state["hc"])
        state["i"] = (i + 1) % STREAM_LENGTH
        return out

    return step


def run(
    mode: str,
    impls: dict[str, tuple[Optional[Any], str]],
    budget: Budget,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Times every :func:`plan` row for every implementation; `impls` as bench_kernels gives it."""
    rows = []
    for kind, hidden, time in plan(mode):
        progress(f"latency {kind} H{hidden}")
        results: dict[str, dict[str, Any]] = {}
        for name, (module, why) in impls.items():
            if module is None:
                results[name] = {"skipped": why}
                continue
            try:
                if name == "torch":
                    call = _torch_call(module, kind, hidden, time)
                    guard = module.no_grad()
                else:
                    call = _ops_call(module, kind, hidden, time)
                    guard = contextlib.nullcontext()
                with guard:
                    timing = measure(call, budget, warmup=5)
                results[name] = {"median_s": timing.median, "timing": timing.as_dict()}
            except Exception as exc:  # report, do not abort the suite
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        fast = results.get("fastrnn", {}).get("median_s")
        row: dict[str, Any] = {
            "kind": kind,
            "cell": "lstm",
            "batch": 1,
            "time": time,
            "input": INPUTS,
            "hidden": hidden,
            "results": results,
        }
        for other in ("numpy", "torch"):
            theirs = results.get(other, {}).get("median_s")
            row[f"speedup_vs_{other}"] = theirs / fast if fast and theirs else None
        rows.append(row)
    return rows
