"""CSVLogger (its files byte for byte against Keras's), LambdaCallback, the older batch-hook
names and ProgbarLogger, in a real fit."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import callbacks, layers

RUNS = [
    [(0, {"loss": 0.5, "mae": 1.25}), (1, {"loss": 0.25, "mae": 1.0})],
    [(0, {"loss": 0.5, "val_loss": 0.75, "acc": np.float32(0.5)}),
     (1, {"loss": 0.125, "val_loss": 0.5, "acc": np.float32(0.75)})],
]


def _drive(cb, run):
    cb.on_train_begin()
    for epoch, logs in run:
        cb.on_epoch_end(epoch, dict(logs))
    cb.on_train_end()


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_csv_logger_writes_what_keras_writes(tmp_path, separator):
    keras = pytest.importorskip("keras")
    for k, run in enumerate(RUNS):
        ours, theirs = tmp_path / f"ours{k}.csv", tmp_path / f"theirs{k}.csv"
        for append in (False, True, True):  # a new file, then two more runs appended
            _drive(callbacks.CSVLogger(ours, separator=separator, append=append), run)
            _drive(keras.callbacks.CSVLogger(str(theirs), separator=separator,
                                             append=append), run)
        assert ours.read_bytes() == theirs.read_bytes()
    text = (tmp_path / "ours0.csv").read_text()
    assert text.splitlines()[0] == separator.join(["epoch", "loss", "mae", "val_loss",
                                                    "val_mae"])
    assert len(text.splitlines()) == 7  # one header, three runs of two epochs


def test_csv_logger_in_fit(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5, 2)), rng.normal(size=(32, 1))
    model = fastrnn.Sequential([layers.Input((5, 2)), layers.SimpleRNN(3), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=3, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.CSVLogger(str(path))])
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], history.history["loss"])
    np.testing.assert_allclose([float(r[4]) for r in rows[1:]], history.history["val_mae"])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path))])
    assert len(path.read_text().splitlines()) == 2  # overwritten, not appended


def test_csv_logger_arguments():
    with pytest.raises(ValueError, match="`filename`"):
        callbacks.CSVLogger(3)
    with pytest.raises(ValueError, match="`separator`.*';;'"):
        callbacks.CSVLogger("a.csv", separator=";;")
    with pytest.raises(ValueError, match="`append`"):
        callbacks.CSVLogger("a.csv", append="yes")


def _fit(cbs, epochs=2, verbose=0):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 1))
    model = fastrnn.Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=verbose, callbacks=cbs)
    return model


def test_lambda_callback_calls_each_hook():
    seen = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: seen.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: seen.append(("batch_end", batch, "loss" in logs)),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch_end", epoch, sorted(logs))),
        on_train_end=lambda logs: seen.append("train_end"))
    _fit([cb])
    epoch = [("batch_begin", 0), ("batch_end", 0, True), ("batch_begin", 1),
             ("batch_end", 1, True), ("batch_begin", 2), ("batch_end", 2, True)]
    assert seen == ["train_begin", ("epoch_begin", 0), *epoch, ("epoch_end", 0, ["loss"]),
                    ("epoch_begin", 1), *epoch, ("epoch_end", 1, ["loss"]), "train_end"]


def test_older_batch_hook_names():
    older = []
    _fit([callbacks.LambdaCallback(on_batch_begin=lambda b, logs: older.append(("b", b)),
                                   on_batch_end=lambda b, logs: older.append(("e", b)))],
         epochs=1)
    assert older == [("b", 0), ("e", 0), ("b", 1), ("e", 1), ("b", 2), ("e", 2)]

    class Counting(callbacks.Callback):  # a subclass overriding the older name only
        count = 0

        def on_batch_end(self, batch, logs=None):
            self.count += 1

    counting = Counting()
    _fit([counting], epochs=2)
    assert counting.count == 6
    with pytest.raises(ValueError, match="unknown keyword.*on_epoch_ends"):
        callbacks.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(ValueError, match="`on_epoch_end`.*int"):
        callbacks.LambdaCallback(on_epoch_end=3)


def test_progbar_logger_replaces_fits_own_printing(capsys):
    _fit([callbacks.ProgbarLogger()], verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    # one line per epoch, from the logger only (fit's own line starts with the same words)
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - loss: ")
    _fit([callbacks.ProgbarLogger()], verbose=0)
    assert capsys.readouterr().out == ""
    _fit([callbacks.ProgbarLogger()], verbose=1, epochs=1)
    assert "Epoch 1/1" in capsys.readouterr().out

    class Quiet(callbacks.ProgbarLogger):
        def on_epoch_end(self, epoch, logs=None):
            print(f"done {epoch}")
    _fit([Quiet()], verbose=2)
    assert capsys.readouterr().out.split() == ["done", "0", "done", "1"]


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(no_proxy):
    """A local HTTP server recording each POST as (path, content type, body, X-Run)."""
    import http.server
    import threading

    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Content-Type"], body.decode(),
                          self.headers.get("X-Run")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", posts
    httpd.shutdown()
    httpd.server_close()


def test_remote_monitor_posts_each_epoch(server):
    import json
    import urllib.parse

    root, posts = server
    _fit([callbacks.RemoteMonitor(root=root, path="/runs/", headers={"X-Run": "7"})])
    _fit([callbacks.RemoteMonitor(root=root, send_as_json=True)], epochs=1)
    assert [p[0] for p in posts] == ["/runs/", "/runs/", "/publish/epoch/end/"]
    form = urllib.parse.parse_qs(posts[1][2])
    sent = json.loads(form["data"][0])
    assert sent["epoch"] == 1 and isinstance(sent["loss"], float) and posts[1][3] == "7"
    assert posts[2][1] == "application/json" and json.loads(posts[2][2])["epoch"] == 0


def test_remote_monitor_unreachable_warns_and_bad_arguments(no_proxy):
    cb = callbacks.RemoteMonitor(root="http://127.0.0.1:9")  # the discard port: refused
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor"):
        cb.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="`root`"):
        callbacks.RemoteMonitor(root="ftp://x")
    with pytest.raises(ValueError, match="`headers`"):
        callbacks.RemoteMonitor(headers={"a": 1})
