"""Deep Learning with Python (2nd ed.), chapter 10, "Deep learning for timeseries", on fastrnn.

The chapter's code in its functional style with the import changed (``import fastrnn as
keras``): the Jena CSV parsed line by line, normalised on the training half,
``timeseries_dataset_from_array`` with ``sampling_rate=6``, ``sequence_length=120`` and a
24-hour ``delay``, the common-sense baseline, then the chapter's models, each trained with
``ModelCheckpoint(save_best_only=True)``, reloaded and scored by test MAE:

* the densely connected model (Flatten -> Dense(16, relu) -> Dense(1)),
* the 1D convnet (when ``fastrnn.layers.Conv1D`` exists),
* LSTM(16),
* LSTM(32, recurrent_dropout=0.25) -> Dropout(0.5),
* GRU(32, recurrent_dropout=0.5, return_sequences=True) -> GRU(32, recurrent_dropout=0.5)
  -> Dropout(0.5),
* Bidirectional(LSTM(16)).

    python examples/deep_learning_with_python_ch10.py --path jena_climate_2009_2016.csv
    python examples/deep_learning_with_python_ch10.py            # a generated file, same columns
    python examples/deep_learning_with_python_ch10.py --keras    # TF-Keras on the same arrays too
    python examples/deep_learning_with_python_ch10.py --rows 20000 --epochs 2   # a quick look

The real file is ``jena_climate_2009_2016.csv`` from the book's ``jena_climate_2009_2016.csv.zip``
(Keras's datasets bucket; unzip it). Without ``--path``, a file with the same 15 columns is
generated (daily and yearly temperature cycles, weather that drifts, correlated columns), so
every step runs; its MAEs are not the book's. ``--epochs`` overrides the book's epoch counts
(10, or 50 for the dropout models).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, Optional

import numpy as np

import fastrnn

COLUMNS = ['"Date Time"', '"p (mbar)"', '"T (degC)"', '"Tpot (K)"', '"Tdew (degC)"',
           '"rh (%)"', '"VPmax (mbar)"', '"VPact (mbar)"', '"VPdef (mbar)"', '"sh (g/kg)"',
           '"H2OC (mmol/mol)"', '"rho (g/m**3)"', '"wv (m/s)"', '"max. wv (m/s)"',
           '"wd (deg)"']


def write_synthetic_jena(path: str, rows: int, seed: int = 0) -> None:
    """A CSV shaped like the Jena file: 10-minute steps, 14 numeric columns."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    day = 2 * np.pi * t / 144
    year = 2 * np.pi * t / (144 * 365.25)
    weather = np.cumsum(rng.normal(0, 0.05, rows))
    weather -= np.convolve(weather, np.ones(1441) / 1441, mode="same")  # drifts, then returns
    temp = 9 - 9 * np.cos(year) - 4 * np.cos(day) + 3 * weather + rng.normal(0, 0.2, rows)
    pressure = 990 + 8 * np.sin(year / 3) - 2 * weather + rng.normal(0, 0.5, rows)
    rh = np.clip(75 + 12 * np.cos(day) - 4 * weather + rng.normal(0, 3, rows), 10, 100)
    vpmax = 6.1 * np.exp(17.27 * temp / (temp + 237.3))
    vpact = vpmax * rh / 100
    wind = np.abs(2 + weather + rng.normal(0, 1, rows))
    cols = [pressure, temp, temp + 273.15 + (1000 - pressure) * 0.08, temp - (100 - rh) / 5,
            rh, vpmax, vpact, vpmax - vpact, 622 * vpact / pressure / 1.6,
            10 * vpact / pressure * 100, 1.2e5 / (temp + 273.15) / 0.287 / 100 * pressure / 1000,
            wind, wind * 1.6, (180 + 90 * np.sin(day + weather)) % 360]
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for i in range(rows):
            minute = i * 10
            stamp = (f"{1 + (minute // 1440) % 28:02d}.{1 + (minute // 40320) % 12:02d}."
                     f"{2009 + minute // 483840} {(minute // 60) % 24:02d}:{minute % 60:02d}:00")
            f.write(stamp + "," + ",".join(f"{c[i]:.2f}" for c in cols) + "\n")


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The book's parsing, as written."""
    with open(path) as f:
        data = f.read()
    lines = data.split("\n")
    header = lines[0].split(",")
    lines = [line for line in lines[1:] if line]  # (the book's file has no trailing newline)
    temperature = np.zeros((len(lines),))
    raw_data = np.zeros((len(lines), len(header) - 1))
    for i, line in enumerate(lines):
        values = [float(x) for x in line.split(",")[1:]]
        temperature[i] = values[1]
        raw_data[i, :] = values[:]
    return temperature, raw_data


