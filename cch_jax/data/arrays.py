"""Fixed training and test arrays as a data source of the engine (`cch_jax.train`).

`ArrayData` is both the source (its shapes fix the program) and the data (a pytree passed to the
jitted `train` as an argument, not baked in as constants): `make_train(config, template)` builds
the run, `train(arrays, key, ...)` trains on `arrays`, which must be shaped like `template`.
`check_arrays` validates the values (finite, labels in range) before any training.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cch_jax.losses import accuracy, mse

EVAL_BLOCK = 1024  # test rows evaluated at a time (ArrayData.test_metric)


class ArrayData(NamedTuple):
    """x_train (n, ...), y_train (n,), teacher_train (n, C) logits or (n,) outputs,
    x_test (m, ...), y_test (m,).

    Classification: integer labels, teacher logits; test metric = test accuracy. Regression: real
    targets and teacher outputs; test metric = test MSE.
    """

    x_train: Any
    y_train: Any
    teacher_train: Any
    x_test: Any
    y_test: Any

    def check(self, task: str, batch_size: int | None) -> None:
        """Shapes consistent with each other, with `task` and with `batch_size` (or ValueError)."""
        shape = {name: np.shape(a) for name, a in self._asdict().items()}
        n, m = shape["x_train"][0], shape["x_test"][0]
        for name in ("y_train", "teacher_train"):
            if shape[name][:1] != (n,):
                raise ValueError(f"{name} of shape {shape[name]} must have n={n} rows like x_train")
        if shape["y_test"][:1] != (m,):
            raise ValueError(f"y_test of shape {shape['y_test']} must have m={m} rows like x_test")
        if shape["x_test"][1:] != shape["x_train"][1:]:
            raise ValueError(
                f"x_test of shape {shape['x_test']} must match x_train {shape['x_train']} "
                "beyond the first axis"
            )
        if task == "classification" and len(shape["teacher_train"]) != 2:
            raise ValueError(
                f"teacher_train of shape {shape['teacher_train']} must be logits (n, C)"
            )
        if task == "regression" and len(shape["teacher_train"]) != 1:
            raise ValueError(f"teacher_train of shape {shape['teacher_train']} must be (n,)")
        if batch_size is not None and batch_size > n:
            raise ValueError(f"batch_size={batch_size} must be <= n={n} training samples")

    def draw(self, data: ArrayData, key):
        """The training set (x, y, t) of `data` (fixed: the key is not used)."""
        del key
        return tuple(jnp.asarray(a) for a in (data.x_train, data.y_train, data.teacher_train))

    def test_metric(self, student, task: str):
        """metric(params, data): test accuracy (classification) or test MSE (regression).

        Test sets above EVAL_BLOCK rows are evaluated in blocks of EVAL_BLOCK rows (lax.map, the
        last block padded and masked): the same number, with memory bounded by one block (a CNN's
        activations on 10⁴ images are ~1.4 GB per student) and, measured on a 2-core CPU, half
        the time of one pass over 10⁴ images.
        """

        def per_row(params, x, y):
            out = student.apply(params, x)
            if task == "classification":
                return (jnp.argmax(out, axis=-1) == y).astype(out.dtype)
            return (out[:, 0] - y) ** 2

        def metric(params, data: ArrayData):
            x, y = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
            m = x.shape[0]
            if m <= EVAL_BLOCK:
                out = student.apply(params, x)
                return accuracy(out, y) if task == "classification" else mse(out[:, 0], y)
            blocks = -(-m // EVAL_BLOCK)
            pad = blocks * EVAL_BLOCK - m

            def split(a):
                a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
                return a.reshape(blocks, EVAL_BLOCK, *a.shape[1:])

            mask = split(jnp.arange(m) < m)
            sums = jax.lax.map(
                lambda b: jnp.sum(jnp.where(b[2], per_row(params, b[0], b[1]), 0)),
                (split(x), split(y), mask),
            )
            return jnp.sum(sums) / m

        return metric

    def to_dict(self) -> dict:
        """The description of a scan's data: array shapes only."""
        return {"kind": "arrays", **{k: list(np.shape(v)) for k, v in self._asdict().items()}}


def check_arrays(data, task: str) -> None:
    """Raise ValueError/TypeError (naming the array and the rule) unless `data` can be trained on.

    data: anything with the fields x_train, y_train, teacher_train, x_test, y_test (`ArrayData`).
    Every array must hold real numbers, at least one row, and only finite values; for
    classification the labels must be integers in [0, C), C = teacher_train.shape[-1] (the
    number of teacher logits). Shapes are checked by the engine (`make_train`).
    """
    arrays = {name: np.asarray(getattr(data, name)) for name in ArrayData._fields}
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
