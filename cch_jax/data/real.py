"""Real data sets, one import away (the loaders live in the modules named below).

All data come out of pinned registry wheels (see ``cch_jax.data.wheels`` and docs/data.md), or,
for CMU-MOSEI, from the user's own feature files. Nothing is committed to the repository.
"""

from cch_jax.data.mnist import (
    gaussian_blur,
    load_mnist,
    load_mnist_pair,
    load_mnistm,
)
from cch_jax.data.mosei import load_mosei
from cch_jax.data.multiview import load_multiview
from cch_jax.data.omics import load_omics
from cch_jax.data.wheels import (
    DataIntegrityError,
    DataUnavailableError,
    cache_dir,
    fetch_wheel,
)

__all__ = [
    "DataIntegrityError",
    "DataUnavailableError",
    "cache_dir",
    "fetch_wheel",
    "gaussian_blur",
    "load_mnist",
    "load_mnist_pair",
    "load_mnistm",
    "load_mosei",
    "load_multiview",
    "load_omics",
]
