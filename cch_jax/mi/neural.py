"""Variational (neural) MI lower bounds with Flax critics: MINE (Donsker–Varadhan), InfoNCE, NWJ.

A critic f(x, y) scores every pair of a minibatch at once: S[i, j] = f(x_i, y_j); the diagonal holds
joint samples and the off-diagonal product-of-marginals samples. With B the batch size:

    DV / MINE   I ≥ mean_i S_ii − log mean_{i≠j} exp S_ij
    NWJ         I ≥ mean_i S_ii − mean_{i≠j} exp(S_ij − 1)
    InfoNCE     I ≥ mean_i [S_ii − log Σ_j exp S_ij] + log B     (never exceeds log B)

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
        if self.kind == "separable":
            gx = MLP(widths + (self.embed,), name="g")(x)
            hy = MLP(widths + (self.embed,), name="h")(y)
            return gx @ hy.T
        b = x.shape[0]
        pairs = jnp.concatenate(
            [
                jnp.broadcast_to(x[:, None, :], (b, b, x.shape[1])),
                jnp.broadcast_to(y[None, :, :], (b, b, y.shape[1])),
            ],
            axis=-1,
        )
        return MLP(widths + (1,), name="f")(pairs)[..., 0]


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


@functools.partial(jax.jit, static_argnames=("hidden", "layers", "embed", "kind", "steps", "batch"))
def _fit_and_eval(
    keys, xtr, ytr, xev, yev, lr, ema, which, *, hidden, layers, embed, kind, steps, batch
):
    """Train len(keys) critics (vmap) and return the held-out bound per seed and block (S, nb).

    `which` indexes _ORDER (traced, so MINE, InfoNCE and NWJ share one compiled program).
    """
    critic = Critic(hidden=hidden, layers=layers, embed=embed, kind=kind)
    opt = optax.adam(lr)
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

        init = (params, state, jnp.zeros((), xtr.dtype))
        (params, _, _), _ = jax.lax.scan(step, init, jax.random.split(k_loop, steps))
        nb = xev.shape[0] // batch
        xb = xev[: nb * batch].reshape(nb, batch, -1)
        yb = yev[: nb * batch].reshape(nb, batch, -1)
        return jax.lax.map(lambda a: bound(critic.apply(params, a[0], a[1])), (xb, yb))

    return jax.vmap(train_one)(keys)


def neural_mi(
    x: np.ndarray,
    y: np.ndarray,
    *,
    key,
    estimator: str = "infonce",
    seeds: int = 4,
    steps: int = 500,
    batch: int = 128,
    lr: float = 1e-3,
    hidden: int = 64,
    layers: int = 2,
    embed: int = 32,
    critic: str = "separable",
    ema: float = 0.01,
) -> dict:
    """Train `seeds` critics on a random half, evaluate the bound on the other half (nats)."""
    if estimator not in BOUNDS:
        raise ValueError(f"estimator={estimator!r} must be one of {sorted(BOUNDS)}")
    if critic not in ("separable", "joint"):
        raise ValueError(f"critic={critic!r} must be 'separable' or 'joint'")
    n = x.shape[0]
    k_split, k_seeds = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(k_split, n))
    half = n // 2
    tr, ev = perm[:half], perm[half:]
    batch = int(min(batch, half // 2))
    if batch < 4:
        raise ValueError(f"n={n} is too small for a neural estimator: batch {batch} < 4")
    dt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-12
    mv, sv = y[tr].mean(0), y[tr].std(0) + 1e-12
    xs, ys = (x - mu) / sd, (y - mv) / sv
    vals = _fit_and_eval(
        jax.random.split(k_seeds, seeds),
        jnp.asarray(xs[tr], dt),
        jnp.asarray(ys[tr], dt),
        jnp.asarray(xs[ev], dt),
        jnp.asarray(ys[ev], dt),
        lr,
        ema,
        _ORDER.index(estimator),
        hidden=hidden,
        layers=layers,
        embed=embed,
        kind=critic,
        steps=steps,
        batch=batch,
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
        "train_size": int(half),
        "eval_size": int(n - half),
        "critic": critic,
        "steps": steps,
        "diverged_seeds": diverged,
    }
    if estimator == "infonce":
        out["upper_limit"] = float(np.log(batch))
    return out
