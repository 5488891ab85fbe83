"""The joint Gaussian model (x1, x2, y) ~ N(0, Σ) and its population quantities (design.md §2).

Σ is ordered [x1 (p1), x2 (p2), y (1)]. A fixed linear teacher t = w1ᵀx1 is distilled into a linear
student on x2. Every quantity below is one small function of (Σ, w1), written as in the design note.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory._x64 import as_float, float64

SYMMETRY_RTOL = 1e-10


def _check_dim(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < 1:
        raise ValueError(f"{name}={value} must be >= 1")
    return int(value)


def validate_cov(cov, p1: int, p2: int) -> np.ndarray:
    """Check that `cov` is a valid covariance for blocks (p1, p2, 1); return it as float64 numpy.

    Accepts a single (d, d) matrix or a batch (..., d, d). Raises ValueError naming the rule.
    """
    p1, p2 = _check_dim("p1", p1), _check_dim("p2", p2)
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"cov of shape {c.shape} must be a square matrix (d, d)")
    d = p1 + p2 + 1
    if c.shape[-1] != d:
        raise ValueError(
            f"cov of size {c.shape[-1]} must have size p1+p2+1={d} (ordered [x1, x2, y])"
        )
    if not np.all(np.isfinite(c)):
        raise ValueError("cov has non-finite entries (NaN or inf)")
    scale = np.max(np.abs(c), axis=(-2, -1), keepdims=True)
    asym = np.max(np.abs(c - np.swapaxes(c, -1, -2)) / np.where(scale > 0, scale, 1.0))
    if asym > SYMMETRY_RTOL:
        raise ValueError(
            f"cov is not symmetric: max |cov - cov.T| / max|cov| = {asym:.3g} > {SYMMETRY_RTOL:g}"
        )
    min_eig = np.min(np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2))))
    if not min_eig > 0:
        raise ValueError(
            f"cov is not positive definite: smallest eigenvalue {min_eig:.3g} must be > 0"
        )
    return c


@jax.tree_util.register_pytree_node_class
class JointGaussian:
    """Validated spec of (x1, x2, y) ~ N(0, cov), cov ordered [x1, x2, y].

    Args:
      cov: (p1+p2+1, p1+p2+1) symmetric positive-definite matrix, or a batch (B, d, d) of them
        (then vmap the theory functions over the model).
      p1, p2: teacher and student dimensions.

    A pytree: `cov` is the leaf, (p1, p2) static, so models can be vmapped and jitted.
    """

    def __init__(self, cov, p1: int, p2: int):
        c = validate_cov(cov, p1, p2)
        self.p1, self.p2 = int(p1), int(p2)
        self.cov = c  # numpy float64: stays float64 whatever JAX's x64 flag (see theory._x64)

    @classmethod
    def unchecked(cls, cov, p1: int, p2: int) -> JointGaussian:
        """Build without validation (inside traces, or for covariances built to be valid)."""
        obj = object.__new__(cls)
        obj.cov, obj.p1, obj.p2 = cov, int(p1), int(p2)
        return obj

    def tree_flatten(self):
        return (self.cov,), (self.p1, self.p2)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls.unchecked(children[0], *aux)

    @property
    def dim(self) -> int:
        return self.p1 + self.p2 + 1

    def block_index(self, name: str) -> slice:
        """Index range of block 'x1', 'x2' or 'y' in cov."""
        p1, p2 = self.p1, self.p2
        ranges = {"x1": slice(0, p1), "x2": slice(p1, p1 + p2), "y": slice(p1 + p2, p1 + p2 + 1)}
        if name not in ranges:
            raise ValueError(f"block={name!r} must be one of 'x1', 'x2', 'y'")
        return ranges[name]

    def block(self, a: str, b: str):
        """Σ_ab, shape (..., |a|, |b|)."""
        return self.cov[..., self.block_index(a), self.block_index(b)]

    def __repr__(self) -> str:
        return f"JointGaussian(p1={self.p1}, p2={self.p2}, cov.shape={tuple(self.cov.shape)})"


class KDStats(NamedTuple):
    """Population quantities of design.md §2 for one (model, teacher w1); scalars.

    sigma2 = Var(y|x2), sigma_t2 = Var(t|x2), c = Cov(y, t|x2), D = (v − w*)ᵀΣ22(v − w*).
    """

    sigma2: jax.Array
    sigma_t2: jax.Array
    c: jax.Array
    D: jax.Array


def check_w1(model: JointGaussian, w1):
    w1 = as_float(w1)
    if w1.shape != (model.p1,):
        raise ValueError(f"w1 of shape {tuple(w1.shape)} must have shape (p1,)=({model.p1},)")
    return w1


@float64
def optimal_teacher(model: JointGaussian):
    """w1 = Σ11⁻¹Σ1y, the population-optimal linear teacher, shape (p1,)."""
    return jnp.linalg.solve(model.block("x1", "x1"), model.block("x1", "y"))[..., 0]


def best_student(model: JointGaussian):
    """w* = Σ22⁻¹Σ2y, shape (p2,)."""
    return jnp.linalg.solve(model.block("x2", "x2"), model.block("x2", "y"))[..., 0]


def teacher_projection(model: JointGaussian, w1):
    """v = Σ22⁻¹Σ21 w1: the best linear predictor of t = w1ᵀx1 from x2, shape (p2,)."""
    return jnp.linalg.solve(model.block("x2", "x2"), model.block("x2", "x1") @ w1)


def kd_stats(model: JointGaussian, w1) -> KDStats:
    """σ², σt², c, D of design.md §2 (not wrapped: callers set the precision)."""
    S11, S12 = model.block("x1", "x1"), model.block("x1", "x2")
    S22, Sy1, Sy2 = model.block("x2", "x2"), model.block("y", "x1")[0], model.block("y", "x2")[0]
    var_y = model.block("y", "y")[0, 0]
    w_star, v = best_student(model), teacher_projection(model, w1)
    sigma2 = var_y - Sy2 @ w_star
    sigma_t2 = w1 @ S11 @ w1 - w1 @ S12 @ v
    c = Sy1 @ w1 - Sy2 @ v
    d = v - w_star
    return KDStats(sigma2=sigma2, sigma_t2=sigma_t2, c=c, D=d @ S22 @ d)


def finite_sample_factor(n: int, p2: int) -> float:
    """k = p2/(n − p2 − 1), from E[(X2ᵀX2)⁻¹] = Σ22⁻¹/(n − p2 − 1) (Wishart mean)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n={n!r} must be an integer")
    if n <= p2 + 1:
        raise ValueError(
            f"n={n} must exceed p2+1={p2 + 1}: the expected risk is infinite (E[(X2ᵀX2)⁻¹] diverges)"
        )
    return p2 / (n - p2 - 1)
