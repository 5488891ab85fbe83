"""Exact expected test risk of the distilled linear student and its consequences (docs/theory.md).

With k = p2/(n − p2 − 1) (eq. 6) and the population quantities σ², σt², c, D of
`theory.model.kd_stats` (eq. 4):

    R(λ) = σ² + [λ²D + k(σ² + 2λc + λ²σt²)] / (1+λ)²                                  (eq. 7)

the expectation over Gaussian training sets of n samples of the test MSE of
ŵ(λ) = (X2ᵀX2)⁻¹X2ᵀ(y + λt)/(1+λ) (eq. 3). Everything else here follows: R0 (eq. 8), the slope at
0 (eq. 9), λmax (eq. 10), λ* and R_min (eq. 11), the proportional limit (eq. 12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theory._x64 import as_float, float64
from theory.model import (
    JointGaussian,
    KDStats,
    check_w1,
    finite_sample_factor,
    kd_stats,
    population,
)


def _check_lam(lam):
    lam = as_float(lam)
    if not isinstance(lam, jax.core.Tracer):
        bad = np.asarray(lam)
        if np.any(~np.isfinite(bad) & ~np.isposinf(bad)) or np.any(bad < 0):
            raise ValueError(f"lam={bad.tolist()} must be >= 0 (the KD weight λ ∈ [0, ∞))")
    return lam


def risk_from_stats(s: KDStats, k, lam):
    """R(λ) = σ² + [λ²D + k(σ² + 2λc + λ²σt²)] / (1+λ)² (eq. 7); at λ = ∞ the limit σ² + D + kσt²."""
    inf = jnp.isinf(lam)
    lam_f = jnp.where(inf, 0.0, lam)
    finite = (
        s.sigma2
        + (lam_f**2 * s.D + k * (s.sigma2 + 2 * lam_f * s.c + lam_f**2 * s.sigma_t2))
        / (1 + lam_f) ** 2
    )
    return jnp.where(inf, s.sigma2 + s.D + k * s.sigma_t2, finite)


def _quadratic(s: KDStats, k):
    """(a, b, e) with R(λ) − σ² = (λ²a + 2λb + e)/(1+λ)²: a = D + kσt², b = kc, e = kσ²."""
    return s.D + k * s.sigma_t2, k * s.c, k * s.sigma2


def _stats_and_k(model: JointGaussian, w1, n: int):
    """(σ², σt², c, D) of the teacher w1 and k = p2/(n − p2 − 1), both validated."""
    return kd_stats(model, check_w1(model, w1)), finite_sample_factor(n, model.p2)


@float64
def expected_risk(model: JointGaussian, w1, lam, n: int):
    """Exact E[test MSE] of the KD student trained on n samples; same shape as `lam`."""
    w1, lam = check_w1(model, w1), _check_lam(lam)
    k = finite_sample_factor(n, model.p2)
    return risk_from_stats(kd_stats(model, w1), k, lam)


@float64
def asymptotic_risk(model: JointGaussian, w1, lam, gamma):
    """Proportional limit p2, n → ∞ with p2/n → γ ∈ (0, 1): R(λ) with k = γ/(1 − γ) (eq. 12)."""
    w1, lam = check_w1(model, w1), _check_lam(lam)
    g = float(gamma)
    if not 0 < g < 1:
        raise ValueError(f"gamma={gamma} must lie in (0, 1) (p2/n below 1 so OLS is defined)")
    return risk_from_stats(kd_stats(model, w1), g / (1 - g), lam)


@float64
def baseline_risk(model: JointGaussian, n: int):
    """R0 = R(0) = σ²(1 + k) (eq. 8): the student without KD (does not depend on the teacher)."""
    return population(model).sigma2 * (1 + finite_sample_factor(n, model.p2))


@float64
def risk_slope_at_zero(model: JointGaussian, w1, n: int):
    """∂R/∂λ at λ = 0: 2k(c − σ²) (eq. 9). Negative iff a little KD helps."""
    s, k = _stats_and_k(model, w1, n)
    return 2 * k * (s.c - s.sigma2)


def lambda_star_from_stats(s: KDStats, k):
    """λ* = k(σ² − c)/(D + k(σt² − c)) (eq. 11); 0 if the numerator ≤ 0, ∞ if only the denominator ≤ 0."""
    num, den = k * (s.sigma2 - s.c), s.D + k * (s.sigma_t2 - s.c)
    interior = num / jnp.where(den > 0, den, 1.0)
    return jnp.where(num <= 0, 0.0, jnp.where(den <= 0, jnp.inf, interior))


def lambda_max_from_stats(s: KDStats, k):
    """R(λ) < R0 iff λ·A < B, A = D + k(σt² − σ²), B = 2k(σ² − c): the interval (0, λmax) (eq. 10)."""
    A, B = s.D + k * (s.sigma_t2 - s.sigma2), 2 * k * (s.sigma2 - s.c)
    interior = B / jnp.where(A > 0, A, 1.0)
    return jnp.where(B <= 0, 0.0, jnp.where(A <= 0, jnp.inf, interior))


def min_risk_from_stats(s: KDStats, k):
    """R_min = σ² + (ae − b²)/(a − 2b + e) (eq. 11) when 0 < λ* < ∞, else R at the boundary optimum."""
    a, b, e = _quadratic(s, k)
    lam = lambda_star_from_stats(s, k)
    denom = a - 2 * b + e  # = D + k·Var(y − t | x2) ≥ 0
    interior = s.sigma2 + (a * e - b**2) / jnp.where(denom > 0, denom, 1.0)
    edge = risk_from_stats(s, k, lam)
    return jnp.where((lam > 0) & jnp.isfinite(lam), interior, edge)


@float64
def optimal_lambda(model: JointGaussian, w1, n: int):
    """λ* = argmin_λ≥0 R(λ) (may be 0 or inf)."""
    s, k = _stats_and_k(model, w1, n)
    return lambda_star_from_stats(s, k)


@float64
def helpful_lambda_max(model: JointGaussian, w1, n: int):
    """Upper end of the helpful interval (0, λmax) on which R(λ) < R0 (0: none, inf: all λ > 0)."""
    s, k = _stats_and_k(model, w1, n)
    return lambda_max_from_stats(s, k)


@float64
def min_risk(model: JointGaussian, w1, n: int):
    """min over λ ≥ 0 of R(λ) (the limit value when λ* = ∞)."""
    s, k = _stats_and_k(model, w1, n)
    return min_risk_from_stats(s, k)
