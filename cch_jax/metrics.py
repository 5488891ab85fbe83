"""The metric trajectories of a training run: produced by the engine, stored by the results."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Metrics(NamedTuple):
    """Metric trajectories, each of shape (steps // eval_every,) for one run.

    total, label, kd: the loss and its unweighted parts (`cch_jax.losses.LossParts`), averaged
      over the eval_every steps of each block (minibatch losses before each update).
    test: the test metric after the block (exact risk / test MSE / test accuracy).
    """

    total: jax.Array
    label: jax.Array
    kd: jax.Array
    test: jax.Array
