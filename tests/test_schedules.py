"""Learning-rate schedules: values against closed forms and Keras's at many steps, configs,
errors, every optimizer driven by a schedule (or a callable) step by step, a model trained
with a schedule against TF-Keras with copied weights, and a saved or backed-up run that
continues its schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fastrnn
from _keras import import_keras
from fastrnn import callbacks, layers, optimizers
from fastrnn.optimizers import schedules

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.8}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.8,
                          "staircase": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [10, 20, 35], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 13, "power": 0.5}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 13, "power": 2.0,
                         "end_learning_rate": 0.01, "cycle": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 30, "warmup_target": 0.2,
                     "warmup_steps": 9}),
    ("CosineDecay", {"initial_learning_rate": 0.05, "decay_steps": 30, "warmup_target": 0.2}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 7,
                             "t_mul": 2.0, "m_mul": 0.7, "alpha": 0.05}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 7,
                             "t_mul": 1.0, "m_mul": 0.7}),
]
STEPS = np.arange(0, 150)


def test_closed_forms():
    assert schedules.ExponentialDecay(1.0, 10, 0.5)(20) == pytest.approx(0.25)
    assert schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)(19) == pytest.approx(0.5)
    assert schedules.InverseTimeDecay(1.0, 2, 1.0)(4) == pytest.approx(1 / 3)
    piecewise = schedules.PiecewiseConstantDecay([10, 20], [3.0, 2.0, 1.0])
    # a boundary step still has the earlier value
    assert [piecewise(s) for s in (0, 10, 11, 20, 21)] == [3.0, 3.0, 2.0, 2.0, 1.0]
    poly = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0)
    assert poly(5) == pytest.approx(0.25) and poly(10) == 0.0 and poly(50) == 0.0
    cyc = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(0) == 1.0 and cyc(10) == 0.0 and cyc(15) == pytest.approx(0.25)  # over 20
    cos = schedules.CosineDecay(1.0, 10, alpha=0.2)
    assert cos(0) == 1.0 and cos(5) == pytest.approx(0.6) and cos(99) == pytest.approx(0.2)
    warm = schedules.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)
    assert warm(2) == pytest.approx(0.5) and warm(4) == 1.0 and warm(9) == pytest.approx(0.5)
    restarts = schedules.CosineDecayRestarts(1.0, 4, t_mul=2.0, m_mul=0.5)
    # periods of 4, 8, 16 steps beginning at 0, 4, 12, peaks 1, 0.5, 0.25
    assert [restarts(s) for s in (0, 4, 12)] == pytest.approx([1.0, 0.5, 0.25])
    assert restarts(8) == pytest.approx(0.25)  # half-way through the second period
    values = cos(STEPS)
    assert isinstance(values, np.ndarray) and values.shape == STEPS.shape
    assert isinstance(cos(3), float)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_values_match_keras(name, kwargs):
    keras = pytest.importorskip("keras")
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    ours = getattr(schedules, name)(**kwargs)
    want = np.array([float(theirs(int(s))) for s in STEPS])
    # Keras computes in float32: its values carry float32 rounding of each operation.
    np.testing.assert_allclose(ours(STEPS), want, rtol=1e-6, atol=1e-8)
    # and Keras reads our config
    again = keras.optimizers.schedules.deserialize(
        {"module": "keras.optimizers.schedules", "class_name": name,
         "config": ours.get_config(), "registered_name": None})
    assert float(again(17)) == pytest.approx(ours(17), rel=1e-6)
    # and we read Keras's serialized form
    assert schedules.deserialize(keras.optimizers.schedules.serialize(theirs))(17) == \
        pytest.approx(ours(17))


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_config_round_trips(name, kwargs):
    s = getattr(schedules, name)(**kwargs)
    config = json.loads(json.dumps(schedules.serialize(s)))
    again = schedules.deserialize(config)
    assert type(again) is type(s) and again.get_config() == s.get_config()
    np.testing.assert_array_equal(again(STEPS), s(STEPS))
    assert type(s).from_config(s.get_config()).get_config() == s.get_config()


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"`decay_steps` must be > 0. Received: decay_steps=-5"):
        schedules.ExponentialDecay(0.1, -5, 0.9)
    for cls in (schedules.InverseTimeDecay, schedules.PolynomialDecay):
        with pytest.raises(ValueError, match="`decay_steps` must be > 0"):
            cls(0.1, 0, 0.9)
    with pytest.raises(ValueError, match="`decay_steps` must be > 0"):
        schedules.CosineDecay(0.1, 0)
    with pytest.raises(ValueError, match="`first_decay_steps` must be > 0"):
        schedules.CosineDecayRestarts(0.1, -1)
    with pytest.raises(ValueError, match=r"boundaries should be 1 less.*length 2.*length 2"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="`boundaries`, expected increasing"):
        schedules.PiecewiseConstantDecay([5, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="`initial_learning_rate`.*'big'"):
        schedules.ExponentialDecay("big", 10, 0.9)
    with pytest.raises(ValueError, match="`step`"):
        schedules.ExponentialDecay(0.1, 10, 0.9)("three")
    with pytest.raises(ValueError, match="`config`.*Nope"):
        schedules.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(NotImplementedError, match="must override `__call__"):
        schedules.LearningRateSchedule()(0)


def test_optimizer_learning_rate_errors():
    with pytest.raises(ValueError, match=r"Argument `learning_rate` should be float.*'fast'"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match=r"`learning_rate` should be float.*None"):
        optimizers.SGD(learning_rate=None)
    opt = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    with pytest.raises(ValueError, match="callable must take the step"):
        optimizers.SGD(learning_rate=lambda a, b: 0.1)
    negative = optimizers.SGD(learning_rate=lambda step: -0.1)
    w = [np.ones(3)]
    with pytest.raises(ValueError, match=r"`learning_rate`.*-0.1 at step 0"):
        negative.apply_gradients(w, [np.ones(3)])
    np.testing.assert_array_equal(w[0], 1.0)  # unchanged
    assert negative.iterations == 0


OPTIMIZERS = ["SGD", "Adam", "RMSprop", "Nadam", "Adamax", "Adagrad", "AdamW", "Adadelta",
              "Ftrl", "Lion", "Lamb", "Adafactor", "ScheduleFreeAdamW"]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_uses_the_rate_of_each_step(name):
    """A scheduled optimizer equals one whose float rate is set to schedule(t) before each
    update t (the fused C++ updates included: float32 contiguous arrays)."""
    schedule = schedules.CosineDecayRestarts(0.05, 2, t_mul=1.5, m_mul=0.8, alpha=0.1)
    extra = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    scheduled = getattr(optimizers, name)(learning_rate=schedule, weight_decay=0.01, **extra)
    manual = getattr(optimizers, name)(learning_rate=1.0, weight_decay=0.01, **extra)
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    b = [x.copy() for x in a]
    rates = []
    for t in range(6):
        g = [rng.normal(size=x.shape).astype(np.float32) for x in a]
        assert scheduled.learning_rate == schedule(t)
        rates.append(scheduled.learning_rate)
        scheduled.apply_gradients(a, [x.copy() for x in g])
        manual.learning_rate = schedule(t)
        manual.apply_gradients(b, [x.copy() for x in g])
    assert len(set(rates)) > 3  # the rate did change
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_callables_get_the_step_or_nothing():
    seen = []

    def of_step(step):
        seen.append(step)
        return 0.1 / (1 + step)

    opt = optimizers.SGD(learning_rate=of_step)
    w = [np.zeros(2)]
    for _ in range(3):
        opt.apply_gradients(w, [np.ones(2)])
    assert seen == [0, 1, 2]
    np.testing.assert_allclose(w[0], -(0.1 + 0.05 + 0.1 / 3))
    calls = []
    no_arg = optimizers.SGD(learning_rate=lambda: calls.append(1) or 0.5)  # Keras's form
    no_arg.apply_gradients([np.zeros(2)], [np.ones(2)])
    assert calls and no_arg.get_config()["learning_rate"] == {"class_name": "function",
                                                               "config": "<lambda>"}
    with pytest.raises(ValueError, match="custom_objects"):
        optimizers.deserialize(optimizers.serialize(opt))
    again = optimizers.deserialize(optimizers.serialize(opt), {"of_step": of_step})
    assert again.learning_rate == pytest.approx(0.1)


def test_optimizer_config_holds_the_schedule():
    schedule = schedules.PolynomialDecay(0.1, 100, power=2.0, cycle=True)
    opt = optimizers.Adam(learning_rate=schedule, beta_1=0.8)
    config = json.loads(json.dumps(optimizers.serialize(opt)))
    assert config["config"]["learning_rate"]["class_name"] == "PolynomialDecay"
    again = optimizers.deserialize(config)
    assert isinstance(again._schedule, schedules.PolynomialDecay)
    assert again._schedule.get_config() == schedule.get_config() and again.beta_1 == 0.8


class HalvingSchedule(schedules.LearningRateSchedule):
    def __init__(self, start):
        self.start = start

    def __call__(self, step):
        return self.start * 0.5 ** (np.asarray(step) // 2)

    def get_config(self):
        return {"start": self.start}


def _data():
    rng = np.random.default_rng(3)
    return (rng.normal(size=(40, 6, 3)).astype(np.float32),
            rng.normal(size=(40, 2)).astype(np.float32))


def _model(schedule, optimizer="adam"):
    fastrnn.set_seed(1)
    model = fastrnn.Sequential([layers.Input((6, 3)), layers.GRU(4), layers.Dense(2)])
    opt = {"adam": optimizers.Adam, "sgd": optimizers.SGD}[optimizer](learning_rate=schedule)
    model.compile(optimizer=opt, loss="mse")
    return model


def test_saved_model_continues_its_schedule(tmp_path):
    x, y = _data()
    schedule = schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    straight = _model(schedule)
    straight.fit(x, y, epochs=4, batch_size=8, shuffle=False, verbose=0)
    first = _model(schedule)
    first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    first.save(str(tmp_path / "m.fastrnn"))
    resumed = fastrnn.load_model(str(tmp_path / "m.fastrnn"))
    assert resumed.optimizer.iterations == 10
    assert resumed.optimizer.learning_rate == pytest.approx(0.05 * 0.5 ** (10 / 3))
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a schedule of your own is found by name
    custom = _model(HalvingSchedule(0.02))
    custom.fit(x, y, epochs=1, batch_size=8, verbose=0)
    custom.save(str(tmp_path / "c.fastrnn"))
    with pytest.raises(ValueError, match="HalvingSchedule"):
        fastrnn.load_model(str(tmp_path / "c.fastrnn"))
    loaded = fastrnn.load_model(str(tmp_path / "c.fastrnn"),
                                custom_objects={"HalvingSchedule": HalvingSchedule})
    assert loaded.optimizer.learning_rate == pytest.approx(0.02 * 0.5 ** 2)


def test_backup_and_restore_continues_the_schedule(tmp_path):
    x, y = _data()
    schedule = schedules.PiecewiseConstantDecay([7, 12], [0.05, 0.01, 0.002])
    straight = _model(schedule, "sgd")
    straight.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)

    class Stop(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    interrupted = _model(schedule, "sgd")
    backup = callbacks.BackupAndRestore(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[backup, Stop()])
    again = _model(schedule, "sgd")
    again.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
              callbacks=[callbacks.BackupAndRestore(str(tmp_path))])
    assert again.optimizer.iterations == 15
    for a, b in zip(again.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_with_a_schedule_matches_tf_keras(optimizer):
    keras = import_keras()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(24, 5)).astype(np.float32)
    y = rng.normal(size=(24, 3)).astype(np.float32)
    kwargs = {"initial_learning_rate": 0.0, "decay_steps": 4, "warmup_target": 0.1,
              "warmup_steps": 2}
    ours = fastrnn.Sequential([layers.Input((5,)), layers.Dense(4, activation="tanh"),
                               layers.Dense(3)])
    cls = {"sgd": optimizers.SGD, "adam": optimizers.Adam}[optimizer]
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    ours.compile(optimizer=cls(learning_rate=schedules.CosineDecay(**kwargs), **extra),
                 loss="mse")
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                               keras.layers.Dense(3)])
    theirs.set_weights(ours.get_weights())
    kcls = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[optimizer]
    theirs.compile(optimizer=kcls(learning_rate=keras.optimizers.schedules.CosineDecay(
        **kwargs), **extra), loss="mse")
    # 6 steps: the warm-up from 0 (step 0 changes nothing), then the decay
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        # float32 weights of size ~1 after 6 steps of size <= 0.1
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 6
    assert math.isclose(ours.optimizer.learning_rate, float(theirs.optimizer.learning_rate),
                        rel_tol=1e-6)


def test_numpy_arguments_give_json_configs():
    s = schedules.PiecewiseConstantDecay(np.array([3, 9]), np.array([0.1, 0.01, 0.001]))
    c = schedules.CosineDecay(np.float32(0.1), np.int64(10), warmup_target=np.float64(0.2),
                              warmup_steps=np.int32(2))
    for schedule in (s, c):
        config = json.loads(json.dumps(schedules.serialize(schedule)))
        np.testing.assert_array_equal(schedules.deserialize(config)(STEPS), schedule(STEPS))
