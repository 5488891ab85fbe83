"""Input checks shared by every estimator and by the CLI (each error names the argument, its value and the rule; docs/design.md)."""

from __future__ import annotations

import numpy as np

# Estimators whose second argument may (or must) be class labels.
LABEL_ESTIMATORS = {"mixed"}
CONTINUOUS_ONLY = {"ksg", "latent"}


def is_labels(y) -> bool:
    """True when `y` looks like class labels: a 1-d (or (n, 1)) array of integers or booleans."""
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    return a.ndim == 1 and (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_)


def as_2d(a, *, name: str) -> np.ndarray:
    """float64 array of shape (n, d); a vector of shape (n,) becomes (n, 1)."""
    arr = np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}: dtype {arr.dtype} is not numeric")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: array of shape {arr.shape} must have shape (n, d) or (n,)")
    return arr.astype(np.float64)


def min_samples(estimator: str, *, k: int = 3, subsets: int = 10, dim: int = 1) -> int:
    """The fewest rows `estimator` accepts (the point estimate and its uncertainty both need them)."""
    if estimator == "gaussian":
        return dim + 3  # the Wishart bias correction needs n - 1 > dx + dy
    if estimator in ("ksg", "mixed"):
        return max(2 * (k + 1), subsets * (k + 1))
    return 32  # neural and latent estimators: two halves with a few batches each


def validate(
    x,
    y,
    *,
    estimator: str = "ksg",
    k: int = 3,
    subsets: int = 10,
    labels: bool | None = None,
    names: tuple[str, str] = ("x", "y"),
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Check a pair of samples for `estimator`; return (x (n, dx) float64, y, y_is_labels).

    `y` is returned as int32 codes 0..C-1 of shape (n,) when it holds class labels, otherwise as a
    float64 (n, dy) array. Raises ValueError/TypeError naming the argument, the value and the rule.
    """
    nx_, ny_ = names
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer (number of neighbours)")
    if not isinstance(subsets, int | np.integer) or subsets < 2:
        raise ValueError(
            f"subsets={subsets!r} must be an integer >= 2 (disjoint subsets for the stderr)"
        )
    xa = as_2d(x, name=nx_)
    y_labels = is_labels(y) if labels is None else bool(labels)
    if y_labels:
        ya = np.asarray(y)
        if ya.ndim == 2 and ya.shape[1] == 1:
            ya = ya[:, 0]
        if ya.ndim != 1:
            raise ValueError(f"{ny_}: labels of shape {ya.shape} must be a vector of shape (n,)")
        yf = ya.astype(np.float64)
        if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)):
            raise ValueError(f"{ny_}: labels must be finite integers")
    else:
        ya = as_2d(y, name=ny_)
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"{nx_} has {xa.shape[0]} rows but {ny_} has {ya.shape[0]}: "
            "they must be paired row by row"
        )
    n = xa.shape[0]
    for name, arr in ((nx_, xa), (ny_, None if y_labels else ya)):
        if arr is None:
            continue
        bad = ~np.all(np.isfinite(arr), axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"{name}: {rows.size} row(s) contain NaN or inf (first: row {rows[0]}); "
                "all values must be finite (drop or impute those rows)"
            )
        if n >= 1:
            const = np.flatnonzero(np.ptp(arr, axis=0) == 0)
            if const.size:
                raise ValueError(
                    f"{name}: column {const[0]} is constant (value {arr[0, const[0]]:g}); "
                    "every column must vary (drop constant columns)"
                )
    if estimator in LABEL_ESTIMATORS and not y_labels:
        raise ValueError(
            f"estimator={estimator!r} needs integer class labels for {ny_} "
            f"(got a float array of shape {ya.shape}); use 'ksg' for continuous {ny_}"
        )
    if estimator in CONTINUOUS_ONLY and y_labels:
        raise ValueError(
            f"estimator={estimator!r} needs continuous {ny_}, but {ny_} holds integer class labels "
            "(ties break kNN distances); use estimator='mixed' for labels"
        )
    codes = None
    if y_labels:
        classes, codes, counts = np.unique(ya, return_inverse=True, return_counts=True)
        if classes.size < 2:
            raise ValueError(
                f"{ny_}: labels have a single class ({classes[0].item()!r}); MI with a constant is 0 "
                "and cannot be estimated — at least 2 classes are needed"
            )
        if estimator == "mixed" and counts.min() < 2 * (k + 1):
            c = classes[np.argmin(counts)].item()  # a Python value: 9, not np.int64(9)
            raise ValueError(
                f"{ny_}: class {c!r} has {counts.min()} sample(s); estimator 'mixed' with k={k} "
                f"needs at least 2(k+1)={2 * (k + 1)} per class (k+1 for the estimate, twice that "
                "for its disjoint-subset stderr; lower k or merge rare classes)"
            )
    dim = xa.shape[1] + (0 if y_labels else ya.shape[1])
    if y_labels and estimator == "gaussian":
        dim = xa.shape[1] + int(codes.max())
    need = min_samples(estimator, k=k, subsets=subsets, dim=dim)
    if n < need:
        raise ValueError(
            f"n={n} samples is fewer than {need} needed by estimator {estimator!r} "
            f"(k={k}, subsets={subsets}, total dimension {dim})"
        )
    if y_labels:
        return xa, codes.astype(np.int32), True
    return xa, ya, False
