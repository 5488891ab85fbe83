"""Tests aimed at plausible bugs that the rest of the suite let through (one test per bug class).

Each check uses a reference that does not share the code's expression: a brute-force grid over
λ, a hand derivation for a special teacher, an explicit NumPy gradient-descent loop, a simulation
whose tolerance comes from its own standard error. docs/testing.md lists the bugs and which test
here catches each.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from scipy import stats

import theory
from cch_jax.cli import main as cli
from cch_jax.mi import estimate
from cch_jax.mi.check import check_cch
from cch_jax.train import ArrayData, GaussianSource, TrainConfig, make_train


def run_json(args, capsys):
    """`cch ARGS --json` in-process: (exit code, parsed JSON)."""
    capsys.readouterr()
    rc = cli([*args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- cch theory JSON


@pytest.fixture(scope="module")
def model_finite():
    """A model whose optimal teacher has a finite λ* and a finite, distinct λmax at n = 20."""
    model = theory.random_model(jax.random.key(0), 3, 3)
    return model, np.asarray(theory.optimal_teacher(model)), 20


def test_theory_json_lambdas_and_risk_min_against_a_grid(model_finite, tmp_path, capsys):
    """λ*, λmax, R_min, R0 and the slope from `cch theory --json`, against a brute-force grid of
    the same command's risks (R(λ) itself is checked against Monte Carlo elsewhere)."""
    model, _, n = model_finite
    np.save(tmp_path / "cov.npy", model.cov)
    base = ["theory", "--cov", str(tmp_path / "cov.npy"), "--p1", "3", "--n", str(n)]
    _, r = run_json(base, capsys)
    assert 0 < r["lambda_star"] < r["lambda_max"] < np.inf  # the case that tells them apart

    grid = np.concatenate([[0.0], np.geomspace(1e-4, 10.0, 3000)])
    rc, g = run_json([*base, "--lam", *map(repr, grid.tolist())], capsys)
    assert rc == 0
    risk = np.asarray(g["risk"])
    r0 = risk[0]
    assert r["baseline_risk"] == pytest.approx(r0, rel=1e-12)
    # λ*: the grid's minimiser (grid ratio 1.003 per step).
    assert r["lambda_star"] == pytest.approx(grid[np.argmin(risk)], rel=5e-3)
    assert r["risk_min"] <= risk.min() + 1e-12 and r["risk_min"] == pytest.approx(risk.min())
    # λmax: the end of the set where KD helps (R(λ) < R0).
    helps = grid[1:][risk[1:] < r0]
    assert helps.min() == grid[1] and r["lambda_max"] == pytest.approx(helps.max(), rel=5e-3)
    # dR/dλ at 0 by a forward difference (error O(h) relative).
    h = 1e-7
    _, fd = run_json([*base, "--lam", "0", repr(h)], capsys)
    slope = (fd["risk"][1] - fd["risk"][0]) / h
    assert r["risk_slope_at_zero"] == pytest.approx(slope, rel=1e-4)
    assert r["kd_helps_small_lambda"] == (slope < 0)


def _rho2(cov, a, b):
    return (a @ cov @ b) ** 2 / ((a @ cov @ a) * (b @ cov @ b))


