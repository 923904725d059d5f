"""The ``fastrnn`` command, called in-process through ``main(argv)`` with tiny settings."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastrnn import cli
from fastrnn.cli import main
from fastrnn.timeseries import infer_season

PYTHON_DIR = str(Path(cli.__file__).resolve().parents[1])


def write_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("date", "sales")
              ) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def monthly_rows(n: int = 120) -> list[list[str]]:
    """A trend plus a yearly cycle, one row per month from 2000-01."""
    months = np.arange(n)
    values = 100 + 0.5 * months + 10 * np.sin(2 * np.pi * months / 12)
    dates = np.datetime64("2000-01") + months.astype("timedelta64[M]")
    return [[str(d), f"{v:.3f}"] for d, v in zip(dates, values)]


@pytest.fixture
def sales_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "sales.csv", monthly_rows())


def run_error(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str]:
    """Runs a failing command; checks the one-line stderr message and returns it."""
    status = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastrnn: error: "), err
    assert "Traceback" not in err
    return status, lines[0]


# ----------------------------------------------------------------------------- demo
def test_demo_prints_the_table_and_writes_plots(tmp_path: Path, capsys) -> None:
    status = main(["demo", "--series", "30", "--epochs", "1", "--out", str(tmp_path / "d"),
                   "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    for row in ("naive (last value)", "linear (least squares)", "deep RNN 20-20-Dense(1)",
                "LSTM 20-20-Dense(1)"):
        assert row in out
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert header.split() == ["model", "val", "MSE", "vs", "naive", "10-step", "MSE",
                              "s/epoch", "epochs"]
    naive_row = next(line for line in out.splitlines() if line.startswith("naive"))
    assert naive_row.split()[4] == "1.00"  # the naive baseline against itself
    assert "Epoch 1/1" not in out  # --quiet: no progress bars
    plots = sorted((tmp_path / "d").glob("forecast_*.png"))
    assert [p.name for p in plots] == ["forecast_1.png", "forecast_2.png", "forecast_3.png"]
    assert f"plot: {plots[0]}" in out


def test_demo_shows_progress_bars_and_is_reproducible(tmp_path: Path, capsys) -> None:
    argv = ["demo", "--series", "20", "--epochs", "1", "--out", str(tmp_path), "--seed", "3"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "Epoch 1/1" in first  # the model's tqdm bar
    assert main(argv) == 0
    second = capsys.readouterr().out

    def table(out: str) -> list[str]:  # the rows without timings
        return [line.split()[:-2] for line in out.splitlines() if "MSE" not in line
                and line.startswith(("naive", "linear", "deep", "LSTM"))]

    assert table(first) == table(second)


def test_demo_without_matplotlib_skips_the_plot(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    status = main(["demo", "--series", "10", "--epochs", "1", "--out", str(tmp_path),
                   "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "note: plot skipped: matplotlib is not installed (pip install 'fastrnn[plot]')" in out
    assert not list(tmp_path.glob("*.png"))


def test_demo_rejects_too_few_series(capsys) -> None:
    status, message = run_error(capsys, ["demo", "--series", "5"])
    assert status == 2
    assert "--series" in message and "at least 10" in message


# ----------------------------------------------------------------------------- forecast
def test_forecast_csv_writes_metrics_forecasts_and_plots(sales_csv: Path, tmp_path: Path,
                                                         capsys) -> None:
    out_dir = tmp_path / "out"
    status = main(["forecast", "--csv", str(sales_csv), "--column", "sales", "--time-column",
                   "date", "--window", "12", "--horizon", "3", "--epochs", "2", "--units", "4",
                   "--out", str(out_dir), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    for name in ("lstm", "naive", "seasonal naive (12)"):  # monthly data: season 12
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "mae  rmse" in " ".join(out.split("\n")[1:3]) or "mae" in out
    with open(out_dir / "forecast.csv", newline="") as handle:
        future = list(csv.reader(handle))
    assert future[0] == ["step", "time", "lstm"]
    # the next 3 months after the last row (2009-12), extrapolated from the time step
    assert [row[0] for row in future[1:]] == ["1", "2", "3"]
    assert future[1][1].startswith("2010-01")
    with open(out_dir / "test_forecasts.csv", newline="") as handle:
        test_rows = list(csv.reader(handle))
    assert test_rows[0] == ["origin", "step", "time", "actual", "lstm", "naive",
                            "seasonal naive (12)"]
    # 120 values: test part 120 - 84 - 18 = 18 steps, 18 - 3 + 1 origins of 3 steps each
    assert len(test_rows) - 1 == 16 * 3
    assert (out_dir / "forecast.png").is_file()
    assert (out_dir / "learning_curves.png").is_file()


def test_forecast_test_rows_hold_the_actual_values(sales_csv: Path, tmp_path: Path,
                                                   capsys) -> None:
    assert main(["forecast", "--csv", str(sales_csv), "--column", "sales", "--model", "naive",
                 "--window", "12", "--horizon", "2", "--out", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    source = {int(i): float(v) for i, (_, v) in enumerate(monthly_rows())}
    with open(tmp_path / "test_forecasts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = rows[0]
    origin = int(first["origin"])  # no --time-column: step numbers
    assert origin == 102  # 70% + 15% of 120
    assert float(first["actual"]) == pytest.approx(source[origin], abs=1e-3)
    assert float(first["naive"]) == pytest.approx(source[origin - 1], abs=1e-3)


@pytest.mark.parametrize("extra", [
    ["--model", "linear"],
    ["--model", "gru", "--strategy", "recursive", "--epochs", "1", "--units", "3"],
    ["--model", "rnn", "--target", "level", "--epochs", "1", "--layers", "2", "--units", "3"],
    ["--model", "linear", "--season", "6"],
])
def test_forecast_models_and_strategies(sales_csv: Path, tmp_path: Path, capsys,
                                        extra: list[str]) -> None:
    status = main(["forecast", "--csv", str(sales_csv), "--column", "sales", "--window", "12",
                   "--horizon", "4", "--out", str(tmp_path), "--quiet", *extra])
    out = capsys.readouterr().out
    assert status == 0
    model = extra[1]
    assert any(line.startswith(model) for line in out.splitlines())
    if "--season" in extra:
        assert "seasonal naive (6)" in out


def test_forecast_bundled_nile(tmp_path: Path, capsys) -> None:
    status = main(["forecast", "--dataset", "nile", "--window", "10", "--horizon", "3",
                   "--epochs", "2", "--units", "4", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "nile (volume), 100 values" in out
    assert "seasonal naive" not in out  # yearly data: no season
    for name in ("lstm", "naive"):
        assert any(line.startswith(name) for line in out.splitlines())
    with open(tmp_path / "forecast.csv", newline="") as handle:
        future = list(csv.reader(handle))
    assert [row[1] for row in future[1:]] == ["1971", "1972", "1973"]


def test_forecast_fill_gaps_interpolates(tmp_path: Path, capsys) -> None:
    rows = monthly_rows(60)
    rows[20][1] = ""
    rows[21][1] = "NA"
    path = write_csv(tmp_path / "gaps.csv", rows)
    status = main(["forecast", "--csv", str(path), "--column", "sales", "--model", "linear",
                   "--window", "6", "--horizon", "2", "--fill-gaps", "--out",
                   str(tmp_path / "o"), "--quiet"])
    assert status == 0
    capsys.readouterr()


def test_forecast_reads_semicolon_csv(tmp_path: Path, capsys) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("t;x\n" + "".join(f"{i};{np.sin(i / 3):.4f}\n" for i in range(50)))
    assert main(["forecast", "--csv", str(path), "--column", "x", "--model", "naive",
                 "--window", "5", "--horizon", "2", "--out", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()


def test_statsmodels_missing_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    status, message = run_error(capsys, ["forecast", "--dataset", "co2", "--out",
                                         str(tmp_path)])
    assert status == 1
    assert "fastrnn[data]" in message


# ----------------------------------------------------------------------------- many series
def long_rows() -> list[list[str]]:
    """Three series in one long table: monthly from 1990-01 (30 values), quarterly from
    2001-04 (12 values) and a short monthly one from 2010-06 (5 values, shorter than the
    window), rows interleaved between series."""
    rows = []
    specs = (("m", "1990-01", 1, 30), ("q", "2001-04", 3, 12), ("short", "2010-06", 1, 5))
    for sid, start, step, n in specs:
        dates = np.datetime64(start) + (np.arange(n) * step).astype("timedelta64[M]")
        values = 50 + np.arange(n) + 5 * np.sin(np.arange(n))
        rows += [[sid, f"{d}-01", f"{v:.3f}"] for d, v in zip(dates, values)]
    return rows


LONG = ["--id-column", "id", "--time-column", "month", "--column", "y", "--epochs", "1",
        "--units", "4", "--quiet"]


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_forecast_long_csv_future(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "long.csv", long_rows(), header=("id", "month", "y"))
    status = main(["forecast", "--csv", str(path), *LONG, "--horizon", "3", "--quantiles",
                   "0.1,0.5,0.9", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0
    rows = _read(tmp_path / "out" / "forecasts.csv")
    assert list(rows[0]) == ["id", "month", "forecast", "q0.1", "q0.5", "q0.9"]
    by_id = {sid: [r["month"] for r in rows if r["id"] == sid] for sid in ("m", "q", "short")}
    # each series' own frequency, period-start dates kept
    assert by_id == {"m": ["1992-07-01", "1992-08-01", "1992-09-01"],
                     "q": ["2004-04-01", "2004-07-01", "2004-10-01"],
                     "short": ["2010-11-01", "2010-12-01", "2011-01-01"]}
    for r in rows:
        assert float(r["q0.1"]) <= float(r["q0.5"]) <= float(r["q0.9"])
        assert r["forecast"] == r["q0.5"]
    assert "padded" in out  # the short series is said to be padded
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_forecast_long_csv_integer_times_and_evaluation(tmp_path: Path, capsys) -> None:
    rows = [[sid, str(t), f"{10 + k + np.cos(t):.3f}"] for k, sid in enumerate("ab")
            for t in range(5 * k, 5 * k + 20)]
    path = write_csv(tmp_path / "ints.csv", rows, header=("id", "month", "y"))
    assert main(["forecast", "--csv", str(path), *LONG, "--horizon", "2", "--model", "gru",
                 "--out", str(tmp_path / "future")]) == 0
    future = _read(tmp_path / "future" / "forecasts.csv")
    assert [r["month"] for r in future] == ["20", "21", "25", "26"]  # the next integers
    assert main(["forecast", "--csv", str(path), *LONG, "--horizon", "2", "--evaluate",
                 "--quantiles", "0.1,0.9", "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    metrics = _read(tmp_path / "eval" / "metrics.csv")
    assert list(metrics[0]) == ["id", "model", "mae", "rmse", "smape", "mase",
                                "coverage_q0.1_q0.9", "pinball"]
    assert {(r["id"], r["model"]) for r in metrics} >= {
        ("a", "lstm"), ("b", "lstm"), ("(all)", "lstm"), ("(all)", "naive")}
    held = _read(tmp_path / "eval" / "forecasts.csv")
    assert [r["month"] for r in held] == ["18", "19", "23", "24"]
    assert [float(r["y"]) for r in held] == [float(x[2]) for x in rows if (x[0], x[1]) in (
        ("a", "18"), ("a", "19"), ("b", "23"), ("b", "24"))]
    assert "seasonal_naive" in out


@pytest.mark.parametrize("rows, message", [
    ([["a", "1", "1"], ["a", "1", "2"]], "series 'a': duplicate rows for time 1"),
    ([["a", "2", "1"], ["a", "1", "2"]], "series 'a': times are not increasing"),
    ([["a", "1", "1"], ["a", "2", "2"], ["a", "4", "2"]], "series 'a': a gap after time 2"),
    ([["a", "1", "1"], ["b", "1", ""]], "series 'b': the target is NaN"),
    ([["a", "1", "1"], ["b", "1", "n/a"]], "series 'b': column 'y' is not numeric"),
])
def test_forecast_long_csv_bad_tables(tmp_path: Path, capsys, rows, message) -> None:
    path = write_csv(tmp_path / "bad.csv", rows, header=("id", "month", "y"))
    status, line = run_error(capsys, ["forecast", "--csv", str(path), *LONG,
                                      "--out", str(tmp_path / "o")])
    assert status == 1 and message in line, line


@pytest.mark.parametrize("extra, message", [
    (["--quantiles", "0.9,0.1"], "--quantiles: expected increasing levels"),
    (["--quantiles", "0,0.5"], "--quantiles: expected increasing levels"),
    (["--model", "linear"], "--model linear is for one series"),
])
def test_forecast_long_csv_usage_errors(tmp_path: Path, capsys, extra, message) -> None:
    path = write_csv(tmp_path / "long.csv", long_rows(), header=("id", "month", "y"))
    status, line = run_error(capsys, ["forecast", "--csv", str(path), *LONG, *extra,
                                      "--out", str(tmp_path / "o")])
    assert status == 2 and message in line, line


def test_forecast_long_options_need_id_column(sales_csv: Path, tmp_path: Path, capsys) -> None:
    status, line = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--column", "sales",
                                      "--quantiles", "0.1,0.9", "--out", str(tmp_path)])
    assert status == 2 and "--quantiles goes with --id-column" in line
    status, line = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--id-column", "x",
                                      "--column", "sales", "--out", str(tmp_path)])
    assert status == 2 and "--id-column needs --time-column" in line
    status, line = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--id-column", "x",
                                      "--time-column", "date", "--column", "sales",
                                      "--out", str(tmp_path)])
    assert status == 1 and "Received an invalid value for --id-column" in line, line


# ----------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path: Path, capsys) -> None:
    status, message = run_error(capsys, ["forecast", "--csv", str(tmp_path / "nope.csv"),
                                         "--column", "x"])
    assert status == 1
    assert message == f"fastrnn: error: file not found: {tmp_path / 'nope.csv'}"


def test_unknown_column_lists_the_available_ones(sales_csv: Path, capsys) -> None:
    status, message = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--column",
                                         "price"])
    assert status == 1
    assert "no column 'price'" in message and "available: 'date', 'sales'" in message


def test_unknown_time_column(sales_csv: Path, capsys) -> None:
    status, message = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--column",
                                         "sales", "--time-column", "when"])
    assert status == 1
    assert "no column 'when' (--time-column)" in message


def test_csv_without_column_is_a_usage_error(sales_csv: Path, capsys) -> None:
    status, message = run_error(capsys, ["forecast", "--csv", str(sales_csv)])
    assert status == 2
    assert "--csv needs --column NAME" in message and "'date', 'sales'" in message


def test_non_numeric_values_give_the_line(tmp_path: Path, capsys) -> None:
    rows = monthly_rows(40)
    rows[6][1] = "twelve"
    rows[9][1] = "n.a."
    path = write_csv(tmp_path / "bad.csv", rows)
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales"])
    assert status == 1
    assert "line 8" in message and "'twelve'" in message and "2 such values" in message


def test_nan_gaps_say_how_many_and_where(tmp_path: Path, capsys) -> None:
    rows = monthly_rows(40)
    for i in (4, 5, 30):
        rows[i][1] = "" if i != 30 else "nan"
    path = write_csv(tmp_path / "gaps.csv", rows)
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales"])
    assert status == 1
    assert "3 missing value(s)" in message and "lines 6, 7, 32" in message
    assert "--fill-gaps" in message


def test_all_missing_column(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "empty.csv", [["2000-01", ""], ["2000-02", ""]])
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                         "--fill-gaps"])
    assert status == 1
    assert "has no values" in message


def test_header_only_and_empty_files(tmp_path: Path, capsys) -> None:
    header_only = write_csv(tmp_path / "h.csv", [])
    assert "no data rows" in run_error(capsys, ["forecast", "--csv", str(header_only),
                                                "--column", "sales"])[1]
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert "is empty" in run_error(capsys, ["forecast", "--csv", str(empty), "--column",
                                            "x"])[1]


def test_ragged_row(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n")
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "b"])
    assert status == 1
    # the csv module refuses the short row; pandas pads it, leaving a missing value
    assert ("line 3: 1 fields, but the header has 2" in message
            or "missing value(s) (lines 3)" in message)
    path.write_text("a,b\n1,2\n3,4,5\n")  # a long row: refused by both
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "b"])
    assert status == 1 and "line 3: 3 fields, but the header has 2" in message


def test_bad_and_unsorted_times(tmp_path: Path, capsys) -> None:
    rows = monthly_rows(30)
    rows[3][0] = "March"
    path = write_csv(tmp_path / "t.csv", rows)
    message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                 "--time-column", "date"])[1]
    assert "line 5" in message and "ISO 8601" in message
    rows = monthly_rows(30)
    rows[10][0], rows[11][0] = rows[11][0], rows[10][0]
    path = write_csv(tmp_path / "u.csv", rows)
    message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                 "--time-column", "date"])[1]
    assert "not increasing" in message and "line 13" in message


def test_series_shorter_than_window_plus_horizon(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "short.csv", monthly_rows(20))
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                         "--window", "18", "--horizon", "5"])
    assert status == 1
    assert "20 values, fewer than window + horizon = 23" in message
    # long enough overall, but the training part (70%) is not
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                         "--window", "12", "--horizon", "3"])
    assert status == 1
    assert "training part (14 values)" in message


def test_season_longer_than_the_history(sales_csv: Path, capsys) -> None:
    status, message = run_error(capsys, ["forecast", "--csv", str(sales_csv), "--column",
                                         "sales", "--season", "200"])
    assert status == 1
    assert "--season 200" in message


@pytest.mark.parametrize("argv, fragment", [
    (["forecast", "--dataset", "nile", "--horizon", "0"], "--horizon: expected a positive"),
    (["forecast", "--dataset", "nile", "--window", "ten"], "--window: expected a positive"),
    (["forecast", "--dataset", "nile", "--epochs", "-1"], "--epochs: expected a non-negative"),
    (["forecast", "--dataset", "nile", "--model", "arima"], "invalid choice: 'arima'"),
    (["forecast", "--dataset", "mars"], "invalid choice: 'mars'"),
    (["forecast", "--dataset", "nile", "--csv", "x.csv"], "not allowed with argument"),
    (["forecast", "--window", "3"], "one of the arguments --csv --dataset is required"),
    (["forecast", "--dataset", "nile", "--column", "x"], "go with --csv"),
    (["demo", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["train"], "invalid choice: 'train'"),
])
def test_bad_options_are_usage_errors(capsys, argv: list[str], fragment: str) -> None:
    status, message = run_error(capsys, argv)
    assert status == 2
    assert fragment in message
    assert "--help" in message


# ----------------------------------------------------------------------------- info, bench, help
def test_info(capsys) -> None:
    from fastrnn import _core

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"kernel set  {_core.kernel_set()}" in out
    assert _core.blas_config() in out
    assert "threads" in out and "numpy" in out


def test_bench_without_the_source_tree(capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli, "_benchmarks_script", lambda: None)
    status, message = run_error(capsys, ["bench"])
    assert status == 1
    assert "not installed with the package" in message


@pytest.mark.parametrize("command", [[], ["demo"], ["forecast"], ["info"], ["bench"]])
def test_help(capsys, command: list[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fastrnn {' '.join(command)}".rstrip())


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_version(capsys) -> None:
    from fastrnn import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastrnn {__version__}"


def test_infer_season() -> None:
    def every(step: str, n: int = 10) -> np.ndarray:
        return np.datetime64("2001-01-01T00:00") + np.arange(n) * np.timedelta64(1, step)

    assert infer_season(every("h")) == 24
    assert infer_season(np.datetime64("2001-01-01") + np.arange(10) * np.timedelta64(10, "m")
                        ) == 144
    assert infer_season(every("D")) == 7
    assert infer_season(every("W")) == 52
    months = np.datetime64("2001-01") + np.arange(10).astype("timedelta64[M]")
    assert infer_season(months.astype("datetime64[s]")) == 12
    assert infer_season(np.arange(1900, 1910).astype(str).astype("datetime64[Y]")) == 1
    assert infer_season(None) == 1


def test_python_dash_m_fastrnn_help() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PYTHON_DIR, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "fastrnn", "--help"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: fastrnn")
    for command in ("demo", "forecast", "info", "bench"):
        assert command in done.stdout


# ----------------------------------------------------------------------------- never a traceback
def test_unclosed_quote_is_refused_not_read_in_part(tmp_path: Path, capsys) -> None:
    """A quoted field left open: `10.3,"hi` at row 271 of 300; the old reader split the text into
    lines, read 271 rows, exited 0 and forecast from the wrong point."""
    rows = monthly_rows(300)
    path = write_csv(tmp_path / "q.csv", rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[271] = '2022-08,10.3,"hi'  # data row 271, line 272
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, message = run_error(capsys, ["forecast", "--csv", str(path), "--column", "sales",
                                         "--model", "naive", "--out", str(tmp_path / "o")])
    assert status == 1
    assert "line 272" in message and "unclosed quote" in message


def _bad_command_lines(tmp: Path) -> list[list[str]]:
    good = write_csv(tmp / "good.csv", monthly_rows(120))
    (tmp / "file.txt").write_text("x")
    const = write_csv(tmp / "const.csv", [[r[0], "5.0"] for r in monthly_rows(120)])
    huge = [list(r) for r in monthly_rows(120)]
    huge[7][1] = "9" * 200_000  # one cell over the csv module's 131,072 limit
    huge_cell = write_csv(tmp / "huge.csv", huge)
    note = tmp / "note.csv"
    note.write_text("date,note,sales\n" + "".join(
        f"{d},{'x' * (200_000 if i == 3 else 1)},{v}\n"
        for i, (d, v) in enumerate(monthly_rows(120))), encoding="utf-8")
    (tmp / "latin1.csv").write_bytes(b"date,sales\n2000-01,caf\xe9\n")
    (tmp / "nul.csv").write_bytes(b"date,sales\n2000-01,1\x00\n2000-02,2\n")
    nat = write_csv(tmp / "nat.csv", [["NaT" if i == 4 else r[0], r[1]]
                                      for i, r in enumerate(monthly_rows(60))])
    os.mkfifo(tmp / "fifo.csv")
    quick = ["--model", "naive", "--quiet"]
    forecast = ["forecast", "--csv", str(good), "--column", "sales", *quick]
    return [
        [*forecast, "--out", str(tmp / "file.txt" / "sub")],      # under a regular file
        [*forecast, "--out", "/proc/fastrnn-cannot-be-here"],     # unwritable even for root
        [*forecast, "--out", str(tmp / "file.txt")],              # a file, not a directory
        ["demo", "--series", "10", "--epochs", "1", "--quiet", "--out",
         str(tmp / "file.txt" / "d")],
        ["forecast", "--csv", str(const), "--column", "sales", *quick, "--out", str(tmp)],
        ["forecast", "--csv", str(huge_cell), "--column", "sales", *quick, "--out", str(tmp)],
        ["forecast", "--csv", str(note), "--column", "sales", "--time-column", "date",
         "--model", "naive", "--quiet", "--window", "100000", "--out", str(tmp)],
        [*forecast, "--units", "1000000", "--out", str(tmp)],
        [*forecast, "--layers", "1000", "--out", str(tmp)],
        ["forecast", "--csv", str(tmp / "latin1.csv"), "--column", "sales", "--out", str(tmp)],
        ["forecast", "--csv", str(tmp / "nul.csv"), "--column", "sales", "--out", str(tmp)],
        ["forecast", "--csv", str(nat), "--column", "sales", "--time-column", "date",
         "--out", str(tmp)],
        ["forecast", "--csv", str(tmp), "--column", "sales", "--out", str(tmp)],
        ["forecast", "--csv", str(tmp / "fifo.csv"), "--column", "sales", "--out", str(tmp)],
        [*forecast, "--horizon", str(10**12), "--out", str(tmp)],
        [*forecast, "--season", str(10**12), "--out", str(tmp)],
        ["demo", "--series", str(10**12), "--epochs", "1", "--quiet", "--out", str(tmp)],
        ["forecast", "--csv", str(good), "--column", "sales\x00", "--out", str(tmp)],
        ["forecast", "--csv", "a\nb.csv", "--column", "x", "--out", str(tmp)],
    ]


@pytest.mark.parametrize("engine", ["python", "pandas"])
def test_every_bad_command_line_is_one_error_line(tmp_path: Path, capsys, monkeypatch,
                                                 engine: str) -> None:
    """Each of these printed a traceback (or waited for ever); every
    failure is now one `fastrnn: error: ...` line on stderr and a non-zero exit."""
    from fastrnn.timeseries import readers

    if engine == "pandas":
        pytest.importorskip("pandas")
    else:
        monkeypatch.setattr(readers, "_have_pandas", lambda: False)
    for argv in _bad_command_lines(tmp_path):
        status = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status != 0, " ".join(argv)
        assert len(lines) == 1 and lines[0].startswith("fastrnn: error: "), (argv, captured.err)
        assert "Traceback" not in captured.err
        assert "fastrnn forecast:" not in captured.out, argv  # failed before any training


def test_bad_out_fails_before_training(tmp_path: Path, capsys) -> None:
    (tmp_path / "file.txt").write_text("x")
    status, message = run_error(capsys, [
        "forecast", "--csv", str(write_csv(tmp_path / "s.csv", monthly_rows())), "--column",
        "sales", "--epochs", "50", "--out", str(tmp_path / "file.txt" / "o")])
    assert status == 1 and "--out" in message and "cannot create or write" in message


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "fastrnn", "forecast", "--dataset", "nile", "--units",
         "1000000", "--out", str(tmp_path / "file.txt" / "o")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": PYTHON_DIR})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("fastrnn: error: argument --units")
