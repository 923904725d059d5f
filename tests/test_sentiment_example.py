"""examples/sentiment.py: the safe imdb.npz reader, the notes' preprocessing, the generated
corpus, and a shortened run of the table."""

from __future__ import annotations

import importlib.util
import io
import pathlib
import pickle
import sys
import zipfile

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "sentiment.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("sentiment_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _object_array(reviews: list) -> np.ndarray:
    a = np.empty(len(reviews), dtype=object)
    for k, r in enumerate(reviews):
        a[k] = r
    return a


def _write_npz(path, x_train, y_train, x_test, y_test) -> None:
    # np.savez pickles object arrays, as Keras's imdb.npz was written
    np.savez(path, x_train=_object_array(x_train), y_train=np.asarray(y_train),
             x_test=_object_array(x_test), y_test=np.asarray(y_test))


def test_reads_an_imdb_format_file(ex, tmp_path):
    path = tmp_path / "imdb.npz"
    x_train = [[1, 14, 22, 16], [1, 194, 1153], [5]]
    _write_npz(path, x_train, [1, 0, 1], [[7, 8], [9]], [0, 1])
    data = ex.read_imdb_npz(str(path))
    assert [r.tolist() for r in data["x_train"]] == x_train
    assert [r.tolist() for r in data["x_test"]] == [[7, 8], [9]]
    np.testing.assert_array_equal(data["y_train"], [1, 0, 1])
    assert data["y_test"].dtype == np.int64


_CALLED: list = []


def _payload():  # what a doctored file would make np.load(allow_pickle=True) call
    _CALLED.append(True)
    return [1, 2]


class _Evil:
    def __reduce__(self):
        return (_payload, ())


def _npz_with_member(path, name: str, npy: bytes, others: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, npy)
        for key, value in others.items():
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=True)
            zf.writestr(key + ".npy", buf.getvalue())


def test_a_doctored_file_is_refused_without_running_anything(ex, tmp_path):
    evil = _object_array([[1, 2], _Evil()])
    buf = io.BytesIO()
    np.save(buf, evil, allow_pickle=True)
    path = tmp_path / "evil.npz"
    _npz_with_member(path, "x_train.npy", buf.getvalue(), {
        "y_train": np.array([0, 1]), "x_test": _object_array([[1]]), "y_test": np.array([1])})
    # the file really is dangerous: NumPy's own loader runs the payload
    with np.load(path, allow_pickle=True) as f:
        f["x_train"]
    assert _CALLED == [True]
    _CALLED.clear()
    with pytest.raises(ValueError, match="refusing to load .*_payload"):
        ex.read_imdb_npz(str(path))
    assert _CALLED == []


@pytest.mark.parametrize("bad", [
    _object_array([[1, 2], [3, -1]]),      # a negative id
    _object_array([[1, 2], "text"]),       # not a list of ints
    _object_array([[1, 2], [3.5]]),        # a float
])
def test_malformed_reviews_are_refused(ex, tmp_path, bad):
    path = tmp_path / "bad.npz"
    _write_npz(path, [[1]], [1], [[1]], [1])
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buf = io.BytesIO()
    np.save(buf, bad, allow_pickle=True)
    members["x_train.npy"] = buf.getvalue()
    members["y_train.npy"] = members["y_test.npy"] = _npy(np.array([0, 1]))
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(ValueError, match="x_train"):
        ex.read_imdb_npz(str(path))


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_files_that_are_not_imdb_are_refused(ex, tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x_train=np.zeros(3))
    with pytest.raises(ValueError, match="x_test.npy is missing|y_train.npy is missing"):
        ex.read_imdb_npz(str(path))
    text = tmp_path / "notzip.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an .npz"):
        ex.read_imdb_npz(str(text))
    labels = tmp_path / "labels.npz"
    _write_npz(labels, [[1], [2]], [0, 3], [[1]], [1])
    with pytest.raises(ValueError, match="0/1 label"):
        ex.read_imdb_npz(str(labels))
    # a pickled object that is not an ndarray at all
    obj = tmp_path / "dict.npz"
    _npz_with_member(obj, "x_train.npy", _npy_header_object(pickle.dumps({"a": 1})),
                     {"y_train": np.array([0]), "x_test": _object_array([[1]]),
                      "y_test": np.array([1])})
    with pytest.raises(ValueError, match="not a 1-D object array"):
        ex.read_imdb_npz(str(obj))


def _npy_header_object(payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False,
                                               "shape": (1,)})
    return buf.getvalue() + payload


def test_load_data_follows_keras_conventions(ex):
    raw = {"x_train": [np.array([1, 2, 17, 96, 97, 500])], "y_train": np.array([1]),
           "x_test": [np.array([30])], "y_test": np.array([0])}
    (x, y), (xt, yt) = ex.load_data(raw, num_words=100, skip_top=20)
    # rank r -> id r + 3 behind a start mark 1; ids outside [20, 100) -> 2 (the mark too)
    assert x[0].tolist() == [2, 2, 2, 20, 99, 2, 2]
    assert xt[0].tolist() == [2, 33]
    split = ex.notes_split(x + xt, np.array([1, 0]), 1, 1)
    assert split["x_train"][0].tolist() == [20, 99] and split["x_val"][0].tolist() == [33]
    with pytest.raises(ValueError, match="2 training reviews"):
        ex.notes_split(x + xt, np.array([1, 0]), 2, 1)
    np.testing.assert_array_equal(ex.one_hot(np.array([[0, 2]]), 3),
                                  [[[1, 0, 0], [0, 0, 1]]])


