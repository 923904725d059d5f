"""The attention core (cpp/attention.hpp, ``_core.attention_forward`` / ``_backward``) against
the NumPy form in tests/_reference_layers.py, on every kernel set and both float types: ragged
shapes (Tq != Tv, Dk != Dv, one step, one batch item, shared key/value heads), masks with fully
masked rows, the causal flag with Tq != Tv and over several row blocks, dropout scales and a
gradient on the returned probabilities; the gradients against finite differences; bad input."""

from __future__ import annotations

import numpy as np
import pytest

import _reference_layers as ref
import fastrnn
from _layer_harness import numeric_gradient
from _tolerance import assert_within, rounding_rtol
from fastrnn import _core

KERNEL_SETS = _core.available_kernel_sets()

# (B, Tq, Tv, H, Hkv, Dk, Dv, causal, mask, drop). Causal blocks are 32 query rows: Tq = 70
# and 100 cross block edges with a partial last block; Tq > Tv makes rows that keep every key.
CASES = [
    (2, 5, 7, 4, 2, 3, 5, False, True, True),
    (3, 70, 40, 2, 1, 4, 6, True, True, True),
    (1, 1, 1, 1, 1, 1, 1, False, False, False),
    (1, 1, 9, 3, 3, 2, 4, True, False, True),
    (2, 9, 1, 2, 2, 3, 3, False, True, False),
    (2, 100, 100, 4, 4, 16, 16, True, False, False),
    (2, 37, 90, 3, 3, 5, 2, True, False, True),
    (4, 33, 64, 8, 2, 8, 4, False, False, True),
    (16, 20, 24, 4, 4, 16, 16, False, True, False),  # enough work for two threads
]


def case_id(c) -> str:
    B, Tq, Tv, H, Hkv, Dk, Dv, causal, mask, drop = c
    return (f"B{B}-Tq{Tq}-Tv{Tv}-H{H}/{Hkv}-Dk{Dk}-Dv{Dv}" + ("-causal" * causal)
            + ("-mask" * mask) + ("-drop" * drop))


