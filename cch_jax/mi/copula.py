"""Normal scores and Gaussian-copula MI: estimators that do not move under monotone maps.

Mutual information is unchanged by any strictly monotone map of each coordinate. The *normal
scores* of a column, z_i = Φ⁻¹(r_i / (n + 1)) with r_i the rank of x_i (ties broken at random),
remove every such map, so an estimator applied to normal scores inherits the invariance.

Gaussian-copula MI (Ince et al. 2017) is the Gaussian log-det MI of the normal scores:
    I_gc(X; Y) = ½ log(det R_xx det R_yy / det R),   R the correlation of the normal scores,
exact (up to rank noise) when the copula of (X, Y) is Gaussian, and for class labels
    I_gc(X; Y) = ½ log det R_xx − Σ_c p_c ½ log det R_xx|c          (class-conditional Gaussians),
exact when X | Y = c is Gaussian in normal-score space except for the marginal mixture, whose
entropy this overstates. Neither is unbiased for other copulas: `cch_jax.mi.check` measures and
removes the bias on a fitted surrogate.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, ndtri

from cch_jax.mi.gaussian import logdet_bias


def normal_scores(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-column normal scores Φ⁻¹(rank / (n + 1)) of a (n, d); ties broken uniformly at random.

    One random row order breaks ties in every column (a stable sort of the permuted rows).
    """
    a = np.asarray(a, np.float64)
    n = a.shape[0]
    perm = rng.permutation(n)
    order = np.argsort(a[perm], axis=0, kind="stable")
    out = np.empty_like(a)
    scores = ndtri(np.arange(1, n + 1) / (n + 1.0))
    np.put_along_axis(out, perm[order], scores[:, None], axis=0)
    return out


def tie_counts(*arrays) -> dict:
    """How much of the data is tied: rows with a value shared in some column, and duplicate rows.

    Ties carry no rank information; normal scores break them at random (so an estimate on heavily
    tied data includes that randomness), and kNN estimators see zero distances without it.
    """
    a = np.concatenate([np.asarray(x, np.float64).reshape(len(x), -1) for x in arrays], axis=1)
    tied = np.zeros(a.shape[0], bool)
    for j in range(a.shape[1]):
        col = a[:, j]
        _, inv, cnt = np.unique(col, return_inverse=True, return_counts=True)
        tied |= cnt[inv] > 1
    _, row_cnt = np.unique(a, axis=0, return_counts=True)
    return {"tied_rows": int(tied.sum()), "duplicate_rows": int(np.sum(row_cnt[row_cnt > 1] - 1))}


def gc_mi(zx: np.ndarray, zy: np.ndarray) -> float:
    """Bias-corrected Gaussian MI of normal scores zx (n, dx), zy (n, dy) (nats).

    ½ (log det S_xx + log det S_yy − log det S) − b(n, dx, dy), S the sample covariance and b the
    exact Wishart bias of the plug-in (`gaussian.logdet_bias`).
    """
    n, dx = zx.shape
    s = np.cov(np.concatenate([zx, zy], axis=1), rowvar=False).reshape(dx + zy.shape[1], -1)
    ld = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
    plugin = 0.5 * (ld(s[:dx, :dx]) + ld(s[dx:, dx:]) - ld(s))
    return float(plugin - logdet_bias(n, dx, zy.shape[1]))


def _logdet_cov(z: np.ndarray) -> float:
    zc = z - z.mean(axis=0)
    sign, ld = np.linalg.slogdet(zc.T @ zc / (z.shape[0] - 1))
    return float(ld) if sign > 0 else -np.inf


def _shrunk_cov(z: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """Class covariance shrunk toward the pooled one with weight d / (n_c + d) (keeps it invertible)."""
    n_c, d = z.shape
    zc = z - z.mean(axis=0)
    s = zc.T @ zc / max(n_c - 1, 1)
    a = d / (n_c + d)
    return (1 - a) * s + a * pooled


def class_gc_mi(zx: np.ndarray, labels: np.ndarray) -> float:
    """Class-conditional Gaussian MI of normal scores zx (n, d) and labels (n,) (nats).

    ½ log det S − Σ_c p_c ½ log det S_c, each log det corrected by its Wishart bias (the exact
    E[log det S] − log det Σ for Gaussian data), with S_c shrunk
    toward the pooled within-class covariance when a class has few rows.
    """
    n, d = zx.shape
    classes, codes = np.unique(labels, return_inverse=True)
    pooled = np.zeros((d, d))
    for c in range(classes.size):
        z = zx[codes == c]
        zc = z - z.mean(axis=0)
        pooled += zc.T @ zc
    pooled /= max(n - classes.size, 1)
    value = 0.5 * (_logdet_cov(zx) - _wishart_logdet_bias(n, d))
    for c in range(classes.size):
        z = zx[codes == c]
        sign, ld = np.linalg.slogdet(_shrunk_cov(z, pooled))
        bias = _wishart_logdet_bias(z.shape[0], d) if z.shape[0] > d + 1 else 0.0
        value -= (z.shape[0] / n) * 0.5 * (ld - bias)
    return float(value)


def _wishart_logdet_bias(n: int, d: int) -> float:
    """E[log det S] − log det Σ = Σ_{i=1}^{d} ψ((ν − i + 1)/2) + d log(2/ν), ν = n − 1 (n > d + 1)."""
    nu = n - 1
    return float(np.sum(digamma((nu - np.arange(1, d + 1) + 1) / 2.0)) + d * np.log(2.0 / nu))
