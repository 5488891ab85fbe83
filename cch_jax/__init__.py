"""cch_jax: the engine — data, Flax students, KD losses, vmapped training scans, MI estimators, CLI."""

__version__ = "0.1.0"
