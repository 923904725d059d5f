"""The same values give the same bits wherever they sit in memory.

NumPy places an array's data 16 bytes apart from the last one or 64, as the allocator
pleases; a kernel whose sums start at the first aligned address (Eigen's reductions do)
rounds a row differently at each placement, and a served model then answers one request two
ways. Every layer here runs forward and backward on the same input and output gradient placed
at each of 16 float offsets (every 4-byte placement modulo 64) and must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import layers as L

OFFSETS = range(16)


def _placed(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of `a` whose data starts `offset` floats past a 64-byte boundary."""
    buf = np.empty(a.size + 32, a.dtype)
    start = (-(buf.ctypes.data // a.itemsize)) % (64 // a.itemsize) + offset
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


LAYERS = {
    "layer_normalization": (lambda: L.LayerNormalization(), 37),
    "layer_normalization_8": (lambda: L.LayerNormalization(), 8),
    "batch_normalization": (lambda: L.BatchNormalization(), 13),
    "unit_normalization": (lambda: L.UnitNormalization(), 21),
    "rms_normalization": (lambda: L.RMSNormalization(), 21),
    "group_normalization": (lambda: L.GroupNormalization(groups=3), 21),
    "lstm": (lambda: L.LSTM(19, return_sequences=True), 7),
    "gru_layer_norm": (lambda: L.GRU(21, return_sequences=True, layer_norm=True), 7),
    "simple_rnn_layer_norm": (lambda: L.SimpleRNN(37, return_sequences=True,
                                                  layer_norm=True), 7),
    "conv1d": (lambda: L.Conv1D(11, 3, padding="causal"), 9),
    "conv1d_transpose": (lambda: L.Conv1DTranspose(11, 3, strides=2), 9),
    "separable_conv1d": (lambda: L.SeparableConv1D(11, 3, padding="same"), 9),
    "dense": (lambda: L.Dense(13), 9),
    "global_average_pooling": (lambda: L.GlobalAveragePooling1D(), 9),
}


def _run(layer, xs: list, g: np.ndarray, offset: int) -> list:
    placed = [_placed(x, offset) for x in xs]
    out = layer.forward(placed if len(placed) > 1 else placed[0], training=True)
    d_in = layer.backward(_placed(g, offset))
    d_in = d_in if isinstance(d_in, list) else [d_in]
    return [np.array(out)] + [np.array(d) for d in d_in if d is not None] + [
        np.array(w) for w in layer.grads]


def _assert_same_bits(layer, xs: list) -> None:
    out = layer.forward(xs if len(xs) > 1 else xs[0], training=True)
    g = np.random.default_rng(1).standard_normal(np.shape(out)).astype(np.float32)
    first = _run(layer, xs, g, 0)
    for offset in OFFSETS:
        again = _run(layer, xs, g, offset)
        for k, (a, b) in enumerate(zip(first, again)):
            assert np.array_equal(a, b), (
                f"{layer.name}: result {k} differs at a {offset}-float offset "
                f"({int(np.sum(a != b))} of {a.size} elements)")


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gives_the_same_bits_at_every_placement(name):
    make, features = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 12, features)).astype(np.float32)
    _assert_same_bits(make(), [x])


class _Attend:
    """MultiHeadAttention called as a user calls it (`attend`), in the harness's form."""

    def __init__(self, causal: bool):
        self.mha = L.MultiHeadAttention(3, 5)
        self.name, self.causal = self.mha.name, causal

    def forward(self, x, training=False):
        return self.mha.attend(x[0], x[1], training=training, use_causal_mask=self.causal)

    def backward(self, g):
        return self.mha.backward(g)

    @property
    def grads(self):
        return self.mha.grads


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gives_the_same_bits_at_every_placement(causal):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 11, 13)).astype(np.float32)
    v = q.copy() if causal else rng.standard_normal((4, 23, 13)).astype(np.float32)
    _assert_same_bits(_Attend(causal), [q, v])


@pytest.mark.parametrize("batch", [1, 3])
def test_few_row_recurrent_products_give_the_same_bits_at_every_placement(batch):
    """Batch 1-3 runs the packed few-row product (the serving path)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 9, 6)).astype(np.float32)
    _assert_same_bits(L.LSTM(64, return_sequences=True), [x])
    _assert_same_bits(L.Bidirectional(L.GRU(40, return_sequences=True)), [x])
