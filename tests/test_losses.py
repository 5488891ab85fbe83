"""KD losses and the Gaussian sampler: formulas, λ = 0, finite differences, T²."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from cch_jax.data import sample_gaussian
from cch_jax.losses import (
    accuracy,
    classification_kd_loss,
    cross_entropy,
    kl_divergence,
    regression_kd_loss,
)


def _logits(seed, shape=(6, 4), scale=2.0):
    return scale * jax.random.normal(jax.random.key(seed), shape)


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- regression -------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3, 2.0])
def test_regression_loss_is_label_mse_plus_lam_kd_mse(lam):
    f, y, t = (np.random.default_rng(i).normal(size=7) for i in range(3))
    parts = regression_kd_loss(f, y, t, lam)
    np.testing.assert_allclose(parts.label, np.mean((y - f) ** 2), rtol=1e-13)
    np.testing.assert_allclose(parts.kd, np.mean((f - t) ** 2), rtol=1e-13)
    np.testing.assert_allclose(parts.total, parts.label + lam * parts.kd, rtol=1e-13)


def test_regression_lam_zero_is_plain_mse():
    f, y, t = (np.random.default_rng(i).normal(size=5) for i in range(3))
    assert regression_kd_loss(f, y, t, 0.0).total == pytest.approx(np.mean((y - f) ** 2), 1e-13)


def test_regression_minimiser_is_the_blended_target():
    # d/df [ (y − f)² + λ(f − t)² ] = 0  at  f = (y + λt)/(1 + λ)
    y, t, lam = jnp.array([1.5]), jnp.array([-0.5]), 0.7
    g = jax.grad(lambda f: regression_kd_loss(f, y, t, lam).total)((y + lam * t) / (1 + lam))
    np.testing.assert_allclose(g, 0.0, atol=1e-14)


# --- classification ---------------------------------------------------------------------------


def test_cross_entropy_and_kl_match_numpy():
    s, t = np.asarray(_logits(0)), np.asarray(_logits(1))
    y = np.array([0, 3, 1, 2, 2, 0])
    ce = -np.mean(np.log(_np_softmax(s))[np.arange(6), y])
    np.testing.assert_allclose(cross_entropy(s, y), ce, rtol=1e-12)
    T = 2.5
    p, q = _np_softmax(t / T), _np_softmax(s / T)
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1))
    np.testing.assert_allclose(kl_divergence(t, s, T), kl, rtol=1e-12)
    assert kl_divergence(t, t, T) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_classification_lam_zero_is_plain_cross_entropy(T):
    s, t = _logits(0), _logits(1)
    y = jnp.array([0, 3, 1, 2, 2, 0])
    parts = classification_kd_loss(s, y, t, 0.0, T)
    np.testing.assert_allclose(parts.total, cross_entropy(s, y), rtol=1e-14)


@pytest.mark.parametrize(("lam", "T"), [(0.0, 1.0), (0.3, 2.0), (1.0, 5.0)])
def test_classification_loss_formula(lam, T):
    s, t = _logits(2), _logits(3)
    y = jnp.array([1, 1, 0, 3, 2, 0])
    parts = classification_kd_loss(s, y, t, lam, T)
    expected = (1 - lam) * cross_entropy(s, y) + lam * T**2 * kl_divergence(t, s, T)
    np.testing.assert_allclose(parts.total, expected, rtol=1e-13)


def test_kl_with_a_one_hot_teacher_is_finite():
    t = jnp.array([[0.0, -jnp.inf, -jnp.inf]])  # softmax = one-hot: 0·log 0 terms must vanish
    s = jnp.array([[0.2, 0.1, -0.3]])
    value, grad = jax.value_and_grad(lambda s: kl_divergence(t, s, 1.0))(s)
    np.testing.assert_allclose(value, -jax.nn.log_softmax(s)[0, 0], rtol=1e-12)
    assert np.all(np.isfinite(grad))


# --- gradients --------------------------------------------------------------------------------


def _finite_difference_grad(fn, x, eps=1e-6):
    fn, x = jax.jit(fn), np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(fn(x + e)) - float(fn(x - e))) / (2 * eps)
    return g


def test_regression_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    f, y, t = rng.normal(size=(3, 6))
    fn = lambda f: regression_kd_loss(f, y, t, 0.8).total
    np.testing.assert_allclose(jax.grad(fn)(f), _finite_difference_grad(fn, f), rtol=1e-7)


@pytest.mark.parametrize(("lam", "T"), [(0.0, 1.0), (0.5, 3.0), (1.0, 0.5)])
def test_classification_gradient_matches_finite_differences(lam, T):
    s, t = _logits(4, (3, 5)), _logits(5, (3, 5))
    y = jnp.array([4, 0, 2])
    fn = lambda s: classification_kd_loss(s, y, t, lam, T).total
    np.testing.assert_allclose(
        jax.grad(fn)(s), _finite_difference_grad(fn, s), rtol=1e-6, atol=1e-9
    )


def test_kl_gradient_is_softmax_difference_over_T():
    # ∂/∂s_i of mean_i KL(p_i ‖ q_i) = (q_i − p_i)/(T·B): the identity behind the T² factor.
    s, t, T = _logits(6), _logits(7), 3.0
    g = jax.grad(lambda s: kl_divergence(t, s, T))(s)
    expected = (jax.nn.softmax(s / T) - jax.nn.softmax(t / T)) / (T * s.shape[0])
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-15)


def test_T_squared_keeps_the_soft_gradient_scale_as_T_grows():
    # ∂kd/∂s = O(1/T²), so without T² the soft term would fade as T grows; with it the gradient
    # tends to the logit-matching limit (d − mean_c d)/(C·B), d = s − t, with an O(1/T) error.
    s, t = _logits(8, (4, 5)), _logits(9, (4, 5))
    B, C = s.shape
    y = jnp.zeros(B, jnp.int32)
    total_grad = jax.jit(jax.grad(lambda s, T: classification_kd_loss(s, y, t, 1.0, T).total))
    raw_grad = jax.jit(jax.grad(lambda s, T: kl_divergence(t, s, T)))
    d = s - t
    limit = (d - d.mean(-1, keepdims=True)) / (C * B)
    err = {T: float(jnp.abs(total_grad(s, T) - limit).max()) for T in (100.0, 1000.0)}
    assert err[1000.0] < 1e-3 * float(jnp.abs(limit).max())
    assert 0.08 < err[1000.0] / err[100.0] < 0.12  # O(1/T)
    raw = {T: float(jnp.abs(raw_grad(s, T)).max()) for T in (100.0, 1000.0)}
    assert 0.009 < raw[1000.0] / raw[100.0] < 0.011  # O(1/T²) without the factor
    np.testing.assert_allclose(total_grad(s, 100.0), 100.0**2 * raw_grad(s, 100.0), rtol=1e-12)


def test_accuracy():
    logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert float(accuracy(logits, jnp.array([0, 1, 1, 1]))) == pytest.approx(0.75)


# --- the Gaussian sampler ---------------------------------------------------------------------


def test_sample_gaussian_shapes_dtype_and_covariance():
    model = theory.random_model(jax.random.key(2), 2, 3)
    n = 50_000
    x1, x2, y = sample_gaussian(model, n, key=jax.random.key(0))
    assert x1.shape == (n, 2) and x2.shape == (n, 3) and y.shape == (n,)
    assert x1.dtype == jnp.float64  # the default float dtype (x64 on in the tests)
    z = np.concatenate([x1, x2, y[:, None]], axis=1)
    cov = np.asarray(model.cov)
    emp = z.T @ z / n
    # SE of a sample covariance entry: sqrt((Σii Σjj + Σij²)/n); allow 5 SE.
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(emp - cov) < 5 * se)


def test_sample_gaussian_float32_and_key_determinism():
    model = theory.random_model(jax.random.key(2), 2, 3)
    a = sample_gaussian(model, 10, key=jax.random.key(1), dtype=jnp.float32)
    b = sample_gaussian(model, 10, key=jax.random.key(1), dtype=jnp.float32)
    c = sample_gaussian(model, 10, key=jax.random.key(2), dtype=jnp.float32)
    assert all(x.dtype == jnp.float32 for x in a)
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.allclose(a[2], c[2])


@pytest.mark.parametrize(("n", "err"), [(0, ValueError), (2.5, TypeError)])
def test_sample_gaussian_rejects_bad_n(n, err):
    model = theory.random_model(jax.random.key(2), 2, 3)
    with pytest.raises(err, match="n="):
        sample_gaussian(model, n, key=jax.random.key(0))
