"""Optimizer cost: the book's deep RNN epoch with each optimizer, and one update of its flat
parameter buffer.

Hands-On ML's deep RNN (SimpleRNN(20, return_sequences) -> SimpleRNN(20) -> Dense(1)), batch
32, 7000 series of 50 steps: each optimizer's fastest epoch of ``--repeats`` interleaved rounds
after a warm-up epoch, with the ratio to Adam (fused C++ update) in the same run, and one
update's median time. Adam, SGD and
RMSprop update in C++; the others are NumPy ufuncs over the one flat buffer (Lamb and
Adafactor, per weight array).

    python benchmarks/bench_optimizers.py [--repeats 3] [--series 7000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastrnn
from fastrnn import layers, optimizers

OPTIMIZERS = {
    "Adam": lambda: optimizers.Adam(),
    "SGD(momentum)": lambda: optimizers.SGD(0.01, momentum=0.9),
    "RMSprop": lambda: optimizers.RMSprop(),
    "Nadam": lambda: optimizers.Nadam(),
    "Adamax": lambda: optimizers.Adamax(),
    "Adagrad": lambda: optimizers.Adagrad(),
    "AdamW": lambda: optimizers.AdamW(),
    "Adadelta": lambda: optimizers.Adadelta(),
    "Ftrl": lambda: optimizers.Ftrl(),
    "Lion": lambda: optimizers.Lion(),
    "Lamb": lambda: optimizers.Lamb(),
    "Adafactor": lambda: optimizers.Adafactor(),
    "Adam(clipnorm=1)": lambda: optimizers.Adam(clipnorm=1.0),
    "Adam(global_clipnorm=1)": lambda: optimizers.Adam(global_clipnorm=1.0),
}


def _model(opt):
    fastrnn.set_seed(0)
    model = fastrnn.Sequential([
        layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
        layers.SimpleRNN(20),
        layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=opt)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--series", type=int, default=7000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.series, 50, 1)).astype(np.float32)
    y = rng.normal(size=(args.series, 1)).astype(np.float32)
    models = {name: _model(make()) for name, make in OPTIMIZERS.items()}
    for model in models.values():
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # warm-up
    # Rounds interleave the optimizers, and the minimum is kept: on a shared machine the
    # load changes from one second to the next, and it only ever adds time.
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            t0 = time.perf_counter()
            history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - t0)
            if model.stop_reason or not np.isfinite(history.history["loss"][-1]):
                raise RuntimeError(f"{name}: training stopped ({model.stop_reason})")
    rows = []
    for name, model in models.items():
        params, grads = model._optimizer_targets()
        step_times = []
        for _ in range(200):
            t0 = time.perf_counter()
            model.optimizer.apply_gradients(params, grads)
            step_times.append(time.perf_counter() - t0)
        rows.append((name, min(times[name]), statistics.median(step_times) * 1e6))
    batches = -(-args.series // 32)
    adam = rows[0][1]
    print(f"deep RNN, {args.series} series x 50 steps, batch 32 ({batches} updates an epoch); "
          f"{sum(p.size for p in _model(optimizers.Adam()).get_weights())} parameters; "
          f"epoch: the fastest of {args.repeats} interleaved rounds")
    print("| optimizer | epoch (s) | vs Adam | one update (us) | updates' share of the epoch |")
    print("|---|---|---|---|---|")
    for name, seconds, update in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / adam:.2f}x | {update:.1f} | "
              f"{update * 1e-6 * batches / seconds:.1%} |")

if __name__ == "__main__":
    main()
