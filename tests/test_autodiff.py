"""fastrnn.ops math on the tape: every op's gradient against float64 central differences.

Each check contracts the op's output with a random weight ``R`` (so every output element
counts) and compares the tape's gradient of ``sum(R * f(x))`` with central differences at
step 1e-6: truncation error ~1e-12 times the third derivative, rounding ~1e-16 / 1e-6 = 1e-10
per unit of the function's magnitude (inputs here are O(1)), so 1e-6 relative to the
gradient's scale leaves room for both and still catches any wrong factor or index.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import activations, autodiff, ops
from fastrnn import math as fmath
from fastrnn.autodiff import NoGradientError, Trace

EPS = 1e-6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _flat_out(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _objective(f, xs, weights):
    outs = _flat_out(f(*xs))
    return sum(float(np.sum(np.asarray(autodiff.value_of(o)) * w)) for o, w in zip(outs, weights))


def check_grad(f, *xs, seed: int = 1):
    """The tape's gradients of ``sum(R * f(*xs))`` against central differences."""
    xs = [np.array(x, dtype=np.float64) for x in xs]
    outs = _flat_out(f(*xs))
    rng = _rng(seed)
    weights = [rng.normal(size=np.shape(o)) for o in outs]
    with Trace():
        leaves = [Trace.leaf(x.copy()) for x in xs]
        traced = _flat_out(f(*leaves))
    for o, plain in zip(traced, outs):  # the traced forward computes what NumPy does
        np.testing.assert_allclose(autodiff.value_of(o), plain, rtol=1e-12, atol=1e-12)
    grads = autodiff.backward(traced, weights, leaves)
    for k, (x, g) in enumerate(zip(xs, grads)):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus = [v.copy() for v in xs]
            minus = [v.copy() for v in xs]
            plus[k][idx] += EPS
            minus[k][idx] -= EPS
            numeric[idx] = (_objective(f, plus, weights)
                            - _objective(f, minus, weights)) / (2 * EPS)
        g = np.zeros_like(x) if g is None else g
        assert g.shape == x.shape
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(g, numeric, rtol=0, atol=1e-6 * scale,
                                   err_msg=f"gradient of input {k}")


def away_from(x, points, margin=0.1):
    """`x` moved off the kinks at `points` (finite differences need smooth ground)."""
    x = np.array(x)
    for p in points:
        close = np.abs(x - p) < margin
        x[close] = p + margin * np.sign(x[close] - p + 1e-12) * 2
    return x


X = _rng(2).normal(size=(3, 4))
POS = np.abs(X) + 0.5

UNARY = [
    ("exp", ops.exp, X), ("expm1", ops.expm1, X), ("log", ops.log, POS),
    ("log1p", ops.log1p, POS), ("sqrt", ops.sqrt, POS), ("rsqrt", ops.rsqrt, POS),
    ("abs", ops.abs, away_from(X, [0])), ("square", ops.square, X), ("sin", ops.sin, X),
    ("cos", ops.cos, X), ("tanh", ops.tanh, X), ("sigmoid", ops.sigmoid, X * 3),
    ("relu", ops.relu, away_from(X, [0])), ("softplus", ops.softplus, X * 3),
    ("softsign", ops.softsign, away_from(X, [0])), ("elu", ops.elu, away_from(X, [0])),
    ("selu", ops.selu, away_from(X, [0])), ("silu", ops.silu, X), ("swish", ops.swish, X),
    ("exponential", ops.exponential, X), ("linear", ops.linear, X),
    ("negative", ops.negative, X), ("softmax", ops.softmax, X),
    ("softmax axis 0", lambda x: ops.softmax(x, axis=0), X),
    ("log_softmax", ops.log_softmax, X),
    ("clip", lambda x: ops.clip(x, -0.5, 0.7), away_from(X, [-0.5, 0.7], 0.05)),
    ("cast", lambda x: ops.cast(x, "float64"), X),
    ("convert_to_tensor", ops.convert_to_tensor, X),
    ("leaky_relu", ops.leaky_relu, away_from(X, [0])),
    ("hard_sigmoid", ops.hard_sigmoid, away_from(X * 4, [-3, 3])),
    ("log_sigmoid", ops.log_sigmoid, X * 3),
    ("gelu", ops.gelu, X * 3),
    ("gelu exact", lambda x: ops.gelu(x, approximate=False), X * 3),
    ("erf", ops.erf, X * 2),
    ("celu", lambda x: ops.celu(x, alpha=0.7), away_from(X, [0])),
    ("glu", ops.glu, X),
    ("glu axis 0", lambda x: ops.glu(x[:2], axis=0), X),
    ("relu6", ops.relu6, away_from(X * 4, [0, 6])),
    ("hard_silu", ops.hard_silu, away_from(X * 4, [-3, 3])),
    ("hard_tanh", ops.hard_tanh, away_from(X * 2, [-1, 1])),
    ("hard_shrink", lambda x: ops.hard_shrink(x, 0.3), away_from(X, [-0.3, 0.3])),
    ("soft_shrink", ops.soft_shrink, away_from(X, [-0.5, 0.5])),
    ("tanh_shrink", ops.tanh_shrink, X),
    ("mish", fmath.mish, X * 3),  # keras.activations only: not in fastrnn.ops
    ("sparse_plus", ops.sparse_plus, away_from(X * 2, [-1, 1])),
    ("sparse_sigmoid", ops.sparse_sigmoid, away_from(X * 2, [-1, 1])),
    ("squareplus", lambda x: ops.squareplus(x, b=2), X * 3),
    ("sparsemax", ops.sparsemax, X),
    ("sparsemax axis 0", lambda x: ops.sparsemax(x, axis=0), X),
    ("threshold", lambda x: ops.threshold(x, 0.2, -1.5), away_from(X, [0.2])),
]


