"""Loaders: the Jena CSV (on small generated files) and statsmodels' bundled series."""

import sys

import numpy as np
import pytest

from fastrnn.timeseries import JENA_COLUMNS, fill_gaps, load_dataset, load_jena_climate

HEADER = ",".join(f'"{name}"' for name in ("Date Time", *JENA_COLUMNS))


def jena_rows(count, start_minute=10):
    rows = []
    for i in range(count):
        minutes = start_minute + 10 * i
        day, minutes = divmod(minutes, 24 * 60)
        values = [996.5 + i, -8.02 + 0.5 * i, *[round(0.1 * k + i, 2) for k in range(12)]]
        date = f"{day + 1:02d}.01.2009 {minutes // 60:02d}:{minutes % 60:02d}:00"
        rows.append(date + "," + ",".join(f"{v:.2f}" for v in values))
    return rows


def write(tmp_path, lines, name="jena.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parses_timestamps_values_and_columns(tmp_path):
    path = write(tmp_path, [HEADER, *jena_rows(150)])
    timestamps, values, columns = load_jena_climate(path)
    assert columns == list(JENA_COLUMNS) and len(columns) == 14
    assert values.shape == (150, 14) and values.dtype == np.float32
    assert timestamps.dtype == np.dtype("datetime64[s]")
    assert timestamps[0] == np.datetime64("2009-01-01T00:10:00")
    assert timestamps[149] == np.datetime64("2009-01-02T01:00:00")  # crosses midnight
    assert np.all(np.diff(timestamps) == np.timedelta64(10, "m"))
    assert values[3, 0] == np.float32(999.5)
    assert values[2, 1] == np.float32(-7.02)  # T (degC)
    assert values[-1, -1] == np.float32(149 + 1.1)


def test_windows_line_endings_and_str_path(tmp_path):
    path = tmp_path / "crlf.csv"
    path.write_bytes(("\r\n".join([HEADER, *jena_rows(3)]) + "\r\n").encode())
    data = load_jena_climate(str(path))
    assert data.values.shape == (3, 14) and data.timestamps.shape == (3,)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*nope.csv"):
        load_jena_climate(tmp_path / "nope.csv")


def test_wrong_header(tmp_path):
    header = HEADER.replace('"T (degC)"', '"Temp"')
    path = write(tmp_path, [header, *jena_rows(2)])
    with pytest.raises(ValueError, match="line 1 is not the Jena climate header"):
        load_jena_climate(path)


def test_non_numeric_value_names_line_and_column(tmp_path):
    rows = jena_rows(5)
    rows[2] = rows[2].replace("-7.02", "abc")
    with pytest.raises(ValueError, match="line 4: column 'T \\(degC\\)'.*'abc'"):
        load_jena_climate(write(tmp_path, [HEADER, *rows]))


def test_bad_dates_and_field_counts(tmp_path):
    rows = jena_rows(3)
    rows[1] = "2009-01-01 00:20:00" + rows[1][19:]
    with pytest.raises(ValueError, match="line 3: expected a date like"):
        load_jena_climate(write(tmp_path, [HEADER, *rows], "a.csv"))
    rows = jena_rows(3)
    rows[0] = rows[0].replace("01.01.2009", "32.13.2009")
    with pytest.raises(ValueError, match="invalid date"):
        load_jena_climate(write(tmp_path, [HEADER, *rows], "b.csv"))
    rows = jena_rows(3)
    rows[2] += ",1.0"
    with pytest.raises(ValueError, match="line 4: expected 14 values after the date, got 15"):
        load_jena_climate(write(tmp_path, [HEADER, *rows], "c.csv"))
    with pytest.raises(ValueError, match="no data rows"):
        load_jena_climate(write(tmp_path, [HEADER], "d.csv"))


def test_fill_gaps_interpolates_linearly():
    filled = fill_gaps(np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan]))
    assert filled.tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="non-NaN"):
        fill_gaps(np.array([np.nan]))


@pytest.mark.parametrize(
    ("name", "length", "first", "last_time", "column"),
    [
        ("co2", 2284, 316.1, np.datetime64("2001-12-29"), "co2"),
        ("sunspots", 309, 5.0, np.datetime64("2008"), "SUNACTIVITY"),
        ("nile", 100, 1120.0, np.datetime64("1970"), "volume"),
    ],
)
def test_statsmodels_series_load_offline(name, length, first, last_time, column):
    pytest.importorskip("statsmodels")
    timestamps, values, columns = load_dataset(name)
    assert values.shape == (length,) and values.dtype == np.float32
    assert timestamps.shape == (length,) and timestamps[-1] == last_time
    assert values[0] == np.float32(first) and columns == [column]
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(timestamps) > np.timedelta64(0))


def test_co2_gaps_are_filled_by_interpolation():
    sm_datasets = pytest.importorskip("statsmodels.datasets")
    raw = sm_datasets.co2.load_pandas().data["co2"].to_numpy()
    assert np.isnan(raw).sum() == 59  # what statsmodels ships
    _, values, _ = load_dataset("co2")
    gap = int(np.flatnonzero(np.isnan(raw))[0])  # week 6: 5 and 7 are known
    assert values[gap] == np.float32((raw[gap - 1] + raw[gap + 1]) / 2)
    known = ~np.isnan(raw)
    assert np.array_equal(values[known], raw[known].astype(np.float32))


def test_missing_statsmodels_names_the_extra(monkeypatch):
    for module in [m for m in sys.modules if m == "statsmodels" or m.startswith("statsmodels.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # makes `import statsmodels` fail
    with pytest.raises(ImportError, match=r"pip install 'fastrnn\[data\]'"):
        load_dataset("co2")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="`name`.*'co2', 'sunspots', 'nile'.*'airline'"):
        load_dataset("airline")


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
def test_jena_lines_end_only_at_line_breaks(tmp_path, char):
    """str.splitlines() also splits at these: a stray one inside a row made two short rows
    (a field-count error at the wrong line); it is a non-numeric value of its own line."""
    rows = jena_rows(6)
    rows[3] = rows[3].replace("-6.52", f"-6{char}52")
    with pytest.raises(ValueError, match="line 5: column 'T \\(degC\\)'"):
        load_jena_climate(write(tmp_path, [HEADER, *rows]))
