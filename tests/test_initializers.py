"""Initializers: Keras's fan rules and scales (checked by sample statistics on large shapes),
orthogonality, truncation, reproducibility, dtypes and the `get` registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastrnn import initializers


def test_compute_fans_follows_keras():
    assert initializers.compute_fans(()) == (1, 1)
    assert initializers.compute_fans((7,)) == (7, 7)
    assert initializers.compute_fans((3, 20)) == (3, 20)  # an LSTM kernel (I, 4H)
    assert initializers.compute_fans((2, 5, 3, 4)) == (30, 40)  # receptive field 10


# (name, expected standard deviation for shape (fan_in, fan_out), bounded support or None)
FAN_IN, FAN_OUT = 400, 600
SCALES = [
    ("glorot_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("glorot_normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ("he_normal", math.sqrt(2 / FAN_IN), None),
    ("he_uniform", math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ("lecun_normal", math.sqrt(1 / FAN_IN), None),
    ("lecun_uniform", math.sqrt(1 / FAN_IN), math.sqrt(3 / FAN_IN)),
    ("random_normal", 0.05, None),
    ("random_uniform", 0.1 / math.sqrt(12), 0.05),
]


@pytest.mark.parametrize(("name", "std", "limit"), SCALES, ids=[s[0] for s in SCALES])
def test_variance_and_support(name, std, limit):
    w = initializers.get(name)((FAN_IN, FAN_OUT), rng=np.random.default_rng(0))
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    assert abs(w.mean()) < 0.01 * std  # 240,000 samples: the sampling error is std / 490
    assert w.std() == pytest.approx(std, rel=0.01)
    if limit is not None:
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit


@pytest.mark.parametrize("name", ["glorot_normal", "he_normal", "lecun_normal"])
def test_normal_variance_scaling_is_truncated_at_two_sigma(name):
    w = initializers.get(name)((FAN_IN, FAN_OUT), dtype=np.float64, rng=np.random.default_rng(1))
    # the pre-truncation stddev is the target divided by 0.8796 so the result has the target
    sigma = w.std() / 0.87962566103423978
    assert np.abs(w).max() <= 2 * sigma * 1.01
    assert np.abs(w).max() > 1.9 * sigma


def test_truncated_normal_bounds_and_mean():
    init = initializers.TruncatedNormal(mean=1.0, stddev=0.5)
    w = init((200, 200), dtype=np.float64, rng=np.random.default_rng(2))
    assert w.min() >= 0.0 and w.max() <= 2.0
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    assert w.std() == pytest.approx(0.5 * 0.8796, rel=0.02)


@pytest.mark.parametrize("shape", [(5, 20), (20, 5), (7, 7), (1, 12)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    w = initializers.Orthogonal(gain=1.5)(shape, dtype=np.float64, rng=np.random.default_rng(3))
    rows, cols = shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_recurrent_kernel_is_one_matrix_not_four_blocks():
    h = 6
    w = initializers.get("orthogonal")((h, 4 * h), dtype=np.float64, rng=np.random.default_rng(4))
    np.testing.assert_allclose(w @ w.T, np.eye(h), atol=1e-12)
    block = w[:, :h]  # one gate's block alone is not orthogonal
    assert not np.allclose(block @ block.T, np.eye(h), atol=1e-3)


def test_orthogonal_higher_rank_and_bad_shapes():
    w = initializers.Orthogonal()((2, 3, 4), dtype=np.float64, rng=np.random.default_rng(5))
    flat = w.reshape(6, 4)
    np.testing.assert_allclose(flat.T @ flat, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 axes"):
        initializers.Orthogonal()((5,))
    assert initializers.Orthogonal()((0, 3)).shape == (0, 3)


def test_orthogonal_is_not_biased_by_qr_signs():
    # Without the sign fix the diagonal of a square result is biased positive.
    diags = [
        initializers.Orthogonal()((4, 4), dtype=np.float64, rng=np.random.default_rng(s))[0, 0]
        for s in range(200)
    ]
    assert abs(np.mean(np.sign(diags))) < 0.25


def test_constants():
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("ones")((4,), dtype=np.float64), np.ones(4))
    np.testing.assert_array_equal(initializers.Constant(0.25)((3,)), np.full(3, 0.25))
    np.testing.assert_array_equal(initializers.get("constant")((3,)), np.zeros(3))


@pytest.mark.parametrize("name", ["glorot_uniform", "orthogonal", "he_normal", "random_uniform"])
def test_reproducible_from_seed_or_rng(name):
    a = initializers.get(name, seed=7)((5, 8))
    b = initializers.get(name, seed=7)((5, 8))
    c = initializers.get(name, seed=8)((5, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = initializers.get(name)((5, 8), rng=np.random.default_rng(3))
    e = initializers.get(name)((5, 8), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(d, e)
    # one generator gives different draws for successive weights
    rng = np.random.default_rng(3)
    init = initializers.get(name)
    assert not np.array_equal(init((5, 8), rng=rng), init((5, 8), rng=rng))


def test_float32_and_float64_draw_the_same_values():
    init = initializers.get("glorot_uniform")
    w32 = init((6, 9), dtype=np.float32, rng=np.random.default_rng(0))
    w64 = init((6, 9), dtype=np.float64, rng=np.random.default_rng(0))
    assert w32.dtype == np.float32 and w64.dtype == np.float64
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_bad_shapes_dtypes_and_seeds():
    init = initializers.get("glorot_uniform")
    with pytest.raises(ValueError, match="non-negative integers"):
        init((3, -1))
    with pytest.raises(ValueError, match="non-negative integers"):
        init((3, 2.5))
    with pytest.raises(ValueError, match="floating"):
        init((3, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="`seed`"):
        initializers.get("orthogonal", seed="x")
    assert init(4).shape == (4,)


def test_get_registry():
    inst = initializers.Orthogonal(gain=2.0)
    assert initializers.get(inst) is inst
    assert isinstance(initializers.get("Glorot_Uniform"), initializers.GlorotUniform)
    with pytest.raises(ValueError, match="valid names are: .*glorot_uniform.*orthogonal"):
        initializers.get("xavier")
    with pytest.raises(TypeError, match="Could not interpret initializer"):
        initializers.get(3)
    config = initializers.serialize(initializers.RandomNormal(mean=1.0, stddev=2.0, seed=3))
    clone = initializers.get(config)
    assert isinstance(clone, initializers.RandomNormal)
    assert clone.get_config() == {"mean": 1.0, "stddev": 2.0, "seed": 3}
    seeded = initializers.get(initializers.serialize(initializers.GlorotUniform()), seed=5)
    np.testing.assert_array_equal(seeded((3, 3)), initializers.GlorotUniform(seed=5)((3, 3)))


def test_callable_initializer():
    def eye(shape, dtype=None):
        return np.eye(*shape, dtype=dtype)

    w = initializers.get(eye)((3, 3), dtype=np.float64)
    np.testing.assert_array_equal(w, np.eye(3))

    def wrong(shape, dtype=None):
        return np.zeros(2)

    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3, 3\)"):
        initializers.get(wrong)((3, 3))


def test_keras_aliases_are_the_classes():
    for alias, cls in (("glorot_uniform", "GlorotUniform"), ("he_normal", "HeNormal"),
                       ("orthogonal", "Orthogonal"), ("OrthogonalInitializer", "Orthogonal"),
                       ("identity", "Identity"), ("IdentityInitializer", "Identity"),
                       ("zeros", "Zeros"), ("variance_scaling", "VarianceScaling"),
                       ("truncated_normal", "TruncatedNormal"), ("constant", "Constant")):
        assert getattr(initializers, alias) is getattr(initializers, cls), alias
    np.testing.assert_array_equal(initializers.glorot_uniform(seed=2)((4, 3)),
                                  initializers.GlorotUniform(seed=2)((4, 3)))
    assert isinstance(initializers.get("HeUniform"), initializers.HeUniform)


def test_identity():
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((3, 4), dtype=np.float64),
                                  2.0 * np.eye(3, 4))
    assert isinstance(initializers.get("identity"), initializers.Identity)
    with pytest.raises(ValueError, match=r"only be used for 2D matrices.*rank 3"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(ValueError, match="`gain`"):
        initializers.Identity(gain="big")
    from fastrnn import layers
    dense = layers.Dense(3, kernel_initializer="identity", input_shape=(3,))
    dense.build((None, 3))
    np.testing.assert_array_equal(dense.get_weights()[0], np.eye(3))


def test_deserialize_reads_keras_configs():
    keras = pytest.importorskip("keras")
    # Keras 3.15's Identity leaves `gain` out of its config: only the class is compared
    got = initializers.deserialize(keras.initializers.serialize(keras.initializers.Identity()))
    assert type(got) is initializers.Identity and got.gain == 1.0
    again = initializers.deserialize(initializers.serialize(initializers.Identity(gain=0.5)))
    assert again.gain == 0.5
    for theirs, mine in ((keras.initializers.Orthogonal(gain=2.0, seed=3),
                          initializers.Orthogonal),
                         (keras.initializers.RandomNormal(0.5, 2.0, seed=1),
                          initializers.RandomNormal)):
        got = initializers.deserialize(keras.initializers.serialize(theirs))
        assert type(got) is mine
        assert got.get_config().items() <= theirs.get_config().items()
    assert isinstance(initializers.deserialize("he_normal"), initializers.HeNormal)

    class Mine(initializers.Constant):
        pass

    got = initializers.deserialize({"class_name": "Mine", "config": {"value": 2.0}},
                                   custom_objects={"Mine": Mine})
    assert type(got) is Mine and got.value == 2.0
    with pytest.raises(ValueError, match="`config`"):
        initializers.deserialize(3)
    with pytest.raises(ValueError, match="Unknown initializer config"):
        initializers.deserialize({"class_name": "Nope", "config": {}})


def test_fans_over_chosen_axes_and_keras_configs():
    init = initializers.VarianceScaling(1.0, "fan_in", "uniform", seed=0, input_axes=[0, 1],
                                        output_axes=[2])
    w = init((4, 8, 500), dtype=np.float64)
    limit = math.sqrt(3.0 / 32)  # fan_in = 4 * 8
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    w = initializers.HeUniform(seed=0, input_axes=[2], output_axes=[0])((3, 2, 50),
                                                                        dtype=np.float64)
    limit = math.sqrt(6.0 / 50)  # fan_in = 50 (the default rule would give 3 * 2)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    assert initializers.compute_fans((3, 2, 50), [2], [0, 1]) == (50, 6)
    with pytest.raises(ValueError, match="`input_axes`"):
        initializers.GlorotUniform(input_axes="a")
    with pytest.raises(ValueError, match="rank 2"):
        initializers.GlorotUniform(input_axes=[0], output_axes=[5])((2, 2))
    keras = pytest.importorskip("keras")
    for name in ("GlorotUniform", "HeNormal", "LecunUniform", "VarianceScaling"):
        theirs = getattr(keras.initializers, name)(seed=4, input_axes=[0], output_axes=[1])
        mine = initializers.deserialize(keras.initializers.serialize(theirs))
        assert type(mine).__name__ == name and mine.get_config() == theirs.get_config()
