"""Normal scores and Gaussian-copula MI: estimators that do not move under monotone maps.

Mutual information is unchanged by any strictly monotone map of each coordinate. The *normal
scores* of a column, z_i = Φ⁻¹(r_i / (n + 1)) with r_i the rank of x_i (ties broken at random),
remove every such map, so an estimator applied to normal scores inherits the invariance.

Gaussian-copula MI (Ince et al. 2017) is the Gaussian log-det MI of the normal scores:
    I_gc(X; Y) = ½ log(det R_xx det R_yy / det R),   R the correlation of the normal scores,
exact (up to rank noise) when the copula of (X, Y) is Gaussian. For class labels, `qda_mi` is the
MI of class-conditional Gaussians fitted to the normal scores. Neither is unbiased in general:
`cch_jax.mi.check` measures and removes their bias on a surrogate fitted to the data.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp, ndtri

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


def class_gaussians(z: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, d) and covariances (C, d, d) of z (n, d) for codes 0..C-1.

    Each class covariance is shrunk toward the pooled within-class one with weight d / (n_c + d),
    so that it stays invertible when a class has few rows.
    """
    n, d = z.shape
    n_cls = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=n_cls)
    means = np.stack([z[codes == c].mean(axis=0) for c in range(n_cls)])
    resid = z - means[codes]
    pooled = resid.T @ resid / max(n - n_cls, 1)
    covs = np.empty((n_cls, d, d))
    for c in range(n_cls):
        rc = resid[codes == c]
        a = d / (counts[c] + d)
        covs[c] = (1 - a) * (rc.T @ rc / max(counts[c] - 1, 1)) + a * pooled
        covs[c] += 1e-9 * np.trace(covs[c]) / d * np.eye(d)
    return means, covs


def qda_mi(z: np.ndarray, labels: np.ndarray) -> float:
    """In-sample MI of class-conditional Gaussians fitted to z (n, d) (nats).

    (1/n) Σ_i [log p̂(y_i | z_i) − log p̂(y_i)] with p̂(z | c) = N(μ̂_c, Σ̂_c) (`class_gaussians`)
    and p̂(c) = n_c / n: the MI of the fitted model at the data points. It is biased upward by
    over-fitting at small n_c / d; `cch_jax.mi.check` measures and removes that bias.
    """
    _, codes = np.unique(labels, return_inverse=True)
    means, covs = class_gaussians(z, codes)
    logp = np.log(np.bincount(codes) / z.shape[0])
    ll = np.empty((z.shape[0], means.shape[0]))
    for c in range(means.shape[0]):
        chol = np.linalg.cholesky(covs[c])
        u = solve_triangular(chol, (z - means[c]).T, lower=True)
        ll[:, c] = logp[c] - 0.5 * np.sum(u**2, axis=0) - np.sum(np.log(np.diag(chol)))
    post = ll - logsumexp(ll, axis=1, keepdims=True)
    return float(np.mean(post[np.arange(z.shape[0]), codes] - logp[codes]))
