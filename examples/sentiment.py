"""IMDB sentiment with recurrent networks: the classic Korean study notes' workflow on fastrnn.

The notes (an IMDB chapter in the style of "Do it! 딥러닝 입문") load the reviews with
``imdb.load_data(skip_top=20, num_words=100)``, drop the padding/start/unknown ids (0, 1, 2),
keep the first 20,000 training reviews for training and the other 5,000 for validation, cut or
pad every review to 100 words, and then train, in turn:

* their hand-written NumPy ``RecurrentNetwork(n_cells=32, batch_size=32, learning_rate=0.01)``
  on one-hot words (100 steps x 100 features), 20 epochs of plain mini-batch gradient descent
  with backpropagation through the last 10 steps. In fastrnn that class *is*
  ``fastrnn.sklearn.RNNClassifier(n_cells=32, batch_size=32, learning_rate=0.01,
  optimizer="sgd", truncate_bptt=10, epochs=20)``, fitted with ``X_val, y_val``;
* the same model in Keras: ``SimpleRNN(32) -> Dense(1, sigmoid)``, SGD, 20 epochs;
* ``Embedding(1000, 32) -> SimpleRNN(8) -> Dense(1, sigmoid)`` with Adam, 10 epochs
  (``num_words=1000``);
* the same with ``LSTM(64)`` in place of the SimpleRNN.

This script runs all of them, each as written (padded at the front, Keras's default), padded
at the end, and masked (``Embedding(mask_zero=True)``: the recurrent layer skips the padding),
and prints the validation accuracy and the seconds per epoch of each, next to TF-Keras's on the
same arrays with ``--keras``::

    python examples/sentiment.py --path imdb.npz          # the real reviews
    python examples/sentiment.py                          # a generated corpus (see below)
    python examples/sentiment.py --keras                  # TF-Keras too, when installed
    python examples/sentiment.py --train 2000 --val 500 --epochs 2   # a quick look

The real data: Keras's ``imdb.npz`` (the file ``keras.datasets.imdb.load_data`` downloads
from Keras's datasets bucket, ``https://storage.googleapis.com/tensorflow/tf-keras-datasets/
imdb.npz``, 17 MB). This script never downloads anything; fetch the file yourself.

Reading it safely. ``imdb.npz`` stores each split's reviews as a NumPy *object* array (a
pickle of Python lists), so ``np.load`` reads it only with ``allow_pickle=True`` - and
unpickling runs whatever callables the pickle names, so a doctored file could run code.
:func:`read_imdb_npz` therefore parses the file itself: the ``.npy`` headers with NumPy's
header parser, numeric arrays with ``allow_pickle=False``, and the object arrays with a
restricted unpickler that resolves only the three names NumPy's pickle of an object array
uses (``_reconstruct``, ``ndarray``, ``dtype``) and resolves them to inert stand-ins that just
record their arguments; anything else in the pickle is refused with a ValueError before it can
be called. What comes out is then checked to be a 1-D array of lists of non-negative ints.

The generated corpus (default). Reviews of 20-100 words drawn from a Zipf vocabulary, ending
(within the last 3 words) in a verdict word, positive or negative. In 40% of the reviews a
negation ("not", "never", "hardly") comes before the verdict, half of the time right before it
(1-3 words), half of the time far from it (10-40 words), and flips the label; in 20% a negation
comes after the verdict and changes nothing. So a model must carry "was there a negation
before the verdict?" across up to 40 words - what a SimpleRNN is bad at and an LSTM is made
for - and, when the padding comes after the review, across the padding as well, unless the
padding is masked. Its word ids follow Keras's layout (0-3 reserved; stop-word fillers at 4-19,
which ``skip_top=20`` drops as it drops IMDB's most frequent words; negations and verdicts
below 100, which the notes' ``num_words=100`` keeps; other fillers above), so exactly the
notes' preprocessing applies. The "far negation" column is the accuracy on the validation
reviews whose negation is 10 or more words before the verdict.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import time
import zipfile
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

import fastrnn
from fastrnn.preprocessing import pad_sequences

START, OOV, INDEX_FROM = 1, 2, 3  # Keras's imdb.load_data defaults; 0 is the padding
MAXLEN = 100

# ----------------------------------------------------------------------------- imdb.npz
_MAX_MEMBER_BYTES = 1 << 30  # the real members are ~17 MB; refuse decompression bombs


class _Recorded:
    """An inert stand-in for what a pickle constructs: keeps its arguments and state."""

    def __init__(self, kind: str, args: tuple):
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(kind: str) -> Any:
    def make(*args: Any) -> _Recorded:
        return _Recorded(kind, args)
    return make


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}


class _ObjectArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy's pickle of a 1-D object array into stand-ins, calling nothing."""

    def find_class(self, module: str, name: str) -> Any:
        kind = _ALLOWED.get((module, name))
        if kind is None:
            raise ValueError(
                f"refusing to load {module}.{name}: an imdb.npz object array names only NumPy's "
                "_reconstruct, ndarray and dtype.")
        return _stand_in(kind)

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError("refusing a persistent reference in the pickle.")


