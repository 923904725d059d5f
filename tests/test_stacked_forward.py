"""Stacked recurrent layers on one sequence (batch 1, inference) run as a wavefront on two
threads (cpp/bindings/stacked.cpp): the same outputs as the layers called one by one, for
every cell, chunk boundary, length and dtype; the path is taken where it applies and only
there; its entry point refuses what it cannot run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
from _tolerance import assert_within, rounding_rtol
from fastrnn import _core
from fastrnn import layers as L
from fastrnn.ops import internal as ops_internal

CELLS = {"lstm": L.LSTM, "gru": L.GRU, "simple_rnn": L.SimpleRNN}
# The core takes the path only where OpenBLAS multiplies small products in place (its AVX-512
# kernels: cpp/dispatch.cpp, blas_reads_small_in_place) and declines elsewhere.
IN_PLACE = _core.blas_config().split("core=")[-1].strip() in (
    "SkylakeX", "Cooperlake", "SapphireRapids")


def _ran(calls) -> bool:
    """Whether the last stacked call ran (where the BLAS allows it) or declined (elsewhere)."""
    return bool(calls) and (calls[-1] is not None) == IN_PLACE


@pytest.fixture
def calls(monkeypatch):
    """The stacked forward's calls (their results: None when the core declined)."""
    seen: list = []
    run = ops_internal.stacked_forward_checked

    def spy(*args):
        out = run(*args)
        seen.append(out)
        return out

    monkeypatch.setattr(ops_internal, "stacked_forward_checked", spy)
    return seen


def _model(cells, units, features, last_sequences, dtype, head=True):
    kw = {"dtype": np.dtype(dtype).name}
    # (input_shape, not fastrnn.Input: a Sequential's InputLayer is float32)
    body = [CELLS[c](u, return_sequences=k < len(cells) - 1 or last_sequences, **kw,
                     **({"input_shape": (None, features)} if k == 0 else {}))
            for k, (c, u) in enumerate(zip(cells, units))]
    if head:
        body.append(L.Dense(2, **kw))
    model = fastrnn.Sequential(body)
    model.build()
    rng = np.random.default_rng(len(cells) * 31 + units[0])
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in model.get_weights()])
    return model


def _one_by_one(model, x):
    for layer in model.layers:
        x = layer.forward(x)
    return x


@pytest.mark.parametrize("cells, units", [
    (("lstm", "lstm"), (64, 64)), (("gru", "lstm"), (7, 33)), (("simple_rnn", "gru"), (20, 5)),
    (("lstm", "gru", "simple_rnn"), (16, 24, 8)), (("lstm", "lstm", "lstm", "lstm"), (9, 9, 9, 9)),
])
@pytest.mark.parametrize("T", [2, 7, 50, 61])
@pytest.mark.parametrize("last_sequences", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_predict_equals_the_layers_one_by_one(two_threads, calls, cells, units, T,
                                                      last_sequences, dtype):
    model = _model(cells, units, 5, last_sequences, dtype)
    x = np.random.default_rng(T).standard_normal((1, T, 5)).astype(dtype)
    got = model.predict(x)
    assert _ran(calls)  # the stacked path ran (declined where the BLAS copies W)
    want = _one_by_one(model, x)
    rtol = rounding_rtol(dtype, terms=max(units) * 2 + 6, steps=T * len(cells))
    assert_within(got, want, rtol, what="stacked predict")
    assert got.shape == want.shape


def test_simple_rnn_activations_and_no_bias(calls):
    model = fastrnn.Sequential([
        fastrnn.Input((None, 3)), L.SimpleRNN(6, activation="relu", return_sequences=True),
        L.LSTM(4, use_bias=False, return_sequences=True), L.GRU(5, use_bias=False)])
    rng = np.random.default_rng(2)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in model.get_weights()])
    x = rng.standard_normal((1, 12, 3)).astype(np.float32)
    got = model.predict(x)
    assert _ran(calls)
    assert_within(got, _one_by_one(model, x), rounding_rtol(np.float32, terms=20, steps=36))


@pytest.mark.parametrize("case", ["batch 2", "layer_norm", "go_backwards", "stateful",
                                  "return_state", "one layer", "masked", "one step"])
