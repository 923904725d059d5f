"""End-to-end training: seconds per epoch and validation MSE, the same model in three frameworks.

Models (synthetic data of the books' shapes, generated here):

- ``deep_rnn``: Hands-On ML's deep RNN, SimpleRNN(20, return_sequences) -> SimpleRNN(20) ->
  Dense(1), Adam, batch 32, series of 50 steps, predict the next value;
- ``seq2seq``: SimpleRNN(20) x2 (both return_sequences) -> TimeDistributed(Dense(10)): at every
  step, predict the next 10 values;
- ``jena_lstm``: Deep Learning with Python's LSTM(16) -> Dense(1), RMSprop, batch 256, windows of
  120 hourly steps x 14 features, predict the first feature 24 steps after the window;
- ``deep_rnn_layer_norm``: ``deep_rnn`` with ``layer_norm=True`` in both SimpleRNNs (Hands-On
  ML's LNSimpleRNNCell), fastrnn only (the other frameworks have no such layer; the ratio that
  matters is against fastrnn's plain ``deep_rnn``: ``layer_norm_over_plain``).

Frameworks: fastrnn (``Sequential``/``compile``/``fit``), the same fastrnn model written with the
functional API (``fastrnn.Input``/``fastrnn.Model``: it must train at the Sequential's speed),
a PyTorch eager loop (the same layers,
optimizer, batch size and Keras's initializers) and TF-Keras; each only when importable. Every
framework sees the same arrays, starts from the same initial weights (fastrnn's seeded Keras
initializers, copied into the others), gets the same batches in the same order (each epoch's
shuffle is done once, untimed, and handed to every framework, which then trains without
shuffling) and trains the same number of epochs; each epoch is timed on its own (training
only), the validation MSE is computed afterwards from ``predict`` in NumPy. (Rounding still
differs, so the validation MSEs differ a little.)
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from typing import Any, Callable, Optional

import numpy as np

from bench_common import optional_import, peak_rss_mib, reset_peak_rss, rss_mib

FRAMEWORKS = ("fastrnn", "fastrnn_functional", "torch", "tf_keras")
FASTRNN_ONLY = ("deep_rnn_layer_norm",)  # workloads the other frameworks skip


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model and its data: name, arrays, batch size, optimizer and epochs."""

    name: str
    description: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    batch_size: int
    optimizer: str  # "adam" or "rmsprop", Keras's defaults (learning rate 1e-3)
    epochs: int
    settle_seconds: float = 1.0  # pause before each framework trains (see _train)


