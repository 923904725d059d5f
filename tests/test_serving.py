"""fastrnn.serving: the app run by uvicorn on 127.0.0.1 (an ephemeral port), driven by an HTTP
client: predictions, streams, the bounded stream table, malformed and oversized bodies,
concurrent requests; and ``fastrnn serve`` as a process. Every server here stops by itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

import fastrnn
from fastrnn import layers as L

TIMEOUT = 20.0  # seconds any request or start-up may take on a busy machine


def _model():
    model = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(16, return_sequences=True),
                                L.GRU(8), L.Dense(2)], name="forecaster")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


@contextmanager
def running(app):
    """`app` served by uvicorn on 127.0.0.1 in a thread; yields an httpx client for it."""
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def client(model):
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    with running(serving.create_app(model, max_body_bytes=64_000)) as c:
        yield c


def _x(B: int, T: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, T, 3)).astype(np.float32)


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "forecaster"
    assert body["inputs"] == [{"name": "input", "shape": [None, None, 3]}]
    assert body["outputs"] == [{"name": "output", "shape": [None, 2]}]
    assert body["streaming"] is True


def test_predict_equals_model_predict(client, model):
    for B, T in ((1, 1), (3, 7)):
        x = _x(B, T)
        r = client.post("/predict", json={"inputs": x.tolist()})
        assert r.status_code == 200, r.text
        # the JSON carries float32 values as float64 decimals: exact round trip
        np.testing.assert_array_equal(np.asarray(r.json()["outputs"], np.float32),
                                      model.predict(x))


def test_stream_steps_equal_predict_on_the_history(client, model):
    x = _x(1, 9, 2)
    sid = client.post("/streams").json()["stream_id"]
    outputs = []
    for t in range(4):  # one step at a time
        r = client.post(f"/streams/{sid}/step", json={"inputs": x[0, t].tolist()})
        assert r.status_code == 200, r.text
        assert r.json()["steps"] == t + 1
        outputs.append(r.json()["outputs"][0])
    r = client.post(f"/streams/{sid}/step", json={"inputs": x[0, 4:].tolist()})  # five at once
    assert r.json()["steps"] == 9
    outputs += r.json()["outputs"]
    want = np.stack([model.predict(x[:, :t + 1])[0] for t in range(9)])
    np.testing.assert_allclose(np.asarray(outputs), want, rtol=0, atol=1e-5)
    assert client.delete(f"/streams/{sid}").status_code == 204
    r = client.post(f"/streams/{sid}/step", json={"inputs": x[0, 0].tolist()})
    assert r.status_code == 404 and "unknown stream id" in r.json()["error"]


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"x": 1}', 400, "inputs"),
    (b'{"inputs": "abc"}', 422, "numbers"),
    (b'{"inputs": [[[1, 2, 3]], [[1, 2]]]}', 422, "rectangular"),
    (b'{"inputs": [[[1, 2]]]}', 422, "features"),
    (b'{"inputs": [1, 2, 3]}', 422, "batch axis"),
    (b'{"inputs": [[[NaN, 1, 2]]]}', 422, "finite"),
    (b'{"inputs": [[[1e999, 1, 2]]]}', 422, "finite"),
    (b'{"inputs": [[[null, 1, 2]]]}', 422, "null"),
    (b'{"inputs": []}', 422, "batch axis"),
    (b"[" * 30_000, 400, "not valid JSON"),
], ids=["syntax", "array", "no-inputs", "string", "ragged", "features", "rank", "nan",
        "infinity", "null", "empty", "deep"])
def test_malformed_bodies_get_clear_4xx(client, body, status, words):
    r = client.post("/predict", content=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_oversized_bodies_are_refused(client):
    big = json.dumps({"inputs": _x(200, 20).tolist()}).encode()
    assert len(big) > 64_000
    r = client.post("/predict", content=big)
    assert r.status_code == 413 and "at most 64000" in r.json()["error"]

    def chunks():  # no Content-Length: counted while read
        for k in range(0, len(big), 8192):
            yield big[k:k + 8192]

    r = client.post("/predict", content=chunks())
    assert r.status_code == 413 and "exceeds 64000" in r.json()["error"]


def test_unknown_routes_ids_and_methods(client):
    r = client.post("/streams/0123abc/step", json={"inputs": [1, 2, 3]})
    assert r.status_code == 404 and "POST /streams" in r.json()["error"]
    assert client.delete("/streams/nope").status_code == 404
    assert client.get("/nowhere").status_code == 404
    assert client.get("/predict").status_code == 405
    sid = client.post("/streams").json()["stream_id"]
    r = client.post(f"/streams/{sid}/step", json={"inputs": [1, 2]})
    assert r.status_code == 422 and "3 features" in r.json()["error"]
    r = client.post(f"/streams/{sid}/step", content=b'{"inputs": [[1, 2, NaN]]}')
    assert r.status_code == 422 and "finite" in r.json()["error"]
    client.delete(f"/streams/{sid}")


def test_concurrent_requests(client, model):
    """16 clients at once: predictions equal the model's, each stream its own."""
    xs = [_x(1 + k % 3, 5 + k % 4, 10 + k) for k in range(16)]
    want = [model.predict(x) for x in xs]
    start = threading.Barrier(16)

    def one(k):
        start.wait()
        outs = []
        for _ in range(3):
            r = client.post("/predict", json={"inputs": xs[k].tolist()})
            outs.append(np.asarray(r.json()["outputs"], np.float32))
        sid = client.post("/streams").json()["stream_id"]
        steps = [client.post(f"/streams/{sid}/step", json={"inputs": xs[k][0, t].tolist()})
                 .json()["outputs"][0] for t in range(xs[k].shape[1])]
        return outs, steps

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(16)))
    for k, (outs, steps) in enumerate(results):
        for o in outs:
            np.testing.assert_array_equal(o, want[k])
        np.testing.assert_allclose(steps[-1], model.predict(xs[k][:1])[0], rtol=0, atol=1e-5)
    assert client.get("/health").status_code == 200


