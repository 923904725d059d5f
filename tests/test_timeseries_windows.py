"""Window semantics of timeseries_dataset_from_array, on np.arange data so that every
window identifies itself (the examples of Keras's own docstring and tests)."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastrnn.timeseries import WindowDataset, timeseries_dataset_from_array


def batches(dataset):
    return list(dataset)


def test_basic_92_windows_in_19_batches():
    data = np.arange(100)
    dataset = timeseries_dataset_from_array(data, data * 2, sequence_length=9, batch_size=5)
    assert isinstance(dataset, WindowDataset)
    assert len(dataset) == 19 and dataset.num_windows == 92
    got = batches(dataset)
    assert len(got) == 19
    assert [x.shape for x, _ in got] == [(5, 9)] * 18 + [(2, 9)]
    for i, (x, y) in enumerate(got):
        assert x.dtype == np.float32
        assert np.array_equal(y, x[:, 0] * 2)  # targets[i] belongs to the window starting at i
        for j in range(len(x)):
            assert np.array_equal(x[j], np.arange(i * 5 + j, i * 5 + j + 9))


def test_sampling_rate_2_gives_84_windows():
    data = np.arange(100)
    dataset = timeseries_dataset_from_array(data, data * 2, 9, batch_size=5, sampling_rate=2)
    assert dataset.num_windows == 84 and len(dataset) == 17
    got = batches(dataset)
    assert got[-1][0].shape == (4, 9)
    for i, (x, y) in enumerate(got):
        assert np.array_equal(y, x[:, 0] * 2)
        for j in range(len(x)):
            first = i * 5 + j
            assert np.array_equal(x[j], np.arange(first, first + 18, 2))


def test_sequence_stride_3_gives_31_windows():
    data = np.arange(100)
    dataset = timeseries_dataset_from_array(data, data * 2, 9, batch_size=5, sequence_stride=3)
    assert dataset.num_windows == 31 and len(dataset) == 7
    got = batches(dataset)
    assert got[-1][0].shape == (1, 9)
    for i, (x, y) in enumerate(got):
        assert np.array_equal(y, x[:, 0] * 2)
        for j in range(len(x)):
            first = i * 15 + j * 3
            assert np.array_equal(x[j], np.arange(first, first + 9))


def test_regression_example_each_window_predicts_the_next_value():
    data = np.arange(10)
    dataset = timeseries_dataset_from_array(data[:-3], data[3:], sequence_length=3,
                                            batch_size=1)
    pairs = [(x[0].tolist(), y[0].item()) for x, y in dataset]
    assert pairs == [([0, 1, 2], 3), ([1, 2, 3], 4), ([2, 3, 4], 5), ([3, 4, 5], 6),
                     ([4, 5, 6], 7)]


def test_docstring_example_1_stride_and_rate_together():
    dataset = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10,
                                            sampling_rate=2, sequence_stride=3)
    x, y = dataset.as_arrays()
    assert y is None
    assert x[0].tolist() == list(range(0, 20, 2))
    assert x[1].tolist() == list(range(3, 23, 2))
    assert x[-1].tolist() == [78, 80, 82, 84, 86, 88, 90, 92, 94, 96]


def test_no_targets_yields_x_only():
    dataset = timeseries_dataset_from_array(np.arange(50), None, sequence_length=10,
                                            batch_size=5)
    got = batches(dataset)
    assert len(got) == 9 == len(dataset)
    assert all(isinstance(b, np.ndarray) for b in got)
    assert got[-1].shape == (1, 10) and got[-1][0].tolist() == list(range(40, 50))


def test_multivariate_windows_and_targets():
    data = np.arange(60).reshape(30, 2)  # step t holds [2t, 2t + 1]
    targets = np.arange(30) * 10
    dataset = timeseries_dataset_from_array(data, targets, sequence_length=4, batch_size=8,
                                            sampling_rate=2, start_index=3)
    x, y = dataset.as_arrays()
    assert x.shape == (21, 4, 2) and x.dtype == np.float32
    assert x[0, :, 0].tolist() == [6, 10, 14, 18]  # steps 3, 5, 7, 9
    assert y[0] == 30 and y[-1] == 230  # targets[start_index + j]
    assert dataset.window_starts[0] == 3 and dataset.window_starts[-1] == 23


def test_jena_style_delay_targets():
    # Deep Learning with Python: target = temperature `delay` steps after the window start.
    raw = np.arange(1000, dtype=np.float64)
    rate, length = 6, 20
    delay = rate * (length + 24 - 1)
    dataset = timeseries_dataset_from_array(raw[:-delay], targets=raw[delay:],
                                            sampling_rate=rate, sequence_length=length,
                                            shuffle=True, batch_size=32, seed=0,
                                            start_index=0, end_index=500)
    for x, y in dataset:
        assert np.array_equal(y, x[:, 0] + delay)
        assert x.max() < 500
    assert dataset.num_windows == 500 - (length - 1) * rate


def test_start_and_end_index_bound_every_window():
    dataset = timeseries_dataset_from_array(np.arange(100), None, sequence_length=9,
                                            batch_size=5, sequence_stride=3, sampling_rate=2,
                                            start_index=10, end_index=90)
    x, _ = dataset.as_arrays()
    assert x.min() == 10 and x.max() <= 89
    assert x[0].tolist() == list(range(10, 28, 2))
    # end_index == len(data) is allowed (exclusive end)
    full = timeseries_dataset_from_array(np.arange(100), None, 9, end_index=100)
    assert full.num_windows == 92


def test_end_index_zero_start_index_zero_is_not_ignored():
    dataset = timeseries_dataset_from_array(np.arange(20), None, 5, start_index=0)
    assert dataset.num_windows == 16
    with pytest.raises(ValueError, match="`end_index`.*greater than start_index = 0.*got 0"):
        timeseries_dataset_from_array(np.arange(20), None, 5, end_index=0)


def test_unbatched_yields_single_windows():
    data = np.arange(20)
    dataset = timeseries_dataset_from_array(data, data * 3, sequence_length=4, batch_size=None)
    assert len(dataset) == 17
    samples = list(dataset)
    assert len(samples) == 17
    x, y = samples[5]
    assert x.shape == (4,) and x.tolist() == [5, 6, 7, 8] and y == 15
    x[:] = -1  # yielded arrays are copies, never views of the series
    assert list(dataset)[5][0].tolist() == [5, 6, 7, 8]
    shuffled = timeseries_dataset_from_array(data, None, 9, batch_size=None, shuffle=True,
                                             seed=1)
    first = next(iter(shuffled))
    assert first.ndim == 1 and first.shape == (9,)
    assert sorted(int(w[0]) for w in shuffled) == list(range(12))


def test_shuffle_reshuffles_each_epoch_reproducibly_and_keeps_pairs():
    data = np.arange(200)

    def make():
        return timeseries_dataset_from_array(data, data * 2, sequence_length=5, batch_size=7,
                                             shuffle=True, seed=123)

    dataset = make()
    epoch1 = np.concatenate([x[:, 0] for x, _ in dataset])
    epoch2 = np.concatenate([x[:, 0] for x, _ in dataset])
    assert not np.array_equal(epoch1, np.arange(196))  # shuffled
    assert not np.array_equal(epoch1, epoch2)  # a new order every epoch
    assert sorted(epoch1.tolist()) == list(range(196))  # every window exactly once
    for x, y in dataset:
        assert np.array_equal(y, x[:, 0] * 2)
        assert np.array_equal(x, x[:, :1] + np.arange(5))
    again = make()
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in again]), epoch1)
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in again]), epoch2)
    other = timeseries_dataset_from_array(data, None, 5, shuffle=True, seed=124, batch_size=7)
    assert not np.array_equal(np.concatenate([x[:, 0] for x in other]), epoch1)
    # as_arrays ignores shuffling: chronological order
    assert dataset.as_arrays()[0][:, 0].tolist() == list(range(196))


def test_as_arrays_copy_and_view():
    data = np.arange(30, dtype=np.float32)
    dataset = timeseries_dataset_from_array(data, data, 4, batch_size=3)
    x_view, y_view = dataset.as_arrays(copy=False)
    assert np.shares_memory(x_view, data) and not x_view.flags.writeable
    x, y = dataset.as_arrays()
    assert x.flags.writeable and not np.shares_memory(x, data)
    assert np.array_equal(x, x_view) and np.array_equal(y, data[:27])
    assert np.array_equal(np.concatenate([b for b, _ in dataset]), x)


def test_targets_shorter_than_windows_limit_the_windows():
    data = np.arange(50)
    dataset = timeseries_dataset_from_array(data, np.arange(10), 5)
    assert dataset.num_windows == 10
    # with start_index the limit is counted from start_index (Keras indexes past the end)
    dataset = timeseries_dataset_from_array(data, np.arange(10), 5, start_index=4)
    x, y = dataset.as_arrays()
    assert len(x) == 6 and y.tolist() == [4, 5, 6, 7, 8, 9] and x[:, 0].tolist() == y.tolist()


def test_dtype_handling():
    data = np.arange(10, dtype=np.float64)
    x, y = timeseries_dataset_from_array(data, data, 3).as_arrays()
    assert x.dtype == np.float32 and y.dtype == np.float32
    x, y = timeseries_dataset_from_array(data, np.arange(10), 3, dtype=None).as_arrays()
    assert x.dtype == np.float64 and y.dtype == np.arange(1).dtype  # labels keep int dtype


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sequence_length": 0},
         "Received an invalid value for argument `sequence_length`: expected a positive "
         "integer, got 0."),
        ({"sequence_length": 2.5}, "`sequence_length`"),
        ({"sequence_stride": 0}, "`sequence_stride`: expected a positive integer, got 0"),
        ({"sampling_rate": -2}, "`sampling_rate`: expected a positive integer, got -2"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"start_index": -1}, "`start_index`: expected a non-negative integer, got -1"),
        ({"start_index": 10}, "`start_index`: expected an index lower than len\\(data\\) = 10"),
        ({"end_index": 11}, "`end_index`: expected at most len\\(data\\) = 10"),
        ({"end_index": -1}, "`end_index`"),
        ({"start_index": 5, "end_index": 5}, "`end_index`.*greater than start_index = 5"),
        ({"sequence_length": 11}, "`sequence_length`.*11 steps at sampling_rate 1 span 11"),
        ({"sequence_length": 4, "sampling_rate": 4}, "span 13 steps.*leave 10"),
        ({"sequence_length": 3, "start_index": 8}, "`sequence_length`.*leave 2"),
        ({"shuffle": "yes"}, "`shuffle`"),
        ({"seed": -3}, "`seed`"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, pattern):
    arguments = {"sequence_length": 3, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        timeseries_dataset_from_array(np.arange(10), None, **arguments)


def test_window_one_longer_than_data_raises_where_keras_returns_nothing():
    # span 10 on 10 points: exactly one window
    assert timeseries_dataset_from_array(np.arange(10), None, 10).num_windows == 1
    with pytest.raises(ValueError, match="`sequence_length`"):
        timeseries_dataset_from_array(np.arange(10), None, 11)


def test_bad_data_and_targets():
    with pytest.raises(ValueError, match="`data`"):
        timeseries_dataset_from_array(np.float32(3.0), None, 1)
    with pytest.raises(ValueError, match="`targets`"):
        timeseries_dataset_from_array(np.arange(10), np.arange(3), 2, start_index=3)
    with pytest.raises(ValueError, match="`targets`"):
        timeseries_dataset_from_array(np.arange(10), np.float32(1.0), 2)


def test_large_strides_allowed_while_a_window_fits():
    dataset = timeseries_dataset_from_array(np.arange(10), None, 1, sequence_stride=50,
                                            sampling_rate=20)
    assert dataset.as_arrays()[0].tolist() == [[0]]


def reference_windows(n, targets_len, length, stride, rate, start, end):
    """Brute force from the documented rule, one window at a time."""
    windows, labels = [], []
    first = start
    while first + (length - 1) * rate < end and (targets_len is None or first < targets_len):
        windows.append([first + k * rate for k in range(length)])
        labels.append(first)
        first += stride
    return windows, labels


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    length=st.integers(1, 8),
    stride=st.integers(1, 5),
    rate=st.integers(1, 4),
    batch=st.integers(1, 7),
    start=st.integers(0, 10),
    cut=st.integers(0, 10),
    targets_len=st.one_of(st.none(), st.integers(1, 45)),
)
def test_windows_match_brute_force_reference(n, length, stride, rate, batch, start, cut,
                                             targets_len):
    data = np.arange(n)
    end = n - cut
    targets = None if targets_len is None else np.arange(targets_len) + 1000
    expected, labels = reference_windows(n, targets_len, length, stride, rate, start, end)
    kwargs = dict(sequence_length=length, sequence_stride=stride, sampling_rate=rate,
                  batch_size=batch, start_index=start, end_index=end)
    if start >= n or end <= start or not expected:
        with pytest.raises(ValueError):
            timeseries_dataset_from_array(data, targets, **kwargs)
        return
    dataset = timeseries_dataset_from_array(data, targets, **kwargs)
    got = list(dataset)
    assert len(got) == len(dataset) == -(-len(expected) // batch)
    xs = np.concatenate([b[0] if targets is not None else b for b in got])
    assert xs.astype(int).tolist() == expected
    if targets is not None:
        ys = np.concatenate([b[1] for b in got])
        assert (ys - 1000).tolist() == labels


def test_jena_sized_series_needs_no_per_window_copy():
    steps, features, length = 420_000, 14, 120
    data = np.zeros((steps, features), dtype=np.float32)
    data[:, 0] = np.arange(steps)
    targets = data[:, 1]
    tracemalloc.start()
    try:
        dataset = timeseries_dataset_from_array(data, targets, sequence_length=length,
                                                sampling_rate=1, batch_size=256, shuffle=True,
                                                seed=0)
        iterator = iter(dataset)
        for _ in range(3):
            x, y = next(iterator)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.shape == (256, length, features) and y.shape == (256,)
    assert np.array_equal(x[:, :, 0], x[:, :1, 0] + np.arange(length))
    assert len(dataset) == -(-(steps - length + 1) // 256)
    # one copy of all windows would be 420k * 120 * 14 * 4 bytes = 2.8 GB; the series is
    # already float32, so only the shuffled order and three batches are allocated.
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"
