"""CNN students: which way of running many of them is fastest on this machine (issue #15, item 3).

    PYTHONPATH=. python benchmarks/cnn_students.py [--steps 200] [--rows PATTERN ...] [--rounds R]
                                                   [--json out.json]

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

Added 2026-12-02 (issue 15, item 3: the known alternatives for vectorising CNN students):

  engine-blocks-K-patches   the 15 shared-batch runs of engine-vmap-15, vectorised K at a time
                  (K = 5, 3) with the blocks looped inside the one compiled program:
                  `lax.map(..., batch_size=K)`, the mechanism of `run_scan(..., vmap_size=K)`
  engine-vmap-15-keys-patches   engine-vmap-15 with one key per run (15 copies of the same key),
                  as `run_scan` passes them: the minibatches are equal but XLA cannot know it, so
                  every run gathers and convolves its own copy
  plain-vmap-S-CONV   S students in the plain script on one shared minibatch per step,
                  `vmap(model.apply)` over their parameters (S = 3, 15)
  plain-stack-S-CONV  the same S students as one network (`stacked_cnn_apply`): the first
                  convolution's kernels concatenated along the output-channel axis (one conv or
                  one patches-matmul with S·F outputs on the shared input), the later layers
                  block-diagonal (a grouped conv, feature_group_count=S, for nn.Conv; a batched
                  einsum for patches). Same function and gradients as S separate students
                  (tests/test_cnn_stacking.py)

`--rounds R` (R > 1) compiles every chosen row first and then times each once per round, R rounds
in turn, and reports the medians, of the times and of each round's ratio to plain-patches: on a
shared machine the rows then see about the same load. `--rows` picks rows by name (shell-style
patterns, e.g. `--rows 'plain-*' 'engine-blocks-*'`); without it every row but
plain-{vmap,stack}-15-lax runs (15-group convolutions: minutes on a CPU); plain-patches, the
reference of the ratios, always runs. Numbers measured on the 2-core CPU are in
BENCHMARKS.md ("CNN students").
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cch_jax.models import CNNStudent, _pool2, patches3x3
from cch_jax.train import ArrayData, TrainConfig, make_train

N, BATCH, CLASSES = 8192, 64, 10


@functools.lru_cache
def images(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 28, 28, 3)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(rng.integers(0, CLASSES, N))


def student(conv: str) -> CNNStudent:
    return CNNStudent(channels=(8, 16), hidden=64, out=CLASSES, conv=conv)


def plain_run(conv: str, steps: int):
    """key → per-step losses: the plain-JAX script."""
    x, y = images()
    model = student(conv)
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


def stacked_cnn_apply(params, x, conv: str = "patches"):
    """S CNNStudents on one shared input as one network: (params with a leading S axis, (B, H, W, C)
    or (B, H, W)) → (S, B, out), equal to `vmap(CNNStudent.apply, (0, None))(params, x)`.

    The first convolution is one convolution with S·F output channels (the S kernels concatenated
    along the output-channel axis, student-major); every later convolution is block-diagonal over
    the students: for nn.Conv ("lax") a grouped convolution (feature_group_count=S) on the
    (B, H, W, S·C) activations; for "patches" the activations move once to (S, B, H, W, F) and
    each later convolution is one matmul batched over the students. The dense layers are batched
    matmuls. The parameters are CNNStudent's, stacked (`vmap(init)`)."""
    p = params["params"]
    h = x[..., None] if x.ndim == 3 else x
    h = h.astype(jnp.result_type(h, p["conv_0"]["kernel"]))  # nn.Conv's promotion
    n_conv = sum(1 for name in p if name.startswith("conv_"))
    k0, bias0 = p["conv_0"]["kernel"], p["conv_0"]["bias"]  # (S, 3, 3, C, F), (S, F)
    s, c, f = k0.shape[0], k0.shape[-2], k0.shape[-1]
    w0 = jnp.moveaxis(k0, 0, 3).reshape(3, 3, c, s * f)  # HWIO, output channels student-major
    dims = ("NHWC", "HWIO", "NHWC")
    conv2d = lambda h, w, groups: jax.lax.conv_general_dilated(
        h, w.astype(h.dtype), (1, 1), "SAME", dimension_numbers=dims, feature_group_count=groups
    )
    if conv == "patches":  # shared input: one matmul with S·F output columns
        h = patches3x3(h) @ w0.reshape(9 * c, s * f)
    else:
        h = conv2d(h, w0, 1)
    h = _pool2(nn.relu(h + bias0.reshape(s * f)))  # (B, H', W', S·F)
    if conv == "patches":
        b, hh, ww, _ = h.shape
        h = jnp.moveaxis(h.reshape(b, hh, ww, s, f), 3, 0)  # (S, B, H', W', F)
    for i in range(1, n_conv):
        k, bias = p[f"conv_{i}"]["kernel"], p[f"conv_{i}"]["bias"]
        c, f = k.shape[-2:]
        if conv == "patches":  # per student (B·H·W, 9·C) @ (9·C, F), batched over S
            cols = jax.vmap(patches3x3)(h)
            h = (
                jnp.einsum("sbhwk,skf->sbhwf", cols, k.reshape(s, 9 * c, f))
                + bias[:, None, None, None]
            )
            h = jax.vmap(_pool2)(nn.relu(h))
        else:
            w = jnp.moveaxis(k, 0, 3).reshape(3, 3, c, s * f)
            h = _pool2(nn.relu(conv2d(h, w, s) + bias.reshape(s * f)))
    if conv == "patches":
        h = h.reshape(s, h.shape[1], -1)  # each student's (H, W, F) flattened, as CNNStudent
    else:
        b, hh, ww, _ = h.shape
        h = h.reshape(b, hh, ww, s, -1).transpose(3, 0, 1, 2, 4).reshape(s, b, -1)
    dense, head = p["dense"], p["head"]
    h = nn.relu(jnp.einsum("sbi,sio->sbo", h, dense["kernel"]) + dense["bias"][:, None])
    return jnp.einsum("sbi,sio->sbo", h, head["kernel"]) + head["bias"][:, None]