def test_stream_table_is_bounded_lru_and_ttl():
    from fastrnn.serving.app import RequestError, StreamTable

    now = [0.0]
    table = StreamTable(2, 10.0, lambda: [], clock=lambda: now[0])
    a, b = table.open(), table.open()
    table.get(a)  # b is now the least recently used
    c = table.open()
    assert len(table) == 2
    with pytest.raises(RequestError) as e:
        table.get(b)
    assert e.value.status == 404 and "evicted" in e.value.message
    now[0] = 5.0
    table.get(c)
    now[0] = 10.5  # a idle 10.5 s: expired; c 5.5 s
    with pytest.raises(RequestError):
        table.get(a)
    table.get(c)
    assert len(table) == 1
    now[0] = 20.6  # c idle 10.1 s
    with pytest.raises(RequestError):
        table.get(c)
    assert len(table) == 0


def test_stream_table_limits_served(model):
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    with running(serving.create_app(model, max_streams=2, stream_ttl=0.5)) as c:
        ids = [c.post("/streams").json()["stream_id"] for _ in range(3)]
        assert c.post(f"/streams/{ids[0]}/step", json={"inputs": [0, 0, 0]}).status_code == 404
        assert c.post(f"/streams/{ids[2]}/step", json={"inputs": [0, 0, 0]}).status_code == 200
        assert c.get("/health").json()["streams"] == 2
        time.sleep(0.6)
        r = c.post(f"/streams/{ids[2]}/step", json={"inputs": [0, 0, 0]})
        assert r.status_code == 404 and "expired" in r.json()["error"]


def test_models_that_cannot_stream_or_are_stateful(model):
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    conv = fastrnn.Sequential([L.Input((None, 3)), L.Conv1D(4, 2), L.GRU(3)])
    stateful = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(4, stateful=True)])
    with running(serving.create_app(conv)) as c:
        assert c.get("/health").json()["streaming"] is False
        r = c.post("/streams")
        assert r.status_code == 400 and "cannot stream" in r.json()["error"]
        assert c.post("/predict", json={"inputs": _x(1, 4).tolist()}).status_code == 200
    with running(serving.create_app(stateful)) as c:
        r = c.post("/predict", json={"inputs": _x(1, 4).tolist()})
        assert r.status_code == 400 and "stateful" in r.json()["error"]
        sid = c.post("/streams").json()["stream_id"]
        assert c.post(f"/streams/{sid}/step", json={"inputs": [1, 2, 3]}).status_code == 200


