"""The exact expected risk (docs/theory.md eq. 7) against Monte Carlo over sampled training sets.

Independent method: numpy float64 OLS on the blended target ŵ(λ) = (X2ᵀX2)⁻¹X2ᵀ(y + λt)/(1+λ),
its exact test risk from Σ, averaged over 20 000 training sets; tolerance 4 standard errors.
"""

import jax
import numpy as np
import pytest

import theory

N_SETS = 20_000
LAMS = np.array([0.0, 0.3, 1.0, 3.0])


def population_risk(cov, p1, p2, w):
    """E(y − wᵀx2)² = σy² − 2wᵀΣ2y + wᵀΣ22w for w of shape (..., p2)."""
    s22, s2y = cov[p1 : p1 + p2, p1 : p1 + p2], cov[p1 : p1 + p2, -1]
    return cov[-1, -1] - 2 * w @ s2y + np.einsum("...i,ij,...j->...", w, s22, w)


@pytest.mark.parametrize("p1,p2,n,seed", [(3, 4, 20, 0), (5, 3, 12, 1), (2, 5, 30, 2)])
def test_expected_risk_matches_monte_carlo(p1, p2, n, seed):
    model = theory.random_model(jax.random.key(seed), p1, p2)
    w1 = np.asarray(theory.optimal_teacher(model))
    # A perturbed teacher makes c, σt², D generic (the optimal one is a special case).
    w1 = w1 + 0.5 * np.random.default_rng(seed).normal(size=p1)
    cov = np.asarray(model.cov)
    rng = np.random.default_rng(100 + seed)
    z = rng.standard_normal((N_SETS, n, p1 + p2 + 1)) @ np.linalg.cholesky(cov).T
    x1, x2, y = z[..., :p1], z[..., p1 : p1 + p2], z[..., -1]
    t = x1 @ w1
    gram = np.einsum("bni,bnj->bij", x2, x2)
    expected = np.asarray(theory.expected_risk(model, w1, LAMS, n))
    for lam, r_theory in zip(LAMS, expected, strict=True):
        target = (y + lam * t) / (1 + lam)
        w = np.linalg.solve(gram, np.einsum("bni,bn->bi", x2, target)[..., None])[..., 0]
        risks = population_risk(cov, p1, p2, w)
        mean, sem = risks.mean(), risks.std(ddof=1) / np.sqrt(N_SETS)
        assert abs(mean - r_theory) < 4 * sem, (lam, mean, r_theory, sem)
