"""CNN KD students at MNIST-M size: images/s vmapped against sequential, memory against S (issue #7).

    PYTHONPATH=. python benchmarks/mnist_scan.py [--quick] [--json] [--budget-mb MB]

Students: `CNNStudent` (channels (16, 32), hidden 64, 10 classes) on 28×28×3 inputs, trained with
classification KD ((1 − λ)·CE + λ·T²·KL, λ = 0.5, T = 2), Adam, minibatches of `--batch` drawn
with replacement. Data: SYNTHETIC random images (uniform [0, 1)), random labels and random teacher
logits, `--n-train` of them, passed to jit as an argument (`ArrayData`): throughput does not depend
on the pixel values, and no download is needed (the GPU image has no network).

For S students (default 1, 16, 64, 256, 1024; `--quick`: 1, 4, 16 with fewer steps):

  vmapped     the engine's compiled chunk function (`cch_jax.scan.make_chunk_fn`, what `run_scan`
              calls) on one chunk of S runs (`--vmap-size k`: k runs vectorised at a time, the
              blocks looped inside the program; k = 1 is the CPU setting, see BENCHMARKS.md);
  sequential  `jax.jit(make_train(config))` once per student in a Python loop
              (each call blocked; min(S, --seq-max) students timed: the rate does not depend on S).

Images/s per student = steps·batch / seconds per student; total = S times that. Compile time is
excluded (programs are compiled ahead of time; `compile_s` reports it); the fastest of repeats
lasting `--min-time` is kept.

Memory against S, two measures:

  xla_mb   XLA's own accounting of the compiled chunk program (`compiled.memory_analysis()`:
           arguments + outputs + temporaries − aliased), available on CPU and GPU without running;
  peak_mb  measured while one chunk runs, in a fresh subprocess per S (peaks only grow within a
           process): on GPU the device allocator's `peak_bytes_in_use`; on CPU (no jax memory stats)
           the process's peak RSS (`ru_maxrss`) minus that of a baseline subprocess that imports,
           builds the data and runs a trivial jit (`rss_baseline_mb`).

Chunking under a budget: XLA's bytes are affine in the chunk size, mem(c) = a + b·c, fitted from
the compiled chunk programs of the two largest measured S; the recommended `chunk_size` for
`run_scan` is the largest power of two with a + b·c ≤ `--budget-mb`. It is then compiled and
checked against the budget. On a GPU the same fit is also made to the measured device peaks
(`chunk_size_by_device_peak`): XLA's accounting leaves out the convolution workspaces, so there
the peak-based chunk is the one to use.

On a GPU the script turns JAX's memory preallocation off (XLA_PYTHON_CLIENT_PREALLOCATE=false,
unless set), so that each subprocess can start and its peak is its own. `--out FILE` rewrites the
JSON after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# On a GPU, JAX reserves 75 % of the device memory at start-up by default: the per-S subprocesses
# could not start beside this process, and peak_bytes_in_use would not be the program's own.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from cch_jax.scan import environment, make_chunk_fn  # noqa: E402
from cch_jax.train import ArrayData, TrainConfig, make_train  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan_throughput import (  # noqa: E402
    best_time,
    device_description,
    finish,
    load_average,
    record,
)

STUDENTS, QUICK_STUDENTS = (1, 16, 64, 256, 1024), (1, 4, 16)
LAM, TEMPERATURE, LR = 0.5, 2.0, 1e-3
CLASSES = 10


def synthetic_data(n_train: int, n_test: int, *, seed: int = 0) -> ArrayData:
    """Random 28×28×3 images in [0, 1), labels in 0..9 and teacher logits (n, 10); float32."""
    rng = np.random.default_rng(seed)
    img = lambda m: rng.random((m, 28, 28, 3), dtype=np.float32)
    return ArrayData(
        x_train=img(n_train),
        y_train=rng.integers(0, CLASSES, n_train).astype(np.int32),
        teacher_train=rng.normal(size=(n_train, CLASSES)).astype(np.float32),
        x_test=img(n_test),
        y_test=rng.integers(0, CLASSES, n_test).astype(np.int32),
    )


def make_config(args) -> TrainConfig:
    return TrainConfig(
        task="classification",
        model="cnn",
        steps=args.steps,
        eval_every=args.steps,
        batch_size=args.batch,
    )


def chunk_args(size: int, lo: int = 0) -> tuple:
    dtype = jnp.result_type(float)
    full = lambda v: np.full(size, v, dtype)
    return np.arange(lo, lo + size, dtype=np.int32), full(LAM), full(TEMPERATURE), full(LR)


def compile_chunk(config, data, size: int, vmap_size=None):
    """(compiled chunk program for `size` runs, compile seconds)."""
    t0 = time.perf_counter()
    fn = make_chunk_fn(config, data, vmap_size=vmap_size)
    compiled = fn.lower(data, *chunk_args(size)).compile()
    return compiled, time.perf_counter() - t0


def xla_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries − aliased bytes of a compiled program (None if unknown)."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def peak_memory_mb() -> dict:
    """This process's peaks: device allocator (if it reports) and host RSS, in MB."""
    out = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KB on Linux
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    return out


