"""Training sets drawn from the joint Gaussian model of `theory` (docs/theory.md eq. 1).

One `theory.JointGaussian` spec feeds both the closed-form theory and the simulation:

    [x1, x2, y] = z Lᵀ,   z ~ N(0, I_d),   L = cholesky(Σ)   (so Cov = L Lᵀ = Σ).

`GaussianSource` is the engine's data source for it: every run draws a fresh training set from its
own key (seeds = training sets, as the theory's expectation over training sets requires).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import theory
from cch_jax._base import check_int, hi
from cch_jax.losses import mse
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


@dataclass(frozen=True, eq=False)
class GaussianSource:
    """Regression data drawn afresh per run from a `theory.JointGaussian`; the teacher t = w1ᵀx1.

    model: the Gaussian spec; n: training-set size; w1: teacher weights (p1,), default
    theory.optimal_teacher(model); n_test, test_seed: the fixed test sample for non-linear students.
    """

    model: JointGaussian
    n: int
    w1: Any = None
    n_test: int = 10_000
    test_seed: int = 0

    def __post_init__(self):
        if not isinstance(self.model, JointGaussian):
            raise TypeError(f"model={self.model!r} must be a theory.JointGaussian")
        if self.model.cov.ndim != 2:
            raise ValueError(f"model.cov of shape {self.model.cov.shape} must be one (d, d) matrix")
        check_int("n", self.n)
        check_int("n_test", self.n_test)
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
        }
