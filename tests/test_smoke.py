import numpy as np

import fastrnn


def test_threads_round_trip():
    n = fastrnn.get_num_threads()
    fastrnn.set_num_threads(1)
    assert fastrnn.get_num_threads() == 1
    fastrnn.set_num_threads(n)
    assert fastrnn.get_num_threads() == n


def test_lstm_forward_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    k = rng.standard_normal((4, 20)).astype(np.float32)
    u = rng.standard_normal((5, 20)).astype(np.float32)
    out, h, c, _ = fastrnn.ops.lstm_forward(x, None, None, k, u, None)
    assert out.shape == (2, 3, 5) and h.shape == (2, 5) and c.shape == (2, 5)
    np.testing.assert_array_equal(out[:, -1], h)
