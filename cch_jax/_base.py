"""The engine's two shared helpers: precise products and the integer check."""

from __future__ import annotations

import jax.numpy as jnp

from theory.model import check_int  # the project's one integer check (theory is the bottom layer)

__all__ = ["check_int", "hi"]


def hi(a, b):
    """a @ b at precision "highest", for every product compared with the theory (why: the
    `cch_jax.models.LinearStudent` docstring)."""
    return jnp.matmul(a, b, precision="highest")
