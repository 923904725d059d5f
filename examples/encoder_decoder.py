"""Multi-step forecasting of Hands-On ML's series: encoder-decoders against the book's ways.

The data is the book's (``np.random.seed(42)``; 10,000 series of 60 steps; inputs are the first
50 steps, targets the next 10; 7000/2000 train/validation). Five ways to forecast the 10 steps,
each scored by the validation MSE over the 10 steps (``fastrnn.timeseries.forecast``):

* recursive: the deep SimpleRNN forecasts one step; each forecast is fed back (the book's loop);
* direct: the deep SimpleRNN with Dense(10) forecasts all 10 at once (seq-to-vector);
* seq2seq: the book's sequence-to-sequence model (10 forecasts at every step, the last used);
* encoder-decoder: an LSTM encoder whose final ``[h, c]`` initialise an LSTM decoder that runs
  10 steps over the encoder's output repeated (``RepeatVector``), then a Dense per step;
* RepeatVector: the encoder's output repeated 10 times into a decoder that starts from zeros.

    python examples/encoder_decoder.py                # 20 epochs each
    python examples/encoder_decoder.py --epochs 5 --series 3000
    python examples/encoder_decoder.py --keras        # the encoder-decoders in TF-Keras too
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Optional

import numpy as np

import fastrnn
from fastrnn.timeseries import forecast, generate_time_series, make_seq2seq_targets

N_STEPS, HORIZON = 50, 10


def build(keras: Any, name: str) -> tuple[Any, str]:
    """(model, forecast strategy) for each way; `keras` is fastrnn or TF-Keras."""
    layers = keras.layers
    inputs = keras.Input(shape=(None, 1))
    if name == "recursive":
        x = layers.SimpleRNN(20, return_sequences=True)(inputs)
        x = layers.SimpleRNN(20)(x)
        return keras.Model(inputs, layers.Dense(1)(x)), "recursive"
    if name == "direct":
        x = layers.SimpleRNN(20, return_sequences=True)(inputs)
        x = layers.SimpleRNN(20)(x)
        return keras.Model(inputs, layers.Dense(HORIZON)(x)), "direct"
    if name == "seq2seq":
        x = layers.SimpleRNN(20, return_sequences=True)(inputs)
        x = layers.SimpleRNN(20, return_sequences=True)(x)
        return keras.Model(inputs, layers.TimeDistributed(layers.Dense(HORIZON))(x)), "seq2seq"
    if name == "encoder_decoder":
        encoded, state_h, state_c = layers.LSTM(20, return_state=True)(inputs)
        repeated = layers.RepeatVector(HORIZON)(encoded)
        decoded = layers.LSTM(20, return_sequences=True)(repeated,
                                                         initial_state=[state_h, state_c])
        return keras.Model(inputs, layers.TimeDistributed(layers.Dense(1))(decoded)), "direct"
    if name == "repeat_vector":
        encoded = layers.LSTM(20)(inputs)
        decoded = layers.LSTM(20, return_sequences=True)(layers.RepeatVector(HORIZON)(encoded))
        return keras.Model(inputs, layers.TimeDistributed(layers.Dense(1))(decoded)), "direct"
    raise ValueError(name)


def targets_for(name: str, series: np.ndarray) -> np.ndarray:
    if name == "recursive":
        return series[:, N_STEPS, 0]
    if name == "direct":
        return series[:, N_STEPS:, 0]
    if name == "seq2seq":
        return make_seq2seq_targets(series, N_STEPS, HORIZON)
    return series[:, N_STEPS:, :]  # (B, 10, 1) for the decoders


NAMES = ["recursive", "direct", "seq2seq", "encoder_decoder", "repeat_vector"]


def run(keras: Any, name: str, train: np.ndarray, valid: np.ndarray, epochs: int,
        seed: int) -> tuple[float, float]:
    """(validation MSE over the 10 forecast steps, seconds per epoch)."""
    keras.utils.set_random_seed(seed)
    model, strategy = build(keras, name)
    model.compile(loss="mse", optimizer="adam")
    start = time.perf_counter()
    model.fit(train[:, :N_STEPS], targets_for(name, train), epochs=epochs, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    pred = forecast(model, valid[:, :N_STEPS], HORIZON, strategy=strategy)
    return float(np.mean((pred - valid[:, N_STEPS:, 0]) ** 2)), seconds


def main(argv: Optional[list] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=1, help="seeds 42, 43, ... (median)")
    parser.add_argument("--models", default=",".join(NAMES))
    parser.add_argument("--keras", action="store_true",
                        help="also train the encoder-decoders with TF-Keras (if installed)")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    if sorted(set(names) - set(NAMES)):
        parser.error(f"unknown models {sorted(set(names) - set(NAMES))}")

    np.random.seed(42)  # noqa: NPY002 (the book's data)
    series = generate_time_series(args.series, N_STEPS + HORIZON)
    n_train = int(0.7 * args.series)
    n_valid = int(0.2 * args.series)
    train, valid = series[:n_train], series[n_train:n_train + n_valid]

    libs = {"fastrnn": fastrnn}
    if args.keras:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras as tf_keras
        libs["TF-Keras"] = tf_keras
    results: dict = {}
    for name in names:
        for label, keras in libs.items():
            if label != "fastrnn" and name not in ("encoder_decoder", "repeat_vector"):
                continue
            runs = [run(keras, name, train, valid, args.epochs, 42 + s)
                    for s in range(args.seeds)]
            results.setdefault(name, {})[label] = (float(np.median([r[0] for r in runs])),
                                                   float(np.median([r[1] for r in runs])))
    header = "| way | fastrnn val MSE (10 steps) | fastrnn s/epoch |"
    if args.keras:
        header += " TF-Keras val MSE | TF-Keras s/epoch |"
    print(header)
    print("|---|---|---|" + ("---|---|" if args.keras else ""))
    for name, by in results.items():
        mse, sec = by["fastrnn"]
        row = f"| {name} | {mse:.4f} | {sec:.3f} |"
        if args.keras:
            k = by.get("TF-Keras")
            row += f" {k[0]:.4f} | {k[1]:.3f} |" if k else " | |"
        print(row)
    return results


if __name__ == "__main__":
    main()
