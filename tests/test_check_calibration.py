"""A fast subset of the `cch check` calibration suite (experiments/check_calibration.py).

Tasks with a known gap I(H1; H2) − I(H2; Y): a rotated Gaussian (closed form) and a binary
heteroscedastic mixture (quadrature), 2 dims per side, n = 500, true gaps −0.3 … +0.3, 2 replicates.
The full grid and its table are in docs/check_calibration.md.
"""

import json

import numpy as np
from scipy import stats

from experiments import check_calibration as cal


def test_calibration_subset_is_never_confidently_wrong_and_covers_the_gap(tmp_path):
    out = tmp_path / "cal"
    argv = [
        "--families",
        "gauss-spread",
        "mix2",
        "--dims",
        "2",
        "--ns",
        "500",
        "--reps",
        "2",
        "--out",
        str(out),
        "--doc",
        str(tmp_path / "check_calibration_table.md"),
        "--fig",
        str(tmp_path / "c.png"),
    ]
    assert cal.main(argv) == 0
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 * len(cal.GAPS) * 2
    assert not any(cal.wrong(r) for r in runs)
    big = [r for r in runs if abs(r["gap"]) >= 0.3]
    assert all(cal.confident(r["verdict"]) for r in big)  # decisive (and, above, right)
    # Gap coverage: at a true 95 % it is below 22 of 28 with probability < 1e-3.
    hits = sum(r["gap_ci"][0] <= r["true_gap"] <= r["gap_ci"][1] for r in runs)
    assert stats.binom.cdf(hits, len(runs), 0.95) > 1e-3, hits
    # A second call resumes: nothing recomputed, the same summary.
    assert cal.main([*argv, "--summarise-only"]) == 0
    assert len((out / "runs.jsonl").read_text().splitlines()) == len(runs)
    assert "| gauss-spread | 2 | 500 |" in (tmp_path / "check_calibration_table.md").read_text()
    assert (tmp_path / "c.png").stat().st_size > 0


def test_ground_truth_of_the_calibration_tasks():
    """The tasks' closed-form / quadrature MIs against an independent Monte Carlo on samples."""
    rng = np.random.default_rng(0)
    # Gaussian: the sample canonical correlations give I = −½ Σ log(1 − ρ_i²) within MC error.
    sample, i12, i2y, labels = cal.make_task("gauss-spread", 2, 0.1, seed=3)
    h1, h2, y = sample(rng, 200_000)
    c = np.corrcoef(np.c_[h1, h2], rowvar=False)
    ld = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
    est = 0.5 * (ld(c[:2, :2]) + ld(c[2:, 2:]) - ld(c))
    assert abs(est - i12) < 0.01 and abs(i12 - i2y - 0.1) < 1e-12
    # Mixture: I(U; Y) by MC of log p(u | y) − log p(u) against the quadrature.
    means, scales = cal.MIX["mix2"]
    yy = rng.integers(0, 2, 200_000)
    u = means[yy] + scales[yy] * rng.standard_normal(yy.size)
    logc = stats.norm.logpdf(u[:, None], means, scales)
    t = logc[np.arange(u.size), yy] - np.log(np.mean(np.exp(logc), axis=1))
    assert abs(t.mean() - cal.mixture_mi(means, scales)) < 4 * t.std() / np.sqrt(t.size)


def test_the_surrogate_correlation_carries_the_bias_corrected_mis():
    """debiased_correlation: each block MI equals plug-in − logdet_bias (floored at 0); the
    within-block correlations are untouched; independent blocks get no dependence at all."""
    from cch_jax.mi.check import _block_mi, debiased_correlation
    from cch_jax.mi.gaussian import logdet_bias

    rng = np.random.default_rng(4)
    n, (d1, d2, dy) = 300, (6, 5, 2)
    z2 = rng.standard_normal((n, d2))
    z = np.c_[
        z2[:, :3] @ rng.standard_normal((3, d1)) + rng.standard_normal((n, d1)),
        z2,
        rng.standard_normal((n, dy)),
    ]
    r = np.corrcoef(z, rowvar=False)
    out = debiased_correlation(r, n, (d1, d2, dy))
    s1, s2, sy = slice(0, d1), slice(d1, d1 + d2), slice(d1 + d2, None)
    want12 = _block_mi(r, s1, s2, 1.0) - logdet_bias(n, d1, d2)
    assert want12 > 0.3 and abs(_block_mi(out, s1, s2, 1.0) - want12) < 1e-9
    # Y is independent of H2 here: its plug-in MI is below the bias, so the block is zeroed.
    assert _block_mi(r, s2, sy, 1.0) < logdet_bias(n, d2, dy)
    assert np.all(out[s2, sy] == 0) and np.all(out[s1, sy] == 0)
    for s in (s1, s2, sy):
        np.testing.assert_array_equal(out[s, s], r[s, s])


def test_mix10_low_dim_runs_that_fooled_the_score_space_surrogate_are_not_confident():
    """mix10, 2 dims per side, n = 500: ten clusters along one student direction. These three runs
    were confidently wrong ("cch-fails" at true gaps 0 and +0.03) when the class surrogate was
    fitted only to the normal scores; with the second, standardised-space surrogate each family's
    interval is the union of both calibrations, contains the true gap, and the verdict is honest."""
    for gap, rep in ((0.0, 1), (0.03, 0), (0.03, 2)):
        r = cal.run_one("mix10", 2, 500, gap, rep)
        assert r["validated"], r
        assert not cal.wrong(r), r
        lo, hi = r["gap_ci"]
        assert lo <= r["true_gap"] <= hi, r
