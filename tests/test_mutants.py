"""Tests written for mutants that survived `make mutate` (docs/testing.md lists them)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import theory


def test_empty_block_list_names_the_rule():
    model = theory.random_model(jax.random.key(0), 2, 2)
    with pytest.raises(ValueError, match="must name at least one of 'x1', 'x2', 'y'"):
        theory.mi_blocks(model, [], "y")


# A model worked by hand: x2 carries no information (Σ22 = 1, independent of x1 and y), x1 and y
# are standard with Cov(x1, y) = ½. So w* = 0, σ² = Var(y | x2) = 1, and for the teacher
# t = w·x1: v = 0 (t has no x2 part), D = ‖v − w*‖² = 0, σt² = w², c = Cov(y, t | x2) = w/2.
# With p2 = 1 and n = 12, k = p2/(n − p2 − 1) = 1/10, and eq. 7 reads
#     R(λ) = 1 + k(1 + λw + λ²w²)/(1 + λ)².
# All inputs are exact binary fractions, so the boundary cases below are hit exactly.
HAND_COV = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]]
K = 1 / 10


def hand_risk(w, lam):
    lam = np.asarray(lam, float)
    return 1 + K * (1 + lam * w + lam**2 * w**2) / (1 + lam) ** 2


@pytest.fixture(scope="module")
def hand_model():
    return theory.JointGaussian(np.asarray(HAND_COV), 1, 1)


def test_hand_model_risk_is_the_hand_formula(hand_model):
    lams = np.array([0.0, 0.1, 1.0, 3.0, 50.0])
    for w in (0.5, 4.0):
        got = theory.expected_risk(hand_model, np.array([w]), lams, 12)
        np.testing.assert_allclose(got, hand_risk(w, lams), rtol=1e-14)


def test_optimal_teacher_with_no_student_information_wants_infinite_lambda(hand_model):
    """The optimal teacher w = ½ (= Σ11⁻¹Σ1y): R(λ) = 1 + k(1 + λ/2 + λ²/4)/(1 + λ)², whose
    derivative has numerator −3/2 (k/(1+λ)³ · (−3/2)): R falls for every λ, so λ* = ∞ and
    λmax = ∞, and min R = the limit 1 + k/4. Here the denominator of eq. 11, D + k(σt² − c),
    is exactly 0 (the boundary between a finite and an infinite λ*)."""
    w1 = np.array([0.5])
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == np.inf
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == np.inf
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + K / 4, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(np.diff(hand_risk(0.5, grid)) < 0)  # the hand formula agrees: always falling


def test_overconfident_teacher_never_helps(hand_model):
    """w = 4: c = 2 > σ² = 1 (the numerator of eq. 11 is negative). R(λ) = 1 + k(1 + 4λ +
    16λ²)/(1 + λ)², derivative numerator 2 + 28λ > 0: R rises for every λ, so λ* = 0, λmax = 0
    and min R = R0 = 1 + k."""
    w1 = np.array([4.0])
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == 0.0
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == 0.0
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + K, rel=1e-14)
    assert float(theory.risk_slope_at_zero(hand_model, w1, 12)) == pytest.approx(2 * K, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(np.diff(hand_risk(4.0, np.r_[0.0, grid])) > 0)


def test_unit_teacher_helps_at_every_lambda_with_an_interior_optimum(hand_model):
    """w = 1: σt² = σ² = 1, so A = D + k(σt² − σ²) of eq. 10 is exactly 0 (the boundary between a
    finite and an infinite λmax). R(λ) = 1 + k(1 + λ + λ²)/(1 + λ)² < R0 = 1 + k for every λ > 0
    ((1 + λ)² > 1 + λ + λ²), so λmax = ∞; the derivative's numerator is λ − 1, so λ* = 1 and
    min R = 1 + 3k/4."""
    w1 = np.array([1.0])
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == np.inf
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == pytest.approx(1.0, rel=1e-14)
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + 0.75 * K, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(hand_risk(1.0, grid) < 1 + K)
    assert hand_risk(1.0, 1.0) < min(hand_risk(1.0, 0.9), hand_risk(1.0, 1.1))
