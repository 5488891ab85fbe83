"""The installed JAX must not deadlock in the work this toolkit does.

jaxlib 0.10.0–0.10.2 split a batched LAPACK call (solve, slogdet, Cholesky of a vmapped stack
above ~256 KB) into tasks on XLA's intra-op thread pool and waits for them on a pool thread. When
two such calls run at once and the pool has two threads (a 2-core machine, like CI), both threads
wait and nothing is left to run the tasks: the process hangs at 0 % CPU (native stacks:
`jax::ParallelBatchMap` → `BlockingCounter::Wait` on every `tf_XLAEigen` thread). `theory.audit`
and `make demo` hung this way in 2 of 9 runs. pyproject.toml excludes jaxlib 0.10.*; this test
runs the smallest program that hung (within 30 calls, 3 of 3 tries, under 0.10.2) in a fresh
process and fails if it does not finish.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    # two independent batched solves: 64 matrices of 50 x 50 (1.3 MB each batch)
    f = jax.jit(jax.vmap(lambda a, b, c: jnp.linalg.solve(a, c) + jnp.linalg.solve(b, c)))
    a = jnp.broadcast_to(3 * jnp.eye(50), (64, 50, 50))
    c = jnp.ones((64, 50))
    for i in range(300):
        out = f(a, a + 1e-3 * i, c).block_until_ready()
    print("done", float(out[0, 0]))
    """
)


def test_two_batched_solves_at_once_finish():
    try:
        run = subprocess.run(
            [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        import jaxlib

        raise AssertionError(
            f"two concurrent batched solves hung under jaxlib {jaxlib.__version__} "
            "(see this file's docstring; pyproject.toml excludes jaxlib 0.10.*)"
        ) from None
    assert run.returncode == 0, run.stderr[-2000:]
    # last call: a = 3·I and b = a + 0.299 (every entry), so each row of the sum is 1/3 + u with
    # u = 1/(3 + 50·0.299) (Sherman–Morrison on 3·I + 0.299·11ᵀ applied to 1)
    assert abs(float(run.stdout.split()[-1]) - (1 / 3 + 1 / (3 + 50 * 0.299))) < 1e-12
