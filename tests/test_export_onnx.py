"""model.export(path, format="onnx"): the graph passes onnx.checker, and onnxruntime's outputs
equal model.predict (abs 1e-5) at several batch sizes and lengths, with the recurrent states
carried across calls; layers ONNX cannot express and bad paths raise clear errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import layers as L

# float32 through a handful of layers of O(1) activations: a few ulps of 1, far below this.
ATOL = 1e-5
BATCHES = (1, 3, 8)
LENGTHS = (1, 5, 12)


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _session(ort, path: str):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the optional state inputs are initializers too (a warning)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _randomize(model, seed: int = 0) -> None:
    """Non-constant weights everywhere (biases too), so a swapped gate or bias shows."""
    rng = np.random.default_rng(seed)
    weights = []
    current = model.get_weights()  # (builds a model whose input shape is declared)
    for name, w in zip(model.weight_names, current):
        v = rng.normal(0.0, 0.4, w.shape)
        if "variance" in name:
            v = np.abs(v) + 0.5
        weights.append(v)
    model.set_weights(weights)


def _export(model, tmp_path, ort, name: str = "model.onnx"):
    path = str(tmp_path / name)
    model.export(path, format="onnx")
    import onnx

    onnx.checker.check_model(onnx.load(path))
    return _session(ort, path)


def _main_outputs(session, feeds: dict, n: int) -> list:
    return session.run(None, feeds)[:n]


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _check(model, tmp_path, ort, make_x, lengths=LENGTHS, batches=BATCHES):
    session = _export(model, tmp_path, ort)
    names = [i.name for i in session.get_inputs()]
    n_out = len(_as_list(model.output_shape)) if not isinstance(model.output_shape, tuple) \
        else 1
    for B in batches:
        for T in lengths:
            xs = _as_list(make_x(B, T))
            want = _as_list(model.predict(xs if len(xs) > 1 else xs[0], batch_size=B))
            got = _main_outputs(session, dict(zip(names, xs)), n_out)
            for k, (g, w) in enumerate(zip(got, want)):
                assert g.shape == w.shape, (B, T, k)
                np.testing.assert_allclose(g, w, rtol=0, atol=ATOL, err_msg=f"B={B} T={T} #{k}")


def _seq(F: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return lambda B, T: rng.standard_normal((B, T, F)).astype(np.float32)


def _padded(F: int, seed: int = 2):
    """Sequences with zero steps (masked by Masking) at the start, the end, the middle, and a
    row of nothing but zeros."""
    rng = np.random.default_rng(seed)

    def make(B, T):
        x = rng.standard_normal((B, T, F)).astype(np.float32)
        for b in range(B):
            kind = b % 4
            if kind == 0:
                x[b, : T // 2] = 0
            elif kind == 1:
                x[b, T - T // 3:] = 0
            elif kind == 2 and T > 2:
                x[b, 1:T - 1:2] = 0
            elif kind == 3 and b > 0:
                x[b] = 0
        return x

    return make


RECURRENT = {
    "lstm_gru_dense": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.LSTM(7, return_sequences=True), L.GRU(5), L.Dense(2)]),
    "simple_rnn_activations": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.SimpleRNN(6, return_sequences=True),
        L.SimpleRNN(5, activation="relu", return_sequences=True),
        L.SimpleRNN(4, activation="linear"), L.Dense(3, activation="softmax")]),
    "go_backwards": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.LSTM(5, go_backwards=True, return_sequences=True),
        L.GRU(4, go_backwards=True, return_sequences=True), L.SimpleRNN(3, go_backwards=True),
        L.Dense(1)]),
    "bidirectional": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.Bidirectional(L.LSTM(5, return_sequences=True)),
        L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="sum"),
        L.Bidirectional(L.SimpleRNN(3), merge_mode="ave"), L.Dense(1)]),
    "time_distributed_dropout": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.GRU(6, return_sequences=True, dropout=0.3), L.Dropout(0.5),
        L.TimeDistributed(L.Dense(2, activation="tanh")), L.Activation("sigmoid")]),
    "no_bias": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.LSTM(4, use_bias=False, return_sequences=True),
        L.GRU(3, use_bias=False), L.Dense(2, use_bias=False)]),
    "stateful": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.LSTM(4, stateful=True), L.Dense(1)]),
}


@pytest.mark.parametrize("build", list(RECURRENT.values()), ids=list(RECURRENT))
def test_recurrent_models_match_predict(ort, tmp_path, build):
    model = build()
    _randomize(model)
    if any(getattr(layer, "stateful", False) for layer in model.layers):
        for B in BATCHES:  # predict of a stateful model carries state: one call each, fresh
            session = _export(model, tmp_path, ort)
            x = _seq(3)(B, 6)
            model.reset_states()
            want = model.predict(x, batch_size=B)
            got = session.run(None, {"input": x})[0]
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
        return
    _check(model, tmp_path, ort, _seq(3))


MASKED = {
    "masking_lstm_gru": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.Masking(), L.LSTM(5, return_sequences=True),
        L.GRU(4, go_backwards=True, return_sequences=True), L.SimpleRNN(3), L.Dense(1)]),
    "masking_bidirectional_pooling": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.Masking(), L.Bidirectional(L.LSTM(4, return_sequences=True)),
        L.Dense(3), L.GlobalAveragePooling1D()]),
    "masking_global_max": lambda: fastrnn.Sequential([
        L.Input((None, 3)), L.Masking(), L.GRU(4, return_sequences=True),
        L.LayerNormalization(), L.GlobalMaxPooling1D()]),
}


@pytest.mark.parametrize("build", list(MASKED.values()), ids=list(MASKED))
def test_masked_models_match_predict(ort, tmp_path, build):
    model = build()
    _randomize(model)
    _check(model, tmp_path, ort, _padded(3), lengths=(1, 6, 11), batches=(1, 4, 9))


def test_embedding_mask_zero(ort, tmp_path):
    model = fastrnn.Sequential([L.Input((None,), dtype="int64"),
                                L.Embedding(11, 4, mask_zero=True),
                                L.LSTM(5, return_sequences=True), L.GRU(3)])
    _randomize(model)
    rng = np.random.default_rng(3)

    def ids(B, T):
        a = rng.integers(1, 11, (B, T))
        a[0, : T // 2] = 0  # padding in front (pad_sequences' default) and behind
        if B > 1:
            a[1, T - 1:] = 0
        return a

    _check(model, tmp_path, ort, ids)


def test_convolution_pooling_normalization(ort, tmp_path):
    model = fastrnn.Sequential([
        L.Input((None, 4)),
        L.Conv1D(6, 3, padding="causal", activation="relu"),
        L.Conv1D(6, 2, padding="same", dilation_rate=2, groups=2),
        L.BatchNormalization(),
        L.Conv1D(5, 3, strides=2, padding="same"),
        L.MaxPooling1D(2, padding="same"),
        L.LayerNormalization(),
        L.AveragePooling1D(2, strides=1, padding="same"),
        L.LSTM(4),
    ])
    _randomize(model)
    _check(model, tmp_path, ort, _seq(4), lengths=(5, 12, 13))


def test_valid_convolution_and_flatten(ort, tmp_path):
    model = fastrnn.Sequential([
        L.Input((10, 3)), L.Conv1D(4, 3, strides=2, activation="elu"),
        L.AveragePooling1D(2), L.Flatten(), L.Dense(3, activation="selu"),
        L.Dense(2, activation="swish")])
    _randomize(model)
    _check(model, tmp_path, ort, _seq(3), lengths=(10,))


def test_functional_graph_with_branches_merges_and_states(ort, tmp_path):
    a = fastrnn.Input((None, 3), name="series")
    b = fastrnn.Input((None, 2), name="covariates")
    s1, h, c = L.LSTM(4, return_sequences=True, return_state=True)(a)
    s2 = L.GRU(4, return_sequences=True)(b, initial_state=[h])
    merged = L.Concatenate()([s1, s2, L.Add()([s1, s2]), L.Multiply()([s1, s2]),
                              L.Average()([s1, s2]), L.Maximum()([s1, s2]),
                              L.Minimum()([s1, s2]), L.Subtract()([s1, s2])])
    pooled = L.Dense(1, name="pooled")(L.GlobalMaxPooling1D()(merged))
    last = L.SimpleRNN(2, name="last")(merged)
    repeated = L.RepeatVector(3)(last)
    out3 = L.Reshape((6,), name="flat")(repeated)
    out4 = L.Permute((2, 1), name="swapped")(repeated)
    bi = L.Bidirectional(L.LSTM(3, return_state=True), merge_mode="concat")
    out5, *_ = bi(a)
    model = fastrnn.Model([a, b], [pooled, last, out3, out4, L.Dense(2, name="bi")(out5)])
    _randomize(model)
    ra, rb = _seq(3, 4), _seq(2, 5)
    _check(model, tmp_path, ort, lambda B, T: [ra(B, T), rb(B, T)])
    session = _export(model, tmp_path, ort)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    assert inputs[:2] == ["series", "covariates"]
    assert outputs[:5] == ["pooled", "last", "flat", "swapped", "bi"]
    assert "gru/h" not in inputs  # its initial state is a tensor of the graph


def test_nested_model(ort, tmp_path):
    encoder = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(5, return_sequences=True),
                                  L.GRU(4)], name="encoder")
    x = fastrnn.Input((None, 3))
    model = fastrnn.Model(x, L.Dense(2)(encoder(x)))
    _randomize(model)
    _check(model, tmp_path, ort, _seq(3))


def test_states_carried_across_calls_stream_the_sequence(ort, tmp_path):
    """Feeding each call's state outputs into the next call's state inputs: pieces of a
    sequence (one step at a time too) give what predict gives on the whole of it."""
    model = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(6, return_sequences=True, name="a"),
                                L.GRU(5, return_sequences=True, name="b"),
                                L.SimpleRNN(4, return_sequences=True, name="c"),
                                L.TimeDistributed(L.Dense(2))])
    _randomize(model)
    session = _export(model, tmp_path, ort)
    state_in = [i.name for i in session.get_overridable_initializers()]
    outputs = [o.name for o in session.get_outputs()]
    assert state_in == ["a/h", "a/c", "b/h", "c/h"]
    assert [f"{n}_out" for n in state_in] == outputs[1:]
    for B in (1, 5):
        x = _seq(3, B)(B, 11)
        want = model.predict(x, batch_size=B)
        pieces, states = [], {}
        for start, stop in ((0, 1), (1, 2), (2, 6), (6, 11)):
            result = session.run(None, {"input": x[:, start:stop], **states})
            pieces.append(result[0])
            states = dict(zip(state_in, result[1:]))
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), want, rtol=0, atol=ATOL)
        # the states out are the layers' last states: a stateful copy of the model agrees
        h = session.run(None, {"input": x})[1]
        assert h.shape == (B, 6)


def test_states_fed_match_initial_state(ort, tmp_path):
    """A fed state is what the layer's `initial_state` is to fastrnn."""
    x_in = fastrnn.Input((None, 3))
    h0, c0 = fastrnn.Input((6,), name="h0"), fastrnn.Input((6,), name="c0")
    y = L.LSTM(6, name="enc")(x_in, initial_state=[h0, c0])
    ref = fastrnn.Model([x_in, h0, c0], L.Dense(2)(y))
    plain = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(6, name="enc2"), L.Dense(2)])
    _randomize(ref)
    plain.set_weights(ref.get_weights())
    session = _export(plain, tmp_path, ort)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    h = rng.standard_normal((4, 6)).astype(np.float32)
    c = rng.standard_normal((4, 6)).astype(np.float32)
    got = session.run(None, {"input": x, "enc2/h": h, "enc2/c": c})[0]
    np.testing.assert_allclose(got, ref.predict([x, h, c]), rtol=0, atol=ATOL)


