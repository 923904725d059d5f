"""Keras semantics the custom-layer work had to match: a config with a wrong type anywhere
fails to load with one ValueError naming the place; float64 ids above 2**24 reach an
Embedding exactly; a layer's time axis stays free after build."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, ops


class Halve(layers.Layer):
    def call(self, inputs):
        half = inputs.shape[-1] // 2
        return inputs[..., :half] * ops.sigmoid(inputs[..., half:])


def _leaf_paths(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaf_paths(v, (*path, i))
    if path:
        yield path


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _models():
    inp = fastrnn.Input((None, 2))
    z = layers.RNN(layers.LSTMCell(3), return_sequences=True)(inp)
    z = Halve()(layers.Conv1D(4, 2, padding="causal")(z))
    functional = fastrnn.Model(inp, layers.Dense(1)(layers.GlobalAveragePooling1D()(z)))
    sequential = fastrnn.Sequential([layers.GRU(3, input_shape=[None, 2]), layers.Dense(1)])
    return [functional, sequential]


@pytest.mark.parametrize("which", [0, 1], ids=["functional", "sequential"])
def test_wrong_types_anywhere_in_a_config_raise_one_value_error(tmp_path, which):
    model = _models()[which]
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(np.zeros((4, 5, 2), "f4"), np.zeros((4, 1), "f4"), epochs=1, verbose=0)
    path = str(tmp_path)
    model.save(path)
    member = os.path.join(path, "model.json")
    with open(member) as f:
        base = json.load(f)
    custom = {"Halve": Halve}
    wrong_values = ("adam", [1], None)
    checked = 0
    for leaf in _leaf_paths(base):
        for wrong in wrong_values:
            config = json.loads(json.dumps(base))
            _set(config, leaf, wrong)
            with open(member, "w") as f:
                json.dump(config, f)
            try:
                fastrnn.load_model(path, custom_objects=custom)
            except ValueError as exc:
                assert path in str(exc)
                checked += 1
    assert checked > 60
    with open(member, "w") as f:
        json.dump(base, f)
    config = json.loads(json.dumps(base))
    config["compile_config"]["optimizer"] = "adam"
    with open(member, "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"compile_config\.optimizer.*'adam'"):
        fastrnn.load_model(path, custom_objects=custom)
    if which == 0:
        config = json.loads(json.dumps(base))
        config["config"]["layers"][1]["config"]["cell"]["config"]["units"] = "3"
        with open(member, "w") as f:
            json.dump(config, f)
        with pytest.raises(ValueError, match=r"config\.layers\[1\] \(RNN.*`units`"):
            fastrnn.load_model(path, custom_objects=custom)


def test_float64_ids_above_2_to_the_24_reach_embedding_exactly():
    n = 2**24 + 3
    ids = np.array([[n, n - 1, 5]], dtype=np.float64)
    assert int(np.float32(n)) != n  # float32 would round these ids
    seq = fastrnn.Sequential([layers.Embedding(n + 1, 1, embeddings_initializer="zeros",
                                               input_shape=(3,))])
    seq.build()
    table = seq.layers[0].weights[0]
    table[n - 1:n + 1] = [[1], [2]]
    np.testing.assert_array_equal(seq.predict(ids)[0], table[[n, n - 1, 5]])
    inp = fastrnn.Input((3,))
    emb = layers.Embedding(n + 1, 1, embeddings_initializer="zeros")
    model = fastrnn.Model(inp, emb(inp))
    emb.weights[0][n - 1:n + 1] = [[1], [2]]
    np.testing.assert_array_equal(model.predict(ids)[0], emb.weights[0][[n, n - 1, 5]])


def test_time_axis_stays_free_after_build():
    x = np.random.default_rng(0).normal(size=(2, 9, 3)).astype("f4")
    for layer in (layers.LSTM(4), layers.Conv1D(2, 3), layers.MaxPooling1D(2), Halve(),
                  layers.RNN(layers.GRUCell(2))):
        layer._build_for((5, 3))
        assert layer.forward(x).shape[0] == 2