# ----------------------------------------------------------------------------- synthetic data
def wave_series(n: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """`n` univariate series ``(n, steps)``: two sinusoids, random frequency and phase, noise."""
    t = np.linspace(0.0, 1.0, steps)
    freq = rng.uniform((8.0, 18.0), (14.0, 36.0), size=(n, 2))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    waves = 0.45 * np.sin(freq[:, :1] * t + phase[:, :1])
    waves += 0.25 * np.sin(freq[:, 1:] * t + phase[:, 1:])
    waves += 0.05 * rng.standard_normal((n, steps))
    return waves.astype(np.float32)


def weather_like(length: int, rng: np.random.Generator) -> np.ndarray:
    """A standardized hourly series ``(length, 14)``: daily and yearly cycles, AR(1) weather.

    Feature 0 plays the temperature; the other 13 are noisy mixes of it and of a second
    slow process, so the features correlate as the Jena climate record's do.
    """
    hours = np.arange(length, dtype=np.float64)
    weather = np.zeros((length, 2))
    shocks = rng.standard_normal((length, 2))
    for i in range(1, length):  # AR(1): slow weather systems
        weather[i] = 0.97 * weather[i - 1] + 0.25 * shocks[i]
    temperature = (
        8.0 * np.sin(2 * np.pi * hours / 8766.0)
        + 4.0 * np.sin(2 * np.pi * (hours - 6.0) / 24.0)
        + 3.0 * weather[:, 0]
    )
    mix = rng.standard_normal((3, 13))
    others = np.column_stack([temperature, weather]) @ mix + rng.standard_normal((length, 13))
    series = np.column_stack([temperature, others])
    series = (series - series.mean(axis=0)) / series.std(axis=0)
    return series.astype(np.float32)


def workloads(mode: str, epochs: Optional[int] = None) -> list[Workload]:
    """The workloads, sized for `mode` (``"full"``, ``"quick"``, ``"smoke"``)."""
    rng = np.random.default_rng(42)
    n_series, n_valid = {"full": (7000, 2000), "quick": (2000, 500), "smoke": (256, 64)}[mode]
    n_windows, n_win_valid = {"full": (20000, 2000), "quick": (4000, 1000), "smoke": (512, 256)}[
        mode
    ]
    if epochs is None:
        epochs = {"full": 3, "quick": 2, "smoke": 1}[mode]
    settle = {"full": 1.0, "quick": 0.3, "smoke": 0.0}[mode]

    series = wave_series(n_series + n_valid, 60, rng)
    x = series[:, :50, None]  # (n, 50, 1)
    y_next = series[:, 50:51]  # (n, 1)
    # seq-to-seq targets: at step t, the values t+1 .. t+10
    ahead = np.stack([series[:, k + 1 : k + 51] for k in range(10)], axis=-1)  # (n, 50, 10)

    window, delay = 120, 24
    weather = weather_like(n_windows + n_win_valid + window + delay, rng)
    views = np.lib.stride_tricks.sliding_window_view(weather, window, axis=0)  # (n, 14, 120)
    n_all = n_windows + n_win_valid
    xw = np.ascontiguousarray(views[:n_all].transpose(0, 2, 1))  # (n, 120, 14)
    yw = weather[window + delay - 1 : window + delay - 1 + n_all, :1].copy()  # (n, 1)

    def split(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(a[:n]), np.ascontiguousarray(a[n:])

    xs_t, xs_v = split(x, n_series)
    y_t, y_v = split(y_next, n_series)
    ahead_t, ahead_v = split(ahead, n_series)
    xw_t, xw_v = split(xw, n_windows)
    yw_t, yw_v = split(yw, n_windows)
    shape = f"{n_series} series x 50 steps"
    return [
        Workload(
            "deep_rnn_layer_norm",
            f"deep_rnn with SimpleRNN(20, layer_norm=True) x2, Adam, batch 32, {shape}",
            xs_t, y_t, xs_v, y_v, 32, "adam", epochs, settle,
        ),
        Workload(
            "deep_rnn",
            f"SimpleRNN(20, seq) -> SimpleRNN(20) -> Dense(1), Adam, batch 32, {shape}",
            xs_t, y_t, xs_v, y_v, 32, "adam", epochs, settle,
        ),
        Workload(
            "seq2seq",
            f"SimpleRNN(20, seq) x2 -> TimeDistributed(Dense(10)), Adam, batch 32, {shape}",
            xs_t, ahead_t, xs_v, ahead_v, 32, "adam", epochs, settle,
        ),
        Workload(
            "jena_lstm",
            f"LSTM(16) -> Dense(1), RMSprop, batch 256, {n_windows} windows of 120 x 14",
            xw_t, yw_t, xw_v, yw_v, 256, "rmsprop", epochs, settle,
        ),
    ]


# ----------------------------------------------------------------------------- fastrnn
@dataclasses.dataclass(frozen=True)
class FastrnnApi:
    """The pieces of fastrnn's Keras-style API the workloads use."""

    sequential: Any
    layers: Any
    set_seed: Optional[Callable[[int], None]]


def fastrnn_available() -> tuple[Optional[FastrnnApi], str]:
    """fastrnn's model API when it exists (``fastrnn.Sequential``, or ``fastrnn.models``'s while
    the package does not export it yet), else ``(None, why not)``."""
    fastrnn, why = optional_import("fastrnn")
    if fastrnn is None:
        return None, f"fastrnn not importable ({why})"
    layers, why_layers = optional_import("fastrnn.layers")
    models, why_models = optional_import("fastrnn.models")
    sequential = getattr(fastrnn, "Sequential", None) or getattr(models, "Sequential", None)
    if layers is None or sequential is None:
        why = why_layers or why_models or "no Sequential"
        return None, f"fastrnn.Sequential / fastrnn.layers not available ({why})"
    set_seed = getattr(fastrnn, "set_seed", None) or getattr(models, "set_seed", None)
    return FastrnnApi(sequential, layers, set_seed), ""


def _fastrnn_model(api: FastrnnApi, work: Workload, functional: bool = False) -> Any:
    layers = api.layers
    if api.set_seed is not None:
        api.set_seed(0)
    features = work.x_train.shape[2]
    ln = {"layer_norm": True} if work.name == "deep_rnn_layer_norm" else {}
    if functional:
        import fastrnn
        inputs = fastrnn.Input((None, features))
        if work.name == "jena_lstm":
            x = layers.LSTM(16)(inputs)
            outputs = layers.Dense(1)(x)
        elif work.name.startswith("deep_rnn"):
            x = layers.SimpleRNN(20, return_sequences=True, **ln)(inputs)
            x = layers.SimpleRNN(20, **ln)(x)
            outputs = layers.Dense(1)(x)
        else:
            x = layers.SimpleRNN(20, return_sequences=True)(inputs)
            x = layers.SimpleRNN(20, return_sequences=True)(x)
            outputs = layers.TimeDistributed(layers.Dense(10))(x)
        model = fastrnn.Model(inputs, outputs)
        model.compile(optimizer=work.optimizer, loss="mse")
        return model
    if work.name == "jena_lstm":
        stack = [layers.LSTM(16, input_shape=(None, features)), layers.Dense(1)]
    elif work.name.startswith("deep_rnn"):
        stack = [
            layers.SimpleRNN(20, return_sequences=True, input_shape=(None, features), **ln),
            layers.SimpleRNN(20, **ln),
            layers.Dense(1),
        ]
    else:
        stack = [
            layers.SimpleRNN(20, return_sequences=True, input_shape=(None, features)),
            layers.SimpleRNN(20, return_sequences=True),
            layers.TimeDistributed(layers.Dense(10)),
        ]
    model = api.sequential(stack)
    model.compile(optimizer=work.optimizer, loss="mse")
    model.build((None, *work.x_train.shape[1:]))
    return model


def initial_weights(api: Optional[FastrnnApi], work: Workload) -> Optional[list[np.ndarray]]:
    """The workload's initial weights, in Keras's order and layout (from fastrnn's seeded
    initializers), or None without fastrnn. Every framework starts from these, so validation
    MSE after a few epochs compares the training, not the luck of the initialization."""
    if api is None:
        return None
    return [np.array(w) for w in _fastrnn_model(api, work).get_weights()]


def _fastrnn_trainer(
    api: FastrnnApi, work: Workload, initial: Optional[list[np.ndarray]],
    functional: bool = False,
) -> tuple[Callable[[np.ndarray, np.ndarray], None], Callable]:
    model = _fastrnn_model(api, work, functional)
    if initial is not None:
        model.set_weights(initial)

    def epoch(x: np.ndarray, y: np.ndarray) -> None:
        model.fit(x, y, epochs=1, batch_size=work.batch_size, shuffle=False, verbose=0)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, batch_size=1024))

    return epoch, predict


