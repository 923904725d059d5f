"""Training callbacks with Keras's hooks and semantics.

A callback sees the model only through these attributes (duck typing; this module imports no
model): ``model.stop_training`` (bool), ``model.stop_reason`` (str, set by TerminateOnNaN),
``model.get_weights()`` / ``model.set_weights(list)``, ``model.save(path)``,
``model.save_weights(path)`` and ``model.optimizer.learning_rate`` (a float, settable unless the
optimizer was built on a learning-rate schedule).

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

import csv
import inspect
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable
from typing import Any, Callable, Optional

import numpy as np
from tqdm.auto import tqdm

from . import saving

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "RemoteMonitor",
    "SwapEMAWeights",
    "TerminateOnNaN",
    "has_hook",
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
        """Called before training batch ``batch`` (0-based within the epoch); by default
        calls :meth:`on_batch_begin`."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after a training batch; ``logs["loss"]`` is that batch's loss. By default
        calls :meth:`on_batch_end`."""
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Keras's older name for :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Keras's older name for :meth:`on_train_batch_end`."""

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


# A training-batch hook also counts as overridden when its older name is.
_OLDER_NAME = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def has_hook(callback: Callback, hook: str) -> bool:
    """Whether `callback` does something in `hook`: its class overrides it (or, for the
    training-batch hooks, their older names ``on_batch_*``) or the instance sets it (as
    :class:`LambdaCallback` does). The training loop calls per-batch hooks only then."""
    for name in (hook, _OLDER_NAME.get(hook)):
        if name is None:
            continue
        if name in vars(callback) or getattr(type(callback), name, None) is not getattr(
                Callback, name, None):
            return True
    return False


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
            hook: [getattr(cb, hook) for cb in self.callbacks if has_hook(cb, hook)]
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


_LAMBDA_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
                 "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
                 "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
                 "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
                 "on_predict_batch_end")


class LambdaCallback(Callback):
    """A callback from functions, as Keras's: each argument given replaces that hook.

    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_begin(logs)``,
    ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)`` and
    ``on_train_batch_end(batch, logs)``; the keyword arguments ``on_batch_begin`` and
    ``on_batch_end`` (Keras's older names of the training-batch hooks) and the test and
    predict hooks are taken too. ``logs`` is passed positionally (name it as you like)::

        LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    """

    def __init__(
        self,
        on_epoch_begin: Optional[Callable[..., Any]] = None,
        on_epoch_end: Optional[Callable[..., Any]] = None,
        on_train_begin: Optional[Callable[..., Any]] = None,
        on_train_end: Optional[Callable[..., Any]] = None,
        on_train_batch_begin: Optional[Callable[..., Any]] = None,
        on_train_batch_end: Optional[Callable[..., Any]] = None,
        **kwargs: Optional[Callable[..., Any]],
    ):
        super().__init__()
        unknown = sorted(set(kwargs) - set(_LAMBDA_HOOKS))
        if unknown:
            raise ValueError(
                f"Received unknown keyword arguments {unknown} for LambdaCallback; expected "
                f"hooks among {list(_LAMBDA_HOOKS)}."
            )
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: expected a callable or "
                    f"None, got {type(fn).__name__}."
                )
            setattr(self, name, fn)


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file (Python's ``csv`` module): a header
    ``epoch`` then the log names sorted (with ``val_*`` columns, ``NA`` when a run has no
    validation), as Keras's ``CSVLogger``.

    Args:
        filename: the file's path (a string or path-like).
        separator: the one-character field delimiter.
        append: keep the file's rows and add to them (the header is written only to an empty
            or new file) instead of overwriting it at the start of ``fit``.
    """

    def __init__(self, filename: Any, separator: str = ",", append: bool = False):
        super().__init__()
        try:
            self.filename = os.fspath(filename)
        except TypeError:
            raise ValueError(
                "Received an invalid value for argument `filename`: expected a path (a string "
                f"or path-like), got {type(filename).__name__}."
            ) from None
        if not isinstance(self.filename, str) or not self.filename:
            raise ValueError(
                f"Received an invalid value for argument `filename`: expected a non-empty "
                f"path, got {filename!r}."
            )
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(
                "Received an invalid value for argument `separator`: expected one character "
                f"(not a quote or a line break), got {separator!r}."
            )
        if not isinstance(append, (bool, np.bool_)):
            raise ValueError(
                f"Received an invalid value for argument `append`: expected a bool, got "
                f"{append!r}."
            )
        self.sep = separator
        self.append = bool(append)
        self.keys: Optional[list[str]] = None
        self.writer: Any = None
        self.csv_file: Any = None
        self.append_header = True

    def on_train_begin(self, logs: Logs = None) -> None:
        if self.append:
            with open(self.filename, "a+", newline="", encoding="utf-8") as f:
                f.seek(0)
                self.append_header = not f.readline()
        self._close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="",
                             encoding="utf-8")
        self.keys = None
        self.writer = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.csv_file is None:  # used outside fit: start as fit would
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep)  # "\r\n" lines, as Keras
            if self.append_header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(_csv_value(logs.get(k, "NA")) for k in self.keys)])
        self.csv_file.flush()

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = None
        self.writer = None


def _csv_value(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(map(str, np.asarray(value).ravel().tolist())) + "]"
    return value


def _format_logs(logs: dict[str, Any]) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, (int, float, np.floating)) else
                      f"{k}: {v}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """Prints training progress: with ``fit(verbose=1)`` a progress bar per epoch (the
    batch loss as it goes, the epoch's logs at its end), with ``verbose=2`` one line per
    epoch, with ``verbose=0`` nothing. ``fit`` shows the same by itself; given this callback
    it leaves the printing to it (as Keras does), so a subclass can change what is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.verbose = 1
        self.epochs = 1
        self.target: Optional[int] = None
        self.progbar: Any = None

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = int(params.get("epochs", 1))
        self.target = params.get("steps")

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._close()
        self._epoch = epoch
        if self.verbose == 1:
            self.progbar = tqdm(total=self.target, desc=f"Epoch {epoch + 1}/{self.epochs}",
                                unit="batch", file=sys.stdout, leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self.progbar is not None:
            self.progbar.update(1)
            if logs and "loss" in logs:
                self.progbar.set_postfix_str(f"loss: {float(logs['loss']):.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.progbar is not None:
            self.progbar.set_postfix_str(_format_logs(logs or {}), refresh=False)
            self._close()
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.epochs} - {_format_logs(logs or {})}",
                  file=sys.stdout)

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        if self.progbar is not None:
            self.progbar.close()
            self.progbar = None


class RemoteMonitor(Callback):
    """Posts each epoch's logs (with ``"epoch"``) to an HTTP server, as Keras's: to
    ``root + path``, as the form field `field` holding the logs as JSON, or with
    `send_as_json` as a JSON body. An unreachable server gives a warning, not an error
    (training goes on); each post waits at most 10 seconds. Python's own ``urllib`` sends it
    (Keras needs ``requests``).

    Args:
        root: the server's URL (``http://`` or ``https://``).
        path: the path on it.
        field: the form field of the JSON logs (when not `send_as_json`).
        headers: extra HTTP headers, a dict of strings.
        send_as_json: send the logs as the JSON body (``Content-Type: application/json``).
    """

    TIMEOUT = 10.0

    def __init__(self, root: str = "http://localhost:9000", path: str = "/publish/epoch/end/",
                 field: str = "data", headers: Optional[dict[str, str]] = None,
                 send_as_json: bool = False):
        super().__init__()
        if not isinstance(root, str) or urllib.parse.urlsplit(root).scheme not in (
                "http", "https"):
            raise ValueError(
                "Received an invalid value for argument `root`: expected an http:// or "
                f"https:// URL, got {root!r}."
            )
        for name, value in (("path", path), ("field", field)):
            if not isinstance(value, str):
                raise ValueError(f"Received an invalid value for argument `{name}`: expected "
                                 f"a string, got {value!r}.")
        if headers is not None and not (isinstance(headers, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items())):
            raise ValueError(
                "Received an invalid value for argument `headers`: expected None or a dict of "
                f"strings, got {headers!r}."
            )
        self.root, self.path, self.field = root, path, field
        self.headers = headers
        self.send_as_json = bool(send_as_json)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        send: dict[str, Any] = {"epoch": epoch}
        for key, value in (logs or {}).items():
            send[key] = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
        headers = dict(self.headers or {})
        if self.send_as_json:
            body = json.dumps(send).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.TIMEOUT) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root} ({exc}).",
                          stacklevel=2)


