"""Data sources for the engine: samplers of the Gaussian model (and loaders of real data)."""

from cch_jax.data.gaussian import sample_gaussian

__all__ = ["sample_gaussian"]
