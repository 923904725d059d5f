"""Reading one series from a CSV file, and the seasonal period its time step implies.

:func:`read_csv` parses with pandas when it is installed (``pip install 'fastrnn[pandas]'``)
and with Python's ``csv`` module otherwise. Both give the same values and the same errors,
except that pandas pads a row shorter than the header with empty cells (the ``csv`` path
refuses it; an empty cell in the column read is still a missing value) and counts a quoted
cell spanning several lines as one line in the line numbers of its messages.
The file is read as CSV, never as lines: a quoted cell may hold commas and line breaks, and
only ``\\n``/``\\r\\n``/``\\r`` end a row (``str.splitlines`` would also split on ``\\x0b``,
``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029 inside cells). A malformed file
(an unclosed quote, a row of the wrong width, a cell over the ``csv`` module's 131,072
character limit, a NUL byte) is refused with its line number, never read in part, and so is a
value that only Python would read as a number (``1_000``).
"""

from __future__ import annotations

import csv
import os
import stat
from typing import Any, Optional, Union

import numpy as np

from ._checks import invalid, require
from .datasets import TimeSeriesData

__all__ = ["MISSING_VALUES", "csv_columns", "infer_season", "read_csv"]

# Cells read as a missing value (case-insensitive, surrounding spaces ignored).
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none"})
ENGINES = ("auto", "pandas", "python")
_SNIFF_CHARS = 4096


def _sniff(sample: str) -> Any:
    """The delimiter and quoting of the file (',', ';' or tab), else Excel's."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _rows_python(path: str, dialect: Any) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of every record, with the line each record starts on."""
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, dialect, strict=True)
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return rows
            except csv.Error as err:
                hint = " (an unclosed quote?)" if "end of data" in str(err) else ""
                raise ValueError(f"{path}, line {line}: malformed CSV: {err}{hint}.") from None
            rows.append((line, row))


def _rows_pandas(path: str, dialect: Any) -> Optional[list[tuple[int, list[str]]]]:
    """The records as pandas reads them (every cell a string); None when pandas cannot
    tokenise the file (the csv module then finds and reports the line)."""
    pd = require("pandas", "pandas", "read_csv(engine='pandas')")
    try:
        frame = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, na_filter=False,
            skip_blank_lines=False, encoding="utf-8-sig", sep=dialect.delimiter,
            quotechar=dialect.quotechar or '"', doublequote=dialect.doublequote,
            escapechar=dialect.escapechar, skipinitialspace=dialect.skipinitialspace,
            engine="c")
    except pd.errors.EmptyDataError:
        return []
    except pd.errors.ParserError:
        return None
    # pandas pads short rows with "" (the csv module does not): keep the widths it saw
    cells = frame.to_numpy(dtype=object)
    return [(number, list(row)) for number, row in enumerate(cells, start=1)]


def _check_file(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"No CSV file at {path!r}.") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path!r} is not a regular file (a directory, device or FIFO).")
    _refuse_nul(path)


def _refuse_nul(path: str, chunk: int = 1 << 20) -> None:
    """A NUL byte is in no text file; parsers disagree on it (pandas' C tokenizer ends the
    cell there, so ``2\x003`` would read as 2), so it is refused before any engine parses,
    with its line (rows counted by line breaks, ``\r`` alone counting where no ``\n`` came
    before)."""
    newlines = returns = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return
            at = block.find(b"\0")
            head = block if at < 0 else block[:at]
            newlines += head.count(b"\n")
            returns += head.count(b"\r")
            if at >= 0:
                line = (newlines if newlines else returns) + 1
                raise ValueError(f"{path}, line {line}: a NUL byte (\\x00): not a text file, "
                                 "or a damaged one.")


