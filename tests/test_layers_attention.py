"""Attention, AdditiveAttention and MultiHeadAttention: NumPy references, float64 finite
differences (with masks and dropout), PyTorch's nn.MultiheadAttention, TF-Keras parity with
copied weights in seq2seq-shaped models (value masks, query masks, the causal mask), and
errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _layer_harness import assert_keras_parity, check_gradients
from fastrnn import layers

RNG = np.random.default_rng


def softmax(s, keep=None):
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_mha(q, v, k, w, heads, key_dim, keep=None):
    """Keras's equations with einsum: per head softmax(Q K^T / sqrt(Dk)) V, projected."""
    Q = np.einsum("btd,dhk->bthk", q, w[0]) + w[1]
    K = np.einsum("btd,dhk->bthk", k, w[2]) + w[3]
    V = np.einsum("btd,dhk->bthk", v, w[4]) + w[5]
    s = np.einsum("bqhk,bvhk->bhqv", Q / np.sqrt(key_dim), K)
    p = softmax(s, None if keep is None else keep[:, None])
    ctx = np.einsum("bhqv,bvhk->bqhk", p, V)
    return np.einsum("bqhk,hko->bqo", ctx, w[6]) + w[7], p


def test_attention_matches_numpy():
    rng = RNG(0)
    q, v, k = (rng.standard_normal((2, n, 4)) for n in (5, 7, 7))
    v_mask = np.ones((2, 7), bool)
    v_mask[0, 5:] = False
    q_mask = np.ones((2, 5), bool)
    q_mask[1, 3:] = False
    att = layers.Attention(use_scale=True, dtype="float64")
    att.build([(5, 4), (7, 4), (7, 4)])
    att.set_weights([np.array(0.7)])
    p = softmax(0.7 * q @ k.transpose(0, 2, 1), v_mask[:, None])
    np.testing.assert_allclose(att.forward([q, v, k], mask=[q_mask, v_mask]),
                               (p @ v) * q_mask[..., None], rtol=1e-10)
    out, scores = att.forward([q, v], use_causal_mask=True, return_attention_scores=True)
    p = softmax(0.7 * q @ v.transpose(0, 2, 1), np.tril(np.ones((5, 7), bool)))
    np.testing.assert_allclose(scores, p, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(out, p @ v, rtol=1e-10)
    concat = layers.Attention(score_mode="concat", dtype="float64")
    s = np.tanh(q[:, :, None] + k[:, None]).sum(-1)
    np.testing.assert_allclose(concat.forward([q, v, k]), softmax(s) @ v, rtol=1e-10)
    add = layers.AdditiveAttention(dtype="float64")
    add.build([(5, 4), (7, 4)])
    scale = rng.standard_normal(4)
    add.set_weights([scale])
    s = (np.tanh(q[:, :, None] + k[:, None]) * scale).sum(-1)
    np.testing.assert_allclose(add.forward([q, v, k]), softmax(s) @ v, rtol=1e-10)


def test_multi_head_attention_matches_numpy_with_masks():
    rng = RNG(1)
    q, v, k = rng.standard_normal((3, 5, 6)), rng.standard_normal((3, 7, 4)), \
        rng.standard_normal((3, 7, 3))
    mha = layers.MultiHeadAttention(3, 2, dtype="float64", bias_initializer="random_normal")
    out = mha(q, v, k)
    w = mha.get_weights()
    np.testing.assert_allclose(out, ref_mha(q, v, k, w, 3, 2)[0], rtol=1e-10)
    v_mask = rng.random((3, 7)) > 0.3
    v_mask[:, 0] = True
    am = rng.random((3, 5, 7)) > 0.2
    am[:, :, 0] = True
    keep = v_mask[:, None] & am & np.tril(np.ones((5, 7), bool))
    out, p = mha(q, v, k, value_mask=v_mask, key_mask=v_mask, attention_mask=am,
                 use_causal_mask=True, return_attention_scores=True)
    ref, ref_p = ref_mha(q, v, k, w, 3, 2, keep)
    np.testing.assert_allclose(out, ref, rtol=1e-10)
    np.testing.assert_allclose(p, ref_p, rtol=1e-10, atol=1e-300)
    q_mask = np.ones((3, 5), bool)
    q_mask[0, 2:] = False  # fully masked query rows attend to nothing: the output bias only
    out, p = mha(q, v, k, query_mask=q_mask, return_attention_scores=True)
    assert np.all(p[0, :, 2:] == 0)
    np.testing.assert_allclose(out[0, 2:], np.broadcast_to(w[7], (3, 6)), rtol=1e-12)


def test_group_query_attention_is_mha_with_repeated_heads():
    """Hq=4 query heads over Hkv=2 key/value heads equals a MultiHeadAttention whose key and
    value kernels repeat each shared head twice."""
    rng = RNG(17)
    q, v = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 7, 6))
    gqa = layers.GroupQueryAttention(3, 4, 2, dtype="float64", bias_initializer="random_normal")
    out, p = gqa(q, v, use_causal_mask=True, return_attention_scores=True)
    w = gqa.get_weights()
    rep = [np.repeat(a, 2, axis=-2) for a in w[2:6]]
    ref, ref_p = ref_mha(q, v, v, [w[0], w[1], *rep, w[6], w[7]], 4, 3,
                         np.tril(np.ones((5, 7), bool))[None])
    np.testing.assert_allclose(out, ref, rtol=1e-10)
    np.testing.assert_allclose(p, ref_p, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("case", range(8))
def test_gradients_by_finite_differences(case):
    rng = RNG(2 + case)
    q, v, k = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), \
        rng.standard_normal((2, 5, 3))
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    q_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    if case < 5:
        layer, kwargs = [
            (layers.Attention(use_scale=True), dict(mask=[q_mask, v_mask])),
            (layers.Attention(use_scale=True, score_mode="concat"),
             dict(use_causal_mask=True)),
            (layers.AdditiveAttention(), dict(mask=[None, v_mask])),
            (layers.AdditiveAttention(use_scale=False), dict(return_attention_scores=True)),
            (layers.Attention(dropout=0.3, seed=4), dict(mask=[None, v_mask])),
        ][case]
        layer.dtype = np.dtype("float64")
        layer.build([q.shape[1:], v.shape[1:], k.shape[1:]])
        if layer.weights:
            layer.set_weights([rng.standard_normal(w.shape) for w in layer.weights])
        seed = [0]

        def call(xs, training):
            if layer.dropout:  # the same dropout draw for every evaluation
                layer._rng = np.random.default_rng(seed[0])
            return layer.forward(xs, training=True, **kwargs)
    else:
        layer = layers.MultiHeadAttention(2, 3, value_dim=2, output_shape=4, dtype="float64",
                                          bias_initializer="random_normal",
                                          dropout=0.3 if case == 6 else 0.0)
        if case == 7:
            layer = layers.GroupQueryAttention(2, 4, 2, dtype="float64",
                                               bias_initializer="random_normal")

        def call(xs, training):
            layer._rng = np.random.default_rng(0)
            return layer(xs[0], xs[1], xs[2], value_mask=v_mask, training=True,
                         use_causal_mask=case == 6)
        call([q, v, k], True)
    check_gradients(layer, [q, v, k], rng, n_points=8, call=call)


