"""A trained ensemble of linear KD students against the closed form, in one call.

    sim = simulate_linear_kd(model, w1, n, lams, seeds)    # -> LinearKD

For each λ, `seeds` students (seeds 0…S−1: each its own Gaussian training set of n samples, the
same sets for every λ) are trained by full-batch Adam with a cosine-decayed step on
mean (y − wᵀx2)² + λ·mean (wᵀx2 − t)², and scored by their exact population risk R(w)
(docs/theory.md eq. 5). Beside them: the theory's expected risk R(λ) (eq. 7), and each student's
distance to the exact minimiser ŵ(λ) of its own training set (eq. 3), which says whether the
optimiser converged — the theory describes ŵ(λ), not a student half-way to it.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import theory
from cch_jax._base import check_int
from cch_jax.data.gaussian import GaussianSource
from cch_jax.models import linear_weights
from cch_jax.results import seed_stats
from cch_jax.scan import check_grid, run_scan
from cch_jax.train import TrainConfig, training_set

# Bytes the students of one compiled chunk (or the closed forms of one block of seeds) may hold.
MEMORY_BUDGET = 2 * 2**30


class LinearKD(NamedTuple):
    """A simulation against the theory; axes λ (L,) and seed (S,).

    risk (L, S): each student's exact population risk R(w). diverged (L, S): a non-finite loss.
    weight_error (L, S): ‖w − ŵ(λ)‖/‖ŵ(λ)‖ on the student's own training set (NaN if diverged).
    theory_risk (L,): the expected risk R(λ). mean, sem, count (L,): seed mean, its standard error
    and the number of students behind them (diverged ones excluded). seconds: training time.
    """

    lams: np.ndarray
    risk: np.ndarray
    diverged: np.ndarray
    weight_error: np.ndarray
    theory_risk: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    count: np.ndarray
    seconds: float

    @property
    def z(self) -> np.ndarray:
        """(mean − R(λ))/SEM per λ: how many standard errors the ensemble is off the theory."""
        return (self.mean - self.theory_risk) / self.sem


def students_per_chunk(model: theory.JointGaussian, n: int, budget: int = MEMORY_BUDGET) -> int:
    """How many students fit in `budget` bytes at once: each holds about three copies of its
    training sample, (n, p1 + p2 + 1) floats (the normal draws, their product with L, the slices)."""
    per_student = 3 * n * model.dim * jnp.dtype(jnp.result_type(float)).itemsize
    if per_student > budget:
        raise ValueError(
            f"n={n}: one training set of {n} × {model.dim} needs {per_student / 2**30:.2g} GiB, "
            f"over the memory budget of {budget / 2**30:.2g} GiB"
        )
    return budget // per_student


def closed_form_weights(source: GaussianSource, lams, seeds, block: int) -> np.ndarray:
    """ŵ(λ) (eq. 3) on the training set of each seed's run: (L, S, p2), `block` seeds at a time."""

    @jax.jit  # one program for every block: eager vmaps would compile op by op
    def one_block(seeds, lams):
        sets = jax.vmap(lambda s: training_set(source, None, jax.random.key(s)))(seeds)
        per_lam = lambda lam: jax.vmap(lambda *xyt: theory.kd_weights(*xyt, lam))(*sets)
        return jax.vmap(per_lam)(lams)

    lams = jnp.asarray(lams, jnp.result_type(float))
    padded = np.resize(seeds, block * -(-len(seeds) // block)).astype(np.int32)  # repeats: dropped
    blocks = [one_block(padded[i : i + block], lams) for i in range(0, len(padded), block)]
    return np.concatenate([np.asarray(b) for b in blocks], axis=1)[:, : len(seeds)]


def simulate_linear_kd(
    model: theory.JointGaussian,
    w1,
    n: int,
    lams,
    seeds: int,
    *,
    steps: int = 2000,
    learning_rate: float = 0.1,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> LinearKD:
    """Train `seeds` linear students per λ on fresh Gaussian training sets (module docstring).

    model, w1 (p1,), n: the Gaussian model, the teacher t = w1ᵀx1 and the training-set size
    (n > p2 + 1). lams (L,): KD weights λ >= 0. seeds: students per λ (>= 2, for a standard
    error). steps, learning_rate: Adam's steps and peak step size. chunk_size: students per
    compiled call; None sizes it (and the closed-form blocks) to MEMORY_BUDGET. Every argument is
    checked before any training.
    """
    source = GaussianSource(model, n, w1=w1)
    config = TrainConfig(
        task="regression",
        data=source,
        model="linear",
        steps=steps,
        eval_every=steps,
        optimizer="adam",
        schedule="cosine",
    )
    seeds = np.arange(check_int("seeds", seeds, 2))
    lams = check_grid(config, lams, [1.0], seeds, [learning_rate])[0].astype(np.float64)
    theory_risk = np.asarray(theory.expected_risk(model, source.w1, lams, n))  # checks n
    budget_chunk = students_per_chunk(model, n)
    chunk = budget_chunk if chunk_size is None else chunk_size

    start = time.perf_counter()
    scan = run_scan(
        config, lams, [1.0], seeds, [learning_rate], chunk_size=chunk, progress=progress
    ).sel(temperature=1.0, learning_rate=learning_rate)
    seconds = time.perf_counter() - start

    risk, diverged = np.asarray(scan.final_test), np.asarray(scan.diverged)  # (L, S)
    w = np.asarray(linear_weights(scan.params))  # (L, S, p2)
    w_hat = closed_form_weights(source, lams, seeds, min(budget_chunk, len(seeds)))
    error = np.linalg.norm(w - w_hat, axis=-1) / np.linalg.norm(w_hat, axis=-1)
    mean, sem, count = seed_stats(risk, diverged, axis=1)
    return LinearKD(
        lams=lams,
        risk=risk,
        diverged=diverged,
        weight_error=np.where(diverged, np.nan, error),
        theory_risk=theory_risk,
        mean=mean,
        sem=sem,
        count=count,
        seconds=seconds,
    )
