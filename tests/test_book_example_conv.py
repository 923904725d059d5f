"""A shortened run of the convolutional experiments of examples/hands_on_ml_ch15.py (the
chapter's Conv1D + GRU model and its WaveNet): both must learn the seq-to-seq task."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hands_on_ml_ch15.py"


@pytest.fixture(scope="module")
def book():
    spec = importlib.util.spec_from_file_location("hands_on_ml_ch15_conv", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_downsampled_targets_are_the_strided_convs(book):
    d = book.make_data(1000)
    assert d["yseq2_train"].shape == (700, 24, 10)
    # output step t of Conv1D(kernel_size=4, strides=2) ends at input step 2t + 3
    np.testing.assert_array_equal(d["yseq2_valid"][:, 5], d["yseq_valid"][:, 2 * 5 + 3])
    np.testing.assert_array_equal(d["yseq2_valid"][:, -1], d["y10_valid"])


@pytest.mark.parametrize("name", ["conv_gru", "wavenet"])
def test_shortened_conv_experiments_learn(book, name):
    d = book.make_data(2000)
    part = "yseq2" if name == "conv_gru" else "yseq"
    # The naive 10-step forecast (the last value, repeated) scored like the models.
    naive = float(np.mean((d["y10_valid"] - d["x10_valid"][:, -1]) ** 2))
    model, history, seconds = book._train(
        getattr(book, name), "adam", d["x10_train"], d[f"{part}_train"], d["x10_valid"],
        d[f"{part}_valid"], epochs=4, metrics=[book.last_time_step_mse])
    val = history["val_last_time_step_mse"]
    assert val[-1] < val[0] and val[-1] < naive / 2, (val, naive)
    assert model.predict(d["x10_valid"][:3]).shape == (3, d[f"{part}_valid"].shape[1], 10)
    assert seconds > 0


def test_table_rows_without_a_reference_range(book):
    row = book.Row(book.WAVENET, 0.02, 0.1, keras_run=(0.021, 1.0))
    assert row.keras is None and row.matched == "-"
    table = book.format_table([row])
    assert f"| {book.WAVENET} | 0.0200 | - | - | 0.100 | 0.0210 | 1.000 |" in table
