"""fastrnn.timeseries.read_csv on both engines (pandas and the csv module), csv_columns and
infer_season (the reader that split CSV text into lines and read a file
with an unclosed quote in part)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fastrnn.timeseries import csv_columns, infer_season, read_csv

ENGINES = ["python", "pandas"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    if request.param == "pandas":
        pytest.importorskip("pandas")
    return request.param


def monthly(n: int = 300) -> tuple[list[str], np.ndarray]:
    """Lines of a file: date, note, value (the values are 0.5, 1.5, ...)."""
    values = np.arange(n) + 0.5
    dates = np.datetime64("2000-01") + np.arange(n).astype("timedelta64[M]")
    return [f"{d},note {i},{v}" for i, (d, v) in enumerate(zip(dates, values))], values


def write(path: Path, lines: list[str], header: str = "date,note,value") -> Path:
    path.write_bytes(("\n".join([header, *lines]) + "\n").encode("utf-8"))
    return path


def test_reads_values_and_times(tmp_path, engine):
    lines, values = monthly(30)
    data = read_csv(write(tmp_path / "a.csv", lines), "value", "date", engine=engine)
    assert data.values.dtype == np.float64 and np.array_equal(data.values, values)
    assert data.timestamps.dtype == np.dtype("datetime64[M]")
    assert data.timestamps[0] == np.datetime64("2000-01") and data.columns == ["value"]
    assert read_csv(tmp_path / "a.csv", "value", engine=engine).timestamps is None


def test_an_unclosed_quote_is_refused_with_its_line(tmp_path, engine):
    """The issue's file: `10.3,"hi` at data row 271 of 300. The old reader split the text
    into lines and read 271 rows; both engines now refuse it and name the line."""
    lines, _ = monthly(300)
    lines[270] = '2022-07,10.3,"hi'  # data row 271 is line 272
    path = write(tmp_path / "q.csv", lines)
    with pytest.raises(ValueError, match=r"line 272: malformed CSV.*unclosed quote"):
        read_csv(path, "value", "date", engine=engine)


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                                  "\u2029", "\n", "\r\n", ","])
def test_line_separators_inside_quoted_cells_stay_in_the_cell(tmp_path, engine, char):
    lines, values = monthly(50)
    lines[10] = f'2000-11,"a{char}b",10.5'
    if char not in (",", "\n", "\r\n"):  # unquoted, these are part of the cell too
        lines[20] = f"2001-09,x{char}y,20.5"
    data = read_csv(write(tmp_path / "s.csv", lines), "value", "date", engine=engine)
    assert np.array_equal(data.values, values)


def test_line_numbers_count_physical_lines(tmp_path):
    lines, _ = monthly(20)
    lines[3] = '2000-04,"two\nlines",3.5'
    lines[8] = "2000-09,note,eight"
    path = write(tmp_path / "n.csv", lines)
    with pytest.raises(ValueError, match="line 11: column 'value' has a non-numeric value "
                                         "'eight'"):
        read_csv(path, "value", engine="python")  # header + 8 records + 1 extra line


def test_rows_of_another_width(tmp_path, engine):
    lines, _ = monthly(10)
    lines[4] = "2000-05,note,5.5,extra"
    with pytest.raises(ValueError, match="line 6: 4 fields, but the header has 3"):
        read_csv(write(tmp_path / "long.csv", lines), "value", engine=engine)
    lines, _ = monthly(10)
    lines[4] = "2000-05,note"  # short: the csv module refuses it, pandas pads it
    with pytest.raises(ValueError, match=r"line 6: 2 fields, but the header has 3|missing "
                                         r"value\(s\) \(lines 6\)"):
        read_csv(write(tmp_path / "short.csv", lines), "value", engine=engine)


def test_cells_over_the_csv_field_limit(tmp_path, engine):
    lines, values = monthly(10)
    lines[2] = f"2000-03,{'x' * 200_000},2.5"
    path = write(tmp_path / "big.csv", lines)
    if engine == "python":
        with pytest.raises(ValueError, match="line 4: malformed CSV: field larger than field "
                                             "limit"):
            read_csv(path, "value", engine=engine)
    else:  # pandas has no such limit; the cell is not the one read
        assert np.array_equal(read_csv(path, "value", engine=engine).values, values)


def test_nul_bytes_and_encodings(tmp_path, engine):
    lines, values = monthly(10)
    path = write(tmp_path / "bom.csv", lines)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a UTF-8 byte order mark
    assert np.array_equal(read_csv(path, "value", "date", engine=engine).values, values)
    (tmp_path / "latin.csv").write_bytes(b"date,value\n2000-01,caf\xe9\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_csv(tmp_path / "latin.csv", "value", engine=engine)
    (tmp_path / "nul.csv").write_bytes(b"date,value\n2000-01,1\n2000-02,2\x003\n")
    with pytest.raises(ValueError, match="line 3: a NUL byte"):
        read_csv(tmp_path / "nul.csv", "value", engine=engine)
    (tmp_path / "nul_cr.csv").write_bytes(b"date,value\r2000-01,1\r2000-02,\x00\r")
    with pytest.raises(ValueError, match="line 3: a NUL byte"):
        read_csv(tmp_path / "nul_cr.csv", "value", engine=engine)
    with pytest.raises(ValueError, match="line 3: a NUL byte"):
        csv_columns(tmp_path / "nul.csv")
    (tmp_path / "underscore.csv").write_bytes(b"date,value\n2000-01,1\n2000-02,1_000\n")
    with pytest.raises(ValueError, match="line 3: column 'value' has a non-numeric value '1_000'"):
        read_csv(tmp_path / "underscore.csv", "value", engine=engine)


def test_delimiters_blank_lines_spaces_and_missing_values(tmp_path, engine):
    path = tmp_path / "semi.csv"
    path.write_text("t ; x\n\n1;  2.5 \n2;NA\n\n3;4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 missing value\(s\) \(lines 4\)"):
        read_csv(path, "x", engine=engine)
    data = read_csv(path, "x", allow_missing=True, engine=engine)
    assert np.array_equal(data.values, [2.5, np.nan, 4.0], equal_nan=True)
    tabs = tmp_path / "tabs.tsv"
    tabs.write_text("a\tb\n1\t2\n3\t4\n", encoding="utf-8")
    assert np.array_equal(read_csv(tabs, "b", engine=engine).values, [2.0, 4.0])


def test_both_engines_agree_on_a_messy_file(tmp_path):
    pytest.importorskip("pandas")
    lines, _ = monthly(40)
    lines[3] = '2000-04,"quoted, with comma",3.5'
    lines[5] = '2000-06,"say ""hi""",5.5'
    lines[7] = "2000-08,note,"
    lines[9] = "2000-10,note, 1e3 "
    path = write(tmp_path / "m.csv", lines)
    python = read_csv(path, "value", "date", allow_missing=True, engine="python")
    pandas = read_csv(path, "value", "date", allow_missing=True, engine="pandas")
    assert np.array_equal(python.values, pandas.values, equal_nan=True)
    assert np.array_equal(python.timestamps, pandas.timestamps)
    assert python.values[9] == 1000.0 and np.isnan(python.values[7])


