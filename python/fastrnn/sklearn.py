"""scikit-learn estimators over a recurrent network: :class:`RNNClassifier`, :class:`RNNRegressor`.

The constructor mirrors the hand-written NumPy ``RecurrentNetwork(n_cells, batch_size,
learning_rate)`` of the classic study notes on IMDB sentiment (one tanh cell layer, a Dense
output, mini-batch gradient descent with backpropagation through the last 10 steps); that class
is, in fastrnn::

    RNNClassifier(n_cells=32, batch_size=32, learning_rate=0.01, optimizer="sgd",
                  truncate_bptt=10, epochs=20).fit(x_train_onehot, y_train, x_val, y_val)

The estimators are ordinary scikit-learn estimators (``get_params``/``set_params``, ``clone``,
``Pipeline``, ``GridSearchCV``, ``cross_val_score``, pickling) and pass scikit-learn's own
``check_estimator`` (see :func:`expected_failed_checks` for the one check they do not).

Inputs
------
* ``X`` of shape ``(n_samples, timesteps, features)``: sequences of feature vectors.
* ``X`` of shape ``(n_samples, timesteps)``: sequences of scalars (read as one feature per
  step), which is what a scikit-learn transformer such as ``StandardScaler`` hands on.

``n_features_in_`` is what scikit-learn calls the number of features of ``X``: ``X.shape[1]``,
i.e. the number of **time steps** in both layouts (the features per step are
``n_step_features_``). ``predict`` requires the same ``(timesteps, features)`` as ``fit``. The
network runs in float32; ``mask_value`` adds a ``Masking`` layer so padded steps (see
:func:`fastrnn.preprocessing.pad_sequences`) are skipped.

Training
--------
Exactly ``epochs`` epochs (``len(losses_) == epochs``) unless ``early_stopping=True``; the
weights, the shuffling and hence the predictions are fixed by ``random_state`` (an int gives
the same model on every refit). Predictions of one sample do not depend on which other samples
are in the same call. ``losses_`` holds the mean training loss of each epoch and, when ``fit``
gets ``X_val, y_val``, ``val_losses_`` the validation loss after each epoch (the attribute is
absent otherwise). The fitted network is ``model_`` (a :class:`fastrnn.Sequential`).

Pickling stores the network as fastrnn's own model archive (JSON + ``.npz`` bytes, read back
with :func:`fastrnn.load_model`, which never executes code), not as pickled Python objects.
Adam's moment estimates are not kept: a fit always starts from new weights anyway.

scikit-learn is an optional dependency: ``pip install "fastrnn[sklearn]"``.
"""

from __future__ import annotations

import numbers
import os
import tempfile
from typing import Any, Optional

import numpy as np

from .timeseries._checks import require as _require

# scikit-learn is optional: a clear error naming the extra when it is missing or older than
# the version tested (1.6), before anything is imported from it
_require("sklearn", "sklearn", "fastrnn.sklearn")
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: E402
from sklearn.preprocessing import LabelEncoder  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils.multiclass import check_classification_targets  # noqa: E402
from sklearn.utils.validation import check_is_fitted, column_or_1d  # noqa: E402
from sklearn.utils.validation import validate_data as _sk_validate_data  # noqa: E402

from . import callbacks as _callbacks  # noqa: E402
from . import layers as _layers  # noqa: E402
from . import optimizers as _optimizers  # noqa: E402
from .layers.core import Input  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402

__all__ = ["RNNClassifier", "RNNRegressor", "expected_failed_checks"]

_CELLS = {"simple_rnn": _layers.SimpleRNN, "lstm": _layers.LSTM, "gru": _layers.GRU}
_OPTIMIZERS = {"adam": _optimizers.Adam, "sgd": _optimizers.SGD,
               "rmsprop": _optimizers.RMSprop}


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """``{check name: reason}`` for the scikit-learn estimator checks that `estimator` is known
    to fail: the ``expected_failed_checks`` argument of scikit-learn's
    ``parametrize_with_checks`` and ``check_estimator``. Both estimators pass every check of
    scikit-learn 1.9 with their defaults, so the list is empty."""
    return {}

