"""`cch predict`: will distilling this teacher help this student? The KD slope at λ = 0 and the
probe-KD curve, from the no-KD student's features alone (docs/predict.md)."""

from __future__ import annotations

import textwrap

from cch_jax.cli.common import load_array, options_in_errors, print_json

OPTIONS = {
    "features": "--student-features",
    "labels": "--labels",
    "teacher": "--teacher-out",
    "temperature": "--temperature",
    "folds": "--folds",
    "ridge": "--ridge",
    "lams": "--lams",
    "bootstrap": "--bootstrap",
    "seed": "--seed",
    "steps": "--steps",
}


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict whether (and how much) KD helps, from the no-KD student's features",
        description=(
            "Fit a probe on the no-KD student's features H2 (linear for regression targets, "
            "multinomial logistic for class labels), cross-fitted over folds, and compute the "
            "first-order effect of distilling the teacher into it: the slope dR/dλ at λ = 0 of "
            "the held-out risk, by the implicit function theorem (Hessian-vector products and "
            "conjugate gradients), with a bootstrap interval over rows and a verdict (kd-helps: "
            "the whole interval is below 0). Also the probe-KD curve: probes refitted at each λ "
            "of a grid, their held-out risk, the best λ and the predicted gain. The KD loss is "
            "the engine's: regression label + λ·(f − t)²; classification (1 − λ)·CE + "
            "λ·T²·KL(softmax(t/T) ‖ softmax(s/T)). Give held-out rows (features the student was "
            "not trained on), as for `cch check`."
        ),
    )
    p.add_argument(
        "--teacher-out",
        required=True,
        metavar="T",
        help="teacher outputs (n,) for regression, or logits (n, C) for classification",
    )
    p.add_argument(
        "--student-features", required=True, metavar="H2", help="no-KD student features (n, d)"
    )
    p.add_argument(
        "--labels", required=True, metavar="Y", help="targets (n,), or class labels 0..C-1"
    )
    p.add_argument("--key", help="array name inside .npz files")
    p.add_argument(
        "--temperature", type=float, default=1.0, help="KD temperature T (classification; 1)"
    )
    p.add_argument(
        "--lams",
        type=float,
        nargs="+",
        help="λ grid of the curve (default: 0.05 … 5 regression, 0.05 … 0.9 classification)",
    )
    p.add_argument("--no-curve", action="store_true", help="the slope only (faster)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument(
        "--ridge",
        type=float,
        default=1e-3,
        help="ridge α·‖W‖² of the probe on z-scored features (default 1e-3)",
    )
    p.add_argument(
        "--steps", type=int, default=300, help="most L-BFGS steps per logistic probe (300)"
    )
    p.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap resamples of the rows (2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="folds and bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


EXPLAIN = {
    "kd-helps": (
        "A little distillation lowers the probe's held-out risk: the slope's whole interval is "
        "below 0."
    ),
    "kd-hurts": (
        "A little distillation raises the probe's held-out risk: the slope's whole interval is "
        "above 0."
    ),
    "inconclusive": (
        "The slope's interval contains 0: these rows cannot tell whether a little distillation "
        "helps or hurts."
    ),
    "unsolved": (
        "The slope could not be computed reliably (above), so there is no verdict on it; the "
        "curve, which needs no Hessian solve, still stands."
    ),
}

CAVEAT = (
    "What this predicts: the effect of KD on a probe (a linear or logistic model) on the frozen "
    "features, measured as held-out squared error or cross-entropy, to first order in λ (the "
    "slope) and on the λ grid (the curve). It is exact in expectation for the Gaussian linear "
    "model (docs/predict.md); for a network trained end to end it is a proxy, and accuracy may "
    "move differently from cross-entropy. The interval covers the noise of the held-out rows, "
    "given the fitted probes; the best λ and its gain are chosen on the same rows (optimistic)."
)


def _interval(ci) -> str:
    return f"95% CI {ci[0]:+.4g} to {ci[1]:+.4g}"


def run(args) -> int:
    from cch_jax.predict import CG_RESIDUAL_MAX, predict_probe

    t = load_array(args.teacher_out, name="--teacher-out", key=args.key)
    h = load_array(args.student_features, name="--student-features", key=args.key)
    y = load_array(args.labels, name="--labels", key=args.key)
    with options_in_errors(**OPTIONS):
        res = predict_probe(
            h,
            y,
            t,
            temperature=args.temperature,
            lams=args.lams,
            curve=not args.no_curve,
            folds=args.folds,
            ridge=args.ridge,
            steps=args.steps,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    if args.json:
        print_json(res.to_dict())
        return 0
    s = res.slope
    risk = "mean squared error" if res.task == "regression" else "cross-entropy"
    print(
        f"{res.task} probe on n = {res.n} rows, d = {res.d} features, {res.folds} folds"
        + (f", T = {res.temperature:g}" if res.task == "classification" else "")
    )
    print(f"slope dR/dλ at λ = 0 (held-out {risk}): {s.slope:+.4g}  ({_interval(s.ci)})")
    if not s.cg_converged:
        print(
            f"  CG did not solve the probe's Hessian system (relative residual {s.cg_residual:.2g}"
            f" > {CG_RESIDUAL_MAX:g}): the slope is unreliable and its verdict is inconclusive "
            "(try a larger --ridge)"
        )
    elif s.grad_norm > 1e-3:
        print(
            f"  warning: training gradient {s.grad_norm:.2g}: the probe may not be at its "
            "minimum (try more --steps or a larger --ridge)"
        )
    if res.curve is not None:
        c = res.curve
        print(f"probe-KD curve (held-out {risk}; gain = R(0) − R(λ), > 0: KD helps):")
        for lam, r, g, ci in zip(c.lams, c.risk, c.gain, c.gain_ci, strict=True):
            mark = "  <- best" if lam == c.lam_star else ""
            print(f"  λ = {lam:<6g} R = {r:.5g}  gain {g:+.4g}  ({_interval(ci)}){mark}")
        print(f"best λ on the grid: {c.lam_star:g}, predicted gain {c.best_gain:+.4g}")
    print(f"verdict: {s.verdict}")
    print()
    why = s.verdict if s.cg_converged else "unsolved"
    print(textwrap.fill(EXPLAIN[why] + " " + CAVEAT, width=88))
    return 0