def test_the_default_engine_works_without_pandas(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    lines, values = monthly(10)
    path = write(tmp_path / "a.csv", lines)
    assert np.array_equal(read_csv(path, "value").values, values)
    with pytest.raises(ImportError, match=r"fastrnn\[pandas\]"):
        read_csv(path, "value", engine="pandas")


def test_argument_and_file_errors(tmp_path, engine):
    lines, _ = monthly(10)
    path = write(tmp_path / "a.csv", lines)
    with pytest.raises(ValueError, match=r"no column 'price' \(argument `column`\); available: "
                                         r"'date', 'note', 'value'"):
        read_csv(path, "price", engine=engine)
    with pytest.raises(ValueError, match="`engine`"):
        read_csv(path, "value", engine="fast")
    with pytest.raises(ValueError, match="`column`"):
        read_csv(path, 2)
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv", "value", engine=engine)
    with pytest.raises(ValueError, match="not a regular file"):
        read_csv(tmp_path, "value", engine=engine)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    with pytest.raises(ValueError, match="not a regular file"):
        read_csv(fifo, "value", engine=engine)
    write(tmp_path / "dup.csv", ["1,2"], header="value,value")
    with pytest.raises(ValueError, match="names column 'value' 2 times"):
        read_csv(tmp_path / "dup.csv", "value", engine=engine)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_csv(tmp_path / "empty.csv", "value", engine=engine)
    (tmp_path / "header.csv").write_text("a,value\n")
    with pytest.raises(ValueError, match="no data rows"):
        read_csv(tmp_path / "header.csv", "value", engine=engine)


def test_bad_and_unsorted_times(tmp_path, engine):
    lines, _ = monthly(10)
    lines[3] = "March,note,1"
    with pytest.raises(ValueError, match="line 5: time column 'date' has 'March'"):
        read_csv(write(tmp_path / "t.csv", lines), "value", "date", engine=engine)
    lines, _ = monthly(10)
    lines[3], lines[4] = lines[4], lines[3]
    with pytest.raises(ValueError, match="line 6: time column 'date' is not increasing"):
        read_csv(write(tmp_path / "u.csv", lines), "value", "date", engine=engine)


def test_csv_columns(tmp_path):
    (tmp_path / "a.csv").write_text("\n x ; y \n1;2\n", encoding="utf-8")
    assert csv_columns(tmp_path / "a.csv") == ["x", "y"]
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        csv_columns(tmp_path / "e.csv")


def test_infer_season():
    def every(unit, n=10):
        return np.datetime64("2001-01-01") + np.arange(n) * np.timedelta64(1, unit)

    assert infer_season(every("h")) == 24 and infer_season(every("D")) == 7
    assert infer_season(every("W")) == 52 and infer_season(None) == 1
    assert infer_season(every("D", 2)) == 1
    with pytest.raises(ValueError, match="`timestamps`"):
        infer_season(np.arange(5))