def plain_shared_run(conv: str, steps: int, s: int, stacked: bool):
    """key → per-step losses (steps, S): S students trained by the plain script on one shared
    minibatch per step; their outputs from `stacked_cnn_apply` (stacked) or a vmap of the model."""
    x, y = images()
    model = student(conv)
    opt = optax.adam(3e-3)
    if stacked:
        apply = lambda p, xb: stacked_cnn_apply(p, xb, conv)
    else:
        apply = jax.vmap(model.apply, (0, None))

    def losses(p, xb, yb):  # (S,): each student's mean cross-entropy
        ce = optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb[None])
        return ce.mean(axis=1)

    def total(p, xb, yb):
        each = losses(p, xb, yb)
        return each.sum(), each

    def run(key):
        k_init, k_steps = jax.random.split(key)
        p = jax.vmap(model.init, (0, None))(jax.random.split(k_init, s), x[:1])
        st = opt.init(p)  # Adam is elementwise: the S students' states side by side

        def step(c, k):
            p, st = c
            idx = jax.random.randint(k, (BATCH,), 0, N)
            # The students are independent: d(Σ_s L_s)/dθ_s = dL_s/dθ_s.
            (_, val), g = jax.value_and_grad(total, has_aux=True)(p, x[idx], y[idx])
            u, st = opt.update(g, st, p)
            return (optax.apply_updates(p, u), st), val

        return jax.lax.scan(step, (p, st), jax.random.split(k_steps, steps))[1]

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


def timed(fn, *args, reps=2) -> float:  # used by two_devices' subprocess
    jax.block_until_ready(fn(*args))  # compile + warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / reps


ROWS = (
    "plain-lax",
    "plain-patches",
    "engine-1",
    "engine-vmap-3-patches",
    "engine-vmap-15-patches",
    "engine-vmap-3-lax",  # lax at 15: minutes (grouped conv)
    "engine-2threads",
    "plain-2devices",
    "engine-blocks-5-patches",
    "engine-blocks-3-patches",
    "engine-vmap-15-keys-patches",
    "plain-vmap-3-patches",
    "plain-stack-3-patches",
    "plain-vmap-15-patches",
    "plain-stack-15-patches",
    "plain-vmap-3-lax",
    "plain-stack-3-lax",
    "plain-vmap-15-lax",
    "plain-stack-15-lax",
)
# Left out unless named: a 15-group convolution on XLA CPU takes minutes at 200 steps.
SLOW = ("plain-vmap-15-lax", "plain-stack-15-lax")


def prepare_row(name: str, steps: int):
    """(call, student-steps per call) for one row of ROWS (not plain-2devices): `call()` runs
    the row's work once and waits for it; compiled and warmed up here."""
    key = jax.random.key(0)
    parts = name.split("-")
    lams15 = jnp.linspace(0.1, 0.9, 15)
    if name in ("plain-lax", "plain-patches"):
        fn, args, n = jax.jit(plain_run(parts[1], steps)), (key,), 1
    elif parts[0] == "plain":  # plain-{vmap,stack}-S-conv
        n = int(parts[2])
        fn, args = (
            jax.jit(plain_shared_run(parts[3], steps, n, stacked=parts[1] == "stack")),
            (key,),
        )
    elif name in ("engine-1", "engine-2threads"):
        data, train = engine("patches", steps)
        fn = jax.jit(lambda d, k, lam: train(d, k, lam, 2.0, 3e-3))
        args, n = (data, key, 0.5), 1
        if name == "engine-2threads":
            one, keys = fn, list(jax.random.split(key, 4))
            pool = ThreadPoolExecutor(2)
            fn = lambda: list(pool.map(lambda k: jax.block_until_ready(one(data, k, 0.5)), keys))
            args, n = (), len(keys)
    else:
        data, train = engine(parts[-1], steps)
        run = lambda d, k, lam: train(d, k, lam, 2.0, 3e-3)
        if parts[1] == "vmap" and parts[3] == "keys":  # one key per run, all equal (run_scan's)
            fn, args, n = (
                jax.jit(jax.vmap(run, (None, 0, 0))),
                (data, jnp.stack([key] * 15), lams15),
                15,
            )
        elif parts[1] == "vmap":
            n = int(parts[2])
            fn, args = (
                jax.jit(jax.vmap(run, (None, None, 0))),
                (data, key, jnp.linspace(0.1, 0.9, n)),
            )
        elif parts[1] == "blocks":  # run_scan's vmap_size: lax.map(..., batch_size=K), one program
            k = int(parts[2])
            fn = jax.jit(
                lambda d, kk, lams: jax.lax.map(lambda lam: run(d, kk, lam), lams, batch_size=k)
            )
            args, n = (data, key, lams15), 15
        else:
            raise ValueError(f"unknown row {name!r}")
    call = lambda: jax.block_until_ready(fn(*args))
    call()  # compile + warm-up
    return call, n * steps


