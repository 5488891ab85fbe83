"""`cch mi`: estimate I(X; Y) in nats with a standard error and a 95 % interval."""

from __future__ import annotations

import numpy as np

from cch_jax.cli.common import load_array, print_json

ESTIMATOR_CHOICES = ("gaussian", "ksg", "mixed", "mine", "infonce", "nwj", "latent")
CALIBRATED = ("gaussian", "ksg", "mixed")  # estimators `--calibrate` can correct


def add_estimator_options(p, *, default: str | None = "ksg") -> None:
    """Options shared by `cch mi` and `cch check`."""
    p.add_argument(
        "--estimator",
        choices=ESTIMATOR_CHOICES,
        default=default,
        help=f"MI estimator (default {default})",
    )
    p.add_argument("--k", type=int, default=3, help="neighbours for ksg/mixed/latent (default 3)")
    p.add_argument(
        "--subsets", type=int, default=10, help="disjoint subsets for the kNN stderr (default 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (splits, critics; default 0)")
    p.add_argument("--null", type=int, default=0, metavar="N", help="N permutations for a null")
    p.add_argument("--steps", type=int, help="training steps for neural/latent estimators")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def estimator_options(args) -> dict:
    return {} if args.steps is None else {"steps": args.steps}


def register(sub) -> None:
    p = sub.add_parser(
        "mi",
        help="estimate the mutual information I(X; Y) (nats) with an interval",
        description=(
            "Estimate I(X; Y) in nats from paired samples (rows of X and Y), with a standard "
            "error and a 95% interval. X, Y: .npy, .npz (choose the member with --key) or .csv, "
            "shape (n, d) or (n,). Integer-valued Y of shape (n,) in an integer array (or with "
            "--labels) is treated as class labels."
        ),
    )
    p.add_argument("x", metavar="X", help="first variable, (n, dx)")
    p.add_argument("y", metavar="Y", help="second variable, (n, dy), or labels (n,)")
    p.add_argument("--key", help="array name inside .npz files (for X and Y)")
    p.add_argument("--y-key", help="array name inside Y's .npz if different from --key")
    p.add_argument(
        "--labels", action="store_true", help="treat Y as integer class labels (mixed estimator)"
    )
    add_estimator_options(p)
    p.add_argument(
        "--calibrate",
        type=int,
        default=16,
        metavar="B",
        help="bias-aware interval for gaussian/ksg/mixed: correct the estimate by its bias on B "
        "surrogate data sets fitted to X, Y (known MI) and widen the interval by their spread "
        "(default 16; 0: the uncorrected estimate and its sampling interval only)",
    )
    p.add_argument(
        "--no-normal-scores",
        action="store_true",
        help="ksg/mixed on standardised columns instead of normal scores (loses invariance to "
        "monotone maps of each coordinate)",
    )
    p.set_defaults(func=run)


def format_estimate(name: str, est) -> str:
    lo, hi = est.ci
    extra = f", k={est.details['k']}" if "k" in est.details else ""
    return (
        f"{name} = {est.value:.4f} nats  (95% CI {lo:.4f} to {hi:.4f}, stderr {est.stderr:.4f}; "
        f"{est.estimator}{extra}, n={est.n})"
    )


def run(args) -> int:
    import jax

    from cch_jax.mi import estimate
    from cch_jax.mi.check import calibrated_mi

    x = load_array(args.x, name="X", key=args.key)
    y = load_array(args.y, name="Y", key=args.y_key or args.key)
    labels = True if (args.labels or args.estimator == "mixed") else None
    if labels and not np.issubdtype(np.asarray(y).dtype, np.integer):
        y = np.asarray(y, np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim == 1 and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"Y: {args.y!r} must hold integer class labels for --labels/mixed")
    if args.calibrate < 0 or 0 < args.calibrate < 8:
        raise ValueError(f"--calibrate {args.calibrate}: must be 0 (off) or at least 8")
    calibrate = args.calibrate and args.estimator in CALIBRATED
    est = estimate(
        x,
        y,
        key=jax.random.key(args.seed),
        estimator=args.estimator,
        k=args.k,
        subsets=args.subsets,
        null=args.null,
        labels=labels,
        normal_scores=not args.no_normal_scores,
        names=("X", "Y"),
        **estimator_options(args),
    )
    cal = None
    if calibrate:
        cal = calibrated_mi(
            x,
            y,
            labels=labels,
            estimator=args.estimator,
            seed=args.seed,
            surrogates=args.calibrate,
            k=args.k,
            subsets=args.subsets,
            normal_scores=not args.no_normal_scores,
            names=("X", "Y"),
        )
    if args.json:
        out = est.to_dict()
        out["normal_scores"] = args.estimator in ("ksg", "mixed") and not args.no_normal_scores
        if cal is not None:  # the headline numbers are the bias-aware ones
            out["uncorrected"] = {"mi": out["mi"], "stderr": out["stderr"], "ci": out["ci"]}
            out.update(mi=cal["value"], stderr=cal["stderr"], ci=cal["ci"], bias=cal["bias"])
            out["calibration"] = {"surrogates": cal["surrogates"], "surrogate": cal["surrogate"]}
        out["calibrated"] = cal is not None
        if args.null:
            out["null"] = {k: v for k, v in est.details["null"].items() if k != "values"}
        print_json(out)
    else:
        if cal is not None:
            lo, hi = cal["ci"]
            print(
                f"I(X; Y) = {cal['value']:.4f} nats  (95% CI {lo:.4f} to {hi:.4f}, bias-aware: "
                f"the {args.estimator} estimate {cal['raw']:.4f} corrected by its bias "
                f"{cal['bias']:+.4f} on {cal['surrogates']} surrogates, {cal['surrogate']}; "
                f"n={est.n})"
            )
            print("uncorrected: " + format_estimate("I(X; Y)", est))
        else:
            print(format_estimate("I(X; Y)", est))
            if args.estimator not in CALIBRATED:
                print("note: this interval covers sampling noise only, not the estimator's bias")
        if args.null:
            nd = est.details["null"]
            print(
                f"permutation null ({nd['num']} shuffles): mean {nd['mean']:.4f}, "
                f"95th percentile {nd['q95']:.4f}, p = {nd['p_value']:.3g}"
            )
    return 0
