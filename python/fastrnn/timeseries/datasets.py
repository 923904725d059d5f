"""Loaders for real series: the Jena climate CSV and the datasets shipped with statsmodels.

Nothing here downloads anything.
"""

from __future__ import annotations

import io
import os
import re
from typing import NamedTuple, Union

import numpy as np

from ._checks import invalid, require

JENA_COLUMNS = (
    "p (mbar)",
    "T (degC)",
    "Tpot (K)",
    "Tdew (degC)",
    "rh (%)",
    "VPmax (mbar)",
    "VPact (mbar)",
    "VPdef (mbar)",
    "sh (g/kg)",
    "H2OC (mmol/mol)",
    "rho (g/m**3)",
    "wv (m/s)",
    "max. wv (m/s)",
    "wd (deg)",
)

_JENA_DATE = re.compile(r"(\d\d)\.(\d\d)\.(\d{4}) (\d\d:\d\d:\d\d)")


class TimeSeriesData(NamedTuple):
    """A loaded series; unpacks as ``timestamps, values, columns = load_...(...)``.

    Attributes:
        timestamps: (T,) numpy datetime64.
        values: float32, (T, F) for multivariate data, (T,) for a single series.
        columns: the F column names (one name for a single series).
    """

    timestamps: np.ndarray
    values: np.ndarray
    columns: list[str]


def load_jena_climate(path: Union[str, os.PathLike]) -> TimeSeriesData:
    """Parses the Jena climate CSV (``jena_climate_2009_2016.csv``) used in Deep Learning
    with Python, chapter 10.

    The file has the header ``"Date Time","p (mbar)","T (degC)",...`` (see
    ``JENA_COLUMNS``), then one row per 10 minutes such as
    ``01.01.2009 00:10:00,996.52,-8.02,...`` (day.month.year). Values are kept as they
    are (the real file has a few -9999 wind speeds; clean them if you use those columns).

    Args:
        path: the CSV file; it is never downloaded.

    Returns:
        ``TimeSeriesData``: timestamps datetime64[s] (T,), values float32 (T, 14), and the
        14 column names. The temperature is ``values[:, 1]`` ("T (degC)").

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: wrong header, malformed date, wrong number of fields or a
            non-numeric value (the message gives the line number).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Jena climate CSV not found: {path!r} (no download is done).")
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n")
        body = handle.read()
    names = [name.strip().strip('"') for name in header.split(",")]
    expected = ["Date Time", *JENA_COLUMNS]
    if names != expected:
        raise ValueError(
            f"{path}: line 1 is not the Jena climate header: expected {expected}, got {names}."
        )
    # the file is opened with universal newlines, so rows end at "\n" only (splitlines()
    # would also split at \x0b, \x0c, \x1c-\x1e, \x85, U+2028 and U+2029 inside a row)
    lines = body.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline is not a row
    if not lines:
        raise ValueError(f"{path}: the file has a header but no data rows.")

    iso_dates = []
    numbers = []
    for number, line in enumerate(lines, start=2):
        date, _, rest = line.partition(",")
        match = _JENA_DATE.fullmatch(date.strip().strip('"'))
        if match is None:
            raise ValueError(
                f"{path}, line {number}: expected a date like '01.01.2009 00:10:00', "
                f"got {date!r}."
            )
        day, month, year, clock = match.groups()
        iso_dates.append(f"{year}-{month}-{day}T{clock}")
        numbers.append(rest)
    try:
        timestamps = np.array(iso_dates, dtype="datetime64[s]")
    except ValueError as err:
        raise ValueError(f"{path}: invalid date or time: {err}") from None

    for row, rest in enumerate(numbers):
        fields = rest.split(",")
        if len(fields) != len(JENA_COLUMNS):
            raise ValueError(
                f"{path}, line {row + 2}: expected {len(JENA_COLUMNS)} values after the "
                f"date, got {len(fields)}."
            )
    try:
        # One C-level parse of every numeric field (the date column is already stripped).
        values = np.loadtxt(io.StringIO("\n".join(numbers)), delimiter=",",
                               dtype=np.float32, ndmin=2)
    except ValueError:
        for row, rest in enumerate(numbers):
            for column, field in enumerate(rest.split(",")):
                try:
                    float(field)
                except ValueError:
                    raise ValueError(
                        f"{path}, line {row + 2}: column {JENA_COLUMNS[column]!r} has a "
                        f"non-numeric value {field.strip()!r}."
                    ) from None
        raise
    return TimeSeriesData(timestamps, values, list(JENA_COLUMNS))


def _years(years: np.ndarray) -> np.ndarray:
    return np.array([str(int(year)) for year in years], dtype="datetime64[Y]")


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Fills NaN gaps of a 1-D series by linear interpolation between the nearest valid
    neighbours (leading or trailing NaNs take the first or last valid value).

    Returns a new float array of the same shape.
    """
    values = np.array(values, dtype=np.float64)
    if values.ndim != 1:
        raise invalid("values", "a 1-D series", f"shape {values.shape}")
    missing = np.isnan(values)
    if missing.all():
        raise invalid("values", "at least one non-NaN value", "only NaN")
    if missing.any():
        steps = np.arange(values.size)
        values[missing] = np.interp(steps[missing], steps[~missing], values[~missing])
    return values


DATASETS = ("co2", "sunspots", "nile")


def load_dataset(name: str) -> TimeSeriesData:
    """Loads a real univariate series that ships inside statsmodels (works offline).

    * ``"co2"``: weekly atmospheric CO2 at Mauna Loa (ppmv), 1958-03-29 to 2001-12-29,
      2284 weeks; statsmodels has 59 missing weeks, filled here by linear interpolation
      in time between the neighbouring weeks (:func:`fill_gaps`). Season: 52 weeks.
    * ``"sunspots"``: yearly sunspot activity, 1700 to 2008, 309 years (cycle ~ 11).
    * ``"nile"``: yearly Nile flow at Aswan (10^8 m^3), 1871 to 1970, 100 years.

    Needs the optional dependency statsmodels: ``pip install 'fastrnn[data]'``.

    Returns:
        ``TimeSeriesData``: timestamps (T,) datetime64 ([D] for co2, [Y] otherwise),
        values float32 (T,), columns ``[column name]``.
    """
    if name not in DATASETS:
        raise invalid("name", f"one of {list(DATASETS)}", name)
    datasets = require("statsmodels.datasets", "data", f"load_dataset({name!r})")
    if name == "co2":
        frame = datasets.co2.load_pandas().data
        timestamps = frame.index.to_numpy().astype("datetime64[D]")
        values = fill_gaps(frame["co2"].to_numpy(dtype=np.float64))
        column = "co2"
    elif name == "sunspots":
        frame = datasets.sunspots.load_pandas().data
        timestamps = _years(frame["YEAR"].to_numpy())
        values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
        column = "SUNACTIVITY"
    else:
        frame = datasets.nile.load_pandas().data
        timestamps = _years(frame["year"].to_numpy())
        values = frame["volume"].to_numpy(dtype=np.float64)
        column = "volume"
    return TimeSeriesData(timestamps, values.astype(np.float32), [column])
