"""Serving a trained model over HTTP: :func:`create_app` (a Starlette ASGI app) and
:func:`serve` (runs it with uvicorn; ``fastrnn serve model.zip --port 8000`` on the command
line). Needs ``pip install "fastrnn[serve]"``.

Endpoints (JSON in and out; errors are ``{"error": "..."}`` with a 4xx status):

* ``GET /health``: ``{"status": "ok", "model", "inputs", "outputs", "streaming",
  "streams", "max_streams", "stream_ttl"}``.
* ``POST /predict`` with ``{"inputs": x}``: ``{"outputs": y}``, ``model.predict(x)``. `x` is
  the model's input as nested lists, ``(batch, time, features)`` for a recurrent model (token
  ids for an Embedding); a model with several inputs takes a list of them or an object keyed
  by input name, and several outputs come back as an object keyed by output name.
* ``POST /streams``: opens a stream (every recurrent state zero): ``201 {"stream_id"}``.
* ``POST /streams/{id}/step`` with ``{"inputs": x_t}``: advances the stream by one step,
  ``x_t`` of shape ``(features,)`` (a token id), or by several, ``(steps, features)``, and
  answers ``{"outputs": y, "steps": total steps so far}``, ``y`` the model's output at each
  given step (what ``predict`` gives on the stream's whole history up to that step).
* ``DELETE /streams/{id}``: closes it (204).

A saved ``RNNForecaster`` (or a fitted one given to :func:`create_app`) is served instead by:

* ``GET /health``: ``{"status": "ok", "kind": "forecaster", "h", "quantiles", "strategy",
  "series", "id_column", "time_column", "target_column", "future_covariates", ...}``.
* ``POST /forecast`` with ``{"h"?, "ids"?, "data"?, "future"?, "num_samples"?}`` (every key
  optional; ``data`` and ``future`` are long-table columns ``{name: [values]}``): ``{"forecasts":
  {id column: [...], time column: [...], "forecast": [...], "q<level>": [...]}}``, what
  ``forecaster.predict`` gives (see the documentation's Serving page). 422 for what the
  forecaster refuses (its message names the series), 400 for unknown keys.

Statuses: 400 a body that is not JSON or not ``{"inputs": ...}``, or a model that cannot do
what was asked (streams of a model :meth:`fastrnn.Model.stepper` refuses; ``/predict`` on a
stateful model, whose carried state would pass from one client to the next); 404 an unknown
stream id (never opened, closed, expired or evicted); 413 a body over `max_body_bytes`; 422
values of the wrong shape, type or size, or not finite (NaN, Infinity).

The stream table is bounded: at most `max_streams` streams (opening one more evicts the least
recently used), and a stream idle for more than `stream_ttl` seconds expires. A stream holds
only its states (``(units,)`` per recurrent state, ``(span, channels)`` per causal
convolution's window, nothing per step), so the table's memory is at most
`max_streams` times the sum of the model's state sizes; steps run on a small pool of
:class:`fastrnn.ops.ModelStepper` objects (one per concurrent step, each a copy of the
weights), which load a stream's states, step, and store them back. Requests on one stream are
serialized; requests on different streams, and ``/predict`` requests, run concurrently in
worker threads (the kernels release the GIL). Concurrent ``predict`` calls give what each
gives alone (see the documentation's Serving page, docs/guide/serving.md, for the one
rounding-level exception).
"""

from __future__ import annotations

from .app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_STREAMS, DEFAULT_STREAM_TTL, create_app
from .app import serve as serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_STREAMS", "DEFAULT_STREAM_TTL", "create_app",
           "serve"]
