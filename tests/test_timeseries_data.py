"""Synthetic series (Hands-On ML ch. 15) and target builders."""
# ruff: noqa: NPY002  (the book and its test use NumPy's legacy global random state)

import numpy as np
import pytest

from fastrnn.timeseries import generate_time_series, make_seq2seq_targets, make_windows


def book_generate_time_series(batch_size, n_steps):
    # The book's code, verbatim in its arithmetic, as the oracle.
    freq1, freq2, offsets1, offsets2 = np.random.rand(4, batch_size, 1)
    time = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (np.random.rand(batch_size, n_steps) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


@pytest.fixture
def restore_global_rng():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def test_global_seed_reproduces_the_book_bit_for_bit(restore_global_rng):
    np.random.seed(42)
    expected = book_generate_time_series(1000, 51)
    expected_next = book_generate_time_series(3, 7)  # the global stream advances the same way
    np.random.seed(42)
    got = generate_time_series(1000, 51)
    got_next = generate_time_series(3, 7)
    assert got.dtype == np.float32 and got.shape == (1000, 51, 1)
    assert np.array_equal(got, expected)
    assert np.array_equal(got_next, expected_next)


def test_int_seed_equals_the_book_with_that_global_seed_and_leaves_global_state_alone(
    restore_global_rng,
):
    np.random.seed(42)
    expected = book_generate_time_series(20, 30)
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    got = generate_time_series(20, 30, seed=42)
    assert np.array_equal(got, expected)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(generate_time_series(20, 30, seed=42), got)
    assert not np.array_equal(generate_time_series(20, 30, seed=43), got)
    assert np.array_equal(generate_time_series(20, 30, seed=np.random.RandomState(42)), got)


def test_series_properties():
    series = generate_time_series(500, 40, seed=0)[..., 0]
    # |0.5 sin| + |0.2 sin| + 0.05 noise bounds every value
    assert np.abs(series).max() <= 0.75 + 1e-6
    assert series.std() > 0.2  # not constant
    assert not np.array_equal(series[0], series[1])  # per-series frequencies


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"n_steps": -1}, {"seed": "x"},
                                 {"batch_size": True}])
def test_generate_rejects_bad_arguments(bad):
    kwargs = {"batch_size": 2, "n_steps": 3, **bad}
    with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
        generate_time_series(**kwargs)


def test_seq2seq_targets_match_the_book_loop():
    n_steps, horizon = 50, 10
    series = generate_time_series(30, n_steps + horizon, seed=3)
    expected = np.empty((30, n_steps, horizon))
    for step_ahead in range(1, horizon + 1):
        expected[..., step_ahead - 1] = series[..., step_ahead:step_ahead + n_steps, 0]
    got = make_seq2seq_targets(series, n_steps, horizon)
    assert got.shape == (30, n_steps, horizon) and got.dtype == np.float32
    assert np.array_equal(got, expected.astype(np.float32))
    # the last time step's targets are the direct (seq-to-vector) targets
    assert np.array_equal(got[:, -1], series[:, -horizon:, 0])


def test_seq2seq_targets_on_arange_identify_their_steps():
    series = np.arange(2 * 8).reshape(2, 8)  # (B, T) accepted
    got = make_seq2seq_targets(series, n_steps=5, horizon=3)
    assert got[0, 0].tolist() == [1, 2, 3]
    assert got[0, 4].tolist() == [5, 6, 7]
    assert got[1, 2].tolist() == [11, 12, 13]


def test_seq2seq_targets_errors():
    with pytest.raises(ValueError, match="`series`.*at least n_steps \\+ horizon = 12"):
        make_seq2seq_targets(np.zeros((2, 11, 1)), 10, 2)
    with pytest.raises(ValueError, match="`feature`"):
        make_seq2seq_targets(np.zeros((2, 12, 1)), 10, 2, feature=1)
    with pytest.raises(ValueError, match="`horizon`"):
        make_seq2seq_targets(np.zeros((2, 12, 1)), 10, 0)


def test_make_windows_on_arange():
    x, y = make_windows(np.arange(10), window=3, horizon=2)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2) and x.dtype == np.float32
    assert x[0, :, 0].tolist() == [0, 1, 2] and y[0].tolist() == [3, 4]
    assert x[-1, :, 0].tolist() == [5, 6, 7] and y[-1].tolist() == [8, 9]
    multi = np.stack([np.arange(10), 100 + np.arange(10)], axis=1)
    x, y = make_windows(multi, window=4, horizon=1, target=1, stride=3)
    assert x.shape == (2, 4, 2) and y[:, 0].tolist() == [104, 107]
    with pytest.raises(ValueError, match="`target`"):
        make_windows(multi, 4)
    with pytest.raises(ValueError, match="window \\+ horizon = 11"):
        make_windows(np.arange(10), 10, 1)


def test_windows_before_and_values_from_identify_their_steps():
    from fastrnn.timeseries import values_from, windows_before

    series = np.arange(20.0)  # each value is its own step number
    origins = np.array([3, 10, 17])
    x = windows_before(series, origins, 3)
    assert x.shape == (3, 3, 1) and x.dtype == np.float32
    assert np.array_equal(x[:, :, 0], [[0, 1, 2], [7, 8, 9], [14, 15, 16]])
    y = values_from(series, origins, 3)
    assert y.dtype == np.float32 and np.array_equal(y, [[3, 4, 5], [10, 11, 12], [17, 18, 19]])
    assert windows_before(series, np.array([20]), 2)[0, :, 0].tolist() == [18, 19]  # the end
    with pytest.raises(ValueError, match="`origins`"):
        windows_before(series, np.array([2]), 3)  # would start before step 0
    with pytest.raises(ValueError, match="`origins`"):
        values_from(series, np.array([18]), 3)  # would run past the end
    with pytest.raises(ValueError, match="`origins`"):
        values_from(series, np.array([1.5]), 1)
    with pytest.raises(ValueError, match="`series`"):
        values_from(series.reshape(4, 5), np.array([0]), 1)
