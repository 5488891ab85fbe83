"""CMU-MOSEI, bring your own features: a loader for aligned per-modality feature arrays.

CMU-MOSEI's features are in no registry package, so the data stay with the user. Put them in a
directory (``path``, or ``$CCH_MOSEI`` when ``path`` is None) with this layout:

    text.npy     (n, d_text)   or (n, T, d_text)     e.g. GloVe / BERT features
    audio.npy    (n, d_audio)  or (n, T, d_audio)    e.g. COVAREP
    vision.npy   (n, d_vision) or (n, T, d_vision)   e.g. Facet / OpenFace
    labels.npy   (n,) or (n, 1)                      sentiment in [-3, 3]
    split.npy    optional (n,): "train" / "valid" / "test" (or 0 / 1 / 2)

Row i of every file is the same utterance. A 3-D array is averaged over time, skipping padding
frames (frames whose features are all exactly 0); a sample with no real frame averages to 0.
Non-finite feature values (COVAREP has -inf) are set to 0 unless ``nonfinite="raise"``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MODALITIES = ("text", "audio", "vision")
TARGETS = ("regression", "binary", "binary_nonzero", "7class")
SPLITS = ("train", "valid", "test")
PATH_ENV = "CCH_MOSEI"


def _resolve(path) -> Path:
    """The data directory: ``path``, else ``$CCH_MOSEI``; it must exist."""
    if path is None:
        env = os.environ.get(PATH_ENV, "").strip()
        if not env:
            raise ValueError(
                f"path=None and ${PATH_ENV} is unset: pass the directory holding "
                f"text.npy/audio.npy/vision.npy/labels.npy or set {PATH_ENV}"
            )
        path = env
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"path={str(root)!r} is not a directory (CMU-MOSEI features)")
    return root


def _load_array(file: Path) -> np.ndarray:
    """An .npy array, never unpickling objects."""
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{file}: not a plain numeric/str .npy array ({exc})") from None


def time_average(features: np.ndarray) -> np.ndarray:
    """(n, T, d) -> (n, d): mean over frames that are not all-zero padding; (n, d) unchanged."""
    if features.ndim == 2:
        return features
    real = np.any(features != 0, axis=-1)  # (n, T)
    count = real.sum(axis=1, keepdims=True)
    total = np.where(real[..., None], features, 0).sum(axis=1)
    return total / np.maximum(count, 1)


def _features(root: Path, name: str, n: int, nonfinite: str) -> np.ndarray:
    """One modality as float32 (n, d), checked and time-averaged."""
    x = _load_array(root / f"{name}.npy")
    if x.ndim not in (2, 3) or x.shape[0] != n:
        raise ValueError(f"{name}.npy has shape {x.shape}: must be (n, d) or (n, T, d), n={n}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name}.npy has dtype {x.dtype}: must be numeric")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        if nonfinite == "raise":
            raise ValueError(f"{name}.npy has {int(bad.sum())} non-finite values")
        x[bad] = 0.0
    return time_average(x).astype(np.float32)


def _targets(sentiment: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray, list | None]:
    """(keep mask (n,), labels, classes) for a target convention."""
    keep = np.ones(sentiment.shape, bool)
    if target == "regression":
        return keep, sentiment.astype(np.float32), None
    if target == "binary":  # negative (< 0) vs non-negative (>= 0)
        return keep, (sentiment >= 0).astype(np.int32), ["negative", "non-negative"]
    if target == "binary_nonzero":  # negative vs positive, neutral (== 0) samples dropped
        keep = sentiment != 0
        return keep, (sentiment > 0).astype(np.int32), ["negative", "positive"]
    labels = np.round(np.clip(sentiment, -3, 3)).astype(np.int32) + 3  # 7class
    return keep, labels, [str(k) for k in range(-3, 4)]


def _split(root: Path, n: int) -> np.ndarray | None:
    """split.npy as a str array (n,) with values in SPLITS, or None when absent."""
    file = root / "split.npy"
    if not file.exists():
        return None
    raw = _load_array(file).reshape(-1)
    if raw.shape[0] != n:
        raise ValueError(f"split.npy has {raw.shape[0]} entries, expected n={n}")
    if np.issubdtype(raw.dtype, np.integer):
        if raw.min() < 0 or raw.max() > 2:
            raise ValueError(f"split.npy integer codes {np.unique(raw)} must be 0/1/2")
        return np.array(SPLITS)[raw]
    values = raw.astype(str)
    unknown = sorted(set(np.unique(values)) - set(SPLITS))
    if unknown:
        raise ValueError(f"split.npy has values {unknown}: must be in {SPLITS}")
    return values


def load_mosei(
    path: str | os.PathLike | None = None,
    *,
    target: str = "regression",
    modalities: tuple[str, ...] = MODALITIES,
    split: str | None = None,
    nonfinite: str = "zero",
) -> dict:
    """Aligned CMU-MOSEI features from a directory in the layout of the module docstring.

    target: "regression" (float32 sentiment in [-3, 3]); "binary" (0 negative < 0 <= 1
    non-negative); "binary_nonzero" (0 negative / 1 positive, sentiment == 0 dropped); "7class"
    (round(clip(s, -3, 3)) + 3, codes 0..6 for -3..3). split: keep only that split (needs
    split.npy). Returns a dict with each modality -> float32 (n, d_m); "views": the
    modalities; "labels": (n,) float32 or int32; "sentiment": float32 (n,) raw scores;
    "classes": list of names or None; "split": str array (n,) or None.
    """
    if target not in TARGETS:
        raise ValueError(f"target={target!r} must be one of {TARGETS}")
    if nonfinite not in ("zero", "raise"):
        raise ValueError(f"nonfinite={nonfinite!r} must be 'zero' or 'raise'")
    modalities = tuple(modalities)
    if not modalities or any(m not in MODALITIES for m in modalities):
        raise ValueError(f"modalities={modalities!r} must be a non-empty subset of {MODALITIES}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS} or None")
    root = _resolve(path)
    needed = [f"{m}.npy" for m in modalities] + ["labels.npy"]
    missing = [f for f in needed if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root} lacks {', '.join(missing)} (needs {', '.join(needed)}; optional split.npy;"
            f" layout in docs/data.md)"
        )
    sentiment = _load_array(root / "labels.npy")
    if sentiment.ndim == 2 and sentiment.shape[1] == 1:
        sentiment = sentiment[:, 0]
    if sentiment.ndim != 1 or not np.issubdtype(sentiment.dtype, np.number):
        raise ValueError(
            f"labels.npy has shape {sentiment.shape}, dtype {sentiment.dtype}: "
            f"must be numeric (n,) or (n, 1)"
        )
    sentiment = sentiment.astype(np.float64)
    if not np.isfinite(sentiment).all() or np.abs(sentiment).max(initial=0) > 3 + 1e-6:
        raise ValueError("labels.npy: sentiment must be finite and within [-3, 3]")
    n = sentiment.shape[0]
    feats = {m: _features(root, m, n, nonfinite) for m in modalities}
    splits = _split(root, n)
    keep, labels, classes = _targets(sentiment, target)
    if split is not None:
        if splits is None:
            raise FileNotFoundError(f"split={split!r} needs {root / 'split.npy'}, which is absent")
        keep &= splits == split
    out: dict = {m: feats[m][keep] for m in modalities}
    out.update(
        views=modalities,
        labels=labels[keep],
        sentiment=sentiment[keep].astype(np.float32),
        classes=classes,
        split=None if splits is None else splits[keep],
    )
    return out
