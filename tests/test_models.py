"""Sequential: build, compile, fit, evaluate, predict, summary, seeding, callbacks, states."""

from __future__ import annotations

import numpy as np
import pytest

from fastrnn import callbacks, layers, optimizers
from fastrnn.models import Sequential, set_seed


def _series(n: int = 256, steps: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines: x (n, steps, 1), y (n, 1) = the next value."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps + 1) / steps
    freq = rng.uniform(1.0, 3.0, (n, 1))
    phase = rng.uniform(0.0, 6.0, (n, 1))
    s = np.sin(freq * 2 * np.pi * t + phase) + 0.05 * rng.standard_normal((n, steps + 1))
    s = s.astype(np.float32)[..., None]
    return s[:, :steps], s[:, steps]


def _rnn_model(seed: int = 1, units: int = 8) -> Sequential:
    return Sequential([
        layers.SimpleRNN(units, return_sequences=True, input_shape=[None, 1]),
        layers.SimpleRNN(units),
        layers.Dense(1),
    ], seed=seed)


# ----------------------------------------------------------------------------- build
def test_build_from_input_shape_packs_weights_in_one_buffer():
    model = _rnn_model()
    model.build()
    assert model.built and model.input_shape == (None, None, 1)
    assert model.output_shape == (None, 1)
    buf = model._param_buffer
    assert buf.size == model.count_params() == (1 * 8 + 8 * 8 + 8) + (8 * 8 + 8 * 8 + 8) + 9
    for layer in model.layers:
        for w, g in zip(layer.weights, layer.grads):
            assert np.shares_memory(w, buf)
            assert np.shares_memory(g, model._grad_buffer)
    # Writing through the flat buffer is what the layers compute with.
    x = np.ones((2, 3, 1), np.float32)
    before = model.predict(x)
    buf[-1] += 1.0  # the Dense bias
    np.testing.assert_allclose(model.predict(x), before + 1.0, rtol=1e-6)


def test_build_from_data_and_layers_property():
    model = Sequential([layers.SimpleRNN(4), layers.Dense(2)], seed=0)
    assert not model.built
    x, _ = _series(8, 5)
    out = model.predict(x)
    assert out.shape == (8, 2) and model.built
    # built from data: other sequence lengths are still accepted
    assert model.predict(np.zeros((3, 9, 1), np.float32)).shape == (3, 2)
    assert [type(la).__name__ for la in model.layers] == ["SimpleRNN", "Dense"]
    model.layers.append(None)  # a copy: the model is unchanged
    assert len(model.layers) == 2


def test_add_after_build_rebuilds_and_keeps_weights():
    model = Sequential([layers.Dense(3, input_shape=(4,))], seed=0)
    model.build()
    w0 = model.get_weights()
    model.add(layers.Dense(2))
    x = np.ones((5, 4), np.float32)
    assert model.predict(x).shape == (5, 2)
    np.testing.assert_array_equal(model.get_weights()[0], w0[0])
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2


def test_summary_lists_layers_shapes_and_params(capsys):
    model = _rnn_model()
    text = model.summary()
    printed = capsys.readouterr().out
    assert text in printed
    lines = text.splitlines()
    assert lines[0] == f'Model: "{model.name}"'
    row = next(line for line in lines if "(SimpleRNN)" in line and "(None, None, 8)" in line)
    assert row.split()[-1] == "80"
    assert any("(None, 1)" in line and line.split()[-1] == "9" for line in lines)
    assert f"Total params: {model.count_params():,}" in text
    assert model.summary(print_fn=None) == text


def test_unbuilt_model_reports_clearly():
    model = Sequential([layers.Dense(1)])
    with pytest.raises(ValueError, match="not been built"):
        model.summary(print_fn=None)
    with pytest.raises(ValueError, match="not been built"):
        model.get_weights()
    with pytest.raises(ValueError, match="no layers"):
        Sequential().build((3,))


# ----------------------------------------------------------------------------- training
def test_fit_learns_and_history_has_keras_keys():
    x, y = _series(512, 12)
    xv, yv = _series(128, 12, seed=1)
    model = _rnn_model()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    naive = float(np.mean((xv[:, -1] - yv) ** 2))
    history = model.fit(x, y, epochs=8, batch_size=32, validation_data=(xv, yv), verbose=0)
    assert isinstance(history, callbacks.History) and model.history is history
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(v) == 8 for v in history.history.values())
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    val_loss, val_mae = model.evaluate(xv, yv)
    assert val_loss == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    assert val_mae == pytest.approx(history.history["val_mae"][-1], rel=1e-5)
    assert val_loss < naive / 2
    assert model.metrics_names == ["loss", "mae"]


