"""A documented family of random joint-Gaussian models, and the CCH-vs-exact audit over it.

Latent factor model (all latents i.i.d. N(0, 1), loadings i.i.d. N(0, 1/r)):

    x1 = g1·A1 z_s + B1 z_1 + τ1 ε1          shared factors z_s (r_s), teacher-specific z_1 (r_1)
    x2 = g2·A2 z_s + B2 z_2 + τ2 ε2          student-specific z_2 (r_2)
    y  = α_s·a_sᵀz_s + α_1·a_1ᵀz_1 + α_2·a_2ᵀz_2 + τy ε

Per model, the scales g1, g2, α_s, α_1, α_2 are log-uniform on `strength_range` and the noise
levels τ1, τ2, τy log-uniform on `noise_range`. Σ = L Lᵀ + diag(τ²) is positive definite by
construction. Varying how much of y's signal is shared (α_s) against modality-specific (α_1, α_2)
moves the MI gap I(t; s) − I(s; y) from clearly negative to clearly positive.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory._x64 import float64
from theory.info import mi_student_label, mi_teacher_student
from theory.model import JointGaussian, finite_sample_factor, optimal_teacher
from theory.risk import baseline_risk, expected_risk, helpful_lambda_max, risk_slope_at_zero
from theory.verdicts import theorem1_assumptions


def _log_uniform(key, shape, lo_hi):
    lo, hi = np.log(lo_hi[0]), np.log(lo_hi[1])
    return jnp.exp(jax.random.uniform(key, shape, minval=lo, maxval=hi))


def _random_cov(key, p1, p2, n_shared, n_teacher, n_student, strength_range, noise_range):
    keys = jax.random.split(key, 9)
    A1 = jax.random.normal(keys[0], (p1, n_shared)) / np.sqrt(n_shared)
    A2 = jax.random.normal(keys[1], (p2, n_shared)) / np.sqrt(n_shared)
    B1 = jax.random.normal(keys[2], (p1, n_teacher)) / np.sqrt(n_teacher)
    B2 = jax.random.normal(keys[3], (p2, n_student)) / np.sqrt(n_student)
    a_s = jax.random.normal(keys[4], (n_shared,)) / np.sqrt(n_shared)
    a_1 = jax.random.normal(keys[5], (n_teacher,)) / np.sqrt(n_teacher)
    a_2 = jax.random.normal(keys[6], (n_student,)) / np.sqrt(n_student)
    g1, g2, al_s, al_1, al_2 = _log_uniform(keys[7], (5,), strength_range)
    tau = _log_uniform(keys[8], (3,), noise_range)
    z1, z2 = jnp.zeros((p1, n_student)), jnp.zeros((p2, n_teacher))
    L = jnp.concatenate(
        [
            jnp.concatenate([g1 * A1, B1, z1], axis=1),
            jnp.concatenate([g2 * A2, z2, B2], axis=1),
            jnp.concatenate([al_s * a_s, al_1 * a_1, al_2 * a_2])[None, :],
        ],
        axis=0,
    )
    noise = jnp.concatenate([jnp.full(p1, tau[0]), jnp.full(p2, tau[1]), tau[2:3]])
    return L @ L.T + jnp.diag(noise**2)


@float64
def random_model(
    key,
    p1: int,
    p2: int,
    *,
    num: int | None = None,
    n_shared: int = 2,
    n_teacher: int = 2,
    n_student: int = 2,
    strength_range=(0.1, 3.0),
    noise_range=(0.2, 2.0),
) -> JointGaussian:
    """A random `JointGaussian` from the latent factor family (module docstring).

    With `num`, a batch: `cov` has shape (num, d, d); vmap the theory functions over it.
    """
    for name, val in (("n_shared", n_shared), ("n_teacher", n_teacher), ("n_student", n_student)):
        if int(val) < 1:
            raise ValueError(f"{name}={val} must be >= 1")
    for name, (lo, hi) in (("strength_range", strength_range), ("noise_range", noise_range)):
        if not 0 < lo <= hi:
            raise ValueError(f"{name}=({lo}, {hi}) must satisfy 0 < low <= high")
    make = lambda k: _random_cov(
        k, p1, p2, n_shared, n_teacher, n_student, strength_range, noise_range
    )
    if num is None:
        return JointGaussian(make(key), p1, p2)
    if int(num) < 1:
        raise ValueError(f"num={num} must be >= 1")
    covs = jax.vmap(make)(jax.random.split(key, int(num)))
    return JointGaussian(covs, p1, p2)


class Confusion(NamedTuple):
    """Counts of CCH's verdict against a ground truth ("KD helps")."""

    cch_and_helps: int
    cch_and_hurts: int
    no_cch_and_helps: int
    no_cch_and_hurts: int

    @classmethod
    def count(cls, cch, helps) -> Confusion:
        cch, helps = np.asarray(cch, bool), np.asarray(helps, bool)
        return cls(
            int(np.sum(cch & helps)),
            int(np.sum(cch & ~helps)),
            int(np.sum(~cch & helps)),
            int(np.sum(~cch & ~helps)),
        )