def datasets(keras: Any, temperature: np.ndarray, raw_data: np.ndarray) -> dict:
    """Normalisation on the first half and the three window datasets, as in the book."""
    num_train_samples = int(0.5 * len(raw_data))
    num_val_samples = int(0.25 * len(raw_data))
    mean = raw_data[:num_train_samples].mean(axis=0)
    raw_data = raw_data - mean
    std = raw_data[:num_train_samples].std(axis=0)
    raw_data /= std

    sampling_rate = 6
    sequence_length = 120
    delay = sampling_rate * (sequence_length + 24 - 1)
    batch_size = 256

    def make(start: int, end: Optional[int]) -> Any:
        return keras.utils.timeseries_dataset_from_array(
            raw_data[:-delay], targets=temperature[delay:], sampling_rate=sampling_rate,
            sequence_length=sequence_length, shuffle=True, batch_size=batch_size,
            start_index=start, end_index=end)

    return {
        "train": make(0, num_train_samples),
        "val": make(num_train_samples, num_train_samples + num_val_samples),
        "test": make(num_train_samples + num_val_samples, None),
        "mean": mean, "std": std, "shape": (sequence_length, raw_data.shape[-1]),
    }


def evaluate_naive_method(dataset: Any, mean: np.ndarray, std: np.ndarray) -> float:
    total_abs_err = 0.0
    samples_seen = 0
    for samples, targets in dataset:
        preds = np.asarray(samples)[:, -1, 1] * std[1] + mean[1]
        total_abs_err += np.sum(np.abs(preds - np.asarray(targets)))
        samples_seen += samples.shape[0]
    return total_abs_err / samples_seen


