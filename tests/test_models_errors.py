"""Bad input to Sequential: each a ValueError that names what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import layers, losses
from fastrnn.models import Sequential, set_seed


def _model(compiled: bool = True) -> Sequential:
    model = Sequential([layers.SimpleRNN(4, input_shape=[None, 3]), layers.Dense(2)], seed=0)
    if compiled:
        model.compile(loss="mse", optimizer="adam")
    return model


X = np.zeros((10, 5, 3), np.float32)
Y = np.zeros((10, 2), np.float32)


def test_fit_before_compile():
    with pytest.raises(ValueError, match=r"must be compiled before fit\(\).*compile\("):
        _model(compiled=False).fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="compiled before evaluate"):
        _model(compiled=False).evaluate(X, Y)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="x has 10 samples but `y` has 9"):
        _model().fit(X, Y[:9], verbose=0)
    with pytest.raises(ValueError, match="x has 10 samples but `validation_data\\[1\\]` has 3"):
        _model().fit(X, Y, validation_data=(X, Y[:3]), verbose=0)


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"rank 3.*\(None, None, 3\).*shape \(10, 3\)"):
        _model().fit(X[:, 0], Y, verbose=0)
    with pytest.raises(ValueError, match="at least 2 dimensions, got shape \\(10,\\)"):
        _model().predict(np.zeros(10, np.float32))


def test_feature_count_differs_from_the_built_model():
    model = _model()
    model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match=r"\(3 features\), got an array of shape \(10, 5, 4\) "
                                         r"\(4 features\)"):
        model.predict(np.zeros((10, 5, 4), np.float32))
    # built from data: the feature count is fixed as well
    m = Sequential([layers.GRU(2)], seed=0)
    m.predict(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match="3 features"):
        m.predict(np.zeros((2, 5, 1), np.float32))


def test_wrong_target_shape():
    with pytest.raises(ValueError, match=r"outputs \(None, 2\).*got \(10, 3\)"):
        _model().fit(X, np.zeros((10, 3), np.float32), verbose=0)


def test_targets_of_shape_n_for_a_single_output_are_accepted():
    model = Sequential([layers.SimpleRNN(3, input_shape=[None, 3]), layers.Dense(1)], seed=0)
    model.compile(loss="mse", optimizer="adam")
    a = model.evaluate(X, np.ones(10, np.float32))
    b = model.evaluate(X, np.ones((10, 1), np.float32))
    assert a == pytest.approx(b)


def test_sparse_labels_out_of_range():
    model = Sequential([layers.SimpleRNN(4, input_shape=[None, 3]), layers.Dense(3)], seed=0)
    model.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    with pytest.raises(ValueError, match=r"\[0, 2\] for an output of 3 classes, got values in "
                                         r"\[0, 3\]"):
        model.fit(X, np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, 2]), verbose=0)
    with pytest.raises(ValueError, match="got values in \\[-1, 1\\]"):
        model.evaluate(X, np.array([0, 1, -1, 0, 0, 1, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match="must be integers"):
        model.fit(X, np.full(10, 0.5), verbose=0)
    # in range: trains
    model.fit(X, np.arange(10) % 3, verbose=0)


def test_empty_arrays():
    with pytest.raises(ValueError, match="empty array for argument `x`.*at least one sample"):
        _model().fit(X[:0], Y[:0], verbose=0)
    with pytest.raises(ValueError, match="empty array for argument `validation_data\\[0\\]`"):
        _model().fit(X, Y, validation_data=(X[:0], Y[:0]), verbose=0)

    def nothing():
        return iter(())

    class Empty:
        def __iter__(self):
            return nothing()

    with pytest.raises(ValueError, match="empty dataset"):
        _model().fit(Empty(), verbose=0)


@pytest.mark.parametrize("split", [-0.1, 1.0, 1.5, True, "0.2"])
def test_validation_split_outside_0_1(split):
    with pytest.raises(ValueError, match=r"validation_split`: expected a float in \[0, 1\)"):
        _model().fit(X, Y, validation_split=split, verbose=0)


def test_validation_split_too_small_for_the_data():
    with pytest.raises(ValueError, match="leaves 0 validation"):
        _model().fit(X, Y, validation_split=0.05, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": -1}, "epochs"),
    ({"verbose": 3}, "verbose"),
    ({"validation_data": X}, "validation_data"),
    ({"callbacks": [print]}, None),
])
def test_bad_fit_arguments(kwargs, match):
    exc = TypeError if match is None else ValueError
    with pytest.raises(exc, match=match or "fastrnn callbacks"):
        _model().fit(X, Y, **kwargs)


def test_non_numeric_data_and_missing_loss():
    with pytest.raises(ValueError, match="numeric array"):
        _model().predict(np.array([["a"]]))
    with pytest.raises(ValueError, match="`loss`"):
        _model(compiled=False).compile(optimizer="adam")
    with pytest.raises(ValueError, match="dataset yields"):
        _model().fit(iter([(X, Y)]), Y, verbose=0)


def test_stateful_needs_a_fixed_batch_size():
    model = Sequential([layers.LSTM(2, stateful=True, input_shape=[None, 3])], seed=0)
    model.compile(loss="mse", optimizer="adam")
    with pytest.raises(ValueError, match=r"number of samples \(10\) must be a multiple of "
                                         r"batch_size \(4\)"):
        model.fit(X, Y, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        model.predict(X, batch_size=4)


@pytest.mark.parametrize("nested", [False, True])
def test_stateful_check_sees_layers_added_after_a_predict(nested):
    """predict's stateful check (kept between calls) follows the model's layers: a stateful
    layer added after a predict, to the model or to a model inside it, is seen."""
    x = np.zeros((3, 4, 3), np.float32)
    inner = Sequential([layers.LSTM(2, return_sequences=True, input_shape=[4, 3])])
    model = Sequential([inner] if nested else list(inner.layers))
    model.predict(x, batch_size=2)  # not stateful: 3 samples in batches of 2 are fine
    (inner if nested else model).add(layers.GRU(2, stateful=True))
    with pytest.raises(ValueError, match="multiple of batch_size"):
        model.predict(x, batch_size=2)
    (inner if nested else model).pop()
    assert model.predict(x, batch_size=2).shape == (3, 4, 2)


def test_set_seed_and_add_validate():
    with pytest.raises(ValueError, match="seed"):
        set_seed(-1)
    with pytest.raises(TypeError, match="fastrnn layer"):
        Sequential([np.zeros(3)])
    layer = layers.Dense(2)
    with pytest.raises(ValueError, match="already"):
        Sequential([layer, layer])


def test_set_weights_checks_count_and_shapes():
    model = _model()
    model.build()
    w = model.get_weights()
    with pytest.raises(ValueError, match=f"expects {len(w)} weight arrays, got {len(w) - 1}"):
        model.set_weights(w[:-1])
    bad = list(w)
    bad[0] = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"weight 0 has shape \(3, 4\)"):
        model.set_weights(bad)
