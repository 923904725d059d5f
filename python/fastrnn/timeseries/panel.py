"""Many series at once: a long table (``unique_id, ds, y``) or a list of arrays, checked,
with each series' own frequency, per-series scaling, and windows drawn across all series.

Dimension letters: S = number of series, n_i = length of series i, N = sum of n_i,
L = window (input steps), H = horizon, C = covariate columns.

Every check names the series id and the problem; nothing is dropped or reordered silently:

* duplicate (id, time) rows, times not increasing within a series, gaps (a missing period at
  the series' own frequency), NaN or infinite targets, non-numeric target or covariate
  columns raise ``ValueError``;
* unless ``fill_gaps`` asks to fill the missing values: ``"ffill"`` (the last value before,
  pandas' and statsforecast's name), ``"zero"`` or ``"interpolate"`` (linear in time
  between the neighbours, darts' ``MissingValuesFiller`` default). A missing value is a
  period absent from the table (the row is inserted, at the series' own frequency: its
  smallest step) or a NaN target or time-varying covariate; ``panel.filled`` counts the
  filled target values per series. Leading missing values: ``"interpolate"`` takes the
  first value, ``"ffill"`` has none to carry and raises;
* rows of one series need not be contiguous in the table (they are grouped by id, keeping
  each series' row order), but within a series the times must increase.

Times are integers (forecasts continue with the next integers) or dates (``datetime64``, or
strings such as ``1990-01-01``). A series' frequency is inferred from its own times:
calendar months (monthly, quarterly = 3, yearly = 12 months; period-start or month-end dates
keep their convention) or a fixed step (days, hours, weeks...). A series with a single time
borrows the most common frequency of the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ._checks import invalid, positive_int, require

SCALERS = ("standard", "robust", "mean_abs", "none")
FILL_GAPS = ("ffill", "zero", "interpolate")
_MAX_FILL_RATIO = 10  # a filled series may be at most 10x (+ 1000) its rows: no huge grids


# ----------------------------------------------------------------------------- frequencies
def _months(times: np.ndarray) -> np.ndarray:
    """Calendar month index (year * 12 + month - 1) of datetime64 values."""
    return times.astype("datetime64[M]").astype(np.int64)


def _month_end(times: np.ndarray) -> bool:
    days = times.astype("datetime64[D]")
    return bool(np.all((days + 1).astype("datetime64[M]") != days.astype("datetime64[M]")))


def _calendar_offset(times: np.ndarray) -> np.ndarray:
    """The part of each time after its month's first instant (timedelta64)."""
    return times - times.astype("datetime64[M]").astype(times.dtype)


def infer_frequency(times: np.ndarray, series_id: Any = "", allow_gaps: bool = False
                    ) -> Optional[tuple[str, int]]:
    """A series' frequency from its increasing times: ``("int", step)``, ``("months", k)``
    or ``("ns", step)`` (the smallest step); None for a single time. Raises on irregular
    times, and on gaps unless ``allow_gaps`` (then every step must be a multiple of the
    smallest)."""
    if len(times) < 2:
        return None
    name = f"series {series_id!r}: " if series_id != "" else ""
    if np.issubdtype(times.dtype, np.datetime64):
        times = times.astype("datetime64[ns]")
        months = _months(times)
        dmonths = np.diff(months)
        same_offset = len(set(_calendar_offset(times).astype(np.int64).tolist())) == 1
        if dmonths.min() > 0 and (same_offset or _month_end(times)):
            step = int(dmonths.min())
            if step >= 1 and np.all(dmonths % step == 0):
                if not allow_gaps:
                    _check_gaps(dmonths, step, times, name)
                return ("months", step)
        deltas = np.diff(times.astype(np.int64))
        step = int(deltas.min())
        if np.all(deltas % step == 0):
            if not allow_gaps:
                _check_gaps(deltas, step, times, name)
            return ("ns", step)
        raise ValueError(f"{name}the times are irregular (steps of "
                         f"{sorted(set(np.diff(times).tolist()))[:3]}...): expected a fixed "
                         "step or calendar months.")
    deltas = np.diff(times.astype(np.int64))
    step = int(deltas.min())
    if not allow_gaps:
        _check_gaps(deltas, step, times, name)
    elif np.any(deltas % step):
        raise ValueError(f"{name}the times are irregular (steps of "
                         f"{sorted(set(deltas.tolist()))[:3]}...): expected multiples of "
                         "one step.")
    return ("int", step)


