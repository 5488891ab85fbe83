"""Training sets drawn from the joint Gaussian model of `theory` (design.md §2).

One `theory.JointGaussian` spec feeds both the closed-form theory and the simulation:

    [x1, x2, y] = z Lᵀ,   z ~ N(0, I_d),   L = cholesky(Σ)   (so Cov = L Lᵀ = Σ).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theory import JointGaussian


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n={n!r} must be an integer")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (number of samples)")
    return int(n)


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
    n = _check_n(n)
    L = cholesky_factor(model, dtype)
    z = jax.random.normal(key, (n, model.dim), dtype=L.dtype)
    # 'highest': GPU float32 matmuls default to TF32, too coarse to compare with the theory.
    x = jnp.matmul(z, L.T, precision="highest")
    p1, p2 = model.p1, model.p2
    return x[:, :p1], x[:, p1 : p1 + p2], x[:, p1 + p2]
