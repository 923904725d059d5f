"""A shortened run of examples/hands_on_ml_ch15.py: the book's deep RNN must learn."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from fastrnn import layers

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hands_on_ml_ch15.py"


@pytest.fixture(scope="module")
def book():
    spec = importlib.util.spec_from_file_location("hands_on_ml_ch15", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_data_is_the_books(book):
    d = book.make_data(1000)
    assert d["x_train"].shape == (700, 50, 1) and d["y_train"].shape == (700, 1)
    assert d["x_valid"].shape == (200, 50, 1) and d["y10_valid"].shape == (200, 10)
    assert d["yseq_train"].shape == (700, 50, 10)
    # y_seq[:, t, k-1] is the value k steps after x[:, t]
    np.testing.assert_array_equal(d["yseq_train"][:, :-1, 0], d["x10_train"][:, 1:, 0])
    np.testing.assert_array_equal(d["yseq_train"][:, -1, :], d["y10_train"])
    # the book's two data sets share their random draws, not their time grid
    assert d["x10_train"].shape == d["x_train"].shape
    assert not np.array_equal(d["x10_train"], d["x_train"])
    # np.random.seed(42) makes it deterministic
    np.testing.assert_array_equal(book.make_data(1000)["x_train"], d["x_train"])


def test_shortened_deep_rnn_beats_the_naive_forecast_by_far(book):
    d = book.make_data(3000)
    naive = float(np.mean((d["y_valid"] - d["x_valid"][:, -1]) ** 2))
    model, history, seconds = book._train(
        lambda: [layers.SimpleRNN(20, return_sequences=True, input_shape=[None, 1]),
                 layers.SimpleRNN(20), layers.Dense(1)],
        "adam", d["x_train"], d["y_train"], d["x_valid"], d["y_valid"], epochs=6)
    val = history["val_loss"][-1]
    assert val < naive / 2.5, (val, naive)
    assert history["loss"][-1] < history["loss"][0]
    assert model.evaluate(d["x_valid"], d["y_valid"]) == pytest.approx(val, rel=1e-5)
    assert seconds > 0


def test_table_format_and_matched_column(book):
    rows = [book.Row("naive (last value)", 0.0210, None),
            book.Row("deep RNN 20-20-1", 0.0029, 0.05, 1.2),
            book.Row("linear: Flatten + Dense(1)", 0.0046, 0.01),
            book.Row("SimpleRNN(1), Adam 0.005", 0.02, 0.01)]
    assert [r.matched for r in rows] == ["close", "yes", "close", "no"]
    table = book.format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| experiment | fastrnn val MSE | TF-Keras val MSE | matched")
    assert "| deep RNN 20-20-1 | 0.0029 | 0.003 | yes | 0.050 | 1.200 | 24.0x |" in lines
    assert "| linear: Flatten + Dense(1) | 0.0046 | 0.0036-0.0042 | close |" in table
    assert book.Row("naive (last value)", 0.0202, None).matched == "yes"  # rounding slack
    spread = book.format_table([book.Row("deep RNN 20-20-1", 0.0029, 0.05, None,
                                         (0.0028, 0.0031))])
    assert "| range over seeds |" in spread and "| 0.0028-0.0031 |" in spread
