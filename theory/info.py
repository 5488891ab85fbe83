"""Analytic mutual informations of the Gaussian model, in nats (docs/theory.md eqs. 13-14).

Scalar jointly Gaussian u, v: I(u; v) = −½ log(1 − ρ²). Vector blocks:
I(a; b) = ½ log(det Σaa · det Σbb / det Σ[a,b]).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from theory._x64 import float64
from theory.model import JointGaussian, best_student, check_w1

BLOCKS = ("x1", "x2", "y")


def scalar_gaussian_mi(cov_uv, var_u, var_v):
    """I(u; v) = −½ log(1 − ρ²), ρ² = Cov(u,v)²/(Var u · Var v)."""
    rho2 = cov_uv**2 / (var_u * var_v)
    return -0.5 * jnp.log1p(-rho2)


def teacher_student_moments(model: JointGaussian, w1):
    """(Var t, Var s, Cov(t, s), Var y) for t = w1ᵀx1 and s = w*ᵀx2."""
    w_star = best_student(model)
    var_t = w1 @ model.block("x1", "x1") @ w1
    var_s = w_star @ model.block("x2", "x2") @ w_star
    cov_ts = w1 @ model.block("x1", "x2") @ w_star
    return var_t, var_s, cov_ts, model.block("y", "y")[0, 0]


@float64
def mi_teacher_student(model: JointGaussian, w1):
    """I(t; s) = I(w1ᵀx1; w*ᵀx2) in nats."""
    var_t, var_s, cov_ts, _ = teacher_student_moments(model, check_w1(model, w1))
    return scalar_gaussian_mi(cov_ts, var_t, var_s)


@float64
def mi_student_label(model: JointGaussian):
    """I(s; y) = I(w*ᵀx2; y) = I(x2; y) in nats (Cov(s, y) = Var s)."""
    w_star = best_student(model)
    var_s = model.block("y", "x2")[0] @ w_star
    return scalar_gaussian_mi(var_s, var_s, model.block("y", "y")[0, 0])


def _indices(model: JointGaussian, blocks: str | Sequence[str]):
    names = (blocks,) if isinstance(blocks, str) else tuple(blocks)
    if not names:
        raise ValueError("a block list must name at least one of 'x1', 'x2', 'y'")
    idx = []
    for name in names:
        sl = model.block_index(name)
        idx.extend(range(sl.start, sl.stop))
    return names, jnp.asarray(idx)


def _logdet(m):
    return jnp.linalg.slogdet(m)[1]


@float64
def mi_blocks(model: JointGaussian, a: str | Sequence[str], b: str | Sequence[str]):
    """I(a; b) for blocks (or tuples of blocks) among 'x1', 'x2', 'y', in nats."""
    names_a, ia = _indices(model, a)
    names_b, ib = _indices(model, b)
    if set(names_a) & set(names_b):
        raise ValueError(f"blocks a={names_a} and b={names_b} must be disjoint")
    iab = jnp.concatenate([ia, ib])
    sub = lambda i: model.cov[..., i[:, None], i[None, :]]
    return 0.5 * (_logdet(sub(ia)) + _logdet(sub(ib)) - _logdet(sub(iab)))
