"""Every optimizer after 3 steps against TF-Keras (same starting weights and gradients), with
each clipping mode and weight decay; against PyTorch where it runs the same algorithm; the
flat-buffer update equals the per-array one for elementwise rules; configs and saved state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _keras import import_keras
from fastrnn import optimizers

# Arrays of ranks 1, 2 and 3 (Adafactor factors the last two axes, Lamb scales each array).
SHAPES = [(7,), (5, 3), (2, 3, 4)]


def _problem(seed: int = 0, steps: int = 3):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s) for s in SHAPES]
    # gradients of different scales per array so that norms and clipping matter
    grads = [[rng.normal(scale=scale, size=s) for s, scale in zip(SHAPES, (0.3, 2.0, 0.05))]
             for _ in range(steps)]
    return weights, grads


def _fastrnn_run(opt, weights, grads, flat: bool = False, dtype=np.float64):
    params = [w.astype(dtype) for w in weights]
    grads = [[g.astype(dtype) for g in step] for step in grads]
    if flat:
        buf = np.concatenate([p.ravel() for p in params])
        for step in grads:
            g = np.concatenate([x.ravel() for x in step])
            opt.apply_gradients([buf], [g])
        out, offset = [], 0
        for p in params:
            out.append(buf[offset:offset + p.size].reshape(p.shape))
            offset += p.size
        return out
    for step in grads:
        opt.apply_gradients(params, [g.copy() for g in step])
    return params


def _keras_run(keras, name, kwargs, weights, grads):
    import tensorflow as tf
    opt = getattr(keras.optimizers, name)(**kwargs)
    variables = [tf.Variable(w.astype(np.float32)) for w in weights]
    for step in grads:
        opt.apply_gradients(zip([tf.constant(g.astype(np.float32)) for g in step], variables))
    return [v.numpy() for v in variables]


CASES = [
    ("Nadam", {"learning_rate": 0.01}),
    ("Adamax", {"learning_rate": 0.02}),
    ("Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.2}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Adadelta", {"learning_rate": 0.5, "rho": 0.9}),
    ("Ftrl", {"learning_rate": 0.1}),
    ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "l1_regularization_strength":
              0.01, "l2_regularization_strength": 0.02,
              "l2_shrinkage_regularization_strength": 0.03, "beta": 0.1}),
    ("Lion", {"learning_rate": 0.01}),
    ("Lamb", {"learning_rate": 0.01}),
    ("Adafactor", {"learning_rate": 0.1}),
    ("Adafactor", {"learning_rate": 0.1, "relative_step": False, "clip_threshold": 0.5}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.05}),
    ("Adam", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("RMSprop", {"learning_rate": 0.01, "weight_decay": 0.05, "centered": True}),
]
CLIPS = [{}, {"clipnorm": 0.5}, {"clipvalue": 0.1}, {"global_clipnorm": 1.0}]
# Each clipping mode with each of the four optimizers users ask for most; every other case
# with one clipping mode in turn (clipping is the base class's, shared by all). TF-Keras
# costs about 0.1 s a step here, so the whole matrix would not fit the test budget.
KERAS_RUNS = [(name, kwargs, clip) for name, kwargs in CASES[:4] for clip in CLIPS] + [
    (name, kwargs, CLIPS[i % 4]) for i, (name, kwargs) in enumerate(CASES[4:])]


@pytest.mark.parametrize("name,kwargs,clip", KERAS_RUNS,
                         ids=[f"{n}{i}-{next(iter(c), 'noclip')}"
                              for i, (n, _, c) in enumerate(KERAS_RUNS)])
def test_three_steps_match_tf_keras(name, kwargs, clip):
    keras = import_keras()
    weights, grads = _problem()
    theirs = _keras_run(keras, name, {**kwargs, **clip}, weights, grads)
    mine = _fastrnn_run(getattr(optimizers, name)(**kwargs, **clip), weights, grads,
                        dtype=np.float32)
    for a, b in zip(mine, theirs):
        # float32 as users train (Keras rounds its hyperparameters to float32 even for float64
        # weights): weights of order 1 moved by 3 steps, a few roundings of 6e-8 each
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)
    assert any(not np.allclose(a, w) for a, w in zip(mine, weights))


@pytest.mark.parametrize("name,kwargs", [c for c in CASES if c[0] not in ("Lamb", "Adafactor")],
                         ids=[c[0] + str(i) for i, c in enumerate(CASES)
                              if c[0] not in ("Lamb", "Adafactor")])
def test_elementwise_rules_on_one_flat_buffer_equal_per_array(name, kwargs):
    # The model updates one flat buffer; for elementwise rules that must change nothing.
    weights, grads = _problem(1)
    per_array = _fastrnn_run(getattr(optimizers, name)(**kwargs), weights, grads)
    flat = _fastrnn_run(getattr(optimizers, name)(**kwargs), weights, grads, flat=True)
    for a, b in zip(per_array, flat):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def _torch_run(torch_opt, weights, grads):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy(), requires_grad=True) for w in weights]
    opt = torch_opt(torch, params)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


TORCH = [
    # (fastrnn, torch); epsilon 0 where the libraries place it differently
    (lambda: optimizers.Nadam(0.01),
     lambda t, p: t.optim.NAdam(p, lr=0.01, eps=1e-7, momentum_decay=1.0)),
    (lambda: optimizers.Adamax(0.02, epsilon=0.0),
     lambda t, p: t.optim.Adamax(p, lr=0.02, eps=0.0)),
    (lambda: optimizers.Adagrad(0.05, initial_accumulator_value=0.2, epsilon=0.0),
     lambda t, p: t.optim.Adagrad(p, lr=0.05, initial_accumulator_value=0.2, eps=0.0)),
    (lambda: optimizers.AdamW(0.01, weight_decay=0.1, epsilon=0.0),
     lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1, eps=0.0)),
    (lambda: optimizers.Adadelta(0.5, rho=0.9, epsilon=1e-6),
     lambda t, p: t.optim.Adadelta(p, lr=0.5, rho=0.9, eps=1e-6)),
]


@pytest.mark.parametrize("mine,theirs", TORCH, ids=["nadam", "adamax", "adagrad", "adamw",
                                                     "adadelta"])
def test_matches_torch_where_the_algorithm_is_the_same(mine, theirs):
    weights, grads = _problem(2)
    b = _torch_run(theirs, weights, grads)
    a = _fastrnn_run(mine(), weights, grads)
    for x, y in zip(a, b):
        # float64, but PyTorch keeps NAdam's momentum product as a float32 scalar
        np.testing.assert_allclose(x, y, rtol=1e-7, atol=1e-12)


def test_nadam_product_is_recomputed_after_restoring_state():
    weights, grads = _problem(3, steps=5)
    whole = _fastrnn_run(optimizers.Nadam(0.01), weights, grads)
    first = optimizers.Nadam(0.01)
    params = [w.copy() for w in weights]
    for step in grads[:2]:
        first.apply_gradients(params, [g.copy() for g in step])
    resumed = optimizers.Nadam(0.01)
    resumed.set_state(first.get_state(), params)
    for step in grads[2:]:
        resumed.apply_gradients(params, [g.copy() for g in step])
    for a, b in zip(params, whole):
        np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("name", ["Nadam", "Adamax", "Adagrad", "AdamW", "Adadelta", "Ftrl",
                                  "Lion", "Lamb", "Adafactor", "ScheduleFreeAdamW"])
def test_config_round_trip_through_json_and_get_by_name(name):
    cls = getattr(optimizers, name)
    opt = cls(learning_rate=0.05, clipvalue=0.3)
    again = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))
    assert type(again) is cls and again.get_config() == opt.get_config()
    assert type(optimizers.get(name.lower())) is cls
    # Keras's config keys are accepted as they are
    keras_keys = {"learning_rate", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay",
                  "loss_scale_factor", "name"}
    assert keras_keys <= set(opt.get_config())


def test_adafactor_state_round_trip_with_factored_slots():
    weights, grads = _problem(4)
    opt = optimizers.Adafactor()
    params = [w.copy() for w in weights]
    opt.apply_gradients(params, [g.copy() for g in grads[0]])
    state = opt.get_state()
    assert state["slots/1/r"].shape == (5,) and state["slots/1/c"].shape == (3,)
    assert state["slots/2/r"].shape == (2, 3) and state["slots/2/c"].shape == (2, 4)
    other = optimizers.Adafactor()
    other.set_state(state, params)
    bad = dict(state)
    bad["slots/1/r"] = np.zeros((3,))
    with pytest.raises(ValueError, match=r"'slots/1/r' must be a float array of shape \(5,\)"):
        optimizers.Adafactor().set_state(bad, params)


@pytest.mark.parametrize("factory,match", [
    (lambda: optimizers.AdamW(weight_decay=None), "weight_decay"),
    (lambda: optimizers.Nadam(weight_decay=-1.0), "weight_decay"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), "learning_rate_power"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1), "l1_regularization_strength"),
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Adafactor(clip_threshold=0), "clip_threshold"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "ema_momentum"),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0), "ema_overwrite_frequency"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=4), "gradient_accumulation_steps"),
])
def test_bad_hyperparameters_name_the_argument(factory, match):
    with pytest.raises((ValueError, NotImplementedError), match=f"`{match}`"):
        factory()


def test_which_optimizers_need_arrays_or_trainable_weights_only():
    assert optimizers.Lamb().needs_arrays and optimizers.Adafactor().needs_arrays
    assert optimizers.Adam(clipnorm=1.0).needs_arrays and not optimizers.Nadam().needs_arrays
    assert optimizers.AdamW().moves_without_gradient and optimizers.Ftrl().moves_without_gradient
    assert not optimizers.Adam().moves_without_gradient


def _schedule_free_reference(weights, grads, lr, beta_1=0.9, beta_2=0.999, eps=1e-8,
                             warmup=0, weight_decay=0.0):
    """Keras's ScheduleFreeAdamW as its code states it (z saved before its update), plainly."""
    ys = [w.copy() for w in weights]
    zs = [w.copy() for w in weights]
    vs = [np.zeros_like(w) for w in weights]
    for t, step in enumerate(grads, start=1):
        lr_t = lr * min(t / warmup, 1.0) if warmup else lr
        for y, z, v, g in zip(ys, zs, vs, step):
            y -= lr * weight_decay * y  # decoupled decay, before the update
            z_old = z.copy()
            v += (g * g - v) * (1 - beta_2)
            z -= lr_t * g / (np.sqrt(v / (1 - beta_2**t)) + eps)
            x = (y - (1 - beta_1) * z_old) / beta_1
            x = (1 - 1 / t) * x + z / t
            y[...] = (1 - beta_1) * z + beta_1 * x
    return ys


