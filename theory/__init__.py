"""Closed-form theory of cross-modal KD in the joint Gaussian linear model (docs/theory.md).

All public functions compute in float64 (scoped: see `theory._x64`) and are jit/vmap-safe.
"""

from theory.info import mi_blocks, mi_student_label, mi_teacher_student
from theory.model import (
    JointGaussian,
    KDStats,
    Population,
    kd_stats,
    kd_weights,
    optimal_teacher,
    population,
    population_risk,
    risk_from_population,
)
from theory.random import Audit, Confusion, audit, factor_model, random_model
from theory.risk import (
    asymptotic_risk,
    baseline_risk,
    expected_risk,
    helpful_lambda_max,
    min_risk,
    optimal_lambda,
    risk_slope_at_zero,
)
from theory.verdicts import Assumptions, cch_holds, kd_helps_small_lambda, theorem1_assumptions

__all__ = [
    "Assumptions",
    "Audit",
    "Confusion",
    "JointGaussian",
    "KDStats",
    "Population",
    "asymptotic_risk",
    "audit",
    "baseline_risk",
    "cch_holds",
    "expected_risk",
    "factor_model",
    "helpful_lambda_max",
    "kd_helps_small_lambda",
    "kd_stats",
    "kd_weights",
    "mi_blocks",
    "mi_student_label",
    "mi_teacher_student",
    "min_risk",
    "optimal_lambda",
    "optimal_teacher",
    "population",
    "population_risk",
    "random_model",
    "risk_from_population",
    "risk_slope_at_zero",
    "theorem1_assumptions",
]
