"""simulate_linear_kd's pieces: the closed-form reference in blocks, the memory budget, and the
theory functions it rests on (R(w, b), ŵ(λ)) against plain numpy."""

import jax
import numpy as np
import pytest

import theory
from cch_jax.data.gaussian import GaussianSource
from cch_jax.scan import plan_chunks
from cch_jax.simulate import closed_form_weights, seeds_per_block, simulate_linear_kd
from cch_jax.train import TrainConfig, training_set


@pytest.fixture(scope="module")
def model():
    return theory.random_model(jax.random.key(3), 2, 3)


def test_closed_forms_in_blocks_equal_one_block(model):
    # 7 seeds in blocks of 3: the last block is padded with repeats, which must be dropped.
    source = GaussianSource(model, 15, sampler="rows")  # rows: compared with a lstsq on them
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


def test_memory_budget_sizes_reference_blocks_and_refuses_the_impossible(model):
    # rows: the set (3·n·d) and one target per λ (n·L), plus L (p2 + 2)² systems; float64
    rows = GaussianSource(model, 100, sampler="rows")
    per_seed = (100 * (3 * model.dim + 2) + 2 * 2 * 5**2) * 8
    assert seeds_per_block(rows, 2, budget=10 * per_seed) == 10
    with pytest.raises(ValueError, match=r"n=100: the closed-form reference of one training set"):
        seeds_per_block(rows, 2, budget=per_seed - 1)
    # moments drawn directly: independent of n
    big = GaussianSource(model, 10**9)
    assert seeds_per_block(big, 2, budget=10 * per_seed) > 10


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


def test_a_student_over_the_memory_budget_is_refused_before_any_work(model, traces):
    before = traces["train"]
    w1 = theory.optimal_teacher(model)
    with pytest.raises(
        ValueError, match=r"n=100000: one student's training set \(rows\) .* memory budget"
    ):
        simulate_linear_kd(model, w1, 10**5, [0.0], 4, sampler="rows", memory_budget=2**20)
    assert traces["train"] == before
    # from moments, a student needs a few hundred bytes whatever n: 10⁹ fits in 4 MB, in chunks
    config = TrainConfig(data=GaussianSource(model, 10**9), steps=10, eval_every=10)
    assert 100 < plan_chunks(config, (2, 1, 1, 10**4), 10**6, 2**22) < 2 * 10**4