class ModelSummary(NamedTuple):
    """Per-model theory quantities, each of shape (num_models,) (risk_gain: (num_models, n_lam))."""

    mi_teacher_student: np.ndarray
    mi_student_label: np.ndarray
    gap: np.ndarray
    slope: np.ndarray
    lambda_max: np.ndarray
    risk_gain: np.ndarray  # R(λ) − R0 at the audit's λ values
    baseline: np.ndarray  # R0
    teacher: np.ndarray  # w1, (num_models, p1)
    bounded: np.ndarray
    aligned: np.ndarray


class Audit(NamedTuple):
    """CCH against the exact small-λ verdict and against R(λ) < R0 at each λ in `lams`."""

    num_models: int
    p1: int
    p2: int
    n: int
    lams: tuple
    teacher_noise: float
    small_lambda: Confusion
    at_lambda: tuple  # one Confusion per λ
    theorem1_violations: int  # bounded ∧ aligned ∧ CCH ∧ ¬(slope < 0): must be 0
    models: ModelSummary
    cov: np.ndarray  # (num_models, d, d): the audited models themselves

    def model(self, i: int) -> JointGaussian:
        """The i-th audited model (its teacher is models.teacher[i])."""
        return JointGaussian(self.cov[i], self.p1, self.p2)

    def to_dict(self) -> dict:
        """JSON-ready summary (per-model arrays left out)."""
        return {
            "num_models": self.num_models,
            "p1": self.p1,
            "p2": self.p2,
            "n": self.n,
            "teacher": "optimal (w1 = Σ11⁻¹Σ1y)"
            + (f" + noise {self.teacher_noise:g}" if self.teacher_noise else ""),
            "teacher_noise": self.teacher_noise,
            "small_lambda": self.small_lambda._asdict(),
            "at_lambda": [
                {"lam": float(lam), **c._asdict()}
                for lam, c in zip(self.lams, self.at_lambda, strict=True)
            ],
            "theorem1_violations": self.theorem1_violations,
            "fraction_assumptions_hold": float(np.mean(self.models.bounded & self.models.aligned)),
        }


def _summarise(cov, xi, p1, p2, n, lams, teacher_noise) -> ModelSummary:
    """Every per-model quantity of the audit, from the public functions (jit/vmap-safe)."""
    model = JointGaussian.unchecked(cov, p1, p2)
    w_opt = optimal_teacher(model)
    w1 = w_opt + teacher_noise * jnp.linalg.norm(w_opt) / np.sqrt(p1) * xi
    i_ts, i_sy = mi_teacher_student(model, w1), mi_student_label(model)
    r0 = baseline_risk(model, n)
    a = theorem1_assumptions(model, w1)
    return ModelSummary(
        mi_teacher_student=i_ts,
        mi_student_label=i_sy,
        gap=i_ts - i_sy,
        slope=risk_slope_at_zero(model, w1, n),
        lambda_max=helpful_lambda_max(model, w1, n),
        risk_gain=expected_risk(model, w1, lams, n) - r0,
        baseline=r0,
        teacher=w1,
        bounded=a.bounded,
        aligned=a.aligned,
    )


