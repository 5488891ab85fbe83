"""Smoke tests of the real-data reproductions (multiview, omics, mnist_m) on tiny configs over the
real (small) data sets, plus the shared helpers they rely on (splits, PCA, Barber–Agakov bound,
F1/AUC, verdict tallies).

The data come from the cache (~/.cache/cch) or a download; offline and uncached, the experiment
tests skip locally and fail in CI (env ``CI`` set), as in tests/test_data_real.py.
"""

import json
import os

import numpy as np
import pytest

import experiments
from cch_jax.cli import main as cli
from cch_jax.data.real import DataUnavailableError
from experiments import _real as mv
from experiments import omics

# Tiny configs. The training programs of multiview and mnist_m compile with LLVM unoptimised
# (_real.COMPILE_FAST): their runs of 20-40 steps take a fraction of a second, their compiles
# most of each test's time.
TINY = {
    "multiview": dict(
        views=("fou", "mor"),
        noise=(0.0, 4.0),
        seeds=2,
        lams=(0.5,),
        temperatures=(2.0,),
        hidden=16,
        steps=40,
        batch_size=64,
        compiler_options=mv.COMPILE_FAST,
        # The check's gc family only: its knn family on 1000 test rows took 5.5 of this test's
        # 30 s; the omics and mnist_m smoke runs below run it.
        check_families={"full": ("gc",), "pca": ("gc",)},
    ),
    "omics": dict(
        cohorts=("kipan",),
        # Two teachers of one student view: one program (P = 2), as cheap as one teacher's.
        teachers=("mrna", "methylation"),
        students=("mirna",),
        seeds=2,
        lams=(0.5,),
        temperatures=(2.0,),
        hidden=16,
        steps=40,
        batch_size=64,
    ),
    "mnist_m": dict(
        sigmas=(0.0, 8.0),
        seeds=2,
        lams=(0.5,),
        temperatures=(2.0,),
        n_train=256,
        n_test=200,
        channels=(4,),
        hidden=16,
        steps=20,
        batch_size=32,
        pca_fit=256,
        mi_n=200,
        subsets=2,
        compiler_options=mv.COMPILE_FAST,
    ),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run each experiment once for the module: name → (summary, tmp_path)."""
    cache = {}

    def get(name):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(name)
            try:
                summary = experiments.load(name).main(
                    quick=True, out=tmp / "results", figures=tmp / "fig", **TINY[name]
                )
            except DataUnavailableError as exc:
                if os.environ.get("CI"):
                    raise
                pytest.skip(f"data not cached and not downloadable: {str(exc)[:200]}")
            cache[name] = (summary, tmp)
        return cache[name]

    return get


@pytest.mark.parametrize("name", experiments.GROUPS["real"])
def test_experiment_runs_and_replots(name, ran):
    summary, tmp_path = ran(name)
    folder = tmp_path / "results" / name
    meta = json.loads((folder / "results.json").read_text())
    assert meta["experiment"] == name and "environment" in meta
    assert meta["config"]["seeds"] == 2
    for t in summary["tallies"].values():
        parts = ("holds_helps", "holds_hurts", "fails_helps", "fails_hurts")
        assert sum(t[k] for k in parts) == t["settings"] > 0
        assert t["agree"] == t["holds_helps"] + t["fails_hurts"]
    png = tmp_path / "fig" / f"{name}.png"
    assert png.stat().st_size > 10_000
    png.unlink()
    rc = cli(["plot", str(folder), "--figures", str(tmp_path / "fig")])
    assert rc == 0 and png.is_file()


def test_multiview_numbers_are_sane(ran):
    summary, tmp = ran("multiview")
    arrays, _ = experiments._common.load_results(tmp / "results" / "multiview")
    assert arrays["kd_acc"].shape == (2, 2, 2, 2, 1)  # (student, teacher, σ, seed, grid)
    assert np.isnan(arrays["kd_acc"][0, 0]).all() and np.isfinite(arrays["kd_acc"][0, 1]).all()
    # The clean teachers beat chance (0.1) after 40 steps; σ = 4 noise costs them accuracy.
    acc = arrays["teacher_acc"].mean(-1)  # (view, σ)
    assert (acc[:, 0] > 0.15).all() and acc[:, 1].mean() < acc[:, 0].mean()
    assert np.isfinite(arrays["i12"][:, 0, 1]).all() and np.isfinite(arrays["i2y"]).all()
    assert len(summary["rows"]) == 2 * 2 and summary["diverged"] == 0


def test_omics_numbers_are_sane(ran):
    summary, tmp = ran("omics")
    arrays, _ = experiments._common.load_results(tmp / "results" / "omics")
    got = [(r["teacher_view"], r["student"], r["student_views"]) for r in summary["rows"]]
    assert got == [("mrna", "mirna", ["mirna"]), ("methylation", "mirna", ["mirna"])]
    assert arrays["kipan/student"].shape == (2, 2, 2, 3)  # (setting, seed, grid, metric)
    assert arrays["kipan/teacher"].shape == (2, 2, 3)  # (teacher, seed, metric)
    # The λ = 0 student of a view is one network whichever teacher it is paired with.
    st = arrays["kipan/student"]
    np.testing.assert_array_equal(st[0, :, 0], st[1, :, 0])
    assert (tmp / "results" / "omics" / "cohorts" / "kipan.npz").is_file()  # saved per cohort
    for row in summary["rows"]:
        assert row["teacher"]["acc"] > 0.6  # KIPAN histology: ≈ 0.95 from any view when trained
        for m in omics.METRICS:
            assert 0 <= row["no_kd"][m] <= 1 and np.isfinite(row[f"delta_{m}"])
            assert row[f"delta_{m}_beyond_2sem"] == (
                abs(row[f"delta_{m}"]) > 2 * row[f"delta_{m}_sem"]
            )
        assert np.isfinite(row["gap_knn"]) and np.isfinite(row["gap_gauss_ba"])
    assert summary["delta_beyond_2sem"]["acc"] == sum(
        r["delta_acc_beyond_2sem"] for r in summary["rows"]
    )


def test_omics_settings_are_every_ordered_view_pair_and_fusion():
    every = dict(teachers=None, students=None)
    for views in (("mrna", "mirna", "methylation"), ("mrna", "methylation", "cnv")):
        pairs = omics.cohort_pairs(views, every)
        singles = [(t, s) for t in views for s in views if t != s]
        assert [p for p in pairs if p[1] != "fusion"] == singles  # all 6 ordered pairs, in order
        assert [p for p in pairs if p[1] == "fusion"] == [(t, "fusion") for t in views]
        assert omics.fusion_views(views, views[0]) == views[1:]
        assert omics.student_views(views, views[1], "fusion") == (views[0], views[2])
        assert omics.student_views(views, views[1], views[2]) == (views[2],)
    assert omics.fusion_views(("mrna", "mirna", "methylation"), omics.TEACHER) == omics.FUSION
    assert omics.cohort_pairs(("a", "b"), every) == [("a", "b"), ("b", "a")]  # no 1-view fusion
    views = {"brca": ("mrna", "mirna", "methylation"), "paad": ("mrna", "methylation", "cnv")}
    with pytest.raises(ValueError, match="not a view of any cohort"):
        omics.check_choice(dict(teachers=("rna",), students=None), views)
    with pytest.raises(ValueError, match="cohort 'brca'.*no setting"):
        omics.check_choice(dict(teachers=("cnv",), students=None), views)
    omics.check_choice(dict(teachers=None, students=("cnv", "fusion")), {"paad": views["paad"]})


def test_omics_top_variance_keeps_the_widest_training_columns():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((50, 5)) * [1.0, 5.0, 0.1, 3.0, 2.0]
    test = rng.standard_normal((10, 5))
    a, b = omics.top_variance(train, test, 3)
    np.testing.assert_array_equal(a, train[:, [1, 3, 4]])
    np.testing.assert_array_equal(b, test[:, [1, 3, 4]])
    assert omics.top_variance(train, test, None)[0] is train
    assert omics.seeds_for_2sem(np.array([1.0, 1.0, 0.0, 2.0])) == 3  # (2 · 0.816 / 1)² = 2.7


def test_mnist_m_numbers_are_sane(ran):
    summary, _ = ran("mnist_m")
    assert [r["sigma"] for r in summary["rows"]] == [0.0, 8.0]
    for row in summary["rows"]:
        assert 0 <= row["teacher_acc"] <= 1 and np.isfinite(row["gap_knn"])


def test_mnist_m_jobs_runner_equals_vmap_and_resumes(ran, tmp_path):
    """The jobs runner (one run per job, 2 threads, saved per job) trains the same networks as the
    vmapped runner; run again, it loads every job instead of training; a different config in the
    same folder is refused."""
    from experiments._common import load_results

    _, vm_tmp = ran("mnist_m")
    m = experiments.load("mnist_m")
    out = tmp_path / "results"
    kw = dict(quick=True, out=out, figures=tmp_path / "fig", runner="jobs", **TINY["mnist_m"])
    m.main(**kw)
    a, _ = load_results(out / "mnist_m")
    b, _ = load_results(vm_tmp / "results" / "mnist_m")
    for k in ("student_acc", "teacher_acc", "kd_acc", "i12", "i2y"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    jobs = out / "mnist_m" / "jobs"
    stamp = {p: p.stat().st_mtime_ns for p in jobs.glob("*.npz")}
    assert len(stamp) == 2 + 2 * 2 + 2 * 2  # students, teachers (σ × seeds), KD (σ × seeds × 1)
    m.main(**kw)
    assert {p: p.stat().st_mtime_ns for p in jobs.glob("*.npz")} == stamp  # loaded, not rewritten
    with pytest.raises(ValueError, match="different configuration"):
        m.main(**{**kw, "steps": 21})


def test_stratified_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(np.arange(3), [50, 30, 20])
    tr, te = mv.stratified_split(y, 0.3, seed=4)
    assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == y.size
    assert np.bincount(y[te]).tolist() == [15, 9, 6]
    tr2, te2 = mv.stratified_split(y, 0.3, seed=4)
    assert np.array_equal(te, te2) and not np.array_equal(te, mv.stratified_split(y, 0.3, 5)[1])


def test_standardise_uses_training_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (500, 4)), rng.normal(3, 2, (100, 4))
    za, zb = mv.standardise(a, b)
    np.testing.assert_allclose(za.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(za.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(zb, (b - a.mean(0)) / a.std(0), atol=1e-5)


def test_pca_reduce_keeps_the_top_axes_and_drops_null_ones():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((400, 2)) * [5.0, 1.0]
    h = np.concatenate([z, np.zeros((400, 3))], 1)  # rank 2 in 5 dims
    out = mv.pca_reduce(h, h, dim=4)
    assert out.shape == (400, 2)  # null components dropped
    np.testing.assert_allclose(np.abs(np.corrcoef(out[:, 0], z[:, 0])[0, 1]), 1, atol=1e-5)


def test_barber_agakov_bound():
    y = np.repeat(np.arange(4), 25)
    perfect = 50.0 * np.eye(4)[y]  # q(y|h) ≈ 1: the bound reaches H(Y) = log 4
    value, se = mv.barber_agakov(perfect, y)
    assert value == pytest.approx(np.log(4), abs=1e-6) and se == pytest.approx(0, abs=1e-6)
    value, _ = mv.barber_agakov(np.zeros((100, 4)), y)  # uninformative: exactly 0
    assert value == pytest.approx(0, abs=1e-12)


def test_weighted_f1_and_macro_auc_on_known_cases():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 2])
    # class F1: 0 → 0.8, 1 → 0.8, 2 → 1; weights 3, 2, 1.
    assert omics.weighted_f1(pred, y, 3) == pytest.approx((3 * 0.8 + 2 * 0.8 + 1.0) / 6)
    assert omics.macro_auc(10.0 * np.eye(3)[y], y, 3) == pytest.approx(1.0)
    # Class 0 scored in reverse order: AUC 0 for it; classes 1, 2 perfect.
    logits = np.eye(3)[y] * 10.0
    logits[:, 0] = -logits[:, 0]
    assert omics.macro_auc(logits, y, 3) == pytest.approx(2 / 3)


def test_tally_counts_signs_and_confidence():
    gap = np.array([[1.0, 1.1, 0.9], [-1.0, -1.1, -0.9], [0.1, -0.1, -0.05]])
    delta = np.array([[0.02, 0.03, 0.025], [0.01, 0.02, 0.015], [-0.1, 0.1, 0.0]])
    t = mv.tally(gap, delta)
    assert (t["holds_helps"], t["fails_helps"], t["holds_hurts"], t["fails_hurts"]) == (1, 1, 0, 1)
    assert t["agree"] == 2 and t["confident_and_significant"] == 2
    assert t["agree_confident_and_significant"] == 1


@pytest.mark.parametrize("name", experiments.GROUPS["real"])
def test_cch_check_fields_are_consistent(name, ran):
    summary, _ = ran(name)
    for row in summary["rows"]:
        for v in mv.CHECK_VARIANTS:
            c = row[f"check_{v}"]
            assert c["verdict"] in mv.VERDICT_CODE
            assert c["verdict"] == "inconclusive" or c["validated"]  # confident only if validated
            assert c["validated"] == (c["validated_reason"] == "inside the validated range")
            lo, hi = c["gap_ci"]
            assert np.isfinite(c["gap"]) and lo <= c["gap"] <= hi
            if c["verdict"] != "inconclusive":
                assert (lo > 0) == (c["verdict"] == "cch-holds") and c["families_side"] != 0
        assert row["check_pca"]["dims"][1] <= 8
    tallies = summary["check_tallies"]
    for t in (tallies["acc"] if name == "omics" else tallies).values():
        assert t["holds"] + t["fails"] + t["inconclusive"] == t["settings"] > 0
        assert t["decisive"] == t["holds"] + t["fails"] and t["agree"] <= t["decisive"]
        assert t["agree_significant"] <= t["decisive_significant"] <= t["significant"]


def test_check_tally_counts_decisive_settings_and_binomial_interval():
    verdict = np.array([1, -1, 0, 1])
    delta = np.array([[0.02, 0.03, 0.025], [0.01, 0.02, 0.015], [-0.1, 0.1, 0.0], [-0.1, 0.1, 0.0]])
    t = mv.check_tally(verdict, delta)
    assert (t["holds"], t["fails"], t["inconclusive"], t["decisive"]) == (2, 1, 1, 3)
    assert t["agree"] == 1 and t["decisive_significant"] == 2 and t["agree_significant"] == 1
    lo, hi = t["agree_ci95"]
    assert 0 < lo < 1 / 3 < hi < 1
    assert mv.check_tally(np.zeros(2), delta[:2])["agree_ci95"] is None
