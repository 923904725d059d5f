"""fastrnn.tune: searches and fan-outs on the local backend (always) and on a local Ray
started by the test (when Ray is installed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import tune


def make_data(n: int = 64, seed: int = 0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 6, 2)).astype(np.float32)
    y = x[:, -2:, :1].sum(axis=1).astype(np.float32)
    return x, y


def build(config: dict) -> fastrnn.Sequential:
    if config.get("units") == 13:
        raise RuntimeError("13 units are unlucky")
    model = fastrnn.Sequential([fastrnn.layers.SimpleRNN(config["units"], input_shape=[None, 2]),
                                fastrnn.layers.Dense(1)])
    model.compile(optimizer=fastrnn.optimizers.Adam(config["lr"]), loss="mse")
    return model


SPACE = {"units": tune.choice([4, 8]), "lr": tune.loguniform(1e-3, 3e-2),
         "batch_size": tune.choice([16, 32]), "epochs": 2}


def data() -> dict:
    x, y = make_data()
    xv, yv = make_data(32, seed=1)
    return {"x": x, "y": y, "validation_data": (xv, yv)}


def _scores(result: tune.SearchResult) -> list:
    return [(t["config"], t["score"]) for t in result.trials]


# ----------------------------------------------------------------------------- local
def test_local_search_finds_and_saves_the_best(tmp_path):
    threads = fastrnn.get_num_threads()
    path = tmp_path / "best.fastrnn"
    result = tune.search(build, SPACE, data(), num_samples=3, backend="local", seed=7,
                         save_best=path)
    assert fastrnn.get_num_threads() == threads  # trials' thread count is undone
    assert len(result.trials) == 3 and all(t["error"] is None for t in result.trials)
    assert all(t["epochs"] == 2 for t in result.trials)
    best = min(result.trials, key=lambda t: t["score"])
    assert result.best is best and result.best_score == best["score"]
    # each trial's score is its best epoch's val_loss; the model is its last epoch's
    model = result.best_model
    xv, yv = data()["validation_data"]
    np.testing.assert_allclose(model.evaluate(xv, yv, verbose=0),
                               best["metrics"]["val_loss"], rtol=1e-5)
    loaded = fastrnn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(xv), model.predict(xv))
    table = result.table()
    assert table.splitlines()[2].split()[0] == str(best["trial"])
    assert "units" in table and "val_loss (min)" in table
    # the same seed draws the same configurations and trains the same models
    again = tune.search(build, SPACE, data(), num_samples=3, backend="local", seed=7)
    assert _scores(again) == _scores(result)


def test_a_failing_trial_is_recorded_and_the_search_goes_on():
    space = {"units": tune.choice([13, 4]), "lr": 0.01}
    result = tune.search(build, space, data(), num_samples=4, seed=1)
    failed = [t for t in result.trials if t["config"]["units"] == 13]
    assert failed and all("13 units are unlucky" in t["error"] for t in failed)
    assert result.best["config"]["units"] == 4
    assert "failed" in result.table()
    with pytest.raises(RuntimeError, match="Every trial of the search failed"):
        tune.search(build, {"units": 13, "lr": 0.01}, data(), num_samples=2)


def test_a_metric_the_history_lacks_is_named():
    x, y = make_data()
    with pytest.raises(RuntimeError, match="argument `metric`.*'loss'"):
        tune.search(build, {"units": 4, "lr": 0.01}, (x, y), num_samples=1)


@pytest.mark.parametrize("make, match", [
    (lambda: tune.choice([]), "argument `values`.*non-empty"),
    (lambda: tune.choice("abc"), "argument `values`"),
    (lambda: tune.choice([object()]), "argument `values`"),
    (lambda: tune.uniform(1.0, 0.5), "argument `high`.*above low"),
    (lambda: tune.uniform(0.0, float("inf")), "argument `high`.*finite"),
    (lambda: tune.loguniform(0.0, 1.0), "argument `low`.*positive"),
    (lambda: tune.randint(3, 3), "argument `high`"),
    (lambda: tune.randint(1.5, 3), "argument `low`.*integer"),
])
def test_invalid_ranges_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("kwargs, match", [
    ({"space": {}}, "argument `space`"),
    ({"space": {"units": [4, 8]}}, r"argument `space\['units'\]`.*tune.choice"),
    ({"space": {"units": object()}}, r"argument `space\['units'\]`"),
    ({"space": {"lr": float("nan")}}, r"argument `space\['lr'\]`"),
    ({"num_samples": 0}, "argument `num_samples`"),
    ({"mode": "best"}, "argument `mode`"),
    ({"backend": "dask"}, "argument `backend`"),
    ({"searcher": "grid"}, "argument `searcher`"),
    ({"threads_per_trial": 0}, "argument `threads_per_trial`"),
    ({"data": [1, 2]}, "argument `data`"),
    ({"data": {"x": 1}}, "argument `data`"),
])
def test_invalid_search_arguments_are_refused(kwargs, match):
    args = {"space": SPACE, "data": data(), **kwargs}
    with pytest.raises(ValueError, match=match):
        tune.search(build, args.pop("space"), args.pop("data"), **args)


def test_run_many_local_keeps_the_order_and_the_models():
    models = tune.run_many(fit_one, [0, 1], threads_per_task=1)
    fastrnn.set_seed(1)
    ref = fit_one(1)
    x, _ = make_data(8)
    np.testing.assert_array_equal(models[1].predict(x), ref.predict(x))
    assert tune.run_many(lambda t: t * 2, [3, 1, 2]) == [6, 2, 4]


def backtest_one(series: np.ndarray) -> dict:
    """One series' walk-forward backtest (a fan-out task)."""
    models = {"naive": fastrnn.timeseries.NaiveForecaster(),
              "linear": fastrnn.timeseries.LinearForecaster()}
    return fastrnn.timeseries.backtest(models, series, window=8, horizon=4, fit=True).overall


