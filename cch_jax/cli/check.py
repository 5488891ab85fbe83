"""`cch check`: is the teacher modality worth distilling from? CCH with honest uncertainty."""

from __future__ import annotations

import math
import textwrap

import numpy as np
from scipy.special import stdtrit

from cch_jax.cli.common import load_array, print_json
from cch_jax.cli.mi import (
    ESTIMATOR_CHOICES,
    add_estimator_options,
    estimator_options,
    format_estimate,
)


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="does the Cross-modal Complementarity Hypothesis hold for my data?",
        description=(
            "Estimate I(H1; H2) (teacher vs student representations) and I(H2; Y) (student vs "
            "labels) with 95% intervals, their gap I(H1; H2) − I(H2; Y) with its interval, and the "
            "CCH verdict: cch-holds (gap > 0), cch-fails (gap < 0) or inconclusive (the gap's "
            "interval contains 0). Integer labels use the mixed (Ross) estimator for I(H2; Y)."
        ),
    )
    p.add_argument("--teacher", required=True, metavar="H1", help="teacher representation (n, d1)")
    p.add_argument("--student", required=True, metavar="H2", help="student representation (n, d2)")
    p.add_argument("--labels", required=True, metavar="Y", help="labels (n,) or targets (n, dy)")
    p.add_argument("--key", help="array name inside .npz files")
    p.add_argument(
        "--label-estimator",
        choices=ESTIMATOR_CHOICES,
        help="estimator for I(H2; Y) (default: mixed for integer labels, else --estimator)",
    )
    add_estimator_options(p)
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


def gap_interval(ts, sy) -> tuple[float, float, float, str]:
    """Gap, stderr, and 95 % interval of I(H1;H2) − I(H2;Y), and how the stderr was obtained.

    When both estimates come from the same disjoint-subset partition, the stderr is the spread of the
    paired subset differences (accounts for their correlation); otherwise the two stderrs are
    combined as if independent.
    """
    gap = ts.value - sy.value
    a, b = ts.details.get("subset_estimates"), sy.details.get("subset_estimates")
    if a is not None and b is not None and len(a) == len(b):
        d = np.asarray(a) - np.asarray(b)
        m = d.size
        se = float(np.std(d, ddof=1) / math.sqrt(m))
        q = float(stdtrit(m - 1, 0.975))
        method = f"paired disjoint subsets (m={m})"
    else:
        se = math.hypot(ts.stderr, sy.stderr)
        q = 1.959963984540054
        method = "independent combination of the two stderrs"
    return gap, se, (gap - q * se, gap + q * se), method


def verdict_of(ci: tuple[float, float]) -> str:
    if ci[0] > 0:
        return "cch-holds"
    if ci[1] < 0:
        return "cch-fails"
    return "inconclusive"


EXPLAIN = {
    "cch-holds": (
        "The teacher shares more information with the student's representation than the student "
        "has about the label (the whole 95% interval of the gap is above 0): the Cross-modal "
        "Complementarity Hypothesis holds, so distillation is predicted to help."
    ),
    "cch-fails": (
        "The student's representation already carries more information about the label than "
        "it shares with the teacher (the whole 95% interval of the gap is below 0): CCH fails."
    ),
    "inconclusive": (
        "The 95% interval of the gap contains 0, so the data cannot tell whether CCH holds; "
        "more samples (or a lower-variance estimator) would be needed."
    ),
}

CAVEAT = (
    "What CCH does and does not promise: in the joint Gaussian model, CCH together with a bounded, "
    "aligned teacher (Var(t) <= Var(y), Cov(t, s) > 0) is sufficient for distillation with a small "
    "weight λ to lower the student's risk, but it is far from necessary: when CCH fails, small-λ KD "
    "still helps in most random Gaussian models. So 'cch-fails' does not mean KD will hurt; "
    "try a small λ and validate. MI estimates in high dimension are biased (usually downward), "
    "and the intervals cover sampling noise only, not estimator bias."
)


def run(args) -> int:
    import jax

    from cch_jax.mi import estimate

    h1 = load_array(args.teacher, name="--teacher", key=args.key)
    h2 = load_array(args.student, name="--student", key=args.key)
    y_raw = load_array(args.labels, name="--labels", key=args.key)
    y, is_lab = _as_labels(y_raw)
    if is_lab and np.unique(y).size < 2:
        raise ValueError(
            f"--labels: labels have a single class ({np.unique(y)[0]!r}); I(H2; Y) = 0 trivially "
            "and CCH cannot be checked — at least 2 classes are needed"
        )
    for name, a in (("--teacher", h1), ("--labels", y)):
        if np.asarray(a).shape[0] != np.asarray(h2).shape[0]:
            raise ValueError(
                f"{name} has {np.asarray(a).shape[0]} rows but --student has "
                f"{np.asarray(h2).shape[0]}: they must be paired row by row"
            )
    label_est = args.label_estimator or ("mixed" if is_lab else args.estimator)
    key = jax.random.key(args.seed)
    strata = y if is_lab else None
    common = dict(k=args.k, subsets=args.subsets, null=args.null, **estimator_options(args))
    ts = _estimate(
        estimate, h1, h2, ("--teacher", "--student"), key, args.estimator, strata, None, common
    )
    sy = _estimate(
        estimate, h2, y, ("--student", "--labels"), key, label_est, strata, is_lab or None, common
    )
    gap, se, ci, method = gap_interval(ts, sy)
    verdict = verdict_of(ci)
    if args.json:
        print_json(
            {
                "mi_teacher_student": ts.to_dict(),
                "mi_student_label": sy.to_dict(),
                "gap": gap,
                "gap_stderr": se,
                "gap_ci": list(ci),
                "gap_method": method,
                "verdict": verdict,
            }
        )
        return 0
    print(format_estimate("I(H1; H2)", ts))
    print(format_estimate("I(H2; Y) ", sy))
    print(
        f"gap I(H1; H2) − I(H2; Y) = {gap:+.4f} nats  (95% CI {ci[0]:+.4f} to {ci[1]:+.4f}; "
        f"{method})"
    )
    print(f"verdict: {verdict}")
    print()
    print(textwrap.fill(EXPLAIN[verdict] + " " + CAVEAT, width=88))
    return 0


def _estimate(estimate, a, b, names, key, estimator, strata, labels, common):
    """estimate() with error messages that name the CLI arguments instead of x / y."""
    return estimate(
        a, b, key=key, estimator=estimator, strata=strata, labels=labels, names=names, **common
    )
