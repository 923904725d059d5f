"""Shared checks for layers: finite differences in float64, and TF-Keras parity with copied
weights (predictions, then the weights after three SGD steps on one batch)."""

from __future__ import annotations

import warnings

import numpy as np

import fastrnn
from _keras import import_keras
from fastrnn import optimizers


def numeric_gradient(f, a: np.ndarray, index: tuple, eps: float = 1e-6) -> float:
    """Central difference of the scalar f() in element `index` of `a` (changed in place and
    restored)."""
    old = a[index]
    a[index] = old + eps
    up = f()
    a[index] = old - eps
    down = f()
    a[index] = old
    return (up - down) / (2 * eps)


def check_gradients(layer, inputs, rng, n_points: int = 12, call=None):
    """Backward's input and weight gradients of ``sum(forward(inputs) * g)`` against central
    differences (float64 layer) at `n_points` random elements of each array."""
    call = call or (lambda xs, training: layer.forward(xs if len(xs) > 1 else xs[0],
                                                       training=training))
    out = call(inputs, True)
    outs = out if isinstance(out, list) else [out]
    g = [rng.standard_normal(o.shape) for o in outs]

    def loss():
        o = call(inputs, False)
        o = o if isinstance(o, list) else [o]
        return float(sum(np.sum(a * b) for a, b in zip(o, g)))

    call(inputs, True)
    d_in = layer.backward(g if isinstance(out, list) else g[0])
    d_in = d_in if isinstance(d_in, list) else [d_in]
    analytic = list(zip(inputs, d_in)) + list(zip(layer._weights, layer.grads))
    for a, d in analytic:
        if d is None:
            continue
        flat = [np.unravel_index(i, a.shape) for i in
                rng.choice(a.size, size=min(n_points, a.size), replace=False)]
        for idx in flat:
            num = numeric_gradient(loss, a, idx)
            np.testing.assert_allclose(d[idx], num, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{layer.name}: gradient at {idx}")


def randomize(model, rng, scale: float = 0.4) -> None:
    """Random non-constant weights (a variance stays positive, a count stays a count)."""
    new = []
    for layer in model.layers:
        for name, w in zip(layer.weight_names, layer.get_weights()):
            v = rng.standard_normal(w.shape) * scale
            if "variance" in name:
                v = np.abs(v) + 0.5
            elif name == "count":
                v = np.full(w.shape, 10.0)
            new.append(v.astype(w.dtype))
    model.set_weights(new)


def keras_train(keras, model, xs, y, mask_loss=None, steps: int = 3, lr: float = 0.1):
    """Three eager SGD steps of a Keras model on mse (averaged over the steps where
    `mask_loss` ``(B, T)`` is True, as fastrnn scores masked sequence outputs)."""
    import tensorflow as tf

    opt = keras.optimizers.SGD(lr)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            pred = model(xs, training=True)
            per = tf.reduce_mean(tf.square(pred - y), axis=-1)
            if mask_loss is not None:
                m = tf.cast(mask_loss, per.dtype)
                loss = tf.reduce_sum(per * m) / tf.reduce_sum(m)
            else:
                loss = tf.reduce_mean(per)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))


def assert_keras_parity(mine, theirs, xs, y, rng, mask_loss=None, rtol=2e-4, atol=2e-5,
                        compare_rows=None):
    """Copies `mine`'s (randomized) weights into `theirs`, compares predictions, trains both
    three SGD steps on (xs, y) and compares every weight."""
    keras = import_keras()
    randomize(mine, rng)
    theirs.set_weights(mine.get_weights())
    for layer in theirs.layers:  # Keras's Normalization reads its weights there
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    p_mine = mine.predict(xs, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's own warnings (e.g. a mask its sublayer drops)
        p_theirs = np.asarray(theirs(xs, training=False))
    if compare_rows is not None:
        p_mine, p_theirs = p_mine[compare_rows], p_theirs[compare_rows]
    np.testing.assert_allclose(p_mine, p_theirs, rtol=rtol, atol=atol)
    mine.compile(loss="mse", optimizer=optimizers.SGD(0.1))
    mine.fit(xs, y, batch_size=len(y), epochs=3, shuffle=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_train(keras, theirs, xs, y, mask_loss=mask_loss)
    for k, (a, b) in enumerate(zip(mine.get_weights(), theirs.get_weights())):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"weight {k}")
    return fastrnn
