"""The CNN student's two convolution implementations compute the same function.

`conv="patches"` (the default: a 3 × 3 convolution as a matmul on shifted slices) against
`conv="lax"` (flax's nn.Conv + nn.avg_pool) with the same parameters, and against a convolution
written out as explicit sums over the kernel (a brute-force reference)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cch_jax.models import CNNStudent, PatchConv, _pool2, patches3x3


@pytest.mark.parametrize("shape", [(3, 28, 28, 3), (2, 28, 28), (2, 9, 7, 2)])
def test_patches_and_lax_give_the_same_network(shape):
    x = jax.random.normal(jax.random.key(1), shape)
    a = CNNStudent(channels=(4, 6), hidden=8, out=5, conv="patches")
    b = CNNStudent(channels=(4, 6), hidden=8, out=5, conv="lax")
    params = a.init(jax.random.key(0), x)
    # Same parameter names and shapes: either implementation runs the other's parameters.
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes == jax.tree.map(jnp.shape, b.init(jax.random.key(0), x))
    np.testing.assert_allclose(a.apply(params, x), b.apply(params, x), rtol=1e-5, atol=1e-5)
    fa = a.apply(params, x, method="features")
    np.testing.assert_allclose(fa, b.apply(params, x, method="features"), rtol=1e-5, atol=1e-5)


def test_patch_conv_is_the_explicit_sum():
    """out[b, i, j, o] = Σ_{dy, dx, c} xpad[b, i + dy, j + dx, c] · K[dy, dx, c, o] + bias[o]."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 3))
    conv = PatchConv(4)
    params = conv.init(jax.random.key(0), jnp.asarray(x, jnp.float32))
    k = rng.standard_normal((3, 3, 3, 4))
    bias = rng.standard_normal(4)
    params = {"params": {"kernel": jnp.asarray(k), "bias": jnp.asarray(bias)}}
    with jax.enable_x64():
        got = np.asarray(conv.apply(params, jnp.asarray(x)))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((2, 5, 6, 4)) + bias
    for dy in range(3):
        for dx in range(3):
            want += np.einsum("bijc,co->bijo", xp[:, dy : dy + 5, dx : dx + 6], k[dy, dx])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert patches3x3(jnp.zeros((1, 5, 6, 3))).shape == (1, 5, 6, 27)


def test_pool2_is_avg_pool_valid():
    x = jax.random.normal(jax.random.key(2), (2, 7, 9, 3))  # odd sizes: the last row/col dropped
    want = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    np.testing.assert_allclose(_pool2(x), want, rtol=1e-6)


def test_unknown_conv_is_refused():
    with pytest.raises(ValueError, match="conv='fft'"):
        CNNStudent(conv="fft").init(jax.random.key(0), jnp.zeros((1, 28, 28)))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_blocked_test_metric_equals_one_pass(task, monkeypatch):
    """A test set larger than EVAL_BLOCK is evaluated in masked blocks: same accuracy / MSE."""
    import cch_jax.data.arrays as arrays
    from cch_jax.losses import accuracy, mse

    monkeypatch.setattr(arrays, "EVAL_BLOCK", 64)
    rng = np.random.default_rng(0)
    m, out = 150, (4 if task == "classification" else 1)  # 150 = 2 blocks + 22 padded rows
    x = rng.standard_normal((m, 5)).astype(np.float32)
    y = rng.integers(0, 4, m) if task == "classification" else rng.standard_normal(m)
    student = nn.Dense(out)
    params = student.init(jax.random.key(0), x[:1])
    data = arrays.ArrayData(x, y, np.zeros((m, out)), x, y)
    got = data.test_metric(student, task)(params, data)
    logits = student.apply(params, x)
    want = accuracy(logits, y) if task == "classification" else mse(logits[:, 0], y)
    np.testing.assert_allclose(got, want, rtol=1e-6)
