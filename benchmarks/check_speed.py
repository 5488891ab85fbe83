"""Wall time of the bias-aware `cch check` (cch_jax.mi.check.check_cch) at the sizes users bring.

    PYTHONPATH=. python benchmarks/check_speed.py [--quick] [--json] [--out FILE] [--no-command]

Cases (tasks of experiments/check_calibration.py, so the true gap is known and reported beside
the verdict): class labels with 128 + 128 dims at n = 10⁴ (10 and 2 classes), a continuous
target with 32 + 32 dims at n = 10⁴, and 8 + 8 dims with labels at n = 2000. Per case: `first_s`
(the first call in the process: JAX compiles the kNN kernels), `s` (a second call, same data and
seed), the verdict, the families that ran and the rows the knn family used. The whole command
(`--no-command` skips it): `python -m cch_jax.cli check` on the 128 + 128, 10-class case as a
subprocess (process start, imports, loading, compile, everything). The load average is recorded
at the start and end: this is a CPU benchmark and other jobs on the machine inflate it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan_throughput import device_description, finish, load_average, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cch_jax.mi.check import check_cch  # noqa: E402
from experiments.check_calibration import make_task  # noqa: E402

CASES = (
    ("mix10", 128, 10_000),
    ("mix2", 128, 10_000),
    ("gauss-spread", 32, 10_000),
    ("mix2", 8, 2_000),
)
GAP = 0.1


def measure(family: str, d: int, n: int) -> dict:
    sample, i12, i2y, labels = make_task(family, d, GAP, seed=1)
    h1, h2, y = sample(np.random.default_rng(0), n)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        res = check_cch(h1, h2, y, labels=labels, seed=0)
        times.append(time.perf_counter() - t0)
    return {
        "task": family,
        "dims": f"{d}+{d}",
        "n": n,
        "labels": labels,
        "first_s": round(times[0], 2),
        "s": round(times[1], 2),
        "verdict": res.verdict,
        "validated": res.validated,
        "true_gap": i12 - i2y,
        "gap_ci": [round(v, 3) for v in res.gap_ci],
        "families": [f["family"] for f in res.families],
        "knn_rows": res.subsampled.get("knn", n),
    }


def command_seconds(d: int = 128, n: int = 10_000) -> float:
    sample, *_ = make_task("mix10", d, GAP, seed=1)
    h1, h2, y = sample(np.random.default_rng(0), n)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, a in (("h1", h1), ("h2", h2), ("y", y)):
            paths.append(str(Path(tmp) / f"{name}.npy"))
            np.save(paths[-1], a)
        argv = [
            sys.executable,
            "-m",
            "cch_jax.cli",
            "check",
            "--teacher",
            paths[0],
            "--student",
            paths[1],
            "--labels",
            paths[2],
            "--json",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=tmp)
        return time.perf_counter() - t0


def format_row(r: dict) -> str:
    return (
        f"{r['task']:>12} {r['dims']:>8} n={r['n']:>6}  first {r['first_s']:6.1f} s  "
        f"again {r['s']:6.1f} s  {r['verdict']} (true gap {r['true_gap']:+.2f}, "
        f"validated {r['validated']}, knn rows {r['knn_rows']})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the 8 + 8, n = 2000 case")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="JSON file, rewritten after every row")
    ap.add_argument("--no-command", action="store_true", help="skip the whole-command timing")
    args = ap.parse_args(argv)
    out = {
        "benchmark": "check_speed",
        "device": device_description(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_start": load_average(),
        "results": [],
    }
    for case in CASES[-1:] if args.quick else CASES:
        record(out, measure(*case), args, format_row)
    if not (args.quick or args.no_command):
        out["command_s"] = round(command_seconds(), 2)
        if not args.json:
            print(f"cch check (whole command, 128+128, n=10^4, 10 classes): {out['command_s']} s")
    return finish(out, args)


if __name__ == "__main__":
    raise SystemExit(main())
