"""Concurrent inference on one model, as a server does it: many threads calling predict (and
evaluate) at once, and one stepper per stream with many streams stepping at once.

The promise (docs/guide/serving.md): concurrent predict calls on one model never corrupt it and
each returns what the same call returns alone, bit for bit; the one exception is a recurrent
layer wide enough that the core splits its hidden units over threads (H >= 384 at large
batches): a call that finds the worker pool busy computes all units on its own thread, and
OpenBLAS may block that product's sums differently (float32 rounding, measured up to 1e-6 on
SimpleRNN(800) with OpenBLAS's products; the AVX-512 micro-kernel gives the same bits).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
from _tolerance import assert_within, rounding_rtol
from fastrnn import layers as L

THREADS = 8  # more than the machine's cores: the worker pool is contended
REPEATS = 4


def _randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.3, w.shape) for w in model.get_weights()])


def _inputs(F: int, seed: int) -> list[np.ndarray]:
    """One input per thread, each of its own batch size and length (batches big enough for
    the core to split them over its threads)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((24 + 8 * k, 10 + k, F)).astype(np.float32)
            for k in range(THREADS)]


def _together(fn, inputs: list, repeats: int = REPEATS) -> list:
    """fn(x) for every x, `repeats` times each, all threads released at once."""
    start = threading.Barrier(len(inputs))

    def run(x):
        start.wait()
        return [fn(x) for _ in range(repeats)]

    with ThreadPoolExecutor(max_workers=len(inputs)) as pool:
        return list(pool.map(run, inputs))


MODELS = {
    "stacked_rnn": lambda: fastrnn.Sequential([
        L.Input((None, 5)), L.LSTM(48, return_sequences=True), L.GRU(32, return_sequences=True),
        L.SimpleRNN(16), L.Dense(3)]),
    "conv_bidirectional": lambda: fastrnn.Sequential([
        L.Input((None, 5)), L.Conv1D(8, 3, padding="causal"), L.LayerNormalization(),
        L.Bidirectional(L.LSTM(16, return_sequences=True)), L.GlobalAveragePooling1D(),
        L.Dense(2)]),
}


@pytest.mark.parametrize("build", list(MODELS.values()), ids=list(MODELS))
def test_concurrent_predicts_equal_single_calls(two_threads, build):
    """Within rounding (the promise): a call that finds the worker pool busy may split a
    layer's work differently, and other splits round differently on some kernel sets."""
    model = build()
    _randomize(model)
    inputs = _inputs(5, 1)
    alone = [model.predict(x, batch_size=len(x)) for x in inputs]
    results = _together(lambda x: model.predict(x, batch_size=len(x)), inputs)
    for k, runs in enumerate(results):
        # every layer's sums have at most 48 + 48 + 1 terms, chained over the T steps of the
        # recurrent layers and the few layers around them
        rtol = rounding_rtol(np.float32, terms=97, steps=inputs[k].shape[1] + 4)
        for got in runs:
            assert_within(got, alone[k], rtol, what=f"input {k}")
    # and the model still gives what it gave
    np.testing.assert_array_equal(model.predict(inputs[0], batch_size=len(inputs[0])),
                                  alone[0])


def _masked_model():
    x_in = fastrnn.Input((None, 4))
    seq = L.LSTM(12, return_sequences=True)(L.Masking()(x_in))
    model = fastrnn.Model(x_in, L.TimeDistributed(L.Dense(1))(seq))
    model.compile(optimizer="sgd", loss="mse")
    _randomize(model, 3)
    return model


def _padded(B: int, T: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 4)).astype(np.float32)
    x[:, : rng.integers(1, T - 1)] = 0  # padding in front: masked steps
    return x, rng.standard_normal((B, T, 1)).astype(np.float32)


def test_concurrent_masked_predicts_and_evaluates(two_threads):
    """Masks flow per call: concurrent calls on a masked model, each of its own shape, give
    their own outputs and their own masked scores."""
    model = _masked_model()
    data = [_padded(8 + 4 * k, 6 + k, k) for k in range(THREADS)]
    alone = [(model.predict(x, batch_size=8), model.evaluate(x, y, batch_size=8))
             for x, y in data]
    results = _together(lambda d: (model.predict(d[0], batch_size=8),
                                   model.evaluate(d[0], d[1], batch_size=8)), data)
    for k, runs in enumerate(results):
        for prediction, loss in runs:
            np.testing.assert_array_equal(prediction, alone[k][0])
            assert loss == alone[k][1]