def test_not_taken_where_it_does_not_apply(calls, case):
    kw = dict(return_sequences=True)
    first = {"layer_norm": L.LSTM(4, layer_norm=True, **kw),
             "go_backwards": L.LSTM(4, go_backwards=True, **kw)}.get(case, L.LSTM(4, **kw))
    body = [first, L.GRU(3)]
    if case == "one layer":
        body = [L.GRU(3)]
    if case == "masked":
        body = [L.Masking(0.0)] + body
    if case == "stateful":
        body = [L.LSTM(4, stateful=True, **kw), L.GRU(3)]
    model = fastrnn.Sequential([fastrnn.Input((None, 2), batch_size=1 if case == "stateful"
                                              else None)] + body)
    B = 2 if case == "batch 2" else 1
    T = 1 if case == "one step" else 6
    x = np.random.default_rng(0).standard_normal((B, T, 2)).astype(np.float32)
    if case == "return_state":
        inp = fastrnn.Input((None, 2))
        seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(inp)
        model = fastrnn.Model(inp, L.GRU(3)(seq))
    model.predict(x, batch_size=B)
    assert not calls


def test_unit_split_layers_fall_back(two_threads, calls):
    """Layers a call of their own splits over threads (an LSTM(1200) at batch 1: a step is
    over 5 MFLOP a thread) are declined by the core: predict then runs them one by one."""
    model = _model(("lstm", "lstm"), (1200, 1200), 2, False, np.float32, head=False)
    x = np.random.default_rng(1).standard_normal((1, 3, 2)).astype(np.float32)
    got = model.predict(x)
    assert calls == [None]
    np.testing.assert_array_equal(got, _one_by_one(model, x))


def test_concurrent_predicts_give_the_single_call_results(two_threads):
    """Many threads predicting at once: one holds the pool (the wavefront), the others run
    the same chunks on their own thread; all give what a single call gives."""
    model = _model(("lstm", "lstm"), (32, 32), 5, False, np.float32)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 20 + k, 5)).astype(np.float32) for k in range(8)]
    alone = [model.predict(x) for x in xs]
    start = threading.Barrier(len(xs))

    def run(x):
        start.wait()
        return [model.predict(x) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=len(xs)) as pool:
        results = list(pool.map(run, xs))
    for want, got in zip(alone, results):
        for g in got:
            np.testing.assert_array_equal(g, want)


def test_inference_leaves_no_tape(calls):
    model = _model(("lstm", "gru"), (4, 3), 2, False, np.float32)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((1, 5, 2), np.float32)
    model.fit(x, np.zeros((1, 2), np.float32), epochs=1, verbose=0)  # leaves tapes
    model.predict(x)
    assert calls
    for layer in model.layers[:2]:
        with pytest.raises(RuntimeError):
            layer.backward(np.ones((1, 3), np.float32))


def test_entry_point_checks_its_arguments():
    x = np.zeros((1, 4, 2), np.float32)
    k, u = np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32)
    good = ("lstm", np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32), None, "tanh")
    result = _core.stacked_forward(x, [good], 3)
    if IN_PLACE:
        out, h = result
        assert out.shape == (1, 4, 2) and h.shape == (1, 2)
    else:
        assert result is None
    with pytest.raises(ValueError, match=r"layers\[0\].*unknown kind 'rnn'"):
        _core.stacked_forward(x, [("rnn", k, u, None, "tanh")])
    with pytest.raises(ValueError, match=r"batch 1"):
        _core.stacked_forward(np.zeros((2, 4, 2), np.float32), [good])
    with pytest.raises(ValueError, match=r"`chunk`"):
        _core.stacked_forward(x, [good], 0)
    with pytest.raises(ValueError, match=r"`kernel`"):
        _core.stacked_forward(x, [good, ("lstm", np.zeros((3, 8), np.float32), u, None,
                                         "tanh")])  # the first layer gives 2 features
    with pytest.raises(ValueError, match=r"`layers`"):
        _core.stacked_forward(x, [])
    with pytest.raises(ValueError, match=r"expected \(kind"):
        _core.stacked_forward(x, [("lstm", k)])