@pytest.mark.parametrize("name,f,x", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops(name, f, x):
    check_grad(f, x)


# Arguments each activation needs (or that differ between keras.activations and keras.ops).
ACTIVATION_ARGS = {"threshold": {"threshold": 0.3, "default_value": -1.0}}
OPS_ARGS = {"gelu": {"approximate": False}}
KINKS = [0, -0.5, 0.5, -1, 1, 0.3]


@pytest.mark.parametrize("name", sorted(activations._BY_NAME))
def test_every_activation_function_traces(name):
    fn = activations.get(name)
    kwargs = ACTIVATION_ARGS.get(name, {})
    x = away_from(X, KINKS, margin=0.05)
    check_grad(lambda v: fn(v, **kwargs), x)
    op = getattr(ops, "silu" if name == "swish" else name, None) or getattr(fmath, name)
    np.testing.assert_allclose(fn(x, **kwargs), op(x, **kwargs, **OPS_ARGS.get(name, {})))


B1 = _rng(3).normal(size=(4,))
B2 = _rng(4).normal(size=(3, 1))
BINARY = [("add", ops.add), ("subtract", ops.subtract), ("multiply", ops.multiply),
          ("divide", ops.divide), ("maximum", ops.maximum), ("minimum", ops.minimum)]


@pytest.mark.parametrize("name,f", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("other", [X[::-1] * 0.7 + 0.05, B1, B2], ids=["same", "row", "col"])
def test_binary_ops_with_broadcasting(name, f, other):
    a = X
    b = np.where(np.abs(other) < 0.3, other + 0.6, other) if name == "divide" else other
    check_grad(f, a, b)
    check_grad(f, b, a)


def test_power_both_arguments():
    check_grad(ops.power, POS, _rng(5).normal(size=(3, 4)))
    check_grad(lambda x: x ** 3, X)
    check_grad(lambda x: 2.0 ** x, X)


def test_operators():
    y = _rng(6).normal(size=(4, 2))
    check_grad(lambda a, b: (a + 1) * (2 - a) / (b[0] ** 2 + 1) - (-a), X, y.T[:1].T.T[:, :4])
    check_grad(lambda a, b: a @ b, X, y)
    check_grad(lambda a: abs(away_from(X, [0]) * a), X)
    check_grad(lambda a: (+a)[1:, ::2] * 3.0, X)


def test_comparisons_have_no_gradient_and_where_routes_it():
    cond = X > 0
    with Trace():
        a = Trace.leaf(X.copy())
        assert (a > 0).dtype == bool and not isinstance(a > 0, autodiff.Traced)
        for op in (ops.greater, ops.greater_equal, ops.less, ops.less_equal, ops.equal,
                   ops.not_equal):
            assert not isinstance(op(a, 0.0), autodiff.Traced)
    check_grad(lambda a, b: ops.where(cond, a, b), X, X[::-1] * 2)
    check_grad(lambda a: ops.where(a > 0, a, 0.1 * a), away_from(X, [0]))


@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max, ops.min, ops.var, ops.std,
                                ops.logsumexp])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(op, axis, keepdims):
    x = _rng(7).normal(size=(2, 3, 5))
    check_grad(lambda v: op(v, axis=axis, keepdims=keepdims), x)


def test_max_ties_share_the_gradient():
    x = np.array([[1.0, 3.0, 3.0]])
    with Trace():
        leaf = Trace.leaf(x)
        out = ops.max(leaf, axis=1)
    (g,) = autodiff.backward([out], [np.ones(1)], [leaf])
    np.testing.assert_array_equal(g, [[0, 0.5, 0.5]])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)),
                                    ((2, 3, 4), (2, 4, 5)), ((4,), (4, 2)), ((3, 4), (4,)),
                                    ((1, 3, 4), (2, 4, 2))])
def test_matmul(shapes):
    rng = _rng(8)
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    check_grad(fmath.matmul, a, b)  # (fastrnn.ops.matmul keeps its 2-D checks on 1-D arrays)
    if a.ndim > 1 and b.ndim > 1:
        check_grad(ops.matmul, a, b)


def test_matmul_float32_goes_through_the_core_and_keeps_dtype():
    rng = _rng(9)
    a = rng.normal(size=(5, 3, 4)).astype(np.float32)
    b = rng.normal(size=(4, 6)).astype(np.float32)
    y = ops.matmul(a, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, a @ b, rtol=1e-5, atol=1e-5)
    # the kernels' matmul keeps its own signature
    np.testing.assert_allclose(ops.matmul(b, b, trans_a=True), b.T @ b, rtol=1e-5, atol=1e-5)