def functional_over_sequential(api: FastrnnApi, work: Workload,
                               initial: Optional[list[np.ndarray]], pairs: int) -> float:
    """Median over `pairs` interleaved pairs of the functional model's epoch time over the
    Sequential model's (the same layers and weights): each pair runs the two back to back, in
    alternating order, so a machine whose speed drifts during the run (a shared or virtual
    one) shifts both of a pair alike, which two runs minutes apart do not."""
    sequential, _ = _fastrnn_trainer(api, work, initial)
    functional, _ = _fastrnn_trainer(api, work, initial, functional=True)
    x, y = work.x_train, work.y_train
    sequential(x, y), functional(x, y)  # warm-up
    ratios = []
    for k in range(pairs):
        order = (sequential, functional) if k % 2 == 0 else (functional, sequential)
        seconds = {}
        for epoch in order:
            start = time.perf_counter()
            epoch(x, y)
            seconds[epoch] = time.perf_counter() - start
        ratios.append(seconds[functional] / seconds[sequential])
    return float(np.median(ratios))


def fastrnn_traced_peak_mib(api: FastrnnApi, work: Workload, batches: int = 4) -> float:
    """Peak of NumPy/Python allocations (tracemalloc) while `fit` trains on a few batches.

    Data arrays exist before tracing starts, so this is what training itself allocates: tapes,
    gradients, optimizer state and temporaries. Kept apart from the timed epochs, since tracing
    slows every allocation.
    """
    model = _fastrnn_model(api, work)
    n = batches * work.batch_size
    x, y = work.x_train[:n].copy(), work.y_train[:n].copy()
    tracemalloc.start()
    try:
        model.fit(x, y, epochs=1, batch_size=work.batch_size, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


# ----------------------------------------------------------------------------- PyTorch
def _torch_trainer(
    torch: Any, work: Workload, initial: Optional[list[np.ndarray]]
) -> tuple[Callable[[np.ndarray, np.ndarray], None], Callable]:
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        """The workload's layers, initialized as Keras does (glorot / orthogonal / zeros)."""

        def __init__(self) -> None:
            super().__init__()
            features = work.x_train.shape[2]
            if work.name == "jena_lstm":
                self.rnns = nn.ModuleList([nn.LSTM(features, 16, batch_first=True)])
                self.dense = nn.Linear(16, 1)
            else:
                self.rnns = nn.ModuleList(
                    [nn.RNN(features, 20, batch_first=True), nn.RNN(20, 20, batch_first=True)]
                )
                self.dense = nn.Linear(20, 1 if work.name == "deep_rnn" else 10)
            for rnn in self.rnns:
                nn.init.xavier_uniform_(rnn.weight_ih_l0)
                for gate in rnn.weight_hh_l0.data.chunk(4 if work.name == "jena_lstm" else 1):
                    nn.init.orthogonal_(gate)
                nn.init.zeros_(rnn.bias_ih_l0)
                nn.init.zeros_(rnn.bias_hh_l0)
                if isinstance(rnn, nn.LSTM):  # Keras's unit_forget_bias
                    h = rnn.hidden_size
                    nn.init.ones_(rnn.bias_ih_l0.data[h : 2 * h])
            nn.init.xavier_uniform_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

        def forward(self, x: Any) -> Any:
            for rnn in self.rnns:
                x, _ = rnn(x)
            return self.dense(x if work.name == "seq2seq" else x[:, -1])

    net = Net()
    if initial is not None:  # Keras order: per recurrent layer kernel, recurrent, bias; Dense
        with torch.no_grad():
            weights = iter(initial)
            for rnn in net.rnns:
                rnn.weight_ih_l0.copy_(torch.from_numpy(next(weights).T.copy()))
                rnn.weight_hh_l0.copy_(torch.from_numpy(next(weights).T.copy()))
                rnn.bias_ih_l0.copy_(torch.from_numpy(next(weights)))
                rnn.bias_hh_l0.zero_()
            net.dense.weight.copy_(torch.from_numpy(next(weights).T.copy()))
            net.dense.bias.copy_(torch.from_numpy(next(weights)))
    if work.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    else:
        opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.MSELoss()

    def epoch(x: np.ndarray, y: np.ndarray) -> None:
        net.train()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for start in range(0, len(xt), work.batch_size):
            opt.zero_grad()
            stop = start + work.batch_size
            loss = loss_fn(net(xt[start:stop]), yt[start:stop])
            loss.backward()
            opt.step()

    def predict(x: np.ndarray) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return np.concatenate(
                [net(torch.from_numpy(x[i : i + 1024])).numpy() for i in range(0, len(x), 1024)]
            )

    return epoch, predict


# ----------------------------------------------------------------------------- TF-Keras
def tensorflow_available(threads: int) -> tuple[Optional[Any], str]:
    """``(tensorflow, "")`` when importable (threads pinned to `threads`), else ``(None, why)``."""
    tf, why = optional_import("tensorflow")
    if tf is None:
        return None, f"tensorflow not installed ({why})"
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TF already initialized: its thread pools are fixed
        pass
    return tf, ""


def _keras_trainer(
    tf: Any, work: Workload, initial: Optional[list[np.ndarray]]
) -> tuple[Callable[[np.ndarray, np.ndarray], None], Callable]:
    keras = tf.keras
    keras.utils.set_random_seed(0)
    features = work.x_train.shape[2]
    stack: list[Any] = [keras.Input(shape=(None, features))]
    if work.name == "jena_lstm":
        stack += [keras.layers.LSTM(16), keras.layers.Dense(1)]
    elif work.name == "deep_rnn":
        stack += [
            keras.layers.SimpleRNN(20, return_sequences=True),
            keras.layers.SimpleRNN(20),
            keras.layers.Dense(1),
        ]
    else:
        stack += [
            keras.layers.SimpleRNN(20, return_sequences=True),
            keras.layers.SimpleRNN(20, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(10)),
        ]
    model = keras.Sequential(stack)
    if initial is not None:
        model.set_weights(initial)
    opt = keras.optimizers.Adam() if work.optimizer == "adam" else keras.optimizers.RMSprop()
    model.compile(optimizer=opt, loss="mse")

    def epoch(x: np.ndarray, y: np.ndarray) -> None:
        model.fit(x, y, epochs=1, batch_size=work.batch_size, shuffle=False, verbose=0)

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, batch_size=1024, verbose=0))

    return epoch, predict


