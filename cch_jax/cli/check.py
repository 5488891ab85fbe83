"""`cch check`: is the teacher modality worth distilling from? CCH with honest uncertainty."""

from __future__ import annotations

import textwrap

import numpy as np

from cch_jax.cli.common import load_array, print_json
from cch_jax.mi.check import FAMILIES


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="does the Cross-modal Complementarity Hypothesis hold for my data?",
        description=(
            "Estimate I(H1; H2) (teacher vs student representations), I(H2; Y) (student vs "
            "labels) and their gap I(H1; H2) - I(H2; Y), each corrected for the estimator's "
            "finite-sample bias and with a 95%% interval that includes the uncertainty of that "
            "correction (a parametric bootstrap on a surrogate fitted to the data's normal "
            "scores, whose MIs are known; see docs/check_calibration.md). Two estimator families "
            "(gc: Gaussian-copula log-det; knn: KSG / Ross on normal scores) must agree: the "
            "verdict is cch-holds or cch-fails only when every family's gap interval is on the "
            "same side of 0 and n and the dimensions are inside the calibrated range; otherwise "
            "inconclusive. Integer labels are class labels."
        ),
    )
    p.add_argument("--teacher", required=True, metavar="H1", help="teacher representation (n, d1)")
    p.add_argument("--student", required=True, metavar="H2", help="student representation (n, d2)")
    p.add_argument("--labels", required=True, metavar="Y", help="labels (n,) or targets (n, dy)")
    p.add_argument("--key", help="array name inside .npz files")
    p.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES,
        default=list(FAMILIES),
        help="estimator families that must agree (default: gc knn)",
    )
    p.add_argument(
        "--surrogates",
        type=int,
        default=40,
        metavar="B",
        help="surrogate data sets for the gc family's bias and spread (default 40; knn uses 16)",
    )
    p.add_argument(
        "--knn-budget",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="skip the knn family when its predicted time exceeds this (default 20)",
    )
    p.add_argument("--k", type=int, default=3, help="neighbours for the knn family (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--no-normal-scores",
        action="store_true",
        help="standardise columns instead of taking normal scores (loses invariance to monotone maps)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _as_labels(y: np.ndarray) -> tuple[np.ndarray, bool]:
    """Integer-valued single-column Y (integer dtype, or integral floats from a CSV) → labels."""
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        return np.asarray(y), False
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        return a.astype(np.int64), True
    f = a.astype(np.float64)
    if np.all(np.isfinite(f)) and np.all(f == np.round(f)) and np.unique(f).size <= 1000:
        return f.astype(np.int64), True
    return np.asarray(y), False


EXPLAIN = {
    "cch-holds": (
        "The teacher shares more information with the student's representation than the student "
        "has about the label (every family's bias-corrected 95% interval of the gap is above 0): "
        "the Cross-modal Complementarity Hypothesis holds, so distillation is predicted to help."
    ),
    "cch-fails": (
        "The student's representation already carries more information about the label than "
        "it shares with the teacher (every family's bias-corrected 95% interval of the gap is below "
        "0): CCH fails."
    ),
    "inconclusive": (
        "The data cannot tell whether CCH holds: a gap interval contains 0, the estimator "
        "families disagree, or n and the dimensions are outside the range where the check was "
        "calibrated. More samples (or fewer dimensions) would be needed."
    ),
}

CAVEAT = (
    "What CCH does and does not promise: in the joint Gaussian model, CCH together with a bounded, "
    "aligned teacher (Var(t) <= Var(y), Cov(t, s) > 0) is sufficient for distillation with a small "
    "weight λ to lower the student's risk, but it is far from necessary: when CCH fails, small-λ KD "
    "still helps in most random Gaussian models. So 'cch-fails' does not mean KD will hurt; "
    "try a small λ and validate. The intervals include the estimators' bias as measured on a "
    "surrogate fitted to your data; bias the surrogate does not share (strongly non-Gaussian "
    "dependence) is guarded against only by requiring two estimator families to agree."
)


def verdict_of(ci: tuple[float, float]) -> str:
    """The side of 0 an interval lies on: cch-holds, cch-fails or inconclusive."""
    if ci[0] > 0:
        return "cch-holds"
    if ci[1] < 0:
        return "cch-fails"
    return "inconclusive"


def run(args) -> int:
    from cch_jax.mi.check import check_cch

    h1 = load_array(args.teacher, name="--teacher", key=args.key)
    h2 = load_array(args.student, name="--student", key=args.key)
    y, is_lab = _as_labels(load_array(args.labels, name="--labels", key=args.key))
    res = check_cch(
        h1,
        h2,
        y,
        labels=is_lab,
        seed=args.seed,
        families=tuple(dict.fromkeys(args.families)),
        surrogates=args.surrogates,
        knn_budget_s=args.knn_budget,
        k=args.k,
        normal_scores=not args.no_normal_scores,
        names=("--teacher", "--student", "--labels"),
    )
    if args.json:
        print_json(res.to_dict())
        return 0
    head = res.families[0]
    for label, key in (("I(H1; H2)", "mi_teacher_student"), ("I(H2; Y) ", "mi_student_label")):
        e = head[key]
        print(
            f"{label} = {e['value']:.4f} nats  (95% CI {e['ci'][0]:.4f} to {e['ci'][1]:.4f}; "
            f"{head['family']}, bias-corrected: raw {e['raw']:.4f}, bias {e['bias']:+.4f})"
        )
    lo, hi = res.gap_ci
    print(f"gap I(H1; H2) − I(H2; Y) = {res.gap:+.4f} nats  (95% CI {lo:+.4f} to {hi:+.4f})")
    for f in res.families:
        g = f["gap"]
        print(
            f"  {f['family']:>3}: gap {g['value']:+.4f} (95% CI {g['ci'][0]:+.4f} to "
            f"{g['ci'][1]:+.4f}; raw {g['raw']:+.4f}, bias {g['bias']:+.4f}, "
            f"{f['surrogates']} surrogates)"
        )
    for fam, why in res.skipped.items():
        print(f"  {fam:>3}: not run ({why})")
    d1, d2, dy = res.dims
    print(
        f"n = {res.n}, dims {d1} + {d2}{'' if res.labels else f' + {dy}'}: "
        f"{'validated' if res.validated else 'NOT validated'} ({res.validated_reason})"
    )
    if res.ties["tied_rows"] or res.ties["duplicate_rows"]:
        print(
            f"ties: {res.ties['tied_rows']} rows share a value with another row in some column "
            f"(broken at random), {res.ties['duplicate_rows']} duplicate rows"
        )
    print(f"verdict: {res.verdict}")
    print()
    print(textwrap.fill(EXPLAIN[res.verdict] + " " + CAVEAT, width=88))
    return 0