class SwapEMAWeights(Callback):
    """Evaluates with the optimizer's moving average of the weights (an optimizer created
    with ``use_ema=True``), as Keras's: the averages replace the model's weights for each
    validation inside ``fit`` and the weights come back after it; with `swap_on_epoch`, also
    from the end of each epoch to the start of the next (so epoch-end callbacks such as
    ``ModelCheckpoint`` see the averages). At the end of ``fit`` the weights become the
    averages either way. The weights set aside are a copy kept by this callback."""

    def __init__(self, swap_on_epoch: bool = False):
        super().__init__()
        if not isinstance(swap_on_epoch, (bool, np.bool_)):
            raise ValueError(
                f"Received an invalid value for argument `swap_on_epoch`: expected a bool, got "
                f"{swap_on_epoch!r}."
            )
        self.swap_on_epoch = bool(swap_on_epoch)
        self._set_aside: Optional[list[np.ndarray]] = None

    def _swap_in(self) -> None:
        optimizer = self.model.optimizer
        if not getattr(optimizer, "use_ema", False):
            raise ValueError(
                "SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                f"Received: use_ema={getattr(optimizer, 'use_ema', None)}"
            )
        if self._set_aside is not None or optimizer.iterations == 0:
            return  # already in, or no average yet
        targets = self.model._optimizer_targets()[0]
        averages = optimizer.averages(targets)
        self._set_aside = [v.copy() for v in targets]
        for v, average in zip(targets, averages):
            v[...] = average

    def _swap_out(self) -> None:
        if self._set_aside is None:
            return
        for v, kept in zip(self.model._optimizer_targets()[0], self._set_aside):
            v[...] = kept
        self._set_aside = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self._set_aside = None

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.swap_on_epoch:
            self._swap_out()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.swap_on_epoch:
            self._swap_in()

    def on_test_begin(self, logs: Logs = None) -> None:
        self._swap_in()

    def on_test_end(self, logs: Logs = None) -> None:
        if not self.swap_on_epoch:
            self._swap_out()

    def on_train_end(self, logs: Logs = None) -> None:
        self._set_aside = None  # fit has put the averages in place
