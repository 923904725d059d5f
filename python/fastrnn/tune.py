"""Many-model jobs: hyperparameter search and fan-out over series or folds, on Ray or here.

A search trains one fastrnn model per trial; a fan-out runs one function per task (a series,
a backtest fold). ``backend="ray"`` runs them on Ray (Ray Tune for searches, Ray tasks for
fan-outs: a local Ray started for the call, or the cluster of an earlier ``ray.init``);
``backend="local"`` runs the same one after another in this process, without Ray::

    import fastrnn
    from fastrnn import tune

    def build(config):
        model = fastrnn.Sequential([
            fastrnn.layers.LSTM(config["units"], input_shape=[None, 14]),
            fastrnn.layers.Dense(1)])
        model.compile(optimizer=fastrnn.optimizers.Adam(config["lr"]), loss="mse")
        return model

    space = {"units": tune.choice([16, 32, 64]), "lr": tune.loguniform(1e-4, 1e-2),
             "batch_size": tune.choice([64, 256])}
    result = tune.search(build, space, {"x": x, "y": y, "validation_data": (xv, yv),
                                         "epochs": 10},
                         num_samples=20, backend="ray", threads_per_trial=1,
                         save_best="best.fastrnn")
    print(result.table())

Each trial sets its own thread count (``threads_per_trial``; on Ray also the CPUs it reserves,
so a machine runs ``cores // threads_per_trial`` trials at once) and, with ``seed``, calls
``fastrnn.set_seed(seed + trial)``. Trained models come back as fastrnn model files (the
archive ``Model.save`` writes; on Ray through Tune's checkpoints), never as pickled model
objects. Ray does pickle (cloudpickle) the function you pass to run it on its workers; define
it in your script or an importable module.

Searchers: ``"random"`` samples every configuration up front from ``seed`` (the same
configurations on both backends); ``"optuna"`` (needs ``optuna``) proposes each from the
results so far (TPE; on Ray through ``ray.tune.search.optuna.OptunaSearch``).

Install Ray with ``pip install "fastrnn[ray]"``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import traceback
import zlib
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import numpy as np

__all__ = [
    "SearchResult",
    "choice",
    "loguniform",
    "model_from_bytes",
    "model_to_bytes",
    "randint",
    "run_many",
    "search",
    "uniform",
]

_RAY_HINT = 'pip install "fastrnn[ray]"'
# fit arguments a configuration may set (the rest of a configuration goes to build_fn only)
FIT_KEYS = ("batch_size", "epochs", "shuffle", "truncate_bptt")
_MODEL_FILE = "model.fastrnn"


def _invalid(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(
        f"Received an invalid value for argument `{name}`: expected {expected}, got {got!r}."
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))


def _finite(name: str, v: Any) -> float:
    if not _is_number(v) or not math.isfinite(float(v)):
        raise _invalid(name, "a finite number", v)
    return float(v)


def _is_constant(v: Any) -> bool:
    """A plain value a configuration may hold (what a model file's JSON can keep)."""
    if v is None or isinstance(v, (str, bool)):
        return True
    if _is_number(v):
        return math.isfinite(float(v))
    if isinstance(v, (list, tuple)):
        return all(_is_constant(u) and not isinstance(u, (list, tuple)) for u in v)
    return False


def _plain(v: Any) -> Any:
    """NumPy scalars as Python ones (configurations stay JSON-ready)."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


# ----------------------------------------------------------------------------- search spaces
class _Domain:
    """A hyperparameter's range: sampled here, or handed to Ray Tune or Optuna."""

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def to_ray(self, ray_tune: Any) -> Any:
        raise NotImplementedError

    def suggest(self, trial: Any, name: str) -> Any:
        raise NotImplementedError

    def decode(self, value: Any) -> Any:
        """A value Ray or Optuna proposed, as the configuration's value."""
        return _plain(value)


class _Choice(_Domain):
    def __init__(self, values: Sequence) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise _invalid("values", "a non-empty list of candidates", values)
        for v in values:
            if not _is_constant(v):
                raise _invalid("values", "numbers, strings, bools, None or flat lists of "
                               "them as candidates", v)
        self.values = [list(v) if isinstance(v, tuple) else _plain(v) for v in values]

    # Ray and Optuna pick an index: candidates may then be lists, which they cannot hold.
    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def to_ray(self, ray_tune: Any) -> Any:
        return ray_tune.choice(list(range(len(self.values))))

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(range(len(self.values))))

    def decode(self, value: Any) -> Any:
        return self.values[int(value)]

    def __repr__(self) -> str:
        return f"choice({self.values!r})"


