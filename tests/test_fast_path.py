"""The sufficient-statistics fast path for linear regression students (cch_jax.train).

It must be the generic per-sample loss computed differently, nothing else: in float64 the whole
trajectory (params, loss parts, test metric, divergence flag) equals the generic path's to ~1e-10
relative, for drawn (GaussianSource) and fixed (ArrayData) training sets, with and without bias,
under both optimisers and schedules. And it must switch itself off wherever it would not be exact.
"""

import flax.linen as nn
import jax
import numpy as np
import pytest

import theory
from cch_jax.losses import linear_stats, regression_kd_loss, regression_kd_loss_from_stats
from cch_jax.models import LinearStudent, MLPStudent
from cch_jax.scan import make_chunk_fn, run_scan
from cch_jax.train import (
    ArrayData,
    GaussianSource,
    TrainConfig,
    make_student,
    make_train,
    uses_fast_path,
)

RTOL = 1e-10


@pytest.fixture(scope="module")
def source():
    return GaussianSource(theory.random_model(jax.random.key(1), 3, 6), 50)


@pytest.fixture(scope="module")
def arrays():
    """A fixed regression set with 2-d inputs (the linear student flattens them: p = 6)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3))
    w = rng.normal(size=6)
    y = x.reshape(60, -1) @ w + 0.5 * rng.normal(size=60)
    t = x.reshape(60, -1) @ (w + 0.3 * rng.normal(size=6))
    x_test = rng.normal(size=(40, 2, 3))
    return ArrayData(x, y, t, x_test, x_test.reshape(40, -1) @ w)


def _assert_same_run(fast, slow):
    assert jax.tree.structure(fast.params) == jax.tree.structure(slow.params)
    for a, b in zip(jax.tree.leaves(fast.params), jax.tree.leaves(slow.params)):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
    for name, a, b in zip(fast.metrics._fields, fast.metrics, slow.metrics):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0, err_msg=name)
    np.testing.assert_array_equal(fast.diverged, slow.diverged)


def _both(config, data=None, seeds=8):
    """Run `seeds` vmapped runs (λ from 0 to 3) with the fast path on and off."""
    keys = jax.vmap(jax.random.key)(np.arange(seeds))
    lams = np.linspace(0.0, 3.0, seeds)
    out = []
    for fast in (True, False):
        cfg = config.replace(fast_path=fast)
        assert uses_fast_path(cfg, make_student(cfg, data or cfg.data)) is fast
        run = jax.vmap(make_train(cfg, data), in_axes=(None, 0, 0, None, None))
        out.append(jax.jit(run)(data, keys, lams, 1.0, 0.05))
    return out


# Two cases, not the full product: each compiles two Gaussian programs (~5 s each on 2 cores).
@pytest.mark.parametrize(
    ("use_bias", "optimizer", "schedule"), [(False, "adam", "cosine"), (True, "sgd", "constant")]
)
def test_gaussian_trajectories_equal_the_generic_path(source, use_bias, optimizer, schedule):
    config = TrainConfig(
        data=source,
        steps=300,
        eval_every=20,
        optimizer=optimizer,
        schedule=schedule,
        model_kwargs={"use_bias": use_bias},
    )
    _assert_same_run(*_both(config))


@pytest.mark.parametrize("use_bias", [False, True])
def test_fixed_array_trajectories_equal_the_generic_path(arrays, use_bias):
    config = TrainConfig(steps=300, eval_every=30, model_kwargs={"use_bias": use_bias})
    _assert_same_run(*_both(config, arrays))


def test_scan_with_fixed_data_equals_the_generic_scan(arrays):
    # run_scan passes the arrays as a jit argument; the moments are computed inside the chunk.
    config = TrainConfig(steps=200, eval_every=50, schedule="cosine")
    grid = dict(lams=[0.0, 1.0], seeds=range(5), learning_rates=[0.05, 0.1], data=arrays)
    fast = run_scan(config, **grid, chunk_size=8)
    slow = run_scan(config.replace(fast_path=False), **grid, chunk_size=8)
    _assert_same_run(fast, slow)


def test_loss_from_stats_equals_the_per_sample_loss():
    rng = np.random.default_rng(3)
    x, y, t = rng.normal(size=(200, 7)), rng.normal(size=200), rng.normal(size=200)
    stats = linear_stats(x, y, t)
    assert stats.xx.shape == (7, 7) and stats.xy.shape == stats.mx.shape == (7,)
    for bias in (None, np.array([0.7])):
        head = {"kernel": rng.normal(size=(7, 1))}
        if bias is not None:
            head["bias"] = bias
        f = x @ head["kernel"][:, 0] + (0.0 if bias is None else bias[0])
        got = regression_kd_loss_from_stats({"params": {"head": head}}, stats, 1.5)
        want = regression_kd_loss(f, y, t, 1.5)
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12)


class _ScaledLinear(LinearStudent):
    """A subclass that computes something else: the fast path must not assume it is linear."""

    def __call__(self, x):
        return 2.0 * nn.tanh(super().__call__(x))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, True),
        ({"fast_path": False}, False),
        ({"batch_size": 10}, False),  # minibatches: the moments change every step
        ({"model": "mlp"}, False),
        ({"model": MLPStudent(hidden=(4,))}, False),
        ({"model": _ScaledLinear()}, False),
        ({"model_kwargs": {"out": 2}}, False),  # the loss reads one output column only
        ({"model_kwargs": {"use_bias": True}}, True),
    ],
)
def test_fast_path_is_used_only_where_exact(source, changes, expected):
    config = TrainConfig(data=source).replace(**changes)
    assert uses_fast_path(config, make_student(config, source)) is expected


def test_classification_never_uses_the_fast_path():
    rng = np.random.default_rng(0)
    data = ArrayData(
        rng.normal(size=(20, 4)),
        rng.integers(0, 3, 20),
        rng.normal(size=(20, 3)),
        rng.normal(size=(5, 4)),
        rng.integers(0, 3, 5),
    )
    config = TrainConfig(task="classification", data=data)
    assert not uses_fast_path(config, make_student(config, data))


def test_fast_path_is_part_of_the_config_identity(source):
    # Scans fingerprint and cache compiled functions by config.to_dict(): the two paths agree
    # only up to rounding, so they must not share a results directory or a compiled program.
    config = TrainConfig(data=source, steps=10, eval_every=5)
    assert config.to_dict()["fast_path"] is True
    assert config.replace(fast_path=False).to_dict()["fast_path"] is False
    assert make_chunk_fn(config) is not make_chunk_fn(config.replace(fast_path=False))
    with pytest.raises(TypeError, match="fast_path"):
        TrainConfig(fast_path="yes")
