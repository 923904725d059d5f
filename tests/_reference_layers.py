"""NumPy forms of the cores of layers that :mod:`fastrnn.ops` does not expose (so they are not
in :mod:`fastrnn.reference`, whose functions keep the ops' signatures): Conv1DTranspose and
the attention of MultiHeadAttention / GroupQueryAttention, as the layers computed them in NumPy
before the core had kernels for them. The kernel tests compare the core against these."""

from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- transposed
# Letters: B batch, T input steps, C input channels, F filters, K taps, s stride, d dilation,
# L output steps. Input step t, tap k lands on output step ``t*s + k*d - left``; the output is
# steps [left, left + length) of the full result (Keras's "same" crop, output_padding's zeros).
def _transpose_full(T, K, strides, dilation, left, length):
    """Steps of the uncropped output, long enough for [left, left + length)."""
    return max((T - 1) * strides + (K - 1) * dilation + 1, left + length)


def conv1d_transpose_forward(x, kernel, bias=None, strides=1, dilation=1, left=0, length=0):
    """y (B, length, F) from x (B, T, C) and Keras's kernel (K, F, C): one product
    (B*T, C) x (C, K*F) for every tap's contribution, then K strided adds."""
    B, T, C = x.shape
    K, F, _ = kernel.shape
    cols = np.matmul(x.reshape(B * T, C), kernel.reshape(K * F, C).T).reshape(B, T, K, F)
    y = np.zeros((B, _transpose_full(T, K, strides, dilation, left, length), F), dtype=x.dtype)
    reach = (T - 1) * strides + 1
    for k in range(K):
        y[:, k * dilation: k * dilation + reach: strides] += cols[:, :, k]
    y = y[:, left: left + length]
    return y + bias if bias is not None else y


def conv1d_transpose_backward(x, kernel, d_y, strides=1, dilation=1, left=0, use_bias=True,
                              input_grad=True):
    """Gradients of conv1d_transpose_forward: {"x", "kernel", "bias"}: the K strided reads
    gather each tap's slice of d_y (placed where y was cropped), then two products."""
    B, T, C = x.shape
    K, F, _ = kernel.shape
    L = d_y.shape[1]
    padded = np.zeros((B, _transpose_full(T, K, strides, dilation, left, L), F), d_y.dtype)
    padded[:, left: left + L] = d_y
    reach = (T - 1) * strides + 1
    d_cols = np.stack([padded[:, k * dilation: k * dilation + reach: strides] for k in range(K)],
                      axis=2).reshape(B * T, K * F)       # (B*T, K*F)
    x2 = x.reshape(B * T, C)
    return {"x": (d_cols @ kernel.reshape(K * F, C)).reshape(B, T, C) if input_grad else None,
            "kernel": (d_cols.T @ x2).reshape(K, F, C),
            "bias": d_y.sum(axis=(0, 1)) if use_bias else None}


# ----------------------------------------------------------------------------- attention
# Letters: Tq query steps, Tv key steps, H query heads, Hkv key/value heads (query head h uses
# h // (H // Hkv)), Dk and Dv the per-head sizes.
def _heads(a, H):
    """(B, T, Hkv, D) -> (B, H, T, D), each key/value head repeated for its query heads."""
    return np.repeat(a, H // a.shape[2], axis=2).transpose(0, 2, 1, 3)


def attention_forward(q, k, v, keep=None, drop=None, causal=False):
    """p (B, H, Tq, Tv), ctx (B, Tq, H, Dv) from q (B, Tq, H, Dk) (already scaled by
    1 / sqrt(Dk)), k (B, Tv, Hkv, Dk), v (B, Tv, Hkv, Dv): p = softmax(q k^T) over the kept
    entries (keep (B, Tq, Tv) bool, and j <= i when causal), 0 elsewhere and on rows with none
    kept; ctx = (p * drop) v, drop (B, H, Tq, Tv) the dropout keep-scale or None."""
    H, Tq, Tv = q.shape[2], q.shape[1], k.shape[1]
    s = np.matmul(q.transpose(0, 2, 1, 3), _heads(k, H).transpose(0, 1, 3, 2))  # (B,H,Tq,Tv)
    allowed = np.ones((1, Tq, Tv), bool) if keep is None else np.asarray(keep, bool)
    if causal:
        allowed = allowed & (np.arange(Tq)[:, None] >= np.arange(Tv)[None, :])
    allowed = allowed[:, None]                                  # (B or 1, 1, Tq, Tv)
    s = np.where(allowed, s, -np.inf)
    top = s.max(axis=-1, keepdims=True)
    e = np.where(allowed, np.exp(s - np.where(np.isfinite(top), top, 0)), 0)
    total = e.sum(axis=-1, keepdims=True)
    p = (e / np.where(total > 0, total, 1)).astype(q.dtype)    # a row with none kept: 0
    used = p if drop is None else p * drop
    ctx = np.matmul(used, _heads(v, H)).transpose(0, 2, 1, 3)  # (B, Tq, H, Dv)
    return p, np.ascontiguousarray(ctx)


def attention_backward(q, k, v, p, d_ctx, drop=None, d_p=None, d_q_scale=1.0):
    """(d_q (B, Tq, H, Dk) times d_q_scale, d_k, d_v) of attention_forward, given d_ctx
    (B, Tq, H, Dv) and d_p (B, H, Tq, Tv) (a gradient on the returned p) or None."""
    H, Hkv = q.shape[2], k.shape[2]
    d_c = d_ctx.transpose(0, 2, 1, 3)                           # (B, H, Tq, Dv)
    used = p if drop is None else p * drop
    d_vh = np.matmul(used.transpose(0, 1, 3, 2), d_c)           # (B, H, Tv, Dv)
    d_used = np.matmul(d_c, _heads(v, H).transpose(0, 1, 3, 2))  # (B, H, Tq, Tv)
    d_pp = d_used if drop is None else d_used * drop
    if d_p is not None:
        d_pp = d_pp + d_p
    d_s = p * (d_pp - (d_pp * p).sum(axis=-1, keepdims=True))  # softmax; 0 where p is 0
    d_q = d_q_scale * np.matmul(d_s, _heads(k, H))              # (B, H, Tq, Dk)
    d_kh = np.matmul(d_s.transpose(0, 1, 3, 2), q.transpose(0, 2, 1, 3))  # (B, H, Tv, Dk)

    def per_kv_head(a):  # (B, H, Tv, D) -> (B, Tv, Hkv, D), the shared heads' sums
        B, _, T, D = a.shape
        return a.reshape(B, Hkv, H // Hkv, T, D).sum(axis=2).transpose(0, 2, 1, 3)

    return (np.ascontiguousarray(d_q.transpose(0, 2, 1, 3)).astype(q.dtype),
            np.ascontiguousarray(per_kv_head(d_kh)).astype(q.dtype),
            np.ascontiguousarray(per_kv_head(d_vh)).astype(q.dtype))
