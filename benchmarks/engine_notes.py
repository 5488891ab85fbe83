"""The two numbers docs/engine.md quotes in "Precision and speed notes" and "Running": measured,
not remembered. Run by hand (about a minute on 2 CPU cores):

    .venv/bin/python -m benchmarks.engine_notes

1. Wall time and peak RSS of a float32 scan of 10⁵ linear students (4 λ × 25 000 seeds, 500
   steps, chunk_size 16384, the model theory.random_model(key(3), 4, 8), n = 40).
2. How far full-batch Adam with a *constant* step (lr 0.1, 2000 steps, float64) leaves linear
   students from their closed-form ŵ(λ), against the cosine decay used by `cch verify`.
"""

from __future__ import annotations

import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

import theory
from cch_jax.scan import run_scan
from cch_jax.train import GaussianSource, TrainConfig, training_set


def big_scan() -> dict:
    model = theory.random_model(jax.random.key(3), 4, 8)
    config = TrainConfig(data=GaussianSource(model, 40), steps=500, eval_every=500)
    start = time.perf_counter()
    run_scan(
        config,
        [0.0, 0.5, 1.0, 2.0],
        [1.0],
        np.arange(25_000),
        learning_rates=[0.1],
        chunk_size=16384,
    )
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    return {"wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2), "load": os.getloadavg()[0]}


def constant_adam(seeds: int = 200) -> dict:
    model = theory.random_model(jax.random.key(3), 4, 8)
    source = GaussianSource(model, 40)
    out = {}
    with jax.enable_x64(True):
        for schedule in ("constant", "cosine"):
            config = TrainConfig(data=source, steps=2000, eval_every=2000, schedule=schedule)
            lams = np.array([0.0, 0.5, 2.0])
            scan = run_scan(config, lams, [1.0], np.arange(seeds), learning_rates=[0.1])
            w = np.asarray(
                scan.params["params"]["head"]["kernel"][:, 0, 0, :, :, 0]
            )  # (λ, seed, p2)
            sets = jax.vmap(lambda s: training_set(source, None, jax.random.key(s)))(
                jnp.arange(seeds)
            )
            errs = []
            for i, lam in enumerate(lams):
                w_hat = np.asarray(
                    jax.vmap(lambda x, y, t, lam=lam: theory.kd_weights(x, y, t, lam))(*sets)
                )
                rel = np.linalg.norm(w[i] - w_hat, axis=1) / np.linalg.norm(w_hat, axis=1)
                errs.append(rel)
            errs = np.concatenate(errs)
            out[schedule] = {
                "min": float(errs.min()),
                "median": float(np.median(errs)),
                "max": float(errs.max()),
            }
    return out


if __name__ == "__main__":
    print("constant vs cosine Adam (relative |w − ŵ|):", constant_adam())
    print("10^5 float32 students:", big_scan())