def test_functional_model_inputs_by_name_and_integer_ids():
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    ids_in = fastrnn.Input((None,), dtype="int64", name="tokens")
    extra = fastrnn.Input((2,), name="extra")
    h = L.GRU(4)(L.Embedding(10, 3)(ids_in))
    model = fastrnn.Model([ids_in, extra], [L.Dense(1, name="score")(L.Concatenate()([h, extra])),
                                            L.Dense(2, name="other")(h)])
    tokens = np.array([[1, 2, 3, 4]])
    e = np.array([[0.5, -1.0]], np.float32)
    want = model.predict([tokens, e])
    with running(serving.create_app(model)) as c:
        r = c.post("/predict", json={"inputs": {"tokens": tokens.tolist(),
                                                "extra": e.tolist()}})
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.asarray(r.json()["outputs"]["score"], np.float32),
                                      want[0])
        r = c.post("/predict", json={"inputs": [[[1.5, 2, 3, 4]], e.tolist()]})
        assert r.status_code == 422 and "integer" in r.json()["error"]
        r = c.post("/predict", json={"inputs": {"tokens": tokens.tolist()}})
        assert r.status_code == 422 and "missing ['extra']" in r.json()["error"]
        r = c.post("/predict", json={"inputs": {"tokens": [[1, 2, 99]], "extra": e.tolist()}})
        assert r.status_code == 422 and "token ids" in r.json()["error"]


def test_bad_app_arguments(model):
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    with pytest.raises(ValueError, match="max_streams"):
        serving.create_app(model, max_streams=0)
    with pytest.raises(ValueError, match="stream_ttl"):
        serving.create_app(model, stream_ttl=float("nan"))
    with pytest.raises(TypeError, match="model"):
        serving.create_app(42)


def test_cli_serve_runs_and_stops(model, tmp_path):
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    path = str(tmp_path / "model.zip")
    model.save(path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with subprocess.Popen([sys.executable, "-m", "fastrnn", "serve", path, "--port",
                           str(port)], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE) as proc:
        try:
            _drive_served(proc, port, model, httpx)
        finally:
            proc.terminate()
            proc.communicate(timeout=TIMEOUT)


def _drive_served(proc, port: int, model, httpx) -> None:
    """Waits for the served process to answer, then checks /health and /predict."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except httpx.TransportError:
            assert proc.poll() is None, "fastrnn serve exited"
            assert time.monotonic() < deadline, "fastrnn serve did not start"
            time.sleep(0.1)
    assert r.json()["model"] == "forecaster"
    x = _x(2, 3)
    r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"inputs": x.tolist()},
                   timeout=TIMEOUT)
    np.testing.assert_array_equal(np.asarray(r.json()["outputs"], np.float32),
                                  model.predict(x))


def test_cli_serve_errors(tmp_path, capsys):
    from fastrnn import cli

    assert cli.main(["serve", str(tmp_path / "missing.zip")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrnn: error: no such model")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a model")
    assert cli.main(["serve", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrnn: error:")
    assert cli.main(["serve", str(bad), "--port", "70000"]) == 2


def test_concurrent_steps_on_one_stream_are_serialized():
    """Four clients stepping one stream: every step counts once, none is lost. The model
    counts: h_t = h_{t-1} + x_t (a linear SimpleRNN with unit weights), fed ones."""
    serving = pytest.importorskip("fastrnn.serving")
    pytest.importorskip("starlette")
    counter = fastrnn.Sequential([L.Input((None, 1)), L.SimpleRNN(1, activation="linear")])
    counter.set_weights([np.ones((1, 1)), np.ones((1, 1)), np.zeros(1)])
    with running(serving.create_app(counter)) as client:
        sid = client.post("/streams").json()["stream_id"]
        start = threading.Barrier(4)

        def run(_):
            start.wait()
            return [client.post(f"/streams/{sid}/step", json={"inputs": [[1]] * 40}).json()
                    for _ in range(5)]

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(run, range(4)))
        last = client.post(f"/streams/{sid}/step", json={"inputs": [1]}).json()
    assert last["steps"] == 801
    assert last["outputs"] == [[801.0]]
