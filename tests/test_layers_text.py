"""StringLookup, IntegerLookup, CategoryEncoding and TextVectorization: vocabularies, ids
and bag-of-words vectors against TF-Keras's own layers (adapted on the same data), configs
and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastrnn import layers

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "A cat, a dog: friends?",
         "zebra", "the the THE cat"]
QUERIES = ["the cat ate a zebra", "unknown words here", "dog", ""]


@pytest.fixture(scope="module")
def keras():
    from _keras import import_keras
    return import_keras()


def _call(layer, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(layer(x))


@pytest.mark.parametrize("kwargs", [
    {}, dict(max_tokens=6), dict(output_sequence_length=4), dict(ngrams=2), dict(ngrams=(1, 3)),
    dict(output_mode="multi_hot"), dict(output_mode="count", max_tokens=8,
                                        pad_to_max_tokens=True),
    dict(output_mode="tf_idf"), dict(split="character", standardize="lower"),
    dict(standardize=None), dict(standardize="strip_punctuation"),
])
def test_text_vectorization_matches_tf_keras(keras, kwargs):
    mine, theirs = layers.TextVectorization(**kwargs), keras.layers.TextVectorization(**kwargs)
    mine.adapt(TEXTS)
    theirs.adapt(TEXTS)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    np.testing.assert_allclose(mine(QUERIES), _call(theirs, QUERIES), rtol=1e-6)
    again = layers.TextVectorization.from_config(mine.get_config())
    np.testing.assert_allclose(again(QUERIES), mine(QUERIES), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {}, dict(mask_token="[MASK]"), dict(output_mode="multi_hot"), dict(output_mode="count"),
    dict(output_mode="one_hot"), dict(output_mode="tf_idf"), dict(max_tokens=3),
])
def test_string_lookup_matches_tf_keras(keras, kwargs):
    tokens = np.array([["a", "b", "c"], ["d", "a", "a"]])
    mine, theirs = layers.StringLookup(**kwargs), keras.layers.StringLookup(**kwargs)
    mine.adapt(tokens)
    theirs.adapt(tokens)
    assert mine.get_vocabulary() == theirs.get_vocabulary()
    q = np.array([["a", "z", "d"], ["c", "c", "b"]])
    np.testing.assert_allclose(mine(q), _call(theirs, q), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {}, dict(mask_token=0), dict(output_mode="multi_hot"), dict(output_mode="count"),
    dict(output_mode="one_hot"), dict(output_mode="tf_idf"), dict(max_tokens=3),
])
def test_integer_lookup_matches_tf_keras(keras, kwargs):
    tokens = np.array([[12, 5, 7], [5, 5, 40]])
    mine, theirs = layers.IntegerLookup(**kwargs), keras.layers.IntegerLookup(**kwargs)
    mine.adapt(tokens)
    theirs.adapt(tokens)
    assert mine.get_vocabulary() == [int(v) for v in theirs.get_vocabulary()]
    q = np.array([[12, 99, 7], [40, 5, 5]])
    np.testing.assert_allclose(mine(q), _call(theirs, q))
    inv = layers.IntegerLookup(vocabulary=[3, 9], invert=True)
    np.testing.assert_array_equal(inv(np.array([0, 1, 2])), [-1, 3, 9])


@pytest.mark.parametrize("kwargs,x", [
    (dict(num_tokens=5), [[1, 2, 2], [0, 4, 4]]),
    (dict(num_tokens=5, output_mode="one_hot"), [[1], [4], [0]]),
    (dict(num_tokens=5, output_mode="one_hot"), [1, 3]),
    (dict(num_tokens=5, output_mode="count"), [[1, 2, 2], [0, 4, 4]]),
    (dict(num_tokens=5), [1, 3, 3]),
])
def test_category_encoding_matches_tf_keras(keras, kwargs, x):
    x = np.array(x)
    np.testing.assert_allclose(layers.CategoryEncoding(**kwargs)(x),
                               _call(keras.layers.CategoryEncoding(**kwargs), x))
    if kwargs.get("output_mode") == "count":
        w = np.array([[0.5, 1, 2], [1, 1, 3]])
        theirs = keras.layers.CategoryEncoding(**kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = np.asarray(theirs(x, count_weights=w))
        np.testing.assert_allclose(layers.CategoryEncoding(**kwargs)(x, count_weights=w), ref)


def test_given_vocabulary_invert_and_pipeline_to_a_model():
    lookup = layers.StringLookup(vocabulary=["a", "b"])
    assert lookup(["b", "a", "x"]).tolist() == [2, 1, 0]
    inv = layers.StringLookup(vocabulary=["a", "b"], invert=True)
    assert inv(np.array([[1, 2, 0]])).tolist() == [["a", "b", "[UNK]"]]
    vec = layers.TextVectorization(max_tokens=20, output_sequence_length=6)
    vec.adapt(iter([(TEXTS[:2], [0, 1]), (TEXTS[2:], [1, 0, 1])]))  # batches of (x, y)
    ids = vec(TEXTS)
    assert ids.shape == (5, 6) and ids.dtype == np.int64 and ids.max() < 20
    emb = layers.Embedding(20, 4, mask_zero=True)
    assert emb.forward(ids).shape == (5, 6, 4)
    tfidf = layers.TextVectorization(output_mode="tf_idf", vocabulary=["cat", "dog"],
                                     idf_weights=[0.5, 2.0])
    np.testing.assert_allclose(tfidf(["cat cat dog bird"]), [[1.25, 1.0, 2.0]])


@pytest.mark.parametrize("make,match", [
    (lambda: layers.TextVectorization(output_mode="one_hot"), "`output_mode`"),
    (lambda: layers.TextVectorization(standardize="upper"), "`standardize`"),
    (lambda: layers.TextVectorization(split="comma"), "`split`"),
    (lambda: layers.TextVectorization(ngrams=0), "`ngrams`"),
    (lambda: layers.TextVectorization(max_tokens=0), "`max_tokens`"),
    (lambda: layers.TextVectorization(output_mode="count", output_sequence_length=3),
     "`output_sequence_length`"),
    (lambda: layers.TextVectorization(output_mode="tf_idf", vocabulary=["a"]), "`idf_weights`"),
    (lambda: layers.StringLookup(num_oov_indices=-1), "`num_oov_indices`"),
    (lambda: layers.StringLookup(invert=True, output_mode="count"), "`invert`"),
    (lambda: layers.StringLookup(vocabulary=["a", "a"]), "`vocabulary`"),
    (lambda: layers.IntegerLookup(oov_token="x"), "`oov_token`"),
    (lambda: layers.CategoryEncoding(), "`num_tokens`"),
    (lambda: layers.CategoryEncoding(3, output_mode="tf_idf"), "`output_mode`"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        make()


def test_bad_inputs_give_clear_errors():
    vec = layers.TextVectorization()
    with pytest.raises(ValueError, match="`data`.*no examples"):
        vec.adapt([])
    with pytest.raises(ValueError, match="`inputs`, expected strings"):
        vec([1, 2])
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 1\)"):
        vec(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        layers.StringLookup(vocabulary=["a"], num_oov_indices=0)(["b"])
    with pytest.raises(RuntimeError, match="no gradient"):
        vec.backward(np.zeros(1))
    with pytest.raises(ValueError, match=r"\[0, num_tokens\)"):
        layers.CategoryEncoding(3)(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="`count_weights`"):
        layers.CategoryEncoding(3)(np.array([[0, 1]]), count_weights=np.ones((1, 2)))
    with pytest.raises(ValueError, match="`inputs`, expected integers"):
        layers.IntegerLookup(vocabulary=[1, 2])(np.array(["a"]))