# ----------------------------------------------------------------------------- the runs
def _train(
    make: Callable[[], tuple[Callable[[np.ndarray, np.ndarray], None], Callable]],
    work: Workload,
    track_memory: bool,
) -> dict[str, Any]:
    """Builds a trainer, runs `work.epochs` timed epochs, then the validation MSE.

    Starts after a pause: the framework trained just before leaves worker threads spinning for
    a while (OpenBLAS's, OpenMP's, TF's), on the cores this one needs.
    """
    if work.settle_seconds > 0:
        time.sleep(work.settle_seconds)
    result: dict[str, Any] = {}
    # Each epoch's shuffled copy of the data lives in these, made (and paged in) before memory
    # is tracked: it is the benchmark's, not the framework's.
    x_epoch, y_epoch = work.x_train.copy(), work.y_train.copy()
    if track_memory:
        result["rss_before_mib"] = rss_mib()
        result["peak_rss_reset"] = reset_peak_rss()
    epoch, predict = make()
    times = []
    orders = np.random.default_rng(7)  # every framework sees the same batches in the same order
    for _ in range(work.epochs):
        order = orders.permutation(len(work.x_train))  # shuffled here, untimed, for all alike
        work.x_train.take(order, axis=0, out=x_epoch, mode="clip")  # (raise: buffered)
        work.y_train.take(order, axis=0, out=y_epoch, mode="clip")
        start = time.perf_counter()
        epoch(x_epoch, y_epoch)
        times.append(time.perf_counter() - start)
    if track_memory:
        result["peak_rss_mib"] = peak_rss_mib()
        if result["rss_before_mib"] is not None and result["peak_rss_reset"]:
            result["peak_rss_growth_mib"] = result["peak_rss_mib"] - result["rss_before_mib"]
    pred = predict(work.x_valid).reshape(work.y_valid.shape)
    result["val_mse"] = float(np.mean((pred.astype(np.float64) - work.y_valid) ** 2))
    if work.name == "seq2seq":
        last = (pred[:, -1].astype(np.float64) - work.y_valid[:, -1]) ** 2
        result["val_last_step_mse"] = float(np.mean(last))
    result["epoch_times_s"] = times
    result["first_epoch_s"] = times[0]
    later = times[1:] or times
    result["s_per_epoch"] = float(np.median(later))
    return result


