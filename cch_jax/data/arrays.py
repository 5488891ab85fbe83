"""Validation of fixed training/test arrays (`ArrayData`) before any training."""

from __future__ import annotations

import numpy as np

MEMBERS = ("x_train", "y_train", "teacher_train", "x_test", "y_test")


def check_arrays(data, task: str) -> None:
    """Raise ValueError/TypeError (naming the array and the rule) unless `data` can be trained on.

    data: anything with the fields x_train, y_train, teacher_train, x_test, y_test (`ArrayData`).
    Every array must hold real numbers, at least one row, and only finite values; for
    classification the labels must be integers in [0, C), C = teacher_train.shape[-1] (the
    number of teacher logits). Shapes are checked by the engine (`make_train`).
    """
    arrays = {name: np.asarray(getattr(data, name)) for name in MEMBERS}
    for name, a in arrays.items():
        if a.dtype.kind not in "iuf":  # integers, floats
            raise TypeError(f"{name}: an array of dtype {a.dtype} must hold real numbers")
        if a.ndim == 0 or a.shape[0] == 0:
            raise ValueError(f"{name}: an array of shape {a.shape} must have at least one row")
        if np.issubdtype(a.dtype, np.floating):
            bad = ~np.isfinite(a)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"{name}[{', '.join(map(str, where))}]={a[where]} must be finite "
                    f"({int(bad.sum())} non-finite values)"
                )
    if task != "classification":
        return
    teacher = arrays["teacher_train"]
    n_classes = teacher.shape[-1] if teacher.ndim == 2 else None
    for name in ("y_train", "y_test"):
        y = arrays[name]
        if np.issubdtype(y.dtype, np.floating) and np.any(y != np.round(y)):
            value = y[y != np.round(y)][0]
            raise ValueError(f"{name}: label {value} must be an integer (a class index)")
        low, high = y.min(), y.max()
        if low < 0 or (n_classes is not None and high >= n_classes):
            value = low if low < 0 else high
            raise ValueError(
                f"{name}: label {value.item():g} must lie in [0, C) = [0, {n_classes}) "
                "(C = the teacher's number of logits, teacher_train.shape[-1])"
            )
