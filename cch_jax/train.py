"""One KD training run as a pure function (the shape of purejaxrl's `make_train`).

    train = make_train(config, source)              # static: a TrainConfig and a data source
    result = train(data, key, lam, temperature, learning_rate)   # -> TrainResult

`train` is jit- and vmap-able in all its arguments: swept values are traced (the learning rate is
a closure of the optimiser's update), so a whole grid of runs compiles once (`cch_jax.scan`).

A source (`cch_jax.data`) says where a run's training set comes from and how it is scored:
`source.draw(data, key) -> (x, y, t)` and `source.test_metric(student, task) -> metric(params,
data)`. `GaussianSource` draws a fresh set from the run's key (data = None) and scores a linear
student by its exact population risk; `ArrayData` trains on the fixed arrays `data` (passed to jit
as an argument, not baked in as constants) and scores on their test split.

Losses: `cch_jax.losses` (regression: label + λ·kd; classification: (1 − λ)·CE + λ·T²·KL). The
fast path (`uses_fast_path`) is the same regression loss computed from the training set's moments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cch_jax._base import check_int
from cch_jax.data.arrays import ArrayData
from cch_jax.data.gaussian import GaussianSource
from cch_jax.losses import (
    LinearStats,
    LossParts,
    classification_kd_loss,
    linear_stats,
    regression_kd_loss,
    regression_kd_loss_from_stats,
)
from cch_jax.metrics import Metrics
from cch_jax.models import LinearStudent, make_model

__all__ = [
    "ArrayData",
    "GaussianSource",
    "Metrics",
    "TrainConfig",
    "TrainResult",
    "draws_moments",
    "make_train",
    "run_bytes",
    "run_keys",
    "training_moments",
    "training_set",
    "uses_fast_path",
]

TASKS = ("regression", "classification")
OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}
SCHEDULES = ("constant", "cosine")
SOURCES = (GaussianSource, ArrayData)


@dataclass(frozen=True, eq=False)
class TrainConfig:
    """Everything static about a training run (the swept values are arguments of `train`).

    task: "regression" | "classification".
    data: the source a scan trains on (a GaussianSource or an ArrayData), or None.
    model: "linear" | "mlp" | "cnn" or any flax.linen Module; model_kwargs: its fields (the
      output width `out` defaults to 1 for regression and to C for classification).
    steps: optimiser steps; eval_every: stride of the recorded metrics (must divide steps).
    optimizer: "adam" | "sgd"; schedule: "constant" | "cosine" (lr·½(1 + cos(π·step/steps))).
    batch_size: minibatch size (drawn with replacement each step), or None for full batch.
    fast_path: train linear regression students from the moments of their training set when that
      is exact (`uses_fast_path`); False forces the generic per-sample loss (same numbers up to
      rounding, slower for large n).
    """

    task: str = "regression"
    data: Any = None
    model: Any = "linear"
    model_kwargs: Mapping = field(default_factory=dict)
    steps: int = 1000
    eval_every: int = 100
    optimizer: str = "adam"
    schedule: str = "constant"
    batch_size: int | None = None
    fast_path: bool = True

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} must be one of {TASKS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} must be one of {sorted(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} must be one of {SCHEDULES}")
        check_int("steps", self.steps)
        check_int("eval_every", self.eval_every)
        if self.steps % self.eval_every:
            raise ValueError(
                f"eval_every={self.eval_every} must divide steps={self.steps} "
                "(metrics are recorded every eval_every steps)"
            )
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size)
        if not isinstance(self.fast_path, bool):
            raise TypeError(f"fast_path={self.fast_path!r} must be True or False")
        if self.data is not None and not isinstance(self.data, SOURCES):
            raise TypeError(
                f"data={type(self.data).__name__} must be a GaussianSource or ArrayData"
            )
        if isinstance(self.data, GaussianSource):
            self.data.check(self.task, None)  # batch_size is checked by make_train
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))

    @property
    def eval_steps(self) -> np.ndarray:
        """Steps after which metrics are recorded: eval_every, 2·eval_every, …, steps."""
        return np.arange(self.eval_every, self.steps + 1, self.eval_every)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-able description (arrays by shape only) for the results sidecar."""
        return {
            "task": self.task,
            "data": None if self.data is None else self.data.to_dict(),
            "model": self.model if isinstance(self.model, str) else repr(self.model),
            "model_kwargs": dict(self.model_kwargs),
            "steps": self.steps,
            "eval_every": self.eval_every,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "batch_size": self.batch_size,
            # Part of the description (hence of the scan fingerprint and the compiled-function
            # cache key): the two paths agree only up to rounding.
            "fast_path": self.fast_path,
        }


