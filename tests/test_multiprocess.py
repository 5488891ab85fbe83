"""A scan run as 2 processes with `jax.distributed` on one CPU machine (docs/engine.md, "Several
hosts"): each process computes its share of the chunks into one folder, a barrier, then process 0
merges. The merged result must equal a single process's, run for run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

import theory
from cch_jax.scan import run_scan
from cch_jax.train import GaussianSource, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
LAMS, SEEDS, CHUNK = [0.0, 0.5], list(range(5)), 3  # 10 runs, 4 chunks: 2 per process

WORKER = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_enable_x64", True)
from jax.experimental import multihost_utils
import numpy as np
port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
sys.path.insert(0, sys.argv[4])
from tests.test_multiprocess import scan
share = scan(out, process_index=jax.process_index(), process_count=jax.process_count())
multihost_utils.sync_global_devices("scan chunks done")
if jax.process_index() == 0:
    merged = scan(out)  # every chunk on disk: merged, nothing computed
    np.savez(out + "/merged.npz", test=merged.metrics.test, diverged=merged.diverged)
print(jax.process_index(), jax.process_count(), share is None)
"""


def scan(out=None, **split):
    model = theory.random_model(jax.random.key(4), 2, 3)
    config = TrainConfig(data=GaussianSource(model, 30), steps=20, eval_every=10)
    return run_scan(config, LAMS, seeds=SEEDS, chunk_size=CHUNK, out=out, progress=False, **split)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_merge_to_the_single_process_result(tmp_path):
    out, port = str(tmp_path / "scan"), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    # one CPU device per process; the suite's other XLA flags kept (conftest.py: the optimisation
    # level changes rounding, and the merged result is compared with this process's at 1e-12)
    flags = env.pop("XLA_FLAGS", "").split()
    env["XLA_FLAGS"] = " ".join(f for f in flags if "device_count" not in f)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(port), str(pid), out, str(ROOT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    single = scan()  # meanwhile, in this process
    results = [w.communicate(timeout=120) for w in workers]
    for w, (_, stderr) in zip(workers, results, strict=True):
        assert w.returncode == 0, stderr[-2000:]
    lines = sorted(r[0].strip().splitlines()[-1] for r in results)
    # process ids and count as jax.distributed gave them (whether a process found the other's
    # chunks already on disk when it finished its own depends on timing: not asserted)
    assert [line.split()[:2] for line in lines] == [["0", "2"], ["1", "2"]]
    manifest = json.loads((tmp_path / "scan" / "scan.json").read_text())
    assert manifest["n_chunks"] == 4
    merged = np.load(tmp_path / "scan" / "merged.npz")
    np.testing.assert_array_equal(merged["diverged"], single.diverged)
    np.testing.assert_allclose(merged["test"], single.metrics.test, rtol=1e-12, atol=0)
