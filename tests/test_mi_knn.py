"""The JAX kNN estimators against independent scipy cKDTree implementations (float64, 1e-6)."""

import jax
import numpy as np
import pytest

from cch_jax.mi import estimate, ksg, mixed
from cch_jax.mi.knn import kth_smallest
from cch_jax.mi.reference import ksg_reference, mixed_reference


def _gauss(seed, n, dx, dy, rho):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = rho * x[:, :1] @ np.ones((1, dy)) + rng.standard_normal((n, dy))
    return x, y


CASES = [  # (seed, n, dx, dy, k, tile, standardize, transform)
    (0, 500, 1, 1, 3, 128, True, None),
    (1, 777, 3, 2, 3, 128, True, None),  # n not a multiple of the tile
    (2, 600, 8, 8, 5, 64, True, None),
    (3, 400, 2, 3, 1, 37, False, None),
    (4, 513, 4, 4, 3, 512, True, np.arcsinh),
    (5, 300, 60, 2, 4, 128, True, None),  # > 48 dims: the fori_loop distance path
    (6, 450, 2, 2, 3, 128, True, lambda a: np.exp(a)),  # skewed marginals
]


@pytest.mark.parametrize("seed,n,dx,dy,k,tile,std,transform", CASES)
def test_ksg_equals_ckdtree_reference(seed, n, dx, dy, k, tile, std, transform):
    x, y = _gauss(seed, n, dx, dy, 0.7)
    if transform is not None:
        x, y = transform(x), transform(y)
    ours, zero = ksg(x, y, k=k, tile=tile, standardize=std)
    assert zero == 0
    assert ours[0] == pytest.approx(ksg_reference(x, y, k=k, standardize=std), abs=1e-6)


@pytest.mark.parametrize(
    "seed,n,classes,d,k", [(0, 600, 3, 1, 3), (1, 800, 5, 4, 2), (2, 450, 2, 2, 6)]
)
def test_mixed_equals_ckdtree_reference(seed, n, classes, d, k):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, classes, n)
    x = rng.standard_normal((n, d)) + 0.8 * lab[:, None]
    ours, _ = mixed(x, lab, k=k, tile=100)
    assert ours[0] == pytest.approx(mixed_reference(x, lab, k=k), abs=1e-6)


def test_group_kernel_equals_separate_estimates():
    """One grouped call gives the same values as separate calls on each disjoint subset."""
    x, y = _gauss(7, 900, 2, 2, 0.5)
    groups = np.random.default_rng(0).permutation(np.arange(900) % 3)
    together, _ = ksg(x, y, groups=groups, standardize=False)
    for g in range(3):
        m = groups == g
        assert together[g] == pytest.approx(ksg_reference(x[m], y[m], standardize=False), abs=1e-6)


def test_kth_smallest_counts_ties_with_multiplicity():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 5, size=(50, 30)).astype(np.float64)  # many ties
    for k in (1, 2, 3, 7):
        got = np.asarray(kth_smallest(jax.numpy.asarray(d), k))
        np.testing.assert_array_equal(got, np.sort(d, axis=1)[:, k - 1])


def test_ksg_stderr_reflects_subset_spread():
    x, y = _gauss(8, 2000, 2, 2, 0.6)
    e = estimate(x, y, key=jax.random.key(0), estimator="ksg", subsets=10)
    assert np.asarray(e.details["subset_estimates"]).shape == (10,)
    assert e.value == pytest.approx(ksg_reference(x, y), abs=1e-6)


def test_ksg_stderr_matches_the_spread_over_data_sets():
    """The stderr from one sample's subsets against the SD of the estimate over 40 independent
    samples (that SD has ~11 % relative error): a stderr off by √m would give a ratio 0.3 or 3."""
    values, ses = [], []
    for seed in range(40):
        x, y = _gauss(100 + seed, 1000, 2, 2, 0.6)
        e = estimate(x, y, key=jax.random.key(seed), estimator="ksg", subsets=10)
        values.append(e.value)
        ses.append(e.stderr)
    ratio = np.sqrt(np.mean(np.square(ses))) / np.std(values, ddof=1)
    assert 0.6 < ratio < 1.7, ratio


def test_ksg_permutation_null_is_centred_near_zero():
    """Shuffling y destroys the dependence: null values are small vs the observed MI (~0.3)."""
    from cch_jax.mi import permutation_null

    x, y = _gauss(9, 800, 2, 2, 0.6)
    obs = estimate(x, y, key=jax.random.key(1), estimator="ksg").value
    null = permutation_null(x, y, key=jax.random.key(2), estimator="ksg", num=8, observed=obs)
    assert len(null["values"]) == 8
    # KSG's sd at n=800 and I=0 is ~0.02; 8 draws: |mean| < 0.05 is > 5 sd of the mean
    assert abs(null["mean"]) < 0.05
    assert obs > 0.2
    assert null["p_value"] == pytest.approx(1 / 9)
