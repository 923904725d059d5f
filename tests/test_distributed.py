"""fastrnn.distributed: data-parallel fit over MPI, launched with `mpiexec -n 2` (needs the
`mpi` extra: mpi4py and an MPI with mpiexec) and its rules checked without MPI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import distributed

HERE = Path(__file__).resolve().parent
# A launch normally takes 2-4 s here (two interpreters importing fastrnn and mpi4py); the bound
# only has to turn a hang into a failure.
LAUNCH_TIMEOUT = 120
BATCH = 8      # rows per rank and batch; the single-process reference uses BATCH * 2
EPOCHS = 3
N_TRAIN = 101  # 101 = 6 * 16 + 5: the last global batch splits 2 / 3 over the ranks
N_LONELY = 97  # 97 = 6 * 16 + 1: the last global batch has one row, so rank 0 gets none
N_VAL = 33     # split 16 / 17 over the two ranks
LEARNING_RATE = 0.05


# ----------------------------------------------------------------------------- shared setup
# The MPI worker imports these, so both sides build exactly the same model and data.
def make_data(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 7, 3)).astype(np.float32)
    y = (x[:, -3:, :1].sum(axis=1) + 0.1 * g.normal(size=(n, 1))).astype(np.float32)
    return x, y


def make_model(units: int = 8) -> fastrnn.Sequential:
    fastrnn.set_seed(0)
    m = fastrnn.Sequential([fastrnn.layers.LSTM(units, input_shape=[None, 3]),
                            fastrnn.layers.Dense(1)])
    m.compile(optimizer=fastrnn.optimizers.SGD(learning_rate=LEARNING_RATE), loss="mse",
              metrics=["mae"])
    return m


def early_stopping() -> fastrnn.callbacks.EarlyStopping:
    # no epoch improves by 10: the second epoch ends training
    return fastrnn.callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1)


class Batches:
    """Rank r's own dataset of (x, y) batches (rank 1 has one more: the epoch ends where
    rank 0's does)."""

    def __init__(self, rank: int):
        self.x, self.y = make_data(40, seed=10 + rank)
        self.stop = 24 + 8 * rank

    def __iter__(self):
        return ((self.x[i:i + 8], self.y[i:i + 8]) for i in range(0, self.stop, 8))


WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    import fastrnn
    from fastrnn import distributed as D
    from test_distributed import (BATCH, EPOCHS, N_LONELY, N_TRAIN, N_VAL, Batches,
                                  early_stopping, make_data, make_model)
    out = sys.argv[1]
    D.init()
    fastrnn.set_num_threads(1)
    r = D.rank()
    report = {"rank": r, "size": D.size()}
    x, y = make_data(N_TRAIN)

    # mismatches: a model of other units, data of another length of sequence
    for what, model, xr in (("config", make_model(8 + r), x),
                            ("shape", make_model(), x if r == 0 else x[:, :5])):
        try:
            model.fit(xr, y, batch_size=BATCH, epochs=1, verbose=0)
            report[what] = "no error"
        except D.MismatchError as exc:
            report[what] = str(exc)

    odd = Batches(r)
    odd.x = odd.x if r == 0 else odd.x[:, :5]
    try:
        make_model().fit(odd, epochs=1, verbose=0)
        report["batch"] = "no error"
    except D.MismatchError as exc:
        report["batch"] = str(exc)

    class Count(fastrnn.callbacks.Callback):
        rank_zero_only = True
        calls = 0
        def on_epoch_end(self, epoch, logs=None):
            Count.calls += 1

    if r == 0:  # automatic names now differ between the ranks, which must not matter
        fastrnn.Sequential([fastrnn.layers.LSTM(2, input_shape=[None, 1])])
    model = make_model()
    ckpt = f"{out}/ckpt{r}.fastrnn"
    history = model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, validation_data=make_data(N_VAL, 2),
        callbacks=[Count(), early_stopping(), fastrnn.callbacks.ModelCheckpoint(ckpt)])
    report["history"] = history.history
    report["count"] = Count.calls
    np.savez(f"{out}/arrays_{r}.npz", *model.get_weights())

    model = make_model()
    x, y = make_data(N_LONELY)
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    np.savez(f"{out}/lonely_{r}.npz", *model.get_weights())

    model = make_model()
    model.fit(Batches(r), epochs=2, verbose=0)
    np.savez(f"{out}/dataset_{r}.npz", *model.get_weights())

    fastrnn.set_seed(0)
    model = fastrnn.Sequential([fastrnn.layers.LSTM(8, input_shape=[None, 3]),
                                fastrnn.layers.Dropout(0.5), fastrnn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    # full batches only: without their own streams both ranks would draw alike
    model.fit(x[:96], y[:96], batch_size=BATCH, epochs=1, verbose=0)
    np.savez(f"{out}/dropout_{r}.npz", *model.get_weights())
    report["dropout_stream"] = str([g.bit_generator.state for g in model._rng_generators()[1:-1]
                                    if g is not None])
    with open(f"{out}/report_{r}.json", "w") as f:
        json.dump(report, f)
""")

FAILING_WORKER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[2])
    import fastrnn
    from fastrnn import distributed as D
    from test_distributed import make_data, make_model
    D.init()
    fastrnn.set_num_threads(1)

    class Fail(fastrnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if D.rank() == 1 and batch == 2:
                if sys.argv[3] == "exit":
                    os._exit(3)  # dies without a word: mpiexec ends the others
                raise RuntimeError("rank 1 broke down")

    x, y = make_data(97)
    make_model().fit(x, y, batch_size=8, epochs=50, verbose=0, callbacks=[Fail()])
    print("finished")
""")


RESUME_WORKER = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    import fastrnn
    from fastrnn import distributed as D
    from test_distributed import BATCH, EPOCHS, N_LONELY, make_data, make_model
    out, mode = sys.argv[1], sys.argv[3]
    D.init()
    fastrnn.set_num_threads(1)

    class Crash(fastrnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if mode == "crash" and epoch == 1:  # after rank 0 wrote its backup
                os._exit(5)

    model = make_model()
    model.fit(*make_data(N_LONELY), batch_size=BATCH, epochs=EPOCHS, verbose=0,
              callbacks=[fastrnn.callbacks.BackupAndRestore(f"{out}/backup"), Crash()])
    np.savez(f"{out}/resumed_{D.rank()}.npz", *model.get_weights())
""")

THREE_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    import fastrnn
    from fastrnn import distributed as D
    from test_distributed import BATCH, EPOCHS, N_TRAIN, make_data, make_model
    D.init()
    fastrnn.set_num_threads(1)
    model = make_model()
    model.fit(*make_data(N_TRAIN), batch_size=BATCH, epochs=EPOCHS, verbose=0)
    np.savez(f"{sys.argv[1]}/three_{D.rank()}.npz", *model.get_weights())
""")

LATE_WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from fastrnn import distributed as D
    from test_distributed import make_data, make_model
    D.init(timeout=1.0)
    if D.rank() == 1:
        time.sleep(20)  # never calls fit
    else:
        make_model().fit(*make_data(16), epochs=1, verbose=0)
    print("finished")
""")


def _mpiexec() -> str:
    pytest.importorskip("mpi4py")
    # the mpiexec of the environment's MPI (the mpich wheel installs it next to python)
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install \"fastrnn[mpi]\")")
    return found


def _launch(script: str, tmp_path: Path, *args: str, n: int = 2) -> subprocess.CompletedProcess:
    path = tmp_path / "worker.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(fastrnn.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [_mpiexec(), "-n", str(n), sys.executable, str(path), str(tmp_path), str(HERE), *args],
        capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, env=env)


def _reference(batch_size: int, n: int = N_TRAIN, validate: bool = True,
               epochs: int = EPOCHS) -> tuple[list, dict, float]:
    """A single-process fit with `batch_size` on the same order: weights, history, and the
    largest gradient entry any step applied."""
    class Steps(fastrnn.callbacks.Callback):
        largest = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self.before = self.model._param_buffer.copy()

        def on_train_batch_end(self, batch, logs=None):
            step = np.abs(self.model._param_buffer - self.before).max() / LEARNING_RATE
            Steps.largest = max(Steps.largest, float(step))

    x, y = make_data(n)
    model = make_model()
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_data=make_data(N_VAL, 2) if validate else None,
                        callbacks=[Steps(), early_stopping()] if validate else [Steps()])
    return model.get_weights(), history.history, Steps.largest


# ----------------------------------------------------------------------------- under mpiexec
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("mpi")
    done = _launch(WORKER, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    reports = [json.loads((tmp_path / f"report_{r}.json").read_text()) for r in (0, 1)]
    return tmp_path, reports


def _weights(path: Path) -> list:
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_two_ranks_end_with_identical_bits(two_ranks):
    tmp_path, reports = two_ranks
    assert [r["size"] for r in reports] == [2, 2]
    for name in ("arrays", "lonely", "dataset", "dropout"):
        w0, w1 = _weights(tmp_path / f"{name}_0.npz"), _weights(tmp_path / f"{name}_1.npz")
        assert all(a.tobytes() == b.tobytes() for a, b in zip(w0, w1)), name
    # the logs (and so EarlyStopping's decision) are the same bits on both ranks
    assert reports[0]["history"] == reports[1]["history"]
    # ...while each rank drew its own dropout masks
    assert reports[0]["dropout_stream"] != reports[1]["dropout_stream"]


def _tolerance(steps: int, ref_weights: list, largest_gradient: float,
               ranks: int = 2) -> float:
    # The two runs differ only in rounding: each step's mean gradient over the global batch is
    # summed in another order (per rank, then across ranks; BLAS blocks the rows otherwise), an
    # error of at most ~ rows * eps * |g| per entry, and each update w - lr * g rounds to
    # 1 ulp of |w|. Over K steps (ignoring the small growth of earlier differences through
    # later gradients, hence the factor 4): K * (lr * rows * eps * |g|max + eps * |w|max).
    eps = np.finfo(np.float32).eps
    w_max = max(float(np.abs(w).max()) for w in ref_weights)
    return 4 * steps * (LEARNING_RATE * ranks * BATCH * eps * largest_gradient + eps * w_max)


def test_two_ranks_match_one_process_with_twice_the_batch(two_ranks):
    tmp_path, reports = two_ranks
    ref_weights, ref_history, largest_gradient = _reference(BATCH * 2)
    weights = _weights(tmp_path / "arrays_0.npz")
    # EarlyStopping stopped both after the second epoch
    assert len(reports[0]["history"]["loss"]) == len(ref_history["loss"]) == 2
    tol = _tolerance(2 * -(-N_TRAIN // (2 * BATCH)), ref_weights, largest_gradient)
    for w, ref in zip(weights, ref_weights):
        np.testing.assert_allclose(w, ref, rtol=0, atol=tol)
    for key, values in ref_history.items():
        np.testing.assert_allclose(reports[0]["history"][key], values, rtol=1e-5)
    # ...and the comparison can tell: the plain batch size gives other weights
    other, _, _ = _reference(BATCH)
    assert max(float(np.abs(a - b).max()) for a, b in zip(other, ref_weights)) > 100 * tol


def test_a_rank_without_rows_in_the_last_batch(two_ranks):
    tmp_path, _ = two_ranks
    ref_weights, _, largest_gradient = _reference(BATCH * 2, N_LONELY, validate=False)
    tol = _tolerance(EPOCHS * -(-N_LONELY // (2 * BATCH)), ref_weights, largest_gradient)
    for w, ref in zip(_weights(tmp_path / "lonely_1.npz"), ref_weights):
        np.testing.assert_allclose(w, ref, rtol=0, atol=tol)


def test_three_ranks_reduce_then_broadcast(tmp_path):
    # beyond two ranks the sum is made on rank 0 and broadcast (Reduce + Bcast)
    done = _launch(THREE_WORKER, tmp_path, n=3)
    assert done.returncode == 0, done.stdout + done.stderr
    weights = [_weights(tmp_path / f"three_{r}.npz") for r in range(3)]
    for other in weights[1:]:
        assert all(a.tobytes() == b.tobytes() for a, b in zip(weights[0], other))
    # 101 = 4 * 24 + 5: the last global batch splits 1 / 2 / 2
    ref_weights, _, largest_gradient = _reference(BATCH * 3, validate=False)
    tol = _tolerance(EPOCHS * -(-N_TRAIN // (3 * BATCH)), ref_weights, largest_gradient, 3)
    for w, ref in zip(weights[0], ref_weights):
        np.testing.assert_allclose(w, ref, rtol=0, atol=tol)


def test_mismatched_ranks_raise_on_every_rank(two_ranks):
    _, reports = two_ranks
    for r in reports:
        assert "disagree on the model's config" in r["config"]
        assert "disagree on the training arrays' shapes" in r["shape"]
        assert "disagree on the batch shapes at the first batch" in r["batch"]
        assert "rank 1" in r["config"]


def test_writing_callbacks_act_on_rank_zero_only(two_ranks):
    tmp_path, reports = two_ranks
    assert reports[0]["count"] == 2 and reports[1]["count"] == 0
    assert (tmp_path / "ckpt0.fastrnn").exists()
    assert not (tmp_path / "ckpt1.fastrnn").exists()


def test_a_failing_rank_ends_the_job(tmp_path):
    done = _launch(FAILING_WORKER, tmp_path, "raise")
    assert done.returncode != 0
    assert "finished" not in done.stdout
    assert "rank 1 broke down" in done.stderr
    assert "aborting the job" in done.stderr


def test_a_run_resumed_from_rank_zeros_backup_ends_as_an_uninterrupted_one(two_ranks,
                                                                            tmp_path):
    crashed = _launch(RESUME_WORKER, tmp_path, "crash")
    assert crashed.returncode != 0
    assert (tmp_path / "backup" / "backup.fastrnn").exists()
    resumed = _launch(RESUME_WORKER, tmp_path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    plain = _weights(two_ranks[0] / "lonely_0.npz")
    for r in (0, 1):
        for a, b in zip(_weights(tmp_path / f"resumed_{r}.npz"), plain):
            assert a.tobytes() == b.tobytes()


def test_a_rank_that_never_comes_ends_the_job_after_the_timeout(tmp_path):
    start = time.monotonic()
    done = _launch(LATE_WORKER, tmp_path)
    assert done.returncode != 0
    assert "waited 1 s for the other ranks at the start of fit" in done.stderr
    assert time.monotonic() - start < 15  # not the 20 s rank 1 sleeps


def test_a_dying_rank_ends_the_job(tmp_path):
    done = _launch(FAILING_WORKER, tmp_path, "exit")
    assert done.returncode != 0
    assert "finished" not in done.stdout


# ----------------------------------------------------------------------------- without MPI
def test_init_without_mpi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `import mpi4py` fail
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[mpi\]"'):
        distributed.init()
    assert not distributed.is_initialized()
    assert (distributed.rank(), distributed.size()) == (0, 1)


class _Ranks:
    """The sharding rule alone, for a given rank of `size` (no MPI needed)."""

    def __init__(self, rank: int, size: int):
        self.dp = distributed._DataParallel.__new__(distributed._DataParallel)
        self.dp.rank, self.dp.size = rank, size


@pytest.mark.parametrize("n,batch,size", [(97, 8, 2), (100, 5, 3), (7, 4, 3), (2, 3, 4),
                                          (64, 8, 4)])
def test_shards_make_up_the_global_batches(n, batch, size):
    order = np.random.default_rng(0).permutation(n)
    shards = [distributed._DataParallel.shard(_Ranks(r, size).dp, order, n, batch)
              for r in range(size)]
    steps = -(-n // (batch * size))
    for mine, bounds in shards:
        assert len(bounds) == steps + 1 and bounds[-1] == len(mine)
        assert max(np.diff(bounds)) <= batch
    for k in range(steps):
        parts = [mine[bounds[k]:bounds[k + 1]] for mine, bounds in shards]
        # global batch k, in rank order: the single-process batch of batch * size rows
        np.testing.assert_array_equal(np.concatenate(parts),
                                      order[k * batch * size:(k + 1) * batch * size])
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= (batch if k < steps - 1 else 1)


def test_shard_range_without_init():
    assert distributed.shard_range(10) == (0, 10)
    with pytest.raises(ValueError, match="argument `n`"):
        distributed.shard_range(-1)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), "10", True])
def test_init_refuses_a_bad_timeout(timeout):
    pytest.importorskip("mpi4py")
    with pytest.raises(ValueError, match="argument `timeout`"):
        distributed.init(timeout=timeout)
    assert not distributed.is_initialized()


def test_init_draws_no_seed():
    pytest.importorskip("mpi4py")
    fastrnn.set_seed(3)
    distributed.init()
    try:
        a = fastrnn.Sequential([fastrnn.layers.Dense(2, input_shape=[3])]).get_weights()
    finally:
        distributed.shutdown()
    fastrnn.set_seed(3)
    b = fastrnn.Sequential([fastrnn.layers.Dense(2, input_shape=[3])]).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
