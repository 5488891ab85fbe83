"""Wall time of `cch scan` against a plain-JAX script on the same work (issue 14's target:
the engine's generic path ≤ 1.5× the plain script's wall time).

    PYTHONPATH=. python benchmarks/scan_vs_plain.py [--repeats 2] [--out FILE.json]

The work: 4 λ × 64 seeds = 256 linear students on ONE shared Gaussian training set (n = 10⁴,
p2 = 100 student inputs, a teacher on p1 = 100 inputs: t = x1ᵀΣ11⁻¹Σ1y, the model
theory.random_model(key(0), 100, 100)), 2000 full-batch Adam steps at lr 0.01, float32.

  cch scan   `python -m cch_jax.cli scan --config C.toml` with `fast_path = false` (the generic
             per-sample loss every MLP/CNN student runs), one chunk of 256, `keep_params = false`,
             metrics once at the end; it also writes results.npz/json and prints its summary.
             Its persistent compile cache is off (CCH_NO_COMPILE_CACHE=1), so both compile.
  plain      `python benchmarks/plain_scan.py DATA.npz ...`: one jit(vmap(lax.scan(optax.adam)))
             over the same 256 (λ, seed), printing the mean test MSE per λ.

Both are timed as whole processes (interpreter start, imports, compile, training, output), the
two commands alternating `--repeats` times; the fastest of each is reported, with all times and
the load average. `--model mlp` trains the (64, 64) relu MLP on n = 2000 for 200 steps instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAMS = (0.0, 0.25, 0.5, 1.0)


def make_data(path: Path, n: int, n_test: int = 2000) -> None:
    """Write the shared training set (arrays format) drawn from theory.random_model(key(0), 100, 100)."""
    import jax

    import theory

    model = theory.random_model(jax.random.key(0), 100, 100)
    cov, p1, p2 = np.asarray(model.cov), model.p1, model.p2
    z = np.random.default_rng(0).multivariate_normal(np.zeros(len(cov)), cov, n + n_test)
    w1 = np.linalg.solve(cov[:p1, :p1], cov[:p1, -1])
    x, y, t = z[:, p1 : p1 + p2], z[:, -1], z[:, :p1] @ w1
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    np.savez(
        path,
        x_train=f32(x[:n]),
        y_train=f32(y[:n]),
        teacher_train=f32(t[:n]),
        x_test=f32(x[n:]),
        y_test=f32(y[n:]),
    )


def write_config(path: Path, data: Path, args) -> None:
    model = 'model = "mlp"\nmodel_kwargs = { hidden = [64, 64] }' if args.model == "mlp" else ""
    path.write_text(
        f'[train]\ntask = "regression"\n{model}\nsteps = {args.steps}\neval_every = {args.steps}\n'
        'optimizer = "adam"\nschedule = "constant"\nfast_path = false\n'
        f'[data]\nkind = "arrays"\npath = "{data}"\n'
        f"[grid]\nlam = {list(LAMS)}\nlearning_rate = [0.01]\nseeds = {args.seeds}\n"
        f"[scan]\nchunk_size = {len(LAMS) * args.seeds}\nkeep_params = false\n"
    )


def wall(cmd: list[str], **env) -> float:
    env = dict(os.environ, PYTHONPATH=os.getcwd(), **env)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("linear", "mlp"), default="linear")
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    args.n, args.steps = (10_000, 2000) if args.model == "linear" else (2000, 200)
    hidden = ["--hidden", "64", "64"] if args.model == "mlp" else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_data(tmp / "data.npz", args.n)
        write_config(tmp / "scan.toml", tmp / "data.npz", args)
        commands = {
            "cch_scan": [sys.executable, "-m", "cch_jax.cli", "scan", "--config", str(tmp / "scan.toml"), "--out"],
            "plain": [sys.executable, "benchmarks/plain_scan.py", str(tmp / "data.npz"), "--lam", *map(str, LAMS),
                      "--seeds", str(args.seeds), "--steps", str(args.steps), *hidden],
        }  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in commands}
        for i in range(args.repeats):
            # cch's persistent compile cache off: the plain script compiles every time too
            cch = [*commands["cch_scan"], str(tmp / f"out{i}")]
            times["cch_scan"].append(wall(cch, CCH_NO_COMPILE_CACHE="1"))
            times["plain"].append(wall(commands["plain"]))
            print(f"repeat {i}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))
    best = {k: min(v) for k, v in times.items()}
    out = {
        "model": args.model,
        "students": len(LAMS) * args.seeds,
        "n": args.n,
        "steps": args.steps,
        "wall_s": times,
        "best_s": best,
        "cch_scan_vs_plain": best["cch_scan"] / best["plain"],
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