def make(rng, case, dtype):
    """q, k, v, keep (with fully masked rows), drop, d_ctx, d_p for a case."""
    B, Tq, Tv, H, Hkv, Dk, Dv, causal, mask, drop = case
    q = (rng.standard_normal((B, Tq, H, Dk)) / np.sqrt(Dk)).astype(dtype)
    k = rng.standard_normal((B, Tv, Hkv, Dk)).astype(dtype)
    v = rng.standard_normal((B, Tv, Hkv, Dv)).astype(dtype)
    keep = None
    if mask:
        keep = rng.random((B, Tq, Tv)) > 0.3
        keep[0, 0] = False                 # a fully masked row
        keep[-1, Tq // 2] = False
    d = None
    if drop:
        d = ((rng.random((B, H, Tq, Tv)) >= 0.25) / 0.75).astype(dtype)
    d_ctx = rng.standard_normal((B, Tq, H, Dv)).astype(dtype)
    d_p = rng.standard_normal((B, H, Tq, Tv)).astype(dtype)
    return q, k, v, keep, d, d_ctx, d_p


def tolerance(case, dtype, backward: bool) -> float:
    """Chained stages, each a sum of at most `terms` products: forward the scores (Dk), the
    softmax's normalising sum (Tv, with exp) and the context (Tv); backward adds dP (Dv), its
    row dot with p (Tv), then d_Q (Tv) and d_K / d_V, sums over Tq rows of each of the H / Hkv
    query heads sharing them."""
    B, Tq, Tv, H, Hkv, Dk, Dv = case[:7]
    terms = max(Dk, Dv, Tv) + (Tq * (H // Hkv) if backward else 0)
    return rounding_rtol(dtype, terms=terms, steps=5 if backward else 3)


@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_reference(kernel_set_restored, kernel_set, dtype, case):
    _core.select_kernel_set(kernel_set)
    causal = case[7]
    q, k, v, keep, drop, d_ctx, d_p = make(np.random.default_rng(sum(case[:7])), case, dtype)
    p, ctx = _core.attention_forward(q, k, v, keep, drop, causal)
    p_ref, ctx_ref = ref.attention_forward(q, k, v, keep, drop, causal)
    assert p.dtype == ctx.dtype == dtype
    rtol = tolerance(case, dtype, backward=False)
    assert_within(p, p_ref, rtol, what="p")
    assert_within(ctx, ctx_ref, rtol, what="ctx")
    # exactly zero where not attended: masked, past the causal limit, fully masked rows
    allowed = np.ones(p.shape[2:], bool) if keep is None else keep[:, None]
    if causal:
        allowed = allowed & np.tri(p.shape[2], p.shape[3], dtype=bool)
    assert not np.broadcast_to(p, p.shape)[~np.broadcast_to(allowed, p.shape)].any()
    rtol = tolerance(case, dtype, backward=True)
    for d_p_or_none in (d_p, None):
        got = _core.attention_backward(q, k, v, p, d_ctx, drop, d_p_or_none, causal, 0.5)
        want = ref.attention_backward(q, k, v, p, d_ctx, drop, d_p_or_none, 0.5)
        for name, g, w in zip(("d_q", "d_k", "d_v"), got, want):
            assert g.dtype == dtype and g.flags.c_contiguous
            assert_within(g, w, rtol, what=name)


def test_fully_masked_rows_attend_to_nothing():
    case = (2, 5, 7, 2, 2, 3, 4, False, True, False)
    q, k, v, keep, _, d_ctx, d_p = make(np.random.default_rng(3), case, np.float64)
    p, ctx = _core.attention_forward(q, k, v, keep)
    assert not p[0, :, 0].any() and not ctx[0, 0].any()
    d_q, _, _ = _core.attention_backward(q, k, v, p, d_ctx, None, d_p)
    assert not d_q[0, 0].any()  # no gradient reaches a query that attends to nothing


@pytest.mark.parametrize("tq,tv", [(7, 4), (4, 7), (70, 70)])
def test_causal_flag_is_the_lower_triangular_mask(tq, tv):
    """The flag (no mask array) and the explicit mask j <= i give the same numbers."""
    case = (2, tq, tv, 2, 1, 3, 5, True, False, True)
    q, k, v, _, drop, d_ctx, d_p = make(np.random.default_rng(tq + tv), case, np.float64)
    tri = np.broadcast_to(np.tri(tq, tv, dtype=bool), (2, tq, tv)).copy()
    by_flag = _core.attention_forward(q, k, v, None, drop, True)
    by_mask = _core.attention_forward(q, k, v, tri, drop, False)
    rtol = tolerance(case, np.float64, backward=True)
    for a, b in zip(by_flag, by_mask):
        assert_within(a, b, rtol)
    g_flag = _core.attention_backward(q, k, v, by_flag[0], d_ctx, drop, d_p, True)
    g_mask = _core.attention_backward(q, k, v, by_mask[0], d_ctx, drop, d_p, False)
    for a, b in zip(g_flag, g_mask):
        assert_within(a, b, rtol)


@pytest.mark.parametrize("causal,mask,drop", [(False, True, True), (True, False, True),
                                              (True, True, False)])
def test_gradients_by_finite_differences(causal, mask, drop):
    """float64: d(loss)/d(q, k, v) with loss = sum(ctx * d_ctx) + sum(p * d_p), central
    differences at every element (step 1e-6: truncation ~1e-12, cancellation ~1e-10)."""
    case = (2, 4, 5, 4, 2, 3, 2, causal, mask, drop)
    q, k, v, keep, d, d_ctx, d_p = make(np.random.default_rng(11), case, np.float64)

    def loss(q, k, v):
        p, ctx = _core.attention_forward(q, k, v, keep, d, causal)
        return float(np.sum(ctx * d_ctx) + np.sum(p * d_p))

    p, _ = _core.attention_forward(q, k, v, keep, d, causal)
    grads = _core.attention_backward(q, k, v, p, d_ctx, d, d_p, causal)
    arrays = [q, k, v]
    for which, (a, g) in enumerate(zip(arrays, grads)):
        numeric = [numeric_gradient(lambda: loss(*arrays), a, i) for i in np.ndindex(a.shape)]
        np.testing.assert_allclose(g.reshape(-1), numeric, rtol=1e-6, atol=1e-8,
                                   err_msg="qkv"[which])


def test_threads_give_the_same_result():
    case = (16, 40, 50, 4, 2, 8, 8, True, True, True)
    q, k, v, keep, drop, d_ctx, d_p = make(np.random.default_rng(5), case, np.float32)
    before = fastrnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fastrnn.set_num_threads(n)
            p, ctx = _core.attention_forward(q, k, v, keep, drop, True)
            results.append((p, ctx) + _core.attention_backward(q, k, v, p, d_ctx, drop, d_p,
                                                               True))
    finally:
        fastrnn.set_num_threads(before)
    # each (batch item, key/value head) is computed whole by one thread, but Eigen's sums
    # start at the arrays' alignment, which differs between calls: equal within rounding
    rtol = tolerance(case, np.float32, backward=True)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_within(a, b, rtol)


def test_empty_batch_and_no_queries():
    for B, Tq in ((0, 3), (2, 0)):
        q = np.zeros((B, Tq, 2, 3), np.float32)
        k = np.ones((B, 4, 1, 3), np.float32)
        v = np.ones((B, 4, 1, 5), np.float32)
        p, ctx = _core.attention_forward(q, k, v, causal=True)
        assert p.shape == (B, 2, Tq, 4) and ctx.shape == (B, Tq, 2, 5)
        d_q, d_k, d_v = _core.attention_backward(q, k, v, p, np.zeros_like(ctx))
        assert d_q.shape == q.shape and not d_k.any() and not d_v.any()


def _good():
    f = np.float32
    return dict(q=np.ones((2, 3, 4, 5), f), k=np.ones((2, 6, 2, 5), f), v=np.ones((2, 6, 2, 7), f))


@pytest.mark.parametrize("change,name", [
    (dict(q=np.ones((2, 3, 4), np.float32)), "`q`"),
    (dict(k=np.ones((2, 6, 2), np.float32)), "`k`"),
    (dict(v=np.ones((6, 2, 7), np.float32)), "`v`"),
    (dict(q=np.ones((2, 3, 4, 5), np.float16)), "`q`"),
    (dict(q=np.ones((2, 3, 4, 5), np.int32)), "`q`"),
    (dict(k=np.ones((2, 6, 2, 5), np.float64)), "`k`"),
    (dict(k=np.ones((3, 6, 2, 5), np.float32)), "`k`"),
    (dict(k=np.ones((2, 6, 3, 5), np.float32)), "`k`"),     # 3 heads do not divide 4
    (dict(k=np.ones((2, 6, 2, 4), np.float32)), "`k`"),     # Dk differs from q's
    (dict(v=np.ones((2, 5, 2, 7), np.float32)), "`v`"),     # Tv differs from k's
    (dict(k=np.ones((2, 0, 2, 5), np.float32), v=np.ones((2, 0, 2, 7), np.float32)), "`k`"),
    (dict(q=np.ones((2, 3, 4, 10), np.float32)[..., ::2]), "`q`"),  # not contiguous
    (dict(keep=np.ones((2, 3, 6), np.float32)), "`keep`"),
    (dict(keep=np.ones((2, 3, 5), bool)), "`keep`"),
    (dict(drop=np.ones((2, 4, 3, 6), np.float64)), "`drop`"),
    (dict(drop=np.ones((2, 3, 6), np.float32)), "`drop`"),
])
def test_forward_rejects_bad_input(change, name):
    args = {**_good(), **change}
    with pytest.raises(ValueError, match=name):
        _core.attention_forward(**args)


@pytest.mark.parametrize("change,name", [
    (dict(p=np.ones((2, 4, 3), np.float32)), "`p`"),
    (dict(p=np.ones((2, 4, 3, 6), np.float64)), "`p`"),
    (dict(d_ctx=np.ones((2, 3, 4, 5), np.float32)), "`d_ctx`"),
    (dict(d_p=np.ones((2, 4, 6, 3), np.float32)), "`d_p`"),
    (dict(drop=np.ones((2, 4, 3, 6), np.int8)), "`drop`"),
    (dict(q=np.ones((2, 3, 4, 5), np.int64)), "`q`"),
    (dict(v=np.ones((2, 6, 2), np.float32)), "`v`"),
])
def test_backward_rejects_bad_input(change, name):
    args = {**_good(), "p": np.ones((2, 4, 3, 6), np.float32),
            "d_ctx": np.ones((2, 3, 4, 7), np.float32), **change}
    with pytest.raises(ValueError, match=name):
        _core.attention_backward(**args)
