"""The project's KSG (brute force, tiled, JAX) against a scipy KD-tree KSG of the same definition.

    PYTHONPATH=. python benchmarks/ksg_speed.py [--quick] [--json] [--no-command]

Both compute KSG estimator 1 (Kraskov et al. 2004), max-norm, k = 3, on standardised data:
`cch_jax.mi.knn.ksg` (tiles of 128 rows against all n, `lax.map`) and
`cch_jax.mi.reference.ksg_reference` (scipy cKDTree queries, `workers=-1`: all cores). Data:
x ~ N(0, I_d), y = 0.6·x + 0.8·noise per coordinate (I = −d/2·log(0.64) nats), d + d dims for
d ∈ {1, 8, 32}, n ∈ {10³, 10⁴, 5·10⁴} (`--quick`: 32 + 32 only up to n = 10⁴).

Per case: both values and their difference; `jax_s` (the estimate with the program already
compiled: fastest of repeats lasting `--min-time`), `jax_first_s` (the first call, compile
included: what a one-off estimate costs), `kdtree_s` (fastest of repeats), ratio = kdtree_s / jax_s
(> 1: the JAX estimator is faster). `--tiles 128 1024 …` times the JAX estimator at several row
tiles (the first is the one reported; on a GPU larger tiles fill the device better);
`--kdtree-max-n-32 N` skips the KD-tree, not the JAX estimator, for 32+32 dims above n = N (it
takes minutes there); `--out FILE` rewrites the JSON after every row.

The whole command (`--no-command` to skip): at n = 10⁴, 8 + 8, the wall time of
`python -m cch_jax.cli mi X.npy Y.npy --estimator ksg` (a subprocess: process start, imports,
loading, compile, the full-sample estimate AND the 10 disjoint-subset estimates behind its
standard error) against two scripts that import only numpy + scipy and run the KD-tree KSG: the
point estimate alone, and the point estimate plus the same 10 subset estimates (equal work).
Each command is run `--repeats` times; the fastest is kept.

Without scipy (the GPU image may lack it) the KD-tree columns and commands are skipped; the JAX
estimator still runs (its kernel `ksg_terms` is pure JAX; the package `cch_jax.mi` itself imports
scipy, so the kernel is then loaded from its file and combined with jax's digamma).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan_throughput import device_description, finish, load_average, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
K = 3
RHO = 0.6
CASES_N = (1_000, 10_000, 50_000)
CASES_D = (1, 8, 32)


def _load_file(name: str, path: Path):
    """Import one module from its file without running its package's __init__ (no scipy)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


try:
    import scipy  # noqa: F401

    HAVE_SCIPY = True
except ImportError:
    HAVE_SCIPY = False

if HAVE_SCIPY:
    from cch_jax.mi.knn import ksg as _project_ksg
    from cch_jax.mi.reference import ksg_reference
else:
    _knn = _load_file("_cch_knn", ROOT / "cch_jax" / "mi" / "knn.py")
    ksg_reference = None


def project_ksg(x: np.ndarray, y: np.ndarray, tile: int = 128) -> float:
    """The project's KSG estimate (nats) of standardised x (n, d), y (n, d); rows `tile` at a time."""
    if HAVE_SCIPY:
        return float(_project_ksg(x, y, k=K, tile=tile)[0][0])
    from jax.scipy.special import digamma

    xs, ys = (_knn.standardise(a) for a in (x, y))
    dt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    n = x.shape[0]
    terms, _ = _knn.ksg_terms(
        jnp.asarray(xs, dt), jnp.asarray(ys, dt), jnp.zeros(n, jnp.int32), k=K, tile=tile
    )
    return float(digamma(K * 1.0) + digamma(n * 1.0) - jnp.mean(terms))


