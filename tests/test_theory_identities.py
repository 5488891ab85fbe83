"""Exact identities of the closed-form theory, checked to float64 rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory

MODELS = [(3, 4, 0), (5, 2, 1), (2, 6, 2), (4, 4, 3)]  # (p1, p2, seed)


def make(p1, p2, seed):
    model = theory.random_model(jax.random.key(seed), p1, p2)
    return model, theory.optimal_teacher(model)


def random_teacher(model, seed):
    return np.random.default_rng(seed).normal(size=model.p1)


@pytest.fixture(params=MODELS, ids=lambda m: f"p1={m[0]},p2={m[1]},seed={m[2]}")
def case(request):
    return make(*request.param)


def test_risk_at_zero_is_baseline(case):
    model, w1 = case
    for n in (model.p2 + 2, 30, 1000):
        np.testing.assert_allclose(
            theory.expected_risk(model, w1, 0.0, n), theory.baseline_risk(model, n), rtol=1e-14
        )


def test_risk_shape_follows_lam(case):
    model, w1 = case
    lam = np.linspace(0, 3, 12).reshape(3, 4)
    assert theory.expected_risk(model, w1, lam, 40).shape == (3, 4)
    assert theory.expected_risk(model, w1, 0.5, 40).shape == ()


def test_grad_at_zero_is_slope(case):
    model, w1 = case
    grad = jax.grad(lambda lam: theory.expected_risk(model, w1, lam, 25))(0.0)
    np.testing.assert_allclose(grad, theory.risk_slope_at_zero(model, w1, 25), rtol=1e-12)


@pytest.mark.parametrize("teacher", ["optimal", "random"])
def test_optimal_lambda_minimises_risk(case, teacher):
    model, w1 = case
    if teacher == "random":
        w1 = random_teacher(model, 7)
    n = 20
    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1e4, 20001)])
    risks = np.asarray(theory.expected_risk(model, w1, grid, n))
    lam_star = float(theory.optimal_lambda(model, w1, n))
    r_min = float(theory.min_risk(model, w1, n))
    # min_risk is the infimum: no grid point is below it, and it is attained at λ*.
    assert risks.min() >= r_min - 1e-12 * abs(r_min)
    np.testing.assert_allclose(theory.expected_risk(model, w1, lam_star, n), r_min, rtol=1e-12)
    if np.isfinite(lam_star) and lam_star > 0:
        # The grid's best point lies next to λ* (the grid is log-spaced with ratio ≈ 1.0009).
        best = grid[np.argmin(risks)]
        assert abs(np.log(best / lam_star)) < 2e-3
    elif lam_star == 0:
        assert np.argmin(risks) == 0


def test_helpful_interval_is_exact(case):
    model, w1 = case
    for w in (w1, random_teacher(model, 3), random_teacher(model, 4)):
        n = 15
        r0 = float(theory.baseline_risk(model, n))
        lmax = float(theory.helpful_lambda_max(model, w, n))
        grid = np.geomspace(1e-6, 1e6, 4001)
        helps = np.asarray(theory.expected_risk(model, w, grid, n)) < r0
        if np.isinf(lmax):
            assert helps.all()
        else:
            # Inside (0, λmax) strictly helpful; beyond it not (margin for rounding at λmax).
            inside = grid < lmax * (1 - 1e-9)
            beyond = grid > lmax * (1 + 1e-9)
            assert helps[inside].all() and not helps[beyond].any()


def test_slope_sign_is_small_lambda_verdict(case):
    model, _ = case
    for seed in range(5):
        w = random_teacher(model, seed)
        slope = float(theory.risk_slope_at_zero(model, w, 30))
        assert bool(theory.kd_helps_small_lambda(model, w)) == (slope < 0)
        assert (float(theory.helpful_lambda_max(model, w, 30)) > 0) == (slope < 0)


def test_asymptotic_equals_finite_n_with_matching_k(case):
    model, w1 = case
    lam = np.array([0.0, 0.3, 1.0, 5.0])
    for n in (model.p2 + 3, 50, 400):
        gamma = model.p2 / (n - 1)  # γ/(1−γ) = p2/(n−p2−1) = k
        np.testing.assert_allclose(
            theory.asymptotic_risk(model, w1, lam, gamma),
            theory.expected_risk(model, w1, lam, n),
            rtol=1e-13,
        )


def test_risk_at_infinite_lambda_is_limit(case):
    model, w1 = case
    big = theory.expected_risk(model, w1, 1e12, 30)
    np.testing.assert_allclose(theory.expected_risk(model, w1, np.inf, 30), big, rtol=1e-9)


def by_hand_rho2(cov, a, b):
    return a @ cov @ b, a @ cov @ a, b @ cov @ b


def test_mis_match_hand_computation(case):
    model, w1 = case
    cov = np.asarray(model.cov)
    p1, p2 = model.p1, model.p2
    d = p1 + p2 + 1
    w_star = np.linalg.solve(cov[p1 : p1 + p2, p1 : p1 + p2], cov[p1 : p1 + p2, -1])
    a = np.zeros(d)
    a[:p1] = w1  # t = aᵀ[x1, x2, y]
    b = np.zeros(d)
    b[p1 : p1 + p2] = w_star  # s = bᵀ[...]
    e_y = np.zeros(d)
    e_y[-1] = 1.0
    c_ab, v_a, v_b = by_hand_rho2(cov, a, b)
    expected_ts = -0.5 * np.log1p(-(c_ab**2) / (v_a * v_b))
    c_by, _, v_y = by_hand_rho2(cov, b, e_y)
    expected_sy = -0.5 * np.log1p(-(c_by**2) / (v_b * v_y))
    np.testing.assert_allclose(theory.mi_teacher_student(model, w1), expected_ts, rtol=1e-12)
    np.testing.assert_allclose(theory.mi_student_label(model), expected_sy, rtol=1e-12)
    # s = w*ᵀx2 is sufficient for y given x2 in the Gaussian model: I(s; y) = I(x2; y).
    np.testing.assert_allclose(theory.mi_blocks(model, "x2", "y"), expected_sy, rtol=1e-10)


def test_mi_blocks_symmetric_nonnegative(case):
    model, _ = case
    pairs = [("x1", "x2"), ("x1", "y"), ("x2", "y"), (("x1", "x2"), "y"), ("x1", ("x2", "y"))]
    for a, b in pairs:
        ab, ba = theory.mi_blocks(model, a, b), theory.mi_blocks(model, b, a)
        np.testing.assert_allclose(ab, ba, rtol=1e-12)
        assert float(ab) >= 0
    # Chain rule: I(x1, x2; y) = I(x2; y) + I(x1; y | x2) ≥ I(x2; y).
    assert float(theory.mi_blocks(model, ("x1", "x2"), "y")) >= float(
        theory.mi_blocks(model, "x2", "y")
    )


def test_verdicts_match_definitions(case):
    model, w1 = case
    cch = float(theory.mi_teacher_student(model, w1)) > float(theory.mi_student_label(model))
    assert bool(theory.cch_holds(model, w1)) == cch
    a = theory.theorem1_assumptions(model, w1)
    cov = np.asarray(model.cov)
    var_t = w1 @ cov[: model.p1, : model.p1] @ w1
    assert bool(a.bounded) == (var_t <= cov[-1, -1])


def test_vmap_over_a_batch_of_models():
    models = theory.random_model(jax.random.key(5), 3, 3, num=16)
    batched = jax.vmap(lambda m: theory.expected_risk(m, theory.optimal_teacher(m), 0.5, 20))
    with jax.enable_x64(True):
        risks = batched(models)
    singles = [
        theory.expected_risk(
            theory.JointGaussian(np.asarray(c), 3, 3),
            theory.optimal_teacher(theory.JointGaussian(np.asarray(c), 3, 3)),
            0.5,
            20,
        )
        for c in models.cov
    ]
    np.testing.assert_allclose(risks, singles, rtol=1e-12)


def test_jit_gives_same_values(case):
    model, w1 = case
    f = jax.jit(lambda m, w, lam: theory.expected_risk(m, w, lam, 30))
    lam = jnp.linspace(0.0, 2.0, 7)
    np.testing.assert_allclose(f(model, w1, lam), theory.expected_risk(model, w1, lam, 30))


def test_audit_theorem1_and_not_vacuous():
    """Theorem 1 is never violated; both CCH verdicts occur in the family. (The tables against
    an independent criterion: tests/test_planted_bugs.py.)"""
    a = theory.audit(jax.random.key(0), num_models=2000, p1=4, p2=4, n=30)
    assert a.theorem1_violations == 0
    cch = a.models.gap > 0
    assert 0 < int(np.sum(cch)) < 2000
    # The per-model MIs are the closed forms of `theory.mi_*` for some model of the family: the
    # gap's range is that of I(t; s) − I(s; y) with both in [0, ∞).
    assert np.all(a.models.mi_teacher_student >= 0) and np.all(a.models.mi_student_label > 0)
