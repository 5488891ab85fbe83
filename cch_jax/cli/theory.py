"""`cch theory`: the closed-form verdicts and risks for one Gaussian model."""

from __future__ import annotations

import numpy as np

import theory
from cch_jax.cli import common


def register(sub) -> None:
    p = sub.add_parser(
        "theory",
        help="exact risks, λ*, λmax, MIs and verdicts for a Gaussian model",
        description=(
            "Closed-form expected risk of the distilled linear student (docs/theory.md) for "
            "(x1, x2, y) ~ N(0, COV), COV ordered [x1, x2, y]."
        ),
    )
    common.add_model_options(p)
    p.add_argument(
        "--lam",
        type=float,
        nargs="+",
        default=[0.0, 0.2, 0.5, 1.0, 2.0],
        help="KD weights λ >= 0 at which to tabulate R(λ) (default 0 0.2 0.5 1 2)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def summarise(model: theory.JointGaussian, w1, n: int, lams) -> dict:
    """Every closed-form quantity `cch theory` reports, as plain Python values."""
    a = theory.theorem1_assumptions(model, w1)
    return {
        "p1": model.p1,
        "p2": model.p2,
        "n": n,
        "lam": [float(x) for x in lams],
        "risk": np.asarray(theory.expected_risk(model, w1, np.asarray(lams), n)).tolist(),
        "baseline_risk": float(theory.baseline_risk(model, n)),
        "risk_slope_at_zero": float(theory.risk_slope_at_zero(model, w1, n)),
        "lambda_star": float(theory.optimal_lambda(model, w1, n)),
        "lambda_max": float(theory.helpful_lambda_max(model, w1, n)),
        "risk_min": float(theory.min_risk(model, w1, n)),
        "mi_teacher_student": float(theory.mi_teacher_student(model, w1)),
        "mi_student_label": float(theory.mi_student_label(model)),
        "cch_holds": bool(theory.cch_holds(model, w1)),
        "kd_helps_small_lambda": bool(theory.kd_helps_small_lambda(model, w1)),
        "assumptions": {"bounded": bool(a.bounded), "aligned": bool(a.aligned)},
    }


def format_table(r: dict) -> str:
    cch = "holds" if r["cch_holds"] else "fails"
    lines = [
        f"Gaussian model: p1={r['p1']}, p2={r['p2']}, n={r['n']}",
        f"  R0 (no KD)            {r['baseline_risk']:.6g}",
        f"  dR/dλ at 0            {r['risk_slope_at_zero']:.6g}",
        f"  λ* / R_min            {r['lambda_star']:.6g} / {r['risk_min']:.6g}",
        f"  helpful λ interval    (0, {r['lambda_max']:.6g})",
        f"  I(t; s)  [nats]       {r['mi_teacher_student']:.6g}",
        f"  I(s; y)  [nats]       {r['mi_student_label']:.6g}",
        f"  CCH verdict           {cch}  (CCH predicts 'helps' iff I(t;s) > I(s;y))",
        f"  exact verdict         {'KD helps' if r['kd_helps_small_lambda'] else 'KD hurts'}"
        "  for small λ (c < σ²)",
        f"  Theorem 1 assumptions bounded={r['assumptions']['bounded']}, "
        f"aligned={r['assumptions']['aligned']}",
        "",
        f"  {'λ':>10}  {'R(λ)':>12}  {'R(λ) − R0':>12}  KD helps?",
    ]
    for lam, risk in zip(r["lam"], r["risk"], strict=True):
        gain = risk - r["baseline_risk"]
        same = abs(gain) <= 1e-12 * abs(r["baseline_risk"])  # λ = 0 up to rounding
        verdict = "—" if same else ("yes" if gain < 0 else "no")
        lines.append(f"  {lam:>10.4g}  {risk:>12.6g}  {gain:>+12.4g}  {verdict}")
    return "\n".join(lines)


def run(args) -> int:
    with common.options_in_errors(**common.MODEL_OPTIONS, lam="--lam"):
        model, n = common.read_model(args)
        result = summarise(model, common.read_teacher(args, model), n, args.lam)
    if args.json:
        common.print_json(result)
    else:
        print(format_table(result))
    return 0
