"""`cch verify`: train many distilled linear students on fresh Gaussian training sets and compare
their mean test risk with the closed-form expected risk R(λ) (docs/theory.md eq. 7).

Per λ: S students (seeds 0…S−1, each its own training set of n samples), each trained by
gradient descent (Adam, cosine-decayed learning rate, full batch) on
mean (y − wᵀx2)² + λ·mean (wᵀx2 − t)², scored by its exact population risk
R(w) = σ² + (w − w*)ᵀΣ22(w − w*) (eq. 5). z = (mean − R(λ))/SEM; "agrees" when every |z| < 4, no
student diverged and every student reached its closed-form ŵ(λ) (eq. 3; else "not converged").
Exit status 0 only for "agrees".
"""

from __future__ import annotations

import jax
import numpy as np

from cch_jax.cli import common

Z_TOLERANCE = 4.0
# A student whose weights are this far (relative) from its closed-form ŵ(λ) has not converged,
# and its risk is not the one the theory describes: warn instead of pretending.
CONVERGENCE_RTOL = 1e-3
OPTIONS = dict(
    common.MODEL_OPTIONS,
    lam="--lam",
    seeds="--seeds",
    steps="--steps",
    learning_rate="--lr",
    chunk_size="--chunk-size",
)


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="train KD students on Gaussian data and compare with the exact expected risk",
        description=__doc__.split("\n\n")[0],
    )
    common.add_model_options(p)
    p.add_argument("--lam", type=float, nargs="+", default=[0.0, 0.5, 2.0], help="KD weights λ")
    p.add_argument("--seeds", type=int, default=1000, help="students (training sets) per λ")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per student")
    p.add_argument("--lr", type=float, default=0.1, help="Adam peak learning rate")
    p.add_argument(
        "--chunk-size",
        type=int,
        help="students per compiled call (default: as many as fit in 2 GiB)",
    )
    p.add_argument(
        "--float32", action="store_true", help="train in float32 (default float64 on CPU)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def report(sim, *, model, n, seeds, steps, lr) -> dict:
    """The verdict and the per-λ rows of a `cch_jax.simulate.LinearKD`, as plain values."""
    results = [
        {
            "lam": float(lam),
            "theory": float(sim.theory_risk[i]),
            "mean": float(sim.mean[i]),
            "sem": float(sim.sem[i]),
            "z": float(sim.z[i]),
            "students": int(sim.count[i]),
            "diverged": int(sim.diverged[i].sum()),
            "max_rel_weight_error": (
                float(np.nanmax(sim.weight_error[i])) if sim.count[i] else float("nan")
            ),
        }
        for i, lam in enumerate(sim.lams)
    ]
    within = all(abs(r["z"]) < Z_TOLERANCE and r["diverged"] == 0 for r in results)
    converged = all(r["max_rel_weight_error"] < CONVERGENCE_RTOL for r in results)
    # Unconverged students are not the estimator the theory describes: no "agrees" for them.
    agrees = within and converged
    return {
        "p1": model.p1,
        "p2": model.p2,
        "n": n,
        "seeds": seeds,
        "steps": steps,
        "lr": lr,
        "optimizer": "adam (cosine decay, full batch)",
        "dtype": str(sim.risk.dtype),
        "z_tolerance": Z_TOLERANCE,
        "results": results,
        "agrees": agrees,
        "converged": converged,
        "verdict": "agrees" if agrees else ("disagrees" if not within else "not converged"),
        "train_seconds": sim.seconds,
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
    from cch_jax.simulate import simulate_linear_kd

    # float64 unless --float32 (scoped: the CPU default, theory-grade precision).
    with (
        jax.enable_x64(jax.config.jax_enable_x64 or not args.float32),
        common.options_in_errors(**OPTIONS),
    ):
        model, n = common.read_model(args)
        sim = simulate_linear_kd(
            model,
            common.read_teacher(args, model),
            n,
            args.lam,
            args.seeds,
            steps=args.steps,
            learning_rate=args.lr,
            chunk_size=args.chunk_size,
        )
    result = report(sim, model=model, n=n, seeds=args.seeds, steps=args.steps, lr=args.lr)
    if args.json:
        common.print_json(result)
    else:
        print(format_report(result))
    return 0 if result["agrees"] else 1
