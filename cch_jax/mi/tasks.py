"""Benchmark distributions with known mutual information (nats), for validating the estimators.

Every task is a `Task(name, sample, mi, labels, note)`; `sample(rng, n)` draws (x, y) from a numpy
Generator. Known values: Gaussian blocks from canonical correlations; coordinate-wise bijections
(asinh, x|x|^½, Φ) preserve MI; multivariate Student-t from its entropy; Gaussian mixtures with a
uniform label by numerical integration of the mixture entropy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy.special import digamma, gammaln, ndtr


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    sample: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
    mi: float
    labels: bool
    note: str


def gaussian_block_mi(rho) -> float:
    """I(X; Y) = −½ Σ log(1 − ρ_i²) for canonical correlations ρ."""
    rho = np.asarray(rho, np.float64)
    return float(-0.5 * np.sum(np.log1p(-(rho**2))))


def _rotation(seed: int, d: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def gaussian_sampler(dx: int, dy: int, rho, *, mix: bool, seed: int = 0):
    """(x, y) jointly Gaussian with canonical correlations rho; `mix` rotates both blocks (dense)."""
    rho = np.zeros(min(dx, dy)) + np.asarray(rho, np.float64)
    qx, qy = _rotation(seed, dx), _rotation(seed + 1, dy)

    def sample(rng, n):
        x = rng.standard_normal((n, dx))
        e = rng.standard_normal((n, dy))
        y = e.copy()
        r = rho.size
        y[:, :r] = rho * x[:, :r] + np.sqrt(1 - rho**2) * e[:, :r]
        if mix:
            x, y = x @ qx.T, y @ qy.T
        return x, y

    return sample, gaussian_block_mi(rho)


def student_t_mi(nu: float, dx: int, dy: int, rho) -> float:
    """MI of a multivariate Student-t (ν d.o.f., canonical correlations rho of the scale matrix).

    H(t_d) = ½ log det Σ + log Γ(ν/2) + (d/2) log(νπ) − log Γ((ν+d)/2) + (ν+d)/2 [ψ((ν+d)/2) − ψ(ν/2)];
    marginals are t with the same ν, so I = H(X) + H(Y) − H(X, Y).
    """

    def g(d):
        a = (nu + d) / 2
        return gammaln(nu / 2) - gammaln(a) + a * (digamma(a) - digamma(nu / 2))

    return gaussian_block_mi(rho) + float(g(dx) + g(dy) - g(dx + dy))


def student_t_sampler(nu: float, dx: int, dy: int, rho, *, seed: int = 0):
    base, _ = gaussian_sampler(dx, dy, rho, mix=True, seed=seed)

    def sample(rng, n):
        x, y = base(rng, n)
        w = np.sqrt(rng.chisquare(nu, size=(n, 1)) / nu)
        return x / w, y / w

    return sample, student_t_mi(nu, dx, dy, np.zeros(min(dx, dy)) + rho)


def mixture_mi(means) -> float:
    """I(X; Y) for Y uniform on len(means) classes and X | Y=c ~ N(means[c], 1) in 1-d.

    I = H(X) − ½ log(2πe), H(X) of the mixture by the trapezoid rule on a fine grid (error < 1e-9).
    """
    means = np.asarray(means, np.float64)
    grid = np.linspace(means.min() - 12, means.max() + 12, 200_001)
    p = np.mean(np.exp(-0.5 * (grid[:, None] - means) ** 2), axis=1) / np.sqrt(2 * np.pi)
    h = -np.trapezoid(p * np.log(np.maximum(p, 1e-300)), grid)
    return float(h - 0.5 * np.log(2 * np.pi * np.e))


def mixture_sampler(means, d: int = 1, *, seed: int = 0):
    """X | Y=c ~ N(means[c]·u, I_d) with u a fixed unit vector; the MI is that of the 1-d case."""
    means = np.asarray(means, np.float64)
    u = _rotation(seed, d)[:, 0]

    def sample(rng, n):
        y = rng.integers(0, means.size, n)
        x = rng.standard_normal((n, d)) + means[y][:, None] * u
        return x, y

    return sample, mixture_mi(means)


def _transformed(sample, f):
    return lambda rng, n: tuple(f(a) for a in sample(rng, n))


def tasks() -> list[Task]:
    """The validation tasks (dimension 1 to 20; continuous and discrete)."""
    out = []

    def add(name, pair, labels, note):
        out.append(Task(name, pair[0], pair[1], labels, note))

    add("gauss-1+1", gaussian_sampler(1, 1, [0.8], mix=False), False, "ρ = 0.8")
    add("gauss-2+2-dense", gaussian_sampler(2, 2, [0.7, 0.5], mix=True), False, "rotated")
    add(
        "gauss-5+5-sparse",
        gaussian_sampler(5, 5, [0.8, 0.6, 0, 0, 0], mix=False),
        False,
        "2 correlated pairs",
    )
    add("gauss-10+10-dense", gaussian_sampler(10, 10, 0.45, mix=True), False, "all ρ = 0.45")
    add(
        "gauss-20+20-sparse",
        gaussian_sampler(20, 20, [0.9, 0.7] + [0] * 18, mix=False),
        False,
        "2 of 20 pairs correlated",
    )
    add("independent-5+5", gaussian_sampler(5, 5, 0.0, mix=True), False, "true MI = 0")
    g5, mi5 = gaussian_sampler(5, 5, 0.6, mix=True, seed=3)
    add("asinh-5+5", (_transformed(g5, np.arcsinh), mi5), False, "asinh of dense Gaussian")
    add(
        "halfcube-5+5",
        (_transformed(g5, lambda a: a * np.sqrt(np.abs(a))), mi5),
        False,
        "x|x|^½ of dense Gaussian",
    )
    g2, mi2 = gaussian_sampler(2, 2, [0.7, 0.5], mix=True, seed=5)
    add("normcdf-2+2", (_transformed(g2, ndtr), mi2), False, "Φ of each coordinate")
    add("student-t3-2+2", student_t_sampler(3.0, 2, 2, [0.6, 0.3]), False, "ν = 3")
    add(
        "student-t2-1+1-uncorr",
        student_t_sampler(2.0, 1, 1, [0.0]),
        False,
        "ν = 2, ρ = 0: dependence through the shared scale only",
    )
    add("mixture-1d-4class", mixture_sampler([0.0, 1.5, 3.0, 4.5], 1), True, "spacing 1.5σ")
    add("mixture-5d-3class", mixture_sampler([-2.0, 0.0, 2.0], 5), True, "1 informative direction")
    return out


def get(name: str) -> Task:
    for t in tasks():
        if t.name == name:
            return t
    raise ValueError(f"task={name!r} is not one of {[t.name for t in tasks()]}")
