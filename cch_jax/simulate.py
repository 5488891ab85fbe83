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
from cch_jax.scan import check_grid, default_memory_budget, plan_chunks, run_scan
from cch_jax.train import TrainConfig, run_bytes, training_moments


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


def reference_bytes(source: GaussianSource, n_lams: int) -> int:
    """Bytes the closed-form reference holds per seed, estimated (above XLA's own count: 16.5 vs
    14.8 MB from rows, 0.25 vs 0.07 MB from moments at p2 = 50, n = 10⁴): the moments it solves
    from (drawn: 8·m², m = p2 + 2; from rows: the set, 3·n·d, and one target per λ, n·L) and one
    (p2, p2) system per λ, times the float size."""
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    p2, dim = source.model.p2, source.model.dim
    data = 8 * (p2 + 2) ** 2 if source.sampler == "moments" else source.n * (3 * dim + n_lams)
    return (data + 2 * n_lams * (p2 + 2) ** 2) * itemsize


def seeds_per_block(source: GaussianSource, n_lams: int, budget: int) -> int:
    """How many seeds' closed forms fit in `budget` bytes at once (ValueError if not one)."""
    per_seed = reference_bytes(source, n_lams)
    if per_seed > budget:
        raise ValueError(
            f"n={source.n}: the closed-form reference of one training set needs "
            f"{per_seed / 2**30:.3g} GB, over the memory budget of {budget / 2**30:.3g} GB "
            "(memory_budget)"
        )
    return budget // per_seed


def closed_form_weights(source: GaussianSource, lams, seeds, block: int) -> np.ndarray:
    """ŵ(λ) (eq. 3) on the training set of each seed's run: (L, S, p2), `block` seeds at a time.

    From the moments the run trained from (`training_moments`: drawn directly, or those of its rows).
    """

    @jax.jit  # one program for every block: eager vmaps would compile op by op
    def one_block(seeds, lams):
        stats = jax.vmap(lambda s: training_moments(source, None, jax.random.key(s)))(seeds)
        per_lam = lambda lam: jax.vmap(
            lambda xx, xy, xt: theory.kd_weights_from_moments(xx, xy, xt, lam)
        )(stats.xx, stats.xy, stats.xt)
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
    sampler: str = "moments",
    memory_budget: int | None = None,
    progress: bool | None = None,
) -> LinearKD:
    """Train `seeds` linear students per λ on fresh Gaussian training sets (module docstring).

    model, w1 (p1,), n: the Gaussian model, the teacher t = w1ᵀx1 and the training-set size
    (n > p2 + 1). lams (L,): KD weights λ >= 0. seeds: students per λ (>= 2, for a standard
    error). steps, learning_rate: Adam's steps and peak step size. chunk_size: students per
    compiled call (at most; lowered to fit the budget), None: as many as fit. sampler: "moments"
    (each training set's moments drawn exactly, O(m³) whatever n) or "rows" (the n rows drawn,
    the reference). memory_budget: bytes the chunks and the closed-form blocks are sized to
    (default `cch_jax.scan.default_memory_budget()`). Every argument, and the size, is checked
    before any training.
    """
    source = GaussianSource(model, n, w1=w1, sampler=sampler)
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
    if chunk_size is not None:
        check_int("chunk_size", chunk_size)
    budget = (
        default_memory_budget()
        if memory_budget is None
        else check_int("memory_budget", memory_budget)
    )
    per_student = run_bytes(config)
    if per_student > budget:  # said here in the caller's words (n, not the scan's data.n)
        raise ValueError(
            f"n={n}: one student's training set ({sampler}) needs about "
            f"{per_student / 2**30:.3g} GB, more than the memory budget of {budget / 2**30:.3g} GB"
        )
    shape = (len(lams), 1, 1, len(seeds))
    chunk = plan_chunks(config, shape, chunk_size or len(lams) * len(seeds), budget)
    block = min(seeds_per_block(source, len(lams), budget), len(seeds))

    start = time.perf_counter()
    scan = run_scan(
        config,
        lams,
        [1.0],
        seeds,
        [learning_rate],
        chunk_size=chunk,
        memory_budget=budget,
        progress=progress,
    ).sel(temperature=1.0, learning_rate=learning_rate)
    seconds = time.perf_counter() - start

    risk, diverged = np.asarray(scan.final_test), np.asarray(scan.diverged)  # (L, S)
    w = np.asarray(linear_weights(scan.params))  # (L, S, p2)
    w_hat = closed_form_weights(source, lams, seeds, block)
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
