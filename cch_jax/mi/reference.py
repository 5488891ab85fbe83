"""Independent float64 references (numpy + scipy cKDTree) for the kNN estimators.

These follow the published definitions literally and share no code with `knn.py`; the tests require
the JAX estimators to agree with them to 1e-6. They are also the baseline in the speed comparison.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma


def _std(a):
    a = np.asarray(a, np.float64)
    a = a[:, None] if a.ndim == 1 else a
    return (a - a.mean(axis=0)) / a.std(axis=0)


def ksg_reference(x, y, *, k: int = 3, standardize: bool = True, workers: int = -1) -> float:
    """KSG estimator 1 (Kraskov, Stögbauer, Grassberger 2004, eq. 8), max-norm, in nats.

    ε_i = distance (max-norm in the joint space) to the k-th nearest other point; n_x(i), n_y(i) =
    numbers of other points at marginal distance strictly less than ε_i.
    """
    x = _std(x) if standardize else np.asarray(x, np.float64).reshape(len(x), -1)
    y = _std(y) if standardize else np.asarray(y, np.float64).reshape(len(y), -1)
    n = x.shape[0]
    xy = np.hstack([x, y])
    dist, _ = cKDTree(xy).query(xy, k=k + 1, p=np.inf, workers=workers)
    eps = dist[:, -1]  # the query point itself is at distance 0
    r = np.nextafter(eps, 0)  # query_ball_point counts distance <= r: make it strictly < eps
    nx = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True, workers=workers) - 1
    ny = cKDTree(y).query_ball_point(y, r, p=np.inf, return_length=True, workers=workers) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def mixed_reference(x, labels, *, k: int = 3, standardize: bool = True, workers: int = -1) -> float:
    """Ross (2014) estimator of I(X; Y) for continuous X and discrete Y, max-norm, in nats.

    For each point: d_i = distance to its k-th nearest neighbour with the same label, m_i = number
    of points (itself included) at distance strictly less than d_i in the whole sample, N_i = size
    of its class. I = ψ(N) + ψ(k) − ⟨ψ(N_i)⟩ − ⟨ψ(m_i)⟩.
    """
    x = _std(x) if standardize else np.asarray(x, np.float64).reshape(len(x), -1)
    labels = np.asarray(labels).reshape(-1)
    n = x.shape[0]
    radius = np.empty(n)
    n_label = np.empty(n)
    for c in np.unique(labels):
        mask = labels == c
        xc = x[mask]
        dist, _ = cKDTree(xc).query(xc, k=k + 1, p=np.inf, workers=workers)
        radius[mask] = dist[:, -1]
        n_label[mask] = mask.sum()
    r = np.nextafter(radius, 0)
    m = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True, workers=workers)
    return float(digamma(n) + digamma(k) - np.mean(digamma(n_label)) - np.mean(digamma(m)))
