"""The joint Gaussian model (x1, x2, y) ~ N(0, Σ) and its population quantities (docs/theory.md).

Σ is ordered [x1 (p1), x2 (p2), y (1)]. A fixed linear teacher t = w1ᵀx1 is distilled into a linear
student on x2. Every quantity below is one small function of (Σ, w1), numbered as in docs/theory.md:
the student's minimiser ŵ(λ) (eq. 3), the population quantities (eq. 4), the risk R(w, b) (eq. 5).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory._x64 import as_float, float64, hi

SYMMETRY_RTOL = 1e-10


def check_int(name: str, value, low: int = 1) -> int:
    """`value` as an int, or TypeError/ValueError naming `name`, the value and the rule (>= low).

    The project's one integer check: the engine uses it too (the theory is the bottom layer)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < low:
        raise ValueError(f"{name}={value} must be >= {low}")
    return int(value)


def validate_cov(cov, p1: int, p2: int) -> np.ndarray:
    """Check that `cov` is a valid covariance for blocks (p1, p2, 1); return it as float64 numpy.

    Accepts a single (d, d) matrix or a batch (..., d, d). Raises ValueError naming the rule.
    """
    p1, p2 = check_int("p1", p1), check_int("p2", p2)
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
    """Population quantities (docs/theory.md eq. 4) for one (model, teacher w1); scalars.

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
    return jnp.linalg.solve(model.block("x2", "x2"), hi(model.block("x2", "x1"), w1))


class Population(NamedTuple):
    """What the risk of a linear student on x2 depends on (eq. 5).

    w_star = w* = Σ22⁻¹Σ2y (p2,), S22 = Σ22 (p2, p2), sigma2 = σ² = Var(y|x2) = σy² − Σy2 w* ().
    """

    w_star: jax.Array
    S22: jax.Array
    sigma2: jax.Array


@float64
def population(model: JointGaussian) -> Population:
    """w*, Σ22 and σ² of one model (float64: the engine computes them once, outside its trace)."""
    w_star = best_student(model)
    var_y, Sy2 = model.block("y", "y")[0, 0], model.block("y", "x2")[0]
    return Population(w_star=w_star, S22=model.block("x2", "x2"), sigma2=var_y - hi(Sy2, w_star))


def risk_from_population(pop: Population, w, b=0.0):
    """R(w, b) = σ² + (w − w*)ᵀΣ22(w − w*) + b² (eq. 5); w (p2,), b scalar.

    Centred on w* rather than expanded (σy² − 2wᵀΣ2y + wᵀΣ22w + b²): no cancellation near the
    optimum, where trained students are. Not wrapped: traced inside training runs.
    """
    d = w - pop.w_star
    return pop.sigma2 + hi(d, hi(pop.S22, d)) + b**2


@float64
def population_risk(model: JointGaussian, w, b=0.0):
    """R(w, b) = E(y − wᵀx2 − b)², the exact test MSE of the linear student (w, b) (eq. 5)."""
    return risk_from_population(population(model), as_float(w), b)


@float64
def kd_weights(x2, y, t, lam):
    """ŵ(λ) = (X2ᵀX2)⁻¹X2ᵀ(y + λt)/(1 + λ), the minimiser of the KD loss on one training set (eq. 3).

    x2 (n, p2), y (n,), t (n,) → (p2,). Products at precision "highest" (`theory._x64.hi`).
    """
    target = (y + lam * t) / (1 + lam)
    return jnp.linalg.solve(hi(x2.T, x2), hi(x2.T, target))


def kd_stats(model: JointGaussian, w1) -> KDStats:
    """σ², σt², c, D of eq. 4 (not wrapped: callers set the precision)."""
    S11, S12 = model.block("x1", "x1"), model.block("x1", "x2")
    Sy1, Sy2 = model.block("y", "x1")[0], model.block("y", "x2")[0]
    pop, v = population(model), teacher_projection(model, w1)
    sigma_t2 = hi(w1, hi(S11, w1)) - hi(w1, hi(S12, v))
    c = hi(Sy1, w1) - hi(Sy2, v)
    d = v - pop.w_star
    return KDStats(sigma2=pop.sigma2, sigma_t2=sigma_t2, c=c, D=hi(d, hi(pop.S22, d)))


def finite_sample_factor(n: int, p2: int) -> float:
    """k = p2/(n − p2 − 1) (eq. 6), from E[(X2ᵀX2)⁻¹] = Σ22⁻¹/(n − p2 − 1) (Wishart mean)."""
    check_int("n", n)
    if n <= p2 + 1:
        raise ValueError(
            f"n={n} must exceed p2+1={p2 + 1}: the expected risk is infinite (E[(X2ᵀX2)⁻¹] diverges)"
        )
    return p2 / (n - p2 - 1)