class TrainResult(NamedTuple):
    """Final params (a Flax variables dict), metric trajectories, and whether the run diverged
    (a non-finite or exploding loss at any step, or non-finite final params)."""

    params: Any
    metrics: Metrics
    diverged: jax.Array


class RunKeys(NamedTuple):
    """The keys of one run: `data` draws its training set, `init` its params, `batch` its batches."""

    data: jax.Array
    init: jax.Array
    batch: jax.Array


def run_keys(key) -> RunKeys:
    """Split a run's key (the one place: a closed-form reference redraws the same training set)."""
    k_data, k_fit = jax.random.split(key)
    return RunKeys(k_data, *jax.random.split(k_fit))


def training_set(source, data, key):
    """The (x, y, t) that a row-sampling run `train(data, key, ...)` of this source trains on."""
    return source.draw(data, run_keys(key).data)


def training_moments(source, data, key) -> LinearStats:
    """The `LinearStats` a fast-path run `train(data, key, ...)` of this source trains from:
    drawn directly (a GaussianSource with sampler "moments") or the moments of its rows."""
    if _samples_moments(source):
        return source.draw_moments(data, run_keys(key).data)
    return linear_stats(*training_set(source, data, key))


def make_optimizer(config: TrainConfig, learning_rate) -> optax.GradientTransformation:
    """`config.optimizer` at the traced `learning_rate`, times the schedule (cosine:
    lr·½(1 + cos(π·step/steps))). A traced step size is a closure of the update, so no
    `inject_hyperparams` (which carries it, and rebuilds the optimiser, at every step)."""
    lr = learning_rate
    if config.schedule == "cosine":
        steps = config.steps
        lr = lambda count: learning_rate * (0.5 * (1 + jnp.cos(jnp.pi * count / steps)))
    return OPTIMIZERS[config.optimizer](learning_rate=lr)


def make_student(config: TrainConfig, source) -> nn.Module:
    """The student module; a named model's output width defaults to 1 (regression) or C."""
    kwargs = dict(config.model_kwargs)
    if isinstance(config.model, str) and "out" not in kwargs:
        regression = config.task == "regression"
        kwargs["out"] = 1 if regression else int(np.shape(source.teacher_train)[-1])
    return make_model(config.model, **kwargs)


def uses_fast_path(config: TrainConfig, student: nn.Module) -> bool:
    """Whether runs of `config` train from `LinearStats` (exact up to rounding) — when all hold:

    * config.fast_path (the switch);
    * regression: the loss is `regression_kd_loss`, a quadratic in the student's output;
    * full batch (batch_size None): every step sees the same n rows, so their moments are fixed
      for the run (a minibatch would need the moments of each batch: no saving);
    * the student is exactly a LinearStudent with one output (type, not isinstance: a subclass
      may compute something else), so its output is Xw (+ b) and the loss is quadratic in (w, b).
    """
    return (
        config.fast_path
        and config.task == "regression"
        and config.batch_size is None
        and type(student) is LinearStudent
        and student.out == 1
    )


def _samples_moments(source) -> bool:
    return isinstance(source, GaussianSource) and source.sampler == "moments"


def draws_moments(config: TrainConfig, student: nn.Module, source) -> bool:
    """Whether runs draw their training moments directly, never the rows: on the fast path, from
    a GaussianSource whose sampler is "moments" (the default; `sample_moments`, O(m³) per run)."""
    return uses_fast_path(config, student) and _samples_moments(source)