class _Uniform(_Domain):
    log = False

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = _finite("low", low), _finite("high", high)
        if not self.low < self.high:
            raise _invalid("high", f"a number above low = {self.low}", high)
        if self.log and self.low <= 0:
            raise _invalid("low", "a positive number (the range is sampled on a log scale)",
                           low)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def to_ray(self, ray_tune: Any) -> Any:
        return (ray_tune.loguniform if self.log else ray_tune.uniform)(self.low, self.high)

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def __repr__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low}, {self.high})"


class _LogUniform(_Uniform):
    log = True


class _RandInt(_Domain):
    def __init__(self, low: int, high: int) -> None:
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise _invalid(name, "an integer", v)
        if not low < high:
            raise _invalid("high", f"an integer above low = {low} (high is excluded)", high)
        self.low, self.high = int(low), int(high)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high))

    def to_ray(self, ray_tune: Any) -> Any:
        return ray_tune.randint(self.low, self.high)

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high - 1)

    def decode(self, value: Any) -> int:
        return int(value)

    def __repr__(self) -> str:
        return f"randint({self.low}, {self.high})"


def choice(values: Sequence) -> _Domain:
    """One of `values` (numbers, strings, bools, None, or flat lists of them)."""
    return _Choice(values)


def uniform(low: float, high: float) -> _Domain:
    """A float uniformly in ``[low, high)``."""
    return _Uniform(low, high)


def loguniform(low: float, high: float) -> _Domain:
    """A float in ``[low, high)`` with a uniform logarithm (``0 < low < high``)."""
    return _LogUniform(low, high)


def randint(low: int, high: int) -> _Domain:
    """An integer in ``[low, high)`` (high excluded, as NumPy and Ray Tune)."""
    return _RandInt(low, high)


def _check_space(space: Any) -> dict:
    if not isinstance(space, dict) or not space:
        raise _invalid("space", "a non-empty dict of name -> tune.choice/uniform/loguniform/"
                       "randint or a constant", space)
    for key, value in space.items():
        if not isinstance(key, str) or not key:
            raise _invalid("space", "hyperparameter names as non-empty strings", key)
        if isinstance(value, _Domain):
            continue
        if isinstance(value, (list, tuple)):
            raise _invalid(f"space[{key!r}]", "a tune.choice(...) for a list of candidates "
                           "(or tune.choice([[...]]) for one list value)", value)
        if not _is_constant(value):
            raise _invalid(f"space[{key!r}]", "tune.choice/uniform/loguniform/randint or a "
                           "constant (a finite number, a string, a bool or None)", value)
    return dict(space)


# ----------------------------------------------------------------------------- models as bytes
def model_to_bytes(model: Any) -> bytes:
    """`model` as the bytes of its fastrnn model file (``Model.save``'s archive)."""
    with tempfile.TemporaryDirectory(prefix="fastrnn-") as folder:
        path = os.path.join(folder, _MODEL_FILE)
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes) -> Any:
    """The model in :func:`model_to_bytes`'s bytes (read as any model file: checked, never
    unpickled)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _invalid("data", "the bytes of a fastrnn model file", type(data).__name__)
    from .models import load_model
    with tempfile.TemporaryDirectory(prefix="fastrnn-") as folder:
        path = os.path.join(folder, _MODEL_FILE)
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path)


class _ModelFile:
    """A model travelling between processes as its file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data


# ----------------------------------------------------------------------------- one trial
def _fit_arguments(data: Any) -> dict:
    if isinstance(data, dict):
        unknown = {"x", "y"} - set(data)
        if unknown:
            raise _invalid("data", "fit's keyword arguments with at least 'x' and 'y'",
                           sorted(data))
        if "verbose" in data:
            raise _invalid("data", "fit's arguments without 'verbose' (trials are silent)",
                           "verbose")
        return dict(data)
    if isinstance(data, tuple) and len(data) in (2, 3):
        args = {"x": data[0], "y": data[1]}
        if len(data) == 3:
            args["validation_data"] = data[2]
        return args
    raise _invalid("data", "a dict of fit arguments ({'x': ..., 'y': ..., "
                   "'validation_data': ...}) or a tuple (x, y[, (x_val, y_val)])",
                   type(data).__name__)


