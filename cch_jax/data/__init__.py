"""Data for the engine: the Gaussian sampler; the sources `train` draws from
(`cch_jax.data.gaussian.GaussianSource`, `cch_jax.data.arrays.ArrayData`); loaders of real data."""

from cch_jax.data.gaussian import sample_gaussian

__all__ = ["sample_gaussian"]
