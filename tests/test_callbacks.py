"""Callbacks against a tiny fake model and a fake fit loop that feeds them chosen logs."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from fastrnn import callbacks


class FakeOptimizer:
    def __init__(self, learning_rate: float = 0.1):
        self.learning_rate = learning_rate


class FakeModel:
    """Only what callbacks may use. Its single weight is the number of the epoch just run."""

    def __init__(self):
        self.stop_training = False
        self.stop_reason = None
        self.optimizer = FakeOptimizer()
        self.weights = [np.zeros(2), np.zeros(())]
        self.saved: list[tuple[str, str]] = []

    def get_weights(self):
        return self.weights  # not copies, on purpose: callbacks must copy what they keep

    def set_weights(self, weights):
        for w, new in zip(self.weights, weights):
            w[...] = new

    def save(self, path):
        self.saved.append(("model", path))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", path))
        with open(path, "w") as f:
            f.write("weights")


def fit(model, cbs, epoch_logs, batch_losses=None):
    """Runs the hooks like Model.fit; returns the number of epochs run."""
    cb_list = callbacks.CallbackList(cbs, model=model)
    model.stop_training = False
    cb_list.on_train_begin()
    epochs_run = 0
    for epoch, logs in enumerate(epoch_logs):
        cb_list.on_epoch_begin(epoch)
        for batch, loss in enumerate((batch_losses or {}).get(epoch, [])):
            cb_list.on_train_batch_begin(batch)
            cb_list.on_train_batch_end(batch, {"loss": loss})
            if model.stop_training:
                break
        for w in model.weights:
            w[...] = epoch  # "training" changes the weights
        cb_list.on_epoch_end(epoch, dict(logs))
        epochs_run += 1
        if model.stop_training:
            break
    cb_list.on_train_end()
    return epochs_run


def val(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


def test_history_records_every_key():
    history = callbacks.History()
    fit(FakeModel(), [history], [{"loss": 3.0, "mae": 1.0}, {"loss": 2.0, "mae": 0.5}])
    assert history.history == {"loss": [3.0, 2.0], "mae": [1.0, 0.5]}
    assert history.epoch == [0, 1]


def test_early_stopping_patience():
    model = FakeModel()
    stop = callbacks.EarlyStopping(patience=2)
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert fit(model, [stop], val(1.0, 0.5, 0.6, 0.7, 0.1, 0.1)) == 4
    assert model.stop_training and stop.stopped_epoch == 3 and stop.best == 0.5
    # patience 0 stops at the first epoch without improvement (never at the first epoch)
    assert fit(FakeModel(), [callbacks.EarlyStopping(patience=0)], val(1.0, 2.0, 0.1)) == 2


def test_early_stopping_min_delta_and_mode_max():
    stop = callbacks.EarlyStopping(patience=1, min_delta=0.1)
    assert fit(FakeModel(), [stop], val(1.0, 0.95, 0.92, 0.5)) == 2  # gains under 0.1 don't count
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.9)]
    assert fit(FakeModel(), [stop], logs) == 3 and stop.best == 0.6
    stop = callbacks.EarlyStopping(monitor="score", mode="max", patience=1)
    assert fit(FakeModel(), [stop], [{"score": s} for s in (1, 2, 3, 0)]) == 4


def test_early_stopping_restores_best_weights_even_without_stopping():
    model = FakeModel()
    stop = callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    fit(model, [stop], val(1.0, 0.2, 0.5, 0.6))
    assert not model.stop_training  # patience not exhausted
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])  # epoch 1's weights
    assert stop.best_epoch == 1


def test_early_stopping_restore_after_stop_and_reuse_resets_state():
    model = FakeModel()
    stop = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    assert fit(model, [stop], val(0.3, 0.4, 0.5, 0.0)) == 2
    np.testing.assert_array_equal(model.weights[0], [0.0, 0.0])
    assert fit(model, [stop], val(5.0, 4.0, 3.0)) == 3  # a new fit: old best forgotten
    np.testing.assert_array_equal(model.weights[0], [2.0, 2.0])


def test_early_stopping_baseline_and_start_from_epoch():
    # improvements that never beat the baseline do not reset the wait
    # (Keras: the first epoch counts as waiting too, so patience 2 ends after epoch 2)
    stop = callbacks.EarlyStopping(patience=2, baseline=0.1)
    assert fit(FakeModel(), [stop], val(1.0, 0.9, 0.8, 0.7, 0.6)) == 2
    # once the baseline is beaten, patience counts from there
    stop = callbacks.EarlyStopping(patience=2, baseline=0.1)
    assert fit(FakeModel(), [stop], val(1.0, 0.05, 0.06, 0.07, 0.08)) == 4
    stop = callbacks.EarlyStopping(patience=0, start_from_epoch=3)
    assert fit(FakeModel(), [stop], val(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)) == 5


def test_missing_monitor_warns_once_listing_available_keys():
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match=r"'val_loss'.*validation_data.*available keys: loss, mae"):
        n = fit(FakeModel(), [stop], [{"loss": 1.0, "mae": 2.0}] * 3)
    assert n == 3  # it did nothing
    # once per fit: pytest's filterwarnings=error turns a second warning into a failure here
    with pytest.warns(UserWarning) as record:
        fit(FakeModel(), [callbacks.ReduceLROnPlateau(patience=0)], [{"loss": 1.0}] * 4)
    assert len(record) == 1


def test_auto_mode_needs_a_recognisable_name():
    with pytest.raises(ValueError, match="pass mode='min' or mode='max'"):
        callbacks.EarlyStopping(monitor="val_score")
    with pytest.raises(ValueError, match="`mode`: expected 'auto', 'min' or 'max'"):
        callbacks.EarlyStopping(mode="smallest")
    for name in ("val_last_time_step_mse", "val_mae", "loss", "val_rmse"):
        callbacks.EarlyStopping(monitor=name)
    with pytest.raises(ValueError, match="`patience`"):
        callbacks.EarlyStopping(patience=-1)


def test_model_checkpoint_every_epoch_with_formatted_names(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "ckpt" / "model_{epoch:02d}_{val_loss:.4f}.json")
    fit(model, [callbacks.ModelCheckpoint(pattern)], val(0.5, 0.25))
    expected = [
        str(tmp_path / "ckpt" / n) for n in ("model_01_0.5000.json", "model_02_0.2500.json")
    ]
    assert model.saved == [("model", p) for p in expected]
    assert all(os.path.exists(p) for p in expected)


def test_model_checkpoint_best_only_weights_only(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "best_{epoch}.npz")
    cb = callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    fit(model, [cb], val(0.5, 0.7, 0.4, 0.4))
    assert [p for _, p in model.saved] == [
        str(tmp_path / "best_1.npz"),
        str(tmp_path / "best_3.npz"),
    ]
    assert {kind for kind, _ in model.saved} == {"weights"}


def test_model_checkpoint_unknown_placeholder(tmp_path):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "m_{val_acc:.2f}"))
    with pytest.raises(ValueError, match=r"\{val_acc\}, which is not in the epoch logs; available"):
        fit(FakeModel(), [cb], val(0.5))


def test_terminate_on_nan_stops_with_a_clear_reason():
    model = FakeModel()
    n = fit(
        model,
        [callbacks.TerminateOnNaN()],
        [{"loss": 1.0}] * 5,
        batch_losses={0: [1.0, 0.9], 1: [0.8], 2: [0.7, 0.6, math.nan, 0.5]},
    )
    assert n == 3 and model.stop_training
    assert model.stop_reason == "loss became NaN at epoch 3, batch 3; weights from before it kept"


def test_terminate_on_inf_and_on_epoch_loss():
    model = FakeModel()
    fit(model, [callbacks.TerminateOnNaN()], [{"loss": 1.0}], batch_losses={0: [np.inf]})
    assert model.stop_reason.startswith("loss became infinite at epoch 1, batch 1")
    model = FakeModel()
    assert fit(model, [callbacks.TerminateOnNaN()], [{"loss": 1.0}, {"loss": np.nan}] * 2) == 2
    assert model.stop_reason == "loss became NaN at epoch 2; weights from before it kept"
    model = FakeModel()
    fit(model, [callbacks.TerminateOnNaN()], [{"loss": 1.0}] * 2, batch_losses={0: [1.0]})
    assert not model.stop_training and model.stop_reason is None


def test_learning_rate_scheduler_two_and_one_argument_schedules():
    model = FakeModel()
    seen = []

    def halve(epoch, lr):
        seen.append((epoch, lr))
        return lr / 2

    history = callbacks.History()
    fit(model, [callbacks.LearningRateScheduler(halve), history], [{"loss": 1.0}] * 3)
    assert seen == [(0, 0.1), (1, 0.05), (2, 0.025)]
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    fit(model, [callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))], [{}] * 2)
    assert model.optimizer.learning_rate == pytest.approx(0.02)


@pytest.mark.parametrize("bad", [None, "0.1", -1.0, math.nan])
def test_learning_rate_scheduler_rejects_bad_rates(bad):
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: bad)
    with pytest.raises(ValueError, match="at epoch 0 it returned"):
        fit(FakeModel(), [sched], [{}])


def test_reduce_lr_on_plateau_patience_cooldown_and_floor():
    model = FakeModel()
    # (as in Keras, the last cooldown epoch already counts towards patience, so cooldown=1
    # would change nothing here)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.02)
    lrs = []

    class Recorder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            lrs.append(model.optimizer.learning_rate)

    # best 1.0 at epoch 0, then a plateau
    fit(model, [cb, Recorder()], val(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0))
    # reduce after 2 flat epochs, cool down, wait 2 again, ...; floor at 0.02
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02])


def test_reduce_lr_on_plateau_min_delta_and_factor_validation():
    model = FakeModel()
    cb = callbacks.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=0.01)
    fit(model, [cb], val(1.0, 0.995))  # a gain below min_delta is a plateau
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"`factor`: expected a float in \(0, 1\), got 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_callback_list_dispatches_in_order_and_skips_unused_hooks():
    calls = []

    class Tracer(callbacks.Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def on_train_batch_end(self, batch, logs=None):
            calls.append((self.tag, batch, logs["loss"]))

    model = FakeModel()
    quiet = callbacks.History()
    cb_list = callbacks.CallbackList([Tracer("a"), quiet, Tracer("b")], model=model)
    assert len(cb_list._dispatch["on_train_batch_end"]) == 2  # History has no batch hook
    assert all(cb.model is model for cb in cb_list)
    cb_list.on_train_batch_end(4, {"loss": 0.5})
    assert calls == [("a", 4, 0.5), ("b", 4, 0.5)]
    with pytest.raises(TypeError, match="Callback instances"):
        callbacks.CallbackList([lambda: None])


# NaN compares false with everything: a NaN threshold would silently stop (or never stop)
# training, so every number a callback takes must be finite.
@pytest.mark.parametrize(
    ("factory", "argument"),
    [
        (lambda v: callbacks.EarlyStopping(min_delta=v), "min_delta"),
        (lambda v: callbacks.EarlyStopping(baseline=v), "baseline"),
        (lambda v: callbacks.ReduceLROnPlateau(min_delta=v), "min_delta"),
        (lambda v: callbacks.ReduceLROnPlateau(min_lr=v), "min_lr"),
        (lambda v: callbacks.ReduceLROnPlateau(factor=v), "factor"),
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"),
                                   "0.1", True, None])
def test_callbacks_refuse_non_finite_numbers(factory, argument, value):
    if value is None and argument == "baseline":
        factory(value)  # None means "no baseline"
        return
    with pytest.raises((ValueError, TypeError), match=f"`{argument}`"):
        factory(value)


def test_early_stopping_with_nan_min_delta_no_longer_stops_early():
    # before the check, min_delta=nan made every epoch a non-improvement
    with pytest.raises(ValueError, match="`min_delta`"):
        callbacks.EarlyStopping(min_delta=float("nan"), patience=1)
    stop = callbacks.EarlyStopping(min_delta=0.0, patience=1)
    model = FakeModel()
    stop.set_model(model)
    stop.on_train_begin()
    for epoch, loss in enumerate([3.0, 2.0, 1.0]):
        stop.on_epoch_end(epoch, {"val_loss": loss})
    assert not model.stop_training


def test_reduce_lr_on_plateau_negative_min_lr_refused():
    with pytest.raises(ValueError, match="`min_lr`"):
        callbacks.ReduceLROnPlateau(min_lr=-1.0)
