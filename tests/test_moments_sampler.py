"""Exact sufficient-statistics sampling (`cch_jax.data.gaussian.sample_moments`).

A linear student sees its training set only through moments, and `sample_moments` draws those
directly (Bartlett decomposition of the Wishart scatter, the sum independent of it). These tests
hold it to the law it claims, with tolerances from standard errors computed here:

* the scatter's entries have mean nΣij and variance n(Σij² + ΣiiΣjj) (Wishart_d(n, Σ)), and the
  sum has covariance nΣ, both in the Bartlett case (n − 1 ≥ m) and the singular one (n − 1 < m);
* ŵ(λ), without and with an intercept, has the same law from moments as from drawn rows (a
  two-sample test against the reference sampler);
* students trained from moments at n = 10⁶ agree with the exact expected risk R(λ) (|z| < 4).
"""

import jax
import numpy as np
import pytest
from scipy import stats

import theory
from cch_jax.data.gaussian import GaussianSource, sample_moments, wishart_factor
from cch_jax.losses import linear_stats
from cch_jax.simulate import simulate_linear_kd

DRAWS = 20_000
# Largest |z| allowed among the ~20 statistics of a test: P(|N(0,1)| > 4.5) ≈ 7e-6 each.
Z_MAX = 4.5


@pytest.fixture(scope="module")
def model():
    return theory.random_model(jax.random.key(5), 2, 2)


def sigma_u(model, w1):
    """Cov(x2, y, t) with t = w1ᵀx1, in numpy from Σ: A Σ Aᵀ, the map written out here."""
    p1, p2, cov = model.p1, model.p2, np.asarray(model.cov)
    a = np.zeros((p2 + 2, model.dim))
    a[:p2, p1 : p1 + p2] = np.eye(p2)
    a[p2, -1] = 1.0
    a[p2 + 1, :p1] = w1
    return a @ cov @ a.T


def scatter_entries(s, p2):
    """n·(second moments) as {(i, j): (draws,)} over u = (x2, y, t) (no (y, t): not a statistic)."""
    y, t = p2, p2 + 1
    out = {(i, j): s.xx[:, i, j] for i in range(p2) for j in range(i, p2)}
    out.update({(i, y): s.xy[:, i] for i in range(p2)})
    out.update({(i, t): s.xt[:, i] for i in range(p2)})
    out.update({(y, y): s.yy, (t, t): s.tt})
    return out


def z_variance(x, expected):
    """z of the sample variance of x against `expected`, SE from the sample 4th central moment."""
    c = x - x.mean()
    s2, m4 = np.mean(c**2), np.mean(c**4)
    return (s2 - expected) / np.sqrt((m4 - s2**2) / len(x))


@pytest.mark.parametrize("n", [3, 40])  # n − 1 = 2 < m = 4 (singular Wishart); 39 ≥ 4 (Bartlett)
def test_scatter_and_sum_have_the_wishart_moments(model, n):
    source = GaussianSource(model, n)
    keys = jax.random.split(jax.random.key(n), DRAWS)
    s = jax.vmap(lambda k: sample_moments(model, n, source.w1, key=k))(keys)
    s = jax.tree.map(np.asarray, s)
    cov = sigma_u(model, source.w1)
    z = {}
    for (i, j), entry in scatter_entries(s, model.p2).items():
        gram = n * entry
        var = n * (cov[i, j] ** 2 + cov[i, i] * cov[j, j])
        z["mean", i, j] = (gram.mean() - n * cov[i, j]) / np.sqrt(var / DRAWS)
        z["var", i, j] = z_variance(gram, var)
    # the sum Uᵀ1 = n·ū ~ N(0, nΣu): its second moments, SE from the products' own spread
    sums = n * np.concatenate([s.mx, s.my[:, None], s.mt[:, None]], axis=1)
    for i in range(len(cov)):
        for j in range(i, len(cov)):
            prod = sums[:, i] * sums[:, j]
            z["sum", i, j] = (prod.mean() - n * cov[i, j]) / (prod.std() / np.sqrt(DRAWS))
    worst = max(z, key=lambda k: abs(z[k]))
    assert abs(z[worst]) < Z_MAX, (worst, z[worst])


def test_wishart_factor_is_bartlett_or_plain_normals():
    # its law is tested through the scatter above (n = 40: Bartlett; n = 3: singular)
    t = np.asarray(wishart_factor(jax.random.key(0), 7, 3))
    assert t.shape == (3, 3) and np.all(np.triu(t, 1) == 0) and np.all(np.diag(t) > 0)
    assert wishart_factor(jax.random.key(0), 2, 3).shape == (3, 2)


def kd_weights(s, lam, intercept):
    """ŵ(λ) per draw from moments; with an intercept, from the centred moments (the slope of the
    least-squares fit with a free bias)."""
    xx, xy, xt = s.xx, s.xy, s.xt
    if intercept:
        xx = xx - np.einsum("si,sj->sij", s.mx, s.mx)
        xy = xy - s.mx * s.my[:, None]
        xt = xt - s.mx * s.mt[:, None]
    return np.linalg.solve(xx, ((xy + lam * xt) / (1 + lam))[..., None])[..., 0]


@pytest.mark.parametrize("intercept", [False, True])
def test_kd_weights_from_moments_and_from_rows_have_one_law(model, intercept):
    n, lam, draws = 30, 0.5, 4000
    moments, rows = GaussianSource(model, n), GaussianSource(model, n, sampler="rows")
    pop = theory.population(model)

    def weights(source, seed, stats_of):
        keys = jax.random.split(jax.random.key(seed), draws)
        s = jax.tree.map(np.asarray, jax.vmap(lambda k: stats_of(source, k))(keys))
        w = kd_weights(s, lam, intercept)
        d = w - pop.w_star
        risk = np.einsum("si,ij,sj->s", d, pop.S22, d)  # the excess risk of ŵ(λ)
        return np.column_stack([w, risk])

    a = weights(moments, 1, lambda src, k: src.draw_moments(None, k))
    b = weights(rows, 2, lambda src, k: linear_stats(*src.draw(None, k)))
    # Welch z per coordinate and for the excess risk, and its squares (the spread)
    for x, y in ((a, b), ((a - a.mean(0)) ** 2, (b - b.mean(0)) ** 2)):
        z = (x.mean(0) - y.mean(0)) / np.sqrt(x.var(0) / draws + y.var(0) / draws)
        assert np.all(np.abs(z) < Z_MAX), z
    # and the whole law of the excess risk (Kolmogorov–Smirnov)
    assert stats.ks_2samp(a[:, -1], b[:, -1]).pvalue > 1e-5


def test_students_from_moments_agree_with_the_exact_risk_at_a_million_samples(model):
    sim = simulate_linear_kd(model, None, 10**6, [0.0, 1.0], 400, steps=2000, progress=False)
    assert not sim.diverged.any()
    assert np.nanmax(sim.weight_error) < 1e-4, np.nanmax(sim.weight_error)
    assert np.all(np.abs(sim.z) < 4), sim.z
    # the excess risk at n = 10⁶ is ~1e-6 of σ²: the test is about it, not about σ² alone
    excess = sim.risk - theory.population(model).sigma2
    assert np.all(excess > 0) and np.all(sim.sem < 0.1 * excess.mean(axis=1))