def test_a_calls_masks_are_its_own_whatever_runs_between(two_threads):
    """The interleaving that breaks a model-wide mask slot, forced: call A's forward ends,
    call B's whole forward runs, then A reads its output masks."""
    model = _masked_model()
    (xa, ya), (xb, _) = _padded(8, 6, 1), _padded(8, 9, 2)
    want = model.evaluate(xa, ya, batch_size=8)
    forward = model._run_forward
    a_forwarded, b_forwarded = threading.Event(), threading.Event()

    def interleaved(xs, training):
        out = forward(xs, training)
        if threading.current_thread().name == "A":
            a_forwarded.set()
            b_forwarded.wait(10)
        else:
            b_forwarded.set()
        return out

    model._run_forward = interleaved
    got = {}
    a = threading.Thread(name="A", target=lambda: got.setdefault(
        "a", model.evaluate(xa, ya, batch_size=8)))
    a.start()
    assert a_forwarded.wait(10)
    model.predict(xb, batch_size=8)
    a.join(10)
    assert got["a"] == want


def test_wide_layers_agree_to_rounding(two_threads):
    """A layer the core splits by hidden units: a call that finds the pool busy runs all units
    itself; the sums of h U (H = 800 terms) may then be blocked otherwise: float32 rounding of
    sums of 800 products of O(0.03) magnitudes, through tanh (slope <= 1)."""
    model = fastrnn.Sequential([L.Input((None, 8)), L.SimpleRNN(800), L.Dense(2)])
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((8, 3, 8)).astype(np.float32) for _ in range(3)]
    alone = [model.predict(x, batch_size=8) for x in inputs]
    results = _together(lambda x: model.predict(x, batch_size=8), inputs, repeats=2)
    eps = np.finfo(np.float32).eps
    H = 800
    tolerance = 4 * H * eps  # |sum differences| <= K eps sum|terms| (sum|terms| ~ 1 here)
    for k, runs in enumerate(results):
        for got in runs:
            np.testing.assert_allclose(got, alone[k], rtol=0, atol=tolerance)


def test_one_stepper_per_stream_many_streams_at_once(two_threads):
    """Each stream steps its own stepper in its own thread; every stream's outputs are those
    it gives stepped alone, and what predict gives on its history."""
    model = fastrnn.Sequential([L.Input((None, 3)), L.LSTM(32, return_sequences=True),
                                L.GRU(16), L.Dense(2)])
    _randomize(model, 6)
    rng = np.random.default_rng(7)
    streams = [rng.standard_normal((1, 20, 3)).astype(np.float32) for _ in range(THREADS)]

    def run(x):
        stepper = model.stepper(batch_size=1)
        return np.stack([stepper.step(x[:, t]) for t in range(x.shape[1])], axis=1)

    alone = [run(x) for x in streams]
    start = threading.Barrier(THREADS)

    def together(x):
        start.wait()
        return run(x)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(together, streams))
    for k, x in enumerate(streams):
        np.testing.assert_array_equal(results[k], alone[k])
        # step t gives predict on steps 0..t (the stepper's own promise), to rounding
        np.testing.assert_allclose(results[k][:, -1], model.predict(x), rtol=0, atol=1e-5)


def test_a_shared_stepper_is_serialized_not_torn(two_threads):
    """Two threads stepping one stepper: each step is whole (the stepper's lock), so the
    stream advances by every step once, in some order: here all inputs are equal, so the
    order cannot matter and the final state is the one of stepping alone."""
    model = fastrnn.Sequential([L.Input((None, 3)), L.GRU(24), L.Dense(1)])
    _randomize(model, 8)
    x = np.full((1, 3), 0.25, dtype=np.float32)
    alone = model.stepper()
    for _ in range(2 * 50):
        alone.step(x)
    shared = model.stepper()
    start = threading.Barrier(2)

    def run(_):
        start.wait()
        for _ in range(50):
            shared.step(x)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, range(2)))
    np.testing.assert_array_equal(shared.states[0][0], alone.states[0][0])
