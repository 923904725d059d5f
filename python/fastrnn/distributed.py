"""Data-parallel ``fit`` over MPI (mpi4py): the same script on one process or on many.

Start the script under MPI and call :func:`init` once, before ``fit``::

    # train.py, run as: mpiexec -n 4 python train.py
    import fastrnn, fastrnn.distributed
    fastrnn.distributed.init()
    fastrnn.set_seed(0)
    model = ...  # built and compiled as usual
    model.fit(x, y, batch_size=32, epochs=10, validation_data=(x_val, y_val),
              callbacks=[fastrnn.callbacks.ModelCheckpoint("best.fastrnn")])

Each of the N processes ("ranks") then trains on its rows of every global batch of
``batch_size * N`` samples, and the gradients of the N parts are averaged before every update,
so the weights stay identical on all ranks and the run is the single-process ``fit`` with
``batch_size * N``, up to the rounding of the summation order.

What ``fit`` does once :func:`init` ran under ``mpiexec -n N`` (N > 1):

* Before the first batch the ranks compare what they were given: the model's config and
  weight shapes, the compile config, the fit arguments (``batch_size``, ``epochs``,
  ``shuffle``, ``initial_epoch``), the arrays' shapes and a fingerprint of their rows (for a
  dataset, the first batch's shapes). Any difference raises :class:`MismatchError` on every
  rank (nothing hangs). Then rank 0's weights, shuffling stream and (if it differs or a
  ``BackupAndRestore`` resumed on rank 0) optimizer state are broadcast to all ranks.
* Arrays: every rank holds the same ``x``/``y``. The epoch's order is the permutation a
  single-process ``fit`` of this model draws (its shuffling stream, which :func:`init` leaves
  alone: it draws no fastrnn seed). Global batch k is ``order[k*B*N : (k+1)*B*N]``; rank r takes
  its ``r``-th block of ``B`` rows. The last, shorter global batch of L rows is split evenly:
  rank r takes rows ``[r*L//N, (r+1)*L//N)`` (a rank may get none when L < N).
* Each rank computes its part's mean gradient g_r over its m_r rows; one reduction of the flat
  gradient buffer (with the loss and row count appended) gives ``sum(m_r * g_r) / sum(m_r)``,
  the global batch's mean gradient, also for a ragged last batch. With 2 ranks this is one
  ``Allreduce`` (a + b == b + a exactly, so both ranks hold the same bits); with more it is
  ``Reduce`` to rank 0 then ``Bcast``, as MPI does not promise an ``Allreduce`` gives every
  rank the same bits. (Non-blocking calls, so a rank waits at most ``timeout`` seconds.)
* Datasets (iterables of (x, y) batches): each rank iterates its own, e.g. its shard of the
  data (see :func:`shard_range`). An epoch ends when the first rank runs out of batches.
* Loss and metrics: each rank's epoch logs are averaged, weighted by its rows (training) and
  its validation rows. Means over samples (mse, mae, accuracy) come out exactly as on one
  process; a metric that is not a mean over samples (e.g. a root of a mean) becomes the
  row-weighted mean of the ranks' values. Validation arrays are split evenly over the ranks
  (each evaluates its part) when there are at least N rows.
* Callbacks: all run on every rank except those that write (``ModelCheckpoint``,
  ``BackupAndRestore`` and any callback with ``rank_zero_only = True``) and the progress
  output (``verbose``), which act on rank 0 only. The logs every callback sees are the same
  bits on every rank, so ``EarlyStopping`` and ``ReduceLROnPlateau`` decide the same
  everywhere; a stop decided on any rank stops all of them.
* Dropout: rank r > 0 draws its masks from its layers' streams jumped ahead r times (``jumped``)
  (independent masks per rank; none of fastrnn's seeds consumed).
* An exception inside ``fit`` on one rank (a failing callback, MPI errors, Ctrl-C) prints its
  traceback and calls ``MPI_Abort``, which ends every rank of the job instead of leaving them
  waiting in a collective; so does an uncaught exception anywhere after :func:`init`. A killed
  rank ends the job through ``mpiexec``; a rank that waits in one of fit's collectives longer
  than :func:`init`'s ``timeout`` (another rank hangs, or never called ``fit``) aborts it.

``evaluate`` and ``predict`` are not distributed: every rank runs them whole.

Install with ``pip install "fastrnn[mpi]"`` (mpi4py and the ``mpich`` wheel, which brings
``mpiexec``); any other MPI that mpi4py is built against works too.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from typing import Any, Optional

import numpy as np

from . import callbacks as callbacks_module
from .models import trainer as trainer_module

__all__ = [
    "MismatchError",
    "init",
    "is_initialized",
    "rank",
    "shard_range",
    "shutdown",
    "size",
]

_INSTALL_HINT = 'pip install "fastrnn[mpi]"'
_state: Optional[_DataParallel] = None

# Rows of each array whose bytes go into the data fingerprint (spread over the array).
_FINGERPRINT_ROWS = 16


class MismatchError(ValueError):
    """The ranks of a data-parallel ``fit`` were given different models, data shapes or fit
    arguments; raised on every rank together (so it does not abort the job)."""


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "fastrnn.distributed needs mpi4py and an MPI library, which are not installed: "
            f"{_INSTALL_HINT} (mpi4py and the mpich wheel, which brings mpiexec), then start "
            "the script with `mpiexec -n N python script.py`."
        ) from exc
    except (RuntimeError, OSError) as exc:  # mpi4py found no MPI library to load
        raise ImportError(
            f"fastrnn.distributed: mpi4py is installed but cannot load an MPI library ({exc}); "
            f"{_INSTALL_HINT} also installs one (the mpich wheel)."
        ) from exc
    return MPI


def init(comm: Any = None, timeout: Optional[float] = 600.0) -> None:
    """Makes every later ``fit`` in this process data-parallel over the MPI processes.

    Args:
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``); fastrnn trains on a
            duplicate of it, so its own messages never mix with the script's.
        timeout: seconds a rank waits in one of fit's collectives (the start of fit, a
            batch's reduction, the end of an epoch) for the others before it aborts the job
            (a rank that hangs, or never calls fit); None waits forever.

    Started without ``mpiexec`` (one process), ``fit`` is unchanged. Draws nothing from
    fastrnn's seed sequence, so ``set_seed`` before or after it builds the same models.
    Calling it again is a no-op; :func:`shutdown` undoes it.

    Raises:
        ImportError: mpi4py (or MPI) is not installed; the message names the extra.
    """
    global _state
    MPI = _mpi()
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(
            timeout, bool) or not timeout > 0 or not np.isfinite(timeout)):
        raise ValueError(
            "Received an invalid value for argument `timeout`: expected None or a positive "
            f"number of seconds, got {timeout!r}."
        )
    if _state is not None:
        return
    base = MPI.COMM_WORLD if comm is None else comm
    if not isinstance(base, MPI.Comm):
        raise TypeError(
            "Received an invalid value for argument `comm`: expected an mpi4py communicator, "
            f"got {type(comm).__name__}."
        )
    own = base.Dup()
    own.Set_errhandler(MPI.ERRORS_RETURN)  # MPI errors raise (then fit aborts the job)
    _state = _DataParallel(MPI, own, None if timeout is None else float(timeout))
    if own.Get_size() > 1:
        trainer_module.set_data_parallel(_state)
        _state.install_excepthook()


def shutdown() -> None:
    """Undoes :func:`init`: later ``fit`` calls train this process alone again."""
    global _state
    if _state is None:
        return
    trainer_module.set_data_parallel(None)
    _state.uninstall_excepthook()
    _state.comm.Free()
    _state = None


def is_initialized() -> bool:
    """Whether :func:`init` ran (and :func:`shutdown` did not)."""
    return _state is not None


def rank() -> int:
    """This process's rank (0 when :func:`init` has not run)."""
    return 0 if _state is None else _state.rank