def csv_columns(path: Union[str, os.PathLike]) -> list[str]:
    """The column names in the header of a CSV file (its first non-blank record), as
    :func:`read_csv` sees them (delimiter detected, spaces around names stripped).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a regular file, not UTF-8, malformed or empty.
    """
    path = os.fspath(path)
    _check_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, _sniff(handle.read(_SNIFF_CHARS)), strict=True)
            handle.seek(0)
            for row in reader:
                if any(cell.strip() for cell in row):
                    return [name.strip() for name in row]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err}).") from None
    except csv.Error as err:
        raise ValueError(f"{path}, line {reader.line_num}: malformed CSV: {err}.") from None
    raise ValueError(f"{path} is empty: expected a header line and data rows.")


def _non_blank(rows: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    return [(n, row) for n, row in rows if any(cell.strip() for cell in row)]


def read_csv(
    path: Union[str, os.PathLike],
    column: str,
    time_column: Optional[str] = None,
    *,
    allow_missing: bool = False,
    engine: str = "auto",
) -> TimeSeriesData:
    """Reads one numeric column (and optionally a time column) of a CSV file with a header.

    The delimiter (``,``, ``;`` or tab) and quoting are detected; a UTF-8 byte order mark is
    skipped; blank lines are ignored. Missing values (empty, NA, N/A, NaN, null, None) are
    an error saying how many and on which lines, unless ``allow_missing`` (then they are
    NaN, for :func:`fill_gaps`).

    Args:
        path: the CSV file.
        column: the header name of the values to read.
        time_column: the header name of ISO 8601 times (``2020-01-31``, ``2020-01``,
            ``2020-01-31 12:00``; ``/`` may replace ``-``), strictly increasing.
        allow_missing: keep missing values as NaN instead of refusing them.
        engine: ``"pandas"`` (needs pandas), ``"python"`` (the ``csv`` module) or
            ``"auto"`` (pandas when installed).

    Returns:
        ``TimeSeriesData``: ``timestamps`` (T,) datetime64 or None without
        ``time_column``, ``values`` (T,) float64, ``columns`` ``[column]``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a regular file, not UTF-8, malformed CSV (unclosed quote, rows of
            another width than the header, an oversized cell), an unknown or duplicated
            column (the available ones are listed), non-numeric or missing values,
            unparsable or non-increasing times; with the line number.
    """
    path = os.fspath(path)
    if engine not in ENGINES:
        raise invalid("engine", f"one of {list(ENGINES)}", engine)
    if not isinstance(column, str):
        raise invalid("column", "a column name (str)", column)
    if time_column is not None and not isinstance(time_column, str):
        raise invalid("time_column", "None or a column name (str)", time_column)
    _check_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            dialect = _sniff(handle.read(_SNIFF_CHARS))
        rows = None
        if engine == "pandas" or (engine == "auto" and _have_pandas()):
            rows = _rows_pandas(path, dialect)
        if rows is None:
            rows = _rows_python(path, dialect)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err}).") from None
    except csv.Error as err:  # pragma: no cover - _rows_python reports these
        raise ValueError(f"{path}: malformed CSV: {err}.") from None
    return _parse(path, _non_blank(rows), column, time_column, allow_missing)


