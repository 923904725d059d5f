"""Model-level reliability: each test reproduces a way a model was lost or half-changed."""

from __future__ import annotations

import json
import threading
import time
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn import layers


def test_concurrent_first_predictions_build_the_model_once():
    model = fastrnn.Sequential([layers.LSTM(400, return_sequences=True, input_shape=[None, 6]),
                                layers.GRU(16), layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(3, 5, 6)).astype(np.float32)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(model.predict(x))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert model.count_params() == 671_298
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("bad", [
    np.array([["a", "b"]] * 3),                          # strings
    np.full((3, 2), None, dtype=object),                 # object arrays of None
    np.ones((3, 2), dtype=np.complex64),                 # complex
])
def test_set_weights_refuses_unconvertible_arrays_before_changing_any(bad):
    model = fastrnn.Sequential([layers.Dense(2, input_shape=(3,)), layers.Dense(2)])
    model.build()
    before = model.get_weights()
    new = [w + 1 for w in before]
    new[2] = bad  # the second layer's kernel, after the first layer's arrays
    with pytest.raises(ValueError, match="real numeric array"):
        model.set_weights(new)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    layer = model.layers[1]
    with pytest.raises(ValueError, match="real numeric array"):
        layer.set_weights([bad, np.zeros(2)])
    np.testing.assert_array_equal(layer.get_weights()[0], before[2])


def test_failed_compile_after_training_keeps_optimizer_state():
    model = fastrnn.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="adam")
    x = np.ones((8, 2), np.float32)
    model.fit(x, np.ones((8, 1)), epochs=2, verbose=0)
    opt, iterations = model.optimizer, model.optimizer.iterations
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile(loss="nonsense", optimizer="sgd")
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile(loss="mse", optimizer="sgd", metrics=["nonsense"])
    assert model.optimizer is opt and opt.iterations == iterations and model.compiled


def test_validation_data_with_sample_weights_is_used_not_ignored():
    model = fastrnn.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.arange(8.0).reshape(4, 2), np.ones((4, 1))
    w = np.array([0.0, 1.0, 2.0, 3.0])
    history = model.fit(x, y, validation_data=(x, y, w), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x, y, sample_weight=w), rel=1e-6)


def test_integer_ids_reach_the_embedding_exactly():
    big = 2**24 + 3  # float32 cannot hold it: it would round to 2**24 + 4
    seq = fastrnn.Sequential([layers.Embedding(big, 1, input_shape=(2,))])
    inp = fastrnn.Input((2,), dtype="int64")
    fun = fastrnn.Model(inp, layers.Embedding(big, 1)(inp))
    for model in (seq, fun):
        model.build() if model is seq else None
        table = model.layers[-1].get_weights()[0]
        table[big - 1, 0] = 7.0
        table[big - 2, 0] = -1.0
        model.layers[-1].set_weights([table])
        ids = np.array([[big - 2, big - 1]], dtype=np.int64)
        np.testing.assert_array_equal(model.predict(ids)[0, :, 0], [-1.0, 7.0])


def test_a_huge_batch_size_allocates_only_the_data():
    # Buffers of batch_size rows of 64x64 floats would be 16 TB: min(N, batch_size) rows.
    model = fastrnn.Sequential([layers.Flatten(input_shape=(64, 64)), layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.ones((10, 64, 64)), np.ones((10, 1)), batch_size=10**9, epochs=1, verbose=0)


def _edited_copy(path, out, edit):
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("model.json"))
        weights = zf.read("weights.npz")
    edit(config)
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("model.json", json.dumps(config))
        zf.writestr("weights.npz", weights)


def test_a_config_asking_for_huge_weights_is_refused_without_building_them(tmp_path):
    model = fastrnn.Sequential([layers.LSTM(4, input_shape=(None, 3)), layers.Dense(1)])
    model.build()
    path = str(tmp_path / "m.fastrnn")
    model.save(path)

    def huge(config):
        config["config"]["layers"][0]["config"]["units"] = 4000

    _edited_copy(path, str(tmp_path / "huge.fastrnn"), huge)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"shape \(3, 16000\).*file holds.*\(3, 16\)"):
        fastrnn.load_model(str(tmp_path / "huge.fastrnn"))
    assert time.perf_counter() - start < 5  # orthogonal init of 16000x4000 took 45 s


@pytest.mark.parametrize("edit", [
    lambda c: c["config"].__setitem__("layers", {"a": 1}),
    lambda c: c["config"]["layers"][0].__setitem__("config", [1, 2]),
    lambda c: c["config"].__setitem__("build_input_shape", "abc"),
    lambda c: c["config"]["layers"][0]["config"].__setitem__("units", "many"),
    lambda c: c.__setitem__("config", [1]),
])
def test_malformed_configs_give_one_value_error(tmp_path, edit):
    model = fastrnn.Sequential([layers.LSTM(4, input_shape=(None, 3)), layers.Dense(1)])
    model.build()
    path = str(tmp_path / "m.fastrnn")
    model.save(path)
    _edited_copy(path, str(tmp_path / "bad.fastrnn"), edit)
    with pytest.raises(ValueError, match="bad.fastrnn"):
        fastrnn.load_model(str(tmp_path / "bad.fastrnn"))


def test_malformed_graph_configs_name_the_place(tmp_path):
    inp = fastrnn.Input((3,))
    model = fastrnn.Model(inp, layers.Dense(1)(layers.Dense(2)(inp)))
    path = str(tmp_path / "g.fastrnn")
    model.save(path)

    def forward_reference(config):
        config["config"]["nodes"][1]["inputs"] = [[2, 0]]

    _edited_copy(path, str(tmp_path / "bad.fastrnn"), forward_reference)
    with pytest.raises(ValueError, match=r"config.nodes\[1\].inputs\[0\].*earlier call"):
        fastrnn.load_model(str(tmp_path / "bad.fastrnn"))


def test_a_declared_input_shape_makes_the_weights_available():
    model = fastrnn.Sequential([fastrnn.Input((None, 2)), layers.LSTM(3), layers.Dense(1)])
    assert [w.shape for w in model.get_weights()] == [(2, 12), (3, 12), (12,), (3, 1), (1,)]
    assert model.count_params() == 24 + 36 + 12 + 4