def measure_row(name: str, steps: int) -> float:
    """Seconds per student-step of one row of ROWS, measured alone (compile excluded; the small
    rows timed twice, as before rounds existed)."""
    if name == "plain-2devices":
        return two_devices(steps)
    call, student_steps = prepare_row(name, steps)
    reps = 2 if name in ("plain-lax", "plain-patches", "engine-1") else 1
    t0 = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - t0) / reps / student_steps


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


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--rows", nargs="+", help=f"row names or patterns (default: all but {', '.join(SLOW)})"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="R > 1: compile all rows first, then time each row once per round, R rounds in turn; "
        "report the median (the rows then share the same load)",
    )
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args(argv)
    if a.rows is None:
        names = [r for r in ROWS if r not in SLOW]
    else:
        unknown = [p for p in a.rows if not any(fnmatch.fnmatch(r, p) for r in ROWS)]
        if unknown:
            ap.error(f"no row matches {unknown}; rows: {', '.join(ROWS)}")
        names = [r for r in ROWS if any(fnmatch.fnmatch(r, pat) for pat in a.rows)]
    if "plain-patches" not in names:
        names.insert(0, "plain-patches")
    dev = jax.devices()[0]
    print(f"{dev.platform} ({os.cpu_count()} cores), {a.steps} steps, batch {BATCH}", flush=True)
    rows, loads, rounds = {}, {}, {}
    if a.rounds == 1:
        for name in names:
            before = load()
            t0 = time.perf_counter()
            rows[name] = measure_row(name, a.steps)
            loads[name] = {"before": before, "after": load(), "wall_s": time.perf_counter() - t0}
            print(
                f"{name:28s} {1e3 * rows[name]:7.2f} ms per student-step   load {before} → "
                f"{loads[name]['after']}",
                flush=True,
            )
    else:  # compile everything, then time the rows in turn, `rounds` times: paired under load
        calls = {}
        for name in names:
            if name != "plain-2devices":
                calls[name] = prepare_row(name, a.steps)
                print(f"compiled {name}  load {load()}", flush=True)
        for r in range(a.rounds):
            for name, (call, student_steps) in calls.items():
                before = load()
                t0 = time.perf_counter()
                call()
                rounds.setdefault(name, []).append((time.perf_counter() - t0) / student_steps)
                loads.setdefault(name, []).append(before)
                print(
                    f"round {r}  {name:28s} {1e3 * rounds[name][-1]:7.2f} ms   load {before}",
                    flush=True,
                )
            if "plain-2devices" in names:  # its own process: one measurement per round
                loads.setdefault("plain-2devices", []).append(load())
                rounds.setdefault("plain-2devices", []).append(two_devices(a.steps))
        rows = {name: float(np.median(rounds[name])) for name in names}
    # The speed-up over plain-patches: of the medians; with rounds, also the median of each
    # round's ratio (plain-patches timed in the same round, so under about the same load).
    base = rows["plain-patches"]
    ratio = {name: base / s for name, s in rows.items()}
    if rounds:
        ref = rounds["plain-patches"]
        ratio = {n: float(np.median(np.divide(ref, rounds[n]))) for n in names}
    print()
    for name, s in rows.items():
        print(
            f"{name:28s} {1e3 * s:7.2f} ms per student-step   ({base / s:4.2f}× plain-patches"
            + (f"; per round {ratio[name]:4.2f}×)" if rounds else ")")
        )
    if a.json:
        with open(a.json, "w") as f:
            out = {
                "ms_per_student_step": {k: 1e3 * v for k, v in rows.items()},
                "vs_plain_patches": ratio,
                "steps": a.steps,
                "rounds": a.rounds,
                "ms_per_student_step_by_round": {
                    k: [1e3 * v for v in vs] for k, vs in rounds.items()
                },
                "load_avg_1_5_15": loads,
                "versions": {"jax": jax.__version__, "python": sys.version.split()[0]},
                "cpu_count": os.cpu_count(),
            }
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
