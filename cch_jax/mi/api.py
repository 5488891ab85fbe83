"""One interface to every estimator: `estimate(x, y, *, key, estimator=...) -> MIEstimate`.

Uncertainty, by estimator (all intervals are 95 %; none here include an estimator's *bias*: for
gaussian/ksg/mixed, `cch_jax.mi.check.calibrated_mi` (what `cch mi` reports by default) corrects
the estimate and widens the interval by a parametric bootstrap on a fitted surrogate):
- gaussian: delta-method stderr from the canonical correlations (see gaussian.py), normal interval.
- ksg, mixed: the sample is split at random into m disjoint subsets (stratified by label for
  `mixed`), the estimator is computed on each, and se = sd(subset estimates) · sqrt((n/m) / n) =
  sd / √m — the variance of these estimators scales as 1/n, so the subset spread, rescaled to the
  full size, estimates the spread of the full-n estimate. No point is ever duplicated (a bootstrap
  would create zero distances and break kNN estimators). Interval: full-n estimate ± t_{m−1}·se.
  `details["subset_mean"]` is the mean of the subset estimates: a large gap to the full-n value
  signals an estimate that still drifts with n (bias not yet converged).
- mine, infonce, nwj: seeds (vmapped critics) and disjoint evaluation blocks (neural.py).
- latent: seeds and disjoint subsets of the held-out codes (latent.py).
The permutation null (`permutation_null`, or `null=` here) re-runs the point estimate with y shuffled
against x: what the estimator reports when the true MI is 0.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import jax
import numpy as np
from scipy.special import stdtrit

from cch_jax.mi import gaussian as _gaussian
from cch_jax.mi import knn as _knn
from cch_jax.mi.copula import normal_scores as _normal_scores
from cch_jax.mi.validate import validate

ESTIMATORS = ("gaussian", "ksg", "mixed", "mine", "infonce", "nwj", "latent")
NEURAL = ("mine", "infonce", "nwj")
LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class MIEstimate:
    """An MI estimate in nats with its standard error and 95 % interval."""

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    estimator: str
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self, *, details: bool = False) -> dict:
        out = {
            "estimator": self.estimator,
            "mi": self.value,
            "stderr": self.stderr,
            "ci": [self.ci_low, self.ci_high],
            "n": self.n,
        }
        if details:
            out["details"] = self.details
        return out


def _interval(value: float, se: float, dof: int | None) -> tuple[float, float]:
    q = 1.959963984540054 if dof is None else float(stdtrit(dof, 0.5 + LEVEL / 2))
    return value - q * se, value + q * se


def _split_groups(key, n: int, m: int, labels: np.ndarray | None) -> np.ndarray:
    """Random partition of range(n) into m disjoint groups (round-robin within each label)."""
    perm = np.asarray(jax.random.permutation(key, n))
    groups = np.empty(n, np.int32)
    if labels is None:
        groups[perm] = np.arange(n) % m
        return groups
    lab = labels[perm]
    for c in np.unique(lab):
        idx = perm[lab == c]
        groups[idx] = np.arange(idx.size) % m
    return groups


def _knn_estimate(xs, ys, *, key, estimator, k, subsets, tile, strata):
    fn = _knn.ksg if estimator == "ksg" else _knn.mixed
    full, zero = fn(xs, ys, k=k, standardize=False, tile=tile)
    n = xs.shape[0]
    groups = _split_groups(key, n, subsets, strata)
    sub, _ = fn(xs, ys, k=k, standardize=False, tile=tile, groups=groups)
    sizes = np.bincount(groups, minlength=subsets)
    se = float(np.std(sub, ddof=1) * math.sqrt(sizes.mean() / n))
    return {
        "value": float(full[0]),
        "stderr": se,
        "dof": subsets - 1,
        "k": k,
        "subsets": subsets,
        "subset_size": int(sizes.min()),
        "subset_estimates": sub.tolist(),
        "subset_mean": float(np.mean(sub)),
        "zero_eps": zero,
    }


def _knn_inputs(x, y, y_labels, key, standardize, normal_scores):
    """The columns kNN estimators see: normal scores (invariant to monotone maps of any
    coordinate; ties broken at random from `key`), standardised, or as given. Labels untouched."""
    if normal_scores:
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        return _normal_scores(x, rng), (y if y_labels else _normal_scores(y, rng))
    if standardize:
        return _knn.standardise(x), (y if y_labels else _knn.standardise(y))
    return x, y


def _point(
    x,
    y,
    y_labels,
    *,
    key,
    estimator,
    k,
    subsets,
    tile,
    standardize,
    options,
    strata=None,
    normal_scores=False,
):
    """Estimator-specific value, stderr and details; x, y already validated."""
    if estimator == "gaussian":
        yy = _gaussian.one_hot(y) if y_labels else y
        out = _gaussian.gaussian_mi(x, yy, bias_correct=options.get("bias_correct", True))
        out["dof"] = None
        return out
    if estimator in ("ksg", "mixed"):
        xs, ys = _knn_inputs(x, y, y_labels, key, standardize, normal_scores)
        return _knn_estimate(
            xs,
            ys,
            key=key,
            estimator=estimator,
            k=k,
            subsets=subsets,
            tile=tile,
            strata=strata if strata is not None else (y if y_labels else None),
        )
    if estimator in NEURAL:
        from cch_jax.mi.neural import neural_mi

        yy = _gaussian.one_hot(y) if y_labels else y
        return neural_mi(x, yy, key=key, estimator=estimator, **options)
    if estimator == "latent":
        from cch_jax.mi.latent import latent_mi

        return latent_mi(x, y, key=key, k=k, subsets=subsets, tile=tile, **options)
    raise ValueError(f"estimator={estimator!r} must be one of {', '.join(ESTIMATORS)}")


def estimate(
    x,
    y,
    *,
    key,
    estimator: str = "ksg",
    k: int = 3,
    subsets: int = 10,
    standardize: bool = True,
    normal_scores: bool = False,
    tile: int = 128,
    null: int = 0,
    labels: bool | None = None,
    strata=None,
    names: tuple[str, str] = ("x", "y"),
    **options,
) -> MIEstimate:
    """Estimate I(x; y) in nats with a standard error and a 95 % interval.

    x: (n, dx) or (n,); y: (n, dy), (n,), or integer class labels (n,) (auto-detected from an integer
    dtype, or forced with `labels=`). `key`: a jax.random key (subset splits, critic seeds).
    estimator: one of ESTIMATORS. k: neighbours (ksg, mixed, latent). subsets: disjoint subsets for
    the kNN stderr. normal_scores: ksg/mixed on per-column normal scores (rank → Φ⁻¹, ties broken
    at random; invariant to monotone maps, `cch mi` does this by default) instead of standardised
    columns (`standardize`). null: number of permutations for a permutation null in details["null"] (0: none).
    strata: optional labels (n,) to stratify the kNN subsets by; two estimates made with the same
    key, n, subsets and strata use the same partition, so their subset estimates are paired (used by
    `cch check` for the stderr of a difference of two MIs). names: how error messages call x, y.
    options: estimator-specific settings (neural: seeds, steps, batch, lr, hidden, layers, embed,
    critic, weight_decay, val_frac, eval_every, clip, transform; latent: latent_dim, seeds, steps,
    batch, lr, hidden, cross_weight, transform; gaussian: bias_correct).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} must be one of {', '.join(ESTIMATORS)}")
    if not isinstance(null, int | np.integer) or null < 0:
        raise ValueError(f"null={null!r} must be a non-negative integer (number of permutations)")
    xa, ya, y_labels = validate(
        x, y, estimator=estimator, k=k, subsets=subsets, labels=labels, names=names
    )
    k_est, k_null = jax.random.split(key)
    t0 = time.perf_counter()
    out = _point(
        xa,
        ya,
        y_labels,
        key=k_est,
        estimator=estimator,
        k=k,
        subsets=subsets,
        tile=tile,
        standardize=standardize,
        options=options,
        strata=None if strata is None else np.asarray(strata).reshape(-1),
        normal_scores=normal_scores,
    )
    value, se, dof = out.pop("value"), out.pop("stderr"), out.pop("dof")
    lo, hi = _interval(value, se, dof)
    details = {"seconds": time.perf_counter() - t0, "labels": y_labels, **out}
    if y_labels:
        details["label_entropy"] = label_entropy(ya)
        if estimator == "gaussian" and value > details["label_entropy"]:
            # I(X; Y) ≤ H(Y) for discrete Y; the Gaussian formula on one-hot labels can break it
            # (kNN estimates may exceed H(Y) by their sampling noise: no warning for those).
            warnings.warn(
                f"estimator={estimator!r} gave I = {value:.3g} nats above H(Y) = "
                f"{details['label_entropy']:.3g} nats, impossible for discrete labels: the "
                "estimate is invalid here (use estimator='mixed' for class labels)",
                stacklevel=2,
            )
    if null:
        details["null"] = _null(
            xa,
            ya,
            y_labels,
            value,
            key=k_null,
            estimator=estimator,
            num=null,
            k=k,
            subsets=subsets,
            tile=tile,
            standardize=standardize,
            options=options,
            normal_scores=normal_scores,
        )
    return MIEstimate(value, se, lo, hi, int(xa.shape[0]), estimator, details)


