"""Training callbacks with Keras's hooks and semantics.

A callback sees the model only through these attributes (duck typing; this module imports no
model): ``model.stop_training`` (bool), ``model.stop_reason`` (str, set by TerminateOnNaN),
``model.get_weights()`` / ``model.set_weights(list)``, ``model.save(path)``,
``model.save_weights(path)`` and ``model.optimizer.learning_rate`` (a settable float).

Hooks, called by the model's ``fit`` in this order: ``on_train_begin``, then per epoch
``on_epoch_begin(epoch)``, per batch ``on_train_batch_begin(batch)`` and
``on_train_batch_end(batch, logs)`` (``logs["loss"]`` is the batch loss), then
``on_epoch_end(epoch, logs)`` (``logs`` holds the epoch's ``loss``, metrics and ``val_*``),
and ``on_train_end``. ``epoch`` and ``batch`` are 0-based; messages print them 1-based, as
the progress bar does.

``mode="auto"`` decides whether a monitored quantity should go down or up from its name (the
``val_`` prefix removed): names ending in ``loss``, ``error``, ``mse``, ``mae``, ``rmse``,
``mape``, ``crossentropy`` or ``huber`` go down; names containing ``acc``, or ending in ``auc``,
``precision``, ``recall`` or ``r2``, go up. Anything else raises ``ValueError`` asking for
``mode="min"`` or ``mode="max"`` (Keras does the same for metrics it cannot classify).
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Iterable
from typing import Any, Callable, Optional

import numpy as np

from . import saving

__all__ = [
    "BackupAndRestore",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]

Logs = Optional[dict[str, Any]]

_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


class Callback:
    """Base class: every hook does nothing. ``self.model`` is set by ``set_model``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Training parameters from the model (e.g. ``epochs``, ``steps``, ``verbose``)."""
        self.params = params

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called once at the start of ``fit``."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Called once at the end of ``fit`` (also after an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called at the end of an epoch; ``logs`` holds its loss, metrics and ``val_*``."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before training batch ``batch`` (0-based within the epoch)."""

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after a training batch; ``logs["loss"]`` is that batch's loss."""

    def on_test_begin(self, logs: Logs = None) -> None:
        """Called at the start of ``evaluate`` (and of validation inside ``fit``)."""

    def on_test_end(self, logs: Logs = None) -> None:
        """Called at the end of ``evaluate``."""

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before an evaluation batch."""

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after an evaluation batch."""

    def on_predict_begin(self, logs: Logs = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: Logs = None) -> None:
        """Called at the end of ``predict``."""

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before a prediction batch."""

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after a prediction batch."""


class CallbackList:
    """Dispatches every hook to several callbacks, in order.

    Per-batch hooks are only forwarded to callbacks that override them, so the common case
    (History, EarlyStopping, ...) adds no Python call per batch.
    """

    def __init__(
        self, callbacks: Iterable[Callback] | None = None, model: Any = None, **params: Any
    ):
        self.callbacks: list[Callback] = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be fastrnn.callbacks.Callback instances, got {cb!r}."
                )
        self._dispatch = {
            hook: [
                getattr(cb, hook)
                for cb in self.callbacks
                if getattr(type(cb), hook) is not getattr(Callback, hook)
            ]
            for hook in _HOOKS
        }
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def append(self, callback: Callback) -> None:
        """Adds a callback after the others."""
        self.__init__([*self.callbacks, callback])  # type: ignore[misc]

    def set_model(self, model: Any) -> None:
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.set_params(params)

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._dispatch[hook]:
            method(*args)

    def on_train_begin(self, logs: Logs = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: Logs = None) -> None:
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        self._call("on_test_begin", logs)

    def on_test_end(self, logs: Logs = None) -> None:
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records the epoch logs: ``history["loss"][i]`` is epoch ``epoch[i]``'s loss.

    ``fit`` returns it. Across several ``fit`` calls on the same instance the lists grow.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a non-negative integer, "
            f"got {value!r}."
        )
    return int(value)


