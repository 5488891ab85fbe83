"""The CCH verdict, the exact small-λ verdict and Theorem 1's assumptions (docs/theory.md §6)."""

from __future__ import annotations

from typing import NamedTuple

import jax

from theory._x64 import float64
from theory.info import mi_student_label, mi_teacher_student, teacher_student_moments
from theory.model import JointGaussian, check_w1, kd_stats


class Assumptions(NamedTuple):
    """Theorem 1's hypotheses: bounded Var(t) ≤ Var(y), aligned Cov(t, s) > 0."""

    bounded: jax.Array
    aligned: jax.Array


@float64
def cch_holds(model: JointGaussian, w1):
    """CCH verdict: I(t; s) > I(s; y) (eq. 15)."""
    return mi_teacher_student(model, w1) > mi_student_label(model)


@float64
def kd_helps_small_lambda(model: JointGaussian, w1):
    """Exact verdict (eq. 16): ∂R/∂λ(0) = 2k(c − σ²) < 0 ⇔ c < σ², whatever n (k > 0)."""
    s = kd_stats(model, check_w1(model, w1))
    return s.c < s.sigma2


@float64
def theorem1_assumptions(model: JointGaussian, w1) -> Assumptions:
    """(bounded, aligned) for the teacher w1 and the best student s = w*ᵀx2."""
    var_t, _, cov_ts, var_y = teacher_student_moments(model, check_w1(model, w1))
    return Assumptions(bounded=var_t <= var_y, aligned=cov_ts > 0)
