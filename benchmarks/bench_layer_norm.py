"""Layer-normalized recurrent cells: their cost against the plain cells'.

1. Training: Hands-On ML's deep RNN (X(20, return_sequences) -> X(20) -> Dense(1), Adam,
   batch 32, series of 50 steps) for X in SimpleRNN, LSTM, GRU, with and without
   ``layer_norm=True``: seconds per epoch (training only), the two variants' epochs
   interleaved, median over the rounds.
2. Kernels: one layer's forward + backward through ``fastrnn.ops`` (``*_forward``/
   ``*_backward`` against ``layer_norm_*_forward``/``layer_norm_*_backward``), interleaved
   calls, median.

The goal is a ratio (layer_norm / plain) of at most 1.5. Timings on a shared machine are
noisy: read the medians, and rerun when the rounds disagree.

    python benchmarks/bench_layer_norm.py [--series 7000] [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastrnn
from fastrnn import layers, ops

CELLS = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def deep_rnn(cell: str, layer_norm: bool):
    fastrnn.set_seed(0)
    rnn = getattr(layers, cell)
    model = fastrnn.models.Sequential([
        rnn(20, return_sequences=True, input_shape=(None, 1), layer_norm=layer_norm),
        rnn(20, layer_norm=layer_norm),
        layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mse")
    return model


def training(series: int, rounds: int) -> None:
    rng = np.random.default_rng(42)
    t = np.linspace(0, 1, 51)
    freq, phase = rng.uniform(8, 30, (series, 1)), rng.uniform(0, 6.28, (series, 1))
    waves = (0.5 * np.sin(freq * t + phase) + 0.05 * rng.standard_normal((series, 51)))
    x, y = waves[:, :50, None].astype(np.float32), waves[:, 50:].astype(np.float32)
    print(f"deep RNN, {series} series x 50 steps, batch 32, Adam; s/epoch, median of {rounds}")
    print("| cell | plain s/epoch | layer_norm s/epoch | ratio |")
    print("|---|---|---|---|")
    for cell in CELLS:
        models = {ln: deep_rnn(cell, ln) for ln in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        for ln in (False, True):  # warm-up epoch (buffers, thread pool), untimed
            models[ln].fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
        for r in range(rounds):
            for ln in ((False, True) if r % 2 == 0 else (True, False)):
                start = time.perf_counter()
                models[ln].fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
                times[ln].append(time.perf_counter() - start)
        plain, normed = np.median(times[False]), np.median(times[True])
        print(f"| {cell} | {plain:.4f} | {normed:.4f} | {normed / plain:.2f}x |")


def _fwd_bwd_ms(cell: str, B: int, T: int, I: int, H: int, reps: int) -> tuple[float, float]:
    """Median ms of one plain and one layer-normalized forward + backward, calls interleaved."""
    rng = np.random.default_rng(0)
    G = GATES[cell] * H

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    x, K, U = w(B, T, I), w(I, G), w(H, G)
    b = w(2, G) if cell == "gru" else w(G)
    gamma, beta = 1 + w(G), w(G)
    d_out = w(B, T, H)
    states = (None, None) if cell == "lstm" else (None,)
    plain_f, plain_b = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    ln_f = getattr(ops, f"layer_norm_{cell}_forward")
    ln_b = getattr(ops, f"layer_norm_{cell}_backward")

    def plain() -> None:
        plain_b(plain_f(x, *states, K, U, b)[-1], d_out)

    def normed() -> None:
        ln_b(ln_f(x, *states, K, U, b, gamma, beta)[-1], d_out)

    times: dict[str, list[float]] = {"plain": [], "ln": []}
    plain(), normed()  # warm-up: buffers, the thread pool
    for _ in range(reps):
        for key, f in (("plain", plain), ("ln", normed)):
            start = time.perf_counter()
            f()
            times[key].append(time.perf_counter() - start)
    return float(np.median(times["plain"])) * 1e3, float(np.median(times["ln"])) * 1e3


def kernels(reps: int) -> None:
    print(f"\none layer, forward + backward (ops), float32; ms, median of {reps}")
    print("| cell | B x T x I x H | plain ms | layer_norm ms | ratio |")
    print("|---|---|---|---|---|")
    for name, cell in CELLS.items():
        for B, T, I, H in ((32, 50, 1, 20), (32, 50, 20, 20), (64, 100, 32, 128)):
            p, q = _fwd_bwd_ms(cell, B, T, I, H, reps)
            print(f"| {name} | {B}x{T}x{I}x{H} | {p:.3f} | {q:.3f} | {q / p:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=7000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        fastrnn.set_num_threads(args.threads)
    print(f"fastrnn kernel set {fastrnn._core.kernel_set()}, {fastrnn.get_num_threads()} threads")
    kernels(args.reps)
    print()
    training(args.series, args.rounds)


if __name__ == "__main__":
    main()
