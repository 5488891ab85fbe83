"""CNN students: which way of running many of them is fastest on this machine (issue #15, item 3).

    PYTHONPATH=. python benchmarks/cnn_students.py [--steps 200] [--json out.json]

The work: `CNNStudent(channels=(8, 16), hidden=64)` (the `mnist_m --medium` student) trained by
Adam on 28 × 28 × 3 images (random numbers: the speed does not depend on the pixels), batch 64,
cross-entropy. Every row reports milliseconds per student-step (lower is better), compile
excluded (one untimed warm-up call first):

  plain-lax       a plain-JAX script (lax.scan of optax.adam on the Flax model), nn.Conv
  plain-patches   the same with the default `conv="patches"` (3 × 3 convolution as a matmul on
                  shifted slices, cch_jax.models.PatchConv)
  engine-1        the engine's single run (`make_train`, jit), patches
  engine-vmap-G   G engine runs vmapped under one jit on shared minibatches (the KD grid of one
                  seed: same key, different λ), patches (G = 3, 15); nn.Conv (G = 3: a vmapped
                  nn.Conv is a grouped convolution, minutes at G = 15)
  engine-2threads single engine runs, two at a time from two Python threads (the `jobs` runner
                  of experiments/mnist_m.py)
  plain-2devices  the plain script on 2 XLA host devices (`--xla_force_host_platform_device_count=2`,
                  one student per device, pmap), in a subprocess

Numbers measured on the 2-core CPU are in BENCHMARKS.md ("CNN students").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cch_jax.models import CNNStudent
from cch_jax.train import ArrayData, TrainConfig, make_train

N, BATCH, CLASSES = 8192, 64, 10


def images(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 28, 28, 3)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(rng.integers(0, CLASSES, N))


def plain_run(conv: str, steps: int):
    """key → per-step losses: the plain-JAX script."""
    x, y = images()
    model = CNNStudent(channels=(8, 16), hidden=64, out=CLASSES, conv=conv)
    opt = optax.adam(3e-3)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb).mean()

    def run(key):
        p = model.init(key, x[:1])
        st = opt.init(p)

        def step(c, k):
            p, st = c
            idx = jax.random.randint(k, (BATCH,), 0, N)
            val, g = jax.value_and_grad(loss)(p, x[idx], y[idx])
            u, st = opt.update(g, st, p)
            return (optax.apply_updates(p, u), st), val

        return jax.lax.scan(step, (p, st), jax.random.split(key, steps))[1]

    return run


def engine(conv: str, steps: int):
    x, y = images()
    data = ArrayData(x, y, jnp.zeros((N, CLASSES)), x[:256], y[:256])
    config = TrainConfig(
        task="classification",
        model="cnn",
        model_kwargs={"channels": (8, 16), "hidden": 64, "out": CLASSES, "conv": conv},
        steps=steps,
        eval_every=steps,
        optimizer="adam",
        schedule="cosine",
        batch_size=BATCH,
    )
    train = make_train(config, data)
    return data, train


def timed(fn, *args, reps=2) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / reps


def measure(steps: int) -> dict:
    key = jax.random.key(0)
    rows = {}
    for conv in ("lax", "patches"):
        rows[f"plain-{conv}"] = timed(jax.jit(plain_run(conv, steps)), key) / steps
    data, train = engine("patches", steps)
    one = jax.jit(lambda d, k, lam: train(d, k, lam, 2.0, 3e-3))
    rows["engine-1"] = timed(one, data, key, 0.5) / steps
    for conv, sizes in (("patches", (3, 15)), ("lax", (3,))):  # lax at 15: minutes (grouped conv)
        d_c, train_c = engine(conv, steps)
        for g in sizes:
            grid = jax.jit(
                jax.vmap(lambda d, k, lam, t=train_c: t(d, k, lam, 2.0, 3e-3), (None, None, 0))
            )
            lams = jnp.linspace(0.1, 0.9, g)
            rows[f"engine-vmap-{g}-{conv}"] = timed(grid, d_c, key, lams, reps=1) / steps / g
    keys = list(jax.random.split(key, 4))
    jax.block_until_ready(one(data, keys[0], 0.5))
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda k: jax.block_until_ready(one(data, k, 0.5)), keys))
        rows["engine-2threads"] = (time.perf_counter() - t0) / steps / len(keys)
    return rows


def two_devices(steps: int) -> float:
    """The plain script, one student per XLA host device (2 devices), in a subprocess."""
    code = (
        "import jax, sys; sys.path.insert(0, '.'); from benchmarks.cnn_students import *; "
        f"f = jax.pmap(plain_run('patches', {steps})); "
        "k = jax.random.split(jax.random.key(0), jax.local_device_count()); "
        f"print(timed(f, k) / {steps} / jax.local_device_count())"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args(argv)
    rows = measure(a.steps)
    rows["plain-2devices"] = two_devices(a.steps)
    dev = jax.devices()[0]
    print(f"{dev.platform} ({os.cpu_count()} cores), {a.steps} steps, batch {BATCH}")
    base = rows["plain-patches"]
    for name, s in rows.items():
        print(f"{name:26s} {1e3 * s:7.2f} ms per student-step   ({base / s:4.2f}× plain-patches)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ms_per_student_step": {k: 1e3 * v for k, v in rows.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
