"""Throughput of the vmapped scan against a sequential loop of single runs (issue #7).

    PYTHONPATH=. python benchmarks/scan_throughput.py [--quick] [--json] [--data gaussian|shared|both]

Linear KD students on Gaussian regression: n = 10000 training rows, p = 100 student inputs
(teacher inputs p1 = 100, the size of the theorem-1 reproduction), full-batch Adam, 200 steps,
λ = 0.5, lr = 1e-2. For S students (S ∈ {1, 16, 256, 1024, 4096, 16384}; `--quick`: up to 256):

  (a) vmapped    the engine's chunk function (`cch_jax.scan.make_chunk_fn`, the jit(vmap(train))
                 that `run_scan` calls), over ceil(S / chunk) chunks, generic per-sample loss
                 (`fast_path=False`); with `--vmap-size k`, vectorised k runs at a time inside
                 each chunk (run_scan's `vmap_size`);
  (b) sequential the same single-student trainer, `jax.jit(make_train(config))`, called
                 once per student in a Python loop, each call blocked before the next. Its rate
                 does not depend on S, so it is measured once per data mode and path, on
                 min(largest S, --seq-max) students, and reused for every S;
  (c) fast path  (a) with the sufficient-statistics fast path (`fast_path=True`, the engine's
                 default for these students), and its sequential counterpart.

  (d) plain JAX  (shared data only) the same work written as a plain-JAX script would: a
                 jit(vmap(...)) over the students of a `lax.scan` of `optax.adam` steps on
                 mean (y − f)² + λ·mean (f − t)², nothing else (no Flax, no metrics, no
                 divergence flag), over the same chunks; `plain_steps_per_s` and
                 `engine_vs_plain` = (a)'s rate / (d)'s. `--model mlp`: both sides train the
                 (64, 64) relu MLP student instead of the linear one.

Two data modes (`--data`):

  gaussian  `GaussianSource`: every run draws its OWN training set from its key inside the run
            (seeds = training sets, as `cch verify` and the theory's expectation need). Sampling is
            therefore INCLUDED in (a), (b) and (c) alike; its cost alone is measured too
            (`sampling_s_per_student`, a vmapped `training_set`). The fast path is used
            (it is exact up to rounding): one O(n·p²) pass per run, then O(p²) per step.
  shared    `ArrayData`: one Gaussian training set, drawn once before any timing and shared by all
            runs (a λ × lr × init scan on one data set). Sampling is EXCLUDED from (a), (b), (c).
            The fast path computes the moments once per chunk.

Timing: every program is compiled ahead of time (`.lower(...).compile()`) before its clock
starts, so compile time is excluded from every number (reported separately as `compile_s`), and
run once untimed (warm-up). Each measurement is then repeated until it has run for `--min-time`
seconds and the fastest repetition is kept; results are `jax.block_until_ready`.
Student-steps/s = S·steps / seconds.

FLOP/s: 4·n·p per generic student-step (forward Xw and backward Xᵀr, 2·n·p each; the Adam update
and the loss are O(n + p)). `ceiling_gflops`: the two products of a generic step for S students
sharing X, F = W Xᵀ (S, n) and G = F X (S, p), `steps` of them in one lax.scan with nothing else
(see `matmul_ceiling`), timed in the same run (S capped at the chunk size): the same-shape matmul
ceiling of the shared-data scan. `bmv_ceiling_gflops`: the same with one X per student (batched
matrix-vector products), the memory-bound ceiling of the Gaussian scan. Both at the student's
precision (`--precision`: "highest", the engine's default, is true float32 on a GPU; "default" is
XLA's default, TF32 for float32 on NVIDIA GPUs, `model_kwargs={"precision": None}` in the engine).

`--out FILE` rewrites the JSON to FILE after every row (a killed run keeps its finished rows).
`--json` prints {"device", "results": [{"students", "vmapped_steps_per_s",
"sequential_steps_per_s", "speedup", "gflops", "ceiling_gflops", ...}, ...], ...}.
No dependency beyond jax/flax/optax/numpy (runs on the GPU image with PYTHONPATH=.).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import theory
from benchmarks.plain_scan import plain_train
from cch_jax.results import atomic_write_bytes
from cch_jax.scan import environment, make_chunk_fn
from cch_jax.train import (
    ArrayData,
    GaussianSource,
    TrainConfig,
    make_train,
    training_set,
)

STUDENTS = (1, 16, 256, 1024, 4096, 16384)
QUICK_MAX = 256
MLP_HIDDEN = (64, 64)
LAM, TEMPERATURE, LR = 0.5, 1.0, 1e-2


def best_time(fn, min_time: float, warmup: bool = True) -> float:
    """Seconds of the fastest of repeated calls fn() (each blocked), repeated ≥ min_time total.

    warmup: one untimed call first (a GPU's first execution of a program loads its kernels).
    """
    if warmup:
        jax.block_until_ready(fn())
    best, spent = math.inf, 0.0
    while spent < min_time or best == math.inf:
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def device_description() -> str:
    dev = jax.devices()[0]
    text = f"{dev.platform}: {dev.device_kind}, {jax.local_device_count()} device(s)"
    if dev.platform == "cpu":
        text += f", {os.cpu_count()} logical CPUs ({platform.processor() or platform.machine()})"
    return text


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def save_json(out: dict, path: str | None) -> None:
    """Write `out` to `path` (if given) atomically: a killed run keeps every row saved so far."""
    if path:
        atomic_write_bytes(path, lambda f: f.write(json.dumps(out, indent=1).encode()))


def record(out: dict, row: dict, args, format_row) -> None:
    """Append a finished row, save the JSON so far (--out) and print the row (unless --json)."""
    out["results"].append(row)
    save_json(out, args.out)
    if not args.json:
        print(format_row(row), flush=True)


def finish(out: dict, args) -> int:
    """The closing load average, the final save (--out) and the JSON on stdout (--json)."""
    out["load_average_end"] = load_average()
    save_json(out, args.out)
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def device_peak_mb() -> float | None:
    """The device allocator's peak bytes in use so far in this process, in MB (None on CPU)."""
    stats = jax.devices()[0].memory_stats()
    return stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None


def chunk_inputs(lo: int, size: int, dtype) -> tuple:
    """The engine's chunk arguments for runs lo … lo+size−1 (seeds distinct, λ/T/lr fixed)."""
    seeds = np.arange(lo, lo + size, dtype=np.int32)
    full = lambda v: np.full(size, v, dtype)
    return seeds, full(LAM), full(TEMPERATURE), full(LR)


def time_vmapped(
    config: TrainConfig, data, students: int, chunk: int, min_time: float, vmap_size=None
) -> dict:
    """(a)/(c): the engine's compiled chunk function over ceil(students / chunk) chunks.

    Returns {"seconds", "compile_s"}; compile excluded from "seconds".
    """
    dtype = jnp.result_type(float)
    chunk = min(chunk, students)
    n_chunks = math.ceil(students / chunk)
    fn = make_chunk_fn(config, data, vmap_size=vmap_size)
    args = [chunk_inputs(i * chunk, chunk, dtype) for i in range(n_chunks)]
    args = [jax.device_put(a) for a in args]
    t0 = time.perf_counter()
    compiled = fn.lower(data, *args[0]).compile()
    compile_s = time.perf_counter() - t0
    run = lambda: [compiled(data, *a) for a in args]
    # Partial last chunks would be padded by run_scan: time whole chunks, count only S runs.
    seconds = best_time(run, min_time) * students / (n_chunks * chunk)
    return {"seconds": seconds, "compile_s": compile_s}


def time_sequential(config: TrainConfig, data, students: int, min_time: float) -> dict:
    """(b): one jitted single-student run per student, in a Python loop. Seconds per student."""
    single = jax.jit(make_train(config, data))
    keys = [jax.random.key(i) for i in range(students)]
    dtype = jnp.result_type(float)
    scalars = [jnp.asarray(v, dtype) for v in (LAM, TEMPERATURE, LR)]
    t0 = time.perf_counter()
    compiled = single.lower(data, keys[0], *scalars).compile()
    compile_s = time.perf_counter() - t0
    # Each call is blocked before the next: queued executions may otherwise overlap on the CPU
    # client's threads (and compete for cache), which a sequential loop does not intend.
    run = lambda: [jax.block_until_ready(compiled(data, k, *scalars)) for k in keys]
    return {"per_student": best_time(run, min_time) / students, "compile_s": compile_s}


def time_plain(data, students: int, chunk: int, min_time: float, *, hidden, steps) -> dict:
    """(d): the plain-JAX reference over the same chunks as (a). Returns {"seconds", "compile_s"}."""
    dtype = jnp.result_type(float)
    chunk = min(chunk, students)
    n_chunks = math.ceil(students / chunk)
    train = partial(plain_train, hidden=hidden, steps=steps)
    fn = jax.jit(jax.vmap(train, in_axes=(None, None, None, 0, 0, 0)))
    x, y, t = data.x_train, data.y_train, data.teacher_train
    args = []
    for i in range(n_chunks):
        seeds, lams, _, lrs = chunk_inputs(i * chunk, chunk, dtype)
        args.append(jax.device_put((jax.vmap(jax.random.key)(seeds), lams, lrs)))
    t0 = time.perf_counter()
    compiled = fn.lower(x, y, t, *args[0]).compile()
    compile_s = time.perf_counter() - t0
    seconds = best_time(lambda: [compiled(x, y, t, *a) for a in args], min_time)
    return {"seconds": seconds * students / (n_chunks * chunk), "compile_s": compile_s}


def time_sampling(source: GaussianSource, students: int, chunk: int, min_time: float) -> float:
    """Seconds per student of drawing the Gaussian training sets alone (vmapped, one chunk)."""
    size = min(chunk, students)
    draw = jax.jit(
        jax.vmap(lambda s: training_set(source, None, jax.random.key(s)))
    )  # the same draws a run makes (same key splits)
    seeds = jnp.arange(size, dtype=jnp.int32)
    compiled = draw.lower(seeds).compile()
    return best_time(lambda: compiled(seeds), min_time) / size


def matmul_ceiling(
    n: int, p: int, students: int, *, shared: bool, steps: int, min_time: float, precision
) -> float:
    """GFLOP/s of a generic step's two products alone, `steps` of them in one lax.scan.

    The engine's loop structure without the loss, Adam or vmap (one call per `steps` iterations,
    so dispatch is amortised as in the engine); each iteration (4·n·p·S flops):

        F = W Xᵀ (S, n),   G = F X (S, p),   W ← W − ε·G      (the update keeps them in the loop)

    shared: X (n, p) common to all students (two matmuls). Otherwise one X per student: batched
    matrix-vector products, memory-bound (each step reads all S·n·p inputs twice).
    """
    dtype = jnp.result_type(float)
    kx, kw = jax.random.split(jax.random.key(0))
    w = jax.random.normal(kw, (students, p), dtype)
    mm = dict(precision=precision)
    if shared:
        x = jax.random.normal(kx, (n, p), dtype)
        products = lambda x, w: jnp.matmul(jnp.matmul(w, x.T, **mm), x, **mm)
    else:
        x = jax.random.normal(kx, (students, n, p), dtype)
        products = lambda x, w: jnp.einsum(
            "sn,snp->sp", jnp.einsum("snp,sp->sn", x, w, **mm), x, **mm
        )

    @jax.jit
    def loop(x, w):
        body = lambda w, _: (w - 1e-9 * products(x, w), None)
        return jax.lax.scan(body, w, None, length=steps)[0]

    compiled = loop.lower(x, w).compile()
    seconds = best_time(lambda: compiled(x, w), min_time) / steps
    return 4 * n * p * students / seconds / 1e9


def measure(mode: str, args, model, students: int, seq_cache: dict) -> dict:
    """One row: (a), (b), (c) and the ceilings for `students` students in data mode `mode`.

    The sequential rate does not depend on S: it is measured once per (mode, path) on
    `args.seq_students` students and reused from `seq_cache` by the other rows.
    """
    n, p, steps = args.n, args.p, args.steps
    source = GaussianSource(model, n)
    if args.model == "mlp":
        kw = dict(model="mlp", model_kwargs={"hidden": MLP_HIDDEN})
    else:
        kw = dict(model_kwargs={"precision": args.precision})
    if mode == "gaussian":
        base, data = TrainConfig(data=source, steps=steps, eval_every=steps, **kw), None
    else:
        x2, y, t = training_set(source, None, jax.random.key(10**6))
        data = jax.device_put(ArrayData(x2, y, t, x2[:1000], y[:1000]))
        base = TrainConfig(steps=steps, eval_every=steps, **kw)
    row = {"data": mode, "students": students, "chunk": min(args.chunk_size, students)}
    row["sequential_students_timed"] = args.seq_students
    step_count = students * steps
    for label, fast in (("", False), ("fastpath_", True)):
        config = base.replace(fast_path=fast)
        vm = time_vmapped(config, data, students, args.chunk_size, args.min_time, args.vmap_size)
        if (mode, fast) not in seq_cache:
            seq_cache[mode, fast] = time_sequential(config, data, args.seq_students, args.min_time)
        sq = seq_cache[mode, fast]
        row[f"{label}vmapped_steps_per_s"] = step_count / vm["seconds"]
        row[f"{label}sequential_steps_per_s"] = steps / sq["per_student"]
        row[f"{label}compile_s"] = round(vm["compile_s"] + sq["compile_s"], 2)
    if mode == "shared":
        hidden = MLP_HIDDEN if args.model == "mlp" else ()
        pl = time_plain(data, students, args.chunk_size, args.min_time, hidden=hidden, steps=steps)
        row["plain_steps_per_s"] = step_count / pl["seconds"]
        row["plain_compile_s"] = round(pl["compile_s"], 2)
        row["engine_vs_plain"] = row["vmapped_steps_per_s"] / row["plain_steps_per_s"]
    row["speedup"] = row["vmapped_steps_per_s"] / row["sequential_steps_per_s"]
    row["fastpath_speedup"] = row["fastpath_vmapped_steps_per_s"] / row["sequential_steps_per_s"]
    row["gflops"] = row["vmapped_steps_per_s"] * 4 * n * p / 1e9
    ceil_s = min(students, args.chunk_size)
    ceiling = dict(steps=steps, min_time=args.min_time, precision=args.precision)
    row["ceiling_gflops"] = matmul_ceiling(n, p, ceil_s, shared=True, **ceiling)
    if mode == "gaussian":
        row["bmv_ceiling_gflops"] = matmul_ceiling(
            n, p, min(ceil_s, args.bmv_max), shared=False, **ceiling
        )
        row["sampling_s_per_student"] = time_sampling(
            source, students, args.chunk_size, args.min_time
        )
    row["device_peak_mb_so_far"] = device_peak_mb()
    row["load_average"] = load_average()
    return row


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"students up to {QUICK_MAX} (CPU)")
    ap.add_argument("--students", type=int, nargs="+", help="override the list of S")
    ap.add_argument("--data", choices=("gaussian", "shared", "both"), default="both")
    ap.add_argument(
        "--model", choices=("linear", "mlp"), default="linear", help=f"mlp: hidden {MLP_HIDDEN}"
    )
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--p", type=int, default=100, help="student inputs p = p2")
    ap.add_argument("--p1", type=int, default=100, help="teacher inputs")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="runs per compiled call (default 256 on CPU, 1024 on an accelerator: the Gaussian "
        "generic path holds ~3 floats × n × (p1 + p + 1) per run, 24 MB at the defaults)",
    )
    ap.add_argument(
        "--vmap-size",
        type=int,
        default=None,
        help="run_scan's vmap_size: vectorise this many runs at a time inside a chunk (CPU cache)",
    )
    ap.add_argument("--seq-max", type=int, default=32, help="students timed sequentially")
    ap.add_argument("--bmv-max", type=int, default=1024, help="students in the bmv ceiling")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument(
        "--precision",
        choices=("highest", "default"),
        default="highest",
        help="the student's matmul precision (default: XLA's, TF32 for float32 on NVIDIA GPUs)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", help="also write the JSON to this file, rewritten after every row")
    args = ap.parse_args(argv)
    args.precision = None if args.precision == "default" else args.precision
    if args.chunk_size is None:
        args.chunk_size = 256 if jax.devices()[0].platform == "cpu" else 1024
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    students = args.students or [s for s in STUDENTS if not args.quick or s <= QUICK_MAX]
    args.seq_students = min(max(students), args.seq_max)
    modes = ("gaussian", "shared") if args.data == "both" else (args.data,)
    model = theory.random_model(jax.random.key(0), args.p1, args.p)
    env = environment()
    out = {
        "device": device_description(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "versions": env["versions"],
        "x64": env["x64"],
        "config": {
            "n": args.n,
            "p": args.p,
            "p1": args.p1,
            "steps": args.steps,
            "model": args.model,
            "optimizer": "adam",
            "full_batch": True,
            "lam": LAM,
            "learning_rate": LR,
            "chunk_size": args.chunk_size,
            "vmap_size": args.vmap_size,
            "precision": args.precision or "default",
            "seq_max": args.seq_max,
            "compile_excluded": True,
        },
        "load_average_start": load_average(),
        "results": [],
    }
    seq_cache: dict = {}
    for mode in modes:
        for s in students:
            record(out, measure(mode, args, model, s, seq_cache), args, format_row)
    return finish(out, args)


def format_row(r: dict) -> str:
    extra = ""
    if "sampling_s_per_student" in r:
        extra = (
            f", sampling {r['sampling_s_per_student'] * 1e3:.1f} ms/student, "
            f"bmv ceiling {r['bmv_ceiling_gflops']:.1f} GFLOP/s"
        )
    if "plain_steps_per_s" in r:
        extra += (
            f" | plain JAX {r['plain_steps_per_s']:.3g} (engine/plain {r['engine_vs_plain']:.2f})"
        )
    return (
        f"{r['data']:8s} S={r['students']:6d}: vmapped {r['vmapped_steps_per_s']:.3g} "
        f"student-steps/s, sequential {r['sequential_steps_per_s']:.3g}, speed-up "
        f"{r['speedup']:.2f}x | fast path {r['fastpath_vmapped_steps_per_s']:.3g} "
        f"({r['fastpath_speedup']:.1f}x the sequential generic loop; sequential fast "
        f"{r['fastpath_sequential_steps_per_s']:.3g}) | {r['gflops']:.1f} GFLOP/s of a "
        f"{r['ceiling_gflops']:.1f} GFLOP/s matmul ceiling{extra} | load {r['load_average']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
