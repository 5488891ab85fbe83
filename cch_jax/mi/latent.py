"""Latent MI (Gowri et al. 2024, "Approximating mutual information of high-dimensional variables
using learned representations"): compress X and Y with paired, cross-reconstructing autoencoders,
then run KSG on the held-out half of the latent codes.

Model (our own Flax implementation of the idea): encoders z_x = E_x(x), z_y = E_y(y) of dimension
`latent_dim`; decoders reconstruct each input from its own code and cross-decoders predict the other
variable from it, loss = mse(D_x(z_x), x) + mse(D_y(z_y), y) + λ [mse(C_xy(z_x), y) + mse(C_yx(z_y), x)].
The cross terms push the codes to keep the information X and Y share. Inputs are first mapped to
normal scores coordinate-wise (`transform="rank"`, see neural._normal_scores; MI-preserving, tames
heavy tails) or z-scored (`"standard"`). `seeds` autoencoders are
trained at once with vmap on a random half; KSG (k neighbours) is computed on the codes of the other
half for each seed. Estimate: mean over seeds. Stderr: se² = var_seeds / S + mean_seeds(se_ksg²),
se_ksg from disjoint subsets as for `ksg`. By the data-processing inequality the latent MI is at most
I(X; Y) (up to KSG's own error), so it is biased low when the codes lose shared information.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cch_jax.mi.knn import ksg
from cch_jax.mi.neural import MLP, _normal_scores


class PairedAutoencoder(nn.Module):
    dx: int
    dy: int
    latent_dim: int = 8
    hidden: int = 64

    def setup(self):
        h = (self.hidden, self.hidden)
        self.enc_x = MLP(h + (self.latent_dim,))
        self.enc_y = MLP(h + (self.latent_dim,))
        self.dec_x = MLP(h + (self.dx,))
        self.dec_y = MLP(h + (self.dy,))
        self.cross_xy = MLP(h + (self.dy,))
        self.cross_yx = MLP(h + (self.dx,))

    def encode(self, x, y):
        return self.enc_x(x), self.enc_y(y)

    def __call__(self, x, y, cross_weight=1.0):
        zx, zy = self.encode(x, y)
        rec = jnp.mean((self.dec_x(zx) - x) ** 2) + jnp.mean((self.dec_y(zy) - y) ** 2)
        cross = jnp.mean((self.cross_xy(zx) - y) ** 2) + jnp.mean((self.cross_yx(zy) - x) ** 2)
        return rec + cross_weight * cross


@functools.partial(jax.jit, static_argnames=("latent_dim", "hidden", "steps", "batch"))
def _fit_encode(keys, xtr, ytr, xev, yev, lr, cross_weight, *, latent_dim, hidden, steps, batch):
    model = PairedAutoencoder(xtr.shape[1], ytr.shape[1], latent_dim, hidden)
    opt = optax.adam(lr)
    ntr = xtr.shape[0]

    def train_one(key):
        k_init, k_loop = jax.random.split(key)
        params = model.init(k_init, xtr[:2], ytr[:2])
        state = opt.init(params)

        def step(carry, k):
            params, state = carry
            idx = jax.random.choice(k, ntr, (batch,), replace=False)
            grads = jax.grad(lambda p: model.apply(p, xtr[idx], ytr[idx], cross_weight))(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, state), jax.random.split(k_loop, steps))
        return model.apply(params, xev, yev, method=PairedAutoencoder.encode)

    return jax.vmap(train_one)(keys)


def latent_mi(
    x: np.ndarray,
    y: np.ndarray,
    *,
    key,
    latent_dim: int = 8,
    k: int = 3,
    seeds: int = 3,
    steps: int = 1000,
    batch: int = 128,
    lr: float = 1e-3,
    hidden: int = 64,
    cross_weight: float = 1.0,
    subsets: int = 10,
    tile: int = 128,
    transform: str = "rank",
) -> dict:
    """Latent MI estimate (nats) with seed + disjoint-subset stderr; see the module docstring.

    The autoencoders train in float32 whatever `jax_enable_x64` says (their codes then go to KSG).
    """
    if not isinstance(latent_dim, int | np.integer) or latent_dim < 1:
        raise ValueError(f"latent_dim={latent_dim!r} must be a positive integer")
    if transform not in ("rank", "standard"):
        raise ValueError(f"transform={transform!r} must be 'rank' or 'standard'")
    n = x.shape[0]
    k_split, k_seeds, k_sub = jax.random.split(key, 3)
    perm = np.asarray(jax.random.permutation(k_split, n))
    half = n // 2
    tr, ev = perm[:half], perm[half:]
    batch = int(min(batch, half))
    dt = jnp.float32  # as the neural critics (neural.py): float64 only costs time here
    if transform == "rank":  # coordinate-wise increasing map: the MI is unchanged
        xs, ys = _normal_scores(x[tr], x), _normal_scores(y[tr], y)
    else:
        xs = (x - x[tr].mean(0)) / (x[tr].std(0) + 1e-12)
        ys = (y - y[tr].mean(0)) / (y[tr].std(0) + 1e-12)
    zx, zy = _fit_encode(
        jax.random.split(k_seeds, seeds),
        jnp.asarray(xs[tr], dt),
        jnp.asarray(ys[tr], dt),
        jnp.asarray(xs[ev], dt),
        jnp.asarray(ys[ev], dt),
        lr,
        cross_weight,
        latent_dim=latent_dim,
        hidden=hidden,
        steps=steps,
        batch=batch,
    )
    zx, zy = np.asarray(zx, np.float64), np.asarray(zy, np.float64)
    ne = zx.shape[1]
    m = int(max(2, min(subsets, ne // (k + 1))))
    groups = np.empty(ne, np.int32)
    groups[np.asarray(jax.random.permutation(k_sub, ne))] = np.arange(ne) % m
    values, sub_var, zero = [], [], 0
    for s in range(seeds):
        # A code coordinate that is constant (a constant input, a dead unit) carries no
        # information: drop it. (Jittering it instead, as before, made it a full-scale random
        # coordinate once KSG standardised it.) With every coordinate constant, the MI is 0.
        a, b = zx[s][:, zx[s].std(0) > 0], zy[s][:, zy[s].std(0) > 0]
        if a.shape[1] == 0 or b.shape[1] == 0:
            values.append(0.0)
            sub_var.append(0.0)
            continue
        v, z0 = ksg(a, b, k=k, tile=tile)
        sub, _ = ksg(a, b, k=k, tile=tile, groups=groups)
        values.append(float(v[0]))
        sub_var.append(float(np.var(sub, ddof=1)) / m)
        zero += z0
    values = np.asarray(values)
    var_seed = values.var(ddof=1) / seeds if seeds > 1 else 0.0
    return {
        "value": float(values.mean()),
        "stderr": float(math.sqrt(var_seed + np.mean(sub_var))),
        "dof": max(min(seeds - 1, m - 1), 1),
        "seed_estimates": values.tolist(),
        "latent_dim": latent_dim,
        "k": k,
        "train_size": int(half),
        "eval_size": int(ne),
        "zero_eps": zero,
        "steps": steps,
    }