def child(args) -> int:
    """Subprocess mode: run one chunk of `args.child` students (0: baseline) and print peaks."""
    data = jax.device_put(synthetic_data(args.n_train, args.n_test))
    if args.child == 0:
        jax.block_until_ready(jax.jit(lambda x: x.sum())(data.x_train))
    else:
        compiled, _ = compile_chunk(make_config(args), data, args.child, args.vmap_size)
        jax.block_until_ready(compiled(data, *chunk_args(args.child)))
    print(json.dumps(peak_memory_mb()))
    return 0


def measure_peak(args, students: int) -> dict:
    """Peaks of a fresh process running one chunk of `students` runs (0 = baseline)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(students)]
    cmd += ["--steps", str(args.steps), "--batch", str(args.batch)]
    cmd += ["--n-train", str(args.n_train), "--n-test", str(args.n_test)]
    if args.vmap_size is not None:
        cmd += ["--vmap-size", str(args.vmap_size)]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")]))
    )
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_sequential(config, data, students: int, min_time: float) -> dict:
    single = jax.jit(make_train(config, data))
    keys = [jax.random.key(i) for i in range(students)]
    scalars = [jnp.asarray(v, jnp.result_type(float)) for v in (LAM, TEMPERATURE, LR)]
    t0 = time.perf_counter()
    compiled = single.lower(data, keys[0], *scalars).compile()
    compile_s = time.perf_counter() - t0
    run = lambda: [jax.block_until_ready(compiled(data, k, *scalars)) for k in keys]
    seconds = best_time(run, min_time)
    return {"per_student": seconds / students, "compile_s": compile_s}


def affine_fit(values: dict) -> tuple[float, float]:
    """(a, b) of mem(S) = a + b·S through the two largest S of {S: mem}."""
    s0, s1 = sorted(values)[-2:]
    b = (values[s1] - values[s0]) / (s1 - s0)
    return values[s1] - b * s1, b


def choose_chunk(fit: tuple[float, float], budget_mb: float, max_chunk: int) -> int:
    """Largest power of two c ≤ max_chunk with a + b·c ≤ budget (at least 1)."""
    a, b = fit
    c = 1
    while 2 * c <= max_chunk and a + b * 2 * c <= budget_mb * 2**20:
        c *= 2
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="S in (1, 4, 16), 5 steps (CPU)")
    ap.add_argument("--students", type=int, nargs="+")
    ap.add_argument("--steps", type=int, default=None, help="default 50, --quick 5")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--seq-max", type=int, default=4)
    ap.add_argument(
        "--vmap-size",
        type=int,
        default=None,
        help="run_scan's vmap_size: runs vectorised together inside a chunk (1: a loop, for CPUs)",
    )
    ap.add_argument("--budget-mb", type=float, default=2048.0, help="memory budget per chunk")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--no-subprocess", action="store_true", help="skip the measured peaks")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="also write the JSON to this file, rewritten after every row")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps is None:
        args.steps = 5 if args.quick else 50
    if args.child is not None:
        return child(args)

    students = args.students or (QUICK_STUDENTS if args.quick else STUDENTS)
    config = make_config(args)
    data = jax.device_put(synthetic_data(args.n_train, args.n_test))
    images = args.steps * args.batch  # images seen by one student
    env = environment()
    out = {
        "device": device_description(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "versions": env["versions"],
        "config": {
            "model": "cnn (channels (16, 32), hidden 64, 10 classes)",
            "input": [28, 28, 3],
            "data": "synthetic random images, labels and teacher logits",
            "steps": args.steps,
            "batch": args.batch,
            "n_train": args.n_train,
            "vmap_size": args.vmap_size,
            "compile_excluded": True,
        },
        "memory_measure": (
            "device peak_bytes_in_use (subprocess per S)"
            if jax.devices()[0].platform != "cpu"
            else "process peak RSS minus baseline (subprocess per S); xla_mb from memory_analysis"
        ),
        "load_average_start": load_average(),
        "results": [],
    }
    seq = time_sequential(config, data, min(max(students), args.seq_max), args.min_time)
    baseline = None if args.no_subprocess else measure_peak(args, 0)
    out["rss_baseline_mb"] = None if baseline is None else baseline["rss_mb"]
    sizes = {}
    for s in students:
        compiled, compile_s = compile_chunk(config, data, s, args.vmap_size)
        seconds = best_time(lambda c=compiled, s=s: c(data, *chunk_args(s)), args.min_time)
        row = {
            "students": s,
            "vmapped_images_per_s_per_student": images * s / seconds / s,
            "vmapped_images_per_s_total": images * s / seconds,
            "sequential_images_per_s_per_student": images / seq["per_student"],
            "sequential_images_per_s_total": images / seq["per_student"],
            "compile_s": round(compile_s, 2),
            "xla_mb": None if xla_bytes(compiled) is None else xla_bytes(compiled) / 2**20,
        }
        row["speedup"] = row["vmapped_images_per_s_total"] / row["sequential_images_per_s_total"]
        sizes[s] = xla_bytes(compiled)
        if baseline is not None:
            peak = measure_peak(args, s)
            row["peak_rss_mb"] = peak["rss_mb"]
            row["peak_rss_over_baseline_mb"] = peak["rss_mb"] - baseline["rss_mb"]
            if "device_peak_mb" in peak:
                row["device_peak_mb"] = peak["device_peak_mb"]
        row["load_average"] = load_average()
        record(out, row, args, format_row)

    known = {s: b for s, b in sizes.items() if b is not None}
    if len(known) >= 2:
        a, b = affine_fit(known)
        chunk = choose_chunk((a, b), args.budget_mb, max_chunk=2**16)
        check = xla_bytes(compile_chunk(config, data, chunk, args.vmap_size)[0])
        out["chunking"] = {
            "budget_mb": args.budget_mb,
            "fit_mb": {"fixed": a / 2**20, "per_student": b / 2**20},
            "chunk_size": chunk,
            "xla_mb_at_chunk": check / 2**20,
            "within_budget": bool(check <= args.budget_mb * 2**20),
        }
        # On a GPU the measured peak also holds the convolutions' workspaces, which XLA's
        # accounting leaves out (4.5x more than it at 256 CNN students on an H100): chunk by it.
        peaks = {
            r["students"]: r["device_peak_mb"] for r in out["results"] if "device_peak_mb" in r
        }
        if len(peaks) >= 2:
            a_peak, b_peak = affine_fit(peaks)
            out["chunking"]["device_peak_fit_mb"] = {"fixed": a_peak, "per_student": b_peak}
            out["chunking"]["chunk_size_by_device_peak"] = choose_chunk(
                (a_peak * 2**20, b_peak * 2**20), args.budget_mb, max_chunk=2**16
            )
        if not args.json:
            c = out["chunking"]
            print(
                f"budget {args.budget_mb:.0f} MB: chunk_size={chunk} "
                f"(XLA {c['xla_mb_at_chunk']:.0f} MB; fit {c['fit_mb']['fixed']:.0f} MB + "
                f"{c['fit_mb']['per_student']:.1f} MB/student)"
            )
            if "chunk_size_by_device_peak" in c:
                f = c["device_peak_fit_mb"]
                print(
                    f"by the measured device peaks ({f['fixed']:.0f} MB + "
                    f"{f['per_student']:.1f} MB/student): chunk_size={c['chunk_size_by_device_peak']}"
                )
    return finish(out, args)


def format_row(r: dict) -> str:
    mem = f"XLA {r['xla_mb']:.0f} MB" if r["xla_mb"] is not None else "XLA ? MB"
    if "device_peak_mb" in r:
        mem += f", device peak {r['device_peak_mb']:.0f} MB"
    elif "peak_rss_over_baseline_mb" in r:
        mem += f", peak RSS +{r['peak_rss_over_baseline_mb']:.0f} MB over baseline"
    return (
        f"S={r['students']:5d}: vmapped {r['vmapped_images_per_s_per_student']:.0f} img/s/student "
        f"({r['vmapped_images_per_s_total']:.0f} total), sequential "
        f"{r['sequential_images_per_s_per_student']:.0f} img/s, speed-up {r['speedup']:.2f}x | "
        f"{mem} | load {r['load_average']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
