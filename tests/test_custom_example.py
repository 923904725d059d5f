"""A shortened run of the custom-class experiments of examples/hands_on_ml_ch15.py: the
chapter's LNSimpleRNNCell model and its original WaveNet (GatedActivationUnit) must learn."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "hands_on_ml_ch15.py"


@pytest.fixture(scope="module")
def book():
    spec = importlib.util.spec_from_file_location("hands_on_ml_ch15_custom", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("name,epochs", [("ln_cell_model", 3), ("gated_wavenet", 3)])
def test_chapter_classes_learn(book, name, epochs):
    d = book.make_data(800)
    model, history, seconds = book._train(
        getattr(book, name), "adam", d["x10_train"], d["yseq_train"], d["x10_valid"],
        d["yseq_valid"], epochs=epochs, metrics=[book.last_time_step_mse])
    val = history["val_last_time_step_mse"]
    assert np.all(np.isfinite(val)) and val[-1] < val[0], val
    assert model.predict(d["x10_valid"][:2]).shape == (2, 50, 10)
    kinds = {type(layer).__name__ for layer in model._iter_all_layers()}
    assert {"LNSimpleRNNCell"} <= kinds or {"GatedActivationUnit"} <= kinds
