"""Scoped float64 and precise products for the closed-form theory.

JAX computes in float32 unless x64 is enabled. Flipping the global flag on import would make the
engine float64 too (slow on GPU), so each public theory function runs inside `jax.enable_x64(True)`
instead. Inside a trace (jit/vmap/grad) the caller's precision is kept: switching the flag in the
middle of a trace is unsafe, and a caller who traces theory code can enable x64 around it.

Outside a trace the results come back as numpy float64 arrays: a JAX float64 array used in
arithmetic after the x64 scope has closed would be silently truncated to float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _is_traced(args, kwargs) -> bool:
    leaves = jax.tree_util.tree_leaves((args, kwargs))
    return any(isinstance(x, jax.core.Tracer) for x in leaves)


def float64(fn):
    """Run `fn` with x64 enabled unless it is being traced (see module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _is_traced(args, kwargs):
            return fn(*args, **kwargs)
        with jax.enable_x64(True):
            return jax.tree_util.tree_map(_to_numpy, fn(*args, **kwargs))

    return wrapper


def _to_numpy(x):
    return np.asarray(x) if isinstance(x, jax.Array) else x


def as_float(x):
    """`x` as a JAX array of the widest float dtype currently enabled."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


def hi(a, b):
    """a @ b at precision "highest": theory code traced inside a float32 run must not drop to the
    GPU's TF32 default (docs/design.md, "Precision"). The theory imports nothing of the engine, so
    it keeps this two-line helper of its own."""
    return jnp.matmul(a, b, precision="highest")
