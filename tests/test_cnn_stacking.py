"""The channel-stacked CNN of benchmarks/cnn_students.py (`stacked_cnn_apply`: S students on a
shared input as one network, the first convolution's kernels concatenated along the output
channels, the later layers block-diagonal) computes exactly S separate `CNNStudent`s: the same
outputs and the same per-student gradients, for both convolution implementations (S = 3: the
middle student's channels have neighbours on both sides; odd image sizes: pooling drops a row).
Without this the benchmark's `plain-stack-*` timings would mean nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks.cnn_students import stacked_cnn_apply
from cch_jax.models import CNNStudent

S = 3


@pytest.mark.parametrize("conv, shape", [("patches", (2, 10, 9)), ("lax", (2, 10, 9, 3))])
def test_stacked_students_are_separate_students(conv, shape):
    model = CNNStudent(channels=(4, 6), hidden=8, out=5, conv=conv)
    x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
    y = jax.random.randint(jax.random.key(2), shape[:1], 0, 5)

    def ce(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit  # one program: op by op, these inits and gradients take ~20 s
    def both(keys):
        f32 = lambda a: a.astype(jnp.float32)  # PatchConv's parameters are float64 under x64
        params = [jax.tree.map(f32, model.init(k, x)) for k in keys]
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *params)
        out = stacked_cnn_apply(stacked, x, conv)
        # The gradient of the summed losses, per student, against each student's own gradient.
        grads = jax.grad(lambda p: jax.vmap(ce)(stacked_cnn_apply(p, x, conv)).sum())(stacked)
        each = [(model.apply(p, x), jax.grad(lambda p: ce(model.apply(p, x)))(p)) for p in params]
        return out, grads, each

    got, grads, each = both(jax.random.split(jax.random.key(0), S))
    assert got.shape == (S, shape[0], 5) and got.dtype == each[0][0].dtype == jnp.float32
    for s, (out, want) in enumerate(each):
        np.testing.assert_allclose(got[s], out, rtol=1e-5, atol=1e-5)
        jax.tree.map(
            lambda g, w, s=s: np.testing.assert_allclose(g[s], w, rtol=1e-5, atol=1e-5),
            grads,
            want,
        )