def build(keras: Any, name: str, shape: tuple) -> Any:
    """The chapter's models, written as the book writes them."""
    layers = keras.layers
    inputs = keras.Input(shape=shape)
    if name == "dense":
        x = layers.Flatten()(inputs)
        x = layers.Dense(16, activation="relu")(x)
        outputs = layers.Dense(1)(x)
    elif name == "conv1d":
        x = layers.Conv1D(8, 24, activation="relu")(inputs)
        x = layers.MaxPooling1D(2)(x)
        x = layers.Conv1D(8, 12, activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
        x = layers.Conv1D(8, 6, activation="relu")(x)
        x = layers.GlobalAveragePooling1D()(x)
        outputs = layers.Dense(1)(x)
    elif name == "lstm":
        x = layers.LSTM(16)(inputs)
        outputs = layers.Dense(1)(x)
    elif name == "lstm_dropout":
        x = layers.LSTM(32, recurrent_dropout=0.25)(inputs)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(1)(x)
    elif name == "stacked_gru_dropout":
        x = layers.GRU(32, recurrent_dropout=0.5, return_sequences=True)(inputs)
        x = layers.GRU(32, recurrent_dropout=0.5)(x)
        x = layers.Dropout(0.5)(x)
        outputs = layers.Dense(1)(x)
    elif name == "bidirectional_lstm":
        x = layers.Bidirectional(layers.LSTM(16))(inputs)
        outputs = layers.Dense(1)(x)
    else:
        raise ValueError(name)
    return keras.Model(inputs, outputs)


BOOK_EPOCHS = {"dense": 10, "conv1d": 10, "lstm": 10, "lstm_dropout": 50,
               "stacked_gru_dropout": 50, "bidirectional_lstm": 10}
BOOK_TEST_MAE = {"dense": "2.62-2.71", "conv1d": "3.10", "lstm": "2.55-2.59",
                 "lstm_dropout": "2.45", "stacked_gru_dropout": "2.39", "bidirectional_lstm":
                 "(similar to LSTM)"}


def train(keras: Any, name: str, data: dict, epochs: int, workdir: str) -> tuple[float, float]:
    """Trains with the book's checkpointing; returns (test MAE of the best epoch, s/epoch)."""
    model = build(keras, name, data["shape"])
    path = os.path.join(workdir, f"jena_{name}.keras")
    callbacks = [keras.callbacks.ModelCheckpoint(path, save_best_only=True)]
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    start = time.perf_counter()
    model.fit(data["train"], epochs=epochs, validation_data=data["val"], callbacks=callbacks,
              verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    model = keras.models.load_model(path)
    return float(model.evaluate(data["test"], verbose=0)[1]), seconds


def main(argv: Optional[list] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", help="jena_climate_2009_2016.csv (default: a generated file)")
    parser.add_argument("--rows", type=int, default=100_000,
                        help="rows of the generated file (the real one has 420,451)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every model (default: the book's 10 or 50)")
    parser.add_argument("--models", default=",".join(BOOK_EPOCHS),
                        help="comma-separated subset of " + ", ".join(BOOK_EPOCHS))
    parser.add_argument("--keras", action="store_true", help="also train TF-Keras on the same "
                        "arrays (if installed)")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(BOOK_EPOCHS))
    if unknown:
        parser.error(f"unknown models {unknown}")
    if "conv1d" in names and not hasattr(fastrnn.layers, "Conv1D"):
        names.remove("conv1d")
    libs = {"fastrnn": fastrnn}
    if args.keras:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras as tf_keras
        libs["TF-Keras"] = tf_keras

    with tempfile.TemporaryDirectory() as workdir:
        path = args.path
        if path is None:
            path = os.path.join(workdir, "jena_generated.csv")
            write_synthetic_jena(path, args.rows)
        temperature, raw_data = load(path)
        print(f"{path if args.path else 'generated file'}: {len(raw_data)} rows, "
              f"{raw_data.shape[1]} features")
        results: dict = {}
        for label, keras in libs.items():
            keras.utils.set_random_seed(42)
            data = datasets(keras, temperature, raw_data)
            if label == "fastrnn":
                mae = evaluate_naive_method(data["test"], data["mean"], data["std"])
                results["common-sense baseline"] = {"fastrnn": (mae, 0.0)}
            for name in names:
                epochs = args.epochs or BOOK_EPOCHS[name]
                results.setdefault(name, {})[label] = train(keras, name, data, epochs, workdir)
    print()
    print("| model | epochs | fastrnn test MAE | fastrnn s/epoch |"
          + ("" if not args.keras else " TF-Keras test MAE | TF-Keras s/epoch |")
          + " book (real data) |")
    print("|---|---|---|---|" + ("" if not args.keras else "---|---|") + "---|")
    for name, by in results.items():
        mae, sec = by["fastrnn"]
        row = (f"| {name} | {args.epochs or BOOK_EPOCHS.get(name, '')} | {mae:.2f} | "
               f"{sec:.2f} |" if sec else f"| {name} | | {mae:.2f} | |")
        if args.keras:
            k = by.get("TF-Keras")
            row += f" {k[0]:.2f} | {k[1]:.2f} |" if k else " | |"
        row += f" {BOOK_TEST_MAE.get(name, '2.62')} |"
        print(row)
    return results


if __name__ == "__main__":
    main()
