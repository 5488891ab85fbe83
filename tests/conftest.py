"""float64 once for the whole suite: theory-vs-simulation comparisons need it.

The CLI's persistent compilation cache is off for the suite (tests/test_cli_engine.py tests it in
subprocesses of its own), so that tests neither read nor write the user's ~/.cache/cch/xla.

XLA's LLVM backend optimises at level 0 for the whole suite and the processes it starts (set
before JAX starts its backend; kept if XLA_FLAGS already names a level, e.g.
`XLA_FLAGS=--xla_backend_optimization_level=2 make test` runs the suite on code optimised as
users get it). Most tests are bound by compiling their programs, not running them: the suite's
CPU time (user + sys) fell from 20.2 to 12.9 minutes, its wall time on 2 workers from 10.5 to 6.9
(docs/testing.md). The kernels bound by running time keep the default level
(`cch_jax.mi.knn.RUNTIME_BOUND`). The level changes rounding, not results beyond it: tests that
compare numbers across processes at 1e-12 pass the suite's XLA_FLAGS on.
"""

import os
from collections import Counter

import jax
import pytest
import threadpoolctl

# One BLAS thread per test process (as `cch check` does for itself): `make test` runs one xdist
# worker per core, so a second BLAS thread only waits, and OpenBLAS's threads spin on a busy CPU:
# a 2 × 2 triangular solve took 12 ms instead of 0.08 (a surrogate test: 20 s of CPU → 4 s).
# NumPy is loaded before this file (by pytest's plugins), so the limit is set through threadpoolctl;
# the variable reaches the processes the tests start.
threadpoolctl.threadpool_limits(1, user_api="blas")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

os.environ.setdefault("CCH_NO_COMPILE_CACHE", "1")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    os.environ["XLA_FLAGS"] = flags.strip()
jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session", autouse=True)
def traces():
    """How many times scans have traced a training run: {"train": count}.

    The counter is the tests' own: for the whole session, `cch_jax.scan` builds its runs through
    a wrapper of `make_train` that counts each trace (a call of `train` happens only while jit,
    vmap or lax.map trace it). Installed before the first test, so every cached chunk function
    counts.
    """
    import cch_jax.scan

    counter = Counter()
    make_train = cch_jax.scan.make_train

    def counting_make_train(config, source=None):
        train = make_train(config, source)

        def counted(*args):
            counter["train"] += 1
            return train(*args)

        return counted

    patch = pytest.MonkeyPatch()
    patch.setattr(cch_jax.scan, "make_train", counting_make_train)
    yield counter
    patch.undo()