@float64
def audit(
    key,
    *,
    num_models: int = 10_000,
    p1: int = 5,
    p2: int = 5,
    n: int = 50,
    lams=(0.2, 0.5, 1.0, 2.0),
    teacher_noise: float = 0.0,
    **family,
) -> Audit:
    """Over `num_models` random models (`random_model`), tabulate CCH's verdict against the exact
    small-λ verdict (c < σ²) and against R(λ) < R0 at each λ in `lams`.

    The teacher is the optimal one, w1 = Σ11⁻¹Σ1y, perturbed when `teacher_noise` > 0:
    w1 + teacher_noise·‖w1‖/√p1·ξ, ξ ~ N(0, I) (an imperfectly trained teacher).
    `family` is passed to `random_model`."""
    finite_sample_factor(n, p2)  # n > p2 + 1, checked before any work
    lams_arr = jnp.asarray(lams, dtype=jnp.float64)
    if lams_arr.ndim != 1 or np.any(np.asarray(lams_arr) < 0):
        raise ValueError(f"lams={list(lams)} must be a 1-d sequence of values >= 0")
    if not float(teacher_noise) >= 0:
        raise ValueError(f"teacher_noise={teacher_noise} must be >= 0")
    key_model, key_teacher = jax.random.split(key)
    models = random_model(key_model, p1, p2, num=num_models, **family)
    xi = jax.random.normal(key_teacher, (int(num_models), p1))
    summarise = lambda c, x: _summarise(c, x, p1, p2, n, lams_arr, float(teacher_noise))
    summ = jax.jit(jax.vmap(summarise))(models.cov, xi)
    summ = ModelSummary(*(np.asarray(x) for x in summ))
    cch = summ.gap > 0
    helps = summ.slope < 0
    violations = int(np.sum(summ.bounded & summ.aligned & cch & ~helps))
    return Audit(
        num_models=int(num_models),
        p1=p1,
        p2=p2,
        n=n,
        lams=tuple(float(x) for x in lams),
        teacher_noise=float(teacher_noise),
        small_lambda=Confusion.count(cch, helps),
        at_lambda=tuple(Confusion.count(cch, summ.risk_gain[:, j] < 0) for j in range(len(lams))),
        theorem1_violations=violations,
        models=summ,
        cov=np.asarray(models.cov),
    )


def factor_model(
    p1: int,
    p2: int,
    *,
    teacher_noise: float,
    student_noise: float = 1.0,
    label_noise: float = 1.5,
    teacher_specific: float = 0.5,
    student_specific: float = 0.2,
    rank: int = 5,
    seed: int = 0,
) -> JointGaussian:
    """A one-parameter-at-a-time latent factor model (used by `theorem1_curves`).

    Latents z (shared), u1 (teacher-specific), u2 (student-specific), each N(0, I_rank):

        x1 = A1 z + B1 u1 + τ1 ε1,   x2 = A2 z + B2 u2 + τ2 ε2,
        y  = aᵀz + β1·a1ᵀu1 + β2·a2ᵀu2 + τy ε,

    loadings A·, B· i.i.d. N(0, 1/rank) and unit vectors a, a1, a2 drawn from `seed`;
    τ1 = teacher_noise, τ2 = student_noise, τy = label_noise, β1 = teacher_specific,
    β2 = student_specific. Raising τ1 blurs the teacher's view of the shared factor z and moves
    the MI gap I(t; s) − I(s; y) from positive to negative; the label noise τy is what a good
    teacher can average out for the student.
    """
    noises = {"teacher_noise": teacher_noise, "student_noise": student_noise}
    for name, val in {**noises, "label_noise": label_noise}.items():
        if not val > 0:
            raise ValueError(f"{name}={val} must be > 0 (keeps Σ positive definite)")
    rng = np.random.default_rng(seed)
    r = int(rank)
    load = lambda p: rng.normal(size=(p, r)) / np.sqrt(r)
    unit = lambda: (lambda v: v / np.linalg.norm(v))(rng.normal(size=r))
    A1, A2, B1, B2 = load(p1), load(p2), load(p1), load(p2)
    a, a1, a2 = unit(), unit(), unit()
    L = np.zeros((p1 + p2 + 1, 3 * r))
    L[:p1, :r], L[:p1, r : 2 * r] = A1, B1
    L[p1 : p1 + p2, :r], L[p1 : p1 + p2, 2 * r :] = A2, B2
    L[-1] = np.concatenate([a, teacher_specific * a1, student_specific * a2])
    noise = np.concatenate([np.full(p1, teacher_noise), np.full(p2, student_noise), [label_noise]])
    return JointGaussian(L @ L.T + np.diag(noise**2), p1, p2)