def _lists_from_object_pickle(data: bytes, shape: tuple, where: str) -> list[np.ndarray]:
    try:
        obj = _ObjectArrayUnpickler(io.BytesIO(data)).load()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    except Exception as exc:  # any malformed pickle
        raise ValueError(f"{where}: not a pickled object array ({exc}).") from exc
    # ndarray.__reduce__: (_reconstruct, (ndarray, (0,), b'b'), (1, shape, dtype, fortran, list))
    state = obj.state if isinstance(obj, _Recorded) and obj.kind == "reconstruct" else None
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _Recorded)
            and state[2].kind == "dtype" and state[2].args[:1] in (("O8",), (b"O8",))
            and isinstance(state[4], list) and tuple(state[1]) == tuple(shape)
            and len(shape) == 1 and len(state[4]) == shape[0]):
        raise ValueError(f"{where}: not a 1-D object array of {shape[0] if shape else '?'} "
                         "reviews.")
    reviews = []
    for k, review in enumerate(state[4]):
        if not isinstance(review, list) or not all(
                type(w) is int and 0 <= w < 2**31 for w in review):
            raise ValueError(f"{where}: review {k} is not a list of non-negative ints.")
        reviews.append(np.asarray(review, dtype=np.int64))
    return reviews


def read_imdb_npz(path: str) -> dict[str, Any]:
    """Reads Keras's ``imdb.npz`` without executing anything from it (see the module docstring).

    Returns:
        ``{"x_train": [int64 arrays], "y_train": (n,) ints, "x_test": [...], "y_test": ...}``
        (the word ranks as stored: 1 = most frequent; no start mark, no offset).

    Raises:
        ValueError: a member missing, malformed, or naming anything but an object array.
    """
    out: dict[str, Any] = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path!r} is not an .npz (zip) file: {exc}") from exc
    with archive:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            where = f"{path!r}, member {key}.npy"
            try:
                info = archive.getinfo(key + ".npy")
            except KeyError as exc:
                raise ValueError(f"{where} is missing: not Keras's imdb.npz.") from exc
            if info.file_size > _MAX_MEMBER_BYTES:
                raise ValueError(f"{where} is {info.file_size} bytes; refusing to read it.")
            f = io.BytesIO(archive.read(info))
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"{where}: unsupported .npy version {version}.")
            if dtype == np.dtype(object):
                out[key] = _lists_from_object_pickle(f.read(), shape, where)
            else:
                f.seek(0)
                out[key] = np.lib.format.read_array(f, allow_pickle=False)
    for split in ("train", "test"):
        x, y = out["x_" + split], np.asarray(out["y_" + split])
        if y.ndim != 1 or len(y) != len(x) or not np.isin(y, (0, 1)).all():
            raise ValueError(f"{path!r}: y_{split} must hold one 0/1 label per review.")
        out["y_" + split] = y.astype(np.int64)
    return out


