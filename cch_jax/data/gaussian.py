"""Training sets drawn from the joint Gaussian model of `theory` (docs/theory.md eq. 1).

One `theory.JointGaussian` spec feeds both the closed-form theory and the simulation:

    [x1, x2, y] = z Lᵀ,   z ~ N(0, I_d),   L = cholesky(Σ)   (so Cov = L Lᵀ = Σ).

`GaussianSource` is the engine's data source for it: every run draws a fresh training set from its
own key (seeds = training sets, as the theory's expectation over training sets requires).

A linear student sees its training set only through moments (`cch_jax.losses.LinearStats`), and
those of a Gaussian sample have a known law, drawn directly by `sample_moments` in O(m³) whatever n
(m = p2 + 2): with u = (x2, y, t) ~ N(0, Σu), the sum Uᵀ1 ~ N(0, nΣu) is independent of the centred
scatter Uᵀ(I − 11ᵀ/n)U ~ Wishart_m(n − 1, Σu), which the Bartlett decomposition draws from
m(m − 1)/2 normals and m chi-squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import theory
from cch_jax._base import check_int, hi
from cch_jax.losses import LinearStats, mse
from cch_jax.models import LinearStudent, linear_bias, linear_weights
from theory import JointGaussian


def cholesky_factor(model: JointGaussian, dtype=None):
    """L with L Lᵀ = Σ, shape (d, d), in `dtype` (default: the default float dtype).

    Computed in float64 numpy when Σ is concrete (so float32 runs still get an accurate factor);
    with jnp when Σ is traced (a vmapped batch of models).
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    if isinstance(model.cov, jax.core.Tracer):
        return jnp.linalg.cholesky(model.cov.astype(dtype))
    if model.cov.ndim != 2:
        raise ValueError(f"model.cov of shape {model.cov.shape} must be one (d, d) matrix here")
    return jnp.asarray(np.linalg.cholesky(np.asarray(model.cov, dtype=np.float64)), dtype=dtype)


def sample_gaussian(model: JointGaussian, n: int, *, key, dtype=None):
    """Draw n i.i.d. samples (x1, x2, y) ~ N(0, Σ).

    Args:
      model: the `theory.JointGaussian` spec (Σ ordered [x1, x2, y]).
      n: number of samples.
      key: a `jax.random` key.
      dtype: output float dtype; default the default float dtype (float32 unless x64 is on).

    Returns:
      x1 of shape (n, p1), x2 of shape (n, p2), y of shape (n,).
    """
    n = check_int("n", n)
    L = cholesky_factor(model, dtype)
    z = jax.random.normal(key, (n, model.dim), dtype=L.dtype)
    x = hi(z, L.T)
    p1, p2 = model.p1, model.p2
    return x[:, :p1], x[:, p1 : p1 + p2], x[:, p1 + p2]


SAMPLERS = ("moments", "rows")


def moment_factor(model: JointGaussian, w1) -> np.ndarray:
    """R (m, m), m = p2 + 2, upper triangular with RᵀR = Σu = Cov(x2, y, t), t = w1ᵀx1 (float64).

    u = A·[x1, x2, y] with A the (m, d) selection/teacher map, so u = Lᵀ-rotated normals: u ~ zM
    with M = LᵀAᵀ (d, m), z ~ N(0, I_d). M = QR (thin QR) gives MᵀM = RᵀR, and zQ ~ N(0, I_m):
    u ~ z'R with z' ~ N(0, I_m). QR, not a Cholesky of Σu: Σu is singular when w1 = 0.
    """
    p1, p2, d = model.p1, model.p2, model.dim
    a = np.zeros((p2 + 2, d))
    a[:p2, p1 : p1 + p2] = np.eye(p2)  # x2
    a[p2, d - 1] = 1.0  # y
    a[p2 + 1, :p1] = np.asarray(w1, np.float64)  # t = w1ᵀx1
    chol = np.linalg.cholesky(np.asarray(model.cov, np.float64))
    return np.linalg.qr(chol.T @ a.T, mode="r")