def _check_gaps(deltas: np.ndarray, step: int, times: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(deltas != step)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{name}a gap after time {times[k]} (next time {times[k + 1]}, "
                         f"expected one step later): fill the missing periods (e.g. by "
                         "interpolation) or drop the series; nothing is filled silently.")


def extend_times(times: np.ndarray, freq: Optional[tuple[str, int]], steps: int) -> np.ndarray:
    """The ``steps`` times after the last one, at the series' frequency: (steps,)."""
    ahead = np.arange(1, steps + 1)
    last = times[-1]
    if freq is None:
        raise ValueError("cannot extend the times of a series without a known frequency.")
    kind, step = freq
    if kind == "int":
        return (int(last) + step * ahead).astype(times.dtype)
    if kind == "ns":
        return (last.astype("datetime64[ns]") + np.timedelta64(step, "ns") * ahead).astype(
            times.dtype)
    last = np.datetime64(last, "ns")
    month = last.astype("datetime64[M]")
    target = month + (step * ahead).astype("timedelta64[M]")
    if _month_end(np.array([last])) and last.astype("datetime64[D]") != month.astype(
            "datetime64[D]"):
        # month-end dates stay month ends (Jan 31 -> Feb 28 -> Mar 31)
        ends = (target + 1).astype("datetime64[D]") - 1
        offset = last - last.astype("datetime64[D]").astype("datetime64[ns]")
        return (ends.astype("datetime64[ns]") + offset).astype(times.dtype)
    offset = last - month.astype("datetime64[ns]")
    return (target.astype("datetime64[ns]") + offset).astype(times.dtype)


def _fill_missing(x: np.ndarray, method: str, series_id: Any, what: str) -> np.ndarray:
    """A copy of ``x`` (n,) with its NaN filled by ``method``."""
    missing = np.isnan(x)
    if not missing.any():
        return x
    if missing.all():
        raise ValueError(f"series {series_id!r}: {what} has no values to fill from.")
    x = x.copy()
    index = np.arange(x.size)
    if method == "zero":
        x[missing] = 0.0
    elif method == "interpolate":
        x[missing] = np.interp(index[missing], index[~missing], x[~missing])
    else:  # ffill
        if missing[0]:
            raise ValueError(f"series {series_id!r}: {what} starts with a missing value: "
                             "fill_gaps='ffill' has no earlier value to carry (drop the "
                             "leading rows, or use 'interpolate' or 'zero').")
        x = x[np.maximum.accumulate(np.where(missing, 0, index))]
    return x


def _fill_series(series_id: Any, values: np.ndarray, times: np.ndarray,
                 covariates: Optional[np.ndarray], method: str
                 ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], int]:
    """One series on its full time grid (the smallest step), missing values filled:
    ``(values, times, covariates, number of filled target values)``."""
    freq = infer_frequency(times, series_id, allow_gaps=True)
    if freq is not None:
        kind, step = freq
        if kind == "months":
            months = _months(times.astype("datetime64[ns]"))
            position = (months - months[0]) // step
        else:
            raw = times.astype(np.int64)
            position = (raw - raw[0]) // step
        size = int(position[-1]) + 1
        if size > _MAX_FILL_RATIO * len(times) + 1000:
            raise ValueError(f"series {series_id!r}: filling its gaps would make {size} "
                             f"periods out of {len(times)} rows (smallest step {step} "
                             f"{'months' if kind == 'months' else kind}): check the times.")
        grid = np.concatenate([times[:1], extend_times(times[:1], freq, size - 1)]) \
            if size > 1 else times[:1]
        if not np.array_equal(grid[position], times):
            raise ValueError(f"series {series_id!r}: the times are irregular (not on one "
                             "grid of the smallest step): cannot fill the gaps.")
        full = np.full(size, np.nan)
        full[position] = values
        if covariates is not None:
            cov = np.full((size, covariates.shape[1]), np.nan)
            cov[position] = covariates
            covariates = cov
        values, times = full, grid
    filled = int(np.isnan(values).sum())
    values = _fill_missing(values, method, series_id, "the target")
    if covariates is not None:
        covariates = np.stack([_fill_missing(covariates[:, j], method, series_id,
                                             f"covariate {j}")
                               for j in range(covariates.shape[1])], axis=1)
    return values, times, covariates, filled