class _Job:
    """What every trial of a search needs (shipped once to Ray's object store)."""

    def __init__(self, build_fn: Callable, fit_args: dict, metric: str, mode: str,
                 threads: int, seed: Optional[int]) -> None:
        self.build_fn = build_fn
        self.fit_args = fit_args
        self.metric = metric
        self.mode = mode
        self.threads = threads
        self.seed = seed

    def run(self, index: int, config: dict) -> tuple[dict, bytes]:
        """Builds and fits trial `index`: its results and its model file's bytes."""
        import fastrnn
        before = fastrnn.get_num_threads()
        fastrnn.set_num_threads(self.threads)
        try:
            if self.seed is not None:
                fastrnn.set_seed(self.seed + index)
            model = self.build_fn(dict(config))
            if not hasattr(model, "fit") or not getattr(model, "compiled", False):
                raise TypeError(
                    "build_fn must return a compiled fastrnn model, got "
                    f"{type(model).__name__}{' (not compiled)' if hasattr(model, 'fit') else ''}."
                )
            args = {**self.fit_args, **{k: config[k] for k in FIT_KEYS if k in config}}
            start = time.perf_counter()
            history = model.fit(verbose=0, **args).history
            seconds = time.perf_counter() - start
        finally:
            fastrnn.set_num_threads(before)
        if self.metric not in history:
            raise ValueError(
                f"Received an invalid value for argument `metric`: the trials' histories have "
                f"{sorted(history)}, not {self.metric!r} (val_* needs validation data)."
            )
        values = np.asarray(history[self.metric], dtype=np.float64)
        finite = values[np.isfinite(values)]
        score = float("nan") if not finite.size else float(
            finite.min() if self.mode == "min" else finite.max())
        result = {"score": score, "epochs": len(values), "seconds": seconds,
                  **{k: float(v[-1]) for k, v in history.items() if len(v)}}
        return result, model_to_bytes(model)


# ----------------------------------------------------------------------------- results
class SearchResult:
    """The trials of a search and its best model.

    Attributes:
        trials: one dict per trial, in the order they were proposed: ``"trial"`` (index),
            ``"config"``, ``"score"`` (the best epoch's `metric`; NaN for a failed trial),
            ``"epochs"``, ``"seconds"`` (fitting), the last epoch's logs (``"metrics"``) and
            ``"error"`` (None, or why the trial failed).
        metric, mode: what was optimised.
        best: the best trial's dict (None when every trial failed).
        backend, searcher: how the search ran.
    """

    def __init__(self, trials: list, metric: str, mode: str, best_bytes: Optional[bytes],
                 backend: str, searcher: str) -> None:
        self.trials = trials
        self.metric = metric
        self.mode = mode
        self.backend = backend
        self.searcher = searcher
        self.best_model_bytes = best_bytes
        ok = [t for t in trials if t["error"] is None and math.isfinite(t["score"])]
        sign = 1.0 if mode == "min" else -1.0
        self.best = min(ok, key=lambda t: sign * t["score"]) if ok else None
        self._best_model: Any = None

    @property
    def best_config(self) -> Optional[dict]:
        return None if self.best is None else self.best["config"]

    @property
    def best_score(self) -> float:
        return float("nan") if self.best is None else self.best["score"]

    @property
    def best_model(self) -> Any:
        """The best trial's trained model (loaded from its file's bytes)."""
        if self.best_model_bytes is None:
            raise ValueError("No trial of this search finished with a finite score, so there "
                             "is no best model; see .table() for the errors.")
        if self._best_model is None:
            self._best_model = model_from_bytes(self.best_model_bytes)
        return self._best_model

    def save_best(self, path: Union[str, os.PathLike]) -> None:
        """Writes the best model's file to `path` (atomically)."""
        from .saving import _atomic_write
        if self.best_model_bytes is None:
            self.best_model  # noqa: B018 (raises the explanation)
        _atomic_write(os.fspath(path), self.best_model_bytes)

    def table(self) -> str:
        """A plain-text table, best trial first (failed ones last, with their error)."""
        keys = list(dict.fromkeys(k for t in self.trials for k in t["config"]))
        sign = 1.0 if self.mode == "min" else -1.0
        rows = sorted(self.trials, key=lambda t: (
            t["error"] is not None or not math.isfinite(t["score"]), sign * t["score"]
            if math.isfinite(t["score"]) else 0.0, t["trial"]))
        header = ["trial", *keys, f"{self.metric} ({self.mode})", "epochs run", "seconds"]
        body = []
        for t in rows:
            cells = [str(t["trial"]), *(_cell(t["config"].get(k, "")) for k in keys)]
            if t["error"] is not None:
                cells += ["failed", "", "", t["error"].strip().splitlines()[-1][:80]]
            else:
                cells += [f"{t['score']:.6g}", str(t["epochs"]), f"{t['seconds']:.3g}"]
            body.append(cells)
        width = [max(len(r[i]) for r in [header, *body] if i < len(r))
                 for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(header, width))]
        lines.append("  ".join("-" * w for w in width))
        for r in body:
            lines.append("  ".join(c.rjust(w) for c, w in zip(r, width)) +
                         ("  " + r[-1] if len(r) > len(header) else ""))
        lines.append(f"({len(self.trials)} trials, {self.searcher} search on {self.backend})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SearchResult(trials={len(self.trials)}, best {self.metric}="
                f"{self.best_score:.6g}, config={self.best_config})")


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _trial_row(index: int, config: dict, result: Optional[dict], error: Optional[str]) -> dict:
    if result is None:
        return {"trial": index, "config": config, "score": float("nan"), "epochs": 0,
                "seconds": 0.0, "metrics": {}, "error": error}
    skip = {"score", "epochs", "seconds"}
    return {"trial": index, "config": config, "score": result["score"],
            "epochs": int(result["epochs"]), "seconds": float(result["seconds"]),
            "metrics": {k: v for k, v in result.items() if k not in skip}, "error": None}