def test_theory_json_mis_verdicts_and_assumptions_by_hand(model_finite, tmp_path, capsys):
    model, w1, n = model_finite
    cov = np.asarray(model.cov)
    np.save(tmp_path / "cov.npy", cov)
    # A teacher that points the wrong way: Cov(t, s) < 0, so it is not "aligned".
    for teacher in (w1, -w1, 3.0 * w1):
        np.save(tmp_path / "w1.npy", teacher)
        rc, r = run_json(
            [
                "theory",
                "--cov",
                str(tmp_path / "cov.npy"),
                "--p1",
                "3",
                "--n",
                str(n),
                "--w1",
                str(tmp_path / "w1.npy"),
            ],
            capsys,
        )
        assert rc == 0
        a = np.r_[teacher, np.zeros(4)]  # t = aᵀ(x1, x2, y)
        w_star = np.linalg.solve(cov[3:6, 3:6], cov[3:6, 6])
        b = np.r_[np.zeros(3), w_star, 0.0]  # s = bᵀ(x1, x2, y)
        # I(x2; y) from determinants: a different route from the scalar ρ² of s and y.
        i_sy = 0.5 * np.log(np.linalg.det(cov[3:6, 3:6]) * cov[6, 6] / np.linalg.det(cov[3:, 3:]))
        i_ts = -0.5 * np.log(1 - _rho2(cov, a, b))
        assert r["mi_teacher_student"] == pytest.approx(i_ts, rel=1e-10)
        assert r["mi_student_label"] == pytest.approx(i_sy, rel=1e-10)
        assert r["cch_holds"] == (i_ts > i_sy)
        assert r["assumptions"]["bounded"] == bool(a @ cov @ a <= cov[6, 6])
        assert r["assumptions"]["aligned"] == bool(a @ cov @ b > 0)


def test_aligned_is_the_sign_of_cov_t_s():
    model = theory.random_model(jax.random.key(0), 3, 3)
    w1 = np.asarray(theory.optimal_teacher(model))
    cov = np.asarray(model.cov)
    w_star = np.linalg.solve(cov[3:6, 3:6], cov[3:6, 6])
    cov_ts = w1 @ cov[:3, 3:6] @ w_star
    assert cov_ts > 0
    assert bool(theory.theorem1_assumptions(model, w1).aligned)
    assert not bool(theory.theorem1_assumptions(model, -w1).aligned)  # Cov(−t, s) < 0


def test_zero_teacher_is_shrinkage_with_a_hand_derived_risk(model_finite, tmp_path, capsys):
    """With w1 = 0 the KD target is y/(1+λ): ŵ(λ) = ŵ_OLS/(1+λ). Then
    E‖ŵ(λ) − w*‖²_Σ22 = (λ/(1+λ))²·w*ᵀΣ22w* + k·σ²/(1+λ)², k = p2/(n − p2 − 1)."""
    model, _, n = model_finite
    cov = np.asarray(model.cov)
    np.save(tmp_path / "cov.npy", cov)
    np.save(tmp_path / "w1.npy", np.zeros(3))
    lams = [0.0, 0.3, 1.0, 4.0]
    rc, r = run_json(
        [
            "theory",
            "--cov",
            str(tmp_path / "cov.npy"),
            "--p1",
            "3",
            "--n",
            str(n),
            "--w1",
            str(tmp_path / "w1.npy"),
            "--lam",
            *map(str, lams),
        ],
        capsys,
    )
    assert rc == 0
    w_star = np.linalg.solve(cov[3:6, 3:6], cov[3:6, 6])
    sigma2 = cov[6, 6] - cov[6, 3:6] @ w_star
    k = 3 / (n - 3 - 1)
    lam = np.asarray(lams)
    d = w_star @ cov[3:6, 3:6] @ w_star  # the bias term: λw*/(1+λ) away from w*
    want = sigma2 + (lam**2 * d + k * sigma2) / (1 + lam) ** 2
    np.testing.assert_allclose(r["risk"], want, rtol=1e-12)
    assert r["assumptions"]["aligned"] is False  # Cov(t, s) = 0


def test_example_model_fails_cch_yet_kd_helps_at_every_lambda(capsys):
    """The claim made for `cch theory --example` (README, help): CCH fails, KD helps at all λ."""
    grid = np.geomspace(1e-3, 1e3, 61)
    rc, r = run_json(["theory", "--example", "--lam", "0", *map(repr, grid.tolist())], capsys)
    assert rc == 0
    assert r["cch_holds"] is False and r["kd_helps_small_lambda"] is True
    assert float(r["lambda_max"]) == np.inf
    assert all(x < r["baseline_risk"] for x in r["risk"][1:])


# --------------------------------------------------------------------------- audit


