"""Exact resume: a training process killed with SIGKILL and run again ends bit-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn
from fastrnn import callbacks, layers

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import fastrnn
    from fastrnn import callbacks, layers

    backup, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3]
    kill_epoch, kill_batch = (int(v) for v in kill_at.split(","))

    class Killer(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if (self.epoch, batch) == (kill_epoch, kill_batch):
                os.kill(os.getpid(), signal.SIGKILL)

    fastrnn.set_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12, 3)).astype(np.float32)
    y = rng.normal(size=(96, 1)).astype(np.float32)
    inp = fastrnn.Input((None, 3))
    h = layers.LSTM(8, recurrent_dropout=0.3, dropout=0.2)(inp)
    h = layers.Dropout(0.3)(h)
    model = fastrnn.Model(inp, layers.Dense(1)(h))
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(x, y, batch_size=16, epochs=6, verbose=0, validation_split=0.25,
              callbacks=[callbacks.BackupAndRestore(backup), Killer()])
    np.savez(out, *model.get_weights(), it=model.optimizer.iterations)
""")


def _run(tmp_path, backup, out, kill_at):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    return subprocess.run([sys.executable, str(script), str(backup), str(out), kill_at],
                          env=env, capture_output=True, text=True, timeout=300)


def _weights(path):
    with np.load(path) as npz:
        return [npz[k] for k in sorted(npz.files)]


def test_killed_runs_resume_bit_identical(tmp_path):
    reference = tmp_path / "reference.npz"
    done = _run(tmp_path, tmp_path / "ref_backup", reference, "-1,-1")
    assert done.returncode == 0, done.stderr
    rng = np.random.default_rng(123)
    # three kills at random points (epoch, batch), each rerun resuming the last
    points = sorted({(int(rng.integers(0, 6)), int(rng.integers(0, 5))) for _ in range(3)})
    backup = tmp_path / "backup"
    out = tmp_path / "resumed.npz"
    killed = 0
    for epoch, batch in points:
        run = _run(tmp_path, backup, out, f"{epoch},{batch}")
        if run.returncode == -signal.SIGKILL:
            killed += 1
        else:  # the kill point was before the restored epoch: it ran to the end
            assert run.returncode == 0, run.stderr
    assert killed >= 1
    if not out.exists():
        final = _run(tmp_path, backup, out, "-1,-1")
        assert final.returncode == 0, final.stderr
    for a, b in zip(_weights(out), _weights(reference)):
        np.testing.assert_array_equal(a, b)
    assert not (backup / callbacks.BackupAndRestore.FILE).exists()  # deleted at the end


def test_a_backup_of_another_model_is_refused_untouched(tmp_path):
    def make(units):
        model = fastrnn.Sequential([layers.Dense(units, input_shape=(2,)), layers.Dense(1)])
        model.compile(loss="mse", optimizer="adam")
        model.build()
        return model

    x, y = np.ones((8, 2)), np.ones((8, 1))
    first = make(3)
    cb = callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    first.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert (tmp_path / callbacks.BackupAndRestore.FILE).exists()
    other = make(4)
    before = other.get_weights()
    with pytest.raises(ValueError, match="another model"):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.BackupAndRestore(str(tmp_path))])
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_backup_arguments_are_checked(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        callbacks.BackupAndRestore(str(tmp_path / "file"))
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.BackupAndRestore(str(tmp_path), save_freq=10)


def test_optimizer_state_round_trip():
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(5, 3)).astype(np.float32)]
    opt = fastrnn.optimizers.Adam(0.01)
    for _ in range(3):
        opt.apply_gradients(params, [rng.normal(size=(5, 3)).astype(np.float32)])
    state = opt.get_state()
    other = fastrnn.optimizers.Adam(0.5)
    other.set_state(state, params)
    assert other.iterations == 3 and other.learning_rate == 0.01
    g = rng.normal(size=(5, 3)).astype(np.float32)
    p1, p2 = [params[0].copy()], [params[0].copy()]
    opt.apply_gradients(p1, [g.copy()])
    other.apply_gradients(p2, [g.copy()])
    np.testing.assert_array_equal(p1[0], p2[0])
    bad = dict(state)
    bad["slots/0/m"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="shape"):
        other.set_state(bad, params)


def test_saved_model_continues_training_exactly(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 7, 2)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)

    def make():
        fastrnn.set_seed(3)
        inp = fastrnn.Input((None, 2))
        out = layers.Dense(1)(layers.Dropout(0.2)(layers.GRU(5, recurrent_dropout=0.2)(inp)))
        model = fastrnn.Model(inp, out)
        model.compile(loss="mse", optimizer="adam")
        return model

    straight = make()
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = make()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for kind in ("zip", "dir"):
        path = tmp_path / kind
        if kind == "dir":
            path.mkdir()
        first.save(str(path))
        resumed = fastrnn.load_model(str(path))
        assert resumed.optimizer.iterations == first.optimizer.iterations
        resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
        for a, b in zip(resumed.get_weights(), straight.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_directory_save_is_replaced_as_a_whole(tmp_path, monkeypatch):
    from fastrnn import saving

    model = fastrnn.Sequential([layers.Dense(2, input_shape=(3,))])
    model.build()
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    model.save(str(folder))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    model.set_weights([w + 1 for w in model.get_weights()])
    real = saving._atomic_write
    calls = []

    def second_write_fails(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(saving, "_atomic_write", second_write_fails)
    with pytest.raises(OSError, match="No space"):
        model.save(str(folder))
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # old config and old weights together, the user's file kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fastrnn")]
    monkeypatch.setattr(saving, "_atomic_write", real)
    model.save(str(folder))
    np.testing.assert_array_equal(fastrnn.load_model(str(folder)).get_weights()[0],
                                  model.get_weights()[0])
    assert (folder / "notes.txt").read_text() == "mine"