def wishart_factor(key, dof: int, m: int, dtype=None) -> jax.Array:
    """T (m, min(m, dof)) with T Tᵀ ~ Wishart_m(dof, I); O(m²) random numbers.

    dof ≥ m: the Bartlett decomposition, T lower triangular, T_ii² ~ χ²_{dof−i} (i = 0…m−1, drawn
    as 2·Gamma((dof − i)/2)) and T_ij ~ N(0, 1) below the diagonal, all independent.
    dof < m (a singular Wishart): T = G, a (m, dof) matrix of N(0, 1), by definition.
    dof is static (a Python int); jit/vmap-safe in key.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    k_diag, k_low = jax.random.split(key)
    if dof < m:
        return jax.random.normal(k_low, (m, dof), dtype)
    half_dof = (dof - jnp.arange(m, dtype=dtype)) / 2
    diag = jnp.sqrt(2 * jax.random.gamma(k_diag, half_dof, dtype=dtype))
    low = jnp.tril(jax.random.normal(k_low, (m, m), dtype), k=-1)
    return low + jnp.diag(diag)


def sample_moments(model: JointGaussian, n: int, w1, *, key, dtype=None) -> LinearStats:
    """The `LinearStats` of n i.i.d. rows (x2, y, t = w1ᵀx1), drawn exactly without the rows.

    In units of z' ~ N(0, I_m) (u = z'R, `moment_factor`): g ~ N(0, I_m) gives the sum √n·g, and
    T Tᵀ ~ Wishart_m(n − 1, I) the centred scatter (`wishart_factor`), independent, so

        UᵀU/n = Rᵀ(T Tᵀ + g gᵀ)R/n = (F Fᵀ + h hᵀ)/n,   ū = h/√n,   F = RᵀT, h = Rᵀg.

    Same law as `linear_stats(*rows)` of `sample_gaussian`'s rows; O(m³), independent of n.
    """
    n = check_int("n", n)
    dtype = jnp.result_type(float) if dtype is None else dtype
    r = jnp.asarray(moment_factor(model, w1), dtype)
    k_sum, k_scatter = jax.random.split(key)
    g = jax.random.normal(k_sum, (r.shape[0],), dtype)
    f = hi(r.T, wishart_factor(k_scatter, n - 1, r.shape[0], dtype))
    h = hi(r.T, g)
    second = (hi(f, f.T) + jnp.outer(h, h)) / n  # E_n[u uᵀ]
    mean = h / np.sqrt(n)
    p2 = model.p2
    x2, y, t = slice(0, p2), p2, p2 + 1
    return LinearStats(
        xx=second[x2, x2],
        xy=second[x2, y],
        xt=second[x2, t],
        mx=mean[x2],
        yy=second[y, y],
        tt=second[t, t],
        my=mean[y],
        mt=mean[t],
    )


@dataclass(frozen=True, eq=False)
class GaussianSource:
    """Regression data drawn afresh per run from a `theory.JointGaussian`; the teacher t = w1ᵀx1.

    model: the Gaussian spec; n: training-set size; w1: teacher weights (p1,), default
    theory.optimal_teacher(model); n_test, test_seed: the fixed test sample for non-linear students.
    sampler: "moments" (default): a run that trains from moments (a linear student on the fast
      path, `cch_jax.train.draws_moments`) draws them directly (`sample_moments`, O(m³) whatever
      n); "rows": it draws the n rows and computes their moments (the reference, O(n·d²)). Other
      students always train on rows.
    """

    model: JointGaussian
    n: int
    w1: Any = None
    n_test: int = 10_000
    test_seed: int = 0
    sampler: str = "moments"

    def __post_init__(self):
        if not isinstance(self.model, JointGaussian):
            raise TypeError(f"model={self.model!r} must be a theory.JointGaussian")
        if self.model.cov.ndim != 2:
            raise ValueError(f"model.cov of shape {self.model.cov.shape} must be one (d, d) matrix")
        check_int("n", self.n)
        check_int("n_test", self.n_test)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} must be one of {SAMPLERS}")
        w1 = theory.optimal_teacher(self.model) if self.w1 is None else self.w1
        w1 = np.asarray(w1, dtype=np.float64)
        if w1.shape != (self.model.p1,):
            raise ValueError(f"w1 of shape {w1.shape} must have shape (p1,)=({self.model.p1},)")
        if not np.all(np.isfinite(w1)):
            raise ValueError("w1 has non-finite entries (NaN or inf)")
        object.__setattr__(self, "w1", w1)

    def check(self, task: str, batch_size: int | None) -> None:
        if task != "regression":
            raise ValueError(f"task={task!r}: a GaussianSource only supports 'regression'")
        if batch_size is not None and batch_size > self.n:
            raise ValueError(f"batch_size={batch_size} must be <= n={self.n}")

    def draw(self, data, key):
        """A fresh training set (x2 (n, p2), y (n,), t = x1 w1 (n,)) from `key` (`data` unused)."""
        del data
        dtype = jnp.result_type(float)
        x1, x2, y = sample_gaussian(self.model, self.n, key=key, dtype=dtype)
        return x2, y, hi(x1, jnp.asarray(self.w1, dtype))

    def draw_moments(self, data, key) -> LinearStats:
        """The moments of a fresh training set, drawn directly (`sample_moments`; `data` unused)."""
        del data
        return sample_moments(self.model, self.n, self.w1, key=key)

    def input_example(self, data):
        """One input row's shape and dtype, (1, p2) zeros (what a student is initialised on)."""
        del data
        return jnp.zeros((1, self.model.p2), jnp.result_type(float))

    def test_metric(self, student, task: str):
        """metric(params, data): the exact population risk R(w, b) (docs/theory.md eq. 5) for a
        linear student with one output; else the MSE on a fixed test sample of n_test points."""
        dtype = jnp.result_type(float)
        if isinstance(student, LinearStudent) and student.out == 1:
            pop = theory.Population(*(jnp.asarray(a, dtype) for a in theory.population(self.model)))
            return lambda params, data: theory.risk_from_population(
                pop, linear_weights(params), linear_bias(params)
            )
        _, x_test, y_test = sample_gaussian(
            self.model, self.n_test, key=jax.random.key(self.test_seed)
        )
        return lambda params, data: mse(student.apply(params, x_test)[:, 0], y_test)

    def to_dict(self) -> dict:
        return {
            "kind": "gaussian",
            "cov": np.asarray(self.model.cov).tolist(),
            "p1": self.model.p1,
            "p2": self.model.p2,
            "n": self.n,
            "w1": self.w1.tolist(),
            "n_test": self.n_test,
            "test_seed": self.test_seed,
            "sampler": self.sampler,
        }
