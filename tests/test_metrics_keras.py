"""Keras 3's metrics beyond the first ones: values against TF-Keras on the same data, exact
epoch values over dataset batches, names, and their use in fit/evaluate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import metrics

RNG = np.random.default_rng(0)
N, C = 40, 4
PROBS = RNG.uniform(size=(N, C)).astype(np.float32)
BINARY = RNG.integers(0, 2, size=(N, C)).astype(np.float32)
LABELS = RNG.integers(0, C, size=N)
ONEHOT = np.eye(C, dtype=np.float32)[LABELS]
SCORES = RNG.normal(size=(N, C)).astype(np.float32)
REG_T = RNG.normal(size=(N, C)).astype(np.float32)
REG_P = (REG_T + RNG.normal(scale=0.5, size=(N, C))).astype(np.float32)
POS_T, POS_P = np.abs(REG_T) + 0.1, np.abs(REG_P) + 0.1
DIST_T = PROBS / PROBS.sum(-1, keepdims=True)
DIST_P = np.roll(DIST_T, 1, axis=0)

CASES = [
    ("TopKCategoricalAccuracy", {"k": 2}, ONEHOT, SCORES),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, LABELS, SCORES),
    ("AUC", {}, BINARY, PROBS),
    ("AUC", {"curve": "PR"}, BINARY, PROBS),
    ("AUC", {"curve": "PR", "summation_method": "minoring", "num_thresholds": 50}, BINARY,
     PROBS),
    ("AUC", {"multi_label": True, "from_logits": True}, BINARY, SCORES),
    ("Precision", {}, BINARY, PROBS),
    ("Precision", {"top_k": 2, "class_id": 1}, BINARY, PROBS),
    ("Recall", {"thresholds": 0.3}, BINARY, PROBS),
    ("Recall", {"top_k": 1}, BINARY, PROBS),
    ("TruePositives", {}, BINARY, PROBS),
    ("FalsePositives", {"thresholds": 0.7}, BINARY, PROBS),
    ("TrueNegatives", {}, BINARY, PROBS),
    ("FalseNegatives", {}, BINARY, PROBS),
    ("PrecisionAtRecall", {"recall": 0.6}, BINARY, PROBS),
    ("RecallAtPrecision", {"precision": 0.5}, BINARY, PROBS),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, BINARY, PROBS),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5}, BINARY, PROBS),
    ("BinaryCrossentropy", {}, BINARY, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True}, ONEHOT, SCORES),
    ("SparseCategoricalCrossentropy", {}, LABELS, DIST_P),
    ("Hinge", {}, BINARY, SCORES),
    ("SquaredHinge", {}, BINARY, SCORES),
    ("CategoricalHinge", {}, ONEHOT, SCORES),
    ("KLDivergence", {}, DIST_T, DIST_P),
    ("LogCoshError", {}, REG_T, REG_P),
    ("MeanAbsolutePercentageError", {}, REG_T, REG_P),
    ("MeanSquaredLogarithmicError", {}, POS_T, POS_P),
    ("Poisson", {}, POS_T, POS_P),
    ("CosineSimilarity", {}, REG_T, REG_P),
    ("PearsonCorrelation", {}, REG_T, REG_P),
    ("ConcordanceCorrelation", {}, REG_T, REG_P),
    ("R2Score", {}, REG_T, REG_P),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 3},
     REG_T, REG_P),
    ("F1Score", {"average": "macro"}, ONEHOT, PROBS),
    ("F1Score", {"average": None, "threshold": 0.5}, BINARY, PROBS),
    ("FBetaScore", {"average": "weighted", "beta": 2.0}, ONEHOT, PROBS),
    ("FBetaScore", {"average": "micro", "threshold": 0.4}, BINARY, PROBS),
    ("IoU", {"num_classes": C, "target_class_ids": [0, 2]}, LABELS, np.argmax(SCORES, -1)),
    ("MeanIoU", {"num_classes": C, "ignore_class": 1}, LABELS, np.argmax(SCORES, -1)),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.4}, BINARY, PROBS),
    ("OneHotIoU", {"num_classes": C, "target_class_ids": [1, 3]}, ONEHOT, SCORES),
    ("OneHotMeanIoU", {"num_classes": C}, ONEHOT, SCORES),
]
IDS = [f"{name}{i}" for i, (name, *_) in enumerate(CASES)]


def _keras_value(keras, name, kwargs, y_true, y_pred):
    m = getattr(keras.metrics, name)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.update_state(y_true, y_pred)
        return np.asarray(m.result())


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=IDS)
def test_value_matches_tf_keras(name, kwargs, y_true, y_pred):
    keras = import_keras()
    theirs = _keras_value(keras, name, kwargs, y_true, y_pred)
    mine = getattr(metrics, name)(**kwargs)(y_true, y_pred)
    np.testing.assert_allclose(np.asarray(mine), theirs, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=IDS)
def test_batches_accumulate_to_the_whole(name, kwargs, y_true, y_pred):
    m = getattr(metrics, name)(**kwargs)
    whole = m(y_true, y_pred)
    m.reset_state()
    for i in range(0, N, 16):  # uneven last batch
        m.update_state(y_true[i:i + 16], y_pred[i:i + 16], len(y_true[i:i + 16]))
    # confusion-type metrics add counts; mean metrics weigh batches by their size
    np.testing.assert_allclose(np.asarray(m.result()), np.asarray(whole), rtol=1e-6,
                               atol=1e-7)


def test_function_forms_and_names():
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(ONEHOT, SCORES, k=C),
                                  np.ones(N))
    ids = np.argsort(-SCORES, axis=-1)
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(LABELS, ids, k=2, from_sorted_ids=True),
        metrics.sparse_top_k_categorical_accuracy(LABELS, SCORES, k=2))
    for name in ("auc", "AUC", "precision", "recall", "top_k_categorical_accuracy",
                 "sparse_top_k_categorical_accuracy", "r2_score", "logcosh", "msle",
                 "true_positives", "pearson_correlation"):
        assert isinstance(metrics.get(name), metrics.Metric)
    assert metrics.Mean()([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    s = metrics.Sum()
    s.update_state([1.0, 2.0], sample_weight=[2.0, 0.5])
    assert s.result() == pytest.approx(3.0)


def test_auc_precision_recall_in_fit_match_the_whole_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6, 2))
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.float32)[:, None]
    model = fastrnn.Sequential([fastrnn.layers.GRU(4, input_shape=(6, 2)),
                                fastrnn.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["AUC", metrics.Precision(name="p"), metrics.Recall(name="r")])
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "AUC", "p", "r"}
    pred = model.predict(x)
    _, auc, p, r = model.evaluate(x, y)
    assert auc == pytest.approx(metrics.AUC()(y, pred), rel=1e-9)
    assert p == pytest.approx(metrics.Precision()(y, pred), rel=1e-9)
    # from dataset batches: the exact value over the dataset, not a mean of batch values
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]

    class Data:
        def __iter__(self):
            return iter(batches)

    assert model.evaluate(Data())[1] == pytest.approx(auc, rel=1e-9)
    with pytest.raises(ValueError, match="one value per class"):
        model.compile(optimizer="adam", loss="mse", metrics=[metrics.F1Score()])


def test_bad_arguments_name_them():
    with pytest.raises(ValueError, match="`k`"):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="`curve`"):
        metrics.AUC(curve="XY")
    with pytest.raises(ValueError, match="`num_thresholds`"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="`target_class_ids`"):
        metrics.IoU(num_classes=2, target_class_ids=[3])
    with pytest.raises(ValueError, match="`average`"):
        metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="`class_id`"):
        metrics.Precision(class_id=9)(BINARY, PROBS)


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=IDS)
def test_serialize_round_trip_through_json(name, kwargs, y_true, y_pred):
    import json
    m = getattr(metrics, name)(**kwargs)
    again = metrics.deserialize(json.loads(json.dumps(metrics.serialize(m))))
    assert type(again) is type(m) and again.name == m.name
    np.testing.assert_allclose(np.asarray(again(y_true, y_pred)), np.asarray(m(y_true, y_pred)))