def test_run_many_fans_backtests_out_over_series():
    t = np.arange(120, dtype=np.float32)
    many = [np.sin(t / p) for p in (3.0, 5.0, 7.0)]
    scores = tune.run_many(backtest_one, many)
    assert scores == [backtest_one(s) for s in many]
    assert set(scores[0]) == {"naive", "linear"}


def test_each_trial_runs_with_its_thread_count():
    seen = []

    def build_and_look(config):
        seen.append(fastrnn.get_num_threads())
        return build(config)

    tune.search(build_and_look, {"units": 4, "lr": 0.01}, data(), num_samples=2,
                threads_per_trial=3)  # not the default (all cores) on 2 or 4 cores
    assert seen == [3, 3]
    with pytest.raises(ValueError, match="argument `threads_per_task`"):
        tune.run_many(abs, [1], threads_per_task=-1)


def test_model_bytes_round_trip():
    model = build({"units": 4, "lr": 0.01})
    model.fit(*make_data(), epochs=1, verbose=0)
    again = tune.model_from_bytes(tune.model_to_bytes(model))
    x, _ = make_data(8)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="fastrnn model file"):
        tune.model_from_bytes(b"not a zip")


def test_optuna_local_search():
    pytest.importorskip("optuna")
    result = tune.search(build, SPACE, data(), num_samples=3, searcher="optuna", seed=3)
    assert len(result.trials) == 3 and result.best is not None
    assert all(t["config"]["units"] in (4, 8) and 1e-3 <= t["config"]["lr"] < 3e-2
               for t in result.trials)


def test_ray_backend_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[ray\]"'):
        tune.search(build, SPACE, data(), backend="ray")
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[ray\]"'):
        tune.run_many(abs, [1], backend="ray")


# ----------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    from ray import cloudpickle
    # Ray's workers get this module's functions (build, ...) by value, not by an import of
    # a tests folder they do not have on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def fit_one(seed: int) -> fastrnn.Sequential:
    fastrnn.set_seed(seed)
    model = build({"units": 4, "lr": 0.01})
    model.fit(*make_data(seed=seed), epochs=1, verbose=0)
    return model


def test_ray_search_and_run_many_match_the_local_backend(local_ray, tmp_path):
    on_ray = tune.search(build, SPACE, data(), num_samples=2, backend="ray", seed=7,
                         save_best=tmp_path / "best.fastrnn")
    local = tune.search(build, SPACE, data(), num_samples=2, backend="local", seed=7)
    # the same configurations and, trained with one thread each, the same scores
    assert [t["config"] for t in on_ray.trials] == [t["config"] for t in local.trials]
    np.testing.assert_allclose([t["score"] for t in on_ray.trials],
                               [t["score"] for t in local.trials], rtol=1e-6)
    xv, _ = data()["validation_data"]
    np.testing.assert_allclose(on_ray.best_model.predict(xv), local.best_model.predict(xv),
                               rtol=1e-5, atol=1e-6)
    assert fastrnn.load_model(tmp_path / "best.fastrnn").count_params() > 0
    assert "search on ray" in on_ray.table()
    # fan-out: models come back as their files' bytes
    models = tune.run_many(fit_one, [0, 1], backend="ray")
    x, _ = make_data(8)
    for a, b in zip(models, [fit_one(0), fit_one(1)]):
        np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-5, atol=1e-6)
