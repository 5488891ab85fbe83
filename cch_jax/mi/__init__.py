"""Mutual-information estimators with uncertainty, in nats.

    from cch_jax.mi import estimate
    est = estimate(x, y, key=jax.random.key(0), estimator="ksg")   # MIEstimate
    est.value, est.stderr, est.ci, est.details

Estimators: "gaussian" (bias-corrected log-det), "ksg" (Kraskov et al. 2004, estimator 1),
"mixed" (Ross 2014, continuous x / discrete labels y), "mine", "infonce", "nwj" (Flax critics,
vmapped over seeds), "latent" (Gowri et al. 2024: autoencoders + KSG). See docs/mi_validation.md
for their measured bias, spread, interval coverage and run time on tasks with known MI.
"""

from cch_jax.mi.api import ESTIMATORS, MIEstimate, estimate, permutation_null
from cch_jax.mi.gaussian import gaussian_mi, logdet_bias
from cch_jax.mi.knn import ksg, mixed
from cch_jax.mi.validate import is_labels, validate

__all__ = [
    "ESTIMATORS",
    "MIEstimate",
    "estimate",
    "gaussian_mi",
    "is_labels",
    "ksg",
    "logdet_bias",
    "mixed",
    "permutation_null",
    "validate",
]
