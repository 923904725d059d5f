"""Whole-model inference and thread scaling : three parts of the ``stream`` section.

- **Streaming**: the books' models stepped one time step at a time with every layer's state
  carried, at batch 1 and 256: fastrnn's ``model.stepper().step`` (one C++ call a step for
  the whole model), PyTorch's equivalent (``nn.RNN/LSTM/GRU`` layers called on one step with
  their hidden state carried, then ``nn.Linear``, under ``torch.inference_mode()``) and the
  NumPy reference (``fastrnn.reference``'s forwards on one step per layer, state carried).
  PyTorch gets the same weights (gates reordered for GRU); the largest output difference over
  the first steps is recorded.
- **Predict throughput**: ``model.predict`` over many windows, one call per batch of 256
  windows, and per window (batch 1) on fewer, against PyTorch's inference of the same model
  on the same batches (under ``inference_mode``); windows per second.
- **Thread scaling**: fastrnn at 1 thread and at all threads (``fastrnn.set_num_threads``) for
  every kernel case at the target sizes (forward+backward) and for the end-to-end fits.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import numpy as np

from bench_common import Budget, measure, optional_import

# (name, features, recurrent layers (cell, units, return_sequences)): the books' models, each
# with a Dense(1) head.
MODELS = (
    ("deep_rnn", 1, (("simple_rnn", 20, True), ("simple_rnn", 20, False))),
    ("jena_lstm", 14, (("lstm", 16, False),)),
    ("dlwp_gru", 14, (("gru", 32, True), ("gru", 32, False))),
)
DESCRIPTIONS = {
    "deep_rnn": "SimpleRNN(20, seq) -> SimpleRNN(20) -> Dense(1), 1 feature (Hands-On ML)",
    "jena_lstm": "LSTM(16) -> Dense(1), 14 features (DLwP, Jena)",
    "dlwp_gru": "GRU(32, seq) -> GRU(32) -> Dense(1), 14 features (DLwP, stacked GRU)",
}
WINDOW = {"deep_rnn": 50, "jena_lstm": 120, "dlwp_gru": 120}
STREAM_BATCHES = (1, 256)
STREAM_LENGTH = 64  # distinct input steps cycled through while streaming
IMPLS = ("fastrnn", "numpy", "torch")


def predict_windows(mode: str) -> dict[str, tuple[int, int]]:
    """Windows predicted per model: (at batch 256, at batch 1)."""
    return {
        "full": {"deep_rnn": (100_000, 2_000), "jena_lstm": (100_000, 1_000)},
        "quick": {"deep_rnn": (20_000, 500), "jena_lstm": (5_000, 200)},
        "smoke": {"deep_rnn": (512, 8), "jena_lstm": (512, 8)},
    }[mode]


def plan(mode: str) -> list[str]:
    """The progress steps of the section."""
    steps = [f"stream {name} B{b}" for name, _, _ in MODELS for b in STREAM_BATCHES]
    steps += [f"predict {name} B{b}" for name in predict_windows(mode) for b in (256, 1)]
    return steps + ["thread scaling"]


# ----------------------------------------------------------------------------- the models
def fastrnn_model(name: str, seed: int = 0) -> Any:
    """The model, float32, with seeded random weights (biases too)."""
    import fastrnn
    from fastrnn import layers

    _, features, stack = next(m for m in MODELS if m[0] == name)
    kinds = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
    body = [kinds[cell](units, return_sequences=seq) for cell, units, seq in stack]
    model = fastrnn.Sequential([fastrnn.Input((None, features))] + body + [layers.Dense(1)])
    model.build()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _recurrent_weights(model: Any) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(cell, kernel, recurrent_kernel, bias) of each recurrent layer, and the Dense's last."""
    out = []
    for layer in model.layers:
        w = layer.get_weights()
        if hasattr(layer, "_cell"):
            out.append((layer._cell, *w))
        elif w:
            out.append(("dense", w[0], None, w[1]))
    return out


