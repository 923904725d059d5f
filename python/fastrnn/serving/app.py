"""The app behind :mod:`fastrnn.serving`: request checking, the stream table, the endpoints."""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["StreamTable", "create_app", "serve"]

DEFAULT_MAX_STREAMS = 10_000
DEFAULT_STREAM_TTL = 900.0  # seconds a stream may stay idle
DEFAULT_MAX_BODY_BYTES = 1 << 20


def _import_starlette() -> Any:
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise ImportError(
            'Serving needs Starlette and uvicorn: pip install "fastrnn[serve]".'
        ) from None


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- bodies
def _reject_constant(name: str) -> Any:
    raise RequestError(422, f"the body holds {name}; every value must be a finite number")


def parse_body(body: bytes, required: Optional[str] = "inputs") -> dict:
    """The JSON object of a request body, with the key `required` (``RequestError`` 400 or
    422 otherwise)."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as e:
        raise RequestError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise RequestError(400, f'expected a JSON object {{"{required or "..."}": ...}}, got a '
                           f"{type(value).__name__}")
    if required is not None and required not in value:
        raise RequestError(400, f'expected a JSON object {{"{required}": ...}}, got an object '
                           f"with keys {sorted(value)[:5]}")
    return value


def to_array(value: Any, what: str, integer: bool) -> np.ndarray:
    """A rectangular, finite numeric array from nested lists (``RequestError`` 422)."""
    if isinstance(value, (str, dict)) or value is None:
        raise RequestError(422, f"`{what}` must be numbers in nested lists, got "
                           f"{type(value).__name__}")
    try:
        a = np.asarray(value, dtype=np.int64 if integer else np.float64)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(422, f"`{what}` must be numbers in nested lists of equal lengths "
                           "(a rectangular array)") from None
    if a.dtype == object:
        raise RequestError(422, f"`{what}` is not a rectangular array of numbers")
    if integer:
        if not np.array_equal(a, np.asarray(value, dtype=np.float64)):
            raise RequestError(422, f"`{what}` must hold integer token ids")
    elif not np.all(np.isfinite(a)):
        raise RequestError(422, f"`{what}` holds NaN, infinite or null values; every value "
                           "must be a finite number")
    return a


# ----------------------------------------------------------------------------- streams
class _Stream:
    __slots__ = ("last_used", "lock", "states", "steps")

    def __init__(self, states: list, now: float):
        self.states = states
        self.steps = 0
        self.last_used = now
        self.lock = threading.Lock()


class StreamTable:
    """Streams by id, at most `max_streams` (least recently used evicted first), each expiring
    after `ttl` seconds unused. Thread-safe."""

    def __init__(self, max_streams: int, ttl: float, make_states: Callable[[], list],
                 clock: Callable[[], float] = time.monotonic):
        self.max_streams = max_streams
        self.ttl = ttl
        self._make_states = make_states
        self._clock = clock
        self._streams: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._streams)

    def _expire(self, now: float) -> None:
        while self._streams:
            key, stream = next(iter(self._streams.items()))
            if now - stream.last_used <= self.ttl:
                break
            del self._streams[key]

    def open(self) -> str:
        key = secrets.token_hex(16)
        now = self._clock()
        with self._lock:
            self._expire(now)
            while len(self._streams) >= self.max_streams:
                self._streams.popitem(last=False)
            self._streams[key] = _Stream(self._make_states(), now)
        return key

    def get(self, key: str) -> _Stream:
        now = self._clock()
        with self._lock:
            self._expire(now)
            stream = self._streams.get(key)
            if stream is None:
                raise RequestError(
                    404, f"unknown stream id {key[:64]!r}: never opened, closed, expired (idle "
                    f"for more than {self.ttl:g} s) or evicted (at most {self.max_streams} "
                    "streams are kept); open a new one with POST /streams")
            stream.last_used = now
            self._streams.move_to_end(key)
            return stream

    def close(self, key: str) -> None:
        self.get(key)
        with self._lock:
            self._streams.pop(key, None)


# ----------------------------------------------------------------------------- the model
class _Served:
    """The model and what the endpoints need of it."""

    def __init__(self, model: Any):
        from ..models.model import Model

        if not isinstance(model, Model):
            raise TypeError(
                "Received an invalid value for argument `model`, expected a fastrnn model, an "
                f"RNNForecaster or the path of a saved one, got {type(model).__name__}."
            )
        model._require_built("serving")
        self.model = model
        self.stateful = model._stateful()
        self.input_names = list(model.input_names)
        self.output_names = list(model.output_names)
        self.integer_inputs = self._integer_inputs()
        self.stream_error: Optional[str] = None
        self._steppers: queue.SimpleQueue = queue.SimpleQueue()
        try:
            first = model.stepper(batch_size=1)
        except ValueError as e:
            self.stream_error = str(e)
        else:
            self._steppers.put(first)
            self.zero_states = first.states
            self.step_ids = bool(first.vocabulary)
            self.step_features = first.input_dim

    def _integer_inputs(self) -> list[bool]:
        from ..layers import Embedding, InputLayer
        model = self.model
        if model._graph is None:  # a Sequential
            first = next((lyr for lyr in model._layers if not isinstance(lyr, InputLayer)), None)
            return [isinstance(first, Embedding)]
        return [np.dtype(dt).kind in "iu" or ids for dt, ids in
                zip(model._graph.input_dtypes, model._graph.ids_only)]

    def describe(self) -> tuple[list, list]:
        shapes_in = self.model.input_shape
        shapes_in = shapes_in if isinstance(shapes_in, list) else [shapes_in]
        shapes_out = self.model.output_shape
        shapes_out = shapes_out if isinstance(shapes_out, list) else [shapes_out]
        return ([{"name": n, "shape": list(s)} for n, s in zip(self.input_names, shapes_in)],
                [{"name": n, "shape": list(s)} for n, s in zip(self.output_names, shapes_out)])

    # ---------------------------------------------------------------- predict
    def inputs(self, value: Any) -> Any:
        n = len(self.input_names)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(self.input_names))
            missing = [k for k in self.input_names if k not in value]
            if unknown or missing:
                raise RequestError(422, f"`inputs` must be keyed by the model's input names "
                                   f"{self.input_names} (missing {missing}, unknown "
                                   f"{unknown[:5]})")
            arrays = [to_array(value[k], f"inputs[{k!r}]", ids)
                      for k, ids in zip(self.input_names, self.integer_inputs)]
        elif n > 1:
            if not isinstance(value, list) or len(value) != n:
                raise RequestError(422, f"the model has {n} inputs {self.input_names}: "
                                   f"`inputs` must be a list of {n} arrays or an object keyed "
                                   "by those names")
            arrays = [to_array(v, f"inputs[{k}]", ids)
                      for k, (v, ids) in enumerate(zip(value, self.integer_inputs))]
        else:
            arrays = [to_array(value, "inputs", self.integer_inputs[0])]
        for a in arrays:
            if a.ndim < 2 or a.shape[0] == 0:
                raise RequestError(422, "`inputs` must have a batch axis with at least one "
                                   f"sample and a time or feature axis, got shape "
                                   f"{list(a.shape)}")
        return arrays if n > 1 else arrays[0]

    def predict(self, value: Any) -> Any:
        if self.stateful:
            raise RequestError(400, f"model `{self.model.name}` has stateful layers: its "
                               "predict carries state from one request to the next; serve its "
                               "streams (POST /streams) instead")
        x = self.inputs(value)
        n = len(x[0]) if isinstance(x, list) else len(x)
        try:
            y = self.model.predict(x, batch_size=max(n, 1))
        except (ValueError, TypeError) as e:
            raise RequestError(422, str(e)) from None
        if isinstance(y, list):
            return {name: v.tolist() for name, v in zip(self.output_names, y)}
        return y.tolist()

    # ---------------------------------------------------------------- streams
    def check_streaming(self) -> None:
        if self.stream_error is not None:
            raise RequestError(400, f"this model cannot stream: {self.stream_error}")

    def steps(self, value: Any) -> np.ndarray:
        """``(steps, features)`` (or ``(steps,)`` token ids) from one step or several."""
        a = to_array(value, "inputs", self.step_ids)
        if self.step_ids:
            a = a.reshape(-1) if a.ndim <= 1 else a
            if a.ndim != 1:
                raise RequestError(422, "`inputs` must be one token id or a list of them, got "
                                   f"shape {list(a.shape)}")
            return a
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != self.step_features or a.shape[0] == 0:
            raise RequestError(422, f"`inputs` must be one step ({self.step_features} "
                               f"features) or a list of steps (steps, {self.step_features}), "
                               f"got shape {list(a.shape)}")
        return a

    def step(self, stream: _Stream, x: np.ndarray) -> list:
        try:
            stepper = self._steppers.get_nowait()
        except queue.Empty:
            stepper = self.model.stepper(batch_size=1)
        try:
            stepper.reset(states=stream.states)
            dtype = stepper.dtype
            out = []
            if not self.step_ids:
                x = np.ascontiguousarray(x, dtype=dtype)
            for t in range(x.shape[0]):
                try:
                    out.append(stepper.step(x[t:t + 1])[0])
                except ValueError as e:
                    raise RequestError(422, str(e)) from None
            stream.states = stepper.states
            stream.steps += x.shape[0]
            return np.stack(out).tolist()
        finally:
            self._steppers.put(stepper)


# ----------------------------------------------------------------------------- forecasters
class _Columns:
    """Columns from a JSON object ``{name: [values]}`` as the long table the forecaster reads
    (``columns`` and ``table[name]``), so no DataFrame library is needed."""

    def __init__(self, value: Any, what: str, max_rows: int):
        if not isinstance(value, dict) or not value:
            raise RequestError(422, f"`{what}` must be an object of columns {{name: [values, "
                               f"...]}}, got {type(value).__name__}")
        lengths = set()
        self._data: dict[str, np.ndarray] = {}
        for name, column in value.items():
            if not isinstance(column, list) or not all(
                    v is None or isinstance(v, (str, int, float)) for v in column):
                raise RequestError(422, f"`{what}[{name!r}]` must be a list of numbers, "
                                   "strings or nulls")
            lengths.add(len(column))
            self._data[name] = np.array(column, dtype=object)
        if len(lengths) != 1 or not 0 < lengths.pop() <= max_rows:
            raise RequestError(422, f"the columns of `{what}` must have one length, between 1 "
                               f"and {max_rows} rows")
        self.columns = list(self._data)

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._data[name]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            column = np.array(column.tolist())  # numbers as numbers, not objects
        return column

    def __len__(self) -> int:
        return len(next(iter(self._data.values())))


def _json_values(a: np.ndarray) -> list:
    """A column of the answer: times as the forecasts CSV writes them (ISO dates, with the
    time of day when there is one), numbers as numbers."""
    if not np.issubdtype(a.dtype, np.datetime64):
        return a.tolist()
    from ..forecasting.pipeline import format_time

    return format_time(a)


class _ServedForecaster:
    """An :class:`~fastrnn.forecasting.RNNForecaster` and the ``/forecast`` endpoint's work.
    Forecasts run one at a time, each one batched prediction over the series asked for
    (``ids``; all of them without it): a request for a few series of thousands runs a few."""

    MAX_ROWS = 1_000_000

    def __init__(self, forecaster: Any):
        forecaster._require_fitted()
        self.forecaster = forecaster
        self.lock = threading.Lock()
        self.ids = list(forecaster.panel_.ids)

    def describe(self) -> dict:
        f = self.forecaster
        return {"kind": "forecaster", "model": type(f).__name__, "h": f.h,
                "strategy": f.strategy, "quantiles": f.quantiles.tolist(),
                "series": len(self.ids), "id_column": f.id_col, "time_column": f.time_col,
                "target_column": f.target_col, "future_covariates": list(f.future_covariates),
                "past_covariates": list(f.past_covariates), "static": list(f.static)}

    def forecast(self, body: dict) -> dict:
        f = self.forecaster
        unknown = sorted(set(body) - {"h", "ids", "data", "future", "num_samples"})
        if unknown:
            raise RequestError(400, 'expected a JSON object with optional keys "h", "ids", '
                               f'"data", "future", "num_samples"; got unknown keys {unknown[:5]}')
        h = body.get("h")
        for key in ("h", "num_samples"):
            v = body.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise RequestError(422, f"`{key}` must be a positive integer, got {v!r}")
        data = None if body.get("data") is None else _Columns(body["data"], "data",
                                                              self.MAX_ROWS)
        future = None if body.get("future") is None else _Columns(body["future"], "future",
                                                                  self.MAX_ROWS)
        ids = body.get("ids")
        if ids is not None and (not isinstance(ids, list) or not ids or not all(
                isinstance(sid, (str, int)) and not isinstance(sid, bool) for sid in ids)):
            raise RequestError(422, "`ids` must be a non-empty list of series ids (strings or "
                               "integers)")
        try:
            with self.lock:  # only the series asked for are run through the network
                panel, point, q = f.predict_arrays(h, data, future, body.get("num_samples"),
                                                   ids)
        except (ValueError, TypeError, KeyError) as e:
            raise RequestError(422, str(e).strip("'\"")) from None
        steps = point.shape[1]
        out = {f.id_col: [sid for sid in panel.ids for _ in range(steps)],
               f.time_col: _json_values(np.concatenate(panel.future_times(steps))),
               "forecast": point.reshape(-1).tolist()}
        for j, level in enumerate(f.quantiles):
            out[f"q{float(level):g}"] = q[:, :, j].reshape(-1).tolist()
        return {"forecasts": out}


def _load(model: Any) -> Any:
    """The served object: a model, a forecaster, or the one a saved file holds."""
    if isinstance(model, (str, os.PathLike)):
        from ..saving import archive_format

        path = os.fspath(model)
        if archive_format(path) == "fastrnn.forecaster":
            from ..forecasting import RNNForecaster

            return RNNForecaster.load(path)
        from ..models import load_model

        return load_model(path)
    return model


# ----------------------------------------------------------------------------- the app
def _positive_number(name: str, value: Any, integer: bool) -> Any:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and (
        value > 0 and math.isfinite(value)) and (not integer or float(value).is_integer())
    if not ok:
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {kind}, "
                         f"got {value!r}.")
    return int(value) if integer else float(value)


def create_app(model: Any, max_streams: int = DEFAULT_MAX_STREAMS,
               stream_ttl: float = DEFAULT_STREAM_TTL,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """A Starlette app serving `model` (a fastrnn model, or the path of a saved one).

    Args:
        model: the model; it must be built.
        max_streams: streams kept at most (the least recently used is evicted).
        stream_ttl: seconds after which an idle stream expires.
        max_body_bytes: the largest request body accepted (413 beyond).

    See :mod:`fastrnn.serving` for the endpoints and their errors.
    """
    _import_starlette()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    max_streams = _positive_number("max_streams", max_streams, True)
    stream_ttl = _positive_number("stream_ttl", stream_ttl, False)
    max_body_bytes = _positive_number("max_body_bytes", max_body_bytes, True)
    from ..forecasting import RNNForecaster

    target = _load(model)
    forecaster = _ServedForecaster(target) if isinstance(target, RNNForecaster) else None
    served = None if forecaster is not None else _Served(target)
    table = StreamTable(max_streams, stream_ttl,
                        lambda: [[s.copy() for s in layer] for layer in served.zero_states])

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def body_of(request: Request, required: Optional[str] = "inputs") -> dict:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise RequestError(400, "the Content-Length header is not a number") from None
            if size > max_body_bytes:
                raise RequestError(413, f"the body has {size} bytes; at most {max_body_bytes} "
                                   "are accepted")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise RequestError(413, f"the body exceeds {max_body_bytes} bytes")
            chunks.append(chunk)
        return parse_body(b"".join(chunks), required)

    def handled(fn: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except RequestError as e:
                return error(e.status, e.message)
        return endpoint

    @handled
    async def health(request: Request) -> Response:
        inputs, outputs = served.describe()
        return JSONResponse({
            "status": "ok", "model": served.model.name, "inputs": inputs, "outputs": outputs,
            "streaming": served.stream_error is None, "streams": len(table),
            "max_streams": max_streams, "stream_ttl": stream_ttl})

    @handled
    async def predict(request: Request) -> Response:
        body = await body_of(request)
        outputs = await run_in_threadpool(served.predict, body["inputs"])
        return JSONResponse({"outputs": outputs})

    @handled
    async def open_stream(request: Request) -> Response:
        served.check_streaming()
        return JSONResponse({"stream_id": table.open()}, status_code=201)

    def step_stream(key: str, value: Any) -> dict:
        stream = table.get(key)
        x = served.steps(value)
        with stream.lock:  # one request at a time on a stream
            outputs = served.step(stream, x)
            return {"outputs": outputs, "steps": stream.steps}

    @handled
    async def step(request: Request) -> Response:
        served.check_streaming()
        key = request.path_params["stream_id"]
        table.get(key)  # an unknown id before reading the body
        body = await body_of(request)
        return JSONResponse(await run_in_threadpool(step_stream, key, body["inputs"]))

    @handled
    async def close_stream(request: Request) -> Response:
        table.close(request.path_params["stream_id"])
        return Response(status_code=204)

    @handled
    async def forecaster_health(request: Request) -> Response:
        assert forecaster is not None
        return JSONResponse({"status": "ok", **forecaster.describe()})

    @handled
    async def forecast(request: Request) -> Response:
        assert forecaster is not None
        body = await body_of(request, None)
        return JSONResponse(await run_in_threadpool(forecaster.forecast, body))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(500, f"internal error ({type(exc).__name__}); the request was not served")

    handlers = {HTTPException: http_error, Exception: server_error}
    if forecaster is not None:
        app = Starlette(routes=[Route("/health", forecaster_health, methods=["GET"]),
                                Route("/forecast", forecast, methods=["POST"])],
                        exception_handlers=handlers)
        app.state.model = forecaster.forecaster
        return app
    assert served is not None
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/streams", open_stream, methods=["POST"]),
        Route("/streams/{stream_id}/step", step, methods=["POST"]),
        Route("/streams/{stream_id}", close_stream, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.model = served.model
    app.state.streams = table
    return app


def serve(model: Any, host: str = "127.0.0.1", port: int = 8000,
          max_streams: int = DEFAULT_MAX_STREAMS, stream_ttl: float = DEFAULT_STREAM_TTL,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log_level: str = "info") -> None:
    """Runs :func:`create_app` with uvicorn on `host`:`port` until interrupted."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"Received an invalid value for argument `port`, expected an integer "
                         f"in [0, 65535], got {port!r}.")
    app = create_app(model, max_streams=max_streams, stream_ttl=stream_ttl,
                     max_body_bytes=max_body_bytes)
    try:
        import uvicorn
    except ImportError:
        raise ImportError('Serving needs Starlette and uvicorn: pip install "fastrnn[serve]".'
                          ) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level)