def _finite_number(name: str, value: Any, rule: str = "a finite number") -> float:
    """``value`` as a float; NaN and infinities are refused (NaN compares false with every
    value, so a NaN threshold would silently change when training stops)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected {rule}, got {value!r}."
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected {rule}, got {value!r}."
        )
    return number


# -- monitored quantities ------------------------------------------------------------------

_DOWN_SUFFIXES = ("loss", "error", "mse", "mae", "rmse", "mape", "crossentropy", "huber")
_UP_SUFFIXES = ("auc", "precision", "recall", "r2")


def _monitor_sign(monitor: str, mode: str, owner: str) -> float:
    """-1.0 when smaller is better, +1.0 when larger is better."""
    if mode == "min":
        return -1.0
    if mode == "max":
        return 1.0
    if mode != "auto":
        raise ValueError(
            f"Received an invalid value for argument `mode`: expected 'auto', 'min' or 'max', "
            f"got {mode!r}."
        )
    name = monitor[4:] if monitor.startswith("val_") else monitor
    name = name.lower()
    if name.endswith(_DOWN_SUFFIXES):
        return -1.0
    if "acc" in name or name.endswith(_UP_SUFFIXES):
        return 1.0
    raise ValueError(
        f"{owner} cannot tell whether monitor={monitor!r} should be minimised or maximised; "
        "pass mode='min' or mode='max'."
    )


class _Monitoring(Callback):
    """Shared by the callbacks that watch one key of the epoch logs."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                f"Received an invalid value for argument `monitor`: expected a non-empty "
                f"string, got {monitor!r}."
            )
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(_finite_number("min_delta", min_delta))
        self._sign = _monitor_sign(monitor, mode, type(self).__name__)
        self._warned = False

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        """True when ``current`` beats ``reference`` by more than ``min_delta``."""
        if reference is None:
            return True
        return bool(self._sign * (current - reference) > self.min_delta)

    def _monitor_value(self, logs: Logs) -> float | None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            if not self._warned:
                self._warned = True
                available = ", ".join(sorted(logs)) or "(none)"
                hint = (
                    " (val_* keys exist only with validation_data or validation_split)"
                    if self.monitor.startswith("val_")
                    else ""
                )
                warnings.warn(
                    f"{type(self).__name__} monitors {self.monitor!r}, which is not in the "
                    f"epoch logs{hint}; available keys: {available}. It does nothing until "
                    "the key appears.",
                    UserWarning,
                    stacklevel=3,
                )
            return None
        return float(np.asarray(value))


