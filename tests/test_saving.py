"""Model files, weight files, and weight exchange with PyTorch's nn.RNN/LSTM/GRU."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from fastrnn import callbacks, layers, optimizers, saving
from fastrnn.models import Sequential, load_model


def last_time_step_mse(y_true, y_pred):
    return np.mean((y_true[:, -1] - y_pred[:, -1]) ** 2)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6, 2)).astype(np.float32)
    y = rng.standard_normal((40, 6, 3)).astype(np.float32)
    return x, y


def _trained_model() -> Sequential:
    x, y = _data()
    model = Sequential([
        layers.LSTM(5, return_sequences=True, input_shape=[None, 2]),
        layers.GRU(4, return_sequences=True),
        layers.TimeDistributed(layers.Dense(3)),
    ], seed=3)
    model.compile(loss="mse", optimizer=optimizers.Adam(learning_rate=0.01),
                  metrics=["mae", last_time_step_mse])
    model.fit(x, y, epochs=2, verbose=0)
    return model


@pytest.mark.parametrize("as_directory", [False, True])
def test_round_trip_gives_identical_predictions(tmp_path, as_directory):
    model = _trained_model()
    x, y = _data(1)
    path = tmp_path / ("model_dir" if as_directory else "model.fastrnn")
    if as_directory:
        path.mkdir()
    model.save(str(path))
    if as_directory:
        assert sorted(os.listdir(path)) == ["model.json", "weights.npz"]
    else:
        with zipfile.ZipFile(path) as zf:
            assert sorted(zf.namelist()) == ["model.json", "weights.npz"]
    loaded = load_model(str(path), custom_objects={"last_time_step_mse": last_time_step_mse})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(la).__name__ for la in loaded.layers] == ["LSTM", "GRU", "TimeDistributed"]
    assert loaded.name == model.name
    # the compile config came back: same loss, metrics and optimizer settings
    assert loaded.metrics_names == ["loss", "mae", "last_time_step_mse"]
    np.testing.assert_allclose(loaded.evaluate(x, y), model.evaluate(x, y), rtol=1e-6)
    assert type(loaded.optimizer).__name__ == "Adam"
    assert loaded.optimizer.learning_rate == pytest.approx(0.01)
    loaded.fit(x, y, epochs=1, verbose=0)  # and it trains


def test_custom_metric_needs_custom_objects_or_compile_false(tmp_path):
    model = _trained_model()
    path = str(tmp_path / "m.fastrnn")
    model.save(path)
    with pytest.raises(ValueError, match="custom metric 'last_time_step_mse'.*custom_objects"):
        load_model(path)
    loaded = load_model(path, compile=False)
    assert not loaded.compiled
    x, _ = _data()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_loss_objects_keep_their_config(tmp_path):
    from fastrnn import losses

    model = Sequential([layers.GRU(3, input_shape=[None, 2]), layers.Dense(4)], seed=0)
    model.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=optimizers.SGD(learning_rate=0.2, momentum=0.5), metrics=["accuracy"])
    model.build()
    path = str(tmp_path / "clf.fastrnn")
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.loss, losses.SparseCategoricalCrossentropy)
    assert loaded.loss.from_logits is True
    assert loaded.optimizer.momentum == 0.5
    x = np.random.default_rng(0).standard_normal((6, 5, 2)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    assert loaded.evaluate(x, labels) == pytest.approx(model.evaluate(x, labels), rel=1e-6)


def test_save_weights_writes_exactly_the_path_and_loads_back(tmp_path):
    model = _trained_model()
    path = str(tmp_path / "ckpt.weights.h5")  # any name: no ".npz" appended
    model.save_weights(path)
    assert os.listdir(tmp_path) == ["ckpt.weights.h5"]
    with np.load(path, allow_pickle=False) as npz:
        assert list(npz["__names__"][:2]) == [f"{model.layers[0].name}/kernel",
                                              f"{model.layers[0].name}/recurrent_kernel"]
    fresh = Sequential([
        layers.LSTM(5, return_sequences=True, input_shape=[None, 2]),
        layers.GRU(4, return_sequences=True),
        layers.TimeDistributed(layers.Dense(3)),
    ], seed=99)
    fresh.build()
    x, _ = _data()
    assert not np.allclose(fresh.predict(x), model.predict(x))
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    # a model archive works as a weights source too
    model.save(str(tmp_path / "full.fastrnn"))
    fresh2 = Sequential([layers.LSTM(5, return_sequences=True, input_shape=[None, 2]),
                         layers.GRU(4, return_sequences=True),
                         layers.TimeDistributed(layers.Dense(3))], seed=5)
    fresh2.build()
    fresh2.load_weights(str(tmp_path / "full.fastrnn"))
    np.testing.assert_array_equal(fresh2.predict(x), model.predict(x))


def test_model_checkpoint_callback_saves_a_loadable_model(tmp_path):
    x = np.random.default_rng(0).standard_normal((32, 5, 1)).astype(np.float32)
    y = x[:, -1]
    model = Sequential([layers.SimpleRNN(4, input_shape=[None, 1]), layers.Dense(1)], seed=0)
    model.compile(loss="mse", optimizer="adam")
    path = str(tmp_path / "best.fastrnn")
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[callbacks.ModelCheckpoint(path, save_best_only=True)])
    assert load_model(path).evaluate(x, y) == pytest.approx(
        min(model.history.history["val_loss"]), rel=1e-5)


def _rewrite(path: str, out: str, edit) -> None:
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("model.json"))
        weights = zf.read("weights.npz")
    edit(config)
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("model.json", json.dumps(config))
        zf.writestr("weights.npz", weights)


def test_unknown_class_names_are_refused(tmp_path):
    model = _trained_model()
    path = str(tmp_path / "m.fastrnn")
    model.save(path)

    def evil_layer(config):
        config["config"]["layers"][0]["class_name"] = "os.system"

    _rewrite(path, str(tmp_path / "evil.fastrnn"), evil_layer)
    with pytest.raises(ValueError, match="os.system"):
        load_model(str(tmp_path / "evil.fastrnn"), compile=False)

    def evil_model(config):
        config["class_name"] = "builtins.eval"

    _rewrite(path, str(tmp_path / "evil2.fastrnn"), evil_model)
    with pytest.raises(ValueError, match="class 'builtins.eval'; fastrnn can load"):
        load_model(str(tmp_path / "evil2.fastrnn"))

    def evil_optimizer(config):
        config["compile_config"]["optimizer"]["class_name"] = "subprocess.Popen"

    _rewrite(path, str(tmp_path / "evil3.fastrnn"), evil_optimizer)
    with pytest.raises(ValueError, match="subprocess.Popen"):
        load_model(str(tmp_path / "evil3.fastrnn"), custom_objects={
            "last_time_step_mse": last_time_step_mse})


def test_pickled_arrays_are_never_loaded(tmp_path):
    path = str(tmp_path / "w.npz")
    with open(path, "wb") as f:
        np.savez(f, **{"0000": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickle"):
        saving.load_weights_file(path)


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.fastrnn"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a fastrnn model file"):
        load_model(str(bad))
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "missing.fastrnn"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", "{not json")
        zf.writestr("weights.npz", b"")
    (tmp_path / "badjson.fastrnn").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(str(tmp_path / "badjson.fastrnn"))


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    model = _trained_model()
    model.save(str(tmp_path / "a.fastrnn"))
    model.save(str(tmp_path / "a.fastrnn"))  # overwrite
    assert os.listdir(tmp_path) == ["a.fastrnn"]


# ----------------------------------------------------------------------------- PyTorch
torch = pytest.importorskip("torch")


def _torch_module(cls: str, features: int, units: int, bias: bool):
    if cls == "SimpleRNN":
        return torch.nn.RNN(features, units, batch_first=True, bias=bias)
    return getattr(torch.nn, cls)(features, units, batch_first=True, bias=bias)


def _randomize(layer, rng) -> None:
    # random, non-constant weights and biases so swapped gates or transposes cannot pass
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
                       for w in layer.get_weights()])


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_export_to_torch_gives_the_same_outputs(cls, use_bias):
    rng = np.random.default_rng(7)
    F, H = 3, 5
    layer = getattr(layers, cls)(H, return_sequences=True, use_bias=use_bias, seed=0)
    layer.build((None, F))
    _randomize(layer, rng)
    x = rng.standard_normal((4, 7, F)).astype(np.float32)
    module = _torch_module(cls, F, H, use_bias)
    state = saving.export_torch_state_dict(layer, as_tensors=True)
    assert set(state) == set(module.state_dict())
    module.load_state_dict(state)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_import_from_torch_gives_the_same_outputs(cls):
    torch.manual_seed(0)
    F, H = 2, 6
    module = _torch_module(cls, F, H, True)
    with torch.no_grad():
        for p in module.parameters():  # non-zero b_hh too: it must be folded in
            p.uniform_(-0.6, 0.6)
    layer = getattr(layers, cls)(H, return_sequences=True, seed=0)
    layer.build((None, F))
    saving.import_torch_state_dict(layer, module.state_dict())
    x = np.random.default_rng(1).standard_normal((3, 9, F)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-5)
    # and back: export of the imported weights reproduces torch's outputs too
    back = _torch_module(cls, F, H, True)
    back.load_state_dict(saving.export_torch_state_dict(layer, as_tensors=True))
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x))[0].numpy(), expected,
                                   rtol=1e-5, atol=1e-5)


def test_export_numpy_layout_and_stacked_index():
    layer = layers.GRU(2, seed=0)
    layer.build((None, 3))
    _randomize(layer, np.random.default_rng(0))
    kernel, recurrent, bias = layer.get_weights()
    sd = saving.export_torch_state_dict(layer, layer_index=1)
    assert set(sd) == {"weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"}
    assert isinstance(sd["weight_ih_l1"], np.ndarray)
    # PyTorch's r block (rows 0:H) is Keras's r block (columns H:2H)
    np.testing.assert_array_equal(sd["weight_ih_l1"][:2], kernel[:, 2:4].T)
    np.testing.assert_array_equal(sd["bias_hh_l1"][2:4], bias[1, 0:2])


def test_torch_mapping_errors():
    layer = layers.LSTM(4, seed=0)
    layer.build((None, 3))
    good = saving.export_torch_state_dict(layer)
    with pytest.raises(ValueError, match=r"weight_ih_l0.*shape \(16, 2\).*needs \(16, 3\)"):
        saving.import_torch_state_dict(layer, {**good, "weight_ih_l0": np.zeros((16, 2))})
    with pytest.raises(ValueError, match="no \\['weight_hh_l0'\\]"):
        saving.import_torch_state_dict(layer, {"weight_ih_l0": good["weight_ih_l0"]})
    dense = layers.Dense(2)
    dense.build((3,))
    with pytest.raises(ValueError, match="SimpleRNN, LSTM or GRU"):
        saving.export_torch_state_dict(dense)
    ln = layers.LSTM(4, layer_norm=True, seed=0)
    ln.build((None, 3))
    with pytest.raises(ValueError, match="gamma"):
        saving.export_torch_state_dict(ln)