def test_training_metric_equals_metric_of_the_epochs_predictions():
    # With a learning rate of 0 the weights never change, so the epoch's training metric must
    # equal the metric over all samples (shuffling does not matter for a mean).
    x, y = _series(100, 6)
    model = _rnn_model()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse", metrics=["mae"])
    h = model.fit(x, y, epochs=1, batch_size=7, verbose=0)
    pred = model.predict(x)
    assert h.history["loss"][0] == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-5)
    assert h.history["mae"][0] == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-5)


def test_one_sgd_step_matches_the_analytic_gradient():
    # Linear regression on one batch: w <- w - lr * 2/N X^T (Xw + b - y).
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = Sequential([layers.Dense(1, input_shape=(3,))], seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    model.build()
    w, b = model.get_weights()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    r = x @ w + b - y
    np.testing.assert_allclose(model.get_weights()[0], w - 0.1 * 2 / 16 * x.T @ r, rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], b - 0.1 * 2 / 16 * r.sum(0), rtol=1e-5)


def test_evaluate_without_metrics_returns_a_float_and_predict_batches_agree():
    x, y = _series(70, 5)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    loss = model.evaluate(x, y, batch_size=8)
    assert isinstance(loss, float)
    np.testing.assert_allclose(model.predict(x, batch_size=3), model.predict(x), rtol=1e-6)
    np.testing.assert_allclose(model(x), model.predict(x), rtol=1e-6)


def test_custom_metric_and_seq_to_seq_time_distributed():
    def last_time_step_mse(y_true, y_pred):
        return np.mean((y_true[:, -1] - y_pred[:, -1]) ** 2)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 7, 2)).astype(np.float32)
    y = np.cumsum(x, axis=1)[..., :1].repeat(3, axis=2)  # (64, 7, 3)
    model = Sequential([
        layers.SimpleRNN(6, return_sequences=True, input_shape=[None, 2]),
        layers.TimeDistributed(layers.Dense(3)),
    ], seed=2)
    model.compile(loss="mse", optimizer=optimizers.Adam(learning_rate=0.01),
                  metrics=[last_time_step_mse])
    h = model.fit(x, y, epochs=3, validation_data=(x, y), verbose=0)
    assert set(h.history) == {"loss", "last_time_step_mse", "val_loss",
                              "val_last_time_step_mse"}
    pred = model.predict(x)
    assert h.history["val_last_time_step_mse"][-1] == pytest.approx(
        last_time_step_mse(y, pred), rel=1e-5)


