"""The activation, noise, reshaping, convolution, normalization and Dot layers that round
out Keras 3's sequence namespace: NumPy references, float64 finite differences, PyTorch
parity, TF-Keras parity with copied weights (predictions and three SGD steps), and errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from _layer_harness import assert_keras_parity, check_gradients
from fastrnn import layers

RNG = np.random.default_rng


# ----------------------------------------------------------------------------- references
def ref_conv_transpose(x, kernel, strides, dilation, padding, output_padding=None):
    """Direct scatter: input step t, tap k adds x[t] @ kernel[k].T at t*s + k*d - left."""
    B, T, C = x.shape
    K, F, _ = kernel.shape
    span = (K - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, strides) - span if output_padding is None else output_padding
        L, left = (T - 1) * strides + span + extra, 0
    else:
        L = T * strides if output_padding is None else (T - 1) * strides + span % 2 + \
            output_padding
        total = max((-(-L // strides) - 1) * strides + span - L, 0)
        left = total // 2
    y = np.zeros((B, L, F))
    for t in range(T):
        for k in range(K):
            j = t * strides + k * dilation - left
            if 0 <= j < L:
                y[:, j] += x[:, t] @ kernel[k].T
    return y


def ref_depthwise(x, kernel, strides, padding):
    """Each channel c with its own M filters: output channel c*M + m."""
    B, T, C = x.shape
    K, _, M = kernel.shape
    if padding == "same":
        L = -(-T // strides)
        total = max((L - 1) * strides + K - T, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    else:
        L = (T - K) // strides + 1
    y = np.zeros((B, L, C * M))
    for i in range(L):
        for c in range(C):
            for m in range(M):
                y[:, i, c * M + m] = sum(x[:, i * strides + k, c] * kernel[k, c, m]
                                         for k in range(K))
    return y


def test_activation_layers_match_numpy():
    x = RNG(0).standard_normal((3, 7, 5)) * 2
    relu = layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)
    np.testing.assert_allclose(relu.forward(x), np.where(
        x > 0.2, np.minimum(x, 1.5), 0.1 * (x - 0.2)), rtol=1e-6)
    np.testing.assert_allclose(layers.LeakyReLU(0.2).forward(x), np.where(x > 0, x, 0.2 * x),
                               rtol=1e-6)
    np.testing.assert_allclose(layers.LeakyReLU(alpha=0.05).forward(x),
                               np.where(x > 0, x, 0.05 * x), rtol=1e-6)
    np.testing.assert_allclose(layers.ELU(0.7).forward(x),
                               np.where(x > 0, x, 0.7 * (np.exp(x) - 1)), rtol=1e-5, atol=1e-7)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(layers.Softmax().forward(x), e / e.sum(-1, keepdims=True),
                               rtol=1e-5)
    e1 = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(layers.Softmax(axis=1).forward(x), e1 / e1.sum(1, keepdims=True),
                               rtol=1e-5)
    keep = x[..., :1] > 0  # mask half the rows' first feature
    mask = np.broadcast_to(np.arange(5) > 0, x.shape) | keep
    out = layers.Softmax().forward(x, mask=mask)
    z = np.where(mask, x, -np.inf)
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    prelu = layers.PReLU(shared_axes=[1])
    prelu.build((7, 5))
    alpha = RNG(1).standard_normal((1, 5)).astype(np.float32)
    prelu.set_weights([alpha])
    np.testing.assert_allclose(prelu.forward(x), np.where(x >= 0, x, alpha * x), rtol=1e-6)


def test_reshaping_layers_match_numpy():
    x = RNG(2).standard_normal((2, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(layers.UpSampling1D(3).forward(x), np.repeat(x, 3, axis=1))
    np.testing.assert_array_equal(layers.ZeroPadding1D((1, 2)).forward(x),
                                  np.pad(x, ((0, 0), (1, 2), (0, 0))))
    np.testing.assert_array_equal(layers.Cropping1D((2, 1)).forward(x), x[:, 2:5])
    np.testing.assert_array_equal(layers.Identity().forward(x), x)
    np.testing.assert_allclose(layers.Rescaling([1, 2, 3], offset=0.5).forward(x),
                               x * [1, 2, 3] + 0.5, rtol=1e-6)


def test_conv_transpose_matches_reference_every_geometry():
    rng = RNG(3)
    for strides, dilation, padding, op, K in [(1, 1, "valid", None, 3), (2, 1, "valid", None, 3),
                                              (3, 1, "valid", None, 2), (1, 2, "same", None, 3),
                                              (2, 1, "same", None, 4), (2, 1, "same", 1, 3),
                                              (3, 1, "valid", 2, 2), (2, 1, "same", None, 1)]:
        x = rng.standard_normal((2, 5, 3))
        layer = layers.Conv1DTranspose(4, K, strides=strides, dilation_rate=dilation,
                                       padding=padding, output_padding=op, dtype="float64")
        y = layer.forward(x)
        np.testing.assert_allclose(
            y, ref_conv_transpose(x, layer.get_weights()[0], strides, dilation, padding, op)
            + layer.get_weights()[1], rtol=1e-10, atol=1e-12)
        assert y.shape[1:] == layer.compute_output_shape((5, 3))


def test_depthwise_and_separable_match_reference():
    rng = RNG(4)
    x = rng.standard_normal((2, 9, 3))
    for strides, padding in [(1, "valid"), (2, "same"), (1, "same")]:
        dw = layers.DepthwiseConv1D(3, strides=strides, padding=padding, depth_multiplier=2,
                                    dtype="float64")
        y = dw.forward(x)
        kernel, bias = dw.get_weights()
        np.testing.assert_allclose(y, ref_depthwise(x, kernel, strides, padding) + bias,
                                   rtol=1e-10)
        sep = layers.SeparableConv1D(4, 3, strides=strides, padding=padding, depth_multiplier=2,
                                     dtype="float64", bias_initializer="random_normal")
        d, p, b = sep.get_weights() if sep.built else (None, None, None)
        y = sep.forward(x)
        d, p, b = sep.get_weights()
        np.testing.assert_allclose(y, ref_depthwise(x, d, strides, padding) @ p[0] + b,
                                   rtol=1e-10)


def test_normalization_layers_match_numpy():
    rng = RNG(5)
    x = rng.standard_normal((3, 8, 6)) * 3 + 1
    gn = layers.GroupNormalization(groups=2, epsilon=1e-3, dtype="float64")
    gn.build((8, 6))
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    gn.set_weights([gamma, beta])
    g = x.reshape(3, 8, 2, 3)
    ref = (g - g.mean((1, 3), keepdims=True)) / np.sqrt(g.var((1, 3), keepdims=True) + 1e-3)
    np.testing.assert_allclose(gn.forward(x), ref.reshape(x.shape) * gamma + beta, rtol=1e-10)
    un = layers.UnitNormalization(dtype="float64")
    np.testing.assert_allclose(un.forward(x), x / np.linalg.norm(x, axis=-1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(layers.UnitNormalization(axis=(1, 2), dtype="float64").forward(x),
                               x / np.sqrt((x ** 2).sum((1, 2), keepdims=True)), rtol=1e-12)
    norm = layers.Normalization(dtype="float64")
    norm.adapt(x)
    mean, var = x.reshape(-1, 6).mean(0), x.reshape(-1, 6).var(0)
    np.testing.assert_allclose(norm.forward(x), (x - mean) / np.sqrt(var), rtol=1e-10)
    np.testing.assert_allclose(norm.get_weights()[2], 24)
    batches = layers.Normalization(dtype="float64")  # adapt over batches: the same statistics
    batches.adapt([(x[:1], None), (x[1:], None)].__iter__())
    np.testing.assert_allclose(batches.get_weights()[0], mean, rtol=1e-12)
    np.testing.assert_allclose(batches.get_weights()[1], var, rtol=1e-12)
    inv = layers.Normalization(mean=mean, variance=var, invert=True, dtype="float64")
    np.testing.assert_allclose(inv.forward(norm.forward(x)), x, rtol=1e-10)
    scalar = layers.Normalization(axis=None, dtype="float64")
    scalar.adapt(x)
    np.testing.assert_allclose(scalar.forward(x), (x - x.mean()) / x.std(), rtol=1e-10)


def test_rms_norm_and_adaptive_pooling_match_numpy():
    x = RNG(16).standard_normal((2, 7, 3))
    rms = layers.RMSNormalization(epsilon=1e-6, dtype="float64")
    np.testing.assert_allclose(rms.forward(x), x / np.sqrt((x ** 2).mean(-1, keepdims=True)
                                                           + 1e-6), rtol=1e-12)
    bins = [(0, 3), (2, 5), (4, 7)]  # floor(i*7/3), ceil((i+1)*7/3)
    np.testing.assert_allclose(layers.AdaptiveAveragePooling1D(3, dtype="float64").forward(x),
                               np.stack([x[:, a:b].mean(1) for a, b in bins], 1), rtol=1e-12)
    np.testing.assert_array_equal(layers.AdaptiveMaxPooling1D(3, dtype="float64").forward(x),
                                  np.stack([x[:, a:b].max(1) for a, b in bins], 1))


def test_einsum_dense_matches_numpy():
    rng = RNG(18)
    x = rng.standard_normal((2, 5, 4))
    layer = layers.EinsumDense("...b,bhd->...hd", (3, 2), bias_axes="d", dtype="float64")
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    assert bias.shape == (2,) and y.shape == (2, 5, 3, 2)
    np.testing.assert_allclose(y, (x @ kernel.reshape(4, 6)).reshape(2, 5, 3, 2) + bias,
                               rtol=1e-12)
    right = layers.EinsumDense("ab...,bc->ac...", 3, bias_axes="c", dtype="float64")
    y = right.forward(x.transpose(0, 2, 1))                        # (2, 4, 5) -> (2, 3, 5)
    k, b = right.get_weights()
    assert b.shape == (3, 1)
    np.testing.assert_allclose(y, np.einsum("abt,bc->act", x.transpose(0, 2, 1), k) + b,
                               rtol=1e-12)


def test_dot_matches_numpy():
    rng = RNG(6)
    a, b = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3))
    np.testing.assert_allclose(layers.Dot(axes=2, dtype="float64").forward([a, b]),
                               np.einsum("btd,bsd->bts", a, b), rtol=1e-12)
    np.testing.assert_allclose(layers.Dot(axes=(1, 1), dtype="float64").forward([a, a]),
                               np.einsum("btd,bte->bde", a, a), rtol=1e-12)
    u, v = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(layers.Dot(axes=1, normalize=True, dtype="float64").forward(
        [u, v]), cos[:, None], rtol=1e-12)
    np.testing.assert_allclose(layers.dot([u, v], axes=1), (u * v).sum(1, keepdims=True),
                               rtol=1e-5)


# ----------------------------------------------------------------------------- gradients
GRADIENT_CASES = [
    lambda: layers.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.3),
    lambda: layers.LeakyReLU(0.2),
    lambda: layers.PReLU(alpha_initializer="random_normal"),
    lambda: layers.PReLU(alpha_initializer="random_normal", shared_axes=[1]),
    lambda: layers.ELU(0.5),
    lambda: layers.Softmax(),
    lambda: layers.Softmax(axis=(1, 2)),
    lambda: layers.Conv1DTranspose(3, 3, strides=2, padding="same", activation="tanh"),
    lambda: layers.Conv1DTranspose(2, 2, strides=3, output_padding=1),
    lambda: layers.Conv1DTranspose(2, 3, dilation_rate=2, bias_initializer="random_normal"),
    lambda: layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same"),
    lambda: layers.SeparableConv1D(3, 2, strides=2, depth_multiplier=2, activation="tanh"),
    lambda: layers.UpSampling1D(2),
    lambda: layers.Rescaling([0.5, 2.0, -1.0, 3.0], offset=1.0),
    lambda: layers.ZeroPadding1D((2, 1)),
    lambda: layers.Cropping1D((1, 2)),
    lambda: layers.GroupNormalization(groups=2, gamma_initializer="random_normal"),
    lambda: layers.GroupNormalization(groups=-1, center=False),
    lambda: layers.UnitNormalization(),
    lambda: layers.RMSNormalization(),
    lambda: layers.AdaptiveAveragePooling1D(3),
    lambda: layers.AdaptiveMaxPooling1D(5),
    lambda: layers.EinsumDense("abc,cd->abd", (7, 3), bias_axes="d", activation="tanh"),
    lambda: layers.EinsumDense("...b,bhd->...hd", (2, 3), bias_axes="hd"),
    lambda: layers.EinsumDense("ab...,bc->ac...", (5,), bias_axes="c"),
    lambda: layers.EinsumDense("abc,cd->ad", (3,)),
    lambda: layers.Normalization(mean=0.5, variance=2.0),
    lambda: layers.Normalization(mean=0.5, variance=2.0, invert=True),
]


@pytest.mark.parametrize("make", GRADIENT_CASES, ids=lambda f: str(GRADIENT_CASES.index(f)))
def test_gradients_by_finite_differences(make):
    rng = RNG(7)
    layer = make()
    layer.dtype = np.dtype("float64")
    x = rng.standard_normal((2, 7, 4))
    layer.build((7, 4))
    check_gradients(layer, [x], rng)


def test_noise_layers_in_training_and_inference():
    rng = RNG(8)
    x = rng.standard_normal((64, 50, 8)).astype(np.float32) + 2
    for layer in (layers.SpatialDropout1D(0.3, seed=1), layers.GaussianNoise(0.5, seed=1),
                  layers.GaussianDropout(0.3, seed=1), layers.AlphaDropout(0.3, seed=1)):
        np.testing.assert_array_equal(layer.forward(x), x)       # inference: the identity
        y = layer.forward(x, training=True)
        d = layer.backward(np.ones_like(y))
        assert y.shape == x.shape and not np.allclose(y, x)
        if isinstance(layer, layers.GaussianNoise):
            np.testing.assert_array_equal(d, 1)
            assert abs((y - x).std() - 0.5) < 0.02
        else:  # multiplicative: the gradient is the factor
            np.testing.assert_allclose(d * x + (y - d * x), y, rtol=1e-5)
    y = layers.SpatialDropout1D(0.5, seed=2).forward(x, training=True)
    dropped = (y == 0).all(axis=1)                    # whole channels of a sample
    assert 0.3 < dropped.mean() < 0.7 and ((y == 0).any(axis=1) == dropped).all()
    # AlphaDropout keeps the mean and variance of standardised inputs.
    z = rng.standard_normal((400, 50, 8)).astype(np.float32)
    a = layers.AlphaDropout(0.2, seed=3).forward(z, training=True)
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02


# ----------------------------------------------------------------------------- PyTorch
def test_conv_transpose_and_depthwise_match_torch():
    torch = pytest.importorskip("torch")
    rng = RNG(9)
    x = rng.standard_normal((3, 11, 4))
    for strides, K, dilation, padding in [(2, 3, 1, "valid"), (1, 3, 2, "valid"),
                                          (2, 4, 1, "same"), (3, 5, 1, "same")]:
        layer = layers.Conv1DTranspose(5, K, strides=strides, dilation_rate=dilation,
                                       padding=padding, dtype="float64",
                                       bias_initializer="random_normal")
        y = layer.forward(x, training=True)
        kernel, bias = layer.get_weights()
        span = (K - 1) * dilation + 1
        pad = 0 if padding == "valid" else (span - strides + 1) // 2 if span > strides else 0
        out_pad = y.shape[1] - ((11 - 1) * strides - 2 * pad + span)
        conv = torch.nn.ConvTranspose1d(4, 5, K, stride=strides, padding=pad,
                                        output_padding=out_pad, dilation=dilation).double()
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(kernel.transpose(2, 1, 0)))
            conv.bias.copy_(torch.from_numpy(bias))
        xt = torch.from_numpy(x.transpose(0, 2, 1)).requires_grad_()
        yt = conv(xt)
        np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 1), rtol=1e-10)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g.transpose(0, 2, 1)))
        dx = layer.backward(g)
        np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 1), rtol=1e-10)
        np.testing.assert_allclose(layer.grads[0], conv.weight.grad.numpy().transpose(2, 1, 0),
                                   rtol=1e-10)
    dw = layers.DepthwiseConv1D(3, depth_multiplier=2, dtype="float64")
    y = dw.forward(x)
    k = dw.get_weights()[0]                                   # (K, C, M)
    conv = torch.nn.Conv1d(4, 8, 3, groups=4, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(k.reshape(3, 8).T[:, None, :].copy()))
    np.testing.assert_allclose(
        y - dw.get_weights()[1],
        conv(torch.from_numpy(x.transpose(0, 2, 1))).detach().numpy().transpose(0, 2, 1),
        rtol=1e-10)


def test_activations_and_group_norm_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG(10).standard_normal((2, 6, 4))
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(layers.ELU(0.7, dtype="float64").forward(x),
                               F.elu(xt, 0.7).numpy(), rtol=1e-12)
    np.testing.assert_allclose(layers.LeakyReLU(0.2, dtype="float64").forward(x),
                               F.leaky_relu(xt, 0.2).numpy(), rtol=1e-12)
    gn = layers.GroupNormalization(2, epsilon=1e-5, dtype="float64")
    np.testing.assert_allclose(gn.forward(x), F.group_norm(xt.transpose(1, 2), 2, eps=1e-5)
                               .transpose(1, 2).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layers.UnitNormalization(dtype="float64").forward(x),
                               F.normalize(xt, dim=-1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(layers.Softmax(dtype="float64").forward(x),
                               torch.softmax(xt, -1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(layers.RMSNormalization(epsilon=1e-6, dtype="float64").forward(x),
                               F.rms_norm(xt, (4,), eps=1e-6).numpy(), rtol=1e-10)
    ct = xt.transpose(1, 2)  # PyTorch's (batch, channels, steps)
    for mine, theirs in [(layers.AdaptiveAveragePooling1D(4), F.adaptive_avg_pool1d(ct, 4)),
                         (layers.AdaptiveMaxPooling1D(4), F.adaptive_max_pool1d(ct, 4)),
                         (layers.UpSampling1D(3), F.interpolate(ct, scale_factor=3)),
                         (layers.ZeroPadding1D((2, 1)), F.pad(ct, (2, 1)))]:
        mine.dtype = np.dtype("float64")
        np.testing.assert_allclose(mine.forward(x), theirs.transpose(1, 2).numpy(), rtol=1e-12)
    # PReLU: forward and the gradient of its alpha
    prelu = layers.PReLU(shared_axes=[1], alpha_initializer="random_normal", dtype="float64")
    y = prelu.forward(x, training=True)
    alpha = torch.from_numpy(prelu.get_weights()[0][0].copy()).requires_grad_()
    yt = F.prelu(ct, alpha).transpose(1, 2)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    g = np.random.default_rng(0).standard_normal(y.shape)
    yt.backward(torch.from_numpy(g))
    prelu.backward(g)
    np.testing.assert_allclose(prelu.grads[0][0], alpha.grad.numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------- TF-Keras
KERAS_CASES = [
    ("ReLU", dict(max_value=1.5, negative_slope=0.1, threshold=0.2)),
    ("LeakyReLU", dict(negative_slope=0.2)),
    ("PReLU", dict(shared_axes=[1])),
    ("ELU", dict(alpha=0.7)),
    ("Softmax", dict(axis=-1)),
    ("Conv1DTranspose", dict(filters=5, kernel_size=3, strides=2, padding="same")),
    ("Conv1DTranspose", dict(filters=4, kernel_size=2, strides=3, activation="tanh")),
    ("Conv1DTranspose", dict(filters=4, kernel_size=3, dilation_rate=2)),
    ("Conv1DTranspose", dict(filters=3, kernel_size=3, strides=2, padding="same",
                             output_padding=1)),
    ("SeparableConv1D", dict(filters=4, kernel_size=3, padding="same", depth_multiplier=2)),
    ("SeparableConv1D", dict(filters=3, kernel_size=2, strides=2, activation="relu")),
    ("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=2)),
    ("DepthwiseConv1D", dict(kernel_size=2, strides=2, padding="same")),
    ("UpSampling1D", dict(size=3)),
    ("ZeroPadding1D", dict(padding=(1, 2))),
    ("Cropping1D", dict(cropping=(2, 1))),
    ("Identity", {}),
    ("Rescaling", dict(scale=0.5, offset=-1.0)),
    ("GroupNormalization", dict(groups=2)),
    ("GroupNormalization", dict(groups=-1)),
    ("UnitNormalization", {}),
    ("RMSNormalization", {}),
    ("AdaptiveAveragePooling1D", dict(output_size=4)),
    ("AdaptiveMaxPooling1D", dict(output_size=5)),
    ("EinsumDense", dict(equation="abc,cd->abd", output_shape=(9, 4), bias_axes="d")),
    ("EinsumDense", dict(equation="...b,bhd->...hd", output_shape=(2, 3), bias_axes="hd")),
    ("EinsumDense", dict(equation="ab...,bc->ac...", output_shape=(5,), bias_axes="c")),
    ("Normalization", {}),
    # Random in training (their draws differ from Keras's): compared at inference, and with
    # no gradient-carrying weight after them the SGD comparison checks the layers before.
]


@pytest.fixture(scope="module")
def keras():
    from _keras import import_keras
    return import_keras()


@pytest.mark.parametrize("name,kwargs", KERAS_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(KERAS_CASES)])
def test_matches_tf_keras_with_copied_weights(keras, name, kwargs):
    """Dense(6) -> layer, from the same weights: predictions, then every weight after three
    SGD steps (the Dense weights carry the layer's input gradient)."""
    rng = RNG(11)
    x = rng.standard_normal((8, 9, 3)).astype(np.float32)

    def build(L):
        return [L.InputLayer(shape=(9, 3)), L.Dense(6), getattr(L, name)(**kwargs)]

    mine = fastrnn.Sequential(build(layers))
    mine.build()
    theirs = keras.Sequential(build(keras.layers))
    y = rng.standard_normal((8,) + mine.output_shape[1:]).astype(np.float32)
    assert tuple(theirs.output_shape[1:]) == tuple(mine.output_shape[1:])
    assert_keras_parity(mine, theirs, x, y, rng)


def test_dot_and_merge_functions_match_tf_keras(keras):
    rng = RNG(12)
    a = rng.standard_normal((8, 5, 3)).astype(np.float32)
    b = rng.standard_normal((8, 7, 3)).astype(np.float32)

    def build(L, merge):
        ia, ib = L.Input((5, 3)), L.Input((7, 3))
        da, db = L.Dense(4)(ia), L.Dense(4)(ib)
        return ia, ib, merge(L, da, db)

    for merge in (lambda L, u, v: L.dot([u, v], axes=2),
                  lambda L, u, v: L.Dot(axes=(2, 2), normalize=True)([u, v]),
                  lambda L, u, v: L.concatenate([u, L.Cropping1D((1, 1))(v)], axis=-1),
                  lambda L, u, v: L.add([u, L.Cropping1D((0, 2))(v)]),
                  lambda L, u, v: L.multiply([u, L.Cropping1D((2, 0))(v)])):
        ia, ib, out = build(layers, merge)
        mine = fastrnn.Model([ia, ib], out)
        ka, kb, kout = build(keras.layers, merge)
        theirs = keras.Model([ka, kb], kout)
        y = rng.standard_normal((8,) + mine.output_shape[1:]).astype(np.float32)
        assert_keras_parity(mine, theirs, [a, b], y, rng)


def test_noise_layers_are_the_identity_at_inference_as_in_tf_keras(keras):
    x = RNG(15).standard_normal((4, 9, 3)).astype(np.float32)
    for name, kwargs in [("SpatialDropout1D", dict(rate=0.3)), ("GaussianNoise", dict(stddev=0.3)),
                         ("GaussianDropout", dict(rate=0.3)), ("AlphaDropout", dict(rate=0.3))]:
        mine, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
        np.testing.assert_array_equal(mine.forward(x), np.asarray(theirs(x, training=False)))


def test_normalization_adapt_matches_tf_keras(keras):
    x = RNG(13).standard_normal((50, 9, 3)).astype(np.float32) * 4 + 2
    for axis in (-1, None, (1, 2)):
        mine, theirs = layers.Normalization(axis=axis), keras.layers.Normalization(axis=axis)
        mine.adapt(x)
        theirs.adapt(x)
        for a, b in zip(mine.get_weights()[:2], theirs.get_weights()[:2]):  # mean, variance
            np.testing.assert_allclose(a, b, rtol=1e-5)
        assert mine.get_weights()[2] == x.size / x.shape[-1] if axis == -1 else True
        np.testing.assert_allclose(mine.forward(x), np.asarray(theirs(x)), rtol=1e-4,
                                   atol=1e-5)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make,match", [
    (lambda: layers.ReLU(max_value=-1), "`max_value`"),
    (lambda: layers.ReLU(negative_slope=-0.1), "`negative_slope`"),
    (lambda: layers.ReLU(threshold=None), "`threshold`"),
    (lambda: layers.LeakyReLU(negative_slope=-1), "`negative_slope`"),
    (lambda: layers.PReLU(shared_axes=[0]), "`shared_axes`"),
    (lambda: layers.Softmax(axis="last"), "`axis`"),
    (lambda: layers.Conv1DTranspose(0, 3), "`filters`"),
    (lambda: layers.Conv1DTranspose(2, 0), "`kernel_size`"),
    (lambda: layers.Conv1DTranspose(2, 3, strides=2, output_padding=2), "`output_padding`"),
    (lambda: layers.Conv1DTranspose(2, 3, padding="causal"), "`padding`"),
    (lambda: layers.Conv1DTranspose(2, 3, strides=2, dilation_rate=2), "`dilation_rate`"),
    (lambda: layers.SeparableConv1D(2, 3, depth_multiplier=0), "`depth_multiplier`"),
    (lambda: layers.DepthwiseConv1D(3, padding="causal"), "`padding`"),
    (lambda: layers.UpSampling1D(0), "`size`"),
    (lambda: layers.ZeroPadding1D((1, 2, 3)), "`padding`"),
    (lambda: layers.Cropping1D(-1), "`cropping`"),
    (lambda: layers.Rescaling("a"), "`scale`"),
    (lambda: layers.SpatialDropout1D(1.0), "`rate`"),
    (lambda: layers.GaussianNoise(-0.1), "`stddev`"),
    (lambda: layers.GaussianDropout(1.5), "`rate`"),
    (lambda: layers.AlphaDropout(0.5, noise_shape=(0, 1)), "`noise_shape`"),
    (lambda: layers.GroupNormalization(groups=0), "`groups`"),
    (lambda: layers.UnitNormalization(axis="x"), "`axis`"),
    (lambda: layers.Normalization(mean=1.0), "`mean` and `variance`"),
    (lambda: layers.Dot(axes=0), "`axes`"),
    (lambda: layers.AdaptiveMaxPooling1D(0), "`output_size`"),
    (lambda: layers.EinsumDense("ab->b", 3), "`equation`"),
    (lambda: layers.EinsumDense("abc,cd->abe", (5, 3)), "`equation`"),
    (lambda: layers.EinsumDense("abc,cd->abd", (3,)), "`output_shape`"),
    (lambda: layers.EinsumDense("abc,cd->abd", (5, 3), bias_axes="x"), "`bias_axes`"),
    (lambda: layers.RMSNormalization(epsilon=0), "`epsilon`"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        make()


def test_bad_inputs_give_clear_errors():
    x = np.zeros((2, 5, 4), np.float32)
    with pytest.raises(ValueError, match="rank 3"):
        layers.Conv1DTranspose(2, 3).forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="groups"):
        layers.GroupNormalization(groups=3).forward(x)
    with pytest.raises(ValueError, match="at least one step"):
        layers.Cropping1D((3, 2)).forward(x)
    with pytest.raises(ValueError, match="`data`.*no values"):
        layers.Normalization().adapt(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="`data`.*no values"):
        layers.Normalization().adapt(iter([]))
    with pytest.raises(ValueError, match="out of range"):
        layers.Softmax(axis=3).forward(x)
    with pytest.raises(ValueError, match="dot axes must have one size"):
        layers.Dot(axes=2).forward([x, np.zeros((2, 5, 3), np.float32)])
    with pytest.raises(ValueError, match="exactly 2"):
        layers.Dot(axes=2).forward([x, x, x])
    with pytest.raises(ValueError, match="broadcastable"):
        layers.Softmax().forward(x, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="shorter than the kernel"):
        layers.DepthwiseConv1D(7).forward(x)
    layer = layers.SeparableConv1D(3, 2)
    layer.forward(x)
    with pytest.raises(RuntimeError, match="backward needs"):
        layer.backward(np.zeros((2, 4, 3), np.float32))


def test_aliases_and_config_round_trips(tmp_path):
    assert layers.MaxPool1D is layers.MaxPooling1D and layers.AvgPool1D is \
        layers.AveragePooling1D
    assert layers.GlobalAvgPool1D is layers.GlobalAveragePooling1D
    assert layers.GlobalMaxPool1D is layers.GlobalMaxPooling1D
    assert layers.Convolution1D is layers.Conv1D
    assert layers.Convolution1DTranspose is layers.Conv1DTranspose
    assert layers.SeparableConvolution1D is layers.SeparableConv1D
    model = fastrnn.Sequential([
        layers.InputLayer(shape=(None, 3)), layers.SeparableConv1D(4, 3, padding="same"),
        layers.PReLU(shared_axes=[1]), layers.Conv1DTranspose(3, 2, strides=2),
        layers.GroupNormalization(groups=3), layers.Normalization(mean=0.1, variance=2.0),
        layers.ReLU(max_value=6.0), layers.SpatialDropout1D(0.1), layers.Cropping1D(1),
        layers.UpSampling1D(2), layers.ZeroPadding1D(1), layers.DepthwiseConv1D(2),
        layers.UnitNormalization(), layers.Softmax(),
    ])
    x = RNG(14).standard_normal((2, 6, 3)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    again = fastrnn.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