def test_generated_corpus_hinges_on_negations(ex):
    raw, gaps = ex.generate_corpus(1500, 10, seed=3)
    (x, y), _ = ex.load_data(raw, num_words=1000)
    assert len(x) == 1500 and y.shape == (1500,) and set(np.unique(y)) == {0, 1}
    g = gaps["train"]
    assert 0.35 < np.mean(g > 0) < 0.45 and 0.15 < np.mean(g >= ex.FAR) < 0.25
    for review, label, gap in zip(x, y, g):
        verdicts = np.flatnonzero(np.isin(review, np.r_[ex.POSITIVE, ex.NEGATIVE]))
        assert len(verdicts) == 1 and verdicts[0] >= len(review) - 3
        at = verdicts[0]
        positive = review[at] in ex.POSITIVE
        negations = np.flatnonzero(np.isin(review, ex.NEGATIONS))
        assert (gap > 0) == any(n < at for n in negations)
        if gap:
            assert review[at - gap] in ex.NEGATIONS
        assert label == (positive != (gap > 0))
    # with the notes' one-hot vocabulary (num_words=100) the negations and verdicts survive
    (x100, _), _ = ex.load_data(raw, num_words=100)
    kept = ex.notes_split(x100, y, 1500, 0)["x_train"]
    assert all(np.isin(r, np.r_[ex.POSITIVE, ex.NEGATIVE]).sum() == 1 for r in kept)
    again, _ = ex.generate_corpus(1500, 10, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again["x_train"], raw["x_train"]))


def test_shortened_run_prints_the_table(ex, capsys):
    rows = ex.main(["--train", "600", "--val", "200", "--epochs", "1", "--models",
                    "recurrent_network,embedding_simple_rnn_pre,embedding_simple_rnn_masked"])
    out = capsys.readouterr().out
    assert "| model | input | fastrnn val acc | far negations | fastrnn s/epoch |" in out
    assert "| RecurrentNetwork(32) = RNNClassifier, SGD, TBPTT 10 | one-hot 100, padded (pre) |" \
        in out
    assert "| Embedding(1000, 32) + SimpleRNN(8) | masked |" in out
    assert [r.key for r in rows] == ["recurrent_network", "embedding_simple_rnn_pre",
                                     "embedding_simple_rnn_masked"]
    for r in rows:
        assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.far <= 1.0 and r.seconds > 0


def test_masking_makes_the_padding_side_irrelevant(ex):
    # Front- and back-padded copies of the same reviews: a masked model gives them the same
    # predictions, an unmasked one does not.
    import fastrnn
    raw, _ = ex.generate_corpus(120, 0, seed=1)
    (x, y), _ = ex.load_data(raw, num_words=1000)
    split = ex.notes_split(x, y, 80, 40)
    pre = ex.arrays(split, ex.EXPERIMENTS["embedding_lstm_pre"], ex.MAXLEN)
    post = ex.arrays(split, ex.EXPERIMENTS["embedding_lstm_post"], ex.MAXLEN)
    for masked in (True, False):
        key = "embedding_lstm_masked" if masked else "embedding_lstm_pre"
        fastrnn.set_seed(0)
        model = ex.build(fastrnn, key, ex.MAXLEN)
        model.fit(pre[0], pre[1], epochs=1, verbose=0)
        a, b = model.predict(pre[2]), model.predict(post[2])
        assert np.allclose(a, b, atol=1e-5) == masked


def test_main_reads_an_imdb_file_given_with_path(ex, tmp_path, capsys):
    raw, _ = ex.generate_corpus(330, 20, seed=4)
    path = tmp_path / "imdb.npz"
    _write_npz(path, [r.tolist() for r in raw["x_train"]], raw["y_train"],
               [r.tolist() for r in raw["x_test"]], raw["y_test"])
    rows = ex.main(["--path", str(path), "--train", "250", "--val", "80", "--epochs", "1",
                    "--models", "embedding_simple_rnn_masked"])
    out = capsys.readouterr().out
    assert "330 training reviews" in out
    assert rows[0].far is None and "| masked | " in out and 0 <= rows[0].accuracy <= 1


def test_format_table(ex):
    rows = [ex.Row("embedding_lstm_masked", 0.987, 0.97, 1.234, 0.985, 9.87),
            ex.Row("recurrent_network", 0.61, None, 0.5)]
    table = ex.format_table(rows, keras=True)
    assert "| Embedding(1000, 32) + LSTM(64) | masked | 0.987 | 0.970 | 1.23 | 0.985 | 9.87 |" \
        in table
    assert table.splitlines()[-1].endswith("| 0.610 |  | 0.50 | | |")