def test_python_function_loss_and_metric_do_not_matter(ort, tmp_path):
    model = fastrnn.Sequential([L.Input((None, 2)), L.GRU(3), L.Dense(1)])

    def my_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    model.compile(optimizer="sgd", loss=my_loss, metrics=[my_loss])
    _check(model, tmp_path, ort, _seq(2), lengths=(4,), batches=(2,))


# ----------------------------------------------------------------------------- refusals
class _Custom(L.Layer):
    def forward(self, x, training=False):
        return np.asarray(x) * 2


def test_refused_layers_are_named_with_the_reason(ort, tmp_path):
    path = str(tmp_path / "m.onnx")
    norm = fastrnn.Sequential([L.Input((None, 2)), L.LSTM(3, layer_norm=True, name="ln_lstm")])
    with pytest.raises(ValueError, match=r"`ln_lstm` \(LSTM\).*layer_norm=True"):
        norm.export(path)
    x = fastrnn.Input((None, 2))
    noisy = fastrnn.Model(x, L.GRU(3)(L.Dropout(0.5, name="always")(x, training=True)))
    with pytest.raises(ValueError, match=r"`always` \(Dropout\).*training=True"):
        noisy.export(path)
    custom = fastrnn.Sequential([L.Input((None, 2)), _Custom(name="mine"), L.GRU(3)])
    custom.build()
    with pytest.raises(ValueError, match=r"`mine` \(_Custom\).*no ONNX form"):
        custom.export(path)
    assert not os.path.exists(path)