# ----------------------------------------------------------------------------- the panel
def _column(df: Any, name: str, argument: str) -> np.ndarray:
    columns = list(df.columns)
    if name not in columns:
        raise invalid(argument, f"a column of the table (one of {columns})", name)
    column = df[name]
    return column.to_numpy() if hasattr(column, "to_numpy") else np.asarray(column)


def _as_times(raw: np.ndarray, column: str) -> np.ndarray:
    """Integers stay integers; datetimes and date strings become datetime64[ns]."""
    if np.issubdtype(raw.dtype, np.datetime64):
        return raw.astype("datetime64[ns]")
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
        return raw.astype(np.int64)
    if raw.dtype.kind == "M" or raw.dtype == object or raw.dtype.kind in "US":
        cells = [str(v) for v in raw]
        try:
            return np.array([int(c) for c in cells], dtype=np.int64)
        except ValueError:
            pass
        try:
            return np.array(cells, dtype="datetime64[ns]")
        except ValueError:
            pass
        try:  # pandas.Timestamp objects, time zones, other formats
            pd = require("pandas", "pandas", "parsing these times")
            return pd.to_datetime(raw).to_numpy().astype("datetime64[ns]")
        except (ValueError, TypeError):
            pass
    raise ValueError(f"the time column {column!r} holds neither integers nor dates "
                     f"(first value {raw[0]!r}).")


def _numeric(raw: np.ndarray, column: str, ids: np.ndarray) -> np.ndarray:
    if raw.dtype.kind in "iufb":
        return raw.astype(np.float64)
    out = np.empty(len(raw), dtype=np.float64)
    for k, value in enumerate(raw):
        try:
            out[k] = float(value) if value is not None else np.nan
        except (TypeError, ValueError):
            raise ValueError(f"series {ids[k]!r}: column {column!r} is not numeric (value "
                             f"{value!r}).") from None
    return out


