"""Attention layers, as Keras's: Attention (Luong, dot or concat scores), AdditiveAttention
(Bahdanau) over NumPy's batched products, and MultiHeadAttention (GroupQueryAttention) with
its projections on the core's products and the attention itself on the core's kernel
(cpp/attention.hpp; the tests keep the NumPy form it replaced, tests/_reference_layers.py).

Letters: B batch, Tq query steps, Tv value (and key) steps, D features, H heads, Dk key_dim
(per head), Dv value_dim (per head), O output features.

Masks, as Keras: a value mask ``(B, Tv)`` (padding in the sequence attended to) and the
causal mask (``use_causal_mask=True``: step i attends to value steps j <= i) leave scores out
of the softmax; a query mask ``(B, Tq)`` zeroes Attention's padded output steps and is the
mask the output passes on. In a model the masks come from the inputs (``Embedding(mask_zero=
True)``, ``Masking``); on arrays they are arguments (``mask=[query_mask, value_mask]`` for
Attention, ``query_mask=``/``value_mask=``/``key_mask=``/``attention_mask=`` for
MultiHeadAttention).

Call options that Keras passes per call (``use_causal_mask``, ``return_attention_scores``)
are fixed by a layer's call on symbolic tensors (a layer reused in a model with other options
raises), kept in its config, and may be given to each call on arrays.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import ops
from . import symbolic
from .base import (
    Layer,
    check_bool,
    check_positive_int,
    check_rate,
    register,
    serialize_initializer,
)

__all__ = ["AdditiveAttention", "Attention", "GroupQueryAttention", "MultiHeadAttention"]

# What a masked score becomes before the softmax (Keras's value for float32/float64).
_LARGE = 1e9


def _bool_mask(name: str, value: Any, shape: tuple) -> Optional[np.ndarray]:
    """A bool mask of `shape` from `value` (None stays None), or a ValueError naming it."""
    if value is None:
        return None
    m = np.asarray(value)
    if m.shape != shape:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a mask of shape "
            f"{shape}, got shape {m.shape}."
        )
    return m if m.dtype == bool else m != 0


def _causal(tq: int, tv: int) -> np.ndarray:
    """``(1, Tq, Tv)``: True where value step j <= query step i."""
    return (np.arange(tq)[:, None] >= np.arange(tv)[None, :])[None]


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place."""
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def _softmax_backward(p: np.ndarray, d_p: np.ndarray) -> np.ndarray:
    """``d_s = p * (d_p - sum(d_p * p))`` over the last axis, in place in `d_p`."""
    dot = np.einsum("...j,...j->...", d_p, p)[..., None]
    d_p -= dot
    d_p *= p
    return d_p


def _merge_options(layer: Layer, options: dict) -> None:
    """Fixes a symbolic call's options on `layer` (the graph replays them)."""
    before = getattr(layer, "_call_options", None)
    if before is not None and layer.built and getattr(layer, "_inbound_nodes", None) \
            and before != options:
        raise NotImplementedError(
            f"Layer `{layer.name}` was called in a model with {before} and now with {options}; "
            "use one layer per set of call options."
        )
    layer._call_options = dict(options)


def _option(layer: Layer, name: str, value: Any) -> bool:
    if value is None:
        return bool(layer._call_options.get(name, False))
    return check_bool(name, value)