def label_entropy(labels) -> float:
    """Plug-in entropy H(Y) in nats of integer class labels (n,): the ceiling of I(X; Y)."""
    _, counts = np.unique(np.asarray(labels).reshape(-1), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _null(
    x,
    y,
    y_labels,
    observed,
    *,
    key,
    estimator,
    num,
    k,
    subsets,
    tile,
    standardize,
    options,
    normal_scores=False,
):
    values = []
    for kk in jax.random.split(key, num):
        k_perm, k_est = jax.random.split(kk)
        perm = np.asarray(jax.random.permutation(k_perm, x.shape[0]))
        yp = y[perm]
        if estimator in ("ksg", "mixed"):
            xs, ys = _knn_inputs(x, yp, y_labels, k_est, standardize, normal_scores)
            fn = _knn.ksg if estimator == "ksg" else _knn.mixed
            values.append(float(fn(xs, ys, k=k, standardize=False, tile=tile)[0][0]))
        else:
            r = _point(
                x,
                yp,
                y_labels,
                key=k_est,
                estimator=estimator,
                k=k,
                subsets=subsets,
                tile=tile,
                standardize=standardize,
                options=options,
            )
            values.append(float(r["value"]))
    v = np.asarray(values)
    out = {
        "num": num,
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if num > 1 else float("nan"),
        "q95": float(np.quantile(v, 0.95)),
        "values": v.tolist(),
    }
    if observed is not None:
        out["p_value"] = float((1 + np.sum(v >= observed)) / (num + 1))
    return out


def permutation_null(
    x,
    y,
    *,
    key,
    estimator: str = "ksg",
    num: int = 20,
    k: int = 3,
    subsets: int = 10,
    standardize: bool = True,
    tile: int = 128,
    labels: bool | None = None,
    observed: float | None = None,
    **options,
) -> dict:
    """The estimator's values with y shuffled against x (true MI = 0), `num` permutations.

    Returns {"num", "mean", "sd", "q95", "values"} and, when `observed` is given, the permutation
    p-value (1 + #{null ≥ observed}) / (num + 1).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r} must be one of {', '.join(ESTIMATORS)}")
    if not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"num={num!r} must be a positive integer (number of permutations)")
    xa, ya, y_labels = validate(x, y, estimator=estimator, k=k, subsets=subsets, labels=labels)
    return _null(
        xa,
        ya,
        y_labels,
        observed,
        key=key,
        estimator=estimator,
        num=num,
        k=k,
        subsets=subsets,
        tile=tile,
        standardize=standardize,
        options=options,
    )