# ----------------------------------------------------------------------------- search
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise _invalid(name, "a positive integer", value)
    return int(value)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(
            'searcher="optuna" needs Optuna: pip install optuna (or use searcher="random").'
        ) from exc
    return optuna


def _import_ray() -> Any:
    try:
        import ray
        from ray import tune as ray_tune
    except ImportError as exc:
        raise ImportError(
            f'backend="ray" needs Ray Tune, which is not installed: {_RAY_HINT} '
            '(or use backend="local").'
        ) from exc
    return ray, ray_tune


def search(
    build_fn: Callable[[dict], Any],
    space: dict,
    data: Any,
    *,
    num_samples: int = 10,
    metric: str = "val_loss",
    mode: str = "min",
    backend: str = "local",
    searcher: str = "random",
    threads_per_trial: int = 1,
    max_concurrent: Optional[int] = None,
    seed: Optional[int] = 0,
    save_best: Optional[Union[str, os.PathLike]] = None,
) -> SearchResult:
    """Trains `num_samples` models, one per configuration drawn from `space`.

    Args:
        build_fn: ``build_fn(config) -> compiled fastrnn model``; `config` holds one value per
            key of `space`. Keys named like fit arguments (``batch_size``, ``epochs``,
            ``shuffle``, ``truncate_bptt``) are passed to ``fit`` too.
        space: name -> :func:`choice`, :func:`uniform`, :func:`loguniform`, :func:`randint`
            or a constant.
        data: ``fit``'s keyword arguments (``{"x": x, "y": y, "validation_data": (xv, yv),
            "epochs": 10, "callbacks": [...]}``) or ``(x, y)`` / ``(x, y, (x_val, y_val))``.
        num_samples: how many trials.
        metric: the history entry to optimise (its best epoch counts), e.g. ``"val_loss"``.
        mode: ``"min"`` or ``"max"``.
        backend: ``"local"`` (one trial after another here) or ``"ray"`` (Ray Tune).
        searcher: ``"random"`` or ``"optuna"``.
        threads_per_trial: fastrnn threads (and Ray CPUs) per trial.
        max_concurrent: on Ray, at most this many trials at once (default: as CPUs allow).
        seed: configurations and trial t's ``fastrnn.set_seed(seed + t)`` (None: unseeded).
        save_best: a path to write the best model's file to.

    Returns:
        A :class:`SearchResult` (``.table()``, ``.best_config``, ``.best_model``).

    A trial that raises is recorded with its error (the search goes on); if every trial
    fails, the search raises the first error.
    """
    space = _check_space(space)
    fit_args = _fit_arguments(data)
    num_samples = _positive_int("num_samples", num_samples)
    threads_per_trial = _positive_int("threads_per_trial", threads_per_trial)
    if max_concurrent is not None:
        max_concurrent = _positive_int("max_concurrent", max_concurrent)
    if not callable(build_fn):
        raise _invalid("build_fn", "a function config -> compiled fastrnn model", build_fn)
    if not isinstance(metric, str) or not metric:
        raise _invalid("metric", "a history name such as 'val_loss'", metric)
    if mode not in ("min", "max"):
        raise _invalid("mode", "'min' or 'max'", mode)
    if backend not in ("local", "ray"):
        raise _invalid("backend", "'local' or 'ray'", backend)
    if searcher not in ("random", "optuna"):
        raise _invalid("searcher", "'random' or 'optuna'", searcher)
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
            seed, (int, np.integer)) or seed < 0):
        raise _invalid("seed", "None or a non-negative integer", seed)
    job = _Job(build_fn, fit_args, metric, mode, threads_per_trial, seed)
    if backend == "ray":
        ray, ray_tune = _import_ray()
    if searcher == "optuna":
        optuna = _import_optuna()
    if backend == "local":
        if searcher == "random":
            trials, best = _local_random(job, space, num_samples, seed)
        else:
            trials, best = _local_optuna(job, space, num_samples, seed, optuna)
    else:
        trials, best = _ray_search(job, space, num_samples, seed, searcher, max_concurrent,
                                   ray, ray_tune)
    if all(t["error"] is not None for t in trials):
        raise RuntimeError(f"Every trial of the search failed; the first:\n{trials[0]['error']}")
    result = SearchResult(trials, metric, mode, best, backend, searcher)
    if save_best is not None and result.best_model_bytes is not None:
        result.save_best(save_best)
    return result