def test_float64_and_unbuilt_models_are_refused(ort, tmp_path):
    path = str(tmp_path / "m.onnx")
    wide = fastrnn.Sequential([L.Input((None, 2)), L.GRU(3, dtype="float64")])
    with pytest.raises(ValueError, match="float64.*float32"):
        wide.export(path)
    with pytest.raises(ValueError, match="not been built"):
        fastrnn.Sequential([L.GRU(3)]).export(path)
    assert not os.path.exists(path)


def test_bad_paths_and_formats(ort, tmp_path):
    model = fastrnn.Sequential([L.Input((None, 2)), L.GRU(3)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.export(str(tmp_path / "missing" / "m.onnx"))
    with pytest.raises(IsADirectoryError, match="is a directory"):
        model.export(str(tmp_path))
    with pytest.raises(TypeError, match="filepath"):
        model.export(12)
    with pytest.raises(ValueError, match="format"):
        model.export(str(tmp_path / "m"), format="tf_saved_model")
    assert os.listdir(tmp_path) == []


def test_failed_export_leaves_an_existing_file_alone(ort, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    bad = fastrnn.Sequential([L.Input((None, 2)), L.SimpleRNN(3, layer_norm=True)])
    with pytest.raises(ValueError):
        bad.export(str(path))
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = fastrnn.Sequential([L.Input((None, 2)), L.GRU(3)])
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[onnx\]"'):
        model.export(str(tmp_path / "m.onnx"))


def test_masked_rows_keep_their_initial_state(ort, tmp_path):
    """A row without unmasked steps keeps its initial state (ONNX would give zeros) and
    outputs zeros; the states come out as return_state gives them."""
    x_in = fastrnn.Input((None, 3))
    h0, c0 = fastrnn.Input((4,), name="h0"), fastrnn.Input((4,), name="c0")
    masked = L.Masking()(x_in)
    y, h, c = L.LSTM(4, return_state=True, name="enc")(masked, initial_state=[h0, c0])
    seq = L.GRU(4, return_sequences=True, go_backwards=True, name="dec")(masked,
                                                                          initial_state=[h])
    model = fastrnn.Model([x_in, h0, c0], [y, h, c, seq])
    _randomize(model)
    rng = np.random.default_rng(8)
    make = _padded(3, 6)
    _check(model, tmp_path, ort, lambda B, T: [
        make(B, T), *rng.standard_normal((2, B, 4)).astype(np.float32)],
        lengths=(1, 6), batches=(4, 9))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_masked_return_state_and_bidirectional_lists(ort, tmp_path, cell, go_backwards,
                                                     return_sequences):
    """Every cell, each direction, both output kinds, masked, with return_state, and a
    Bidirectional with merge_mode=None and return_state: all of their outputs."""
    kind = getattr(L, cell)
    x_in = fastrnn.Input((None, 3))
    masked = L.Masking()(x_in)
    outs = kind(4, go_backwards=go_backwards, return_sequences=return_sequences,
                return_state=True)(masked)
    both = L.Bidirectional(kind(3, go_backwards=go_backwards, return_sequences=return_sequences,
                                return_state=True), merge_mode=None)(masked)
    model = fastrnn.Model(x_in, list(outs) + list(both))
    _randomize(model, 11)
    _check(model, tmp_path, ort, _padded(3, 12), lengths=(7,), batches=(5,))


def test_every_layer_activation_by_name(ort, tmp_path):
    from fastrnn.layers import base

    # (exponential, exported as Exp, would reach e^12 at these scales: left out)
    names = sorted(set(base._ACTIVATIONS) - {"sparsemax", "exponential"})
    inp = fastrnn.Input((None, 3))
    h = L.Dense(6)(inp)
    # each branch scaled so its pre-activations cross every kink (-3, -1, 0, 1, 3, 6)
    out = L.Concatenate()([L.Dense(4, activation=name)(h) for name in names])
    model = fastrnn.Model(inp, out)
    _randomize(model)
    model.set_weights([w * 4 for w in model.get_weights()])
    _check(model, tmp_path, ort, _seq(3), lengths=(5,), batches=(3,))
    sparse = fastrnn.Sequential([L.Input((3,)), L.Dense(4, activation="sparsemax")])
    with pytest.raises(ValueError, match="sparsemax"):
        sparse.export(str(tmp_path / "s.onnx"), format="onnx")