def _have_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _parse(path: str, rows: list[tuple[int, list[str]]], column: str,
           time_column: Optional[str], allow_missing: bool) -> TimeSeriesData:
    if not rows:
        raise ValueError(f"{path} is empty: expected a header line and data rows.")
    header = [name.strip() for name in rows[0][1]]
    available = ", ".join(repr(name) for name in header)
    for argument, name in (("column", column), ("time_column", time_column)):
        if name is None:
            continue
        if name not in header:
            raise ValueError(f"{path}: no column {name!r} (argument `{argument}`); "
                             f"available: {available}.")
        if header.count(name) > 1:
            raise ValueError(f"{path}: the header names column {name!r} "
                             f"{header.count(name)} times.")
    data = rows[1:]
    if not data:
        raise ValueError(f"{path} has a header but no data rows.")
    for number, row in data:
        if len(row) != len(header):
            raise ValueError(f"{path}, line {number}: {len(row)} fields, but the header has "
                             f"{len(header)}.")
    index = header.index(column)
    values = np.empty(len(data))
    bad: list[tuple[int, str]] = []
    for i, (number, row) in enumerate(data):
        cell = row[index].strip()
        if cell.lower() in MISSING_VALUES:
            values[i] = np.nan
            continue
        try:
            if "_" in cell:  # Python's digit separators ("1_000"): a number in no CSV
                raise ValueError(cell)
            values[i] = float(cell)
        except ValueError:
            bad.append((number, cell))
            continue
        if not np.isfinite(values[i]):
            bad.append((number, cell))
    if bad:
        number, cell = bad[0]
        more = f" ({len(bad)} such values in all)" if len(bad) > 1 else ""
        shown = cell if len(cell) <= 40 else cell[:37] + "..."
        raise ValueError(f"{path}, line {number}: column {column!r} has a non-numeric value "
                         f"{shown!r}{more}.")
    timestamps = None
    if time_column is not None:
        where = header.index(time_column)
        timestamps = _parse_times(path, [(n, row[where]) for n, row in data], time_column)
    missing = np.flatnonzero(np.isnan(values))
    if missing.size == values.size:
        raise ValueError(f"{path}: column {column!r} has no values.")
    if missing.size and not allow_missing:
        lines = [data[i][0] for i in missing[:5]]
        more = f" and {missing.size - 5} more" if missing.size > 5 else ""
        raise ValueError(
            f"{path}: column {column!r} has {missing.size} missing value(s) (lines "
            f"{', '.join(map(str, lines))}{more}); fill them in the file, or read with "
            "allow_missing=True and fill_gaps().")
    return TimeSeriesData(timestamps, values, [column])


def _parse_times(path: str, cells: list[tuple[int, str]], name: str) -> np.ndarray:
    parsed = []
    for number, cell in cells:
        text = cell.strip().replace("/", "-")
        try:
            # no unit given: months stay months, so the next step is a calendar month
            parsed.append(np.datetime64(text))
        except ValueError:
            shown = cell if len(cell) <= 40 else cell[:37] + "..."
            raise ValueError(
                f"{path}, line {number}: time column {name!r} has {shown!r}; expected an ISO "
                "8601 date or time such as 2020-01-31 or 2020-01-31 12:00.") from None
    times = np.array(parsed)  # the finest unit among the cells
    if np.isnat(times).any():
        number = cells[int(np.flatnonzero(np.isnat(times))[0])][0]
        raise ValueError(f"{path}, line {number}: time column {name!r} has a missing time.")
    steps = np.diff(times).astype(np.int64)
    if np.any(steps <= 0):
        first = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ValueError(f"{path}, line {cells[first][0]}: time column {name!r} is not "
                         "increasing (sort the rows by time first).")
    return times


def infer_season(timestamps: Optional[np.ndarray]) -> int:
    """The seasonal period implied by the sampling interval (the median step): the daily
    cycle for sub-daily data (24 for hourly, 48 for half-hourly), 7 for daily, 52 for
    weekly, 12 for monthly, 4 for quarterly, else 1 (no season: yearly, irregular, or
    fewer than 3 timestamps or none)."""
    if timestamps is None or len(timestamps) < 3:
        return 1
    timestamps = np.asarray(timestamps)
    if not np.issubdtype(timestamps.dtype, np.datetime64):
        raise invalid("timestamps", "datetime64 values", f"dtype {timestamps.dtype}")
    seconds = np.diff(timestamps.astype("datetime64[s]")).astype(np.int64)
    step = float(np.median(seconds))
    day = 86400.0
    if 0 < step < day and day % step == 0:
        return int(day // step)
    for low, high, season in ((day, day, 7), (7 * day, 7 * day, 52), (28 * day, 31 * day, 12),
                              (89 * day, 92 * day, 4)):
        if low <= step <= high:
            return season
    return 1
