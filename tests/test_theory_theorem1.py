"""Theorem 1 (our reconstruction, docs/theory.md eq. 17) as a randomised property test.

bounded (Var t ≤ Var y) ∧ aligned (Cov(t, s) > 0) ∧ CCH (I(t;s) > I(s;y))  ⇒  ∂R/∂λ(0) < 0.
Teachers are the optimal one or random directions of random scale, so all premises vary.
"""

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import theory


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    p1=st.integers(1, 6),
    p2=st.integers(1, 6),
    teacher=st.sampled_from(["optimal", "random", "blend"]),
    scale=st.floats(0.05, 3.0),
    n_extra=st.integers(2, 200),
)
def test_bounded_aligned_cch_implies_small_lambda_helps(seed, p1, p2, teacher, scale, n_extra):
    model = theory.random_model(jax.random.key(seed), p1, p2)
    rng = np.random.default_rng(seed)
    w_opt = np.asarray(theory.optimal_teacher(model))
    w_rand = rng.normal(size=p1) * scale
    w1 = {"optimal": w_opt, "random": w_rand, "blend": w_opt + w_rand}[teacher]
    n = p2 + n_extra
    a = theory.theorem1_assumptions(model, w1)
    if bool(a.bounded) and bool(a.aligned) and bool(theory.cch_holds(model, w1)):
        assert float(theory.risk_slope_at_zero(model, w1, n)) < 0


def test_premises_are_met_often_enough():
    """Guard against a vacuous property test: the premises hold in a fair share of cases."""
    hits = 0
    for seed in range(200):
        model = theory.random_model(jax.random.key(seed), 3, 3)
        w1 = np.asarray(theory.optimal_teacher(model))
        a = theory.theorem1_assumptions(model, w1)
        hits += bool(a.bounded) and bool(a.aligned) and bool(theory.cch_holds(model, w1))
    assert hits >= 10, hits
