"""Smoke tests: every synthetic reproduction runs end to end on a tiny config, saves results
that `cch plot` can redraw, and its numbers are sane (students agree with the theory).

`cch_audit` (pure theory, cheap) runs through the CLI as a user would: `cch reproduce cch_audit
--quick` with the default folders, run in a temporary current directory.
"""

import json

import numpy as np
import pytest

import experiments
from cch_jax.cli import main as cli

TINY = {
    "theorem1_curves": dict(
        p=4,
        ns=(200, 12),  # both panels: a large n and one where k = p2/(n − p2 − 1) is large
        teacher_noise=(30.0,),  # one model per panel: each model costs a compile (~15–20 s)
        student_lams=(0.0, 0.5),
        seeds=8,
        steps=300,
        theory_lams=20,
    ),
    # One simulated model: each costs a compile (its model is baked into the program); the
    # students-vs-theory comparison itself is tested at length in test_train and test_cli_engine.
    "gap_scatter": dict(num_models=100, p1=3, p2=3, n=20, simulated_models=1, seeds=64, steps=1500),
    "mfh_classification": dict(
        overlaps=(0, 10), lams=(0.5,), temperatures=(2.0,), seeds=4, steps=200
    ),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run each experiment once for the module: name → (result, results root, figures folder)."""
    cache = {}

    def get(name):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(name)
            if name in TINY:
                result = experiments.load(name).main(
                    quick=True, out=tmp / "results", figures=tmp / "fig", **TINY[name]
                )
                cache[name] = (result, tmp / "results", tmp / "fig")
            else:  # through the CLI, default folders under a temporary current directory
                with pytest.MonkeyPatch.context() as mp:
                    mp.chdir(tmp)
                    # --quick's sizes, except 300 random models instead of 2000 (cost ∝ models)
                    mp.setitem(experiments.load(name).QUICK, "num_models", 300)
                    assert cli(["reproduce", name, "--quick"]) == 0
                results = tmp / "results" / "quick"
                meta = json.loads((results / name / "results.json").read_text())
                cache[name] = (meta, results, tmp / "figures" / "quick")
        return cache[name]

    return get


@pytest.mark.parametrize("name", experiments.GROUPS["synthetic"])
def test_experiment_runs_and_replots(name, ran):
    _, results, figures = ran(name)
    meta = json.loads((results / name / "results.json").read_text())
    assert meta["experiment"] == name and "environment" in meta
    png = figures / f"{name}.png"
    assert png.stat().st_size > 10_000
    png.unlink()
    if name in TINY:
        rc = cli(["plot", str(results), "--figures", str(figures)])
    else:  # `cch plot results/quick` redraws into figures/quick/ by default
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(results.parent.parent)
            rc = cli(["plot", str(results)])
    assert rc == 0 and png.is_file()


def test_theorem1_students_converge_and_agree(ran):
    r, _, _ = ran("theorem1_curves")
    for m in r["models"]:
        assert m["max_rel_weight_error"] < 1e-3 and m["diverged"] == 0


def test_gap_scatter_students_within_4_sem(ran):
    r, _, _ = ran("gap_scatter")
    assert r["max_rel_weight_error"] < 1e-3
    # 4 λ paired comparisons: |z| < 4 for each (probability of a false alarm ≈ 3e-4).
    assert r["max_abs_z_students_vs_theory"] < 4


def test_cch_audit_tables_are_consistent(ran):
    """KD helps at λ iff λ < λmax, an interval from 0: the number of models helped can only fall
    as λ grows, and never exceeds the number helped at small λ. Theorem 1 is never violated."""
    meta, _, _ = ran("cch_audit")
    for t in meta["tables"]:
        helped = lambda c: c["cch_and_helps"] + c["no_cch_and_helps"]
        counts = [helped(t["small_lambda"])] + [helped(c) for c in t["at_lambda"]]
        assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0]
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


def test_reproduce_medium_is_for_mnist_m_only(capsys):
    assert cli(["reproduce", "cch_audit", "--medium"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--medium is defined for mnist_m only" in err[0]
    with pytest.raises(SystemExit) as exc:  # argparse: --quick and --medium exclude each other
        cli(["reproduce", "mnist_m", "--quick", "--medium"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
