"""fastrnn.serving for the many-series forecasters: ``create_app`` / ``fastrnn serve`` of an
``RNNForecaster`` (or its saved file) answers ``POST /forecast`` with what ``predict`` gives,
from the stored series or from series sent in the request, with future covariates; bad
requests get a 4xx naming the problem; concurrent requests give what each gives alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastrnn.forecasting import RNNForecaster
from test_serving import running

pytest.importorskip("starlette")
serving = pytest.importorskip("fastrnn.serving")

SMALL = dict(units=8, epochs=1, steps_per_epoch=10, batch_size=16)


def _columns(n_series=4, length=30, seed=0, dates=True, covariate=False):
    """A long table as columns (ids, times, y[, promo]): monthly dates or integer times."""
    rng = np.random.default_rng(seed)
    ids, times, y, promo = [], [], [], []
    for i in range(n_series):
        n = length + 2 * i
        if dates:
            start = np.datetime64("2001-01") + i
            t = [str(start + k) + "-01" for k in range(n)]
        else:
            t = list(range(10 * i, 10 * i + n))
        ids += [f"s{i}"] * n
        times += t
        y += (10 + i + np.sin(np.arange(n)) + 0.1 * rng.normal(size=n)).tolist()
        promo += (np.arange(n) % 3 == 0).astype(float).tolist()
    out = {"unique_id": ids, "ds": times, "y": y}
    if covariate:
        out["promo"] = promo
    return out


class _Table:
    """The columns as the long table RNNForecaster reads (no DataFrame library needed)."""

    def __init__(self, columns):
        self._c = {k: np.array(v, dtype=object if k in ("unique_id", "ds") else float)
                   for k, v in columns.items()}
        self.columns = list(columns)

    def __getitem__(self, name):
        return self._c[name]

    def __len__(self):
        return len(self._c["unique_id"])


@pytest.fixture(scope="module")
def forecaster():
    model = RNNForecaster(h=3, input_size=6, loss="quantile", quantiles=[0.1, 0.9], **SMALL)
    return model.fit(_Table(_columns()))


@pytest.fixture(scope="module")
def client(forecaster):
    with running(serving.create_app(forecaster, max_body_bytes=200_000)) as c:
        yield c


def _predicted(forecaster, h=None, df=None):
    panel, point, q = forecaster.predict_arrays(h, df)
    return panel, point, q


def test_health_describes_the_forecaster(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["kind"] == "forecaster"
    assert body["h"] == 3 and body["quantiles"] == [0.1, 0.5, 0.9] and body["series"] == 4
    assert body["id_column"] == "unique_id" and body["time_column"] == "ds"


def test_forecast_of_the_stored_series_equals_predict(client, forecaster):
    r = client.post("/forecast", json={})
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"]
    assert list(got) == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"]
    panel, point, q = _predicted(forecaster)
    assert got["unique_id"] == [sid for sid in panel.ids for _ in range(3)]
    np.testing.assert_array_equal(got["forecast"], point.reshape(-1))
    np.testing.assert_array_equal(got["q0.9"], q[..., 2].reshape(-1))
    # s0 runs 2001-01 .. 2003-06 (30 months): the next three months, as dates
    assert got["ds"][:3] == ["2003-07-01", "2003-08-01", "2003-09-01"]


def test_forecast_h_and_ids(client, forecaster):
    got = client.post("/forecast", json={"h": 2, "ids": ["s2", "s0"]}).json()["forecasts"]
    assert got["unique_id"] == ["s2", "s2", "s0", "s0"]
    _, point, _ = _predicted(forecaster, 2)
    np.testing.assert_array_equal(got["forecast"], point[[2, 0]].reshape(-1))


def test_forecast_from_series_in_the_request(client, forecaster):
    new = _columns(n_series=2, length=20, seed=5, dates=False)
    new["unique_id"] = ["new0"] * 20 + ["new1"] * 22
    r = client.post("/forecast", json={"data": new})
    assert r.status_code == 200, r.text
    got = r.json()["forecasts"]
    _, point, _ = _predicted(forecaster, None, _Table(new))
    np.testing.assert_array_equal(got["forecast"], point.reshape(-1))
    assert got["ds"][:3] == [20, 21, 22] and got["unique_id"][-1] == "new1"


def test_future_covariates():
    cols = _columns(covariate=True)
    model = RNNForecaster(h=2, input_size=6, future_covariates=["promo"], **SMALL)
    model.fit(_Table(cols))
    panel = model.panel_
    future = {"unique_id": [], "ds": [], "promo": []}
    for sid, times in zip(panel.ids, panel.future_times(2)):
        future["unique_id"] += [sid, sid]
        future["ds"] += [str(t)[:10] for t in times]
        future["promo"] += [1.0, 0.0]
    with running(serving.create_app(model)) as c:
        r = c.post("/forecast", json={"future": future})
        assert r.status_code == 200, r.text
        _, point, _ = model.predict_arrays(None, None, _Table(future))
        np.testing.assert_array_equal(r.json()["forecasts"]["forecast"], point.reshape(-1))
        r = c.post("/forecast", json={})
        assert r.status_code == 422 and "futr_df" in r.json()["error"]


@pytest.mark.parametrize("body, status, words", [
    ({"h": 0}, 422, "`h` must be a positive integer"),
    ({"h": True}, 422, "`h`"),
    ({"h": 4}, 422, "at most the trained horizon 3"),
    ({"ids": ["nope"]}, 422, "unknown series id 'nope'"),
    ({"ids": []}, 422, "non-empty list"),
    ({"horizon": 2}, 400, "unknown keys ['horizon']"),
    ({"data": [1, 2]}, 422, "object of columns"),
    ({"data": {"unique_id": ["a"], "ds": [1, 2], "y": [1.0]}}, 422, "one length"),
    ({"data": {"unique_id": ["a", "a"], "ds": [1, 2], "y": [1.0, {"x": 1}]}}, 422,
     "list of numbers"),
    ({"data": {"unique_id": ["a", "a", "a"], "ds": [1, 2, 2], "y": [1.0, 2.0, 3.0]}}, 422,
     "'a'"),
    ({"data": {"unique_id": ["a"], "time": [1], "y": [1.0]}}, 422, "ds"),
])
def test_bad_requests(client, body, status, words):
    r = client.post("/forecast", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_malformed_bodies_and_routes(client):
    r = client.post("/forecast", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = client.post("/forecast", content=b'{"h": NaN}')
    assert r.status_code == 422
    r = client.post("/forecast", content=b"x" * 300_000)
    assert r.status_code == 413
    assert client.post("/predict", json={"inputs": [[1.0]]}).status_code == 404


def test_concurrent_forecasts_equal_one_at_a_time(client):
    want = client.post("/forecast", json={"h": 2}).json()

    def ask(_):
        return client.post("/forecast", json={"h": 2}).json()

    with ThreadPoolExecutor(8) as pool:
        assert all(got == want for got in pool.map(ask, range(16)))


def test_saved_forecaster_is_served_from_its_file(tmp_path, forecaster):
    path = str(tmp_path / "f.fastrnn")
    forecaster.save(path)
    with running(serving.create_app(path)) as c:
        assert c.get("/health").json()["kind"] == "forecaster"
        got = c.post("/forecast", json={}).json()["forecasts"]["forecast"]
    np.testing.assert_array_equal(got, _predicted(forecaster)[1].reshape(-1))
    with pytest.raises(TypeError, match="RNNForecaster"):
        serving.create_app(object())
