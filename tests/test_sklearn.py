"""fastrnn.sklearn: scikit-learn's own estimator checks, plus what the checks do not cover
(sequences, batch independence, repeatable refits, pickling by archive, the seed's workflow)."""

from __future__ import annotations

import importlib
import io
import pickle
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")

from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastrnn  # noqa: E402
from fastrnn.sklearn import RNNClassifier, RNNRegressor, expected_failed_checks  # noqa: E402

# scikit-learn 1.6 hands pytest a generator of parameters (deprecated by pytest 8, an error
# under pytest 9 with warnings as errors): the same parametrization, listed.
_checks = parametrize_with_checks([RNNClassifier(), RNNRegressor()],
                                  expected_failed_checks=expected_failed_checks).mark


@pytest.mark.parametrize(_checks.args[0], list(_checks.args[1]), **_checks.kwargs)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- data
def first_step_task(n: int = 480, T: int = 12, F: int = 2, seed: int = 0):
    """Label = sign of the first step's first feature, hidden under noise at every later step:
    only a network that carries the first step to the end (backpropagating through it) can
    learn it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X[:, 0, 0] > 0).astype(np.int64)
    return X, y


def three_class_strings(n: int = 240, T: int = 6, seed: int = 1):
    """Classes named by strings, decided by the sum of a 2-D (one feature per step) series."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T))
    s = X.sum(axis=1)
    names = np.array(["down", "flat", "up"])
    y = names[np.digitize(s, np.quantile(s, [1 / 3, 2 / 3]))]
    return X, y


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_learns_a_dependency_on_the_first_step(cell):
    X, y = first_step_task()
    clf = RNNClassifier(n_cells=16, cell=cell, epochs=40, random_state=0).fit(X[:360], y[:360])
    assert clf.score(X[360:], y[360:]) > 0.85
    assert clf.n_features_in_ == 12 and clf.n_step_features_ == 2
    assert clf.input_shape_ == (12, 2)
    assert len(clf.losses_) == 40 and clf.losses_[-1] < clf.losses_[0]


def test_truncated_bptt_cannot_reach_the_first_step():
    # The same task with backpropagation through the last step only: the first step's
    # influence is never trained, so the test accuracy stays near chance.
    X, y = first_step_task()
    clf = RNNClassifier(n_cells=16, epochs=40, truncate_bptt=1, random_state=0)
    clf.fit(X[:360], y[:360])
    assert clf.score(X[360:], y[360:]) < 0.7


def test_multiclass_string_labels_and_probabilities():
    X, y = three_class_strings()
    clf = RNNClassifier(n_cells=8, epochs=30, random_state=0).fit(X[:180], y[:180])
    assert list(clf.classes_) == ["down", "flat", "up"]
    pred = clf.predict(X[180:])
    assert pred.dtype == y.dtype and set(pred) <= set(clf.classes_)
    assert clf.score(X[180:], y[180:]) > 0.8
    proba = clf.predict_proba(X[180:])
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X[180:]), rtol=1e-12)
    assert clf.decision_function(X[180:]).shape == (60, 3)


def test_binary_probabilities_are_the_sigmoid_of_the_decision():
    X, y = first_step_task(80)
    labels = np.where(y == 1, "pos", "neg")
    clf = RNNClassifier(n_cells=4, epochs=3, random_state=0).fit(X, labels)
    z = clf.decision_function(X)
    assert z.shape == (80,)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.where(z > 0, "pos", "neg"))


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 8, 2)).astype(np.float32)
    Y = np.stack([X[:, 0, 0], X[:, -1, 1] - X[:, 3, 0]], axis=1)
    reg = RNNRegressor(n_cells=16, epochs=60, random_state=0).fit(X[:150], Y[:150])
    assert reg.predict(X[150:]).shape == (50, 2)
    assert reg.score(X[150:], Y[150:]) > 0.7
    reg1 = RNNRegressor(n_cells=8, epochs=2, random_state=0).fit(X, Y[:, 1])
    assert reg1.predict(X).shape == (200,)


def test_losses_and_validation_losses():
    X, y = first_step_task(120)
    clf = RNNClassifier(n_cells=4, epochs=3, random_state=0)
    clf.fit(X[:80], y[:80], X_val=X[80:], y_val=y[80:])
    assert len(clf.losses_) == 3 and len(clf.val_losses_) == 3
    # val_losses_ is the loss of the fitted network on the validation data
    z = clf.decision_function(X[80:])
    bce = np.mean(np.logaddexp(0, z) - y[80:] * z)
    assert clf.val_losses_[-1] == pytest.approx(bce, rel=1e-4)
    clf.fit(X[:80], y[:80])  # without validation data the attribute goes away
    assert not hasattr(clf, "val_losses_") and len(clf.losses_) == 3