def make_fit(config: TrainConfig, student: nn.Module, source):
    """`fit(data, key) -> (fit, x0)`: what the loss reads, and an input batch to init on.

    * draws_moments: the `LinearStats` drawn directly, x0 = (1, p2) zeros;
    * fast path otherwise: the rows, then their moments (one O(n·p²) pass);
    * else the rows (x, y, t) themselves.
    """
    if draws_moments(config, student, source):
        return lambda data, key: (source.draw_moments(data, key), source.input_example(data))
    prepare = linear_stats if uses_fast_path(config, student) else lambda *xyt: xyt

    def fit(data, key):
        x, y, t = source.draw(data, key)
        return prepare(x, y, t), x[:1]

    return fit


def make_loss(config: TrainConfig, student: nn.Module):
    """`loss(params, fit, batch_key, lam, temperature) -> LossParts`, at every step.

    Fast path: fit = the moments (`LinearStats`), each step O(p²) whatever n. Otherwise
    fit = (x, y, t), and each step applies the student to the full set or to a minibatch drawn
    with replacement from batch_key (unused, hence never computed, with the full batch).
    """
    if uses_fast_path(config, student):

        def loss_from_stats(params, stats, batch_key, lam, temperature) -> LossParts:
            return regression_kd_loss_from_stats(params, stats, lam)  # full batch: no key

        return loss_from_stats

    def loss(params, fit, batch_key, lam, temperature) -> LossParts:
        x, y, t = fit
        if config.batch_size is not None:
            idx = jax.random.randint(batch_key, (config.batch_size,), 0, x.shape[0])
            x, y, t = x[idx], y[idx], t[idx]
        out = student.apply(params, x)
        if config.task == "regression":
            # (B, 1) -> (B,) as a sum over the one column (exact), not out[:, 0]: vmapped, the
            # slice puts the runs axis first and XLA CPU then transposes the (runs, B) outputs at
            # every step (a linear student's step ran 1.37x slower; BENCHMARKS.md, issue 14).
            return regression_kd_loss(out.sum(-1), y, t, lam)
        return classification_kd_loss(out, y, t, lam, temperature)

    return loss


def run_bytes(config: TrainConfig, source=None) -> int:
    """Bytes one run of a vmapped chunk holds at once, estimated (chunks are sized by it):

        data   moments drawn directly (`draws_moments`): 8·m², m = p2 + 2 (the Wishart factor, its
               products, the stats); Gaussian rows: 3·n·d (the normals, their product with L, the
               slices); fixed arrays: 0 (shared by the runs of a chunk);
        steps  4·B·out (outputs, residuals and their cotangents; B = batch_size or n), 0 on the
               fast path; the hidden activations of MLP/CNN students are not counted;
        state  6·P (params, gradient, Adam's two moments, the update, the final params),

    times the float size. source: default config.data. For linear Gaussian runs it is above
    XLA's own count (`memory_analysis` of a 64-run chunk, p1 = 20, p2 = 50, n = 10⁴, float64:
    rows 16.3 MB estimated vs 10.8 MB, moments 0.17 vs 0.07 MB per run); for MLP/CNN students it
    is a lower bound.
    """
    source = config.data if source is None else source
    student = make_student(config, source)
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    if isinstance(source, GaussianSource):
        n, d, x0 = source.n, source.model.dim, (1, source.model.p2)
    else:
        n, d, x0 = np.shape(source.x_train)[0], 0, (1, *np.shape(source.x_train)[1:])
    shapes = jax.eval_shape(student.init, jax.random.key(0), jax.ShapeDtypeStruct(x0, float))
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))
    fast = uses_fast_path(config, student)
    if draws_moments(config, student, source):
        data = 8 * (source.model.p2 + 2) ** 2
    else:
        data = 3 * n * d
    out = int(np.prod(jax.eval_shape(student.apply, shapes, jax.ShapeDtypeStruct(x0, float)).shape))
    steps = 0 if fast else 4 * (config.batch_size or n) * out
    return (data + steps + 6 * n_params) * itemsize