# ----------------------------------------------------------------------------- validation
def _invalid(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(
        f"Received an invalid value for argument `{name}`, expected {expected}, got {got!r}."
    )


def _positive_int(name: str, value: Any, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 1:
        raise _invalid(name, "a positive integer" + (" or None" if allow_none else ""), value)
    return int(value)


def _validate(estimator: Any, X: Any, y: Any = "no_validation", reset: bool = True,
              **kwargs: Any) -> Any:
    """scikit-learn's own input validation (sets/checks ``n_features_in_`` and
    ``feature_names_in_``), in float32, 2-D or 3-D; `y` is checked too unless left out."""
    kwargs.update(allow_nd=True, dtype=np.float32)
    if isinstance(y, str) and y == "no_validation":
        kwargs.pop("multi_output", None)
        kwargs.pop("y_numeric", None)
    return _sk_validate_data(estimator, X, y, reset=reset, **kwargs)


def _as_sequences(X: np.ndarray, what: str = "X") -> np.ndarray:
    """``(n, T)`` -> ``(n, T, 1)``; ``(n, T, F)`` as is; anything else is refused."""
    if X.ndim == 2:
        return X[:, :, None]
    if X.ndim != 3:
        raise ValueError(
            f"Received an invalid value for argument `{what}`, expected a 2-D array "
            f"(n_samples, timesteps) or a 3-D array (n_samples, timesteps, features), got "
            f"an array of shape {X.shape}."
        )
    return X


# ----------------------------------------------------------------------------- base
class _RNNEstimator(BaseEstimator):
    """What both estimators share: parameters, the network, training, pickling."""

    def __init__(
        self,
        n_cells: int = 32,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        *,
        cell: str = "simple_rnn",
        epochs: int = 50,
        truncate_bptt: Optional[int] = None,
        optimizer: str = "adam",
        mask_value: Optional[float] = None,
        early_stopping: bool = False,
        n_iter_no_change: int = 5,
        random_state: Any = None,
        verbose: int = 0,
    ):
        self.n_cells = n_cells
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.cell = cell
        self.epochs = epochs
        self.truncate_bptt = truncate_bptt
        self.optimizer = optimizer
        self.mask_value = mask_value
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> dict:
        """The parameters, checked (scikit-learn checks them in ``fit``, not ``__init__``)."""
        if not isinstance(self.cell, str) or self.cell not in _CELLS:
            raise _invalid("cell", "one of 'simple_rnn', 'lstm', 'gru'", self.cell)
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in _OPTIMIZERS:
            raise _invalid("optimizer", "one of 'adam', 'sgd', 'rmsprop'", self.optimizer)
        lr = self.learning_rate
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or \
                not np.isfinite(lr) or lr <= 0:
            raise _invalid("learning_rate", "a positive number", lr)
        if self.mask_value is not None and (
                isinstance(self.mask_value, (bool, np.bool_))
                or not isinstance(self.mask_value, numbers.Real)
                or not np.isfinite(self.mask_value)):
            raise _invalid("mask_value", "None or a finite number", self.mask_value)
        if self.verbose not in (0, 1, 2):
            raise _invalid("verbose", "0, 1 or 2", self.verbose)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise _invalid("early_stopping", "True or False", self.early_stopping)
        return {
            "n_cells": _positive_int("n_cells", self.n_cells),
            "batch_size": _positive_int("batch_size", self.batch_size),
            "epochs": _positive_int("epochs", self.epochs),
            "truncate_bptt": _positive_int("truncate_bptt", self.truncate_bptt, True),
            "n_iter_no_change": _positive_int("n_iter_no_change", self.n_iter_no_change),
        }

    # ------------------------------------------------------------------ the network
    def _build(self, params: dict, n_outputs: int, seed: int) -> Sequential:
        T, F = self.input_shape_
        stack: list = []
        if self.mask_value is not None:
            stack.append(_layers.Masking(float(self.mask_value), input_shape=(T, F)))
            stack.append(_CELLS[self.cell](params["n_cells"]))
        else:
            stack.append(_CELLS[self.cell](params["n_cells"], input_shape=(T, F)))
        stack.append(_layers.Dense(n_outputs))
        model = Sequential(stack, seed=seed)
        model.compile(
            optimizer=_OPTIMIZERS[self.optimizer.lower()](learning_rate=float(self.learning_rate)),
            loss=self._loss(n_outputs))
        return model

    def _loss(self, n_outputs: int) -> str:
        raise NotImplementedError

    def _encode_targets(self, y: Any, fitting: bool) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, X: Any, y: Any, X_val: Any, y_val: Any) -> _RNNEstimator:
        params = self._check_params()
        if (X_val is None) != (y_val is None):
            raise ValueError("Pass both `X_val` and `y_val`, or neither.")
        X, y = _validate(self, X, y, reset=True, **self._y_checks())
        X = _as_sequences(X)
        self.input_shape_ = (int(X.shape[1]), int(X.shape[2]))
        self.n_step_features_ = int(X.shape[2])
        targets = self._encode_targets(y, fitting=True)
        validation = None
        if X_val is not None:
            validation = (self._sequences(X_val, "X_val"),
                          self._encode_targets(self._validate_y_val(y_val), fitting=False))
            if validation[0].shape[0] != validation[1].shape[0]:
                raise ValueError(
                    f"`X_val` and `y_val` have different numbers of samples: "
                    f"{validation[0].shape[0]} and {validation[1].shape[0]}.")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model = self._build(params, self._n_outputs(targets), seed)
        cbs = []
        if self.early_stopping:
            cbs.append(_callbacks.EarlyStopping(
                monitor="val_loss" if validation is not None else "loss",
                patience=params["n_iter_no_change"], restore_best_weights=True))
        history = model.fit(
            X, targets, batch_size=params["batch_size"], epochs=params["epochs"],
            verbose=self.verbose, callbacks=cbs, validation_data=validation,
            truncate_bptt=params["truncate_bptt"])
        if model.stop_reason:  # a non-finite loss (early stopping leaves it None)
            raise ValueError(
                f"Training stopped: {model.stop_reason} (try a smaller `learning_rate` or "
                "scaled inputs and targets).")
        self.losses_ = [float(v) for v in history.history["loss"]]
        if validation is not None:
            self.val_losses_ = [float(v) for v in history.history["val_loss"]]
        elif hasattr(self, "val_losses_"):
            del self.val_losses_
        self.model_ = model
        self._attach_inference()
        return self

    def _y_checks(self) -> dict:
        return {}

    def _validate_y_val(self, y_val: Any) -> np.ndarray:
        return np.asarray(y_val)

    def _n_outputs(self, targets: np.ndarray) -> int:
        raise NotImplementedError

    def _sequences(self, X: Any, what: str = "X") -> np.ndarray:
        """`X` checked against what ``fit`` saw, as float32 ``(n, T, F)``."""
        X = _as_sequences(_validate(self, X, reset=False), what)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"`{what}` has sequences of shape {X.shape[1:]} (timesteps, features), but "
                f"{type(self).__name__} was fitted on {self.input_shape_}.")
        return X

    def _attach_inference(self) -> None:
        """The recurrent part of ``model_`` as its own model (sharing its layers) and the
        output layer's weights in float64: see :meth:`_forward`."""
        inputs = Input(shape=self.input_shape_)
        x = inputs
        for layer in self.model_.layers[:-1]:
            x = layer(x)
        self._encoder = Model(inputs, x, seed=0)  # a seed of its own: fastrnn.set_seed's
        # stream of model seeds stays as it was (the encoder never trains, so it is unused)
        self._head = [np.asarray(w, dtype=np.float64)
                      for w in self.model_.layers[-1].get_weights()]

    def _forward(self, X: Any) -> np.ndarray:
        """The network's outputs (float64 logits or predictions) for `X`: ``(n, n_outputs)``.

        A sample's output never depends on the other samples of the call, their order, the
        thread count or the batch size, on every kernel set, by construction: each sample goes
        through the network alone, as a batch of one ``(1, timesteps, features)``, so every
        product it takes part in has the same shape for every sample and call (a BLAS
        product's rounding depends on its shape and on a row's place in it: OpenBLAS picks
        kernels and blocking by shape, and its AVX2 kernels round a row differently with the
        row count). The kernels split a batch of one over threads only in layers of over
        a thousand units (by unit ranges), so below that the thread count does not enter
        either; the output layer is applied in float64 to that one row. This costs one network call
        per sample; ``model_.predict`` is the batched (faster, not batch-invariant) path.
        """
        check_is_fitted(self, "model_")
        X = self._sequences(X)
        kernel, bias = self._head
        out = np.empty((X.shape[0], kernel.shape[1]), dtype=np.float64)
        for i in range(X.shape[0]):
            h = self._encoder.predict(X[i:i + 1], batch_size=1)
            out[i] = (h.astype(np.float64) @ kernel)[0] + bias
        return out

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else \
            self.__dict__.copy()
        state = dict(state)
        model = state.pop("model_", None)
        state.pop("_encoder", None)
        state.pop("_head", None)
        if model is not None:
            state["_model_archive"] = _model_to_bytes(model)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        archive = state.pop("_model_archive", None)
        if archive is not None:
            state["model_"] = _model_from_bytes(archive)
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:  # pragma: no cover
            self.__dict__.update(state)
        if archive is not None:
            self._attach_inference()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


