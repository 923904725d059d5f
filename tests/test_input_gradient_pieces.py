"""d_x of every cell over enough rows that its product goes in pieces of rows (cpp/common.hpp,
input_gradient: rows * I * G beyond OpenBLAS's in-place bound, pieces of at least 24 rows, the
last one short), against the NumPy reference in float64."""

from __future__ import annotations

import numpy as np
import pytest

from _cells import assert_close, backward, forward, make_case, upstream
from fastrnn import ops
from fastrnn import reference as ref


# (B, T, I, H): 451 rows of I * G = 2600 (LSTM: 384-row pieces), 1247 rows of 7 * 1200 (LSTM:
# 119-row pieces), 65 rows of 20 * 1200 (LSTM: 41 and 24 rows, below the 64 rows other
# products keep at least; GRU: 55 and 10); for the other cells G is narrower (wider pieces, or
# the product whole).
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize(
    "shape",
    [(11, 41, 5, 130), (43, 29, 7, 300), (5, 13, 20, 300)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_input_gradient_in_pieces_matches_reference(cell, shape):
    rng = np.random.default_rng(sum(shape))
    case = make_case(rng, cell, *shape, np.float64)
    d_out, d_states = upstream(rng, case)
    _, _, tape = forward(ops, case)
    _, _, r_tape = forward(ref, case)
    got = backward(ops, cell, tape, d_out, d_states)
    want = backward(ref, cell, r_tape, d_out, d_states)
    assert_close(got["x"], want["x"], 1e-10, "d_x")