def test_multi_head_attention_matches_torch():
    torch = pytest.importorskip("torch")
    rng = RNG(3)
    E, H, B, T, S = 8, 2, 3, 5, 6
    q, kv = rng.standard_normal((B, T, E)), rng.standard_normal((B, S, E))
    mine = layers.MultiHeadAttention(H, E // H, dtype="float64",
                                     bias_initializer="random_normal")
    v_mask = rng.random((B, S)) > 0.3
    v_mask[:, 0] = True
    out = mine(q, kv, value_mask=v_mask, training=True)
    w = mine.get_weights()
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.from_numpy(np.concatenate(
            [w[i].reshape(E, E).T for i in (0, 2, 4)])))
        theirs.in_proj_bias.copy_(torch.from_numpy(np.concatenate(
            [w[i].reshape(E) for i in (1, 3, 5)])))
        theirs.out_proj.weight.copy_(torch.from_numpy(w[6].reshape(E, E).T))
        theirs.out_proj.bias.copy_(torch.from_numpy(w[7]))
    qt = torch.from_numpy(q).requires_grad_()
    kt = torch.from_numpy(kv).requires_grad_()
    ot, _ = theirs(qt, kt, kt, key_padding_mask=torch.from_numpy(~v_mask))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-10)
    g = rng.standard_normal(out.shape)
    ot.backward(torch.from_numpy(g))
    d_q, d_kv = mine.backward(g)
    np.testing.assert_allclose(d_q, qt.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(d_kv, kt.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(mine.grads[6].reshape(E, E).T, theirs.out_proj.weight.grad,
                               rtol=1e-9)
    np.testing.assert_allclose(np.concatenate([mine.grads[i].reshape(E, E).T
                                               for i in (0, 2, 4)]),
                               theirs.in_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- TF-Keras
@pytest.fixture(scope="module")
def keras():
    from _keras import import_keras
    return import_keras()


def _seq2seq(L, attention, causal, query_mask):
    """Embedded source and target ids -> (L)STM-free encoder/decoder with attention."""
    src, tgt = L.Input((7,), dtype="int32"), L.Input((5,), dtype="int32")
    enc = L.Embedding(11, 6, mask_zero=True)(src)
    dec = L.Embedding(11, 6, mask_zero=query_mask)(tgt)
    enc = L.Dense(6)(enc)
    ctx = attention(L, dec, enc, causal)
    out = L.Dense(3)(L.concatenate([ctx, dec]))
    return [src, tgt], out


ATTENTIONS = {
    "Attention": lambda L, d, e, c: L.Attention(use_scale=True)([d, e]),
    "Attention-concat": lambda L, d, e, c: L.Attention(score_mode="concat")([d, e, e]),
    "AdditiveAttention": lambda L, d, e, c: L.AdditiveAttention()([d, e]),
    "MultiHeadAttention": lambda L, d, e, c: L.MultiHeadAttention(2, 3)(d, e),
    "MultiHeadAttention-key": lambda L, d, e, c: L.MultiHeadAttention(
        3, 2, value_dim=4, output_shape=5)(d, e, key=L.Dense(4)(e)),
    "GroupQueryAttention": lambda L, d, e, c: L.GroupQueryAttention(2, 4, 2)(d, e),
    "self-MultiHeadAttention-causal": lambda L, d, e, c: L.add([L.MultiHeadAttention(2, 3)(
        d, d, use_causal_mask=True), L.Attention()([d, e])]),
    "self-Attention-causal": lambda L, d, e, c: L.add([
        L.Attention()([d, d], use_causal_mask=True), L.Attention()([d, e])]),
}


@pytest.mark.parametrize("name", list(ATTENTIONS))
@pytest.mark.parametrize("query_mask", [False, True])
def test_seq2seq_matches_tf_keras_with_masks(keras, name, query_mask):
    """Padded source ids (a value mask), optionally padded target ids (a query mask that
    also masks the loss), and the causal mask: predictions on the unmasked steps, then every
    weight after three SGD steps."""
    rng = RNG(4)
    src = rng.integers(1, 11, (8, 7))
    tgt = rng.integers(1, 11, (8, 5))
    for i, n in enumerate([7, 3, 5, 1, 7, 6, 2, 4]):
        src[i, n:] = 0
    for i, n in enumerate([5, 2, 4, 5, 1, 3, 5, 5]):
        tgt[i, n:] = 0 if query_mask else tgt[i, n:]
    inputs, out = _seq2seq(layers, ATTENTIONS[name], False, query_mask)
    mine = fastrnn.Model(inputs, out)
    kin, kout = _seq2seq(keras.layers, ATTENTIONS[name], False, query_mask)
    theirs = keras.Model(kin, kout)
    y = rng.standard_normal((8, 5, 3)).astype(np.float32)
    rows = (tgt != 0) if query_mask else None
    assert_keras_parity(mine, theirs, [src, tgt], y, rng, compare_rows=rows,
                        mask_loss=rows)


def test_options_survive_saving_and_refuse_a_second_set(tmp_path):
    rng = RNG(5)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    inp = fastrnn.Input((6, 4))
    mha = layers.MultiHeadAttention(2, 2)
    out, scores = mha(inp, inp, use_causal_mask=True, return_attention_scores=True)
    model = fastrnn.Model(inp, [out, scores])
    o, s = model.predict(x, verbose=0)
    assert s.shape == (2, 2, 6, 6) and np.all(np.triu(s[0, 0], 1) == 0)
    model.save(tmp_path / "m.keras")
    o2, s2 = fastrnn.load_model(tmp_path / "m.keras").predict(x, verbose=0)
    np.testing.assert_allclose(o2, o, rtol=1e-6)
    np.testing.assert_allclose(s2, s, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="call options"):
        mha(inp, inp)
    norm = layers.Normalization()
    norm.adapt(x)  # scalar weights (count; Attention's scale) survive the file too
    h = norm(inp)
    a = layers.Attention(use_scale=True)([h, h], use_causal_mask=True)
    m2 = fastrnn.Model(inp, a)
    m2.set_weights([w + 0.5 for w in m2.get_weights()])
    m2.save(tmp_path / "a.keras")
    np.testing.assert_allclose(fastrnn.load_model(tmp_path / "a.keras").predict(x, verbose=0),
                               m2.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.MultiHeadAttention(0, 4), "`num_heads`"),
    (lambda: layers.MultiHeadAttention(2, 0), "`key_dim`"),
    (lambda: layers.MultiHeadAttention(2, 4, value_dim=-1), "`value_dim`"),
    (lambda: layers.MultiHeadAttention(2, 4, dropout=1.0), "`dropout`"),
    (lambda: layers.MultiHeadAttention(2, 4, output_shape=(2, 3)), "`output_shape`"),
    (lambda: layers.MultiHeadAttention(2, 4, attention_axes=(1, 2)), "`attention_axes`"),
    (lambda: layers.Attention(score_mode="add"), "`score_mode`"),
    (lambda: layers.GroupQueryAttention(4, 6, 4), "`num_key_value_heads`"),
    (lambda: layers.GroupQueryAttention(0, 4, 2), "`head_dim`"),
    (lambda: layers.Attention(use_scale=1), "`use_scale`"),
    (lambda: layers.AdditiveAttention(dropout=-0.1), "`dropout`"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        make()


def test_bad_inputs_give_clear_errors():
    x, y = np.zeros((2, 5, 4), np.float32), np.zeros((2, 6, 3), np.float32)
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Attention().forward(x)
    with pytest.raises(ValueError, match="length 2 or 3"):
        layers.Attention().forward([x])
    with pytest.raises(ValueError, match="`query` and `key` must have the same last"):
        layers.Attention().forward([x, y])
    with pytest.raises(ValueError, match="`value` and `key` must have the same number"):
        layers.Attention().forward([x, x, y[..., :4]])
    with pytest.raises(ValueError, match=r"mask\[1\]"):
        layers.Attention().forward([x, x], mask=[None, np.ones((2, 4), bool)])
    with pytest.raises(ValueError, match="value_mask"):
        layers.MultiHeadAttention(2, 2)(x, y, value_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="attention_mask"):
        layers.MultiHeadAttention(2, 2)(x, y, attention_mask=np.ones((2, 6, 5)))
    with pytest.raises(ValueError, match="`value` and `key`"):
        layers.MultiHeadAttention(2, 2)(x, y, x)
    with pytest.raises(NotImplementedError, match="rank"):
        layers.MultiHeadAttention(2, 2)(x[:, 0], x[:, 0])
    mha = layers.MultiHeadAttention(2, 2)
    mha(x, y)
    with pytest.raises(ValueError, match="built for `value`"):
        mha(x, x)
    with pytest.raises(ValueError, match="batch size"):
        mha(x, y[:1])
