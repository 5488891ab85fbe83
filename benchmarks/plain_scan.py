"""The best simple alternative to `cch scan`: a plain-JAX script (issue 14's reference).

    python benchmarks/plain_scan.py DATA.npz --lam 0 0.25 0.5 1 --seeds 64 --steps 2000 [--hidden 64 64]

Trains one student per (λ, seed) on the shared training set in DATA.npz (x_train, y_train,
teacher_train, x_test, y_test; the `cch scan` arrays format) by full-batch Adam on
mean (y − f)² + λ·mean (f − t)², all students in one jit(vmap(lax.scan)), and prints the mean
test MSE per λ. Imports only jax, optax and numpy, so its wall time (import, compile, run) is what
a researcher writing it by hand would pay. `benchmarks/scan_vs_plain.py` times it against `cch scan`
on the same work; `benchmarks/scan_throughput.py` uses `plain_train` in-process as its column (d).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax


def plain_train(x, y, t, key, lam, lr, *, hidden: tuple, steps: int):
    """One student (linear if hidden == (), else a relu MLP) trained by `steps` full-batch Adam
    steps on mean (y − f)² + λ·mean (f − t)²; returns (params, predict) with predict(params, x)."""
    widths = (x.shape[1], *hidden, 1)
    keys = jax.random.split(key, len(widths) - 1)
    params = [  # LeCun-normal weights, zero biases (Flax Dense's defaults)
        (jax.random.normal(k, (a, b), x.dtype) / np.sqrt(a), jnp.zeros(b, x.dtype))
        for k, a, b in zip(keys, widths[:-1], widths[1:], strict=True)
    ]
    if not hidden:
        params = [params[0][0]]  # the linear student has no bias

    def loss(params):
        out = predict(params, x, hidden)
        return jnp.mean((y - out) ** 2) + lam * jnp.mean((out - t) ** 2)

    opt = optax.adam(lr)

    def step(state, _):
        params, opt_state = state
        updates, opt_state = opt.update(jax.grad(loss)(params), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[0][0]


def predict(params, x, hidden: tuple):
    """f(x) of `plain_train`'s student: (n, p) -> (n,)."""
    if not hidden:
        return x @ params[0][:, 0]
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    return (x @ params[-1][0] + params[-1][1])[:, 0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="an .npz in the `cch scan` arrays format")
    ap.add_argument("--lam", type=float, nargs="+", required=True)
    ap.add_argument("--seeds", type=int, required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--hidden", type=int, nargs="*", default=[])
    args = ap.parse_args(argv)
    d = np.load(args.data)
    x, y, t = (jnp.asarray(d[k], jnp.float32) for k in ("x_train", "y_train", "teacher_train"))
    hidden = tuple(args.hidden)
    lams = jnp.repeat(jnp.asarray(args.lam, jnp.float32), args.seeds)
    keys = jax.vmap(jax.random.key)(jnp.tile(jnp.arange(args.seeds), len(args.lam)))

    def test_mse(key, lam):
        params = plain_train(x, y, t, key, lam, args.lr, hidden=hidden, steps=args.steps)
        return jnp.mean((d["y_test"] - predict(params, jnp.asarray(d["x_test"]), hidden)) ** 2)

    mse = np.asarray(jax.jit(jax.vmap(test_mse))(keys, lams)).reshape(len(args.lam), args.seeds)
    for lam, row in zip(args.lam, mse, strict=True):
        print(f"λ = {lam:g}: test MSE {row.mean():.5f} ± {row.std(ddof=1) / np.sqrt(len(row)):.5f}")


if __name__ == "__main__":
    main()