def _model_to_bytes(model: Sequential) -> bytes:
    """The model as fastrnn's archive bytes (what ``model.save`` writes)."""
    with tempfile.TemporaryDirectory(prefix="fastrnn-sk-") as folder:
        path = os.path.join(folder, "model.fastrnn")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data: Any) -> Sequential:
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(
            f"Cannot unpickle the estimator: its model archive is {type(data).__name__}, "
            "expected bytes.")
    with tempfile.TemporaryDirectory(prefix="fastrnn-sk-") as folder:
        path = os.path.join(folder, "model.fastrnn")
        with open(path, "wb") as f:
            f.write(bytes(data))
        return load_model(path)


# ----------------------------------------------------------------------------- classifier
class RNNClassifier(ClassifierMixin, _RNNEstimator):
    """A recurrent network classifier: ``cell(n_cells)`` over the sequence, then a Dense
    layer of logits (one for two classes, trained with sigmoid cross-entropy; one per class
    otherwise, with softmax cross-entropy).

    Args:
        n_cells: units of the recurrent layer (the seed's ``n_cells``).
        batch_size: samples per gradient step.
        learning_rate: the optimizer's step size (0.01 suits Adam; the seed's plain gradient
            descent used 0.01 on IMDB one-hot sequences).
        cell: ``"simple_rnn"`` (default; the seed's tanh cell), ``"lstm"`` or ``"gru"``.
        epochs: passes over the data (default 50); exactly this many unless
            ``early_stopping``.
        truncate_bptt: None (default: full backpropagation through time) or k (about k steps;
            the seed's ``RecurrentNetwork`` backpropagates through the last 10).
        optimizer: ``"adam"`` (default), ``"sgd"`` (plain mini-batch gradient descent, the
            seed's) or ``"rmsprop"``.
        mask_value: None, or the value whose steps (all features equal to it) are padding and
            skipped (a ``Masking`` layer).
        early_stopping: stop when the validation loss (the training loss without ``X_val``)
            has not improved for ``n_iter_no_change`` epochs, keeping the best epoch's weights.
        n_iter_no_change: the patience of ``early_stopping``.
        random_state: None, an int or a ``RandomState``: the initial weights and the shuffling.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch.

    Attributes (after ``fit``): ``classes_``, ``n_features_in_`` (time steps, see the module
    docstring), ``n_step_features_``, ``input_shape_`` ``(timesteps, features)``,
    ``losses_``, ``val_losses_`` (only with validation data), ``model_``.
    """

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> RNNClassifier:
        """Trains a new network on `X` ``(n, T)`` or ``(n, T, F)`` and labels `y` ``(n,)`` (any
        labels, e.g. strings); ``X_val, y_val`` (optional) are scored after every epoch."""
        return self._fit(X, y, X_val, y_val)

    def _y_checks(self) -> dict:
        return {}

    def _encode_targets(self, y: Any, fitting: bool) -> np.ndarray:
        if fitting:
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            self._label_encoder = LabelEncoder().fit(y)
            self.classes_ = self._label_encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in `y`; got "
                    f"1 class ({self.classes_[0]!r}).")
            codes = self._label_encoder.transform(y)
        else:
            y = column_or_1d(y)
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            if unknown.size:
                raise ValueError(
                    f"`y_val` has labels not seen in `y`: {unknown[:5].tolist()}.")
            codes = self._label_encoder.transform(y)
        if len(self.classes_) == 2:
            return codes.astype(np.float32).reshape(-1, 1)
        return codes.astype(np.int64)

    def _n_outputs(self, targets: np.ndarray) -> int:
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _loss(self, n_outputs: int) -> Any:
        from .losses import BinaryCrossentropy, SparseCategoricalCrossentropy
        if n_outputs == 1:
            return BinaryCrossentropy(from_logits=True)
        return SparseCategoricalCrossentropy(from_logits=True)

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: ``(n,)`` for two classes (positive means ``classes_[1]``), else
        ``(n, n_classes)``."""
        z = self._forward(X)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities ``(n, n_classes)``, computed stably from the logits."""
        z = self._forward(X)
        if z.shape[1] == 1:
            z = np.concatenate([np.zeros_like(z), z], axis=1)  # sigmoid(z) = softmax([0, z])
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, ``(n,)`` with the labels of ``classes_``."""
        z = self.decision_function(X)
        codes = (z > 0).astype(np.int64) if z.ndim == 1 else np.argmax(z, axis=1)
        return self.classes_[codes]


# ----------------------------------------------------------------------------- regressor
class RNNRegressor(RegressorMixin, _RNNEstimator):
    """A recurrent network regressor: ``cell(n_cells)`` over the sequence, then a linear Dense
    layer with one unit per target, trained on the mean squared error.

    Targets are used as given: scale them (e.g. ``TransformedTargetRegressor`` with a
    ``StandardScaler``) when they are far from unit size. The arguments and attributes are
    those of :class:`RNNClassifier` (without ``classes_``); `y` may be ``(n,)`` or
    ``(n, n_targets)``.
    """

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> RNNRegressor:
        """Trains a new network on `X` ``(n, T)`` or ``(n, T, F)`` and targets `y` ``(n,)`` or
        ``(n, n_targets)``; ``X_val, y_val`` (optional) are scored after every epoch."""
        return self._fit(X, y, X_val, y_val)

    def _y_checks(self) -> dict:
        return {"multi_output": True, "y_numeric": True}

    def _validate_y_val(self, y_val: Any) -> np.ndarray:
        y_val = np.asarray(y_val, dtype=np.float32)
        if not np.isfinite(y_val).all():
            raise ValueError("`y_val` contains NaN or infinity.")
        return y_val

    def _encode_targets(self, y: Any, fitting: bool) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        if fitting:
            self._y_1d = y.ndim == 1
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2:
            raise ValueError(f"Expected `y` of shape (n,) or (n, n_targets), got {y.shape}.")
        if not fitting and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"`y_val` has {y.shape[1]} targets, but `y` had {self.n_outputs_}.")
        if fitting:
            self.n_outputs_ = int(y.shape[1])
        return y

    def _n_outputs(self, targets: np.ndarray) -> int:
        return int(targets.shape[1])

    def _loss(self, n_outputs: int) -> str:
        return "mse"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: ``(n,)`` when `y` was 1-D, else ``(n, n_targets)``."""
        z = self._forward(X)
        return z[:, 0] if self._y_1d else z

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