class EarlyStopping(_Monitoring):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs.

    Improvement means beating the best value so far by more than ``min_delta``. Epochs before
    ``start_from_epoch`` are ignored. With ``baseline``, the wait counter only restarts once the
    value also beats the baseline. With ``restore_best_weights``, the weights of the best epoch
    are put back at the end of training (whether or not training stopped early), as in Keras 3.
    Training never stops at the first epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = _non_negative_int("patience", patience)
        self.verbose = verbose
        self.baseline = None if baseline is None else _finite_number("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _non_negative_int("start_from_epoch", start_from_epoch)
        self.on_train_begin()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self._warned = False

    def _snapshot(self) -> list[np.ndarray]:
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self._snapshot()  # something to restore even if never bettered
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._snapshot()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    f"Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitoring):
    """Saves the model (or only its weights) at the end of every epoch, or of improving ones.

    ``filepath`` is formatted with ``epoch`` (1-based) and the epoch logs, e.g.
    ``"ckpt_{epoch:02d}_{val_loss:.4f}"``. Missing directories are created. With
    ``save_best_only``, only epochs where ``monitor`` improves on the best so far are saved
    (and, if the path has no placeholders, each overwrites the last).
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
    ) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.best: float | None = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self._warned = False

    def _format_path(self, epoch: int, logs: dict[str, Any]) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} refers to {{{e.args[0]}}}, which is "
                f"not in the epoch logs; available keys: epoch, {', '.join(sorted(logs))}."
            ) from None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self._monitor_value(logs)
            if current is None or not self._is_improvement(current, self.best):
                return
            if self.verbose > 0:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {previous} to "
                    f"{current:.5f}, saving model"
                )
            self.best = current
        path = self._format_path(epoch, logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0 and not self.save_best_only:
            print(f"Epoch {epoch + 1}: saving model to {path}")


class TerminateOnNaN(Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Sets ``model.stop_training = True`` and ``model.stop_reason`` to a message such as
    ``"loss became NaN at epoch 3, batch 17; weights from before it kept"``. Restoring those
    weights is the model's job. The epoch-end loss is checked too, for loops that report no
    batch logs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._epoch = epoch

    def _check(self, loss: Any, where: str) -> None:
        if loss is None or getattr(self.model, "stop_training", False):
            return
        loss = float(np.asarray(loss))
        if math.isfinite(loss):
            return
        kind = "NaN" if math.isnan(loss) else "infinite"
        self.model.stop_reason = f"loss became {kind} at {where}; weights from before it kept"
        self.model.stop_training = True

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._check((logs or {}).get("loss"), f"epoch {self._epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._check((logs or {}).get("loss"), f"epoch {epoch + 1}")


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)``.

    ``schedule`` takes the 0-based epoch and the current learning rate (or only the epoch)
    and returns a non-negative finite number. ``logs["learning_rate"]`` records it.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _accepts_two_positional(schedule)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        lr = float(self.model.optimizer.learning_rate)
        new_lr = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        is_number = isinstance(new_lr, (int, float, np.integer, np.floating))
        value = float(new_lr) if is_number else math.nan
        if isinstance(new_lr, bool) or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"The learning rate schedule must return a non-negative finite float; at epoch "
                f"{epoch} it returned {new_lr!r}."
            )
        self.model.optimizer.learning_rate = value
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {value}.")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _accepts_two_positional(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: assume Keras's form
        return True
    try:
        sig.bind(0, 0.0)
    except TypeError:
        return False
    return True


class ReduceLROnPlateau(_Monitoring):
    """Multiplies the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement larger than ``min_delta``, the rate
    becomes ``max(lr * factor, min_lr)`` (if it is above ``min_lr``), then ``cooldown`` epochs
    pass before counting resumes. ``logs["learning_rate"]`` records the rate each epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.factor = _finite_number("factor", factor, "a float in (0, 1)")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(
                f"Received an invalid value for argument `factor`: expected a float in (0, 1), "
                f"got {factor!r}."
            )
        self.patience = _non_negative_int("patience", patience)
        self.verbose = verbose
        self.cooldown = _non_negative_int("cooldown", cooldown)
        self.min_lr = _finite_number("min_lr", min_lr, "a non-negative finite float")
        if self.min_lr < 0:
            raise ValueError(
                f"Received an invalid value for argument `min_lr`: expected a non-negative "
                f"finite float, got {min_lr!r}."
            )
        self.on_train_begin()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best: float | None = None
        self._warned = False

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old_lr = float(optimizer.learning_rate)
            if old_lr > self.min_lr:
                new_lr = max(old_lr * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
                if self.verbose > 0:
                    print(
                        f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}."
                    )
                self.cooldown_counter = self.cooldown
                self.wait = 0


class BackupAndRestore(Callback):
    """Resumes a killed training run exactly where it stopped (Keras 3's name and use).

    At the end of every epoch (or every `save_freq` batches... see below) the model's weights,
    its optimizer state (moments, iteration count, learning rate) and every random stream of
    training (shuffling, dropout, a shuffling dataset's) are written to one file in
    `backup_dir`, atomically (a kill mid-write leaves the previous backup). Run the same script
    again: ``fit`` restores that state and continues with the next epoch, so the final
    weights are bit-identical to an uninterrupted run (same machine and thread count). When
    training ends normally the backup is deleted (``delete_checkpoint=False`` keeps it).

    Args:
        backup_dir: a directory for the backup file (created if missing).
        save_freq: ``"epoch"`` (the only value supported: a resumed run repeats the epoch
            that was interrupted).
        delete_checkpoint: delete the backup when ``fit`` ends normally.
    """

    FILE = "backup.fastrnn"  # a model file (fastrnn.load_model reads it too)

    def __init__(self, backup_dir: str | os.PathLike[str], save_freq: str = "epoch",
                 delete_checkpoint: bool = True) -> None:
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(
                "Received an invalid value for argument `save_freq`, expected 'epoch' (a "
                f"resumed run repeats the interrupted epoch), got {save_freq!r}."
            )
        if not isinstance(delete_checkpoint, bool):
            raise TypeError(
                "Received an invalid value for argument `delete_checkpoint`, expected True or "
                f"False, got {delete_checkpoint!r}."
            )
        self.backup_dir = os.fspath(backup_dir)
        if not self.backup_dir:
            raise ValueError("Received an invalid value for argument `backup_dir`: it is empty.")
        if os.path.exists(self.backup_dir) and not os.path.isdir(self.backup_dir):
            raise ValueError(
                f"Received an invalid value for argument `backup_dir`: {self.backup_dir!r} "
                "exists and is not a directory."
            )
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint

    @property
    def path(self) -> str:
        return os.path.join(self.backup_dir, self.FILE)

    def on_train_begin(self, logs: Logs = None) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        if os.path.exists(self.path):
            self.model._resume_epoch = saving.read_backup(self.model, self.path)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        saving.write_backup(self.model, self.path, epoch)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)
