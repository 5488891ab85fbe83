"""Gaussian (log-det / canonical-correlation) MI estimator with its exact finite-sample bias removed.

For jointly Gaussian (X, Y) with canonical correlations ρ_1..ρ_r,
    I(X; Y) = ½ log(det Σxx det Σyy / det Σ) = −½ Σ_i log(1 − ρ_i²).
The plug-in estimate uses the sample covariance S (ν = n − 1 degrees of freedom). For Gaussian data
νS ~ Wishart_p(ν, Σ), and E[log det S] = log det Σ + Σ_{i=1}^p ψ((ν − i + 1)/2) + p log(2/ν) exactly;
sub-blocks are Wishart with the same ν, so the plug-in's bias is exactly
    b(n, dx, dy) = ½ [Σ_{i=1}^{dy} ψ((ν − i + 1)/2) − Σ_{i=dx+1}^{dx+dy} ψ((ν − i + 1)/2)]  (> 0)
and `gaussian_mi(..., bias_correct=True)` subtracts it: the corrected estimate is *unbiased* for
Gaussian data (it can be slightly negative when I ≈ 0). For non-Gaussian data the estimator targets
the MI of the Gaussian with the same covariance, which can be far from I(X; Y).

Standard error (delta method): the sample canonical correlations are asymptotically independent with
Var(atanh r_i) ≈ 1/(n − 3), and ∂I/∂atanh ρ_i = ρ_i, so Var(Î) ≈ Σ_i ρ_i² / (n − 3). We plug in the
sample r_i² (biased upward by ~1/n each, which makes the interval slightly conservative near I = 0,
where the first-order term vanishes), and add the second-order null term dx·dy / (2 (n−3)²) (the
variance of χ²_{dx·dy} / 2n). The 95 % interval is Î ± 1.96·se (normal). Coverage is measured in
docs/mi_validation.md and asserted in tests/test_mi_gaussian.py.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def one_hot(codes: np.ndarray) -> np.ndarray:
    """Labels 0..C-1 → (n, C-1) indicator columns (the last class is the reference)."""
    c = int(codes.max()) + 1
    return (codes[:, None] == np.arange(c - 1)[None, :]).astype(np.float64)


def canonical_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample canonical correlations of x (n, dx) and y (n, dy), sorted descending."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    qx, _ = np.linalg.qr(xc)
    qy, _ = np.linalg.qr(yc)
    r = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return np.clip(r, 0.0, 1.0 - 1e-15)


def logdet_bias(n: int, dx: int, dy: int) -> float:
    """Exact bias E[Î_plugin] − I of the plug-in log-det MI for Gaussian data (nats)."""
    nu = n - 1
    i_y = np.arange(1, dy + 1)
    i_xy = np.arange(dx + 1, dx + dy + 1)
    return 0.5 * float(np.sum(digamma((nu - i_y + 1) / 2)) - np.sum(digamma((nu - i_xy + 1) / 2)))


def gaussian_mi(x: np.ndarray, y: np.ndarray, *, bias_correct: bool = True) -> dict:
    """Gaussian MI estimate (nats) with delta-method stderr; returns a dict of the pieces."""
    n, dx = x.shape
    dy = y.shape[1]
    r = canonical_correlations(x, y)
    plugin = float(-0.5 * np.sum(np.log1p(-(r**2))))
    bias = logdet_bias(n, dx, dy)
    value = plugin - bias if bias_correct else plugin
    var = float(np.sum(r**2)) / (n - 3) + dx * dy / (2.0 * (n - 3) ** 2)
    return {
        "value": value,
        "stderr": float(np.sqrt(var)),
        "plugin": plugin,
        "bias": bias,
        "canonical_correlations": r.tolist()[:20],
    }