def run(
    mode: str, threads: int, progress: Callable[[str], None], epochs: Optional[int] = None
) -> list[dict[str, Any]]:
    """Trains every workload in every available framework; one row per workload."""
    fastrnn, why_fastrnn = fastrnn_available()
    torch, why_torch = optional_import("torch")
    tf, why_tf = tensorflow_available(threads)
    available = {
        "fastrnn": (fastrnn, why_fastrnn, _fastrnn_trainer),
        "fastrnn_functional": (fastrnn, why_fastrnn,
                               lambda m, w, i: _fastrnn_trainer(m, w, i, functional=True)),
        "torch": (torch, f"torch not installed ({why_torch})" if why_torch else "", _torch_trainer),
        "tf_keras": (tf, why_tf, _keras_trainer),
    }
    rows = []
    for work in workloads(mode, epochs):
        results: dict[str, dict[str, Any]] = {}
        initial = initial_weights(fastrnn, work)
        for name, (module, why, trainer) in available.items():
            progress(f"e2e {work.name} {name}")
            if module is None:
                results[name] = {"skipped": f"not available: {why}"}
                continue
            if work.name in FASTRNN_ONLY and name != "fastrnn":
                results[name] = {"skipped": "fastrnn only"}
                continue
            track = work.name == "jena_lstm"
            try:
                results[name] = _train(
                    lambda m=module, t=trainer, w=work, i=initial: t(m, w, i), work,
                    track_memory=track,
                )
                if track and name == "fastrnn":
                    results[name]["tracemalloc_peak_mib_4_batches"] = fastrnn_traced_peak_mib(
                        module, work
                    )
            except Exception as exc:  # an API still being written: report, continue
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        row: dict[str, Any] = {
            "model": work.name,
            "description": work.description,
            "n_train": len(work.x_train),
            "n_valid": len(work.x_valid),
            "batch_size": work.batch_size,
            "epochs": work.epochs,
            "results": results,
        }
        if ("s_per_epoch" in results["fastrnn"]
                and "s_per_epoch" in results.get("fastrnn_functional", {})):
            row["functional_over_sequential_paired"] = functional_over_sequential(
                fastrnn, work, initial, pairs=2 if mode == "smoke" else 6)
        fast = results["fastrnn"].get("s_per_epoch")
        for other in ("fastrnn_functional", "torch", "tf_keras"):
            theirs = results[other].get("s_per_epoch")
            row[f"speedup_vs_{other}"] = theirs / fast if fast and theirs else None
        if work.name == "jena_lstm":
            t, b = work.x_train.shape[1], work.batch_size
            row["expected_tape_mib"] = (t * b * 5 * 16 + t * b * 16) * 4 / 2**20
        rows.append(row)
    # The layer_norm model trains first (before any other framework leaves threads spinning),
    # the plain one right after it; the ratio of their epochs:
    by_name = {r["model"]: r for r in rows}
    if "deep_rnn_layer_norm" in by_name and "deep_rnn" in by_name:
        ln = by_name["deep_rnn_layer_norm"]["results"]["fastrnn"].get("s_per_epoch")
        plain = by_name["deep_rnn"]["results"]["fastrnn"].get("s_per_epoch")
        by_name["deep_rnn_layer_norm"]["layer_norm_over_plain"] = (
            ln / plain if ln and plain else None)
    return rows