# ----------------------------------------------------------------------------- the corpus
# Ids as load_data gives them (a stored rank r becomes r + 3): stop-word fillers 4-19 (dropped
# by skip_top=20), negations 20-22, positive verdicts 23-32, negative verdicts 33-42, other
# fillers 43 and up.
NEGATIONS = np.arange(20, 23)
POSITIVE = np.arange(23, 33)
NEGATIVE = np.arange(33, 43)
FAR = 10  # a negation this many words or more before the verdict is "far"


def generate_corpus(n_train: int, n_test: int, vocab: int = 10_000,
                    seed: int = 0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A corpus in ``imdb.npz``'s form (see the module docstring).

    Returns:
        ``(raw, gaps)``: `raw` as :func:`read_imdb_npz` returns it; ``gaps["train"]`` and
        ``gaps["test"]``: per review, how many words before the verdict its flipping negation
        is (0: none).
    """
    rng = np.random.default_rng(seed)
    stop = np.arange(4, 20)
    fillers = np.arange(43, vocab + INDEX_FROM)
    zipf = 1.0 / np.arange(1, len(fillers) + 1)
    zipf /= zipf.sum()

    def review() -> tuple[list, int, int]:
        length = int(rng.integers(20, 101))
        words = np.where(rng.random(length) < 0.3, rng.choice(stop, length),
                         rng.choice(fillers, length, p=zipf))
        positive = bool(rng.random() < 0.5)
        at = length - 1 - int(rng.integers(0, 3))
        words[at] = rng.choice(POSITIVE if positive else NEGATIVE)
        gap = 0
        u = rng.random()
        if u < 0.4:  # a negation before the verdict: near or far
            gap = int(rng.integers(1, 4)) if rng.random() < 0.5 else int(rng.integers(FAR, 41))
            gap = min(gap, at)
            words[at - gap] = rng.choice(NEGATIONS)
        elif u < 0.6 and at + 1 < length:  # after the verdict: changes nothing
            words[int(rng.integers(at + 1, length))] = rng.choice(NEGATIONS)
        label = int(positive) ^ int(gap > 0)
        return [int(w) - INDEX_FROM for w in words], label, gap  # stored as ranks

    raw: dict[str, Any] = {}
    gaps: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [review() for _ in range(n)]
        raw["x_" + split] = [np.asarray(r[0], dtype=np.int64) for r in rows]
        raw["y_" + split] = np.array([r[1] for r in rows], dtype=np.int64)
        gaps[split] = np.array([r[2] for r in rows], dtype=np.int64)
    return raw, gaps


def load_data(raw: dict[str, Any], num_words: int, skip_top: int = 20) -> tuple:
    """Keras's ``imdb.load_data(num_words=..., skip_top=...)`` on `raw`, without its shuffle
    (callers keep the order, so generated reviews keep their gaps): a start mark (1), ids
    offset by 3, words outside ``[skip_top, num_words)`` replaced by the unknown id (2).

    Returns:
        ``(x_train, y_train), (x_test, y_test)`` with lists of int64 arrays.
    """
    def convert(reviews: list) -> list:
        out = []
        for r in reviews:
            ids = np.concatenate([[START], np.asarray(r, dtype=np.int64) + INDEX_FROM])
            keep = (ids >= skip_top) & (ids < num_words)
            out.append(np.where(keep, ids, OOV))
        return out
    return ((convert(raw["x_train"]), raw["y_train"]), (convert(raw["x_test"]), raw["y_test"]))


def notes_split(x: list, y: np.ndarray, n_train: int, n_val: int) -> dict[str, np.ndarray]:
    """The notes' preprocessing: ids 0-2 dropped, the first `n_train` reviews for training and
    the next `n_val` for validation, each cut or padded to 100 words (at the front)."""
    x = [r[r > OOV] for r in x]
    if len(x) < n_train + n_val:
        raise ValueError(f"the corpus has {len(x)} training reviews; {n_train} + {n_val} "
                         "were asked for.")
    return {"x_train": x[:n_train], "y_train": y[:n_train],
            "x_val": x[n_train:n_train + n_val], "y_val": y[n_train:n_train + n_val]}


def one_hot(ids: np.ndarray, depth: int) -> np.ndarray:
    """``(n, T)`` ids -> ``(n, T, depth)`` float32 (Keras's ``to_categorical``; padding 0 is
    class 0, as in the notes)."""
    return np.eye(depth, dtype=np.float32)[ids]


# ----------------------------------------------------------------------------- the models
@dataclass
class Experiment:
    name: str
    inputs: str  # "one-hot" | "ids"
    variant: str  # "padded (pre)" | "padded (post)" | "masked"
    epochs: int
    num_words: int


EXPERIMENTS = {
    "recurrent_network": Experiment(
        "RecurrentNetwork(32) = RNNClassifier, SGD, TBPTT 10", "one-hot", "padded (pre)", 20,
        100),
    "onehot_simple_rnn": Experiment("SimpleRNN(32), SGD", "one-hot", "padded (pre)", 20, 100),
}
for _variant, _key in (("padded (pre)", "pre"), ("padded (post)", "post"), ("masked", "masked")):
    EXPERIMENTS[f"embedding_simple_rnn_{_key}"] = Experiment(
        "Embedding(1000, 32) + SimpleRNN(8)", "ids", _variant, 10, 1000)
    EXPERIMENTS[f"embedding_lstm_{_key}"] = Experiment(
        "Embedding(1000, 32) + LSTM(64)", "ids", _variant, 10, 1000)


def build(keras: Any, key: str, maxlen: int) -> Any:
    """The notes' Keras models (`keras` is fastrnn or TF-Keras)."""
    layers = keras.layers
    exp = EXPERIMENTS[key]
    if exp.inputs == "one-hot":
        model = keras.Sequential([keras.Input(shape=(maxlen, exp.num_words)),
                                  layers.SimpleRNN(32), layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
        return model
    cell = layers.LSTM(64) if "lstm" in key else layers.SimpleRNN(8)
    model = keras.Sequential([keras.Input(shape=(maxlen,), dtype="int32"),
                              layers.Embedding(1000, 32, mask_zero=exp.variant == "masked"),
                              cell, layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def arrays(split: dict, exp: Experiment, maxlen: int) -> tuple:
    padding = "post" if exp.variant == "padded (post)" else "pre"
    x_train = pad_sequences(split["x_train"], maxlen=maxlen, padding=padding)
    x_val = pad_sequences(split["x_val"], maxlen=maxlen, padding=padding)
    if exp.inputs == "one-hot":
        x_train, x_val = one_hot(x_train, exp.num_words), one_hot(x_val, exp.num_words)
    return x_train, split["y_train"], x_val, split["y_val"]


def run(keras: Any, key: str, data: tuple, epochs: int) -> tuple[float, float, np.ndarray]:
    """Trains one experiment; returns (validation accuracy, seconds per epoch, predictions)."""
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(42)
    if key == "recurrent_network":  # the notes' hand-written class, as an estimator
        from fastrnn.sklearn import RNNClassifier  # (imports scikit-learn: not timed)
        start = time.perf_counter()
        clf = RNNClassifier(n_cells=32, batch_size=32, learning_rate=0.01, optimizer="sgd",
                            truncate_bptt=10, epochs=epochs, random_state=42)
        clf.fit(x_train, y_train, X_val=x_val, y_val=y_val)
        seconds = (time.perf_counter() - start) / epochs
        pred = clf.predict(x_val)
        return float(np.mean(pred == y_val)), seconds, pred
    start = time.perf_counter()
    model = build(keras, key, x_train.shape[1])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_val, y_val),
              verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    pred = (np.asarray(model.predict(x_val, verbose=0)).reshape(-1) > 0.5).astype(np.int64)
    return float(np.mean(pred == y_val)), seconds, pred


@dataclass
class Row:
    key: str
    accuracy: float
    far: Optional[float]
    seconds: float
    keras_accuracy: Optional[float] = None
    keras_seconds: Optional[float] = None


def format_table(rows: list[Row], keras: bool) -> str:
    head = "| model | input | fastrnn val acc | far negations | fastrnn s/epoch |"
    rule = "|---|---|---|---|---|"
    if keras:
        head += " TF-Keras val acc | TF-Keras s/epoch |"
        rule += "---|---|"
    lines = [head, rule]
    for r in rows:
        exp = EXPERIMENTS[r.key]
        inputs = (f"one-hot {exp.num_words}, padded (pre)" if exp.inputs == "one-hot"
                  else exp.variant)
        far = "" if r.far is None else f"{r.far:.3f}"
        line = f"| {exp.name} | {inputs} | {r.accuracy:.3f} | {far} | {r.seconds:.2f} |"
        if keras:
            line += (" | |" if r.keras_accuracy is None
                     else f" {r.keras_accuracy:.3f} | {r.keras_seconds:.2f} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", help="Keras's imdb.npz (default: a generated corpus)")
    parser.add_argument("--train", type=int, default=None,
                        help="training reviews (default: 20000 with --path as in the notes, "
                        "8000 generated)")
    parser.add_argument("--val", type=int, default=None,
                        help="validation reviews (default: 5000 with --path, 2000 generated)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every model (default: the notes' 20 or 10)")
    parser.add_argument("--models", default=",".join(EXPERIMENTS),
                        help="comma-separated subset of " + ", ".join(EXPERIMENTS))
    parser.add_argument("--keras", action="store_true",
                        help="also train TF-Keras on the same arrays (if installed)")
    args = parser.parse_args(argv)
    keys = [k for k in args.models.split(",") if k]
    unknown = sorted(set(keys) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown models {unknown}")
    n_train = args.train or (20_000 if args.path else 8_000)
    n_val = args.val or (5_000 if args.path else 2_000)
    if args.path:
        raw, gaps = read_imdb_npz(args.path), None
        print(f"{args.path}: {len(raw['x_train'])} training reviews")
    else:
        raw, gap_splits = generate_corpus(n_train + n_val, 0)
        gaps = gap_splits["train"][n_train:n_train + n_val]
        print(f"generated corpus: {n_train} training and {n_val} validation reviews; "
              f"{np.mean(gaps > 0):.0%} of the validation labels flipped by a negation, "
              f"{np.mean(gaps >= FAR):.0%} by a far one")
    libs: dict = {"fastrnn": fastrnn}
    if args.keras:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras as tf_keras
        libs["TF-Keras"] = tf_keras

    splits: dict = {}
    rows = []
    for key in keys:
        exp = EXPERIMENTS[key]
        if exp.num_words not in splits:
            (x, y), _ = load_data(raw, num_words=exp.num_words)
            splits[exp.num_words] = notes_split(x, y, n_train, n_val)
        data = arrays(splits[exp.num_words], exp, MAXLEN)
        epochs = args.epochs or exp.epochs
        acc, seconds, pred = run(fastrnn, key, data, epochs)
        far = None if gaps is None else float(np.mean((pred == data[3])[gaps >= FAR]))
        row = Row(key, acc, far, seconds)
        if "TF-Keras" in libs and key != "recurrent_network":
            row.keras_accuracy, row.keras_seconds, _ = run(libs["TF-Keras"], key, data, epochs)
        rows.append(row)
        print(f"  {exp.name}, {exp.variant}: val acc {acc:.3f}, {seconds:.2f} s/epoch",
              flush=True)
    print()
    print(format_table(rows, args.keras))
    return rows


if __name__ == "__main__":
    main()
