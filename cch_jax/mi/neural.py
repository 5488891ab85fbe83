"""Variational (neural) MI lower bounds with Flax critics: MINE (Donsker–Varadhan), InfoNCE, NWJ.

A critic f(x, y) scores every pair of a minibatch at once: S[i, j] = f(x_i, y_j); the diagonal holds
joint samples and the off-diagonal product-of-marginals samples. With B the batch size:

    DV / MINE   I ≥ mean_i S_ii − log mean_{i≠j} exp S_ij
    NWJ         I ≥ mean_i S_ii − mean_{i≠j} exp(S_ij − 1)
    InfoNCE     I ≥ mean_i [S_ii − log Σ_j exp S_ij] + log B     (never exceeds log B)

Honesty measures (docs/mi_validation.md has the before/after numbers):
- inputs are mapped coordinate-wise to normal scores (empirical CDF of the training half, then
  Φ⁻¹): an increasing map, so I(X; Y) is unchanged, and heavy tails can no longer blow up exp(f);
- the critic is a·f_raw + b with a = 0, b = 1 at initialisation: constant, so every bound is exactly
  0 before training (NWJ's optimum for independent data is f ≡ 1; DV and InfoNCE ignore b);
- early stopping: the training half is split again (1 − val_frac / val_frac); every `eval_every`
  steps the bound is computed on the validation pairs (one score matrix) and the best checkpoint,
  initialisation included, is kept (all inside lax.scan, vmapped over seeds).
Nothing is clamped: a negative estimate is reported as is and means "no evidence of dependence".

MINE trains with the moving-average gradient correction of Belghazi et al. (2018): the gradient of
log mean exp S is replaced by ∇ mean exp S / EMA(mean exp S) (a surrogate loss whose gradient is
exactly that). `seeds` critics are trained at once with vmap (different initialisations and
minibatch streams) on the first half of the data (after a random split); each is evaluated on the
held-out half in disjoint blocks of B pairs. The estimate is the mean over seeds and blocks; its
stderr combines the seed spread (optimisation noise) and the block spread (evaluation noise):
se² = var_seeds / S + mean_seeds(var_blocks) / n_blocks. It does *not* include the bound's bias
(a variational bound is below I when the critic is imperfect; InfoNCE saturates at log B).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp
from scipy.special import ndtri

from cch_jax.mi.knn import RUNTIME_BOUND


class MLP(nn.Module):
    """ReLU multilayer perceptron; `features` lists the widths, the last one the output size."""

    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for f in self.features[:-1]:
            x = nn.relu(nn.Dense(f)(x))
        return nn.Dense(self.features[-1])(x)


class Critic(nn.Module):
    """f(x_i, y_j) for every pair: separable g(x)·h(y) (default) or a joint MLP on [x, y]."""

    hidden: int = 64
    layers: int = 2
    embed: int = 32
    kind: str = "separable"

    @nn.compact
    def __call__(self, x, y):
        widths = (self.hidden,) * self.layers
        # output a·raw + b with a = 0, b = 1 at initialisation: the untrained critic is constant, so
        # every bound starts at exactly 0 (NWJ's optimum for independent data is f ≡ 1), and early
        # stopping can always fall back to "no evidence of dependence".
        # (in the inputs' dtype: the initialisers' default is float64 under jax_enable_x64)
        a = self.param("scale", nn.initializers.zeros, (), x.dtype)
        b = self.param("offset", nn.initializers.ones, (), x.dtype)
        if self.kind == "separable":
            # MLP plus a linear path: Gaussian-like (linear) dependence needs no hidden units
            gx = MLP(widths + (self.embed,), name="g")(x) + nn.Dense(self.embed, name="gl")(x)
            hy = MLP(widths + (self.embed,), name="h")(y) + nn.Dense(self.embed, name="hl")(y)
            return a * (gx @ hy.T) / math.sqrt(self.embed) + b
        b = x.shape[0]
        pairs = jnp.concatenate(
            [
                jnp.broadcast_to(x[:, None, :], (b, b, x.shape[1])),
                jnp.broadcast_to(y[None, :, :], (b, b, y.shape[1])),
            ],
            axis=-1,
        )
        return a * MLP(widths + (1,), name="f")(pairs)[..., 0] + b


def _offdiag_logmeanexp(s):
    b = s.shape[0]
    off = ~jnp.eye(b, dtype=bool)
    return logsumexp(jnp.where(off, s, -jnp.inf)) - jnp.log(b * (b - 1.0))


def dv_bound(s):
    """Donsker–Varadhan bound from a score matrix (MINE's objective)."""
    return jnp.mean(jnp.diag(s)) - _offdiag_logmeanexp(s)


def nwj_bound(s):
    """Nguyen–Wainwright–Jordan (f-divergence) bound from a score matrix."""
    return jnp.mean(jnp.diag(s)) - jnp.exp(_offdiag_logmeanexp(s) - 1.0)


def infonce_bound(s):
    """InfoNCE (CPC) bound from a score matrix; at most log B."""
    return jnp.mean(jnp.diag(s) - logsumexp(s, axis=1)) + jnp.log(s.shape[0] * 1.0)


BOUNDS = {"mine": dv_bound, "nwj": nwj_bound, "infonce": infonce_bound}


_ORDER = ("infonce", "nwj", "mine")  # a traced index selects the bound: one compile for all three


@functools.partial(
    jax.jit,
    static_argnames=("hidden", "layers", "embed", "kind", "steps", "batch", "eval_every"),
    compiler_options=RUNTIME_BOUND,
)
def _fit_and_eval(
    keys,
    xtr,
    ytr,
    xva,
    yva,
    xev,
    yev,
    lr,
    ema,
    weight_decay,
    which,
    *,
    hidden,
    layers,
    embed,
    kind,
    steps,
    batch,
    eval_every,
):
    """Train len(keys) critics (vmap) with early stopping; held-out bound per seed and block.

    Every `eval_every` steps the bound is evaluated on the validation pairs (xva, yva) as one score
    matrix; the parameters with the best validation bound (initialisation included) are kept and
    evaluated on (xev, yev) in disjoint blocks of `batch` pairs. Returns (values (S, nb), best step
    (S,), validation curve (S, steps // eval_every + 1)). `which` indexes _ORDER (traced, so MINE,
    InfoNCE and NWJ share one compiled program).
    """
    critic = Critic(hidden=hidden, layers=layers, embed=embed, kind=kind)
    opt = optax.adamw(lr, weight_decay=weight_decay)
    ntr = xtr.shape[0]

    def bound(s):
        return jax.lax.switch(which, [infonce_bound, nwj_bound, dv_bound], s)

    def mine_surrogate(s, log_ema):
        lme = _offdiag_logmeanexp(s)
        new = jax.lax.stop_gradient(jnp.logaddexp(jnp.log1p(-ema) + log_ema, jnp.log(ema) + lme))
        # gradient: ∇ mean exp S / EMA(mean exp S)  (Belghazi et al. 2018, §3.2)
        loss = -(jnp.mean(jnp.diag(s)) - jax.lax.stop_gradient(jnp.exp(lme - new)) * lme)
        return loss, new

    def loss_fn(params, xb, yb, log_ema):
        s = critic.apply(params, xb, yb)
        return jax.lax.switch(
            which,
            [
                lambda: (-infonce_bound(s), log_ema),
                lambda: (-nwj_bound(s), log_ema),
                lambda: mine_surrogate(s, log_ema),
            ],
        )

    def val_bound(params):
        v = bound(critic.apply(params, xva, yva))
        return jnp.where(jnp.isfinite(v), v, -jnp.inf)

    def train_one(key):
        k_init, k_loop = jax.random.split(key)
        params = critic.init(k_init, xtr[:2], ytr[:2])
        state = opt.init(params)

        def step(carry, k):
            params, state, log_ema = carry
            idx = jax.random.choice(k, ntr, (batch,), replace=False)
            (_, log_ema), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, xtr[idx], ytr[idx], log_ema
            )
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state, log_ema), None

        def chunk(carry, ks):
            train, best, best_val, best_step, t = carry
            train, _ = jax.lax.scan(step, train, ks)
            v = val_bound(train[0])
            better = v > best_val
            best = jax.tree.map(lambda a, b: jnp.where(better, a, b), train[0], best)
            t = t + eval_every
            carry = (
                train,
                best,
                jnp.where(better, v, best_val),
                jnp.where(better, t, best_step),
                t,
            )
            return carry, v

        v0 = val_bound(params)
        init = (
            (params, state, jnp.zeros((), xtr.dtype)),
            params,
            v0,
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
        )
        nchunks = steps // eval_every
        ks = jax.random.split(k_loop, (nchunks, eval_every))
        (_, best, _, best_step, _), curve = jax.lax.scan(chunk, init, ks)
        nb = xev.shape[0] // batch
        xb = xev[: nb * batch].reshape(nb, batch, -1)
        yb = yev[: nb * batch].reshape(nb, batch, -1)
        vals = jax.lax.map(lambda a: bound(critic.apply(best, a[0], a[1])), (xb, yb))
        return vals, best_step, jnp.concatenate([v0[None], curve])

    return jax.vmap(train_one)(keys)


