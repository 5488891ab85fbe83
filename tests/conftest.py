"""float64 once for the whole suite: theory-vs-simulation comparisons need it (design.md §4)."""

import jax

jax.config.update("jax_enable_x64", True)
