"""Smoke tests: every synthetic reproduction runs end to end on a tiny config, saves results
that `cch plot` can redraw, and its numbers are sane (students agree with the theory)."""

import json

import numpy as np
import pytest

import experiments
from cch_jax.cli import main as cli

TINY = {
    "theorem1_curves": dict(
        p=4,
        ns=(200, 12),
        teacher_noise=(0.3, 30.0),
        student_lams=(0.0, 0.5),
        seeds=8,
        steps=300,
        theory_lams=20,
    ),
    "gap_scatter": dict(num_models=100, p1=3, p2=3, n=20, simulated_models=2, seeds=64, steps=1500),
    "cch_audit": dict(num_models=300, p1=3, p2=3, n=20),
    "mfh_classification": dict(
        overlaps=(0, 10), lams=(0.5,), temperatures=(2.0,), seeds=4, steps=200
    ),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run each experiment once for the module: name → (result, tmp_path)."""
    cache = {}

    def get(name):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(name)
            result = experiments.load(name).main(
                quick=True, out=tmp / "results", figures=tmp / "fig", **TINY[name]
            )
            cache[name] = (result, tmp)
        return cache[name]

    return get


@pytest.mark.parametrize("name", experiments.GROUPS["synthetic"])
def test_experiment_runs_and_replots(name, ran):
    _, tmp_path = ran(name)
    folder = tmp_path / "results" / name
    meta = json.loads((folder / "results.json").read_text())
    assert meta["experiment"] == name and "environment" in meta
    png = tmp_path / "fig" / f"{name}.png"
    assert png.stat().st_size > 10_000
    png.unlink()
    rc = cli(["plot", str(tmp_path / "results"), "--figures", str(tmp_path / "fig")])
    assert rc == 0 and png.is_file()


def test_theorem1_students_converge_and_agree(ran):
    r, _ = ran("theorem1_curves")
    for m in r["models"]:
        assert m["max_rel_weight_error"] < 1e-3 and m["diverged"] == 0


def test_gap_scatter_students_within_4_sem(ran):
    r, _ = ran("gap_scatter")
    assert r["max_rel_weight_error"] < 1e-3
    # 2 models × 4 λ paired comparisons: |z| < 4 for each (probability of a false alarm ≈ 5e-4).
    assert r["max_abs_z_students_vs_theory"] < 4


def test_cch_audit_table_is_consistent(ran):
    r, _ = ran("cch_audit")
    for t in r["tables"]:
        assert sum(t["small_lambda"].values()) == 300
        assert t["theorem1_violations"] == 0


def test_mfh_mi_gap_closed_form_against_sampling():
    """The semi-closed-form I(H2; Y) and I(H1; H2) against a large-sample plug-in estimate."""
    mod = experiments.load("mfh_classification")
    rng = np.random.default_rng(0)
    a = rng.standard_normal(20)
    w1, w2 = rng.standard_normal(25), rng.standard_normal(50)
    i_ts, i_sy = mod.gaussian_mi_gap(w1, w2, a, overlap=6)
    x1, x2, y = mod.sample(rng, 6, 400_000, a)
    h1, h2 = x1.astype(float) @ w1, x2.astype(float) @ w2
    rho = np.corrcoef(h1, h2)[0, 1]
    assert i_ts == pytest.approx(-0.5 * np.log(1 - rho**2), abs=3e-3)
    # I(H2; Y) = H(Y) − H(Y | H2), with P(Y | H2) from fine bins of H2.
    edges = np.quantile(h2, np.linspace(0, 1, 201))
    b = np.clip(np.searchsorted(edges, h2) - 1, 0, 199)
    p = np.bincount(b, weights=y, minlength=200) / np.bincount(b, minlength=200)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    hb = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    py = y.mean()
    plug_in = -(py * np.log(py) + (1 - py) * np.log(1 - py)) - hb.mean()
    assert i_sy == pytest.approx(plug_in, abs=5e-3)


def test_reproduce_unknown_name_exits_2(capsys):
    assert cli(["reproduce", "nope"]) == 2
    assert "unknown" in capsys.readouterr().err