SHAPE_OPS = [
    ("reshape", lambda x: ops.reshape(x, (4, -1))), ("transpose", ops.transpose),
    ("transpose axes", lambda x: ops.transpose(x, (1, 0, 2))),
    ("expand_dims", lambda x: ops.expand_dims(x, 1)),
    ("squeeze", lambda x: ops.squeeze(ops.expand_dims(x, 0), 0)),
    ("flip", lambda x: ops.flip(x, axis=1)),
    ("getitem basic", lambda x: x[..., 1:3]),
    ("getitem int", lambda x: x[:, 1]),
    ("getitem newaxis", lambda x: x[None, 0, ::-1]),
    ("getitem array", lambda x: x[np.array([0, 1, 0])]),
    ("concatenate", lambda x: ops.concatenate([x, x[:, :1] * 2], axis=1)),
    ("stack", lambda x: ops.stack([x, ops.tanh(x)], axis=1)),
    ("split", lambda x: ops.split(x, 3, axis=1)),
    ("split at", lambda x: ops.split(x, [1], axis=2)),
    ("moments", lambda x: ops.moments(x, axes=[0, 1])),
    ("T", lambda x: x[0].T),
    ("tile", lambda x: ops.tile(x, (1, 2, 1))),
    ("tile more axes", lambda x: ops.tile(x[0], (2, 1, 3))),
    ("repeat axis", lambda x: ops.repeat(x, 2, axis=1)),
    ("repeat flat", lambda x: ops.repeat(x, 3)),
    ("pad", lambda x: ops.pad(x, [[0, 0], [2, 0], [1, 1]])),
    ("cumsum axis", lambda x: ops.cumsum(x, axis=1)),
    ("cumsum flat", ops.cumsum),
    ("take axis", lambda x: ops.take(x, np.array([[2, 0], [2, 2]]), axis=1)),
    ("take flat", lambda x: ops.take(x, np.array([5, 5, 0]))),
]


@pytest.mark.parametrize("name,f", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(name, f):
    check_grad(f, _rng(10).normal(size=(2, 3, 4)))


def test_concatenate_of_two_traced_inputs():
    rng = _rng(11)
    check_grad(lambda a, b: ops.concatenate([a, b], axis=-1), rng.normal(size=(2, 3)),
               rng.normal(size=(2, 5)))
    check_grad(lambda a, b: ops.stack([a, b]), rng.normal(size=(2, 3)), rng.normal(size=(2, 3)))


def test_constants_carry_no_gradient():
    with Trace():
        a = Trace.leaf(X.copy())
        z, o = ops.zeros_like(a), ops.ones_like(a)
        for c in (ops.sign(a), ops.floor(a), ops.round(a)):
            assert not isinstance(c, autodiff.Traced)
    assert not isinstance(z, autodiff.Traced) and not isinstance(o, autodiff.Traced)
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.ones(2).sum() == 2
    np.testing.assert_array_equal(ops.arange(3), [0, 1, 2])
    np.testing.assert_array_equal(ops.full((2,), 7.0), [7, 7])
    np.testing.assert_array_equal(ops.eye(2), np.eye(2))
    np.testing.assert_array_equal(o, np.ones_like(X))


def test_arrays_in_arrays_out_and_float32_stays_float32():
    x = X.astype(np.float32)
    for y in (ops.tanh(x), x * 2.0, ops.mean(x, axis=0), ops.softmax(x), ops.relu(x) + 1):
        assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(ops.sigmoid(np.array([-800.0, 0.0, 800.0])), [0, 0.5, 1])
    np.testing.assert_allclose(ops.softplus(np.array([-800.0, 800.0])), [0, 800])


def test_numpy_ufuncs_with_an_op_record_their_gradient():
    w = _rng(12).normal(size=(3, 4))
    check_grad(lambda a: w * np.tanh(a) + np.exp(a) - w / (1 + np.square(a)), X)


@pytest.mark.parametrize("call,name", [
    (lambda a: np.arctan(a), "numpy.arctan"),
    (lambda a: np.sum(a), "numpy.sum"),
    (lambda a: np.asarray(a), "numpy.asarray"),
    (lambda a: np.add.reduce(a), "numpy.add.reduce"),
])
def test_an_operation_without_gradient_is_named_at_trace_time(call, name):
    with Trace():
        a = Trace.leaf(X.copy())
        with pytest.raises(NoGradientError, match=name.replace(".", r"\.")):
            call(a)


def test_a_gradient_reaching_a_node_twice_adds_up():
    check_grad(lambda a: a * a + ops.tanh(a) * a, X)


def test_unused_output_and_no_path_give_none():
    with Trace():
        a = Trace.leaf(X.copy())
        b = Trace.leaf(X.copy())
        out = ops.tanh(a)
    ga, gb = autodiff.backward([out], [np.ones_like(X)], [a, b])
    assert gb is None and ga is not None