# ----------------------------------------------------------------------------- Attention
class _BaseDenseAttention(Layer):
    """Attention over ``[query, value]`` or ``[query, value, key]`` (key defaults to value):
    scores ``(B, Tq, Tv)`` -> masked softmax -> dropout -> ``weights @ value``."""

    takes_input_list = True
    supports_masking = True
    makes_mask = False

    def __init__(self, dropout: float = 0.0, call_options: Optional[dict] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.dropout = check_rate("dropout", dropout)
        self._call_options = dict(call_options or {})
        self._cache: Optional[dict] = None

    # -- shapes
    def _shapes(self, input_shape: Any) -> list[tuple]:
        if not isinstance(input_shape, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                f"{type(self).__name__} layer must be called on a list of inputs, namely "
                f"[query, value] or [query, value, key]. Received: {input_shape!r}."
            )
        shapes = [tuple(s) for s in input_shape]
        if not 2 <= len(shapes) <= 3:
            raise ValueError(
                f"{type(self).__name__} layer accepts an inputs list of length 2 or 3, namely "
                f"[query, value] or [query, value, key]. Received length: {len(shapes)}."
            )
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        for name, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 2:
                raise ValueError(
                    f"Layer `{self.name}`: `{name}` must be a sequence (batch, steps, "
                    f"features), got shape (None, {', '.join(str(d) for d in s)})."
                )
        if v[0] is not None and k[0] is not None and v[0] != k[0]:
            raise ValueError(
                f"Layer `{self.name}`: `value` and `key` must have the same number of steps, "
                f"got {v[0]} and {k[0]}."
            )
        self._check_dims(q, k)
        return shapes

    def _check_dims(self, q: tuple, k: tuple) -> None:
        if q[-1] is not None and k[-1] is not None and q[-1] != k[-1]:
            raise ValueError(
                f"Layer `{self.name}`: `query` and `key` must have the same last dimension, "
                f"got {q[-1]} and {k[-1]}."
            )

    def build(self, input_shape: Any) -> None:
        shapes = self._shapes(input_shape)
        self._build_weights(shapes)
        self.input_shape = shapes
        self.output_shape = self.compute_output_shape(shapes)
        self.built = True

    def _build_weights(self, shapes: list) -> None:
        pass

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = self._shapes(input_shape)
        q, v = shapes[0], shapes[1]
        out = (q[0], v[-1])
        if self._call_options.get("return_attention_scores"):
            return [out, (q[0], v[0])]
        return out

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        """The query's mask (Keras's), or None."""
        if mask is None or not isinstance(mask, (list, tuple)):
            return None
        return None if mask[0] is None else np.asarray(mask[0])

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if symbolic.is_symbolic(inputs):
            options = {k: check_bool(k, kwargs.pop(k)) for k in
                       ("return_attention_scores", "use_causal_mask") if k in kwargs}
            if kwargs.get("mask") is not None:
                raise NotImplementedError(
                    f"Layer `{self.name}`: in a model the masks come from the inputs "
                    "(Embedding(mask_zero=True), Masking); drop the `mask` argument."
                )
            kwargs.pop("mask", None)
            _merge_options(self, {k: v for k, v in options.items() if v})
        return super().__call__(inputs, *args, **kwargs)

    # -- computation
    def forward(self, x: Any, training: bool = False, mask: Any = None,
                return_attention_scores: Optional[bool] = None,
                use_causal_mask: Optional[bool] = None) -> Any:
        """`x`: ``[query (B, Tq, D), value (B, Tv, Dv)]`` or with ``key (B, Tv, D)``;
        `mask`: ``[query_mask, value_mask]`` (each ``(B, T)`` or None). Returns ``(B, Tq,
        Dv)``, and the attention weights ``(B, Tq, Tv)`` with `return_attention_scores`."""
        if not isinstance(x, (list, tuple)):
            raise ValueError(
                f"{type(self).__name__} layer must be called on a list of inputs, namely "
                f"[query, value] or [query, value, key]. Received: {type(x).__name__}."
            )
        arrays = [np.ascontiguousarray(self._as_input(a)) for a in x]
        shapes = [a.shape[1:] for a in arrays]
        if not self.built:
            self.build(shapes)
        self._shapes(shapes)
        q, v = arrays[0], arrays[1]
        k = arrays[2] if len(arrays) > 2 else v
        if len({a.shape[0] for a in arrays}) != 1:
            raise ValueError(
                f"Layer `{self.name}`: query, value and key must have the same batch size, got "
                f"{[a.shape[0] for a in arrays]}."
            )
        self._check_features(q, v, k)
        B, Tq, Tv = q.shape[0], q.shape[1], v.shape[1]
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(
                f"{type(self).__name__} layer mask must be a list, namely [query_mask, "
                f"value_mask]. Received: mask={mask!r}."
            )
        q_mask = _bool_mask("mask[0]", mask[0], (B, Tq)) if mask is not None else None
        v_mask = _bool_mask("mask[1]", mask[1], (B, Tv)) if mask is not None else None
        keep = None
        if v_mask is not None:
            keep = v_mask[:, None, :]
        if _option(self, "use_causal_mask", use_causal_mask):
            causal = _causal(Tq, Tv)
            keep = causal if keep is None else keep & causal
        scores, score_cache = self._scores(q, k)                      # (B, Tq, Tv)
        if keep is not None:
            scores = np.where(keep, scores, scores - self.dtype.type(_LARGE))
        p_soft = p = _softmax_rows(scores)
        drop = None
        if training and self.dropout > 0:
            drop = (self.rng.random(p.shape) >= self.dropout).astype(self.dtype)
            drop /= self.dtype.type(1 - self.dropout)
            p = p * drop
        out = np.matmul(p, v)                                         # (B, Tq, Dv)
        if q_mask is not None:
            out *= q_mask[:, :, None]
        self._n_inputs = len(arrays)
        self._cache = dict(q=q, v=v, k=k, p=p, p_soft=p_soft, drop=drop, q_mask=q_mask,
                           score_cache=score_cache) if training else None
        if _option(self, "return_attention_scores", return_attention_scores):
            return [out, p]
        return out

    def _check_features(self, q: np.ndarray, v: np.ndarray, k: np.ndarray) -> None:
        if v.shape[1] != k.shape[1]:
            raise ValueError(
                f"Layer `{self.name}`: `value` and `key` must have the same number of steps, "
                f"got {v.shape[1]} and {k.shape[1]}."
            )

    def backward(self, d_out: Any) -> list:
        if self._cache is None:
            raise self._no_tape()
        c = self._cache
        d_scores = None
        if isinstance(d_out, (list, tuple)):
            d_out, d_scores = d_out[0], d_out[1]
        p, v, drop = c["p"], c["v"], c["drop"]
        if d_out is None:
            d_out = np.zeros(p.shape[:2] + v.shape[2:], dtype=self.dtype)
        d_out = np.asarray(d_out, dtype=self.dtype)
        if c["q_mask"] is not None:
            d_out = d_out * c["q_mask"][:, :, None]
        d_v = np.matmul(p.transpose(0, 2, 1), d_out)                 # (B, Tv, Dv)
        d_p = np.matmul(d_out, v.transpose(0, 2, 1))                 # (B, Tq, Tv)
        if d_scores is not None:
            d_p += np.asarray(d_scores, dtype=self.dtype)
        if drop is not None:
            d_p *= drop
        d_s = _softmax_backward(c["p_soft"], d_p)
        d_q, d_k = self._scores_backward(c["q"], c["k"], c["score_cache"], d_s)
        if self._n_inputs == 2:
            return [d_q, d_v + d_k]
        return [d_q, d_v, d_k]

    def get_config(self) -> dict:
        config = {**super().get_config(), "dropout": self.dropout}
        if self._call_options:
            config["call_options"] = dict(self._call_options)
        return config


@register
class Attention(_BaseDenseAttention):
    """Dot-product (Luong) attention, as ``keras.layers.Attention``.

    Args:
        use_scale: learn a scalar ``scale`` multiplying the scores (initialised to 1).
        score_mode: ``"dot"`` (``query @ key^T``) or ``"concat"`` (``concat_score_weight *
            sum(tanh(scale * (query_i + key_j)))``, a scalar weight initialised to 1).
        dropout: on the attention weights, in training.

    Call it on ``[query (B, Tq, D), value (B, Tv, Dv)]`` or ``[query, value, key (B, Tv,
    D)]``; it returns ``(B, Tq, Dv)`` (and the weights ``(B, Tq, Tv)`` with
    ``return_attention_scores=True``). See the module docstring for masks.
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot",
                 dropout: float = 0.0, **kwargs: Any):
        super().__init__(dropout=dropout, **kwargs)
        self.use_scale = check_bool("use_scale", use_scale)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                "Received an invalid value for argument `score_mode`, expected one of "
                f"{{'dot', 'concat'}}, got {score_mode!r}."
            )
        self.score_mode = score_mode

    def _build_weights(self, shapes: list) -> None:
        if self.use_scale:
            self.add_weight("scale", (), "ones")
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), "ones")

    def _scale(self) -> Any:
        return self._weights[0] if self.use_scale else None

    def _scores(self, q: np.ndarray, k: np.ndarray) -> tuple:
        scale = self._scale()
        if self.score_mode == "dot":
            s = np.matmul(q, k.transpose(0, 2, 1))
            return (s * scale if scale is not None else s), s
        c = self._weights[-1]
        pre = q[:, :, None, :] + k[:, None, :, :]                     # (B, Tq, Tv, D)
        t = np.tanh(pre * scale if scale is not None else pre)
        return c * t.sum(axis=-1), (pre, t)

    def _scores_backward(self, q: np.ndarray, k: np.ndarray, cache: Any,
                         d_s: np.ndarray) -> tuple:
        scale = self._scale()
        if self.score_mode == "dot":
            raw = cache
            grads = [np.sum(d_s * raw)] if self.use_scale else []
            if scale is not None:
                d_s = d_s * scale
            d_q = np.matmul(d_s, k)
            d_k = np.matmul(d_s.transpose(0, 2, 1), q)
        else:
            pre, t = cache
            c = self._weights[-1]
            d_c = np.sum(d_s * t.sum(axis=-1))
            d_t = (c * d_s)[..., None] * (1 - t * t)                  # (B, Tq, Tv, D)
            grads = [np.sum(d_t * pre)] if self.use_scale else []
            d_pre = d_t * scale if scale is not None else d_t
            d_q, d_k = d_pre.sum(axis=2), d_pre.sum(axis=1)
            grads.append(d_c)
        self._write_grads([np.asarray(g, dtype=self.dtype) for g in grads])
        return d_q, d_k

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode}


@register
class AdditiveAttention(_BaseDenseAttention):
    """Additive (Bahdanau) attention, as ``keras.layers.AdditiveAttention``: scores
    ``sum_d scale_d * tanh(query_i + key_j)_d``.

    Args:
        use_scale: learn ``scale (D,)`` (Glorot-uniform initialised); False: all ones.
        dropout: on the attention weights, in training.

    Inputs, outputs and masks as :class:`Attention`. The scores take ``B*Tq*Tv*D`` values
    (as Keras's), so keep the sequences moderate.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any):
        super().__init__(dropout=dropout, **kwargs)
        self.use_scale = check_bool("use_scale", use_scale)

    def _build_weights(self, shapes: list) -> None:
        dim = shapes[0][-1]
        if dim is None:
            raise ValueError(
                f"Layer `{self.name}` needs the query's last dimension known, got "
                f"{shapes[0]}."
            )
        if self.use_scale:
            self.add_weight("scale", (dim,), "glorot_uniform")

    def _scores(self, q: np.ndarray, k: np.ndarray) -> tuple:
        t = np.tanh(q[:, :, None, :] + k[:, None, :, :])            # (B, Tq, Tv, D)
        if self.use_scale:
            return t @ self._weights[0], t
        return t.sum(axis=-1), t

    def _scores_backward(self, q: np.ndarray, k: np.ndarray, t: np.ndarray,
                         d_s: np.ndarray) -> tuple:
        if self.use_scale:
            scale = self._weights[0]
            self._write_grads([np.einsum("bqv,bqvd->d", d_s, t)])
            d_pre = d_s[..., None] * scale * (1 - t * t)
        else:
            d_pre = d_s[..., None] * (1 - t * t)
        return d_pre.sum(axis=2), d_pre.sum(axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "use_scale": self.use_scale}


# ----------------------------------------------------------------------------- MHA
@register
class MultiHeadAttention(Layer):
    """Multi-head attention, as ``keras.layers.MultiHeadAttention`` (Vaswani et al.), on
    sequences ``(B, T, D)``.

    Per head h: ``softmax(Q_h K_h^T / sqrt(key_dim)) V_h`` with ``Q_h = query @ Wq[:, h] +
    bq[h]`` (and K, V likewise), then the heads' outputs concatenated and projected:
    ``out = concat_h(...) @ Wo + bo``.

    Args:
        num_heads: H. key_dim: Dk, the size of each head's query and key.
        value_dim: Dv, each head's value size (None: key_dim).
        dropout: on the attention weights, in training.
        use_bias: biases on the four projections.
        output_shape: the output's last dimension O (an int or a tuple of one; None: the
            query's).
        attention_axes: None or ``(1,)`` (attention over the steps; other axes are not
            supported).
        kernel_initializer, bias_initializer: as Keras.

    Call: ``mha(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
    attention_mask=None, return_attention_scores=False, training=None,
    use_causal_mask=False)``; ``attention_mask (B, Tq, Tv)`` (True: attend) combines with the
    others. Output ``(B, Tq, O)``, and the weights ``(B, H, Tq, Tv)`` with
    `return_attention_scores`. Fully masked query rows attend to nothing (zero weights).

    Weights, in Keras's order: ``query/kernel (Dq, H, Dk)``, ``query/bias (H, Dk)``,
    ``key/kernel (Dk_in, H, Dk)``, ``key/bias``, ``value/kernel (Dv_in, H, Dv)``,
    ``value/bias (H, Dv)``, ``attention_output/kernel (H, Dv, O)``,
    ``attention_output/bias (O,)``.
    """

    takes_input_list = True
    supports_masking = True
    makes_mask = False

    def __init__(self, num_heads: int, key_dim: int, value_dim: Optional[int] = None,
                 dropout: float = 0.0, use_bias: bool = True, output_shape: Any = None,
                 attention_axes: Any = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", call_options: Optional[dict] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.value_dim = self.key_dim if value_dim is None else check_positive_int(
            "value_dim", value_dim)
        self.dropout = check_rate("dropout", dropout)
        self.use_bias = check_bool("use_bias", use_bias)
        if output_shape is not None:
            shape = output_shape if isinstance(output_shape, (tuple, list)) else (output_shape,)
            if len(shape) != 1:
                raise NotImplementedError(
                    "Received an unsupported value for argument `output_shape`, fastrnn's "
                    f"MultiHeadAttention outputs (batch, steps, O): give O, got {output_shape!r}."
                )
            output_shape = check_positive_int("output_shape", shape[0])
        self._output_dim = output_shape
        if attention_axes is not None:
            axes = attention_axes if isinstance(attention_axes, (tuple, list)) else (
                attention_axes,)
            if list(axes) not in ([1], [-2]):
                raise NotImplementedError(
                    "Received an unsupported value for argument `attention_axes`, fastrnn "
                    f"attends over the steps of (batch, steps, features) inputs (None or 1), "
                    f"got {attention_axes!r}."
                )
        self.attention_axes = attention_axes
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._call_options = dict(call_options or {})
        self._cache: Optional[dict] = None
        self._kv_heads = self.num_heads  # GroupQueryAttention shares key/value heads

    # -- the call
    def __call__(self, query: Any, value: Any = None, key: Any = None, *,
                 query_mask: Any = None, value_mask: Any = None, key_mask: Any = None,
                 attention_mask: Any = None, return_attention_scores: bool = False,
                 training: Optional[bool] = None, use_causal_mask: bool = False) -> Any:
        if value is None and isinstance(query, (list, tuple)):  # the graph's list form
            return super().__call__(query, training=training)
        if value is None:
            raise ValueError(
                f"Layer `{self.name}` (MultiHeadAttention) needs `query` and `value`, got no "
                "`value`."
            )
        if symbolic.is_symbolic([query, value, key, attention_mask]):
            if any(m is not None for m in (query_mask, value_mask, key_mask)):
                raise NotImplementedError(
                    f"Layer `{self.name}`: in a model the masks come from the inputs "
                    "(Embedding(mask_zero=True), Masking); pass `attention_mask` for others."
                )
            options = {"return_attention_scores": check_bool(
                "return_attention_scores", return_attention_scores),
                "use_causal_mask": check_bool("use_causal_mask", use_causal_mask),
                "has_key": key is not None, "has_attention_mask": attention_mask is not None}
            _merge_options(self, {k: v for k, v in options.items() if v})
            inputs = [query, value] + ([key] if key is not None else []) + (
                [attention_mask] if attention_mask is not None else [])
            return symbolic.call(self, inputs, training=training)
        return self.attend(query, value, key, query_mask=query_mask, value_mask=value_mask,
                           key_mask=key_mask, attention_mask=attention_mask,
                           return_attention_scores=return_attention_scores,
                           training=bool(training), use_causal_mask=use_causal_mask)

    def _split(self, items: list) -> tuple:
        """(query, value, key or None, attention_mask or None) from the graph's list."""
        has_key = self._call_options.get("has_key", False)
        has_am = self._call_options.get("has_attention_mask", False)
        want = 2 + has_key + has_am
        if len(items) != want:
            raise ValueError(
                f"Layer `{self.name}` expects {want} inputs (query, value"
                f"{', key' if has_key else ''}{', attention_mask' if has_am else ''}), got "
                f"{len(items)}."
            )
        key = items[2] if has_key else None
        am = items[-1] if has_am else None
        return items[0], items[1], key, am

    # -- shapes
    def _dims(self, input_shape: Any) -> tuple:
        q, v, k, am = self._split([tuple(s) for s in input_shape])
        k = v if k is None else k
        for name, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 2:
                raise NotImplementedError(
                    f"Layer `{self.name}`: fastrnn's MultiHeadAttention takes `{name}` of rank "
                    f"3 (batch, steps, features), got rank {len(s) + 1}."
                )
            if s[-1] is None:
                raise ValueError(
                    f"Layer `{self.name}`: the last dimension of `{name}` must be known, got "
                    f"{s}."
                )
        if v[0] is not None and k[0] is not None and v[0] != k[0]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape=(None, {v[0]}, {v[1]}) and key_shape=(None, {k[0]}, "
                f"{k[1]})."
            )
        if am is not None and (len(am) != 2 or any(
                a is not None and b is not None and a != b for a, b in zip(am, (q[0], v[0])))):
            raise ValueError(
                f"Received an invalid value for argument `attention_mask`, expected shape "
                f"(batch, {q[0]}, {v[0]}), got (None, {', '.join(str(d) for d in am)})."
            )
        return q, v, k

    def build(self, input_shape: Any) -> None:
        q, v, k = self._dims(input_shape)
        H, Dk, Dv = self.num_heads, self.key_dim, self.value_dim
        out = self._output_dim or q[-1]
        self.add_weight("query/kernel", (q[-1], H, Dk), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("query/bias", (H, Dk), self.bias_initializer)
        Hkv = self._kv_heads
        self.add_weight("key/kernel", (k[-1], Hkv, Dk), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("key/bias", (Hkv, Dk), self.bias_initializer)
        self.add_weight("value/kernel", (v[-1], Hkv, Dv), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("value/bias", (Hkv, Dv), self.bias_initializer)
        self.add_weight("attention_output/kernel", (H, Dv, out), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("attention_output/bias", (out,), self.bias_initializer)
        self.input_shape = [tuple(s) for s in input_shape]
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        q, v, _ = self._dims(input_shape)
        out = (q[0], self._output_dim or q[-1])
        if self._call_options.get("return_attention_scores"):
            return [out, (self.num_heads, q[0], v[0])]
        return out

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        """The query's mask (as Keras), or None."""
        if isinstance(mask, (list, tuple)) and mask and mask[0] is not None:
            return np.asarray(mask[0])
        return None

    def _params(self) -> dict:
        names = self.weight_names
        return dict(zip(names, self._weights))

    # -- computation
    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        """The graph's form: `x` is ``[query, value(, key)(, attention_mask)]`` and `mask`
        the inputs' masks."""
        if not isinstance(x, (list, tuple)):
            raise ValueError(
                f"Layer `{self.name}` takes [query, value] (or call it as mha(query, value)), "
                f"got {type(x).__name__}."
            )
        query, value, key, am = self._split(list(x))
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(x)
        q_mask, v_mask = masks[0], masks[1]
        k_mask = masks[2] if key is not None else None
        return self.attend(query, value, key, query_mask=q_mask, value_mask=v_mask,
                           key_mask=k_mask, attention_mask=am,
                           return_attention_scores=None, training=training,
                           use_causal_mask=None, _graph=True)

    def attend(self, query: Any, value: Any, key: Any = None, query_mask: Any = None,
               value_mask: Any = None, key_mask: Any = None, attention_mask: Any = None,
               return_attention_scores: Optional[bool] = False, training: bool = False,
               use_causal_mask: Optional[bool] = False, _graph: bool = False) -> Any:
        """The attention on arrays (what calling the layer on arrays runs)."""
        q = np.ascontiguousarray(self._as_input(query))
        v = np.ascontiguousarray(self._as_input(value))
        k = v if key is None else np.ascontiguousarray(self._as_input(key))
        shapes = [q.shape[1:], v.shape[1:]] + ([k.shape[1:]] if key is not None else [])
        if not self.built:
            if not _graph:
                self._call_options = {"has_key": key is not None} if key is not None else {}
            self.build(shapes)
        built = self._dims(self.input_shape)
        for name, a, s in (("query", q, built[0]), ("value", v, built[1]), ("key", k, built[2])):
            if a.ndim != 3 or a.shape[-1] != s[-1]:
                raise ValueError(
                    f"Layer `{self.name}` was built for `{name}` of shape (batch, steps, "
                    f"{s[-1]}), got an array of shape {a.shape}."
                )
        if not (q.shape[0] == v.shape[0] == k.shape[0]):
            raise ValueError(
                f"Layer `{self.name}`: query, value and key must have the same batch size, got "
                f"{q.shape[0]}, {v.shape[0]} and {k.shape[0]}."
            )
        if v.shape[1] != k.shape[1]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape={v.shape} and key_shape={k.shape}."
            )
        B, Tq, Tv = q.shape[0], q.shape[1], v.shape[1]
        keep = None
        for m, shape in ((_bool_mask("query_mask", query_mask, (B, Tq)), (B, Tq, 1)),
                         (_bool_mask("value_mask", value_mask, (B, Tv)), (B, 1, Tv)),
                         (_bool_mask("key_mask", key_mask, (B, Tv)) if key is not None
                          else None, (B, 1, Tv))):
            if m is not None:
                m = m.reshape(shape)
                keep = m if keep is None else keep & m
        causal = _option(self, "use_causal_mask", use_causal_mask)  # the core's flag, no mask
        am = _bool_mask("attention_mask", attention_mask, (B, Tq, Tv))
        if am is not None:
            keep = am if keep is None else keep & am
        if keep is not None:
            keep = np.ascontiguousarray(np.broadcast_to(keep, (B, Tq, Tv)))
        out, p = self._forward(q, v, k, keep, causal, training)
        self._has_key = key is not None
        self._has_am = am is not None
        if _option(self, "return_attention_scores", return_attention_scores):
            return [out, p]
        return out

    def _project(self, x: np.ndarray, kernel: np.ndarray, bias: Optional[np.ndarray]
                 ) -> np.ndarray:
        """``x (B, T, D) @ kernel (D, H, d) + bias`` -> ``(B, T, H*d)``."""
        B, T, D = x.shape
        y = ops.matmul(x.reshape(B * T, D), kernel.reshape(D, -1))
        if bias is not None:
            y += bias.reshape(-1)
        return y.reshape(B, T, -1)

    def _forward(self, q: np.ndarray, v: np.ndarray, k: np.ndarray,
                 keep: Optional[np.ndarray], causal: bool, training: bool) -> tuple:
        """``(out (B, Tq, O), p (B, H, Tq, Tv))``; `keep` ``(B, Tq, Tv)`` bool or None (the
        causal mask is the core's flag). The projections are products over all ``B*T`` rows;
        the attention itself is the core's (cpp/attention.hpp), which reads each head of the
        ``(B, T, H, D)`` projections in place."""
        w = self._params()
        b = self.use_bias
        H, Hkv, Dk, Dv = self.num_heads, self._kv_heads, self.key_dim, self.value_dim
        B, Tq, _ = q.shape
        Tv = v.shape[1]
        Q = self._project(q, w["query/kernel"], w["query/bias"] if b else None)  # (B,Tq,H*Dk)
        Q *= self.dtype.type(1.0 / math.sqrt(Dk))
        K = self._project(k, w["key/kernel"], w["key/bias"] if b else None)  # (B,Tv,Hkv*Dk)
        V = self._project(v, w["value/kernel"], w["value/bias"] if b else None)  # (B,Tv,Hkv*Dv)
        Q, K, V = Q.reshape(B, Tq, H, Dk), K.reshape(B, Tv, Hkv, Dk), V.reshape(B, Tv, Hkv, Dv)
        drop = None
        if training and self.dropout > 0:
            drop = (self.rng.random((B, H, Tq, Tv)) >= self.dropout).astype(self.dtype)
            drop /= self.dtype.type(1 - self.dropout)
        p, ctx = ops.internal.attention_checked(Q, K, V, keep, drop, causal)  # ctx (B,Tq,H,Dv)
        ctx2 = ctx.reshape(B * Tq, H * Dv)
        Wo = w["attention_output/kernel"]
        O = Wo.shape[-1]
        out = ops.matmul(ctx2, Wo.reshape(H * Dv, O))
        if b:
            out += w["attention_output/bias"]
        self._cache = dict(q=q, v=v, k=k, Q=Q, K=K, V=V, p=p, drop=drop, causal=causal,
                           ctx2=ctx2) if training else None
        return out.reshape(B, Tq, O), p

    def backward(self, d_out: Any) -> list:
        if self._cache is None:
            raise self._no_tape()
        c = self._cache
        w = self._params()
        b = self.use_bias
        d_scores = None
        if isinstance(d_out, (list, tuple)):
            d_out, d_scores = d_out[0], d_out[1]
        H, Dk, Dv = self.num_heads, self.key_dim, self.value_dim
        q, v, k = c["q"], c["v"], c["k"]
        B, Tq, _ = q.shape
        Tv = v.shape[1]
        Wo = w["attention_output/kernel"]
        O = Wo.shape[-1]
        if d_out is None:
            d_out = np.zeros((B, Tq, O), dtype=self.dtype)
        d_o2 = np.ascontiguousarray(d_out, dtype=self.dtype).reshape(B * Tq, O)
        grads = {"attention_output/kernel": ops.matmul(c["ctx2"], d_o2, trans_a=True
                                                       ).reshape(Wo.shape)}
        if b:
            grads["attention_output/bias"] = d_o2.sum(axis=0)
        d_ctx = ops.matmul(d_o2, Wo.reshape(H * Dv, O), trans_b=True)           # (B*Tq,H*Dv)
        if d_scores is not None:
            d_scores = np.ascontiguousarray(
                np.broadcast_to(np.asarray(d_scores, dtype=self.dtype), c["p"].shape))
        # d_Q is for the unscaled projection: the core multiplies it by the scale
        d_Q, d_K, d_V = ops.internal.attention_backward_checked(
            c["Q"], c["K"], c["V"], c["p"], d_ctx.reshape(B, Tq, H, Dv), c["drop"], d_scores,
            c["causal"], 1.0 / math.sqrt(Dk))   # (B,Tq,H,Dk), (B,Tv,Hkv,Dk), (B,Tv,Hkv,Dv)
        d_inputs = []
        for name, x, d in (("query", q, d_Q), ("key", k, d_K), ("value", v, d_V)):
            kernel = w[f"{name}/kernel"]
            D = x.shape[-1]
            x2 = x.reshape(-1, D)
            d2 = d.reshape(x2.shape[0], -1)
            grads[f"{name}/kernel"] = ops.matmul(x2, d2, trans_a=True).reshape(kernel.shape)
            if b:
                grads[f"{name}/bias"] = d2.sum(axis=0).reshape(kernel.shape[1:])
            d_inputs.append(ops.matmul(d2, kernel.reshape(D, -1), trans_b=True
                                       ).reshape(x.shape))
        self._write_grads([grads[n] for n in self.weight_names])
        d_q, d_k, d_v = d_inputs
        out = [d_q, d_v]
        if self._has_key:
            out.append(d_k)
        else:
            out[1] = d_v + d_k
        if self._has_am:
            out.append(np.zeros((B, Tq, Tv), dtype=self.dtype))
        return out

    def get_config(self) -> dict:
        config = {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self._output_dim,
            "attention_axes": self.attention_axes,
            "kernel_initializer": serialize_initializer(self.kernel_initializer),
            "bias_initializer": serialize_initializer(self.bias_initializer),
        }
        if self._call_options:
            config["call_options"] = dict(self._call_options)
        return config


@register
class GroupQueryAttention(MultiHeadAttention):
    """Grouped-query attention, as ``keras.layers.GroupQueryAttention`` (Ainslie et al.):
    `num_query_heads` query heads share `num_key_value_heads` key/value heads (query head h
    uses key/value head ``h // (num_query_heads / num_key_value_heads)``); each head has
    `head_dim` features. The call, masks and options are MultiHeadAttention's; the output has
    the query's last dimension.

    Weights, in Keras's order: ``query/kernel (Dq, Hq, head_dim)``, ``query/bias``,
    ``key/kernel (Dk_in, Hkv, head_dim)``, ``key/bias``, ``value/kernel (Dv_in, Hkv,
    head_dim)``, ``value/bias``, ``attention_output/kernel (Hq, head_dim, Dq)``,
    ``attention_output/bias``.
    """

    def __init__(self, head_dim: int, num_query_heads: int, num_key_value_heads: int,
                 dropout: float = 0.0, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        for key in ("num_heads", "key_dim", "value_dim", "output_shape", "attention_axes"):
            if key in kwargs:
                raise TypeError(f"GroupQueryAttention got an unexpected keyword argument "
                                f"`{key}`.")
        head_dim = check_positive_int("head_dim", head_dim)
        num_query_heads = check_positive_int("num_query_heads", num_query_heads)
        num_key_value_heads = check_positive_int("num_key_value_heads", num_key_value_heads)
        if num_query_heads % num_key_value_heads:
            raise ValueError(
                "Received invalid values for arguments `num_query_heads` and "
                "`num_key_value_heads`: `num_query_heads` must be divisible by "
                f"`num_key_value_heads`, got {num_query_heads} and {num_key_value_heads}."
            )
        super().__init__(num_heads=num_query_heads, key_dim=head_dim, dropout=dropout,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, **kwargs)
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self._kv_heads = num_key_value_heads

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("num_heads", "key_dim", "value_dim", "output_shape", "attention_axes"):
            config.pop(key)
        return {**config, "head_dim": self.head_dim, "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads}