def torch_model(torch: Any, model: Any) -> tuple[list[Any], Any]:
    """PyTorch's layers holding `model`'s weights: (recurrent modules, the Linear head)."""
    nn = torch.nn
    kinds = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    cells, head = [], None
    t = torch.from_numpy
    for cell, k, u, b in _recurrent_weights(model):
        if cell == "dense":
            head = nn.Linear(k.shape[0], k.shape[1])
            with torch.no_grad():
                head.weight.copy_(t(k.T.copy()))
                head.bias.copy_(t(b))
            continue
        H = u.shape[0]
        module = kinds[cell](k.shape[0], H, batch_first=True)
        with torch.no_grad():
            if cell == "gru":  # Keras's gate order z, r, h; PyTorch's r, z, n
                order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
                k, u, b = k[:, order], u[:, order], b[:, order]
                module.bias_ih_l0.copy_(t(b[0].copy()))
                module.bias_hh_l0.copy_(t(b[1].copy()))
            else:
                module.bias_ih_l0.copy_(t(b.copy()))
                module.bias_hh_l0.zero_()
            module.weight_ih_l0.copy_(t(k.T.copy()))
            module.weight_hh_l0.copy_(t(u.T.copy()))
        cells.append(module)
    return cells, head


# ----------------------------------------------------------------------------- streaming
def _steps(features: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((STREAM_LENGTH, batch, features), dtype=np.float32)


def stream_calls(torch: Optional[Any], reference: Optional[Any], model: Any, batch: int
                 ) -> dict[str, Callable[[], Any]]:
    """A zero-argument streaming step per implementation (each cycling through the inputs)."""
    features = model.input_shape[-1]
    steps = _steps(features, batch)
    calls: dict[str, Callable[[], Any]] = {}
    stepper = model.stepper(batch_size=batch)
    counters = {name: -1 for name in IMPLS}  # each implementation cycles on its own

    def next_step(name: str) -> np.ndarray:
        i = counters[name] = (counters[name] + 1) % STREAM_LENGTH
        return steps[i]

    def fast() -> Any:
        return stepper.step(next_step("fastrnn"))

    calls["fastrnn"] = fast
    if reference is not None:
        layers = _recurrent_weights(model)
        held: list = [None] * len(layers)

        def numpy_step() -> Any:
            x = next_step("numpy")[:, None, :]
            for k, (cell, kern, rec, bias) in enumerate(layers):
                if cell == "dense":
                    x = x[:, -1] @ kern + bias
                elif cell == "lstm":
                    h, c = held[k] or (None, None)
                    x, h, c = reference.lstm_forward(x, h, c, kern, rec, bias)[:3]
                    held[k] = (h, c)
                else:
                    forward = getattr(reference, f"{cell}_forward")
                    args = (x, held[k], kern, rec, bias) + (
                        ("tanh",) if cell == "simple_rnn" else ())
                    x, h = forward(*args)[:2]
                    held[k] = h
            return x

        calls["numpy"] = numpy_step
    if torch is not None:
        cells, head = torch_model(torch, model)
        hidden: list = [None] * len(cells)

        def torch_step() -> Any:
            x = torch.from_numpy(next_step("torch")[:, None, :])
            for k, module in enumerate(cells):
                x, hidden[k] = module(x, hidden[k])
            return head(x[:, -1])

        calls["torch"] = torch_step
    return calls


def _max_diff(calls: dict[str, Callable[[], Any]], torch: Any, n: int = 8) -> dict[str, float]:
    """Largest |other - fastrnn| over the first `n` steps from fresh states (a check that every
    implementation computes the same model)."""
    outs: dict[str, list] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            y = call()
            outs[name].append(y.detach().numpy() if torch is not None and name == "torch"
                              else np.asarray(y))
    ours = np.stack(outs["fastrnn"])
    return {name: float(np.abs(np.stack(v).reshape(ours.shape) - ours).max())
            for name, v in outs.items() if name != "fastrnn"}


def _timed(calls: dict[str, Callable[[], Any]], budget: Budget, torch: Optional[Any],
           skipped: dict[str, str], warmup: int = 5) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in IMPLS:
        if name not in calls:
            results[name] = {"skipped": skipped.get(name, "not available")}
            continue
        guard = torch.inference_mode() if name == "torch" else contextlib.nullcontext()
        try:
            with guard:
                timing = measure(calls[name], budget, warmup=warmup)
            results[name] = {"median_s": timing.median, "timing": timing.as_dict()}
        except Exception as exc:  # report, do not abort the suite
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def _ratios(row: dict[str, Any], key: str = "median_s") -> None:
    fast = row["results"].get("fastrnn", {}).get(key)
    for other in ("numpy", "torch"):
        theirs = row["results"].get(other, {}).get(key)
        row[f"speedup_vs_{other}"] = theirs / fast if fast and theirs else None


def run_streaming(budget: Budget, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    torch, why_torch = optional_import("torch")
    reference, why_ref = optional_import("fastrnn.reference")
    skipped = {"torch": f"torch not available ({why_torch})",
               "numpy": f"fastrnn.reference not available ({why_ref})"}
    rows = []
    for name, _, _ in MODELS:
        model = fastrnn_model(name)
        for batch in STREAM_BATCHES:
            progress(f"stream {name} B{batch}")
            row: dict[str, Any] = {"model": name, "description": DESCRIPTIONS[name],
                                   "batch": batch}
            guard = torch.inference_mode() if torch is not None else contextlib.nullcontext()
            with guard:
                row["max_abs_diff_vs_fastrnn"] = _max_diff(
                    stream_calls(torch, reference, model, batch), torch)
            row["results"] = _timed(stream_calls(torch, reference, model, batch), budget, torch,
                                    skipped)
            _ratios(row)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- predict
def _windows(name: str, n: int) -> np.ndarray:
    features = next(m[1] for m in MODELS if m[0] == name)
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, WINDOW[name], features), dtype=np.float32)