def size() -> int:
    """The number of processes training together (1 when :func:`init` has not run)."""
    return 1 if _state is None else _state.size


def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous part ``[start, stop)`` of `n` items (parts differ by at most
    one item; rank r gets ``[r*n//N, (r+1)*n//N)``).

    For data that does not fit one machine, each rank reads only its part, e.g. windows of
    its stretch of a long series::

        start, stop = fastrnn.distributed.shard_range(len(series))
        ds = fastrnn.timeseries.timeseries_dataset_from_array(
            series[start:stop], targets[start:stop], sequence_length=120, batch_size=64,
            shuffle=True, seed=fastrnn.distributed.rank())

    or its share of many series (``series_list[start:stop]`` with ``n = len(series_list)``).
    Give every rank about the same number of batches: an epoch ends when the first runs out.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(
            "Received an invalid value for argument `n`: expected a non-negative integer, "
            f"got {n!r}."
        )
    r, N = rank(), size()
    return r * int(n) // N, (r + 1) * int(n) // N


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr).encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:16]


def _without_names(config: Any) -> Any:
    """`config` without its ``name`` entries (automatic names count models and layers built
    so far, which may differ between ranks without changing what trains)."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def _fingerprint(arrays: list) -> str:
    """A hash of a few rows spread over each array (equal data gives equal hashes)."""
    h = hashlib.sha256()
    for a in arrays:
        n = a.shape[0]
        rows = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_ROWS)).astype(np.int64))
        h.update(np.ascontiguousarray(a[rows]).tobytes())
    return h.hexdigest()[:16]


class _DataParallel:
    """The hook ``fit`` calls (see ``fastrnn.models.trainer``); one per :func:`init`."""

    # Callbacks that write files: on rank 0 only.
    WRITERS = (callbacks_module.ModelCheckpoint, callbacks_module.BackupAndRestore)

    def __init__(self, MPI: Any, comm: Any, timeout: Optional[float] = None) -> None:
        self.MPI = MPI
        self.comm = comm
        self.timeout = timeout
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._buffer: Optional[np.ndarray] = None  # gradient | loss * rows | rows
        self._check_batch = False  # the first batch of a fit over datasets is compared
        self._rows = 0             # training rows this rank saw this epoch
        self._val_rows = 1.0       # weight of this rank's validation logs
        self._resumed = False      # a BackupAndRestore resumed this fit on rank 0
        self._previous_hook: Any = None

    # ------------------------------------------------------------------ collectives
    def _wait(self, request: Any, what: str) -> None:
        """Completes a non-blocking collective, or aborts the job after ``timeout`` s."""
        if self.timeout is None:
            request.Wait()
            return
        if request.Test():
            return
        deadline = time.monotonic() + self.timeout
        while not request.Test():
            if time.monotonic() > deadline:
                sys.stderr.write(
                    f"fastrnn.distributed: rank {self.rank} of {self.size} waited "
                    f"{self.timeout:g} s for the other ranks at {what}; one of them hangs or "
                    "never called fit. Aborting the job.\n")
                sys.stderr.flush()
                self.comm.Abort(1)
            time.sleep(0)  # lets another process (or thread) have the core

    def _sum(self, buf: np.ndarray, what: str = "a batch's gradient reduction") -> None:
        """Sums `buf` over the ranks in place, with the same bits on every rank."""
        MPI = self.MPI
        if self.size == 2:  # each element is a + b on both ranks: the same bits
            self._wait(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), what)
            return
        if self.rank == 0:
            self._wait(self.comm.Ireduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=0), what)
        else:
            self._wait(self.comm.Ireduce(buf, None, op=MPI.SUM, root=0), what)
        self._wait(self.comm.Ibcast(buf, root=0), what)

    def _max(self, value: int, what: str) -> int:
        buf = np.array([value], dtype=np.int64)
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX), what)
        return int(buf[0])

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank."""
        return bool(self._max(int(bool(flag)), "the end of a batch or epoch"))

    def _agree(self, facts: dict, what: str) -> None:
        """Raises MismatchError on every rank unless every rank has rank 0's `facts`."""
        self._wait(self.comm.Ibarrier(), f"the start of fit ({what})")
        everyone = self.comm.allgather(facts)
        for r, theirs in enumerate(everyone):
            for key, value in everyone[0].items():
                if theirs.get(key) != value:
                    raise MismatchError(
                        f"fastrnn.distributed: the ranks of this fit disagree on {key} "
                        f"{what}: rank 0 has {value!r}, rank {r} has {theirs.get(key)!r}. "
                        "Every rank must build and compile the same model and call fit with "
                        "the same arguments and data shapes."
                    )

    # ------------------------------------------------------------------ fit's hooks
    def rank_callbacks(self, cbs: list, verbose: int) -> tuple[list, int]:
        """The callbacks that act on this rank, and its verbosity (writers: rank 0 only)."""
        if self.rank == 0:
            return cbs, verbose
        keep = [cb for cb in cbs if not isinstance(cb, self.WRITERS)
                and not getattr(cb, "rank_zero_only", False)]
        return keep, 0

    def begin_fit(self, model: Any, train: Any, val: Any, args: dict) -> Any:
        """Checks the ranks agree, copies rank 0's training state to all, splits the
        validation arrays; returns this rank's validation data."""
        facts = {
            "the model's config (a hash of get_config() without names)":
                _digest(_without_names(model.get_config())),
            "the dtype": str(model._dtype),
            "the compile config (a hash)": _digest(model.get_compile_config()),
            **{f"fit's `{k}`": v for k, v in args.items()},
        }
        if train is not None:
            xs, ys = train[0], train[1]  # (and the sample weights, or None)
            facts["the training arrays' shapes"] = [(a.shape, str(a.dtype)) for a in xs + ys]
            facts["the training arrays' contents (a fingerprint of some rows)"] = \
                _fingerprint(xs + ys)
        if val is not None and not trainer_module.is_dataset(val):
            facts["the validation arrays' shapes"] = [a.shape[1:] for a in val[0] + val[1]]
        self._agree(facts, "at the start of fit")
        # where a BackupAndRestore (on rank 0 only) resumed the run: every rank goes on there
        model._resume_epoch = self.comm.bcast(model._resume_epoch, root=0)
        self._resumed = model._resume_epoch is not None
        if train is not None and model._stateful() and \
                train[0][0].shape[0] % (args["batch_size"] * self.size):
            raise MismatchError(
                f"Model `{model.name}` has stateful layers, which need every global batch "
                f"full: the number of samples ({train[0][0].shape[0]}) must be a multiple of "
                f"batch_size * ranks ({args['batch_size']} * {self.size})."
            )
        # A model first built by a dataset's first batch is set up there.
        self._check_batch = bool(args["dataset"]) or not model.built
        if not self._check_batch:
            self._start(model)
        self._rows = 0
        self._val_rows = 1.0
        if val is None or trainer_module.is_dataset(val):
            return val
        xs, ys, sws = val  # (sws: the validation sample weights per output, or None)
        n = xs[0].shape[0]
        if n < self.size:  # too few to split: every rank evaluates them all
            self._val_rows = float(n)
            return val
        lo, hi = self.rank * n // self.size, (self.rank + 1) * n // self.size
        self._val_rows = float(hi - lo)
        return ([a[lo:hi] for a in xs], [a[lo:hi] for a in ys],
                None if sws is None else [None if a is None else a[lo:hi] for a in sws])

    def _start(self, model: Any) -> None:
        """Checks the weights' shapes agree, then copies rank 0's training state to all."""
        self._agree({"the weight shapes": [tuple(w.shape) for w in model.weights]},
                    "at the first batch")
        self._buffer = np.empty(model._grad_buffer.size + 2, dtype=model._grad_buffer.dtype)
        self.comm.Bcast(model._param_buffer, root=0)
        gens = model._rng_generators()[:-1]  # shuffling, then each layer's stream
        states = self.comm.bcast([None if g is None else g.bit_generator.state for g in gens],
                                 root=0)
        for g, st in zip(gens, states):
            if g is not None and st is not None:
                g.bit_generator.state = st
        if self.rank:  # independent dropout masks per rank
            for g in gens[1:]:
                if g is not None and hasattr(g.bit_generator, "jumped"):
                    g.bit_generator.state = g.bit_generator.jumped(self.rank).state
        opt = model.optimizer
        steps = self.comm.allgather(int(opt.iterations))
        if self._resumed or len(set(steps)) > 1:  # e.g. BackupAndRestore restored rank 0
            state = self.comm.bcast(opt.get_state() if self.rank == 0 else None, root=0)
            if self.rank:
                opt.set_state(state, model._optimizer_targets()[0])

    def shard(self, order: Optional[np.ndarray], n: int,
              batch_size: int) -> tuple[np.ndarray, list]:
        """This rank's rows of the epoch's global batches, in order, and where each of its
        batches starts (one batch, possibly empty, per global batch)."""
        if order is None:
            order = np.arange(n)
        span = batch_size * self.size
        parts, bounds, at = [], [0], 0
        for start in range(0, n, span):
            rows = min(span, n - start)
            if rows == span:
                lo, hi = self.rank * batch_size, (self.rank + 1) * batch_size
            else:  # the last, shorter global batch: split evenly
                lo, hi = self.rank * rows // self.size, (self.rank + 1) * rows // self.size
            parts.append(order[start + lo:start + hi])
            at += hi - lo
            bounds.append(at)
        mine = np.concatenate(parts) if parts else order[:0]
        return mine, bounds

    def batches(self, dataset: Any) -> Any:
        """`dataset`'s batches while every rank still has one."""
        for batch in _with_end(dataset):
            if self._max(int(batch is _END), "the next batch of the dataset"):
                return
            yield batch

    def forward_backward(self, model: Any, xb: list, yb: list,
                         swb: Optional[list] = None) -> tuple[float, list]:
        """This rank's part of a global batch forward and backward (`swb`: its sample
        weights per output, or None), then the global mean gradient in
        ``model._grad_buffer``; returns the global batch's loss (with the activity
        regularizers' penalties) and this part's outputs."""
        if self._check_batch:
            self._check_batch = False
            self._agree({"the batch shapes": [(a.shape[1:], str(a.dtype)) for a in xb + yb]},
                        "at the first batch")
            self._start(model)
        buf = self._buffer
        grad = model._grad_buffer
        P = grad.size
        m = xb[0].shape[0]
        if m:
            outs = model._run_forward(xb, training=True)
            loss, ds = model._loss_and_grads(yb, outs, model._output_masks, swb)
            if model._activity_outputs:
                loss += model._activity_loss
            model._run_backward(ds)
            np.multiply(grad, m, out=buf[:P])
            buf[P] = loss * m
        else:  # no rows of a short last global batch
            outs = [np.empty((0, *[1] * len(s)), dtype=model._dtype)
                    for s in model._output_shapes]
            buf[:P] = 0
            buf[P] = 0
        buf[P + 1] = m
        self._sum(buf)
        rows = buf[P + 1]
        np.divide(buf[:P], rows, out=grad)
        self._rows += m
        return float(buf[P] / rows), outs

    def average_logs(self, logs: dict) -> dict:
        """The epoch's logs averaged over the ranks (the same bits on every rank), weighted
        by each rank's training rows (validation rows for ``val_*``)."""
        keys = list(logs)
        weights = np.array([self._val_rows if k.startswith("val_") else self._rows
                            for k in keys], dtype=np.float64)
        buf = np.concatenate([np.array([logs[k] for k in keys], dtype=np.float64) * weights,
                              weights])
        self._sum(buf, "the end of an epoch")
        self._rows = 0
        k = len(keys)
        totals, counts = buf[:k], buf[k:]
        return {key: float(t / c) if c else float("nan")
                for key, t, c in zip(keys, totals, counts)}

    def failed(self, exc: BaseException) -> None:
        """An exception left ``fit``: unless every rank raised it together, end the job."""
        if isinstance(exc, MismatchError):
            return
        self._abort(exc)

    # ------------------------------------------------------------------ ending the job
    def _abort(self, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(f"fastrnn.distributed: rank {self.rank} of {self.size} failed, "
                         f"aborting the job:\n{text}")
        sys.stderr.flush()
        self.comm.Abort(1)

    def install_excepthook(self) -> None:
        self._previous_hook = sys.excepthook

        def hook(kind: Any, value: Any, tb: Any) -> None:
            self._previous_hook(kind, value, tb)
            sys.stderr.flush()
            self.comm.Abort(1)

        sys.excepthook = hook

    def uninstall_excepthook(self) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            self._previous_hook = None


_END = object()


def _with_end(iterable: Any) -> Any:
    yield from iterable
    while True:  # a rank out of batches keeps answering until all are
        yield _END