@pytest.fixture(scope="module")
def noisy_audit():
    return theory.audit(jax.random.key(3), num_models=400, p1=3, p2=3, n=20, teacher_noise=3.0)


def test_audit_per_lambda_table_matches_the_helpful_interval(noisy_audit):
    """R(λ) < R0 ⇔ λ < λmax (the interval result, checked against a grid in
    test_theory_identities): the per-λ tables must count models that way, and the small-λ table
    must count λmax > 0 as "helps"."""
    a = noisy_audit
    m = a.models
    cch = np.asarray(m.gap) > 0
    lmax = np.asarray(m.lambda_max)

    def table(helps):
        return [
            int(np.count_nonzero(cch & helps)),
            int(np.count_nonzero(cch & ~helps)),
            int(np.count_nonzero(~cch & helps)),
            int(np.count_nonzero(~cch & ~helps)),
        ]

    assert list(a.small_lambda) == table(lmax > 0)
    for lam, conf in zip(a.lams, a.at_lambda, strict=True):
        assert list(conf) == table(lmax > lam), lam
    # Not vacuous: at the largest λ some models are helped and some hurt.
    helped = np.count_nonzero(lmax > max(a.lams))
    assert 0 < helped < a.num_models
    assert a.to_dict()["at_lambda"][0]["cch_and_helps"] == a.at_lambda[0].cch_and_helps


def test_audit_noisy_teachers_are_sometimes_misaligned(noisy_audit):
    """Noise of 3× the teacher's scale flips the sign of Cov(t, s) for a good share of models;
    `aligned` must say so (and |Cov| > 0 would call every model aligned)."""
    aligned = np.asarray(noisy_audit.models.aligned)
    assert 0.05 < 1 - aligned.mean() < 0.95
    # Misaligned teachers are never counted as satisfying Theorem 1's assumptions.
    assert noisy_audit.to_dict()["fraction_assumptions_hold"] <= aligned.mean()


# --------------------------------------------------------------------------- training runs


def test_cosine_schedule_against_an_explicit_gradient_descent_loop():
    """SGD with the cosine schedule, lr_t = lr·½(1 + cos(π t/T)), t = 0…T−1 (TrainConfig's
    documented schedule), from the run's own initial weights (a run with lr = 0 returns them),
    reproduced by a plain NumPy loop on mean (y − f)² + λ·mean (f − t)², f = Xw + b."""
    rng = np.random.default_rng(0)
    n, p, T, lam, lr = 30, 3, 40, 0.7, 0.2
    x = rng.standard_normal((n, p))
    y = x @ np.array([1.0, -0.5, 0.2]) + 0.3 + 0.5 * rng.standard_normal(n)
    t = x @ np.array([0.8, -0.2, 0.0]) + 0.1
    data = ArrayData(x, y, t, x[:5], y[:5])
    config = TrainConfig(
        data=data,
        model="linear",
        model_kwargs={"use_bias": True},
        steps=T,
        eval_every=T,
        optimizer="sgd",
        schedule="cosine",
    )
    train = jax.jit(make_train(config))
    key = jax.random.key(4)
    head0 = train(data, key, lam, 1.0, 0.0).params["params"]["head"]
    head = train(data, key, lam, 1.0, lr).params["params"]["head"]
    w, b = np.asarray(head0["kernel"][:, 0], float), float(head0["bias"][0])
    for step in range(T):
        f = x @ w + b
        r = -2 * (y - f) / n + 2 * lam * (f - t) / n  # ∂loss/∂f_i
        rate = lr * 0.5 * (1 + np.cos(np.pi * step / T))
        w, b = w - rate * (x.T @ r), b - rate * r.sum()
    np.testing.assert_allclose(np.asarray(head["kernel"][:, 0]), w, rtol=1e-10, atol=1e-12)
    assert float(head["bias"][0]) == pytest.approx(b, rel=1e-10, abs=1e-12)
    # The same loop with the schedule that stops at lr/2 lands measurably elsewhere.
    assert abs(b - float(head0["bias"][0])) > 1e-3