def _normal_scores(fit: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Each column of `a` through the empirical CDF of that column of `fit`, then Φ⁻¹.

    A coordinate-wise increasing map, so I(X; Y) is unchanged (exactly, for the population CDF);
    values outside the range of `fit` map to its extreme scores (|z| ≤ Φ⁻¹(1 − ½/m)).
    """
    m = fit.shape[0]
    u = (np.arange(m) + 0.5) / m
    cols = [np.interp(a[:, j], np.sort(fit[:, j]), u) for j in range(a.shape[1])]
    return ndtri(np.stack(cols, axis=1))


def _robust_scale(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (median) and scale (IQR/1.349, the sd for a Gaussian; sd where the IQR is 0)."""
    q1, med, q3 = np.quantile(a, [0.25, 0.5, 0.75], axis=0)
    iqr = (q3 - q1) / 1.3489795
    sd = a.std(0)
    scale = np.where(iqr > 0, iqr, sd) + 1e-12
    return med, scale


def neural_mi(
    x: np.ndarray,
    y: np.ndarray,
    *,
    key,
    estimator: str = "infonce",
    seeds: int = 4,
    steps: int = 1000,
    batch: int = 128,
    lr: float = 1e-3,
    hidden: int = 64,
    layers: int = 2,
    embed: int = 32,
    critic: str = "separable",
    ema: float = 0.01,
    weight_decay: float = 0.0,
    val_frac: float = 0.25,
    eval_every: int = 25,
    clip: float = 10.0,
    transform: str = "rank",
) -> dict:
    """Train `seeds` critics on a random half, evaluate the bound on the other half (nats).

    The training half is split again: 1 − val_frac for gradient steps, val_frac for early stopping
    (the critic with the best validation bound over checkpoints every `eval_every` steps is kept).
    Inputs: transform="rank" maps each coordinate to normal scores through the training half's
    empirical CDF (MI-preserving, |z| ≤ 3.1 at n = 2000); "robust" centres by the median and scales
    by IQR/1.349 instead. Either is then clipped to ±clip (0: no clipping), so heavy tails cannot
    blow up exp(critic). A negative estimate is returned as is ("no evidence of dependence").
    Optimiser: AdamW with `weight_decay` (default 0: plain Adam, no decay). Critics train in
    float32 whatever `jax_enable_x64` says.
    """
    if estimator not in BOUNDS:
        raise ValueError(f"estimator={estimator!r} must be one of {sorted(BOUNDS)}")
    if critic not in ("separable", "joint"):
        raise ValueError(f"critic={critic!r} must be 'separable' or 'joint'")
    if transform not in ("rank", "robust"):
        raise ValueError(f"transform={transform!r} must be 'rank' or 'robust'")
    if not 0.0 < val_frac < 1.0:
        raise ValueError(f"val_frac={val_frac!r} must be in (0, 1)")
    if not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    if not isinstance(eval_every, int | np.integer) or eval_every < 1:
        raise ValueError(f"eval_every={eval_every!r} must be a positive integer")
    eval_every = int(min(eval_every, steps))
    steps = -(-int(steps) // eval_every) * eval_every  # whole number of validation intervals
    n = x.shape[0]
    k_split, k_seeds = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(k_split, n))
    half = n // 2
    nva = int(round(val_frac * half))
    tr, va, ev = perm[: half - nva], perm[half - nva : half], perm[half:]
    batch = int(min(batch, tr.size // 2))
    if batch < 4 or nva < 4:
        raise ValueError(f"n={n} is too small for a neural estimator: batch {batch} < 4")
    # float32 whatever jax_enable_x64 says: the estimate's statistical error (~0.01-0.05 nats) is
    # orders above float32 rounding, float64 made the critics 2.3x slower on CPU (more on GPUs),
    # and the `cch mi` CLI and docs/mi_validation_table.md ran in float32 anyway.
    dt = jnp.float32
    fit = perm[:half]
    if transform == "rank":
        xs, ys = _normal_scores(x[fit], x), _normal_scores(y[fit], y)
    else:
        (mu, sd), (mv, sv) = _robust_scale(x[fit]), _robust_scale(y[fit])
        xs, ys = (x - mu) / sd, (y - mv) / sv
    if clip:
        xs, ys = np.clip(xs, -clip, clip), np.clip(ys, -clip, clip)
    vals, best_step, curve = _fit_and_eval(
        jax.random.split(k_seeds, seeds),
        *(jnp.asarray(a, dt) for a in (xs[tr], ys[tr], xs[va], ys[va], xs[ev], ys[ev])),
        lr,
        ema,
        weight_decay,
        _ORDER.index(estimator),
        hidden=hidden,
        layers=layers,
        embed=embed,
        kind=critic,
        steps=steps,
        batch=batch,
        eval_every=eval_every,
    )
    vals = np.asarray(vals, np.float64)  # (seeds, blocks)
    finite = np.all(np.isfinite(vals), axis=1)
    diverged = int(seeds - finite.sum())
    if finite.any():  # a critic whose training blew up (inf/nan scores) is dropped and counted
        vals = vals[finite]
        seeds = int(finite.sum())
    per_seed = vals.mean(axis=1)
    nb = vals.shape[1]
    var_seed = per_seed.var(ddof=1) / seeds if seeds > 1 else 0.0  # nan if every seed diverged
    var_block = float(np.mean(vals.var(axis=1, ddof=1))) / nb if nb > 1 else 0.0
    out = {
        "value": float(vals.mean()),
        "stderr": float(math.sqrt(var_seed + var_block)),
        "dof": max(seeds - 1, 1),
        "seed_estimates": per_seed.tolist(),
        "blocks": nb,
        "batch": batch,
        "train_size": int(tr.size),
        "val_size": int(nva),
        "eval_size": int(ev.size),
        "critic": critic,
        "steps": steps,
        "eval_every": eval_every,
        "best_step": np.asarray(best_step).tolist(),
        "val_curve": np.nan_to_num(np.asarray(curve, np.float64), neginf=np.nan).mean(0).tolist(),
        "diverged_seeds": diverged,
    }
    if estimator == "infonce":
        out["upper_limit"] = float(np.log(batch))
    return out
