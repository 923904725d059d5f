"""Serving benchmarks: a 2-layer LSTM(64) forecaster (14 features -> LSTM(64, seq) -> LSTM(64)
-> Dense(1)) run by fastrnn, by onnxruntime on the graph ``model.export(format="onnx")``
writes, and by PyTorch (``nn.LSTM`` layers with the same weights, ``inference_mode``).

- **streaming step, batch 1**: one new time step with every state carried. fastrnn:
  ``model.stepper().step``; onnxruntime: the exported graph on a ``(1, 1, 14)`` input with the
  states fed back (its ``*/h``, ``*/c`` inputs); PyTorch: each ``nn.LSTM`` on one step with its
  ``(h, c)``, then ``nn.Linear``.
- **50-step window, batch 1**: ``model.predict`` of one window against the same call of the
  others.
- **predict throughput, batch 256**: windows of 50 steps a second, fastrnn's ``predict`` against
  onnxruntime's run on batches of 256 (and PyTorch's).
- **server**: ``fastrnn serve`` (a process of its own, uvicorn on 127.0.0.1), 16 concurrent
  clients (threads of this process) each sending single-step requests to a stream of its own:
  requests a second, p50 and p99 latency. Reported, never asserted.

onnxruntime and PyTorch run single-threaded for the batch-1 rows (threads only add latency
there) and with their default threads for batch 256; fastrnn runs with its default threads.
Run: ``python benchmarks/bench_serving.py [--quick] [--json FILE]``, or as the ``serving``
section of ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Budget, measure, optional_import  # noqa: E402

FEATURES, UNITS, WINDOW, BATCH = 14, 64, 50, 256


def build_model(seed: int = 0) -> Any:
    import fastrnn
    from fastrnn import layers as L

    model = fastrnn.Sequential([fastrnn.Input((None, FEATURES)),
                                L.LSTM(UNITS, return_sequences=True, name="lstm_a"),
                                L.LSTM(UNITS, name="lstm_b"), L.Dense(1)], name="forecaster")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.2, 0.2, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def ort_session(ort: Any, path: str, threads: Optional[int]) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def torch_layers(torch: Any, model: Any) -> tuple[list, Any]:
    nn = torch.nn
    cells, head = [], None
    for layer in model.layers:
        w = layer.get_weights()
        if hasattr(layer, "_cell"):
            k, u, b = w
            m = nn.LSTM(k.shape[0], u.shape[0], batch_first=True)
            with torch.no_grad():
                m.weight_ih_l0.copy_(torch.from_numpy(k.T.copy()))
                m.weight_hh_l0.copy_(torch.from_numpy(u.T.copy()))
                m.bias_ih_l0.copy_(torch.from_numpy(b.copy()))
                m.bias_hh_l0.zero_()
            cells.append(m.eval())
        elif w:
            head = nn.Linear(w[0].shape[0], w[0].shape[1])
            with torch.no_grad():
                head.weight.copy_(torch.from_numpy(w[0].T.copy()))
                head.bias.copy_(torch.from_numpy(w[1]))
    return cells, head


def calls(model: Any, ort: Optional[Any], torch: Optional[Any], onnx_path: Optional[str]
          ) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per measurement, a zero-argument call per implementation."""
    rng = np.random.default_rng(1)
    steps = rng.standard_normal((64, 1, FEATURES)).astype(np.float32)
    window = rng.standard_normal((1, WINDOW, FEATURES)).astype(np.float32)
    big = rng.standard_normal((BATCH, WINDOW, FEATURES)).astype(np.float32)
    out: dict[str, dict[str, Callable[[], Any]]] = {"step": {}, "window": {}, "batch256": {}}
    stepper = model.stepper()
    buffer = np.empty((1, 1), np.float32)
    counter = [0]

    def fastrnn_step():
        counter[0] = (counter[0] + 1) % len(steps)
        return stepper.step(steps[counter[0]], out=buffer)

    out["step"]["fastrnn"] = fastrnn_step
    out["window"]["fastrnn"] = lambda: model.predict(window, batch_size=1)
    out["batch256"]["fastrnn"] = lambda: model.predict(big, batch_size=BATCH)
    if ort is not None and onnx_path is not None:
        one = ort_session(ort, onnx_path, 1)
        many = ort_session(ort, onnx_path, None)
        state_names = [i.name for i in one.get_overridable_initializers()]
        outputs = [o.name for o in one.get_outputs()]
        states = {n: np.zeros((1, UNITS), np.float32) for n in state_names}
        k = [0]

        def ort_step():
            k[0] = (k[0] + 1) % len(steps)
            result = one.run(outputs, {"input": steps[k[0]][:, None], **states})
            states.update(zip(state_names, result[1:]))
            return result[0]

        out["step"]["onnxruntime"] = ort_step
        out["window"]["onnxruntime"] = lambda: one.run(["output"], {"input": window})
        out["batch256"]["onnxruntime"] = lambda: many.run(["output"], {"input": big})
    if torch is not None:
        cells, head = torch_layers(torch, model)
        hidden: list = [None] * len(cells)
        tsteps = torch.from_numpy(steps[:, :, None, :].copy())  # (64, 1, 1, F)
        j = [0]

        def torch_step():
            j[0] = (j[0] + 1) % len(steps)
            with torch.inference_mode():
                y = tsteps[j[0]]
                for n, cell in enumerate(cells):
                    y, hidden[n] = cell(y, hidden[n])
                return head(y[:, -1])

        def torch_forward(x):
            with torch.inference_mode():
                y = x
                for cell in cells:
                    y, _ = cell(y)
                return head(y[:, -1])

        tw, tb = torch.from_numpy(window), torch.from_numpy(big)
        out["step"]["torch"] = torch_step
        out["window"]["torch"] = lambda: torch_forward(tw)
        out["batch256"]["torch"] = lambda: torch_forward(tb)
    return out


