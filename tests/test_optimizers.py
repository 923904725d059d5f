"""Optimizers: Keras's update formulas written out by hand, PyTorch over several steps, clipping,
in-place updates of views, no per-step allocation, validation, configs."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

from fastrnn import optimizers

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the dev environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")

# Three steps of gradients for one scalar parameter, chosen so epsilon matters at step 3.
GRADS = [0.5, -2.0, 1e-4]


def _run(opt: optimizers.Optimizer, w0: float, grads=GRADS) -> list[float]:
    w = np.array([w0])
    out = []
    for g in grads:
        opt.apply_gradients([w], [np.array([g])])
        out.append(float(w[0]))
    return out


def test_sgd_plain_momentum_and_nesterov_by_hand():
    lr, mu = 0.1, 0.9
    assert _run(optimizers.SGD(lr), 1.0) == pytest.approx(
        [1 - 0.05, 1 - 0.05 + 0.2, 1 - 0.05 + 0.2 - 1e-5]
    )
    # v = mu v - lr g; w += v
    w, v, expect = 1.0, 0.0, []
    for g in GRADS:
        v = mu * v - lr * g
        w += v
        expect.append(w)
    assert _run(optimizers.SGD(lr, momentum=mu), 1.0) == pytest.approx(expect, rel=1e-14)
    # nesterov: w += mu v - lr g with the new v
    w, v, expect = 1.0, 0.0, []
    for g in GRADS:
        v = mu * v - lr * g
        w += mu * v - lr * g
        expect.append(w)
    assert _run(optimizers.SGD(lr, momentum=mu, nesterov=True), 1.0) == pytest.approx(
        expect, rel=1e-14
    )


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_keras_formula_by_hand(amsgrad):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3  # a large epsilon so its placement shows
    w, m, v, v_hat, expect = 2.0, 0.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        v_hat = max(v_hat, v)
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # bias correction folded into the step
        w -= alpha * m / (math.sqrt(v_hat if amsgrad else v) + eps)  # eps outside the sqrt
        expect.append(w)
    opt = optimizers.Adam(lr, b1, b2, eps, amsgrad=amsgrad)
    assert _run(opt, 2.0) == pytest.approx(expect, rel=1e-13)
    assert opt.iterations == 3


def test_adam_first_step_is_lr_times_sign_for_tiny_epsilon():
    # A property independent of the formula's layout: m_hat / sqrt(v_hat) = sign(g) at step 1.
    w = np.array([1.0, 1.0])
    optimizers.Adam(learning_rate=0.1, epsilon=0.0).apply_gradients([w], [np.array([3.0, -1e-3])])
    np.testing.assert_allclose(w, [0.9, 1.1], rtol=1e-12)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_keras_formula_by_hand(centered, momentum):
    lr, rho, eps = 0.01, 0.9, 1e-3
    w, v, a, mom, expect = 2.0, 0.0, 0.0, 0.0, []
    for g in GRADS:
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g
        denom = v - a * a + eps if centered else v + eps  # eps inside the sqrt
        step = lr * g / math.sqrt(denom)
        mom = momentum * mom + step
        w -= mom if momentum else step
        expect.append(w)
    opt = optimizers.RMSprop(lr, rho, momentum, eps, centered)
    assert _run(opt, 2.0) == pytest.approx(expect, rel=1e-13)


def test_rmsprop_keras_docstring_example():
    # Keras's RMSprop docstring: loss = var^2 / 2 from var = 10 with lr 0.1 gives 9.683772.
    var = np.array([10.0], dtype=np.float32)
    optimizers.RMSprop(learning_rate=0.1).apply_gradients([var], [var.copy()])
    assert var[0] == pytest.approx(9.683772, abs=1e-6)


def _torch_pair(name: str, kwargs: dict):
    """(fastrnn optimizer, torch optimizer factory) with equivalent settings (epsilon 0)."""
    lr = kwargs["learning_rate"]
    if name == "sgd":
        return optimizers.SGD(**kwargs), lambda p: torch.optim.SGD(
            p, lr=lr, momentum=kwargs.get("momentum", 0.0), nesterov=kwargs.get("nesterov", False)
        )
    if name == "adam":
        return optimizers.Adam(epsilon=0.0, **kwargs), lambda p: torch.optim.Adam(
            p, lr=lr, betas=(0.9, 0.999), eps=0.0, amsgrad=kwargs.get("amsgrad", False)
        )
    return optimizers.RMSprop(epsilon=0.0, **kwargs), lambda p: torch.optim.RMSprop(
        p,
        lr=lr,
        alpha=0.9,
        eps=0.0,
        momentum=kwargs.get("momentum", 0.0),
        centered=kwargs.get("centered", False),
    )


# Epsilon sits in different places in Keras and PyTorch (see the optimizers module doc), so
# the comparison runs with epsilon = 0, where both are the same algorithm.
TORCH_CASES = [
    ("sgd", {"learning_rate": 0.1}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.8, "centered": True}),
]


@needs_torch
@pytest.mark.parametrize(("name", "kwargs"), TORCH_CASES, ids=str)
def test_matches_torch_optim_over_several_steps(name, kwargs):
    rng = np.random.default_rng(0)
    shapes = [(3, 8), (8,), (1, 1)]
    params = [rng.standard_normal(s) for s in shapes]
    ours, make_torch = _torch_pair(name, kwargs)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    torch_opt = make_torch(theirs)
    for _ in range(6):
        grads = [rng.standard_normal(s) for s in shapes]
        for t, g in zip(theirs, grads):
            t.grad = torch.tensor(g.copy())
        torch_opt.step()
        ours.apply_gradients(params, grads)
    for p, t in zip(params, theirs):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_updates_views_of_a_flat_buffer_in_place():
    flat = np.zeros(10, dtype=np.float32)
    params = [flat[:6].reshape(2, 3), flat[6:]]
    grads = [np.ones((2, 3), np.float32), np.full(4, 2.0, np.float32)]
    opt = optimizers.Adam(learning_rate=0.1)
    for _ in range(2):
        opt.apply_gradients(params, [g.copy() for g in grads])
    assert params[0].base is flat and params[1].base is flat
    assert flat.dtype == np.float32
    np.testing.assert_allclose(flat, -0.2, rtol=1e-4)  # Adam moves ~lr per step at first


@pytest.mark.parametrize(
    "opt",
    [
        optimizers.SGD(0.1),
        optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        optimizers.Adam(amsgrad=True),
        optimizers.RMSprop(momentum=0.9, centered=True),
        optimizers.Adam(global_clipnorm=1.0),
        optimizers.RMSprop(clipnorm=1.0),
        optimizers.SGD(clipvalue=0.1),
    ],
    ids=repr,
)
def test_no_arrays_allocated_per_step(opt):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((64, 256)).astype(np.float32) for _ in range(3)]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    opt.apply_gradients(params, grads)  # builds the slots
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(5):
            opt.apply_gradients(params, grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < params[0].nbytes // 4  # a temporary would be 64 KiB


def test_clipnorm_clips_each_array_by_its_own_norm_in_place():
    grads = [np.array([3.0, 4.0]), np.array([0.3, 0.4])]  # norms 5 and 0.5
    w = [np.zeros(2), np.zeros(2)]
    optimizers.SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients(w, grads)
    np.testing.assert_allclose(grads[0], [0.6, 0.8])
    np.testing.assert_allclose(grads[1], [0.3, 0.4])
    np.testing.assert_allclose(w[0], [-0.6, -0.8])


def test_global_clipnorm_scales_all_arrays_together():
    grads = [np.array([3.0, 0.0]), np.array([0.0, 4.0])]  # global norm 5
    w = [np.zeros(2), np.zeros(2)]
    optimizers.SGD(learning_rate=1.0, global_clipnorm=2.5).apply_gradients(w, grads)
    np.testing.assert_allclose(w[0], [-1.5, 0.0])
    np.testing.assert_allclose(w[1], [0.0, -2.0])
    small = [np.array([0.3, 0.4])]
    optimizers.SGD(learning_rate=1.0, global_clipnorm=2.5).apply_gradients([np.zeros(2)], small)
    np.testing.assert_allclose(small[0], [0.3, 0.4])  # under the norm: untouched


def test_clipvalue_clips_elementwise():
    w = [np.zeros(3)]
    optimizers.SGD(learning_rate=1.0, clipvalue=0.5).apply_gradients(w, [np.array([-2.0, 0.1, 9])])
    np.testing.assert_allclose(w[0], [0.5, -0.1, -0.5])


def test_only_one_clipping_option():
    with pytest.raises(
        ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"
    ):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="`clipnorm`: expected None or a positive float, got 0"):
        optimizers.Adam(clipnorm=0)


def test_learning_rate_is_settable_and_validated():
    opt = optimizers.SGD(learning_rate=0.5)
    assert _run(opt, 0.0, [1.0]) == [-0.5]
    opt.learning_rate = 0.25
    assert opt.learning_rate == 0.25 and isinstance(opt.learning_rate, float)
    w = np.zeros(1)
    opt.apply_gradients([w], [np.ones(1)])
    assert w[0] == -0.25
    opt.learning_rate = 0  # warm-up schedules start at 0
    with pytest.raises(
        ValueError,
        match=r"Received an invalid value for argument `learning_rate`: expected a non-negative "
        r"float, got -1\.",
    ):
        opt.learning_rate = -1
    for bad in (float("nan"), "0.1", True, None):
        with pytest.raises(ValueError, match="`learning_rate`"):
            optimizers.Adam(learning_rate=bad)


@pytest.mark.parametrize(
    ("factory", "argument"),
    [
        (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
        (lambda: optimizers.Adam(beta_2=-0.1), "beta_2"),
        (lambda: optimizers.Adam(epsilon=-1e-7), "epsilon"),
        (lambda: optimizers.SGD(momentum=1.5), "momentum"),
        (lambda: optimizers.RMSprop(rho=1.0), "rho"),
    ],
)
def test_hyperparameters_are_validated(factory, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        factory()


def test_mismatched_lists_and_shapes_raise():
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="2 parameters and 1 gradients"):
        opt.apply_gradients([np.zeros(2), np.zeros(3)], [np.zeros(2)])
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(2,\); expected .* \(3,\)"):
        opt.apply_gradients([np.zeros(2), np.zeros(3)], [np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="must be floating"):
        opt.apply_gradients([np.zeros(2, dtype=int)], [np.zeros(2)])


def test_slots_rebuilt_when_shapes_change_and_reset():
    opt = optimizers.Adam(learning_rate=0.1)
    a = [np.zeros(2)]
    opt.apply_gradients(a, [np.ones(2)])
    b = [np.zeros(3)]
    opt.apply_gradients(b, [np.ones(3)])  # a different model: fresh slots, no shape error
    # fresh slots, but the step counter goes on (t = 2), as Keras's does
    m, v, alpha = 0.1, 0.001, 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    np.testing.assert_allclose(b[0], -alpha * m / (math.sqrt(v) + 1e-7), rtol=1e-12)
    assert opt.iterations == 2
    opt.reset()
    assert opt.iterations == 0
    c = [np.zeros(3)]
    opt.apply_gradients(c, [np.ones(3)])
    np.testing.assert_allclose(c[0], -0.1, rtol=1e-5)  # a first step again


@pytest.mark.parametrize(
    "opt",
    [
        optimizers.SGD(0.3, momentum=0.5, nesterov=True, clipvalue=2.0),
        optimizers.Adam(0.002, beta_1=0.8, amsgrad=True, global_clipnorm=1.0),
        optimizers.RMSprop(0.01, rho=0.8, momentum=0.1, centered=True, clipnorm=3.0),
    ],
    ids=repr,
)
def test_config_round_trip(opt):
    clone = type(opt).from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    via_get = optimizers.get(json.loads(json.dumps(optimizers.serialize(opt))))
    assert type(via_get) is type(opt) and via_get.get_config() == opt.get_config()
    assert _run(clone, 1.0) == _run(via_get, 1.0)


def test_get_names_case_insensitive_with_keras_defaults():
    sgd, adam, rms = optimizers.get("SGD"), optimizers.get("Adam"), optimizers.get("rmsprop")
    assert isinstance(sgd, optimizers.SGD) and sgd.learning_rate == 0.01
    assert isinstance(adam, optimizers.Adam) and adam.learning_rate == 0.001
    assert adam.epsilon == 1e-7 and (adam.beta_1, adam.beta_2) == (0.9, 0.999)
    assert isinstance(rms, optimizers.RMSprop) and rms.rho == 0.9
    assert optimizers.get(adam) is adam
    with pytest.raises(ValueError, match="valid names are: .*'adamw'.*'sgd'"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="Unknown optimizer config"):
        optimizers.get({"class_name": "Nadamm", "config": {}})
    with pytest.raises(TypeError, match="Could not interpret optimizer"):
        optimizers.get(0.1)


def test_float32_params_with_float64_grads_keep_their_dtype():
    w = np.ones(4, dtype=np.float32)
    optimizers.RMSprop(0.01).apply_gradients([w], [np.ones(4)])
    assert w.dtype == np.float32 and np.all(w < 1)


def test_centered_rmsprop_with_a_constant_gradient_stays_finite():
    # v - a^2 is 0 in exact arithmetic; rounding below 0 used to give sqrt(<0) = NaN (and a
    # RuntimeWarning, which this suite turns into an error).
    # (with these values v - a^2 rounds below -epsilon for some element by step ~130)
    grad = np.random.default_rng(0).uniform(1, 10, 1000).astype(np.float32)
    w = np.zeros_like(grad)
    opt = optimizers.RMSprop(learning_rate=1e-3, centered=True)
    for _ in range(200):
        opt.apply_gradients([w], [grad.copy()])
    assert np.isfinite(w).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: optimizers.SGD(0.1),
        lambda: optimizers.SGD(0.1, momentum=0.9),
        lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: optimizers.Adam(0.01),
        lambda: optimizers.Adam(0.01, amsgrad=True),
        lambda: optimizers.RMSprop(0.01),
        lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_update_matches_numpy_update(make, dtype):
    """The one-pass C++ update and the NumPy formulas take the same steps."""
    rng = np.random.default_rng(7)
    start = rng.standard_normal(37).astype(dtype)
    fused, plain = make(), make()
    plain._update = plain._update_numpy  # force the NumPy path
    p1, p2 = start.copy(), start.copy()
    for _ in range(5):
        g = rng.standard_normal(37).astype(dtype)
        fused.apply_gradients([p1], [g.copy()])
        plain.apply_gradients([p2], [g.copy()])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p1, p2, rtol=tol, atol=tol)
    assert not np.allclose(p1, start)


# Every number an optimizer takes must be finite: NaN compares false with
# every bound, so a range check written as `if not low <= x <= high` is the only safe form.
@pytest.mark.parametrize("cls", [optimizers.SGD, optimizers.Adam, optimizers.RMSprop])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_optimizers_refuse_non_finite_numbers(cls, value):
    import inspect

    names = [name for name, p in inspect.signature(cls).parameters.items()
             if isinstance(p.default, float) or p.default is None and name != "name"]
    assert {"learning_rate", "clipnorm", "clipvalue", "global_clipnorm"} <= set(names)
    for name in names:
        with pytest.raises(ValueError, match=f"`{name}`"):
            cls(**{name: value})
    opt = cls()
    with pytest.raises(ValueError, match="`learning_rate`"):
        opt.learning_rate = value