def _as_dtype_of(params, x):
    """Cast float params to x's float dtype (unchanged when x is not floating).

    Flax creates parameters in float32 whatever the input precision (param_dtype), so without this
    a float64 run (x64 on, float64 data) would update float32 weights with float64 gradients and be
    float32-accurate only. The initial values are the same numbers.
    """
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return params
    cast = lambda p: p.astype(x.dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p
    return jax.tree.map(cast, params)


# Divergence: a run whose loss becomes NaN/inf, or grows past DIVERGENCE_FACTOR × its loss at
# step 0 (exploding but finite, e.g. SGD at too large a step), is flagged and never averaged in.
DIVERGENCE_FACTOR = 1e6


def _diverging(loss, loss0) -> jax.Array:
    return ~jnp.isfinite(loss) | (loss > DIVERGENCE_FACTOR * loss0)


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(tree)]))


def make_train(config: TrainConfig, source=None):
    """The pure run `train(data, key, lam, temperature, learning_rate) -> TrainResult`.

    source: a GaussianSource or an ArrayData (the template of the arrays `data` will be);
      default config.data. Checked here, before anything is traced.
    data: None for a GaussianSource (it draws from the key); the arrays for an ArrayData.
    key: a jax.random key (`run_keys`: the training set, the init, the minibatches); lam: λ;
    temperature: T (classification KD only); learning_rate: the step size. All traced.
    """
    source = config.data if source is None else source
    if source is None:
        raise ValueError("data=None: give a GaussianSource or ArrayData in the config or here")
    if not isinstance(source, SOURCES):
        raise TypeError(f"data={type(source).__name__} must be a GaussianSource or ArrayData")
    source.check(config.task, config.batch_size)
    student = make_student(config, source)
    draw_fit = make_fit(config, student, source)
    loss = make_loss(config, student)
    test_metric = source.test_metric(student, config.task)
    n_blocks = config.steps // config.eval_every

    def train(data, key, lam, temperature, learning_rate) -> TrainResult:
        # Keys, training set, initial state.
        keys = run_keys(key)
        fit, x0 = draw_fit(data, keys.data)
        params = _as_dtype_of(student.init(keys.init, x0), x0)
        opt = make_optimizer(config, learning_rate)

        # The loss at step s (a minibatch, if any, drawn from the step's own key; with the full
        # batch the key is unused and never computed).
        def objective(params, s) -> LossParts:
            return loss(params, fit, jax.random.fold_in(keys.batch, s), lam, temperature)

        # One optimiser step: the gradient of the total loss, nothing else (the loss parts are
        # recorded once per block: per step they would cost as much as the step itself for a
        # linear student, several (runs, n) passes).
        def step(carry, s):
            params, opt_state = carry
            grads = jax.grad(lambda p: objective(p, s).total)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        # One block of eval_every steps, then the loss parts (on the next step's batch) and the
        # test metric of the params it ends with; remember a non-finite or exploding loss.
        def block(carry, b):
            state, bad = carry
            steps = b * config.eval_every + jnp.arange(config.eval_every)
            state, _ = jax.lax.scan(step, state, steps)
            parts = objective(state[0], (b + 1) * config.eval_every)
            bad = bad | _diverging(parts.total, loss0)
            return (state, bad), Metrics(*parts, test=test_metric(state[0], data))

        # All blocks; a run diverged if its loss after any block is not finite or exceeds
        # DIVERGENCE_FACTOR × the loss at step 0, or any final parameter is not finite (a NaN or
        # inf step makes the params non-finite for good: Adam's moments and SGD carry it).
        loss0 = jax.lax.stop_gradient(objective(params, 0).total)
        init = ((params, opt.init(params)), jnp.zeros((), bool))
        ((params, _), bad), metrics = jax.lax.scan(block, init, jnp.arange(n_blocks))
        return TrainResult(params=params, metrics=metrics, diverged=bad | ~_all_finite(params))

    return train