def test_exact_risk_of_a_student_with_a_bias():
    """The Gaussian runs' test metric is E(y − wᵀx2 − b)² over the population, here from Σ by
    hand: Var(y − wᵀx2) + b² (the model has mean 0)."""
    model = theory.random_model(jax.random.key(1), 3, 4)
    source = GaussianSource(model, 12)
    config = TrainConfig(
        data=source,
        model="linear",
        model_kwargs={"use_bias": True},
        steps=300,
        eval_every=300,
        optimizer="adam",
    )
    res = jax.jit(make_train(config))(None, jax.random.key(0), 0.5, 1.0, 0.05)
    head = res.params["params"]["head"]
    w, b = np.asarray(head["kernel"][:, 0], float), float(head["bias"][0])
    assert abs(b) > 0.05  # a bias worth scoring: b² far above the tolerance
    cov = np.asarray(model.cov)
    a = np.r_[np.zeros(3), -w, 1.0]  # y − wᵀx2 = aᵀ(x1, x2, y)
    np.testing.assert_allclose(float(res.metrics.test[-1]), a @ cov @ a + b**2, rtol=1e-10)


# --------------------------------------------------------------------------- cch verify


def test_verify_does_not_agree_when_students_have_not_converged(capsys):
    """100 Adam steps leave the students ~2 % from their ŵ(λ): their risks are still within the
    noise of 16 students (|z| < 4), but the verdict must not be "agrees", nor the exit status 0.
    (In chunks of 6, 6 and 4 students: --chunk-size is passed through; that chunking leaves the
    numbers unchanged is tests/test_scan.py's business.)"""
    argv = ["verify", "--example", "--seeds", "16", "--steps", "100", "--chunk-size", "6"]
    rc, r = run_json(argv, capsys)
    assert [x["students"] for x in r["results"]] == [16, 16, 16]
    assert all(abs(x["z"]) < 4 for x in r["results"])  # the case where only convergence can fail
    assert max(x["max_rel_weight_error"] for x in r["results"]) > 10 * 1e-3
    assert r["verdict"] != "agrees" and r["agrees"] is False and rc != 0


# --------------------------------------------------------------------------- MI intervals