def test_validation_split_holds_out_the_last_samples():
    x, y = _series(100, 5)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    h = model.fit(x, y, epochs=1, validation_split=0.2, verbose=0, shuffle=False)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[80:], y[80:]), rel=1e-5)
    assert model.evaluate(x[:80], y[:80]) != pytest.approx(h.history["val_loss"][0], rel=1e-3)
    # validation_data overrides validation_split: all 100 samples train (4 batches of 32)
    batches = []

    class Count(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    model.fit(x, y, epochs=1, validation_split=0.5, validation_data=(x[:10], y[:10]),
              verbose=0, callbacks=[Count()])
    assert batches == [0, 1, 2, 3]


def test_fit_accepts_an_iterable_of_batches():
    x, y = _series(96, 8)

    class Windows:
        """A re-iterable dataset with len(), like timeseries_dataset_from_array's result."""

        def __len__(self) -> int:
            return 3

        def __iter__(self):
            for i in range(3):
                yield x[32 * i:32 * (i + 1)], y[32 * i:32 * (i + 1)]

    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    h = model.fit(Windows(), epochs=2, validation_data=Windows(), verbose=0)
    assert len(h.history["loss"]) == 2 and "val_mae" in h.history
    assert model.evaluate(Windows())[0] == pytest.approx(model.evaluate(x, y)[0], rel=1e-5)
    assert model.predict(Windows()).shape == (96, 1)


def test_initial_epoch_and_callbacks_see_every_epoch():
    seen = []

    class Recorder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    x, y = _series(40, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    h = model.fit(x, y, epochs=4, initial_epoch=2, callbacks=[Recorder()], verbose=0,
                  validation_data=(x, y))
    assert seen == [(2, ["loss", "val_loss"]), (3, ["loss", "val_loss"])]
    assert h.epoch == [2, 3]


def test_batch_hooks_get_the_batch_loss():
    losses = []

    class Batches(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append((batch, logs["loss"]))

    x, y = _series(50, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    h = model.fit(x, y, epochs=1, batch_size=16, callbacks=[Batches()], verbose=0)
    assert [b for b, _ in losses] == [0, 1, 2, 3]
    sizes = np.array([16, 16, 16, 2])
    mean = float(np.dot([v for _, v in losses], sizes) / 50)
    assert h.history["loss"][0] == pytest.approx(mean, rel=1e-6)


def test_early_stopping_restores_best_weights():
    x, y = _series(64, 5)
    model = _rnn_model()
    model.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=0.3, momentum=0.9))
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    stop = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    h = model.fit(x, y, epochs=40, callbacks=[Snap(), stop], verbose=0)
    losses = h.history["loss"]
    assert len(losses) < 40  # stopped early
    best = int(np.argmin(losses))
    assert best < len(losses) - 1
    for a, b in zip(snapshots[best], model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_truncate_bptt_is_applied_during_fit_and_restored():
    x, y = _series(32, 10)
    seen = []

    class Peek(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(self.model.layers[0].truncate_bptt)

    model = _rnn_model()
    model.compile(loss="mse", optimizer="sgd")
    w_full = None
    for k in (None, 2):
        set_seed(5)
        m = _rnn_model(seed=None)
        m.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=0.1))
        m.fit(x, y, epochs=1, batch_size=32, truncate_bptt=k, verbose=0, shuffle=False,
              callbacks=[Peek()])
        if k is None:
            w_full = m.get_weights()
        else:
            w_trunc = m.get_weights()
    assert seen == [None, 2]
    assert m.layers[0].truncate_bptt is None  # restored
    # The recurrent kernels got different gradients, the Dense layer's input did not change.
    assert not np.allclose(w_full[1], w_trunc[1])
    with pytest.raises(ValueError, match="truncate_bptt"):
        model.fit(x, y, truncate_bptt=0, verbose=0)


# ----------------------------------------------------------------------------- seeds
def test_set_seed_reproduces_weights_and_training():
    x, y = _series(128, 6)
    runs = []
    for _ in range(2):
        set_seed(123)
        model = Sequential([
            layers.LSTM(6, return_sequences=True, input_shape=[None, 1], dropout=0.1),
            layers.GRU(5),
            layers.Dropout(0.2),
            layers.Dense(1),
        ])
        model.compile(loss="mse", optimizer="adam")
        model.build()
        w0 = model.get_weights()
        h = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        runs.append((w0, model.get_weights(), h.history["loss"]))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][2] == runs[1][2]
    set_seed(124)
    other = Sequential([layers.LSTM(6, input_shape=[None, 1])])
    other.build()
    assert not np.array_equal(other.get_weights()[0], runs[0][0][0])


def test_shuffling_changes_the_order_and_is_seeded():
    x, y = _series(64, 4)

    def train(shuffle: bool, seed: int) -> list:
        m = _rnn_model(seed=seed)
        m.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=0.05))
        m.fit(x, y, epochs=1, batch_size=8, shuffle=shuffle, verbose=0)
        return m.get_weights()

    a, b, c = train(True, 7), train(True, 7), train(False, 7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])


# ----------------------------------------------------------------------------- stateful
def test_stateful_layers_carry_state_and_are_not_shuffled():
    x, y = _series(32, 6)
    model = Sequential([layers.SimpleRNN(4, stateful=True, input_shape=[None, 1]),
                        layers.Dense(1)], seed=0)
    model.compile(loss="mse", optimizer="adam")
    first = model.predict(x[:8], batch_size=8)
    second = model.predict(x[:8], batch_size=8)  # starts from the carried state
    assert not np.allclose(first, second)
    model.reset_states()
    np.testing.assert_allclose(model.predict(x[:8], batch_size=8), first, rtol=1e-6)
    # fit without shuffling: the batches arrive in order
    order = []

    class Peek(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            order.append(batch)

    model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0, callbacks=[Peek()])
    assert order == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="multiple of batch_size"):
        model.fit(x[:30], y[:30], batch_size=8, verbose=0)


