"""Shared helpers of the custom-layer tests: finite-difference checks of a layer's backward."""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def _forward_sum(layer, x, d, **kwargs):
    out = layer.forward(x, training=False, **kwargs)
    outs = out if isinstance(out, list) else [out]
    ds = d if isinstance(d, list) else [d]
    return sum(float(np.sum(o * g)) for o, g in zip(outs, ds) if g is not None)


def check_layer_gradients(layer, x, seed=0, atol=1e-6, **kwargs):
    """``layer.backward``'s input and weight gradients against central differences of
    ``sum(R * layer(x))`` (float64 layer; R random). Returns the input gradient."""
    rng = np.random.default_rng(seed)
    out = layer.forward(x, training=True, **kwargs)
    outs = out if isinstance(out, list) else [out]
    d = [rng.normal(size=o.shape) for o in outs]
    d_arg = d if isinstance(out, list) else d[0]
    d_x = layer.backward(d_arg)
    grads = [g.copy() for g in layer.grads]
    for name, w, g in zip(layer.weight_names, layer.weights, grads):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            keep = w[idx]
            w[idx] = keep + EPS
            plus = _forward_sum(layer, x, d_arg, **kwargs)
            w[idx] = keep - EPS
            minus = _forward_sum(layer, x, d_arg, **kwargs)
            w[idx] = keep
            numeric[idx] = (plus - minus) / (2 * EPS)
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(g, numeric, rtol=0, atol=atol * scale,
                                   err_msg=f"gradient of weight {name}")
    xs = x if isinstance(x, list) else [x]
    dxs = d_x if isinstance(d_x, list) else [d_x]
    for k, (xi, gi) in enumerate(zip(xs, dxs)):
        if gi is None:
            continue
        numeric = np.zeros_like(xi)
        for idx in np.ndindex(xi.shape):
            keep = xi[idx]
            xi[idx] = keep + EPS
            plus = _forward_sum(layer, x, d_arg, **kwargs)
            xi[idx] = keep - EPS
            minus = _forward_sum(layer, x, d_arg, **kwargs)
            xi[idx] = keep
            numeric[idx] = (plus - minus) / (2 * EPS)
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(gi, numeric, rtol=0, atol=atol * scale,
                                   err_msg=f"gradient of input {k}")
    return d_x
