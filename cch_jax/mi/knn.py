"""k-nearest-neighbour MI estimators in JAX: KSG estimator 1 and Ross's continuous–discrete one.

Brute force, tiled: the rows are processed `tile` at a time against all n columns (lax.map over row
tiles), so memory is O(n·tile), never O(n²), and each (n, d, tile) shape compiles once. Distances are
max-norm. The k-th smallest distance is found by k passes of "smallest value above the previous one,
and how many times it occurs" (an exact order statistic that counts ties with multiplicity; XLA's
top_k is ~50× slower on CPU).

Every kernel takes a `groups` vector: point i only sees points j with groups[j] == groups[i]. With all
groups equal this is the ordinary estimator; with m group ids it computes m estimates on disjoint
subsets in the same compiled function and at the same cost (used for the standard error).

Ties: ε_i is the k-th order statistic of the distances to the other points of its group, counted with
multiplicity, and n_x, n_y, m count points *strictly* closer than ε_i, exactly as in the definition.
With continuous data ties have probability zero. With duplicated points ε_i can be 0, all counts are
0 and the estimate is meaningless; `details["zero_eps"]` reports how many points had ε_i = 0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import digamma

# XLA options of the MI kernels whose running time, not their compile, is the cost (these kNN
# distances, the neural critics' training in cch_jax/mi/neural.py): XLA's default LLVM
# optimisation, whatever XLA_FLAGS says. The test suite compiles everything else at level 0
# (tests/conftest.py), where these kernels ran up to 3x slower.
RUNTIME_BOUND = {"xla_backend_optimization_level": 2}

_UNROLL_DIMS = 48  # above this, the per-dimension max-loop is a fori_loop (keeps compiles short)


def _maxnorm(a: jax.Array, bT: jax.Array) -> jax.Array:
    """max_j |a[i, j] − bT[j, l]| for a (t, d) and bT (d, n): the (t, n) max-norm distances.

    Loops over dimensions with the n axis innermost, so XLA vectorises along the columns.
    """
    d = bT.shape[0]
    if d <= _UNROLL_DIMS:
        acc = jnp.abs(a[:, 0:1] - bT[0:1, :])
        for j in range(1, d):
            acc = jnp.maximum(acc, jnp.abs(a[:, j : j + 1] - bT[j : j + 1, :]))
        return acc

    def body(j, acc):
        aj = lax.dynamic_slice_in_dim(a, j, 1, axis=1)
        bj = lax.dynamic_slice_in_dim(bT, j, 1, axis=0)
        return jnp.maximum(acc, jnp.abs(aj - bj))

    return lax.fori_loop(0, d, body, jnp.zeros((a.shape[0], bT.shape[1]), a.dtype))


def kth_smallest(d: jax.Array, k: int) -> jax.Array:
    """Row-wise k-th smallest value of d (t, n), ties counted with multiplicity (inf if < k finite)."""
    t = d.shape[0]
    prev = jnp.full((t, 1), -jnp.inf, d.dtype)
    cum = jnp.zeros((t,), jnp.int32)
    out = jnp.full((t,), jnp.inf, d.dtype)
    for _ in range(k):
        m = jnp.min(jnp.where(d > prev, d, jnp.inf), axis=1)
        new = cum + jnp.sum(d == m[:, None], axis=1, dtype=jnp.int32)
        out = jnp.where((cum < k) & (new >= k), m, out)
        cum, prev = new, m[:, None]
    return out


def _tiles(n: int, tile: int, *arrays):
    nt = -(-n // tile)
    pad = nt * tile - n
    return nt, [
        jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape((nt, tile) + a.shape[1:])
        for a in arrays
    ]


@functools.partial(jax.jit, static_argnames=("k", "tile"), compiler_options=RUNTIME_BOUND)
def ksg_terms(x, y, groups, *, k: int = 3, tile: int = 128):
    """Per-point KSG-1 terms ψ(n_x+1) + ψ(n_y+1) and ε_i, within groups. x (n, dx), y (n, dy)."""
    n = x.shape[0]
    tile = min(tile, n)
    xT, yT = x.T, y.T
    idx = jnp.arange(n)
    _, (xq, yq, gq, iq) = _tiles(n, tile, x, y, groups, idx)

    def one(args):
        xt, yt, gt, it = args
        other = (gt[:, None] == groups[None, :]) & (it[:, None] != idx[None, :])
        dx = jnp.where(other, _maxnorm(xt, xT), jnp.inf)
        dy = jnp.where(other, _maxnorm(yt, yT), jnp.inf)
        eps = kth_smallest(jnp.maximum(dx, dy), k)
        nx = jnp.sum(dx < eps[:, None], axis=1)
        ny = jnp.sum(dy < eps[:, None], axis=1)
        return digamma(nx + 1.0) + digamma(ny + 1.0), eps

    terms, eps = lax.map(one, (xq, yq, gq, iq))
    return terms.reshape(-1)[:n], eps.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=("k", "tile"), compiler_options=RUNTIME_BOUND)
def mixed_terms(x, labels, groups, *, k: int = 3, tile: int = 128):
    """Per-point Ross (2014) terms ψ(N_{y_i}) + ψ(m_i) and ε_i, within groups.

    ε_i: distance to the k-th nearest neighbour among the points with the same label (max-norm in x);
    m_i = 1 + #{j ≠ i: ‖x_j − x_i‖ < ε_i} over all labels (the point itself included, as in sklearn);
    N_{y_i}: the number of points with label y_i (itself included).
    """
    n = x.shape[0]
    tile = min(tile, n)
    xT = x.T
    idx = jnp.arange(n)
    _, (xq, lq, gq, iq) = _tiles(n, tile, x, labels, groups, idx)

    def one(args):
        xt, lt, gt, it = args
        same_g = gt[:, None] == groups[None, :]
        other = same_g & (it[:, None] != idx[None, :])
        same_l = same_g & (lt[:, None] == labels[None, :])
        d = jnp.where(other, _maxnorm(xt, xT), jnp.inf)
        eps = kth_smallest(jnp.where(same_l, d, jnp.inf), k)
        m = 1 + jnp.sum(d < eps[:, None], axis=1)
        n_label = jnp.sum(same_l, axis=1)
        return digamma(n_label * 1.0) + digamma(m * 1.0), eps

    terms, eps = lax.map(one, (xq, lq, gq, iq))
    return terms.reshape(-1)[:n], eps.reshape(-1)[:n]


def standardise(a: np.ndarray) -> np.ndarray:
    """Centre each column and scale it to unit (population) standard deviation."""
    a = np.asarray(a, np.float64)
    return (a - a.mean(axis=0)) / a.std(axis=0)


def group_estimates(terms: np.ndarray, groups: np.ndarray, k: int, kind: str) -> np.ndarray:
    """Combine per-point terms into one estimate per group id (0..m-1)."""
    terms = np.asarray(terms, np.float64)
    m = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=m)
    means = np.bincount(groups, weights=terms, minlength=m) / sizes
    from scipy.special import digamma as sp_digamma

    return sp_digamma(k) + sp_digamma(sizes) - means if kind in ("ksg", "mixed") else means


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def ksg(x, y, *, k: int = 3, standardize: bool = True, tile: int = 128, groups=None) -> np.ndarray:
    """KSG estimator 1 (nats); one value per group (a length-1 array when `groups` is None).

    I = ψ(k) + ψ(N) − ⟨ψ(n_x+1) + ψ(n_y+1)⟩ with max-norm, ε_i the joint k-th-neighbour distance
    and n_x, n_y the numbers of other points strictly closer than ε_i in each marginal.
    """
    x = standardise(x) if standardize else np.asarray(x, np.float64)
    y = standardise(y) if standardize else np.asarray(y, np.float64)
    g = np.zeros(x.shape[0], np.int32) if groups is None else np.asarray(groups, np.int32)
    dt = _dtype()
    terms, eps = ksg_terms(jnp.asarray(x, dt), jnp.asarray(y, dt), jnp.asarray(g), k=k, tile=tile)
    return group_estimates(np.asarray(terms), g, k, "ksg"), int(np.sum(np.asarray(eps) == 0))


def mixed(x, labels, *, k: int = 3, standardize: bool = True, tile: int = 128, groups=None):
    """Ross (2014) kNN estimator of I(X; Y), X continuous, Y discrete (nats); one value per group.

    I = ψ(N) + ψ(k) − ⟨ψ(N_{y_i})⟩ − ⟨ψ(m_i)⟩ (see `mixed_terms`).
    """
    x = standardise(x) if standardize else np.asarray(x, np.float64)
    g = np.zeros(x.shape[0], np.int32) if groups is None else np.asarray(groups, np.int32)
    dt = _dtype()
    terms, eps = mixed_terms(
        jnp.asarray(x, dt),
        jnp.asarray(np.asarray(labels), jnp.int32),
        jnp.asarray(g),
        k=k,
        tile=tile,
    )
    return group_estimates(np.asarray(terms), g, k, "mixed"), int(np.sum(np.asarray(eps) == 0))