def test_validation_labels_must_be_known_and_come_in_pairs():
    X, y = first_step_task(60)
    with pytest.raises(ValueError, match="not seen in `y`"):
        RNNClassifier(epochs=1).fit(X, y, X_val=X[:5], y_val=[0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="both `X_val` and `y_val`"):
        RNNClassifier(epochs=1).fit(X, y, X_val=X[:5])
    with pytest.raises(ValueError, match=r"\(12, 1\)"):
        RNNClassifier(epochs=1).fit(X, y, X_val=X[:5, :, :1], y_val=y[:5])


def test_early_stopping_only_when_asked():
    # Validation labels flipped: the better the network learns, the worse the validation
    # loss, so early stopping ends training soon and keeps the best epoch's weights.
    X, y = first_step_task(260)
    args = dict(n_cells=8, epochs=60, learning_rate=0.02, random_state=0)
    plain = RNNClassifier(**args).fit(X[:200], y[:200], X_val=X[200:], y_val=1 - y[200:])
    assert len(plain.losses_) == len(plain.val_losses_) == 60
    stopped = RNNClassifier(early_stopping=True, n_iter_no_change=3, **args)
    stopped.fit(X[:200], y[:200], X_val=X[200:], y_val=1 - y[200:])
    assert len(stopped.losses_) < 20 and len(stopped.val_losses_) == len(stopped.losses_)
    assert stopped.losses_ == plain.losses_[:len(stopped.losses_)]
    z = stopped.decision_function(X[200:])
    bce = np.mean(np.logaddexp(0, z) - (1 - y[200:]) * z)
    assert bce == pytest.approx(min(stopped.val_losses_), rel=1e-4)


def test_optimizer_choice_reaches_the_network():
    X, y = first_step_task(40)
    sgd = RNNClassifier(n_cells=4, epochs=1, optimizer="sgd", learning_rate=0.05,
                        random_state=0).fit(X, y)
    adam = RNNClassifier(n_cells=4, epochs=1, random_state=0).fit(X, y)
    assert isinstance(sgd.model_.optimizer, fastrnn.optimizers.SGD)
    assert isinstance(adam.model_.optimizer, fastrnn.optimizers.Adam)
    assert sgd.model_.optimizer.learning_rate == pytest.approx(0.05)
    assert sgd.losses_ != adam.losses_


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_predictions_do_not_depend_on_the_batch(cell):
    X, y = first_step_task(50, T=7)
    clf = RNNClassifier(n_cells=32, cell=cell, epochs=2, random_state=0).fit(X, y)
    reg = RNNRegressor(n_cells=32, cell=cell, epochs=2, random_state=0).fit(X, y * 1.0)
    threads = fastrnn.get_num_threads()
    try:
        for method in (clf.decision_function, clf.predict_proba, reg.predict):
            fastrnn.set_num_threads(2)
            whole = method(X)
            one_by_one = np.concatenate([method(X[i:i + 1]) for i in range(len(X))])
            shuffled = np.random.default_rng(0).permutation(len(X))
            fastrnn.set_num_threads(1)
            np.testing.assert_array_equal(whole, one_by_one)  # bit for bit
            np.testing.assert_array_equal(whole[shuffled], method(X[shuffled]))
            np.testing.assert_array_equal(whole[7:19], method(X[7:19]))
    finally:
        fastrnn.set_num_threads(threads)


def test_refits_repeat_with_the_same_random_state():
    X, y = first_step_task(64)
    a = RNNClassifier(n_cells=8, epochs=3, cell="lstm", random_state=3).fit(X, y)
    first = (list(a.losses_), a.predict_proba(X))
    a.fit(X, y)
    assert a.losses_ == first[0]
    np.testing.assert_array_equal(a.predict_proba(X), first[1])
    b = RNNClassifier(n_cells=8, epochs=3, cell="lstm", random_state=4).fit(X, y)
    assert b.losses_ != first[0]


def test_fitting_leaves_fastrnn_seed_stream_alone():
    X, y = first_step_task(40)

    def next_model_weights():
        m = fastrnn.Sequential([fastrnn.layers.Dense(3)])
        m.build((None, 4))
        return m.get_weights()[0]

    fastrnn.set_seed(5)
    expected = next_model_weights()
    fastrnn.set_seed(5)
    clf = RNNClassifier(n_cells=4, epochs=1, random_state=0).fit(X, y)
    clf.predict(X)
    pickle.dumps(clf)  # (unpickling does count: fastrnn.load_model creates a model)
    np.testing.assert_array_equal(next_model_weights(), expected)


# ----------------------------------------------------------------------------- pickling
class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.globals: set = set()

    def find_class(self, module, name):
        self.globals.add((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("masked", [False, True])
def test_pickle_holds_the_archive_not_the_model_objects(masked):
    X, y = first_step_task(60)
    clf = RNNClassifier(n_cells=8, epochs=2, cell="gru", random_state=0,
                        mask_value=0.0 if masked else None).fit(X, y)
    data = pickle.dumps(clf)
    unpickler = _RecordingUnpickler(data)
    back = unpickler.load()
    modules = {m for m, _ in unpickler.globals}
    assert not any(m.startswith("fastrnn") and m != "fastrnn.sklearn" for m in modules), modules
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.get_params() == clf.get_params() and back.losses_ == clf.losses_
    assert isinstance(back.model_, fastrnn.Sequential)
    state = clf.__getstate__()
    assert "model_" not in state and state["_model_archive"][:2] == b"PK"  # a zip archive
    assert clf.model_ is not None  # pickling left the estimator as it was


def test_pickled_unfitted_estimator_round_trips():
    back = pickle.loads(pickle.dumps(RNNRegressor(n_cells=3, cell="lstm")))
    assert back.get_params()["n_cells"] == 3 and not hasattr(back, "model_")


# ----------------------------------------------------------------------------- scikit-learn tools
def test_pipeline_grid_search_and_cross_validation():
    X, y = three_class_strings(150, T=5)
    pipe = make_pipeline(StandardScaler(), RNNClassifier(n_cells=8, epochs=15, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6
    grid = GridSearchCV(pipe, {"rnnclassifier__cell": ["simple_rnn", "gru"],
                               "rnnclassifier__n_cells": [4, 8]}, cv=2)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"rnnclassifier__cell", "rnnclassifier__n_cells"}
    assert grid.best_estimator_[-1].n_features_in_ == 5
    assert grid.score(X, y) > 0.6


def test_get_and_set_params_mirror_the_seed_constructor():
    clf = RNNClassifier(32, 32, 0.01)  # RecurrentNetwork(n_cells, batch_size, learning_rate)
    params = clf.get_params()
    assert (params["n_cells"], params["batch_size"], params["learning_rate"]) == (32, 32, 0.01)
    assert params["epochs"] == 50 and params["truncate_bptt"] is None
    assert params["optimizer"] == "adam" and params["cell"] == "simple_rnn"
    assert clf.set_params(cell="lstm", truncate_bptt=10) is clf and clf.cell == "lstm"


# ----------------------------------------------------------------------------- inputs
def test_masked_padding_is_skipped():
    X, y = first_step_task(80, T=6, F=2)
    X[X == 0.0] = 0.5  # no real step equals the mask value
    padded = np.concatenate([np.zeros((80, 4, 2), np.float32), X], axis=1)
    clf = RNNClassifier(n_cells=8, epochs=3, cell="lstm", mask_value=0.0, random_state=0)
    clf.fit(padded, y)
    # the same sequences padded at the end instead of the front give the same predictions
    moved = np.concatenate([X, np.zeros((80, 4, 2), np.float32)], axis=1)
    np.testing.assert_allclose(clf.predict_proba(moved), clf.predict_proba(padded), rtol=1e-6)
    unmasked = RNNClassifier(n_cells=8, epochs=3, cell="lstm", random_state=0).fit(padded, y)
    assert not np.allclose(unmasked.predict_proba(moved), unmasked.predict_proba(padded))


@pytest.mark.parametrize(("params", "argument"), [
    ({"n_cells": 0}, "n_cells"), ({"batch_size": 2.5}, "batch_size"),
    ({"learning_rate": -1}, "learning_rate"), ({"cell": "rnn"}, "cell"),
    ({"epochs": True}, "epochs"), ({"truncate_bptt": 0}, "truncate_bptt"),
    ({"optimizer": "adagrad"}, "optimizer"), ({"mask_value": np.nan}, "mask_value"),
    ({"verbose": 3}, "verbose"), ({"early_stopping": "yes"}, "early_stopping"),
    ({"n_iter_no_change": 0}, "n_iter_no_change"),
])
def test_bad_parameters_are_named_at_fit(params, argument):
    X, y = first_step_task(20)
    clf = RNNClassifier(**params)  # scikit-learn: constructors never raise
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        clf.fit(X, y)


def test_bad_inputs():
    X, y = first_step_task(30)
    clf = RNNClassifier(n_cells=4, epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"shape \(12, 1\).*fitted on \(12, 2\)"):
        clf.predict(X[:, :, :1])
    with pytest.raises(ValueError, match="X has 5 features"):
        clf.predict(X[:, :5])  # timesteps are scikit-learn's "features"
    with pytest.raises(ValueError, match=r"expected a 2-D array .* or a 3-D array"):
        clf.predict(X[:, :, :, None])
    with pytest.raises(ValueError, match="at least 2 classes"):
        RNNClassifier(epochs=1).fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="Unknown label type"):
        RNNClassifier(epochs=1).fit(X, np.linspace(0, 1, 30))
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor(epochs=1).fit(X, y * 1.0, X_val=X, y_val=np.full(30, np.nan))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_diverging_fit_says_so():
    X, y = first_step_task(40)
    with pytest.raises(ValueError, match="Training stopped: loss became"):
        RNNRegressor(n_cells=4, epochs=2).fit(X, np.full(40, 1e30))


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn...` fail
    monkeypatch.delitem(sys.modules, "fastrnn.sklearn")
    with pytest.raises(ImportError, match=r'fastrnn\[sklearn\]'):
        importlib.import_module("fastrnn.sklearn")