def test_stateful_fit_equals_manual_carry():
    # Two stateful batches of 4 give the same weights as training without shuffling.
    x, y = _series(8, 5)
    runs = []
    for _ in range(2):
        m = Sequential([layers.SimpleRNN(3, stateful=True, input_shape=[None, 1]),
                        layers.Dense(1)], seed=4)
        m.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=0.1))
        m.fit(x, y, batch_size=4, epochs=1, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- verbosity
def test_verbose_modes(capsys):
    x, y = _series(64, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2, validation_data=(x, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("Epoch 2/2 - ") and "s - loss: " in lines[1]
    assert " - val_loss: " in lines[1]
    model.fit(x, y, epochs=1, verbose=1)
    out = capsys.readouterr()
    assert "Epoch 1/1" in out.out and "loss:" in out.out and "2/2" in out.out


# ----------------------------------------------------------------------------- failures
def test_nan_loss_stops_and_keeps_weights_from_before():
    x, y = _series(64, 4)
    y_bad = y.copy()
    y_bad[40] = np.nan  # the third batch of 16 (no shuffling)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    seen = []

    class Snap(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.get_weights())

    h = model.fit(x, y_bad, epochs=3, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[Snap()])
    assert model.stop_training and "NaN" in model.stop_reason
    assert "epoch 1, batch 3" in model.stop_reason
    assert h.stop_reason == model.stop_reason
    assert h.history == {}  # stopped inside the first epoch
    # the weights are those after batch 2 (the NaN batch's update was not applied)
    for a, b in zip(seen[1], model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    # the model still trains
    h2 = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(h2.history["loss"][0]) and model.stop_reason is None


def test_nan_stop_is_printed_when_verbose(capsys):
    x, y = _series(16, 4)
    y[0] = np.inf
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=1, verbose=2, shuffle=False)
    assert "weights from before it kept" in capsys.readouterr().out


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_in_a_callback_leaves_the_model_usable(exc):
    class Boom(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise exc("boom")

    x, y = _series(64, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    with pytest.raises(exc):
        model.fit(x, y, epochs=2, batch_size=8, callbacks=[Boom()], verbose=1,
                  truncate_bptt=2)
    assert model.layers[0].truncate_bptt is None
    assert all(np.isfinite(w).all() for w in model.get_weights())
    before = model.evaluate(x, y)
    h = model.fit(x, y, epochs=3, verbose=0)
    assert h.history["loss"][-1] < before
    assert model.predict(x).shape == (64, 1)


def test_bad_batch_in_a_dataset_leaves_the_model_usable():
    x, y = _series(48, 4)

    def batches():
        yield x[:16], y[:16]
        yield x[16:32, :, :0], y[16:32]  # no features

    model = _rnn_model()
    model.compile(loss="mse", optimizer="adam")
    with pytest.raises(ValueError, match="1 features.*0 features"):
        model.fit(batches(), epochs=1, verbose=0)
    assert model.fit(x, y, epochs=1, verbose=0).history["loss"][0] > 0


# ----------------------------------------------------------------------------- classes
def test_sparse_categorical_training_with_embedding():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 10, (200, 6))
    labels = (tokens[:, -1] >= 5).astype(np.int64)  # depends on the last token only
    model = Sequential([layers.Embedding(10, 4, input_shape=(6,)), layers.GRU(8),
                        layers.Dense(2)], seed=0)
    model.compile(loss=__import__("fastrnn").losses.SparseCategoricalCrossentropy(
        from_logits=True), optimizer=optimizers.Adam(learning_rate=0.02),
        metrics=["accuracy"])
    h = model.fit(tokens, labels, epochs=15, batch_size=20, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    assert model.predict(tokens[:3]).shape == (3, 2)


# ----------------------------------------------------------------------------- optimizers
def test_clipnorm_clips_each_weight_array_separately():
    x, y = _series(32, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=1.0, clipnorm=1e-3))
    model.build()
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    steps = [float(np.linalg.norm(a - b)) for a, b in zip(model.get_weights(), before)]
    # every array moved by exactly lr * clipnorm (one global clip would move each by less)
    np.testing.assert_allclose(steps, 1e-3, rtol=1e-3)


def test_learning_rate_scheduler_drives_the_fused_update():
    x, y = _series(32, 4)
    model = _rnn_model()
    model.compile(loss="mse", optimizer=optimizers.SGD(learning_rate=0.1))
    model.build()
    before = model.get_weights()
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.0)
    model.fit(x, y, epochs=2, callbacks=[sched], verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.learning_rate == 0.0


def test_fit_on_a_timeseries_window_dataset():
    from fastrnn import timeseries

    s = np.sin(np.arange(600) / 7).astype(np.float32)
    ds = timeseries.timeseries_dataset_from_array(s[:-5, None], s[5:], sequence_length=8,
                                                  batch_size=32, shuffle=True, seed=1)
    model = Sequential([layers.GRU(6), layers.Dense(1)], seed=0)
    model.compile(loss="mse", optimizer=optimizers.Adam(learning_rate=0.02))
    before = model.evaluate(ds)
    h = model.fit(ds, epochs=4, validation_data=ds, verbose=0)
    assert len(h.history["val_loss"]) == 4
    assert h.history["val_loss"][-1] < before / 3
