"""Data-parallel fit over MPI: epoch time on 1 and 2 ranks (1 thread each), the share of the
gradient reduction, the reduction's cost per MB, and a cost model for 8-64 nodes built from them.

    python benchmarks/bench_distributed.py            # about a minute
    python benchmarks/bench_distributed.py --quick    # smaller data, fewer repeats
    python benchmarks/bench_distributed.py --out bench_out/distributed.json

Needs ``pip install "fastrnn[mpi]"`` (mpi4py and mpiexec). The script launches itself under
``mpiexec -n 1`` and ``mpiexec -n 2`` (``--worker``); each rank runs fastrnn with one thread.
Both runs train the same global batch (the 2-rank run gives each rank half of it), so they do
the same arithmetic and the speedup is strong scaling. The reduction time is measured inside
``fit`` and includes waiting for the slower rank.

The cost model (printed last) is a model, not a measurement: epoch(P) = steps(P) * (t_step +
t_reduce(P)), with steps(P) = N / (b * P) at b rows per rank, t_step the measured 1-rank step
time at b rows, and a ring allreduce t_reduce(P) = 2 (P - 1) a + 2 (P - 1) / P * S / w for a
gradient of S bytes, latency a and bandwidth w: the measured ones here (shared memory, one
machine) and two assumed networks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# name, samples (full / quick), time steps, features, recurrent units per layer, global batch
WORKLOADS = [
    ("jena_lstm16", (16384, 4096), 120, 14, [16], 256),
    ("lstm256x2", (2048, 512), 50, 32, [256, 256], 64),
]
REDUCE_MB = [1 / 256, 0.25, 1.0, 4.0, 16.0]
# Assumed inter-node networks for the cost model: (name, latency s, bandwidth bytes/s).
NETWORKS = [("10 GbE (assumed: 30 us, 1.1 GB/s)", 30e-6, 1.1e9),
            ("100 Gb/s IB (assumed: 2 us, 11 GB/s)", 2e-6, 11e9)]
NODES = [8, 16, 32, 64]


# ----------------------------------------------------------------------------- under mpiexec
def _worker(quick: bool, repeats: int) -> None:
    import fastrnn
    from fastrnn import distributed

    distributed.init()
    fastrnn.set_num_threads(1)
    state = distributed._state
    comm = state.comm
    size, rank = state.size, state.rank
    spent = [0.0]
    if size > 1:  # time the reduction inside fit
        plain_sum = state._sum

        def timed_sum(buf: np.ndarray, *what: str) -> None:
            t0 = time.perf_counter()
            plain_sum(buf, *what)
            spent[0] += time.perf_counter() - t0

        state._sum = timed_sum
    out: dict[str, Any] = {"ranks": size, "workloads": [], "reduce": []}
    for name, samples, steps_t, features, units, global_batch in WORKLOADS:
        n = samples[1] if quick else samples[0]
        g = np.random.default_rng(0)
        x = g.normal(size=(n, steps_t, features)).astype(np.float32)
        y = g.normal(size=(n, 1)).astype(np.float32)
        fastrnn.set_seed(0)
        layers = [fastrnn.layers.LSTM(u, return_sequences=i < len(units) - 1,
                                      input_shape=[None, features] if i == 0 else None)
                  for i, u in enumerate(units)]
        model = fastrnn.Sequential([*layers, fastrnn.layers.Dense(1)])
        model.compile(optimizer="rmsprop", loss="mse")
        batch = global_batch // size
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up (and build)
        epochs, reduces = [], []
        for _ in range(repeats):
            comm.Barrier()
            spent[0] = 0.0
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            epochs.append(time.perf_counter() - t0)
            reduces.append(spent[0])
        # every rank's slowest epoch is the job's
        epoch = comm.allreduce(statistics.median(epochs), op=state.MPI.MAX)
        params = int(model._param_buffer.size)
        out["workloads"].append({
            "name": name, "samples": n, "time_steps": steps_t, "features": features,
            "units": units, "params": params, "gradient_mb": params * 4 / 2**20,
            "global_batch": global_batch, "batch_per_rank": batch,
            "steps": -(-n // global_batch), "epoch_s": epoch,
            "reduce_s": statistics.median(reduces)})
    if size > 1:
        for mb in REDUCE_MB:
            buf = np.ones(int(mb * 2**20 / 4), dtype=np.float32)
            for _ in range(3):
                state._sum(buf)
            times = []
            for _ in range(10 if quick else 30):
                comm.Barrier()
                t0 = time.perf_counter()
                plain_sum(buf)
                times.append(time.perf_counter() - t0)
            out["reduce"].append({"mb": mb, "seconds": statistics.median(times),
                                  "fastest": min(times)})
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- driver
def _mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        sys.exit('bench_distributed: no mpiexec; pip install "fastrnn[mpi]"')
    return found


def _launch(ranks: int, quick: bool, repeats: int) -> dict:
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker",
           "--repeats", str(repeats)] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"bench_distributed: the {ranks}-rank run failed:\n{done.stdout}{done.stderr}")


def _fit_latency_bandwidth(rows: list) -> tuple[float, float]:
    """Least squares t = a + S / w over the fastest of each size's reductions (S in bytes;
    the fastest, because on a busy machine the median also measures the scheduler)."""
    s = np.array([r["mb"] * 2**20 for r in rows])
    t = np.array([r["fastest"] for r in rows])
    slope, intercept = np.polyfit(s, t, 1)
    return max(float(intercept), 0.0), 1.0 / float(slope)


def _ring(p: int, size_bytes: float, latency: float, bandwidth: float) -> float:
    return 2 * (p - 1) * latency + 2 * (p - 1) / p * size_bytes / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per run")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    if args.worker:
        _worker(args.quick, repeats)
        return
    from bench_common import load_average

    load = load_average()
    one, two = _launch(1, args.quick, repeats), _launch(2, args.quick, repeats)
    print(f"# Data-parallel fit, 1 thread per rank (load average {load})\n")
    print("| workload | params | gradient MB | global batch | ranks | epoch s | speedup | "
          "reduction s | reduction share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a, b in zip(one["workloads"], two["workloads"]):
        for r, row in ((1, a), (2, b)):
            share = row["reduce_s"] / row["epoch_s"] if r > 1 else 0.0
            print(f"| {row['name']} | {row['params']:,} | {row['gradient_mb']:.3f} | "
                  f"{row['global_batch']} | {r} | {row['epoch_s']:.3f} | "
                  f"{a['epoch_s'] / row['epoch_s']:.2f} | "
                  f"{row['reduce_s'] if r > 1 else 0:.4f} | {100 * share:.1f}% |")
    latency, bandwidth = _fit_latency_bandwidth(two["reduce"])
    print("\n| reduction of (2 ranks, shared memory) | " +
          " | ".join(f"{r['mb']:.3g} MB" for r in two["reduce"]) + " |")
    print("|---|" + "---|" * len(two["reduce"]))
    print("| median | " + " | ".join(f"{r['seconds'] * 1e3:.3f} ms" for r in two["reduce"])
          + " |")
    print("| fastest | " + " | ".join(f"{r['fastest'] * 1e3:.3f} ms" for r in two["reduce"])
          + " |")
    print(f"\nfit: latency a = {latency * 1e6:.1f} us, bandwidth w = {bandwidth / 1e9:.2f} GB/s "
          "(shared memory: an upper bound for what a network gives)")
    networks = [("measured here (shared memory)", latency, bandwidth), *NETWORKS]
    print("\n## Cost model (a model, not a measurement): epoch speedup over 1 rank and the "
          "reduction's share, b rows per rank")
    header = "| workload | network | " + " | ".join(f"{p} nodes" for p in NODES) + " |"
    print(header)
    print("|---|---|" + "---|" * len(NODES))
    model_rows = []
    for a, b in zip(one["workloads"], two["workloads"]):
        # t_step at the per-rank batch of the 2-rank run, from the 1-rank run's epoch time
        # per row (compute is linear in rows at these sizes)
        t_step = a["epoch_s"] / a["samples"] * b["batch_per_rank"]
        size_bytes = a["params"] * 4
        for net, lat, bw in networks:
            cells = []
            for p in NODES:
                red = _ring(p, size_bytes, lat, bw)
                steps = a["samples"] / (b["batch_per_rank"] * p)
                epoch = steps * (t_step + red)
                speedup = a["epoch_s"] / epoch
                cells.append(f"{speedup:.1f}x ({100 * red / (t_step + red):.0f}%)")
                model_rows.append({"workload": a["name"], "network": net, "nodes": p,
                                   "speedup": speedup, "reduce_share": red / (t_step + red)})
            print(f"| {a['name']} (b={b['batch_per_rank']}) | {net} | " + " | ".join(cells)
                  + " |")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"load_average": load, "one_rank": one, "two_ranks": two,
                       "latency_s": latency, "bandwidth_bytes_per_s": bandwidth,
                       "cost_model": model_rows}, f, indent=2)


if __name__ == "__main__":
    main()
