"""``fastrnn.utils`` and ``fastrnn.preprocessing`` at Keras 3's paths: to_categorical,
normalize, pad_sequences, timeseries_dataset_from_array and the small helpers, against
NumPy and (when installed) Keras's own functions."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import preprocessing, timeseries, utils


def test_to_categorical_matches_numpy_and_refuses_bad_ids():
    y = np.array([[2], [0], [1], [2]])
    out = utils.to_categorical(y)
    np.testing.assert_array_equal(out, np.eye(3)[[2, 0, 1, 2]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(utils.to_categorical(np.array([[1, 0], [3, 2]]), 5),
                                  np.eye(5)[[[1, 0], [3, 2]]])
    np.testing.assert_array_equal(utils.to_categorical([1.0, 0.0], 2), [[0, 1], [1, 0]])
    for bad, kwargs, match in [([0, 3], dict(num_classes=3), "`x`.*got 3"),
                               ([-1, 0], {}, "`x`.*got -1"), ([0.5], {}, "`x`"),
                               (["a"], {}, "`x`"), ([0], dict(num_classes=0), "`num_classes`"),
                               ([], {}, "`x`.*empty")]:
        with pytest.raises(ValueError, match=match):
            utils.to_categorical(bad, **kwargs)


def test_normalize_and_helpers():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(utils.normalize(x), [[0.6, 0.8], [0, 0]])
    np.testing.assert_allclose(utils.normalize(x, axis=0, order=1), [[1, 1], [0, 0]])
    with pytest.raises(ValueError, match="`axis`"):
        utils.normalize(x, axis=3)
    assert utils.pack_x_y_sample_weight(x) is x
    assert utils.pack_x_y_sample_weight(x, x, 1)[2] == 1
    assert utils.unpack_x_y_sample_weight((x, 2)) == (x, 2, None)
    with pytest.raises(ValueError, match="`data`"):
        utils.unpack_x_y_sample_weight((1, 2, 3, 4))
    assert utils.is_keras_tensor(fastrnn.Input((3,))) and not utils.is_keras_tensor(x)


def test_keras_paths_are_the_same_functions():
    assert preprocessing.sequence.pad_sequences is preprocessing.pad_sequences
    assert utils.pad_sequences is preprocessing.pad_sequences
    assert utils.timeseries_dataset_from_array is timeseries.timeseries_dataset_from_array
    assert preprocessing.timeseries_dataset_from_array is \
        timeseries.timeseries_dataset_from_array
    import fastrnn.preprocessing.sequence as seq
    assert seq.pad_sequences([[1, 2], [3]], padding="post").tolist() == [[1, 2], [3, 0]]


def test_match_keras_own_functions():
    keras = pytest.importorskip("keras")
    y = np.random.default_rng(0).integers(0, 6, (7, 1))
    np.testing.assert_array_equal(utils.to_categorical(y), keras.utils.to_categorical(y))
    np.testing.assert_array_equal(utils.to_categorical(y, 9), keras.utils.to_categorical(y, 9))
    x = np.random.default_rng(1).standard_normal((4, 5))
    np.testing.assert_allclose(utils.normalize(x, axis=1), keras.utils.normalize(x, axis=1))
    assert utils.pack_x_y_sample_weight(x) is keras.utils.pack_x_y_sample_weight(x)