class Panel:
    """S series with their ids, times, frequencies and covariates.

    Build it with :meth:`from_long` (a pandas or polars DataFrame in long format) or
    :meth:`from_arrays`. ``values[i]`` is series i as float64 ``(n_i,)``; ``times[i]`` its
    times ``(n_i,)`` (int64 or datetime64[ns]); ``covariates[i]`` ``(n_i, C)`` or None;
    ``static`` ``(S, C_static)`` or None; ``filled`` (S,) the number of target values
    ``fill_gaps`` filled in each series (zeros without it).

    ``fill_gaps``: None (missing periods and NaN values raise, naming the series) or
    ``"ffill"``, ``"zero"``, ``"interpolate"`` (see the module's documentation).
    """

    def __init__(self, ids: Sequence[Any], values: list[np.ndarray], times: list[np.ndarray],
                 covariates: Optional[list[np.ndarray]] = None,
                 covariate_names: Sequence[str] = (), static: Optional[np.ndarray] = None,
                 static_names: Sequence[str] = (), columns: tuple[str, str, str] = (
                     "unique_id", "ds", "y"), fill_gaps: Optional[str] = None) -> None:
        if fill_gaps is not None and fill_gaps not in FILL_GAPS:
            raise invalid("fill_gaps", f"None or one of {FILL_GAPS}", fill_gaps)
        if fill_gaps is not None:  # filled copies: the caller's lists stay as they are
            values, times = list(values), list(times)
            covariates = None if covariates is None else list(covariates)
        self.ids = list(ids)
        self.values = values
        self.times = times
        self.covariates = covariates
        self.covariate_names = list(covariate_names)
        self.static = static
        self.static_names = list(static_names)
        self.columns = columns
        if len(set(self.ids)) != len(self.ids):
            seen = Counter(self.ids)
            raise ValueError(f"series {next(k for k, c in seen.items() if c > 1)!r} appears "
                             "twice in the ids.")
        freqs = []
        self.filled = np.zeros(len(self.ids), dtype=np.int64)
        for i, (sid, v, t) in enumerate(zip(self.ids, values, times)):
            if len(v) == 0:
                raise ValueError(f"series {sid!r} has no values.")
            self._check_order(sid, t)
            if fill_gaps is not None:
                v, t, c, self.filled[i] = _fill_series(
                    sid, v, t, None if covariates is None else covariates[i], fill_gaps)
                values[i], times[i] = v, t
                if covariates is not None:
                    covariates[i] = c
            if covariates is not None and not np.all(np.isfinite(covariates[i])):
                col = int(np.flatnonzero(~np.isfinite(covariates[i]).all(axis=0))[0])
                name = self.covariate_names[col] if col < len(self.covariate_names) else col
                raise ValueError(f"series {sid!r}: covariate {name!r} has NaN or infinite "
                                 "values (fill_gaps= fills NaN).")
            bad = np.flatnonzero(~np.isfinite(v))
            if bad.size:
                raise ValueError(f"series {sid!r}: the target is NaN or infinite at time "
                                 f"{t[bad[0]]} ({bad.size} such values); fill or drop them "
                                 "first, e.g. fill_gaps='interpolate' (nothing is dropped "
                                 "silently).")
            freqs.append(infer_frequency(t, sid))
        known = [f for f in freqs if f is not None]
        common = Counter(known).most_common(1)[0][0] if known else None
        if common is None and times and np.issubdtype(times[0].dtype, np.integer):
            common = ("int", 1)
        self.freqs = [f if f is not None else common for f in freqs]
        kinds = {np.issubdtype(t.dtype, np.datetime64) for t in times}
        if len(kinds) > 1:
            raise ValueError("some series have dates and others integer times.")

    @staticmethod
    def _check_order(sid: Any, t: np.ndarray) -> None:
        steps = np.diff(t.astype(np.int64)) if len(t) > 1 else np.zeros(0, np.int64)
        if np.any(steps == 0):
            k = int(np.flatnonzero(steps == 0)[0])
            raise ValueError(f"series {sid!r}: duplicate rows for time {t[k]}.")
        if np.any(steps < 0):
            k = int(np.flatnonzero(steps < 0)[0])
            raise ValueError(f"series {sid!r}: times are not increasing ({t[k]} then "
                             f"{t[k + 1]}); sort the rows by id and time first.")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_long(cls, df: Any, id_col: str = "unique_id", time_col: str = "ds",
                  target_col: str = "y", covariates: Sequence[str] = (),
                  static: Sequence[str] = (), fill_gaps: Optional[str] = None) -> Panel:
        """From a long table (pandas or polars DataFrame): one row per (series, time).
        ``covariates`` are time-varying numeric columns, ``static`` columns constant within
        each series; ``fill_gaps`` as in :class:`Panel`."""
        if not hasattr(df, "columns"):
            raise invalid("df", "a pandas or polars DataFrame", type(df).__name__)
        names = [id_col, time_col, target_col, *covariates, *static]
        arguments = ["id_col", "time_col", "target_col", *["covariates"] * len(covariates),
                     *["static"] * len(static)]
        columns = {name: _column(df, name, arg) for name, arg in zip(names, arguments)}
        return cls.from_columns(columns, id_col, time_col, target_col, covariates, static,
                                fill_gaps)

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray], id_col: str = "unique_id",
                     time_col: str = "ds", target_col: str = "y",
                     covariates: Sequence[str] = (), static: Sequence[str] = (),
                     fill_gaps: Optional[str] = None) -> Panel:
        """From equal-length column arrays by name (the long table's columns)."""
        for name, arg in ((id_col, "id_col"), (time_col, "time_col"),
                          (target_col, "target_col"), *((c, "covariates") for c in covariates),
                          *((c, "static") for c in static)):
            if name not in columns:
                raise invalid(arg, f"a column of the table (one of {list(columns)})", name)
        ids = np.asarray(columns[id_col])
        if len(ids) == 0:
            raise invalid("df", "at least one row", "an empty table")
        times = _as_times(np.asarray(columns[time_col]), time_col)
        y = _numeric(np.asarray(columns[target_col]), target_col, ids)
        cov = [_numeric(np.asarray(columns[c]), c, ids) for c in covariates]
        stat = [_numeric(np.asarray(columns[c]), c, ids) for c in static]
        # group rows by id, first-appearance order, each group keeping its row order
        keys = np.array([str(type(v).__name__) + ":" + str(v) for v in ids]) \
            if ids.dtype == object else ids
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rank = np.empty_like(first)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        order = np.argsort(rank[inverse.ravel()], kind="stable")
        bounds = np.flatnonzero(np.diff(rank[inverse.ravel()][order])) + 1
        groups = np.split(order, bounds)
        series_ids = [ids[g[0]].item() if hasattr(ids[g[0]], "item") else ids[g[0]]
                      for g in groups]
        values = [y[g] for g in groups]
        series_times = [times[g] for g in groups]
        covs = [np.stack([c[g] for c in cov], axis=1) for g in groups] if cov else None
        static_values = None
        if stat:
            static_values = np.empty((len(groups), len(stat)))
            for i, (sid, g) in enumerate(zip(series_ids, groups)):
                for j, c in enumerate(stat):
                    if not np.all(c[g] == c[g[0]]):
                        raise ValueError(f"series {sid!r}: static column {static[j]!r} "
                                         "changes within the series.")
                    static_values[i, j] = c[g[0]]
        return cls(series_ids, values, series_times, covs, covariates, static_values, static,
                   (id_col, time_col, target_col), fill_gaps)

    @classmethod
    def from_arrays(cls, arrays: Sequence[Any], ids: Optional[Sequence[Any]] = None,
                    starts: Optional[Sequence[Any]] = None, fill_gaps: Optional[str] = None
                    ) -> Panel:
        """From a list of 1-D arrays; ids default to 0..S-1 and times to 0..n_i-1 (or
        ``starts[i]`` + 0..n_i-1 for integer starts); ``fill_gaps`` fills NaN values."""
        if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
            arrays = list(arrays)
        if len(arrays) == 0:
            raise invalid("arrays", "a non-empty list of 1-D arrays", "an empty list")
        ids = list(range(len(arrays))) if ids is None else list(ids)
        if len(ids) != len(arrays):
            raise invalid("ids", f"{len(arrays)} ids, one per array", f"{len(ids)} ids")
        values, times = [], []
        for k, (sid, a) in enumerate(zip(ids, arrays)):
            a = np.asarray(a)
            if a.ndim != 1:
                raise ValueError(f"series {sid!r}: expected a 1-D array, got shape {a.shape}.")
            if a.dtype.kind not in "iufb":
                raise ValueError(f"series {sid!r}: values are not numeric (dtype {a.dtype}).")
            values.append(a.astype(np.float64))
            start = 0 if starts is None else int(starts[k])
            times.append(np.arange(start, start + len(a), dtype=np.int64))
        return cls(ids, values, times, fill_gaps=fill_gaps)

    @classmethod
    def coerce(cls, data: Any, id_col: str = "unique_id", time_col: str = "ds",
               target_col: str = "y", covariates: Sequence[str] = (),
               static: Sequence[str] = (), fill_gaps: Optional[str] = None) -> Panel:
        """A Panel from a long DataFrame, a list of 1-D arrays (NaN filled by
        ``fill_gaps`` when given) or a Panel (returned as it is)."""
        if isinstance(data, Panel):
            return data
        if hasattr(data, "columns"):
            return cls.from_long(data, id_col, time_col, target_col, covariates, static,
                                 fill_gaps)
        if isinstance(data, (list, tuple, np.ndarray)):
            return cls.from_arrays(data, fill_gaps=fill_gaps)
        raise invalid("df", "a DataFrame (pandas or polars) in long format or a list of 1-D "
                      "arrays", type(data).__name__)

    # -- views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(v) for v in self.values], dtype=np.int64)

    @property
    def has_dates(self) -> bool:
        return bool(self.times) and np.issubdtype(self.times[0].dtype, np.datetime64)

    def future_times(self, horizon: int) -> list[np.ndarray]:
        """The ``horizon`` times after each series' end, (H,) each."""
        return [extend_times(t, f, horizon) for t, f in zip(self.times, self.freqs)]

    def head(self, ends: Sequence[int]) -> Panel:
        """Each series cut to its first ``ends[i]`` values (``ends[i]`` >= 1)."""
        cut = Panel.__new__(Panel)
        cut.__dict__.update(self.__dict__)
        cut.values = [v[:e] for v, e in zip(self.values, ends)]
        cut.times = [t[:e] for t, e in zip(self.times, ends)]
        if self.covariates is not None:
            cut.covariates = [c[:e] for c, e in zip(self.covariates, ends)]
        return cut

    def select(self, ids: Sequence[Any]) -> Panel:
        """The series named by ``ids``, in that order (a ValueError names the first id the
        panel does not have)."""
        where = {sid: k for k, sid in enumerate(self.ids)}
        ids = list(ids)
        missing = [sid for sid in ids if not _hashable(sid) or sid not in where]
        if missing:
            raise ValueError(f"unknown series id {missing[0]!r} (the panel has "
                             f"{len(self.ids)} series, e.g. {self.ids[:3]!r}).")
        if len(set(ids)) != len(ids):
            raise ValueError(f"series {Counter(ids).most_common(1)[0][0]!r} is asked for twice.")
        rows = [where[sid] for sid in ids]
        part = Panel.__new__(Panel)
        part.__dict__.update(self.__dict__)
        part.ids = [self.ids[k] for k in rows]  # the panel's own id objects
        part.values = [self.values[k] for k in rows]
        part.times = [self.times[k] for k in rows]
        part.freqs = [self.freqs[k] for k in rows]
        part.filled = self.filled[rows]
        if self.covariates is not None:
            part.covariates = [self.covariates[k] for k in rows]
        if self.static is not None:
            part.static = self.static[rows]
        return part

    def season(self) -> list[int]:
        """Each series' seasonal period from its frequency (12 monthly, 4 quarterly,
        7 daily, 24 hourly, 52 weekly; 1 otherwise)."""
        out = []
        for f in self.freqs:
            if f is None or f[0] == "int":
                out.append(1)
            elif f[0] == "months":
                out.append({1: 12, 3: 4}.get(f[1], 1))
            else:
                hour, day = 3600 * 10**9, 86400 * 10**9
                out.append({hour: 24, day: 7, 7 * day: 52, hour // 2: 48}.get(f[1], 1))
        return out

    def __repr__(self) -> str:
        lengths = self.lengths
        return (f"Panel({len(self)} series, lengths {lengths.min()}..{lengths.max()}, "
                f"{'dates' if self.has_dates else 'integer times'})")


# ----------------------------------------------------------------------------- scaling
def fit_scalers(values: Sequence[np.ndarray], kind: str = "standard") -> np.ndarray:
    """Per-series location and scale, (S, 2), from each series' values (its training part).

    * ``standard``: mean and standard deviation;
    * ``robust``: median and interquartile range / 1.349 (the standard deviation for
      normal data), robust to outliers;
    * ``mean_abs``: location 0 and the mean absolute value (keeps the sign and zero);
    * ``none``: 0 and 1.

    A zero scale (a constant series) becomes 1, so a constant series maps to zeros.
    """
    if kind not in SCALERS:
        raise invalid("scaler", f"one of {SCALERS}", kind)
    stats = np.empty((len(values), 2))
    for i, v in enumerate(values):
        if kind == "standard":
            loc, scale = v.mean(), v.std()
        elif kind == "robust":
            q1, loc, q3 = np.percentile(v, [25, 50, 75])
            scale = (q3 - q1) / 1.349
            if scale == 0:
                scale = np.mean(np.abs(v - loc))
        elif kind == "mean_abs":
            loc, scale = 0.0, np.mean(np.abs(v))
        else:
            loc, scale = 0.0, 1.0
        stats[i] = loc, scale if scale > 0 and np.isfinite(scale) else 1.0
    return stats


# ----------------------------------------------------------------------------- windows
class PanelWindows:
    """Training windows across all series: (series, origin) pairs, no window copied until a
    batch is gathered.

    A window of series i at origin t has inputs ``z_i[t - L : t]`` and targets
    ``z_i[t : t + H]`` (``z`` the flat concatenation of every series, ``offsets[i]`` where
    series i starts). Origins run from ``max(1, min(L, n_i - H))`` to ``n_i - H``: a series
    shorter than ``L + H`` still gives windows, their steps before the series' start padded
    (zeros, and an indicator feature of 0 for "not observed"). Series with ``n_i <= H`` give
    none. ``history_limit`` keeps only each series' last ``history_limit`` origins (recent
    windows; N-BEATS's "L_H").

    Iterating yields ``steps`` batches of ``batch_size`` windows drawn at random (with
    replacement) with probabilities proportional to ``weights`` (per window; default equal),
    each batch gathered by ``gather``.
    """

    def __init__(self, lengths: np.ndarray, window: int, horizon: int,
                 weights: Optional[np.ndarray] = None, history_limit: Optional[int] = None
                 ) -> None:
        self.window = positive_int("window", window)
        self.horizon = positive_int("horizon", horizon)
        lengths = np.asarray(lengths, dtype=np.int64)
        lo = np.maximum(1, np.minimum(self.window, lengths - self.horizon))
        hi = lengths - self.horizon  # inclusive
        if history_limit is not None:  # only the last origins of each series
            lo = np.maximum(lo, hi - positive_int("history_limit", history_limit) + 1)
        counts = np.maximum(hi - lo + 1, 0)
        self.series = np.repeat(np.arange(len(lengths)), counts)  # (N_windows,)
        starts = np.cumsum(counts) - counts
        self.origins = lo[self.series] + np.arange(counts.sum()) - starts[self.series]
        self.trainable = counts > 0  # (S,)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (len(self.series),) or np.any(weights < 0) or \
                    not np.all(np.isfinite(weights)) or weights.sum() <= 0:
                raise invalid("weights", f"{len(self.series)} non-negative finite window "
                              "weights, not all zero", f"shape {weights.shape}")
            weights = weights / weights.sum()
        self.probabilities = weights

    def __len__(self) -> int:
        return int(len(self.series))

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` (series, origin) pairs drawn with the window weights."""
        k = rng.choice(len(self.series), size=size, p=self.probabilities) \
            if self.probabilities is not None else rng.integers(0, len(self.series), size)
        return self.series[k], self.origins[k]


def gather_windows(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                   series: np.ndarray, origins: np.ndarray, before: int, after: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``origin - before .. origin + after - 1`` of each (series, origin) of the flat
    concatenation ``flat`` (N, ...): the values (B, before + after, ...), zero where the step
    is outside the series, and the mask (B, before + after) of steps inside it."""
    steps = origins[:, None] + np.arange(-before, after)[None, :]  # (B, L + A)
    inside = (steps >= 0) & (steps < lengths[series][:, None])
    index = offsets[series][:, None] + np.clip(steps, 0, lengths[series][:, None] - 1)
    out = flat[index]
    out[~inside] = 0
    return out, inside


def read_long_csv(path: str, id_col: str = "unique_id", time_col: str = "ds",
                  target_col: str = "y", covariates: Sequence[str] = (),
                  static: Sequence[str] = (), fill_gaps: Optional[str] = None) -> Panel:
    """A :class:`Panel` from a long CSV file (header line, one row per (series, time)); read
    with the ``csv`` module (no pandas needed). Empty target cells are NaN, so they raise
    with the series id unless ``fill_gaps`` fills them."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(64 * 1024)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(handle, dialect)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ValueError(f"{path} is empty (expected a header line).") from None
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    for name, arg in ((id_col, "id_col"), (time_col, "time_col"), (target_col, "target_col"),
                      *((c, "covariates") for c in covariates), *((c, "static") for c in static)):
        if name not in header:
            raise invalid(arg, f"a column of {path} (one of {header})", name)
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: a row has {len(row)} cells, the header {len(header)} "
                             f"(row {number}).")
    if not rows:
        raise ValueError(f"{path} has a header but no rows.")
    cells = np.array(rows, dtype=object)
    columns = {}
    for name in {id_col, time_col, target_col, *covariates, *static}:
        column = cells[:, header.index(name)]
        if name == target_col or name in covariates or name in static:
            column = np.array([c.strip() if c.strip() else "nan" for c in column], dtype=object)
        columns[name] = np.array([c.strip() for c in column], dtype=object) \
            if name in (id_col, time_col) else column
    return Panel.from_columns(columns, id_col, time_col, target_col, covariates, static,
                              fill_gaps)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
