"""The ``fastrnn`` command: ``demo``, ``forecast``, ``info``, ``bench`` and ``serve``.

``main(argv)`` returns the exit status instead of exiting, so tests call it in-process:

* 0: success;
* 1: the data is unusable (missing file, unknown column, non-numeric values, NaN gaps, a
  series too short for the window and horizon, a missing optional dependency), the output
  directory cannot be written, or anything else failed (out of memory, a bug);
* 2: usage errors (unknown options, bad option values), as argparse does.

Every error is one line on stderr, ``fastrnn: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import numpy as np

from . import __version__
from .forecasting.single import RECURRENT_MODELS, Series, Trained, check_lengths, run_single
from .forecasting.single import fit_model as _fit
from .forecasting.single import fmt as _fmt
from .forecasting.single import format_table as _format_table
from .forecasting.single import plot_or_note as _plot_or_note
from .forecasting.single import recurrent_model as _recurrent_model

PROG = "fastrnn"

# Demo defaults: the book's setting (Hands-On ML ch.15): 50 input steps, 10,000 series split
# 7000/2000/1000, seed 42. 10 epochs keep the whole demo near 20 s on 2 cores.
DEMO_STEPS = 50
DEMO_AHEAD = 10
DEMO_EPOCHS = 10
DEMO_SERIES = 10000
DEMO_PLOTTED = 3  # validation series drawn, one PNG each

# Sizes the command accepts for its univariate models: an LSTM of 4096 units already has
# 67 million weights (fitting one value per step); --units 1000000 asked for 29 TiB.
MAX_UNITS = 4096
MAX_LAYERS = 16

FORECAST_MODELS = (*RECURRENT_MODELS, "simple_rnn", "linear", "naive", "seasonal_naive",
                   "theta")
# one series (--column): the models of the single-series pipeline; many series
# (--id-column): fastrnn.forecasting.pipeline.MODELS
SINGLE_MODELS = (*RECURRENT_MODELS, "simple_rnn", "linear", "naive")
SINGLE_DEFAULTS = {"window": 52, "model": "lstm", "epochs": 30, "units": 32}


# ----------------------------------------------------------------------------- errors
class CommandError(Exception):
    """An expected failure, reported as one ``fastrnn: error: ...`` line.

    ``status`` is the exit code: 1 for unusable data, 2 for usage errors.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def usage_error(message: str) -> CommandError:
    """A bad option value (exit status 2)."""
    return CommandError(message, status=2)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        raise usage_error(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _bounded_int(limit: int) -> Callable[[str], int]:
    """A positive integer of at most ``limit``."""

    def parse(text: str) -> int:
        value = _positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(
                f"expected a positive integer of at most {limit}, got {text!r}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _say(quiet: bool) -> Callable[[str], None]:
    """print, or nothing with --quiet."""
    return (lambda _message: None) if quiet else (lambda message: print(message, flush=True))


def _seed_everything(seed: int) -> None:
    """fastrnn.set_seed when the models module provides it, else NumPy's global seed."""
    try:
        from .models import set_seed
    except ImportError:  # pragma: no cover - models without set_seed
        np.random.seed(seed)  # noqa: NPY002
    else:
        set_seed(seed)


# ----------------------------------------------------------------------------- demo
def _run_demo(args: argparse.Namespace) -> int:
    from .timeseries import (
        LinearForecaster,
        NaiveForecaster,
        forecast,
        generate_time_series,
        mse,
        plot_forecast,
    )

    if args.series < 10:
        raise usage_error(f"argument --series: expected at least 10 series, got {args.series}")
    say = _say(args.quiet)
    verbose = 0 if args.quiet else 1
    out = _output_dir(args.out)
    _seed_everything(args.seed)
    started = time.perf_counter()

    # As in the book: models learn the next value of 51-step series (50 inputs + target);
    # the recursive 10-step forecasts are scored on 60-step series with the same random
    # parameters (same seed), whose first 50 steps are the inputs.
    series = generate_time_series(args.series, DEMO_STEPS + 1, seed=args.seed)
    longer = generate_time_series(args.series, DEMO_STEPS + DEMO_AHEAD, seed=args.seed)
    n_train, n_val = int(0.7 * args.series), int(0.2 * args.series)
    val = slice(n_train, n_train + n_val)
    x_train, y_train = series[:n_train, :DEMO_STEPS], series[:n_train, DEMO_STEPS]
    x_val, y_val = series[val, :DEMO_STEPS], series[val, DEMO_STEPS]
    x_val_long, y_val_ahead = longer[val, :DEMO_STEPS], longer[val, DEMO_STEPS:, 0]
    say(f"fastrnn demo: {args.series} series of {DEMO_STEPS} steps (seed {args.seed}), "
        f"{n_train} training / {n_val} validation, {args.epochs} epochs")

    start = time.perf_counter()
    linear = LinearForecaster().fit(x_train, y_train)
    trained = [Trained("naive (last value)", NaiveForecaster()),
               Trained("linear (least squares)", linear, time.perf_counter() - start)]
    for label, kind in (("deep RNN 20-20-Dense(1)", "rnn"), ("LSTM 20-20-Dense(1)", "lstm")):
        say(f"training {label}")
        model = _recurrent_model(kind, 20, 2, DEMO_STEPS, 1)
        trained.append(_fit(label, model, x_train, y_train, (x_val, y_val), args.epochs,
                            verbose))

    rows, ahead = [], {}
    naive_mse = mse(y_val, x_val[:, -1])
    for item in trained:
        one_step = forecast(item.model, x_val, 1, strategy="recursive")  # (N, 1)
        ahead[item.name] = forecast(item.model, x_val_long, DEMO_AHEAD, strategy="recursive")
        error = mse(y_val, one_step[:, 0])
        rows.append([item.name, _fmt(error), f"{error / naive_mse:.2f}",
                     _fmt(mse(y_val_ahead, ahead[item.name])),
                     _fmt(item.seconds_per_epoch, 3) if item.epochs else "-",
                     str(item.epochs) if item.epochs is not None else "-"])
    print()
    print(_format_table(["model", "val MSE", "vs naive", f"{DEMO_AHEAD}-step MSE", "s/epoch",
                         "epochs"], rows))
    print(f"(val MSE: next value of the {n_val} validation series; {DEMO_AHEAD}-step MSE: "
          "recursive forecasts, each prediction fed back; s/epoch includes validation)")

    def draw() -> list[str]:
        paths = []
        for k in range(min(DEMO_PLOTTED, n_val)):
            paths.append(plot_forecast(
                x_val_long[k, :, 0], {item.name: ahead[item.name][k] for item in trained},
                truth=y_val_ahead[k], path=out / f"forecast_{k + 1}.png",
                title=f"Validation series {k + 1}: {DEMO_AHEAD}-step recursive forecasts"))
        return paths

    _plot_or_note(draw, print)
    say(f"done in {time.perf_counter() - started:.1f} s")
    return 0


# ----------------------------------------------------------------------------- CSV input
def _load_series(args: argparse.Namespace) -> Series:
    from .timeseries import fill_gaps, infer_season, load_dataset, read_csv

    if args.dataset is not None:
        if args.column is not None or args.time_column is not None:
            raise usage_error("--column and --time-column go with --csv, not --dataset")
        try:
            data = load_dataset(args.dataset)
        except ImportError as err:
            raise CommandError(str(err)) from None
        values = np.asarray(data.values, dtype=np.float64)
        timestamps = data.timestamps
        name = f"{args.dataset} ({data.columns[0]})"
    else:
        if args.column is None:
            raise usage_error(f"--csv needs --column NAME{_columns_hint(args.csv)}")
        try:
            data = read_csv(args.csv, args.column, args.time_column,
                            allow_missing=args.fill_gaps)
        except FileNotFoundError:
            raise CommandError(f"file not found: {args.csv}") from None
        except (OSError, ValueError) as err:
            raise CommandError(_option_names(str(err))) from None
        values, timestamps = data.values, data.timestamps
        name = f"{Path(args.csv).name}: {args.column}"
        if np.isnan(values).any():
            values = fill_gaps(values)
    season = args.season if args.season is not None else infer_season(timestamps)
    return Series(name, values, timestamps, season)


def _columns_hint(path: str) -> str:
    """"; the columns of PATH are: ..." when its header can be read, else ""."""
    from .timeseries import csv_columns

    try:
        names = csv_columns(path)
    except (OSError, ValueError):
        return ""
    return f"; the columns of {path} are: {', '.join(repr(name) for name in names)}"


def _option_names(message: str) -> str:
    """The library's argument names in a message, as the command's options."""
    for name in ("window", "horizon", "season"):
        message = message.replace(f"`{name}`", f"--{name}")
    return (message.replace("(argument `column`)", "(--column)")
            .replace("(argument `time_column`)", "(--time-column)")
            .replace("read with allow_missing=True and fill_gaps()", "pass --fill-gaps to "
                     "interpolate linearly"))


# ----------------------------------------------------------------------------- forecast
def _output_dir(path: str) -> Path:
    """Creates ``--out`` (and checks a file can be written there) before any training, so a
    bad path fails at once instead of after every epoch."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise CommandError(f"--out {path}: cannot create or write to this directory "
                           f"({reason})") from None
    return out


def _run_forecast(args: argparse.Namespace) -> int:
    """One series (--csv/--column or --dataset) or many (--id-column): argument checks,
    then one library call (fastrnn.forecasting.single / .pipeline)."""
    if args.id_column is not None:
        return _run_forecast_long(args)
    for name in ("quantiles", "evaluate", "no_deseasonalize"):
        if getattr(args, name):
            raise usage_error(f"--{name.replace('_', '-')} goes with --id-column (many series "
                              "in a long CSV)")
    for name, value in SINGLE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.strategy == "encoder-decoder":
        raise usage_error("--strategy encoder-decoder goes with --id-column (many series in "
                          "a long CSV); for one series use direct or recursive")
    if args.model not in SINGLE_MODELS:
        raise usage_error(f"--model {args.model} goes with --id-column; for one series use one "
                          f"of {', '.join(SINGLE_MODELS)}")
    if args.model == "simple_rnn":
        args.model = "rnn"
    series = _load_series(args)
    window, horizon = args.window, args.horizon
    try:  # the length checks, before anything is written or trained
        check_lengths(series, window, horizon, series.season)
    except ValueError as err:
        raise CommandError(_option_names(str(err))) from None
    out = _output_dir(args.out)  # before training: a bad --out must not cost the epochs
    _seed_everything(args.seed)
    run_single(series, out, window, horizon, args.model, args.strategy, args.target,
               args.epochs, args.patience, args.units, args.layers,
               verbose=0 if args.quiet else 1, say=print)
    return 0


def _parse_quantiles(text: Optional[str]) -> Optional[list[float]]:
    if not text:
        return None
    from .timeseries.metrics import check_quantiles

    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
        return check_quantiles(levels).tolist()
    except ValueError:
        raise usage_error(f"--quantiles: expected increasing levels strictly between 0 and 1 "
                          f"separated by commas (e.g. 0.1,0.5,0.9), got {text!r}") from None


def _run_forecast_long(args: argparse.Namespace) -> int:
    """Many series in one long CSV: a thin layer over fastrnn.forecasting.pipeline."""
    from .forecasting.pipeline import MODELS, run_long_csv

    if args.csv is None:
        raise usage_error("--id-column goes with --csv (a long CSV file)")
    missing = [flag for flag, value in (("--column", args.column),
                                        ("--time-column", args.time_column)) if value is None]
    if missing:
        raise usage_error(f"--id-column needs {' and '.join(missing)}"
                          f"{_columns_hint(args.csv)}")
    model = args.model or "lstm"
    if model == "rnn":
        model = "simple_rnn"
    if model not in MODELS:
        raise usage_error(f"--model {model} is for one series; with --id-column use one of "
                          f"{', '.join(MODELS)}")
    quantiles = _parse_quantiles(args.quantiles)
    if not Path(args.csv).is_file():
        raise CommandError(f"file not found: {args.csv}")
    out = _output_dir(args.out)
    _seed_everything(args.seed)
    say = _say(args.quiet)
    try:
        run = run_long_csv(args.csv, args.id_column, args.time_column, args.column,
                           args.horizon, out, quantiles, model, args.evaluate, args.window,
                           args.epochs, args.units, args.seed, 0 if args.quiet else 1, say=say,
                           strategy=args.strategy,
                           fill_gaps="interpolate" if args.fill_gaps else None,
                           season=args.season, deseasonalize=not args.no_deseasonalize)
    except ValueError as err:  # the library's argument names, as the command's options
        message = str(err)
        for name, option in (("target_col", "--column"), ("id_col", "--id-column"),
                             ("time_col", "--time-column"), ("epochs", "--epochs")):
            message = message.replace(f"argument `{name}`", option)
        raise CommandError(message) from None
    for note in run.notes:
        print(f"note: {note}")
    if run.table:
        print()
        print(run.table)
        print(f"(the last {args.horizon} values of each series held out; metrics per series "
              "in metrics.csv, averaged over the series)")
    say(f"trained in {run.fit_seconds:.1f} s")
    print(f"forecasts: {', '.join(run.files)}")
    return 0


# ----------------------------------------------------------------------------- info, bench
def _run_info(args: argparse.Namespace) -> int:
    import fastrnn

    from . import _core

    optional = []
    for module in ("tqdm", "matplotlib", "statsmodels", "torch"):
        try:
            imported = __import__(module)
            optional.append(f"{module} {getattr(imported, '__version__', '?')}")
        except ImportError:
            optional.append(f"{module} (not installed)")
    rows = [
        ("fastrnn", f"{__version__} ({Path(fastrnn.__file__).parent})"),
        ("python", f"{platform.python_version()} ({platform.python_implementation()}, "
                   f"{platform.machine()})"),
        ("numpy", np.__version__),
        ("optional", ", ".join(optional)),
        ("kernel set", f"{fastrnn.ops.kernel_set()} ({fastrnn.ops.kernel_set_reason()}; "
                       f"this CPU runs: {', '.join(fastrnn.ops.available_kernel_sets())})"),
        ("blas", str(_core.blas_config())),
        ("threads", f"{fastrnn.get_num_threads()} (cpus: {os.cpu_count()})"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _benchmarks_script() -> Optional[Path]:
    """benchmarks/run.py of a source checkout (it is not installed with the package)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
    return script if script.is_file() else None


def _run_bench(args: argparse.Namespace) -> int:
    script = _benchmarks_script()
    if script is None:
        raise CommandError("the benchmarks are not installed with the package: run "
                           "'python benchmarks/run.py' from a fastrnn source checkout")
    return subprocess.call([sys.executable, str(script), *args.bench_args])


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``fastrnn`` argument parser with its five subcommands."""
    parser = _Parser(prog=PROG, description="Fast SimpleRNN/LSTM/GRU training and "
                     "time-series forecasting on NumPy arrays.")
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="train the book's models on generated series and print a table",
        description="Hands-On ML ch.15 on its generated two-sine series: naive and linear "
        "baselines, a deep SimpleRNN and an LSTM (20-20-Dense(1)); prints validation MSE, "
        "ratio to the naive baseline, seconds per epoch, and writes forecast plots.")
    demo.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS,
                      help=f"training epochs per model (default {DEMO_EPOCHS})")
    demo.add_argument("--series", type=_positive_int, default=DEMO_SERIES,
                      help=f"number of generated series, split 70/20/10 (default {DEMO_SERIES})")
    demo.add_argument("--out", default="fastrnn_demo",
                      help="directory for the forecast plots (default fastrnn_demo/)")
    demo.add_argument("--seed", type=_non_negative_int, default=42,
                      help="seed of the data and the weights (default 42)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress bars; print only the table and the plot paths")
    demo.set_defaults(run=_run_demo)

    fc = commands.add_parser(
        "forecast", help="train a model on a CSV column or a bundled series and forecast",
        description="Chronological 70/15/15 train/validation/test split, scaling fitted on "
        "the training part, windows of --window steps, a model forecasting --horizon steps; "
        "prints test metrics against the naive and seasonal-naive baselines and writes the "
        "forecasts (CSV) and plots to --out.")
    source = fc.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="FILE", help="a CSV file with a header line")
    source.add_argument("--dataset", choices=("co2", "sunspots", "nile"),
                        help="a real series bundled with statsmodels (pip install "
                        "'fastrnn[data]')")
    fc.add_argument("--column", metavar="NAME", help="the column to forecast (with --csv)")
    fc.add_argument("--time-column", metavar="NAME",
                    help="a column of ISO 8601 times (with --csv): sets the season and labels; "
                    "with --id-column: dates (any frequency, per series) or integers")
    fc.add_argument("--id-column", metavar="NAME",
                    help="many series in one long CSV (one row per series and time): the "
                    "column naming the series. Trains one global model on every series and "
                    "writes OUT/forecasts.csv (id, time, forecast, q<level>...) for the "
                    "--horizon periods after each series' end")
    fc.add_argument("--quantiles", metavar="LEVELS",
                    help="with --id-column: quantile levels, e.g. 0.1,0.5,0.9 (q<level> "
                    "columns; the model trains on the pinball loss)")
    fc.add_argument("--evaluate", action="store_true",
                    help="with --id-column: hold out the last --horizon values of each series, "
                    "train on the rest, write OUT/metrics.csv (per series and overall) and "
                    "plots")
    fc.add_argument("--fill-gaps", action="store_true",
                    help="interpolate missing values (with --id-column also missing "
                    "periods) linearly instead of failing")
    fc.add_argument("--horizon", type=_positive_int, default=10,
                    help="steps to forecast (default 10)")
    fc.add_argument("--window", type=_positive_int, default=None,
                    help="input steps per forecast (default 52; with --id-column 2 x horizon)")
    fc.add_argument("--model", choices=FORECAST_MODELS, default=None,
                    help="the forecaster (default lstm: for one series, one LSTM; with "
                    "--id-column, the configuration measured best on M3: 5 LSTMs of 64 "
                    "units on log values, pinball loss, median of the members). "
                    "seasonal_naive and theta go with --id-column")
    fc.add_argument("--strategy", choices=("direct", "recursive", "encoder-decoder"),
                    default="direct",
                    help="direct: one Dense(horizon) output; recursive: one step, fed back; "
                    "encoder-decoder (with --id-column): an RNN decoder over the horizon "
                    "started from the encoder's states (default direct)")
    fc.add_argument("--target", choices=("change", "level"), default="change",
                    help="change: the model sees each window relative to its last value and "
                    "predicts the changes (follows trends); level: the scaled values "
                    "(default change)")
    fc.add_argument("--epochs", type=_non_negative_int, default=None,
                    help="maximum training epochs (default 30; with --id-column epochs of 200 "
                    "batches, by default 10 to 40 by the data's size)")
    fc.add_argument("--patience", type=_non_negative_int, default=5,
                    help="stop after this many epochs without validation improvement and keep "
                    "the best weights (default 5)")
    fc.add_argument("--units", type=_bounded_int(MAX_UNITS), default=None,
                    help=f"units per recurrent layer (default 32; with --id-column 64; at most "
                    f"{MAX_UNITS})")
    fc.add_argument("--layers", type=_bounded_int(MAX_LAYERS), default=1,
                    help=f"recurrent layers (default 1, at most {MAX_LAYERS})")
    fc.add_argument("--season", type=_positive_int, default=None,
                    help="seasonal period in steps (default: from the time step, e.g. 52 for "
                    "weekly data; 1 = none); with --id-column, the season the RNN's series "
                    "are deseasonalized by (default: from each series' dates; integer "
                    "times have none)")
    fc.add_argument("--no-deseasonalize", action="store_true",
                    help="with --id-column: the RNN sees seasonal series as they are (by "
                    "default a series whose season passes the M3 Theta method's test is "
                    "divided by its seasonal indices, and its forecasts multiplied back)")
    fc.add_argument("--out", default="fastrnn_forecast",
                    help="directory for forecasts and plots (default fastrnn_forecast/)")
    fc.add_argument("--seed", type=_non_negative_int, default=42, help="seed (default 42)")
    fc.add_argument("--quiet", action="store_true", help="no progress bars")
    fc.set_defaults(run=_run_forecast)

    info = commands.add_parser("info", help="versions, kernel set, BLAS and threads",
                               description="Prints versions, the kernel set, the BLAS "
                               "configuration and the thread count.")
    info.set_defaults(run=_run_info)

    bench = commands.add_parser(
        "bench", help="run benchmarks/run.py of a source checkout",
        description="Runs benchmarks/run.py from the fastrnn source tree (not installed with "
        "the package); arguments after 'bench' are passed on, e.g. 'fastrnn bench -- --quick'.")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER,
                       help="arguments for benchmarks/run.py")
    bench.set_defaults(run=_run_bench)
    _add_serve(commands)
    return parser


def _add_serve(commands: Any) -> None:
    from .serving.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_STREAMS, DEFAULT_STREAM_TTL

    serve = commands.add_parser(
        "serve", help="serve a saved model over HTTP (JSON in, forecasts out)",
        description="Loads a model saved with model.save() and serves it with uvicorn: GET "
        "/health, POST /predict, POST /streams and /streams/ID/step for step-by-step streams; "
        "or a forecaster saved with RNNForecaster.save(): GET /health, POST /forecast (see "
        "fastrnn.serving). Needs pip install 'fastrnn[serve]'.")
    serve.add_argument("model", metavar="MODEL", help="a file or directory written by "
                       "model.save() or RNNForecaster.save()")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=_bounded_int(65535), default=8000,
                       help="port (default 8000)")
    serve.add_argument("--max-streams", type=_positive_int, default=DEFAULT_MAX_STREAMS,
                       help=f"streams kept at most, least recently used evicted first "
                       f"(default {DEFAULT_MAX_STREAMS})")
    serve.add_argument("--stream-ttl", type=_positive_int, default=int(DEFAULT_STREAM_TTL),
                       help=f"seconds an idle stream is kept (default "
                       f"{int(DEFAULT_STREAM_TTL)})")
    serve.add_argument("--max-body-bytes", type=_positive_int, default=DEFAULT_MAX_BODY_BYTES,
                       help=f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES})")
    serve.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from .serving import serve

    if not os.path.exists(args.model):
        raise CommandError(f"no such model file or directory: {args.model}")
    serve(args.model, host=args.host, port=args.port, max_streams=args.max_streams,
          stream_ttl=float(args.stream_ttl), max_body_bytes=args.max_body_bytes)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the ``fastrnn`` command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "bench" and args.bench_args[:1] == ["--"]:
            args.bench_args = args.bench_args[1:]
        return int(args.run(args))
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except CommandError as err:
        sys.stdout.flush()
        message = str(err)
        if err.status == 2 and "--help" not in message:
            command = f"{PROG} {args.command}" if args is not None else PROG
            message += f" (see '{command} --help')"
        _print_error(message)
        return err.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `fastrnn info | head -1`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return 0
    except MemoryError as err:
        _print_error(f"out of memory ({err or 'MemoryError'}); use a smaller model or less "
                     "data")
        return 1
    except (OSError, ValueError, RuntimeError, ImportError) as err:
        # the library's own errors say what was wrong; no traceback for them either
        _print_error(str(err) or type(err).__name__)
        return 1
    except Exception as err:  # a bug: still one line, with what to report
        _print_error(f"internal error ({type(err).__name__}: {err}); please report it with "
                     "the command line")
        return 1


def _print_error(message: str) -> None:
    """The one line ``fastrnn: error: ...`` on stderr (line breaks in it become spaces)."""
    sys.stdout.flush()
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