def sample(n: int, d: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """x (n, d), y (n, d) with y_j = ρ x_j + √(1 − ρ²) e_j; the true MI −d/2·log(1 − ρ²)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = RHO * x + math.sqrt(1 - RHO**2) * rng.normal(size=(n, d))
    return x, y, -d / 2 * math.log(1 - RHO**2)


def best_of(fn, min_time: float) -> tuple[float, object]:
    best, spent, value = math.inf, 0.0, None
    while spent < min_time or best == math.inf:
        t0 = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best, value


def measure_case(n: int, d: int, min_time: float, tiles=(128,), kdtree: bool = True) -> dict:
    """One (n, d): the JAX estimator at each row tile (the first is the default, `jax_s`) and,
    if `kdtree`, the KD-tree reference."""
    x, y, truth = sample(n, d)
    row = {"n": n, "dims": f"{d}+{d}", "true_mi": truth, "tile": tiles[0], "by_tile": {}}
    for tile in tiles:
        t0 = time.perf_counter()
        first = project_ksg(x, y, tile)
        first_s = time.perf_counter() - t0
        seconds, value = best_of(lambda t=tile: project_ksg(x, y, t), min_time)
        assert value == first
        row["by_tile"][str(tile)] = {"jax_s": seconds, "jax_first_s": first_s, "jax_value": value}
    row.update(row["by_tile"][str(tiles[0])])
    if ksg_reference is not None and kdtree:
        row["kdtree_s"], row["kdtree_value"] = best_of(lambda: ksg_reference(x, y, k=K), min_time)
        row["abs_diff"] = abs(row["jax_value"] - row["kdtree_value"])
        row["ratio"] = row["kdtree_s"] / row["jax_s"]
        row["ratio_first_call"] = row["kdtree_s"] / row["jax_first_s"]
    row["load_average"] = load_average()
    return row


KDTREE_SCRIPT = """
import importlib.util, sys, numpy as np
spec = importlib.util.spec_from_file_location("ref", {ref!r})
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
x, y = np.load(sys.argv[1]), np.load(sys.argv[2])
value = ref.ksg_reference(x, y, k={k})
if {subsets}:
    # the 10 disjoint subsets behind `cch mi`'s standard error (standardised on the full sample)
    xs, ys = ref._std(x), ref._std(y)
    groups = np.random.default_rng(0).permutation(len(x)) % {subsets}
    sub = [ref.ksg_reference(xs[groups == g], ys[groups == g], k={k}, standardize=False)
           for g in range({subsets})]
    print(value, np.std(sub, ddof=1) / np.sqrt({subsets}))
else:
    print(value)
"""


def time_command(cmd: list[str], repeats: int, env=None) -> tuple[float, str]:
    best, out = math.inf, ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
        best, out = min(best, time.perf_counter() - t0), res.stdout.strip()
    return best, out


def measure_commands(repeats: int) -> dict:
    """Whole processes at n = 10⁴, 8 + 8: `cch mi` against numpy+scipy KD-tree scripts."""
    x, y, truth = sample(10_000, 8)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    with tempfile.TemporaryDirectory() as tmp:
        xp, yp = os.path.join(tmp, "X.npy"), os.path.join(tmp, "Y.npy")
        np.save(xp, x)
        np.save(yp, y)
        out = {"n": 10_000, "dims": "8+8", "true_mi": truth, "repeats": repeats}
        cmd = [sys.executable, "-m", "cch_jax.cli", "mi", xp, yp, "--estimator", "ksg", "--json"]
        out["cch_mi_s"], text = time_command(cmd, repeats, env)
        out["cch_mi_output"] = json.loads(text)
        ref = str(ROOT / "cch_jax" / "mi" / "reference.py")
        for label, subsets in (("kdtree_point", 0), ("kdtree_with_subsets", 10)):
            script = os.path.join(tmp, f"{label}.py")
            Path(script).write_text(KDTREE_SCRIPT.format(ref=ref, k=K, subsets=subsets))
            out[f"{label}_s"], out[f"{label}_output"] = time_command(
                [sys.executable, script, xp, yp], repeats
            )
        # the bare interpreter + imports, for scale
        out["python_jax_import_s"], _ = time_command(
            [
                sys.executable,
                "-c",
                "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()",
            ],
            repeats,
        )
        out["python_scipy_import_s"], _ = time_command(
            [sys.executable, "-c", "import numpy, scipy.spatial, scipy.special"], repeats
        )
    out["ratio_point"] = out["kdtree_point_s"] / out["cch_mi_s"]
    out["ratio_equal_work"] = out["kdtree_with_subsets_s"] / out["cch_mi_s"]
    out["load_average"] = load_average()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32+32 only up to n = 10⁴")
    ap.add_argument("--n", type=int, nargs="+", default=list(CASES_N))
    ap.add_argument("--dims", type=int, nargs="+", default=list(CASES_D))
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each whole command")
    ap.add_argument("--no-command", action="store_true", help="skip the whole-command timing")
    ap.add_argument(
        "--tiles", type=int, nargs="+", default=[128], help="row tiles (the first is reported)"
    )
    ap.add_argument(
        "--kdtree-max-n-32",
        type=int,
        default=None,
        help="skip the KD-tree (not the JAX estimator) for 32+32 dims and more above this n",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="also write the JSON to this file, rewritten after every row")
    args = ap.parse_args(argv)
    out = {
        "device": device_description(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "versions": {"jax": jax.__version__, "numpy": np.__version__},
        "scipy": None,
        "k": K,
        "x64": bool(jax.config.jax_enable_x64),
        "load_average_start": load_average(),
        "results": [],
    }
    if HAVE_SCIPY:
        import scipy

        out["scipy"] = scipy.__version__
    elif not args.json:
        print("scipy not installed: KD-tree comparison skipped (JAX timings only)")
    for d in args.dims:
        for n in args.n:
            if args.quick and d >= 32 and n > 10_000:
                continue
            cap = args.kdtree_max_n_32
            kdtree = cap is None or d < 32 or n <= cap
            record(out, measure_case(n, d, args.min_time, args.tiles, kdtree), args, format_row)
    if not args.no_command and HAVE_SCIPY:
        out["command_timing"] = c = measure_commands(args.repeats)
        if not args.json:
            print(
                f"n=10^4, 8+8, whole processes (best of {c['repeats']}): cch mi --estimator ksg "
                f"{c['cch_mi_s']:.2f} s; KD-tree script {c['kdtree_point_s']:.2f} s (point), "
                f"{c['kdtree_with_subsets_s']:.2f} s (+10 subsets, equal work); imports alone: "
                f"jax {c['python_jax_import_s']:.2f} s, scipy {c['python_scipy_import_s']:.2f} s"
            )
    return finish(out, args)


def format_row(r: dict) -> str:
    text = (
        f"n={r['n']:6d} {r['dims']:>5s}: JAX {r['jax_value']:.4f} in {r['jax_s']:.3f} s "
        f"(first call {r['jax_first_s']:.2f} s)"
    )
    for tile, t in r["by_tile"].items():
        if int(tile) != r["tile"]:
            text += f" [tile {tile}: {t['jax_s']:.3f} s]"
    if "kdtree_s" in r:
        text += (
            f" | KD-tree {r['kdtree_value']:.4f} in {r['kdtree_s']:.3f} s | diff "
            f"{r['abs_diff']:.1e} | KD-tree/JAX {r['ratio']:.2f}x"
        )
    return text + f" | true {r['true_mi']:.3f} | load {r['load_average']}"


if __name__ == "__main__":
    raise SystemExit(main())
