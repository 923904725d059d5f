"""What the model classes are and where their pieces live: ``Model(inputs, outputs)`` makes a
``Functional``; a Sequential keeps its own chain (no symbolic inputs or outputs); each class
rebuilds itself from its own config; the compile config is the trainer's; the file format
(backups included) is fastrnn.saving's."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, saving
from fastrnn.models import Functional


def _functional() -> fastrnn.Model:
    fastrnn.set_seed(3)
    x = fastrnn.Input(shape=(6, 2), name="series")
    h = layers.GRU(5)(x)
    return fastrnn.Model(x, layers.Dense(2, name="out")(h), name="small")


def test_model_of_inputs_and_outputs_is_a_functional() -> None:
    model = _functional()
    assert type(model) is Functional
    assert isinstance(model, fastrnn.Model) and isinstance(model, layers.Layer)
    assert [t.name for t in model.inputs] == ["series"] and len(model.outputs) == 1
    with pytest.raises(TypeError, match="needs both"):
        fastrnn.Model()


def test_each_class_rebuilds_itself_from_its_config() -> None:
    model = _functional()
    x = np.random.default_rng(0).normal(size=(4, 6, 2)).astype("float32")
    for rebuild in (fastrnn.Model.from_config, Functional.from_config):
        again = rebuild(model.get_config())
        assert type(again) is Functional
        again.set_weights(model.get_weights())
        np.testing.assert_array_equal(again.predict(x), model.predict(x))
    seq = fastrnn.Sequential([layers.LSTM(3, input_shape=[None, 2]), layers.Dense(1)])
    seq.build()
    again = fastrnn.Sequential.from_config(seq.get_config())
    assert type(again) is fastrnn.Sequential and again.built
    assert [w.shape for w in again.get_weights()] == [w.shape for w in seq.get_weights()]


def test_a_built_sequential_has_symbolic_inputs_and_outputs_as_keras() -> None:
    seq = fastrnn.Sequential([layers.SimpleRNN(3, input_shape=[None, 2]), layers.Dense(1)])
    assert not hasattr(fastrnn.Sequential([layers.Dense(1)]), "inputs")  # no input shape yet
    seq.build()
    assert seq.input.shape == (None, None, 2) and seq.output.shape == (None, 1)
    assert seq.inputs == [seq.input] and seq.outputs == [seq.output]
    assert seq.input_shape == (None, None, 2) and seq.output_shape == (None, 1)
    assert seq.layers[0].output.shape == (None, 3)
    lazy = fastrnn.Sequential([fastrnn.Input((None, 2)), layers.GRU(4)])
    assert lazy.output.shape == (None, 4)  # built from its Input when asked, as Keras's is


def test_the_compile_config_round_trips_through_the_trainer() -> None:
    model = _functional()
    assert model.get_compile_config() is None
    model.compile(optimizer=fastrnn.optimizers.Adam(0.01), loss="mae", metrics=["mse"])
    config = model.get_compile_config()
    other = _functional()
    other.compile_from_config(config)
    assert other.get_compile_config() == config
    with pytest.raises(ValueError, match="compile_config.optimizer"):
        other.compile_from_config({"optimizer": "adam", "loss": "mse"})


def test_backups_are_written_and_read_by_the_saving_module(tmp_path) -> None:
    model = _functional()
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 6, 2)), rng.normal(size=(16, 2))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "backup.fastrnn")
    saving.write_backup(model, path, epoch=4)
    kept = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the weights move on
    assert saving.read_backup(model, path) == 5          # the epoch to continue from
    for a, b in zip(model.get_weights(), kept):
        np.testing.assert_array_equal(a, b)
    plain = str(tmp_path / "plain.fastrnn")
    model.save(plain)
    with pytest.raises(ValueError, match="not a fastrnn backup"):
        saving.read_backup(model, plain)


def test_earlier_import_paths_still_work() -> None:
    from fastrnn.models.model import Model
    from fastrnn.models.sequential import Sequential
    from fastrnn.models.serialization import compile_config, load_model

    assert Model is fastrnn.Model and Sequential is fastrnn.Sequential
    assert load_model is fastrnn.load_model
    assert compile_config(_functional()) is None
