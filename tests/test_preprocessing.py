"""fastrnn.preprocessing.pad_sequences: Keras's semantics (checked against Keras's own function
when tensorflow imports) and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn.preprocessing import pad_sequences

SEQS = [[1], [2, 3], [4, 5, 6], [], [7, 8, 9, 10, 11]]


def test_docstring_examples_of_keras():
    s = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad_sequences(s), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(s, value=-1), [[-1, -1, 1], [-1, 2, 3],
                                                               [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(s, padding="post"), [[1, 0, 0], [2, 3, 0],
                                                                     [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(s, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    assert pad_sequences(s).dtype == np.int32


def test_truncating_post_float_dtype_and_vector_steps():
    out = pad_sequences(SEQS, maxlen=3, truncating="post", padding="post", dtype="float64",
                        value=0.5)
    np.testing.assert_array_equal(out[4], [7, 8, 9])
    np.testing.assert_array_equal(out[3], [0.5, 0.5, 0.5])
    assert out.dtype == np.float64
    vec = [np.ones((2, 3)), np.full((4, 3), 2.0)]
    out = pad_sequences(vec, dtype="float32")
    assert out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out[0, :2], 0.0)
    np.testing.assert_array_equal(out[0, 2:], 1.0)
    strings = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert strings.tolist() == [["a", "b"], ["<pad>", "c"]]


def test_maxlen_zero_and_empty_inputs():
    assert pad_sequences(SEQS, maxlen=0).shape == (5, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)
    assert pad_sequences([[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="`sequences`.*empty"):
        pad_sequences([])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(sequences=5), ValueError, "`sequences`.*list of sequences"),
        (dict(sequences="abc"), ValueError, "`sequences`"),
        (dict(sequences=[[1, 2], 3]), ValueError, "position 1"),
        (dict(sequences=[[1, 2], "ab"]), ValueError, "position 1"),
        (dict(sequences=[[[1, 2]], [[1, 2, 3]]]), ValueError, "one shape"),
        (dict(sequences=[[[1, 2], [3]]]), ValueError, "ragged"),
        (dict(sequences=[["a", "b"]]), ValueError, "strings.*dtype=object"),
        (dict(sequences=[[1]], value="x"), ValueError, "`value`.*dtype=object"),
        (dict(sequences=[[1]], padding="middle"), ValueError, "`padding`.*'pre' or 'post'"),
        (dict(sequences=[[1]], truncating="both"), ValueError, "`truncating`"),
        (dict(sequences=[[1]], maxlen=-1), ValueError, "`maxlen`"),
        (dict(sequences=[[1]], maxlen=2.5), ValueError, "`maxlen`"),
    ],
)
def test_errors_are_clear(kwargs, error, match):
    with pytest.raises(error, match=match):
        pad_sequences(**kwargs)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 7])
@pytest.mark.parametrize("dtype, value", [("int32", 0.0), ("float32", -1.5), ("int64", 9)])
def test_matches_keras(padding, truncating, maxlen, dtype, value):
    pytest.importorskip("tensorflow")
    import keras

    rng = np.random.default_rng(0)
    seqs = SEQS + [list(rng.integers(0, 50, size=n)) for n in (2, 9, 4)]
    vecs = [rng.normal(size=(n, 3)) for n in (1, 5, 0, 3)]
    for data in (seqs, vecs):
        want = keras.utils.pad_sequences(data, maxlen=maxlen, dtype=dtype, padding=padding,
                                         truncating=truncating, value=value)
        got = pad_sequences(data, maxlen=maxlen, dtype=dtype, padding=padding,
                            truncating=truncating, value=value)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