def agreement(model: Any, ort: Optional[Any], onnx_path: Optional[str]) -> Optional[float]:
    """Largest |onnxruntime - fastrnn| over a batch of windows (the export's correctness)."""
    if ort is None or onnx_path is None:
        return None
    x = np.random.default_rng(2).standard_normal((8, WINDOW, FEATURES)).astype(np.float32)
    got = ort_session(ort, onnx_path, 1).run(["output"], {"input": x})[0]
    return float(np.abs(got - model.predict(x)).max())


# ----------------------------------------------------------------------------- the server
def start_server(model_path: str) -> tuple[Any, int]:
    """``fastrnn serve`` as a process of its own (the clients' threads then do not share its
    interpreter lock); returns (process, port) once it answers."""
    import subprocess

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "fastrnn", "serve", model_path, "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc, port
        except httpx.TransportError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fastrnn serve did not start")


def bench_server(model_path: str, clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    proc, port = start_server(model_path)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0]
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]
    step = np.random.default_rng(3).standard_normal(FEATURES).round(4).tolist()

    def client(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            sid = c.post("/streams").json()["stream_id"]
            c.post(f"/streams/{sid}/step", json={"inputs": step})  # warm
            start.wait()
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                r = c.post(f"/streams/{sid}/step", json={"inputs": step})
                latencies[k].append(time.perf_counter() - began)
                if r.status_code != 200:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        stop_at[0] = time.perf_counter() + seconds
        began = time.perf_counter()
        start.wait()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait(30)
    every = sorted(x for lat in latencies for x in lat)
    q = statistics.quantiles(every, n=100) if len(every) > 1 else every * 99
    return {"clients": clients, "requests": len(every), "errors": errors[0],
            "requests_per_s": len(every) / elapsed, "p50_ms": 1e3 * statistics.median(every),
            "p99_ms": 1e3 * q[98]}


# ----------------------------------------------------------------------------- main
def run(quick: bool, progress: Callable[[str], None] = lambda _: None,
        server_seconds: Optional[float] = None) -> dict[str, Any]:
    """Every measurement: ``{"rows": {row: {implementation: median seconds}}, "server": ...}``
    (rows "step", "window", "batch256"; an implementation that is not installed is absent and
    named in "unavailable"). ``server_seconds`` 0 skips the server."""
    budget = Budget(seconds=0.3 if quick else 1.0, settle_seconds=0.3, rounds=1)
    import fastrnn

    ort, why_ort = optional_import("onnxruntime")
    onnx, why_onnx = optional_import("onnx")
    torch, why_torch = optional_import("torch")
    model = build_model()
    onnx_path = None
    tmp = tempfile.mkdtemp(prefix="bench-serving-")
    if ort is not None and onnx is not None:
        onnx_path = os.path.join(tmp, "forecaster.onnx")
        model.export(onnx_path)
    results: dict[str, Any] = {
        "model": f"{FEATURES} features -> LSTM({UNITS}, seq) -> LSTM({UNITS}) -> Dense(1)",
        "kernel_set": fastrnn._core.kernel_set(), "threads": fastrnn.get_num_threads(),
        "unavailable": {k: v for k, v in (("onnxruntime", why_ort or why_onnx),
                                          ("torch", why_torch)) if v},
        "onnx_max_abs_diff": agreement(model, ort, onnx_path), "rows": {}}
    torch_threads = torch.get_num_threads() if torch is not None else 0
    for row, impls in calls(model, ort, torch, onnx_path).items():
        results["rows"][row] = {}
        for name, fn in impls.items():
            progress(f"serving: {row}, {name}")
            if name == "torch":  # one thread at batch 1, as onnxruntime (less latency)
                torch.set_num_threads(torch_threads if row == "batch256" else 1)
            results["rows"][row][name] = measure(fn, budget, warmup=3).median
    if torch is not None:
        torch.set_num_threads(torch_threads)
    seconds = (3.0 if quick else 8.0) if server_seconds is None else server_seconds
    if seconds > 0:
        progress("serving: fastrnn serve, 16 clients")
        try:
            model_path = os.path.join(tmp, "forecaster.zip")
            model.save(model_path)
            results["server"] = bench_server(model_path, 16, seconds)
        except ImportError as e:
            results["server"] = {"unavailable": str(e)}
    return results


def targets(results: dict[str, Any], add: Callable[[str, Optional[float], float], None]
            ) -> None:
    """Batch 1 (a step, a window): >= 2x onnxruntime on the exported graph and >= 10x
    PyTorch; batch 256 predict: at least onnxruntime's throughput."""
    names = {"step": "streaming step B1", "window": f"{WINDOW}-step window B1",
             "batch256": f"predict B{BATCH}"}
    for row, impls in results.get("rows", {}).items():
        mine = impls.get("fastrnn")
        goals = [("onnxruntime", 1.0 if row == "batch256" else 2.0)]
        if row != "batch256":
            goals.append(("torch", 10.0))
        for other, goal in goals:
            theirs = impls.get(other)
            ratio = None if mine is None or theirs is None else theirs / mine
            add(f"serving: {names[row]} vs {'PyTorch' if other == 'torch' else other} "
                f">= {goal:g}x", ratio, goal)


def main(argv: Optional[list] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick, lambda what: print(what, flush=True))
    print("\n".join(markdown(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def markdown(results: dict[str, Any]) -> list[str]:
    """The section's table and the server's line."""
    names = {"step": "streaming step, batch 1", "window": f"{WINDOW}-step window, batch 1",
             "batch256": f"predict, batch {BATCH} ({WINDOW} steps)"}
    lines = ["## Serving: a 2-layer LSTM(64) forecaster at batch 1 and 256", "",
             f"Model: {results['model']}; kernel set {results['kernel_set']}, "
             f"{results['threads']} fastrnn threads; onnxruntime vs fastrnn max |diff| "
             f"{results['onnx_max_abs_diff']}", "",
             "| case | fastrnn | onnxruntime | PyTorch | ort / fastrnn | torch / fastrnn |",
             "|---|---|---|---|---|---|"]
    for row, impls in results["rows"].items():
        f = impls["fastrnn"]
        cells, ratios = [], []
        for name in ("fastrnn", "onnxruntime", "torch"):
            v = impls.get(name)
            if v is None:
                cells.append("-")
            elif row == "batch256":
                cells.append(f"{BATCH / v:,.0f} windows/s")
            else:
                cells.append(f"{v * 1e6:.1f} us")
            if name != "fastrnn":
                ratios.append("-" if v is None else f"{v / f:.2f}x")
        lines.append(f"| {names[row]} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    s = results.get("server", {})
    if "requests_per_s" in s:
        lines += ["", f"Server (uvicorn, 127.0.0.1, {s['clients']} clients, single-step "
                  f"requests): {s['requests_per_s']:.0f} requests/s, p50 {s['p50_ms']:.2f} ms, "
                  f"p99 {s['p99_ms']:.2f} ms ({s['requests']} requests, {s['errors']} errors)"]
    lines += ["", "onnxruntime and PyTorch: one thread at batch 1 (threads only add latency "
              "there), their default threads at batch 256; fastrnn its default threads.", ""]
    return lines


if __name__ == "__main__":
    main()
