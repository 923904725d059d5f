"""Conv1D: the kernel against the NumPy reference, finite differences, PyTorch's nn.Conv1d,
TF-Keras's Conv1D (every padding/stride/dilation combination and the book models), the layer's
config, saving and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastrnn
from _keras import import_keras, keras_predict
from _tolerance import assert_within, rounding_rtol
from fastrnn import layers, ops
from fastrnn import reference as ref
from fastrnn.saving import export_torch_state_dict, import_torch_state_dict

# (B, T, C, K, O, strides, padding, dilation, groups): awkward sizes, every padding.
CASES = [
    (3, 20, 4, 3, 6, 1, "valid", 1, 1),
    (3, 20, 4, 3, 6, 2, "same", 1, 2),
    (2, 17, 5, 4, 7, 1, "causal", 3, 1),
    (2, 9, 1, 4, 20, 2, "valid", 1, 1),
    (2, 11, 6, 1, 3, 1, "same", 1, 3),
    (4, 5, 2, 5, 2, 3, "same", 1, 1),
    (2, 13, 3, 1, 4, 1, "valid", 1, 1),
    (1, 7, 3, 7, 1, 1, "valid", 1, 1),
    (5, 31, 2, 2, 5, 1, "causal", 8, 1),
    (2, 12, 4, 4, 4, 1, "same", 2, 4),
    (3, 10, 2, 2, 3, 4, "causal", 1, 1),
]


def _arrays(case, dtype, seed=0):
    B, T, C, K, O, s, pad, d, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C)).astype(dtype)
    kernel = rng.standard_normal((K, C // g, O)).astype(dtype)
    bias = rng.standard_normal(O).astype(dtype)
    return x, kernel, bias, dict(strides=s, padding=pad, dilation_rate=d, groups=g)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_matches_reference(case, dtype):
    x, kernel, bias, geo = _arrays(case, dtype)
    y = ops.conv1d_forward(x, kernel, bias, **geo)
    y_ref = ref.conv1d_forward(x, kernel, bias, **geo)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    d_y = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    got = ops.conv1d_backward(x, kernel, d_y, **geo)
    want = ref.conv1d_backward(x, kernel, d_y, **geo)
    for name in ("x", "kernel", "bias"):
        np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol * 10, err_msg=name)
    no = ops.conv1d_backward(x, kernel, d_y, **geo, use_bias=False, input_grad=False)
    assert no["x"] is None and no["bias"] is None
    np.testing.assert_allclose(no["kernel"], want["kernel"], rtol=tol, atol=tol * 10)


def test_output_lengths_are_keras_for_every_combination():
    for T, K, s, pad, d in itertools.product((1, 5, 12, 13), (1, 2, 3, 5), (1, 2, 3),
                                             ("valid", "same", "causal"), (1, 2)):
        span = (K - 1) * d + 1
        want = {"valid": (T - span) // s + 1 if T >= span else 0,
                "same": -(-T // s), "causal": -(-T // s)}[pad]
        assert ops.conv1d_output_length(T, K, s, pad, d) == want, (T, K, s, pad, d)
        if want > 0:
            x = np.ones((1, T, 1))
            assert ops.conv1d_forward(x, np.ones((K, 1, 1)), None, s, pad, d).shape[1] == want
    assert ops.conv1d_output_length(None, 3, 2, "same") is None


@pytest.mark.parametrize("case", CASES[:6])
def test_gradients_by_finite_differences(case):
    x, kernel, bias, geo = _arrays(case, np.float64, seed=3)
    w = np.random.default_rng(4).standard_normal(ops.conv1d_forward(x, kernel, bias, **geo).shape)

    def loss(x_, k_, b_):
        return float(np.sum(ops.conv1d_forward(x_, k_, b_, **geo) * w))

    got = ops.conv1d_backward(x, kernel, w, **geo)
    eps = 1e-6
    for name, arr in (("x", x), ("kernel", kernel), ("bias", bias)):
        flat = arr.reshape(-1)
        for i in np.random.default_rng(5).choice(flat.size, size=min(12, flat.size),
                                                 replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss(x, kernel, bias)
            flat[i] = old - eps
            down = loss(x, kernel, bias)
            flat[i] = old
            assert got[name].reshape(-1)[i] == pytest.approx((up - down) / (2 * eps),
                                                              rel=1e-6, abs=1e-7), (name, i)


def test_threads_give_the_same_result():
    x, kernel, bias, geo = _arrays((64, 120, 14, 24, 8, 1, "valid", 1, 1), np.float32)
    d_y = np.ones((64, 97, 8), np.float32)
    before = fastrnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fastrnn.set_num_threads(n)
            results.append((ops.conv1d_forward(x, kernel, bias, **geo),
                            ops.conv1d_backward(x, kernel, d_y, **geo)))
    finally:
        fastrnn.set_num_threads(before)
    # y sums K * C = 336 products; the kernel's gradient sums B * T_out = 6208 rows of them,
    # the bias's 6208 values; d_x sums K * O = 192. Other thread counts are other row slices
    # for OpenBLAS: equal within rounding, not bits.
    B, T, C = x.shape
    K, _, O = kernel.shape
    rows = B * results[0][0].shape[1]
    for y, g in results[1:]:
        assert_within(y, results[0][0], rounding_rtol(np.float32, terms=K * C), what="y")
        assert_within(g["kernel"], results[0][1]["kernel"],
                      rounding_rtol(np.float32, terms=1, reduction=rows), what="d_kernel")
        assert_within(g["bias"], results[0][1]["bias"],
                      rounding_rtol(np.float32, terms=1, reduction=rows), what="d_bias")
        assert_within(g["x"], results[0][1]["x"], rounding_rtol(np.float32, terms=K * O),
                      what="d_x")


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("case", CASES)
def test_layer_matches_torch_conv1d(case):
    torch = pytest.importorskip("torch")
    x, _, _, geo = _arrays(case, np.float64)
    B, T, C, K, O, s, pad, d, g = case
    layer = layers.Conv1D(O, K, dtype="float64", seed=7, **geo, bias_initializer="uniform")
    y = layer.forward(x, training=True)
    conv = torch.nn.Conv1d(C, O, K, stride=s, dilation=d, groups=g).double()
    import_torch_state_dict(layer, {k: v.detach() for k, v in conv.state_dict().items()})
    np.testing.assert_array_equal(export_torch_state_dict(layer)["weight"],
                                  conv.weight.detach().numpy())
    y = layer.forward(x, training=True)
    span = (K - 1) * d + 1
    left, right = {"valid": (0, 0), "causal": (span - 1, 0)}.get(pad, (None, None))
    if pad == "same":
        total = max((-(-T // s) - 1) * s + span - T, 0)
        left, right = total // 2, total - total // 2
    xt = torch.from_numpy(x).transpose(1, 2).requires_grad_(True)
    yt = conv(torch.nn.functional.pad(xt, (left, right))).transpose(1, 2)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(2).standard_normal(y.shape)
    yt.backward(torch.from_numpy(w))
    d_x = layer.backward(w)
    np.testing.assert_allclose(d_x, xt.grad.transpose(1, 2).numpy(), rtol=1e-10, atol=1e-12)
    d_kernel, d_bias = layer.grads
    np.testing.assert_allclose(d_kernel, conv.weight.grad.numpy().transpose(2, 1, 0),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d_bias, conv.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_torch_state_dict_round_trip_and_errors():
    layer = layers.Conv1D(6, 3, groups=2)
    layer.build((None, 4))
    sd = export_torch_state_dict(layer)
    assert sd["weight"].shape == (6, 2, 3) and sd["bias"].shape == (6,)
    other = layers.Conv1D(6, 3, groups=2)
    other.build((None, 4))
    import_torch_state_dict(other, sd)
    for a, b in zip(layer.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="'weight' has shape"):
        import_torch_state_dict(other, {"weight": np.zeros((6, 4, 3))})
    with pytest.raises(ValueError, match="no 'weight'"):
        import_torch_state_dict(other, {"kernel": np.zeros((6, 2, 3))})
    nob = layers.Conv1D(6, 3, use_bias=False)
    nob.build((None, 4))
    with pytest.raises(ValueError, match="use_bias=False"):
        import_torch_state_dict(nob, {"weight": np.zeros((6, 4, 3)), "bias": np.ones(6)})


# ----------------------------------------------------------------------------- TF-Keras
@pytest.fixture(scope="module")
def keras():
    return import_keras()


KERAS_COMBOS = [(pad, s, d) for pad in ("valid", "same", "causal") for s in (1, 2, 3)
                for d in (1, 2, 3) if not (s > 1 and d > 1)]


@pytest.mark.parametrize("padding,strides,dilation", KERAS_COMBOS)
def test_matches_tf_keras(keras, padding, strides, dilation):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 13, 4)).astype(np.float32)
    for kernel_size, groups in ((3, 1), (2, 2), (1, 4)):
        mine = layers.Conv1D(6 if groups != 4 else 4, kernel_size, strides=strides,
                             padding=padding, dilation_rate=dilation, groups=groups,
                             activation="tanh", bias_initializer="uniform", seed=1)
        y = mine.forward(x)
        theirs = keras.layers.Conv1D(mine.filters, kernel_size, strides=strides, padding=padding,
                                     dilation_rate=dilation, groups=groups, activation="tanh")
        theirs.build((None, None, 4))
        theirs.set_weights(mine.get_weights())
        want = keras_predict(theirs, x)
        assert y.shape == want.shape
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
        assert mine.compute_output_shape((None, 4)) == (None, mine.filters)
        assert mine.compute_output_shape((13, 4)) == tuple(
            theirs.compute_output_shape((None, 13, 4))[1:])


def test_book_models_match_tf_keras_with_copied_weights(keras):
    x = np.random.default_rng(5).standard_normal((8, 50, 1)).astype(np.float32)

    def conv_gru(L):
        return [L.Conv1D(20, kernel_size=4, strides=2, padding="valid"),
                L.GRU(20, return_sequences=True), L.GRU(20, return_sequences=True),
                L.TimeDistributed(L.Dense(10))]

    def wavenet(L):
        return ([L.Conv1D(20, 2, padding="causal", activation="relu", dilation_rate=rate)
                 for rate in (1, 2, 4, 8) * 2] + [L.Conv1D(10, 1)])

    for build in (conv_gru, wavenet):
        mine = fastrnn.Sequential([layers.InputLayer(shape=[None, 1])] + build(layers))
        mine.build()
        theirs = keras.models.Sequential([keras.layers.InputLayer(shape=[None, 1])]
                                         + build(keras.layers))
        theirs.set_weights(mine.get_weights())
        np.testing.assert_allclose(mine.predict(x), keras_predict(theirs, x), rtol=1e-4,
                                   atol=1e-5)


# ----------------------------------------------------------------------------- the layer
def test_layer_config_round_trip_and_saving(tmp_path):
    layer = layers.Conv1D(5, (3,), strides=2, padding="same", groups=1, activation="relu",
                          use_bias=False, name="c")
    clone = layers.deserialize(layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    assert layers.Conv1D(2, 2).name.startswith("conv1d")
    model = fastrnn.Sequential([layers.Conv1D(4, 3, padding="causal", dilation_rate=2,
                                              input_shape=[None, 2]),
                                layers.MaxPooling1D(2), layers.Conv1D(3, 2),
                                layers.GlobalAveragePooling1D(), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 16, 2)), rng.standard_normal((32, 1))
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.zip")
    loaded = fastrnn.load_model(tmp_path / "m.zip")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(filters=0, kernel_size=3), "`filters`"),
    (dict(filters=2, kernel_size=0), "`kernel_size`"),
    (dict(filters=2, kernel_size=(3, 3)), "`kernel_size`"),
    (dict(filters=2, kernel_size=3, strides=0), "`strides`"),
    (dict(filters=2, kernel_size=3, strides=-1), "`strides`"),
    (dict(filters=2, kernel_size=3, dilation_rate=0), "`dilation_rate`"),
    (dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), "dilation_rate > 1"),
    (dict(filters=3, kernel_size=3, groups=2), "`groups`"),
    (dict(filters=2, kernel_size=3, groups=0), "`groups`"),
    (dict(filters=2, kernel_size=3, padding="full"), "`padding`"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.Conv1D(**kwargs)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="not divisible by groups=2"):
        layers.Conv1D(4, 3, groups=2).build((10, 3))
    with pytest.raises(ValueError, match="shorter than the kernel's receptive field"):
        layers.Conv1D(4, 5, dilation_rate=2).build((8, 3))
    with pytest.raises(ValueError, match="rank 3"):
        layers.Conv1D(4, 3).build((8,))
    layer = layers.Conv1D(4, 5)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="receptive field"):
        layer.forward(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="rank 3"):
        layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="feature count 3"):
        layer.forward(np.zeros((2, 9, 2), np.float32))
    y = layer.forward(np.ones((2, 9, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"output's shape \(2, 5, 4\)"):
        layer.backward(np.ones((2, 4, 4)))
    assert layer.backward(np.ones_like(y)).shape == (2, 9, 3)  # still usable
    # A model whose length reaches zero is refused when it is built, not at the first batch.
    with pytest.raises(ValueError, match="output would be empty"):
        fastrnn.Sequential([layers.Conv1D(2, 3, input_shape=[6, 1]), layers.MaxPooling1D(2),
                            layers.Conv1D(2, 3)]).predict(np.zeros((1, 6, 1)))


def test_ops_and_core_refuse_bad_arguments():
    x = np.zeros((2, 8, 4))
    k = np.zeros((3, 4, 5))
    with pytest.raises(ValueError, match="`groups`"):
        ops.conv1d_forward(x, np.zeros((3, 4, 5)), groups=3)
    with pytest.raises(ValueError, match="`kernel`"):
        ops.conv1d_forward(x, np.zeros((3, 3, 5)))
    with pytest.raises(ValueError, match="`x`: expected a 3-D"):
        ops.conv1d_forward(np.zeros((8, 4)), k)
    with pytest.raises(TypeError, match="dtype"):
        ops.conv1d_forward(x, k.astype(np.float32))
    with pytest.raises(ValueError, match="`d_y`"):
        ops.conv1d_backward(x, k, np.zeros((2, 7, 5)))
    from fastrnn import _core

    with pytest.raises(ValueError, match="pad_left"):
        _core.conv1d_forward(x, k, None, 1, 1, 3, 0, 1)  # padding beyond the kernel
    with pytest.raises(ValueError, match="`stride`"):
        _core.conv1d_forward(x, k, None, 0, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="`dilation`"):
        _core.conv1d_forward(x, k, None, 1, -2, 0, 0, 1)
    with pytest.raises(ValueError, match="fewer than the receptive field"):
        _core.conv1d_forward(np.zeros((2, 2, 4)), k, None, 1, 1, 0, 0, 1)


def test_book_models_train_like_tf_keras_from_the_same_weights(keras):
    """Three SGD steps of each book model, from copied weights on the same batch: the weights
    agree after training, so every gradient (Conv1D, GRU, TimeDistributed) matches Keras's."""
    from fastrnn import optimizers

    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 50, 1)).astype(np.float32)

    def conv_gru(L):
        return [L.InputLayer(shape=[None, 1]),
                L.Conv1D(20, kernel_size=4, strides=2, padding="valid"),
                L.GRU(20, return_sequences=True), L.TimeDistributed(L.Dense(10))]

    def wavenet(L):
        return ([L.InputLayer(shape=[None, 1])]
                + [L.Conv1D(20, 2, padding="causal", activation="relu", dilation_rate=rate)
                   for rate in (1, 2, 4, 8)] + [L.Conv1D(10, 1)])

    for build, steps in ((conv_gru, 24), (wavenet, 50)):
        y = rng.standard_normal((16, steps, 10)).astype(np.float32)
        mine = fastrnn.Sequential(build(layers))
        mine.compile(loss="mse", optimizer=optimizers.SGD(0.5))
        mine.build()
        theirs = keras.models.Sequential(build(keras.layers))
        theirs.compile(loss="mse", optimizer=keras.optimizers.SGD(0.5))
        theirs.set_weights(mine.get_weights())
        mine.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        theirs.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        for a, b in zip(mine.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