def test_mi_interval_is_95_percent_by_its_quantile():
    """Half-width / stderr is the 97.5 % quantile: normal for the Gaussian estimator, Student t
    with subsets − 1 degrees of freedom for the subset-based kNN stderr."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400)
    y = 0.6 * x + 0.8 * rng.standard_normal(400)
    cases = [("gaussian", stats.norm.ppf(0.975)), ("ksg", stats.t.ppf(0.975, 10 - 1))]
    for name, q in cases:
        e = estimate(x, y, key=jax.random.key(0), estimator=name, subsets=10)
        assert (e.ci_high - e.value) / e.stderr == pytest.approx(q, rel=1e-9), name
        assert (e.value - e.ci_low) / e.stderr == pytest.approx(q, rel=1e-9), name


def test_gaussian_mi_interval_covers_95_percent_by_simulation():
    """2000 data sets with a known I = −½ log(1 − ρ²): coverage within ±4 binomial SD (0.005) of
    95 %, which a 99 % (or a 90 %) interval would not reach."""
    rng = np.random.default_rng(1)
    rho, n, reps = 0.6, 1000, 2000
    true = -0.5 * np.log(1 - rho**2)
    hits = 0
    for r in range(reps):
        x = rng.standard_normal(n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        e = estimate(x, y, key=jax.random.key(r), estimator="gaussian")
        hits += e.ci_low <= true <= e.ci_high
    sd = np.sqrt(0.95 * 0.05 / reps)
    assert abs(hits / reps - 0.95) < 4 * sd + 0.005, hits / reps  # + the estimator's own skew


# --------------------------------------------------------------------------- cch check gap


def test_check_gc_gap_stderr_and_coverage_over_data_sets():
    """The gc family's gap stderr against the SD of its corrected gap over 200 independent data
    sets with a known gap, and its 95 % interval's coverage of that gap.

    Data: h2 ~ N(0, I3), h1 = 0.8·h2 + 0.6·noise (ρ = 0.8 per column), y = 0.5·aᵀh2 + √0.75·noise
    (ρ² = 0.25), so I(H1; H2) = −(3/2) log(1 − 0.64) and I(H2; Y) = −½ log(0.75).
    Tolerances: the SD over 200 sets has relative error 1/√398 ≈ 0.05 (the mean of the reported
    stderrs, each from 40 surrogates, ≈ 0.01), so the ratio is within 4 SD of 1 in [0.8, 1.25];
    the coverage has binomial SD √(0.95·0.05/200) ≈ 0.015, so it is above 0.95 − 4·0.015 = 0.89.
    A stderr 3× too small gives a ratio ~0.3 and a coverage ~0.5; a 99 % interval labelled 95 %
    is caught by its quantile (t with B − 1 = 39 degrees of freedom, docs: check.py step 3)."""
    rng = np.random.default_rng(2)
    n, d, reps = 600, 3, 200
    a = np.ones(d) / np.sqrt(d)
    true = -0.5 * d * np.log(1 - 0.64) + 0.5 * np.log(1 - 0.25)
    q = stats.t.ppf(0.975, 40 - 1)
    gaps, ses, hits = [], [], 0
    for r in range(reps):
        h2 = rng.standard_normal((n, d))
        h1 = 0.8 * h2 + 0.6 * rng.standard_normal((n, d))
        y = 0.5 * h2 @ a + np.sqrt(0.75) * rng.standard_normal(n)
        res = check_cch(h1, h2, y[:, None], labels=False, seed=r, families=("gc",), surrogates=40)
        (fam,) = res.families
        g = fam["gap"]
        assert res.gap == g["value"] and tuple(res.gap_ci) == tuple(g["ci"])
        assert g["ci"][1] - g["value"] == pytest.approx(q * g["stderr"], rel=1e-9)
        assert g["value"] - g["ci"][0] == pytest.approx(q * g["stderr"], rel=1e-9)
        gaps.append(g["value"])
        ses.append(g["stderr"])
        hits += g["ci"][0] <= true <= g["ci"][1]
    ratio = np.sqrt(np.mean(np.square(ses))) / np.std(gaps, ddof=1)
    assert 0.8 < ratio < 1.25, ratio
    assert hits / reps > 0.89, hits / reps


def test_check_knn_bias_correction_removes_the_ksg_bias():
    """KSG on 3 + 3 dims at n = 600 underestimates this gap by ~0.2 nats (its raw mean is far
    outside the band below); the surrogate-corrected gap must be unbiased: its mean over 12 data
    sets within 4 standard errors (from the observed spread; t with 11 dof, p ≈ 0.002) of the
    closed-form gap. A correction with the wrong sign, or none, lands ≥ 0.2 nats away."""
    rng = np.random.default_rng(2)
    n, d, reps = 600, 3, 12
    a = np.ones(d) / np.sqrt(d)
    true = -0.5 * d * np.log(1 - 0.64) + 0.5 * np.log(1 - 0.25)
    value, raw = [], []
    for r in range(reps):
        h2 = rng.standard_normal((n, d))
        h1 = 0.8 * h2 + 0.6 * rng.standard_normal((n, d))
        y = 0.5 * h2 @ a + np.sqrt(0.75) * rng.standard_normal(n)
        res = check_cch(
            h1, h2, y[:, None], labels=False, seed=r, families=("knn",), knn_surrogates=8
        )
        (fam,) = res.families
        value.append(fam["gap"]["value"])
        raw.append(fam["gap"]["raw"])
    sem = np.std(value, ddof=1) / np.sqrt(reps)
    assert abs(np.mean(value) - true) < 4 * sem, (np.mean(value) - true, sem)
    assert abs(np.mean(raw) - true) > 4 * sem  # the test has power: uncorrected KSG fails it