def _sample_configs(space: dict, num_samples: int, seed: Optional[int]) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{k: (v.sample(rng) if isinstance(v, _Domain) else _plain(v))
             for k, v in space.items()} for _ in range(num_samples)]


class _Best:
    """Keeps the best trial's model file so far."""

    def __init__(self, mode: str) -> None:
        self.sign = 1.0 if mode == "min" else -1.0
        self.score = math.inf
        self.data: Optional[bytes] = None

    def offer(self, score: float, data: bytes) -> None:
        if math.isfinite(score) and self.sign * score < self.score:
            self.score, self.data = self.sign * score, data


def _run_local(job: _Job, index: int, config: dict, best: _Best) -> dict:
    try:
        result, data = job.run(index, config)
    except Exception:
        return _trial_row(index, config, None, traceback.format_exc())
    best.offer(result["score"], data)
    return _trial_row(index, config, result, None)


def _local_random(job: _Job, space: dict, num_samples: int,
                  seed: Optional[int]) -> tuple[list, Optional[bytes]]:
    best = _Best(job.mode)
    trials = [_run_local(job, i, config, best)
              for i, config in enumerate(_sample_configs(space, num_samples, seed))]
    return trials, best.data


def _local_optuna(job: _Job, space: dict, num_samples: int, seed: Optional[int],
                  optuna: Any) -> tuple[list, Optional[bytes]]:
    study = optuna.create_study(
        direction="minimize" if job.mode == "min" else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed))
    best = _Best(job.mode)
    trials = []
    for i in range(num_samples):
        trial = study.ask()
        config = {k: (v.decode(v.suggest(trial, k)) if isinstance(v, _Domain) else _plain(v))
                  for k, v in space.items()}
        row = _run_local(job, i, config, best)
        trials.append(row)
        if row["error"] is None and math.isfinite(row["score"]):
            study.tell(trial, row["score"])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return trials, best.data


def _ray_trial(config: dict, job: _Job, configs: Optional[list], space: dict) -> None:
    """A Ray Tune function trainable: one fastrnn fit, reported with its model file as the
    checkpoint."""
    from ray import tune as ray_tune
    if configs is not None:
        index = int(config["trial"])
        config = configs[index]
    else:  # trials proposed as results come in: seeded by their id (no numbering here)
        index = zlib.crc32(ray_tune.get_context().get_trial_id().encode()) % 1_000_000
        config = {k: (v.decode(config[k]) if isinstance(v, _Domain) else _plain(v))
                  for k, v in space.items()}
    result, data = job.run(index, config)
    with tempfile.TemporaryDirectory(prefix="fastrnn-trial-") as folder:
        with open(os.path.join(folder, _MODEL_FILE), "wb") as f:
            f.write(data)
        ray_tune.report({**result, "trial_index": index if configs is not None else -1},
                        checkpoint=ray_tune.Checkpoint.from_directory(folder))


