"""simulate_linear_kd's pieces: the closed-form reference in blocks, the memory budget, and the
theory functions it rests on (R(w, b), ŵ(λ)) against plain numpy."""

import jax
import numpy as np
import pytest

import theory
from cch_jax.data.gaussian import GaussianSource
from cch_jax.simulate import closed_form_weights, simulate_linear_kd, students_per_chunk
from cch_jax.train import training_set


@pytest.fixture(scope="module")
def model():
    return theory.random_model(jax.random.key(3), 2, 3)


def test_closed_forms_in_blocks_equal_one_block(model):
    # 7 seeds in blocks of 3: the last block is padded with repeats, which must be dropped.
    source = GaussianSource(model, 15)
    lams, seeds = np.array([0.0, 0.7]), np.arange(10, 17)
    blocked = closed_form_weights(source, lams, seeds, block=3)
    whole = closed_form_weights(source, lams, seeds, block=7)
    assert blocked.shape == (2, 7, 3)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)
    x2, y, t = (np.asarray(a) for a in training_set(source, None, jax.random.key(16)))
    target = (y + 0.7 * t) / 1.7
    np.testing.assert_allclose(blocked[1, -1], np.linalg.lstsq(x2, target)[0], rtol=1e-10)


def test_population_risk_is_the_expanded_quadratic(model):
    cov, x2 = np.asarray(model.cov), model.block_index("x2")
    w, b = np.array([0.3, -1.2, 0.5]), 0.4
    expanded = cov[-1, -1] - 2 * w @ cov[x2, -1] + w @ cov[x2, x2] @ w + b**2
    assert float(theory.population_risk(model, w, b)) == pytest.approx(expanded, rel=1e-12)
    best = theory.population(model)
    sigma2 = theory.kd_stats(model, theory.optimal_teacher(model)).sigma2
    assert float(theory.population_risk(model, best.w_star)) == pytest.approx(sigma2, rel=1e-12)


def test_memory_budget_sizes_chunks_and_refuses_the_impossible(model):
    per_student = 3 * 100 * model.dim * 8  # float64 in the test suite
    assert students_per_chunk(model, 100, budget=10 * per_student) == 10
    with pytest.raises(ValueError, match=r"n=100: one training set of 100 × 6 needs"):
        students_per_chunk(model, 100, budget=per_student - 1)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"seeds": 1}, ValueError, "seeds=1 must be >= 2"),
        ({"lams": [-1.0]}, ValueError, "lam=-1.0 must be >= 0"),
        ({"n": 4}, ValueError, r"n=4 must exceed p2\+1=4"),
        ({"w1": np.ones(3)}, ValueError, r"w1 of shape \(3,\)"),
        ({"steps": 0}, ValueError, "steps=0 must be >= 1"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate=0.0 must be > 0"),
    ],
)
def test_bad_arguments_fail_before_training(model, kwargs, err, match, traces):
    args = dict(w1=theory.optimal_teacher(model), n=20, lams=[0.0], seeds=4)
    args.update({k: v for k, v in kwargs.items() if k in args})
    options = {k: v for k, v in kwargs.items() if k not in args}
    before = traces["train"]
    with pytest.raises(err, match=match):
        simulate_linear_kd(model, args["w1"], args["n"], args["lams"], args["seeds"], **options)
    assert traces["train"] == before  # nothing was traced, let alone trained
