"""`cch verify`: train many distilled linear students on fresh Gaussian training sets and compare
their mean test risk with the closed-form expected risk R(λ) of design.md §2.

Per λ: S students (seeds 0…S−1, each its own training set of n samples), each trained by
gradient descent (Adam, cosine-decayed learning rate, full batch) on
mean (y − wᵀx2)² + λ·mean (wᵀx2 − t)², scored by its exact population risk
R(w) = σy² − 2wᵀΣ2y + wᵀΣ22w. z = (mean − R_theory)/SEM; "agrees" when every |z| < 4, no
student diverged and every student reached its closed-form ŵ(λ) (else "not converged").
Exit status 0 only for "agrees".
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import theory
from cch_jax.cli import UserError
from cch_jax.cli.common import load_array, print_json

Z_TOLERANCE = 4.0
# A student whose weights are this far (relative) from its closed-form ŵ(λ) has not converged,
# and its risk is not the one the theory describes: warn instead of pretending.
CONVERGENCE_RTOL = 1e-3


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="train KD students on Gaussian data and compare with the exact expected risk",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--cov", help="covariance .npy (or .npz/.csv), ordered [x1, x2, y]")
    p.add_argument("--p1", type=int, help="teacher dimension p1 (p2 = size − p1 − 1)")
    p.add_argument("--w1", help="teacher weights .npy of shape (p1,); default Σ11⁻¹Σ1y")
    p.add_argument("--n", type=int, help="training-set size n (> p2 + 1)")
    p.add_argument("--lam", type=float, nargs="+", default=[0.0, 0.5, 2.0], help="KD weights λ")
    p.add_argument("--seeds", type=int, default=1000, help="students (training sets) per λ")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per student")
    p.add_argument("--lr", type=float, default=0.1, help="Adam peak learning rate")
    p.add_argument("--chunk-size", type=int, default=8192, help="students per compiled call")
    p.add_argument(
        "--float32", action="store_true", help="train in float32 (default float64 on CPU)"
    )
    p.add_argument("--example", action="store_true", help="use the built-in example model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def read_model(args) -> tuple[theory.JointGaussian, int]:
    """The Gaussian model and n from --cov/--p1/--n (or --example), validated."""
    if args.example:
        from cch_jax.cli.theory import example_model

        model, n = example_model()
        n = args.n if args.n is not None else n
    else:
        missing = [f"--{a}" for a in ("cov", "p1", "n") if getattr(args, a) is None]
        if missing:
            raise UserError(f"{', '.join(missing)} required (or use --example)")
        cov = load_array(args.cov, name="--cov")
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise UserError(f"--cov: array of shape {cov.shape} must be a square matrix")
        p2 = cov.shape[0] - args.p1 - 1
        if args.p1 < 1 or p2 < 1:
            raise UserError(
                f"--p1={args.p1} must leave p2 = size − p1 − 1 >= 1 (size {cov.shape[0]})"
            )
        try:
            model = theory.JointGaussian(cov, args.p1, p2)
        except ValueError as err:
            raise UserError(f"--cov: {err}") from None
        n = args.n
    if n <= model.p2 + 1:
        raise UserError(
            f"--n={n} must exceed p2+1={model.p2 + 1}: the expected risk is infinite "
            "(E[(X2ᵀX2)⁻¹] diverges)"
        )
    return model, n


def check_args(args) -> None:
    for lam in args.lam:
        if not (lam >= 0 and np.isfinite(lam)):
            raise UserError(f"--lam={lam} must be >= 0 and finite (the KD weight λ ∈ [0, ∞))")
    if args.seeds < 2:
        raise UserError(f"--seeds={args.seeds} must be >= 2 (the SEM needs two students)")
    if args.steps < 1:
        raise UserError(f"--steps={args.steps} must be >= 1")
    if not (args.lr > 0 and np.isfinite(args.lr)):
        raise UserError(f"--lr={args.lr} must be > 0 and finite")
    if args.chunk_size < 1:
        raise UserError(f"--chunk-size={args.chunk_size} must be >= 1")


def verify(model, w1, n, lams, seeds, *, steps=2000, lr=0.1, chunk_size=8192) -> dict:
    """Train `seeds` students per λ; per λ return theory risk, mean, SEM, z and diagnostics."""
    from cch_jax.results import seed_stats
    from cch_jax.scan import run_scan
    from cch_jax.train import GaussianSource, TrainConfig, closed_form_weights
    from cch_jax.train import gaussian_training_set as training_set

    source = GaussianSource(model, n, w1=w1)
    config = TrainConfig(
        task="regression", data=source, model="linear", steps=steps, eval_every=steps,
        optimizer="adam", schedule="cosine",
    )  # fmt: skip
    lams = np.asarray(lams, dtype=np.float64)
    seed_values = np.arange(seeds)
    start = time.perf_counter()
    scan = run_scan(
        config, lams, [1.0], seed_values, learning_rates=[lr], chunk_size=chunk_size
    ).sel(temperature=1.0, learning_rate=lr)
    seconds = time.perf_counter() - start
    final = np.asarray(scan.final_test)  # (lam, seed)
    diverged = np.asarray(scan.diverged)
    mean, sem, count = seed_stats(final, diverged, axis=1)
    risk = np.asarray(theory.expected_risk(model, source.w1, lams, n))

    # Optimisation check: distance of each student from the exact minimiser of its own loss.
    @jax.jit  # one program: eager vmaps would compile op by op
    def closed_form(seeds, lams):
        sets = jax.vmap(lambda s: training_set(source, jax.random.key(s)))(seeds)
        one_lam = lambda lam: jax.vmap(lambda x2, y, t: closed_form_weights(x2, y, t, lam))(*sets)
        return jax.vmap(one_lam)(lams)  # (lam, seed, p2)

    w_hat = np.asarray(
        closed_form(jnp.asarray(seed_values, jnp.int32), jnp.asarray(lams, jnp.result_type(float)))
    )
    w = np.asarray(scan.params["params"]["head"]["kernel"][..., 0])  # linear_weights, batched
    rel = np.linalg.norm(w - w_hat, axis=-1) / np.linalg.norm(w_hat, axis=-1)
    rel = np.where(diverged, np.nan, rel)

    results = []
    for i, lam in enumerate(lams):
        z = (mean[i] - risk[i]) / sem[i]
        results.append(
            {
                "lam": float(lam),
                "theory": float(risk[i]),
                "mean": float(mean[i]),
                "sem": float(sem[i]),
                "z": float(z),
                "students": int(count[i]),
                "diverged": int(diverged[i].sum()),
                "max_rel_weight_error": float(np.nanmax(rel[i])) if count[i] else float("nan"),
            }
        )
    within = all(abs(r["z"]) < Z_TOLERANCE and r["diverged"] == 0 for r in results)
    converged = all(r["max_rel_weight_error"] < CONVERGENCE_RTOL for r in results)
    # Unconverged students are not the estimator the theory describes: no "agrees" for them.
    agrees = within and converged
    verdict = "agrees" if agrees else ("disagrees" if not within else "not converged")
    return {
        "p1": model.p1,
        "p2": model.p2,
        "n": n,
        "seeds": seeds,
        "steps": steps,
        "lr": lr,
        "optimizer": "adam (cosine decay, full batch)",
        "dtype": str(jnp.result_type(float)),
        "z_tolerance": Z_TOLERANCE,
        "results": results,
        "agrees": agrees,
        "converged": converged,
        "verdict": verdict,
        "train_seconds": seconds,
    }


def format_report(r: dict) -> str:
    lines = [
        f"Gaussian model: p1={r['p1']}, p2={r['p2']}, n={r['n']}; {r['seeds']} students per λ, "
        f"{r['optimizer']}, {r['steps']} steps, lr {r['lr']:g}, {r['dtype']}",
        f"  {'λ':>8}  {'theory R(λ)':>12}  {'mean':>12}  {'SEM':>10}  {'z':>7}  "
        f"{'diverged':>8}  {'max |w−ŵ|/|ŵ|':>14}",
    ]
    for x in r["results"]:
        lines.append(
            f"  {x['lam']:>8.4g}  {x['theory']:>12.6g}  {x['mean']:>12.6g}  {x['sem']:>10.3g}  "
            f"{x['z']:>+7.2f}  {x['diverged']:>8d}  {x['max_rel_weight_error']:>14.2e}"
        )
    n_div = sum(x["diverged"] for x in r["results"])
    if n_div:
        lines.append(
            f"  WARNING: {n_div} students diverged (NaN/inf loss); excluded from the means"
        )
    if not r["converged"]:
        lines.append(
            f"  WARNING: some students are > {CONVERGENCE_RTOL:g} (relative) from their "
            "closed-form ŵ(λ): raise --steps or change --lr"
        )
    bad = [x["lam"] for x in r["results"] if not abs(x["z"]) < r["z_tolerance"] or x["diverged"]]
    verdict = {
        "agrees": f"verdict: agrees (all |z| < {r['z_tolerance']:g}, students converged)",
        "disagrees": f"verdict: disagrees (|z| >= {r['z_tolerance']:g} or diverged at λ = {bad})",
        "not converged": "verdict: not converged (|z| < 4, but the students are not at ŵ(λ))",
    }[r["verdict"]]
    lines.append(f"{verdict}; training took {r['train_seconds']:.1f} s")
    return "\n".join(lines)


def run(args) -> int:
    check_args(args)
    model, n = read_model(args)
    if args.w1:
        w1 = load_array(args.w1, name="--w1")
        if w1.shape != (model.p1,):
            raise UserError(f"--w1: array of shape {w1.shape} must have shape (p1,)=({model.p1},)")
    else:
        w1 = theory.optimal_teacher(model)
    kwargs = dict(steps=args.steps, lr=args.lr, chunk_size=args.chunk_size)
    if args.float32 or jax.config.jax_enable_x64:
        result = verify(model, w1, n, args.lam, args.seeds, **kwargs)
    else:
        with jax.enable_x64(True):  # scoped: the CPU default, theory-grade precision
            result = verify(model, w1, n, args.lam, args.seeds, **kwargs)
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0 if result["agrees"] else 1