def _ray_search(job: _Job, space: dict, num_samples: int, seed: Optional[int], searcher: str,
                max_concurrent: Optional[int], ray: Any,
                ray_tune: Any) -> tuple[list, Optional[bytes]]:
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="fastrnn-tune-")
    try:
        if searcher == "random":
            configs: Optional[list] = _sample_configs(space, num_samples, seed)
            param_space = {"trial": ray_tune.grid_search(list(range(num_samples)))}
            tune_config = ray_tune.TuneConfig(num_samples=1, max_concurrent_trials=max_concurrent,
                                              reuse_actors=True)
        else:
            from ray.tune.search.optuna import OptunaSearch
            configs = None
            param_space = {k: v.to_ray(ray_tune) for k, v in space.items()
                           if isinstance(v, _Domain)}
            tune_config = ray_tune.TuneConfig(
                metric="score", mode=job.mode, num_samples=num_samples,
                search_alg=OptunaSearch(seed=seed), max_concurrent_trials=max_concurrent,
                reuse_actors=True)
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(_ray_trial, job=job, configs=configs, space=space),
            {"cpu": job.threads})
        tuner = ray_tune.Tuner(
            trainable, param_space=param_space, tune_config=tune_config,
            run_config=ray_tune.RunConfig(name="fastrnn", storage_path=storage, verbose=0))
        grid = tuner.fit()
        trials, best, best_path = [], _Best(job.mode), None
        for k, res in enumerate(grid):
            metrics = res.metrics or {}
            index = int(metrics.get("trial_index", res.config.get("trial", -1)))
            index = k if index < 0 else index
            config = configs[index] if configs is not None else {
                key: (v.decode(res.config[key]) if isinstance(v, _Domain) else _plain(v))
                for key, v in space.items()}
            if res.error is not None or "score" not in metrics:
                trials.append(_trial_row(index, config, None, str(res.error)))
                continue
            result = {k: v for k, v in metrics.items()
                      if k in ("score", "epochs", "seconds") or k in _history_keys(metrics)}
            trials.append(_trial_row(index, config, result, None))
            before = best.score
            best.offer(result["score"], b"")
            if best.score != before and res.checkpoint is not None:
                best_path = os.path.join(res.checkpoint.path, _MODEL_FILE)
        data = None
        if best_path is not None:
            with open(best_path, "rb") as f:
                data = f.read()
        trials.sort(key=lambda t: t["trial"])
        return trials, data
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()


def _history_keys(metrics: dict) -> set:
    """The reported keys that are the last epoch's logs (not Ray's own bookkeeping)."""
    ours = {"score", "epochs", "seconds", "trial_index"}
    ray_keys = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id",
                "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                "config", "time_since_restore", "iterations_since_restore", "experiment_tag",
                "should_checkpoint"}
    return {k for k, v in metrics.items()
            if k not in ours and k not in ray_keys and isinstance(v, float)}


# ----------------------------------------------------------------------------- fan-out
def _call(fn: Callable, task: Any, threads: int) -> Any:
    import fastrnn
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads)
    try:
        return fn(task)
    finally:
        fastrnn.set_num_threads(before)


def _remote_call(fn: Callable, task: Any, threads: int) -> Any:
    out = _call(fn, task, threads)
    return _ModelFile(model_to_bytes(out)) if _is_model(out) else out


def _is_model(value: Any) -> bool:
    from .models.model import Model
    return isinstance(value, Model)


def run_many(fn: Callable[[Any], Any], tasks: Sequence, *, backend: str = "local",
             threads_per_task: int = 1) -> list:
    """``[fn(task) for task in tasks]``, each call with `threads_per_task` fastrnn threads;
    on Ray as one task per item (Ray reserves `threads_per_task` CPUs for each).

    For many series or backtest folds, e.g. one model per series::

        def one(series):
            return fastrnn.timeseries.backtest({"lstm": build()}, series, window=48,
                                               horizon=12, fit=refit).overall

        scores = tune.run_many(one, list_of_series, backend="ray")

    A fastrnn model returned by `fn` travels back as its model file's bytes (and is loaded
    again here); other results must be picklable (plain data, arrays).
    """
    if not callable(fn):
        raise _invalid("fn", "a function task -> result", fn)
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise _invalid("tasks", "a list of tasks", type(tasks).__name__)
    threads_per_task = _positive_int("threads_per_task", threads_per_task)
    if backend not in ("local", "ray"):
        raise _invalid("backend", "'local' or 'ray'", backend)
    if backend == "local":
        return [_call(fn, task, threads_per_task) for task in tasks]
    ray, _ = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=threads_per_task)(_remote_call)
        fn_ref = ray.put(fn)
        outs = ray.get([remote.remote(fn_ref, task, threads_per_task) for task in tasks])
    finally:
        if started:
            ray.shutdown()
    return [model_from_bytes(o.data) if isinstance(o, _ModelFile) else o for o in outs]