CHUNK = 10_000  # windows held at once: 100k Jena windows would be 670 MB


def run_predict(mode: str, budget: Budget, progress: Callable[[str], None]
                ) -> list[dict[str, Any]]:
    torch, why_torch = optional_import("torch")
    rows = []
    for name, (n_big, n_one) in predict_windows(mode).items():
        model = fastrnn_model(name)
        cells, head = torch_model(torch, model) if torch is not None else ([], None)
        for batch, n in ((256, n_big), (1, n_one)):
            progress(f"predict {name} B{batch}")
            chunk = _windows(name, min(n, CHUNK))
            repeats = -(-n // len(chunk))  # the chunk is predicted this many times

            calls = predict_calls(torch, model, (cells, head), chunk, batch, repeats)
            why = {"torch": f"torch not available ({why_torch})",
                   "numpy": "not measured (whole windows)"}
            results = _timed(calls, _few_samples(budget), torch, why, warmup=1)
            windows = repeats * len(chunk)
            for res in results.values():
                if "median_s" in res:
                    res["windows_per_s"] = windows / res["median_s"]
            row = {"model": name, "description": DESCRIPTIONS[name], "batch": batch,
                   "windows": windows, "chunk": len(chunk), "results": results}
            _ratios(row)
            rows.append(row)
    return rows


def predict_calls(torch: Optional[Any], model: Any, torch_layers: tuple, chunk: np.ndarray,
                  batch: int, repeats: int) -> dict[str, Callable[[], Any]]:
    """fastrnn's predict and PyTorch's batched inference over `chunk`, `repeats` times, both one
    call per batch of `batch` windows (``predict(x, batch_size)`` on a whole array would run
    batches of at least 1024 rows: the trainer's minimum inference batch)."""
    def fast() -> Any:
        for _ in range(repeats):
            for start in range(0, len(chunk), batch):
                y = model.predict(chunk[start:start + batch], batch_size=batch)
        return y

    calls = {"fastrnn": fast}
    if torch is None:
        return calls
    cells, head = torch_layers
    x_all = torch.from_numpy(chunk)

    def torch_predict() -> Any:
        for _ in range(repeats):
            parts = []
            for start in range(0, len(chunk), batch):
                x = x_all[start:start + batch]
                for module in cells:
                    x, _ = module(x)
                parts.append(head(x[:, -1]))
            y = torch.cat(parts)
        return y

    calls["torch"] = torch_predict
    return calls


def _few_samples(budget: Budget) -> Budget:
    """Whole-dataset calls take seconds: a few samples, no grouping."""
    import dataclasses

    return dataclasses.replace(budget, min_repeats=min(budget.min_repeats, 3),
                               min_repeats_slow=min(budget.min_repeats_slow or 2, 2),
                               warmup_seconds=0.0)


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def _fastrnn_threads(n: int):
    import fastrnn

    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(n)
    try:
        yield
    finally:
        fastrnn.set_num_threads(before)


def run_threads(mode: str, threads: int, budget: Budget, progress: Callable[[str], None]
                ) -> list[dict[str, Any]]:
    """fastrnn at 1 thread and at `threads`: kernels at the target sizes and the fits."""
    import bench_e2e
    import bench_kernels
    import fastrnn

    progress("thread scaling")
    rows = []
    for case in (c for c in bench_kernels.plan(mode) if c.group == "perf"):
        call = bench_kernels.ops_calls(fastrnn.ops, case.cell, bench_kernels.make_data(case))[
            "forward+backward"]
        row: dict[str, Any] = {"what": f"{case.label} fwd+bwd", "kind": "kernel"}
        for n in sorted({1, threads}):
            with _fastrnn_threads(n):
                row[f"s_{n}"] = measure(call, budget, warmup=2).median
        rows.append(row)
    api, _ = bench_e2e.fastrnn_available()
    for work in bench_e2e.workloads(mode):
        row = {"what": f"{work.name} fit (s/epoch)", "kind": "fit"}
        for n in sorted({1, threads}):
            with _fastrnn_threads(n):
                result = bench_e2e._train(
                    lambda w=work: bench_e2e._fastrnn_trainer(api, w, None), work, False)
            row[f"s_{n}"] = result["s_per_epoch"]
        rows.append(row)
    for row in rows:
        row["threads"] = threads
        row["speedup"] = row["s_1"] / row[f"s_{threads}"] if row[f"s_{threads}"] else None
    return rows


def run(mode: str, threads: int, budget: Budget, progress: Callable[[str], None]
        ) -> dict[str, Any]:
    """The whole section: ``{"stream": rows, "predict": rows, "threads": rows}``."""
    return {
        "stream": run_streaming(budget, progress),
        "predict": run_predict(mode, budget, progress),
        "threads": run_threads(mode, threads, budget, progress),
    }


# ----------------------------------------------------------------------------- report
def targets(results: dict[str, Any], add: Callable[[str, Optional[float], float], None]
            ) -> None:
    """The section's targets (streaming a whole stacked model >= 10x PyTorch)."""
    for r in results.get("stream", []):
        add(f"streaming step {r['model']} B{r['batch']} vs PyTorch >= 10x",
            r["speedup_vs_torch"], 10.0)
    for r in results.get("predict", []):
        add(f"predict {r['model']} B{r['batch']} vs PyTorch >= 10x (windows/s)",
            r["speedup_vs_torch"], 10.0)


def markdown(results: dict[str, Any], fmt_time: Callable, fmt_ratio: Callable,
             cell_result: Callable, table: Callable) -> list[str]:
    """The section's tables (the report's formatting helpers passed in)."""
    out: list[str] = []
    if results.get("stream"):
        out += ["## Whole-model streaming (one step, every layer's state carried)", ""]
        out += table(
            ["model", "batch", "fastrnn", "NumPy", "PyTorch", "vs NumPy", "vs PyTorch",
             "max |diff| (NumPy, PyTorch)"],
            [[r["model"], str(r["batch"])]
             + [cell_result(r["results"].get(n, {})) for n in IMPLS]
             + [fmt_ratio(r["speedup_vs_numpy"]), fmt_ratio(r["speedup_vs_torch"]),
                ", ".join(f"{v:.1e}" for v in r["max_abs_diff_vs_fastrnn"].values())]
             for r in results["stream"]])
        out += [""] + [f"- {name}: {DESCRIPTIONS[name]}" for name, _, _ in MODELS] + [
            "- fastrnn: `model.stepper(batch_size).step(x_t)`; PyTorch: each nn.RNN/LSTM/GRU "
            "called on one step with its hidden state carried, then nn.Linear, under "
            "inference_mode; NumPy: fastrnn.reference's forwards on one step per layer.", ""]
    if results.get("predict"):
        out += ["## Predict throughput (windows per second)", ""]
        out += table(
            ["model", "batch", "windows", "fastrnn", "PyTorch", "fastrnn windows/s",
             "PyTorch windows/s", "vs PyTorch"],
            [[r["model"], str(r["batch"]), f"{r['windows']:,}",
              cell_result(r["results"].get("fastrnn", {})),
              cell_result(r["results"].get("torch", {})),
              f"{r['results'].get('fastrnn', {}).get('windows_per_s', 0):,.0f}",
              f"{r['results'].get('torch', {}).get('windows_per_s', 0):,.0f}",
              fmt_ratio(r["speedup_vs_torch"])]
             for r in results["predict"]])
        out += ["", "fastrnn: `model.predict` called on each batch of windows (batch 1: one "
                "window a call); PyTorch: the same layers on the same batches under "
                "inference_mode. Windows are predicted in chunks "
                f"of at most {CHUNK:,} (the same chunk again until the count is reached), so "
                "100k Jena windows need not be held at once.", ""]
    if results.get("threads"):
        threads = results["threads"][0]["threads"]
        out += [f"## Thread scaling (fastrnn at 1 and {threads} threads)", ""]
        out += table(
            ["case", "1 thread", f"{threads} threads", "speed-up"],
            [[r["what"], fmt_time(r["s_1"]), fmt_time(r[f"s_{threads}"]),
              fmt_ratio(r["speedup"])] for r in results["threads"]])
        out += [""]
    return out