@pytest.mark.parametrize("kwargs", [{}, {"warmup_steps": 2, "weight_decay": 0.1, "beta_1": 0.8}])
def test_schedule_free_adamw_against_its_formulas(kwargs):
    """Against the update Keras's code describes (and its JAX backend computes). TF-Keras 3.15
    differs: there the saved ``momentum.value`` is the variable itself, so the x it recovers
    uses the updated z, which moves x up the gradient; fastrnn keeps the stated algorithm."""
    weights, grads = _problem(5, steps=4)
    mine = _fastrnn_run(optimizers.ScheduleFreeAdamW(0.05, **kwargs), weights, grads)
    ref = _schedule_free_reference(weights, grads, 0.05, beta_1=kwargs.get("beta_1", 0.9),
                                   warmup=kwargs.get("warmup_steps", 0),
                                   weight_decay=kwargs.get("weight_decay", 0.0))
    for a, b in zip(mine, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    flat = _fastrnn_run(optimizers.ScheduleFreeAdamW(0.05, **kwargs), weights, grads, flat=True)
    for a, b in zip(flat, mine):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert optimizers.ScheduleFreeAdamW().moves_without_gradient
    with pytest.raises(ValueError, match="`warmup_steps`"):
        optimizers.ScheduleFreeAdamW(warmup_steps=-1)
    with pytest.raises(ValueError, match="`beta_1`"):
        optimizers.ScheduleFreeAdamW(beta_1=0.0)
