"""Tests written for mutants that survived `make mutate` (docs/testing.md lists them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from _cli import run_cli

import theory

ROOT = Path(__file__).resolve().parents[1]


def test_empty_block_list_names_the_rule():
    model = theory.random_model(jax.random.key(0), 2, 2)
    with pytest.raises(
        ValueError, match="^a block list must name at least one of 'x1', 'x2', 'y'$"
    ):
        theory.mi_blocks(model, [], "y")


# A model worked by hand: x2 carries no information (Σ22 = 1, independent of x1 and y), x1 and y
# are standard with Cov(x1, y) = ½. So w* = 0, σ² = Var(y | x2) = 1, and for the teacher
# t = w·x1: v = 0 (t has no x2 part), D = ‖v − w*‖² = 0, σt² = w², c = Cov(y, t | x2) = w/2.
# With p2 = 1 and n = 12, k = p2/(n − p2 − 1) = 1/10, and eq. 7 reads
#     R(λ) = 1 + k(1 + λw + λ²w²)/(1 + λ)².
# All inputs are exact binary fractions, so the boundary cases below are hit exactly.
HAND_COV = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]]
K = 1 / 10


def hand_risk(w, lam):
    lam = np.asarray(lam, float)
    return 1 + K * (1 + lam * w + lam**2 * w**2) / (1 + lam) ** 2


@pytest.fixture(scope="module")
def hand_model():
    return theory.JointGaussian(np.asarray(HAND_COV), 1, 1)


def test_hand_model_risk_is_the_hand_formula(hand_model):
    lams = np.array([0.0, 0.1, 1.0, 3.0, 50.0])
    for w in (0.5, 4.0):
        got = theory.expected_risk(hand_model, np.array([w]), lams, 12)
        np.testing.assert_allclose(got, hand_risk(w, lams), rtol=1e-14)


def test_optimal_teacher_with_no_student_information_wants_infinite_lambda(hand_model):
    """The optimal teacher w = ½ (= Σ11⁻¹Σ1y): R(λ) = 1 + k(1 + λ/2 + λ²/4)/(1 + λ)², whose
    derivative has numerator −3/2 (k/(1+λ)³ · (−3/2)): R falls for every λ, so λ* = ∞ and
    λmax = ∞, and min R = the limit 1 + k/4. Here the denominator of eq. 11, D + k(σt² − c),
    is exactly 0 (the boundary between a finite and an infinite λ*)."""
    w1 = np.array([0.5])
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == np.inf
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == np.inf
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + K / 4, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(np.diff(hand_risk(0.5, grid)) < 0)  # the hand formula agrees: always falling


def test_overconfident_teacher_never_helps(hand_model):
    """w = 4: c = 2 > σ² = 1 (the numerator of eq. 11 is negative). R(λ) = 1 + k(1 + 4λ +
    16λ²)/(1 + λ)², derivative numerator 2 + 28λ > 0: R rises for every λ, so λ* = 0, λmax = 0
    and min R = R0 = 1 + k."""
    w1 = np.array([4.0])
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == 0.0
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == 0.0
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + K, rel=1e-14)
    assert float(theory.risk_slope_at_zero(hand_model, w1, 12)) == pytest.approx(2 * K, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(np.diff(hand_risk(4.0, np.r_[0.0, grid])) > 0)


def test_unit_teacher_helps_at_every_lambda_with_an_interior_optimum(hand_model):
    """w = 1: σt² = σ² = 1, so A = D + k(σt² − σ²) of eq. 10 is exactly 0 (the boundary between a
    finite and an infinite λmax). R(λ) = 1 + k(1 + λ + λ²)/(1 + λ)² < R0 = 1 + k for every λ > 0
    ((1 + λ)² > 1 + λ + λ²), so λmax = ∞; the derivative's numerator is λ − 1, so λ* = 1 and
    min R = 1 + 3k/4."""
    w1 = np.array([1.0])
    assert float(theory.helpful_lambda_max(hand_model, w1, 12)) == np.inf
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == pytest.approx(1.0, rel=1e-14)
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + 0.75 * K, rel=1e-14)
    grid = np.geomspace(1e-3, 1e6, 50)
    assert np.all(hand_risk(1.0, grid) < 1 + K)
    assert hand_risk(1.0, 1.0) < min(hand_risk(1.0, 0.9), hand_risk(1.0, 1.1))


# JSON that other code reads: experiments/cch_audit.py reads the audit's tables by these keys, and
# `cch check --json` (docs/results.md, predict_validation) the check's. A renamed key or a
# dropped value is a bug even when every number is right.
AUDIT_KEYS = {
    "num_models", "p1", "p2", "n", "teacher", "teacher_noise", "small_lambda", "at_lambda",
    "theorem1_violations", "fraction_assumptions_hold",
}  # fmt: skip


@pytest.mark.parametrize("noise", [0.0, 0.25])
def test_audit_json_reports_each_field_under_its_own_name(noise):
    a = theory.audit(
        jax.random.key(0), num_models=40, p1=2, p2=2, n=20, lams=(0.5, 1.0), teacher_noise=noise
    )
    d = json.loads(json.dumps(a.to_dict()))
    assert set(d) == AUDIT_KEYS
    assert (d["num_models"], d["p1"], d["p2"], d["n"], d["teacher_noise"]) == (40, 2, 2, 20, noise)
    assert d["teacher"] == "optimal (w1 = Σ11⁻¹Σ1y)" + (" + noise 0.25" if noise else "")
    assert d["small_lambda"] == a.small_lambda._asdict()
    assert [row["lam"] for row in d["at_lambda"]] == [0.5, 1.0]
    for row, table in zip(d["at_lambda"], a.at_lambda, strict=True):
        assert {k: row[k] for k in table._fields} == table._asdict()
        assert sum(table) == 40
    assert d["theorem1_violations"] == a.theorem1_violations == 0
    held = np.mean(np.asarray(a.models.bounded) & np.asarray(a.models.aligned))
    assert d["fraction_assumptions_hold"] == pytest.approx(held)


def test_check_result_json_keeps_every_field_as_plain_lists():
    from cch_jax.mi.check import CheckResult

    fields = dict(
        verdict="inconclusive", gap=0.1, gap_ci=(-0.2, 0.4), mi_teacher_student=0.5,
        mi_student_label=0.4, validated=True, validated_reason="", families=[], skipped={},
        subsampled={}, n=500, dims=(3, 4, 1), labels=False, ties={}, seconds=1.0,
    )  # fmt: skip
    d = CheckResult(**fields).to_dict()
    assert set(d) == set(fields)
    assert d["gap_ci"] == [-0.2, 0.4] and d["dims"] == [3, 4, 1]
    assert {k: v for k, v in d.items() if k not in ("gap_ci", "dims")} == {
        k: v for k, v in fields.items() if k not in ("gap_ci", "dims")
    }


def test_an_interval_touching_zero_is_inconclusive():
    """[0, b] and [a, 0] contain 0: neither side of the gap is established."""
    from cch_jax.cli.check import verdict_of

    assert verdict_of((0.0, 0.3)) == "inconclusive"
    assert verdict_of((-0.3, 0.0)) == "inconclusive"
    assert verdict_of((1e-12, 0.3)) == "cch-holds"
    assert verdict_of((-0.3, -1e-12)) == "cch-fails"
    from cch_jax.mi.check import _side  # a family's side of 0: the same rule

    assert [_side(ci) for ci in [(0.0, 0.3), (-0.3, 0.0), (1e-12, 1), (-1, -1e-12)]] == [
        0,
        0,
        1,
        -1,
    ]


@pytest.mark.parametrize(
    "y,labels,expected",
    [
        (np.array([0, 2, 1, 2]), True, [0, 2, 1, 2]),  # integer dtype
        (np.array([[1], [0], [1]]), True, [1, 0, 1]),  # one integer column
        (np.array([True, False, True]), True, [1, 0, 1]),  # bool
        (np.array([1.0, 3.0, 3.0, -2.0]), True, [1, 3, 3, -2]),  # integral floats (a CSV)
        (np.arange(1500), True, list(range(1500))),  # any number of integer classes
        (np.arange(1000.0), True, list(range(1000))),  # up to 1000 distinct integral floats
        (np.arange(1001.0), False, None),  # > 1000 distinct integral floats: a regression target
        (np.array([0.5, 1.0, 2.0]), False, None),  # not integral
        (np.array([1.0, 2.0, np.inf]), False, None),  # not finite
        (np.array([1.0, 2.0, np.nan]), False, None),
        (np.array([[1, 2], [3, 4]]), False, None),  # several columns
    ],
)
def test_labels_are_recognised_by_dtype_or_integral_values(y, labels, expected):
    from cch_jax.cli.check import _as_labels

    out, is_labels = _as_labels(y)
    assert is_labels is labels
    if labels:
        assert out.dtype == np.int64 and out.tolist() == expected
    else:  # returned as given
        np.testing.assert_array_equal(out, y)


def verify_report(**changes) -> dict:
    """A `cch verify` report (the dict `report` returns) with three λ, for the text tests."""
    row = dict(theory=1.0, mean=1.01, sem=0.01, diverged=0, max_rel_weight_error=1e-7)
    r = dict(
        p1=2, p2=3, n=12, seeds=50, steps=3, lr=0.1, dtype="float64", optimizer="adam",
        z_tolerance=4.0, train_seconds=1.0, converged=True, verdict="agrees",
        results=[{**row, "lam": 0.0, "z": 1.0}, {**row, "lam": 0.5, "z": -2.0},
                 {**row, "lam": 1.0, "z": 0.5}],
    )  # fmt: skip
    return {**r, **changes}


def test_verify_text_report_line_by_line():
    from cch_jax.cli.verify import format_report

    lines = format_report(verify_report(sampler="moments")).split("\n")
    assert len(lines) == 6
    assert lines[0] == (
        "Gaussian model: p1=2, p2=3, n=12; 50 students per λ, adam, 3 steps, lr 0.1, float64, "
        "training sets drawn as moments"
    )
    assert lines[1].split() == [
        "λ", "theory", "R(λ)", "mean", "SEM", "z", "diverged", "max", *lines[1].split()[8:]
    ]  # fmt: skip
    assert lines[1].split()[8].startswith("|w") and len(lines[1].split()) == 9
    assert lines[2].split() == ["0", "1", "1.01", "0.01", "+1.00", "0", "1.00e-07"]
    assert lines[3].split()[:5] == ["0.5", "1", "1.01", "0.01", "-2.00"]
    assert lines[5] == "verdict: agrees (all |z| < 4, students converged); training took 1.0 s"
    # Without a sampler (an older report) the first line just ends.
    assert format_report(verify_report()).split("\n")[0].endswith(", lr 0.1, float64")


def test_verify_text_names_every_lambda_that_disagrees_or_diverged():
    """|z| = the tolerance already disagrees (agreeing needs |z| < 4); a diverged λ disagrees."""
    from cch_jax.cli.verify import format_report

    r = verify_report(verdict="disagrees")
    r["results"][1]["z"] = -4.0
    r["results"][2]["diverged"] = 3
    lines = format_report(r).split("\n")
    assert lines[-2] == "  WARNING: 3 students diverged (NaN/inf loss); excluded from the means"
    assert lines[-1] == (
        "verdict: disagrees (|z| >= 4 or diverged at λ = [0.5, 1.0]); training took 1.0 s"
    )


def test_verify_text_when_students_have_not_converged():
    from cch_jax.cli.verify import format_report

    lines = format_report(verify_report(verdict="not converged", converged=False)).split("\n")
    assert lines[-2].startswith("  WARNING: some students are > 0.001 (relative) from their ")
    assert lines[-2].endswith("(λ): raise --steps or change --lr")
    assert lines[-1].startswith("verdict: not converged (|z| < 4, but the students are not at ")
    assert lines[-1].endswith("(λ)); training took 1.0 s")


@pytest.fixture
def check_files(tmp_path):
    """Paired samples (teacher, student, labels) and their strictly monotone transforms."""
    rng = np.random.default_rng(5)
    h2 = rng.standard_normal((400, 2))
    h1 = h2 + 0.5 * rng.standard_normal((400, 2))
    y = h2[:, 0] + rng.standard_normal(400)  # a continuous target
    arrays = dict(h1=h1, h2=h2, y=y, h1_exp=np.exp(h1), h2_cube=h2**3, y_exp=np.exp(y))
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)
    return lambda name: str(tmp_path / f"{name}.npy")


def check_json(capsys, argv) -> dict:
    from cch_jax.cli import main

    assert main(["check", *argv, "--families", "gc", "--surrogates", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    out.pop("seconds")
    return out


def test_check_is_invariant_to_monotone_maps_of_each_column(check_files, capsys):
    """Normal scores (the default) depend on ranks only: exp(H1), H2³ and exp(Y) give the same
    check. (With class labels the check also fits a surrogate to standardised columns, so there
    only the estimates are invariant; `check_cch`'s docstring.)"""
    f = check_files
    plain = ["--teacher", f("h1"), "--student", f("h2"), "--labels", f("y")]
    mapped = ["--teacher", f("h1_exp"), "--student", f("h2_cube"), "--labels", f("y_exp")]
    assert check_json(capsys, plain) == check_json(capsys, mapped)
    raw = lambda argv: check_json(capsys, [*argv, "--no-normal-scores"])  # noqa: E731
    assert raw(plain)["gap"] != raw(mapped)["gap"]


@pytest.mark.parametrize("option", ["--teacher", "--student", "--labels"])
def test_check_file_errors_name_the_option(check_files, capsys, option):
    from cch_jax.cli import main

    f = check_files
    argv = {"--teacher": f("h1"), "--student": f("h2"), "--labels": f("y")}
    argv[option] = f("missing")
    assert main(["check", *[a for kv in argv.items() for a in kv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cch check: error: {option}: file ") and "does not exist" in err


def test_check_text_shows_the_json_numbers(check_files, capsys):
    """The readable report prints the numbers of the JSON (same data, same seed), each labelled."""
    from cch_jax.cli import main

    f = check_files
    argv = ["check", "--teacher", f("h1"), "--student", f("h2"), "--labels", f("y")]
    argv += ["--families", "gc", "--surrogates", "8"]
    assert main([*argv, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    lines = capsys.readouterr().out.split("\n")
    fam = r["families"][0]
    for line, label, key in (
        (lines[0], "I(H1; H2)", "mi_teacher_student"),
        (lines[1], "I(H2; Y) ", "mi_student_label"),
    ):
        e = fam[key]
        assert line == (
            f"{label} = {e['value']:.4f} nats  (95% CI {e['ci'][0]:.4f} to {e['ci'][1]:.4f}; "
            f"gc, bias-corrected: raw {e['raw']:.4f}, bias {e['bias']:+.4f})"
        )
    lo, hi = r["gap_ci"]
    assert lines[2] == (
        f"gap I(H1; H2) − I(H2; Y) = {r['gap']:+.4f} nats  (95% CI {lo:+.4f} to {hi:+.4f})"
    )
    g = fam["gap"]
    assert lines[3] == (
        f"   gc: gap {g['value']:+.4f} (95% CI {g['ci'][0]:+.4f} to {g['ci'][1]:+.4f}; "
        f"raw {g['raw']:+.4f}, bias {g['bias']:+.4f}, 8 surrogates)"
    )
    assert lines[4] == f"n = 400, dims 2 + 2 + 1: NOT validated ({r['validated_reason']})"
    assert lines[5] == f"verdict: {r['verdict']}" and lines[6] == ""
    from cch_jax.cli.check import CAVEAT, EXPLAIN

    paragraph = [line for line in lines[7:] if line]  # filled to 88 columns
    assert " ".join(paragraph) == EXPLAIN["inconclusive"] + " " + CAVEAT
    assert 80 < max(map(len, paragraph)) <= 88


@pytest.mark.parametrize("option", ["--student", "--labels"])
def test_check_data_errors_name_the_option(check_files, tmp_path, capsys, option):
    from cch_jax.cli import main

    f = check_files
    bad = np.load(f("h2" if option == "--student" else "y"))
    bad[7] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    argv = {"--teacher": f("h1"), "--student": f("h2"), "--labels": f("y")}
    argv[option] = str(tmp_path / "bad.npy")
    assert main(["check", *[a for kv in argv.items() for a in kv]]) == 2
    assert capsys.readouterr().err.startswith(f"cch check: error: {option}: 1 row")


def test_theory_json_says_cch_holds_for_a_model_where_it_holds(tmp_path, capsys):
    """p1 = p2 = 1, Corr(x1, x2) = 0.9, Corr(x1, y) = 0.3, Corr(x2, y) = 0.2: the teacher
    t ∝ x1, so I(t; s) = −½ log(1 − 0.81) ≈ 0.83 > I(s; y) = −½ log(1 − 0.04) ≈ 0.02."""
    cov = np.array([[1.0, 0.9, 0.3], [0.9, 1.0, 0.2], [0.3, 0.2, 1.0]])
    np.save(tmp_path / "cov.npy", cov)
    argv = ["theory", "--cov", str(tmp_path / "cov.npy"), "--p1", "1", "--n", "20"]
    code, out, _ = run_cli(capsys, *argv, "--lam", "0", "0.5", "--json")
    r = json.loads(out)
    assert code == 0 and (r["p1"], r["p2"], r["n"], r["lam"]) == (1, 1, 20, [0.0, 0.5])
    assert r["mi_teacher_student"] == pytest.approx(-0.5 * np.log(1 - 0.81), rel=1e-12)
    assert r["mi_student_label"] == pytest.approx(-0.5 * np.log(1 - 0.04), rel=1e-12)
    assert r["cch_holds"] is True


def test_theory_text_table_shows_the_json_numbers(capsys):
    _, out, _ = run_cli(capsys, "theory", "--example", "--json")
    r = json.loads(out)
    code, text, _ = run_cli(capsys, "theory", "--example")
    lines = text.split("\n")
    assert code == 0
    assert lines[0] == f"Gaussian model: p1={r['p1']}, p2={r['p2']}, n={r['n']}"
    assert lines[1].split() == ["R0", "(no", "KD)", f"{r['baseline_risk']:.6g}"]
    assert lines[3].split()[-3:] == [f"{r['lambda_star']:.6g}", "/", f"{r['risk_min']:.6g}"]
    assert lines[4].endswith(f"(0, {float(r['lambda_max']):.6g})")  # JSON writes ∞ as "inf"
    assert lines[7].split()[:3] == ["CCH", "verdict", "holds" if r["cch_holds"] else "fails"]
    assert lines[8].split()[2:4] == ["KD", "helps" if r["kd_helps_small_lambda"] else "hurts"]
    rows = [line.split() for line in lines[12:] if line.strip()]
    assert [float(row[0]) for row in rows] == r["lam"]
    assert [float(row[1]) for row in rows] == pytest.approx(r["risk"], rel=1e-5)
    assert rows[0][3] == "—" and all(row[3] == "yes" for row in rows[1:])  # KD helps at each λ


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--lam", "-1"], "cch theory: error: --lam=[-1.0] must be >= 0"),
        (["--n", "3"], "cch theory: error: --n=3 must exceed p2+1=5"),
    ],
)
def test_theory_errors_name_the_option(capsys, argv, message):
    code, _, err = run_cli(capsys, "theory", "--example", *argv)
    assert code == 2 and err.startswith(message)


def linear_kd(z, diverged_all=False):
    """A `LinearKD` of 2 λ × 3 students whose second λ sits exactly `z` SEMs off the theory
    (mean 1 + z/8, SEM 1/8: exact binary fractions); with diverged_all, every student of the
    first λ diverged (no mean, no weights)."""
    from cch_jax.simulate import LinearKD

    err = np.full((2, 3), 1e-9)
    diverged = np.zeros((2, 3), bool)
    count = np.array([3, 3])
    if diverged_all:
        err[0], diverged[0], count = np.nan, True, np.array([0, 3])
    return LinearKD(
        lams=np.array([0.0, 1.0]), risk=np.ones((2, 3)), diverged=diverged, weight_error=err,
        theory_risk=np.ones(2), mean=np.array([1.0, 1.0 + z / 8]), sem=np.full(2, 1 / 8),
        count=count, seconds=1.0,
    )  # fmt: skip


def verify_dict(sim):
    from cch_jax.cli.verify import report

    return report(sim, model=theory.random_model(jax.random.key(0), 2, 2), n=9, seeds=3,
                  steps=10, lr=0.1)  # fmt: skip


def test_verify_agrees_only_strictly_inside_the_z_tolerance():
    assert verify_dict(linear_kd(3.5))["verdict"] == "agrees"
    at = verify_dict(linear_kd(4.0))
    assert at["results"][1]["z"] == 4.0 and at["verdict"] == "disagrees"


def test_verify_row_of_a_lambda_whose_students_all_diverged():
    with np.errstate(all="ignore"):
        r = verify_dict(linear_kd(0.0, diverged_all=True))
    row = r["results"][0]
    assert row["students"] == 0 and row["diverged"] == 3 and np.isnan(row["max_rel_weight_error"])
    assert r["verdict"] == "disagrees"


def test_verify_json_reports_the_run_it_describes():
    r = verify_dict(linear_kd(1.0))
    assert (r["p1"], r["p2"], r["n"], r["seeds"], r["steps"], r["lr"]) == (2, 2, 9, 3, 10, 0.1)
    assert r["optimizer"] == "adam (cosine decay, full batch)" and r["dtype"] == "float64"
    assert r["z_tolerance"] == 4.0 and r["train_seconds"] == 1.0
    assert (r["agrees"], r["converged"], r["verdict"]) == (True, True, "agrees")


@pytest.mark.parametrize("error", [1e-3, 0.01])
def test_verify_students_not_at_their_closed_form_have_not_converged(error):
    """Within the z tolerance, but ‖w − ŵ‖/‖ŵ‖ >= 1e-3: "not converged", never "agrees"."""
    sim = linear_kd(1.0)
    r = verify_dict(sim._replace(weight_error=np.full((2, 3), error)))
    assert (r["agrees"], r["converged"], r["verdict"]) == (False, False, "not converged")


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")  # x64 off for the call
def test_verify_float32_flag_sets_the_dtype(capsys):
    """float64 unless --float32 (the suite runs with x64 on; switched off around the call)."""
    # (float64 by default: test_verify_reports_its_options_in_json_and_text)
    argv = ["verify", "--example", "--lam", "0", "--seeds", "2", "--steps", "5", "--json"]
    with jax.enable_x64(False):
        _, out, _ = run_cli(capsys, *argv, "--float32")
    assert json.loads(out)["dtype"] == "float32"


def test_calibrate_by_hand():
    """Four surrogate estimates (Î12, Î2y) = (1, 0), (3, 0), (1, 0), (3, 0) of a surrogate with
    I12 = 1.5, I2y = 0; data estimates (2.5, 0.5); Monte Carlo SEs of the surrogate's MIs
    (1, 0.5, 0). By hand: bias = mean − truth = (0.5, 0, 0.5); the SD of (1, 3, 1, 3) is √(4/3),
    times √(1 + 1/4) = √(5/3); with the MC SE: √(5/3 + 1) = √(8/3), √(0 + 0.25) = 0.5, √(5/3).
    Corrected = raw − bias = (2, 0.5, 1.5); intervals ± t(3 dof, 0.975) = 3.182446305 × spread."""
    from types import SimpleNamespace

    from cch_jax.mi.check import _calibrate

    sur = SimpleNamespace(i12=1.5, i2y=0.0)
    est = [(1.0, 0.0), (3.0, 0.0), (1.0, 0.0), (3.0, 0.0)]
    out = _calibrate("gc", (2.5, 0.5), sur, est, (1.0, 0.5, 0.0))
    t = 3.182446305284263
    expected = {
        "mi_teacher_student": (2.5, 0.5, 2.0, np.sqrt(8 / 3)),
        "mi_student_label": (0.5, 0.0, 0.5, 0.5),
        "gap": (2.0, 0.5, 1.5, np.sqrt(5 / 3)),
    }
    assert (out["family"], out["surrogates"], out["side"]) == ("gc", 4, 0)
    for name, (raw, bias, value, se) in expected.items():
        e = out[name]
        np.testing.assert_allclose(
            [e["raw"], e["bias"], e["value"], e["stderr"], *e["ci"]],
            [raw, bias, value, se, value - t * se, value + t * se],
            rtol=1e-12,
            atol=1e-15,
        )


def test_union_of_two_calibrations_by_hand():
    """Each interval is the union, value and bias the mean, stderr the largest, raw the first's;
    the side is that of the union gap interval (here it contains 0)."""
    from cch_jax.mi.check import _union

    def cal(value, bias, se, lo, hi, raw):
        part = dict(raw=raw, bias=bias, value=value, stderr=se, ci=[lo, hi])
        names = ("mi_teacher_student", "mi_student_label", "gap")
        return dict(family="knn", surrogates=8, side=1, **{k: dict(part) for k in names})

    out = _union([cal(0.3, 0.1, 0.1, 0.1, 0.5, 0.4), cal(0.1, 0.3, 0.15, -0.2, 0.4, 0.9)])
    assert (out["family"], out["surrogates"], out["side"]) == ("knn", 16, 0)
    for name in ("mi_teacher_student", "mi_student_label", "gap"):
        e = out[name]
        assert e["raw"] == 0.4 and e["ci"] == [-0.2, 0.5]
        np.testing.assert_allclose([e["value"], e["bias"], e["stderr"]], [0.2, 0.2, 0.15])
        assert e["by_surrogate"] == [
            {"bias": 0.1, "value": 0.3, "ci": [0.1, 0.5]},
            {"bias": 0.3, "value": 0.1, "ci": [-0.2, 0.4]},
        ]
    one = cal(0.3, 0.1, 0.1, 0.1, 0.5, 0.4)
    assert _union([one]) is one


@pytest.mark.parametrize(
    "n,d1,d2,dy,classes,min_class,ok,reason",
    [
        (499, 1, 1, 1, None, None, False, "n = 499 is below 500"),
        (500, 1, 1, 1, None, None, True, "inside the validated range"),
        (509, 20, 20, 11, None, None, False, "n = 509 is below 10 × the joint dimension 51"),
        (510, 20, 20, 11, None, None, True, "inside the validated range"),
        (500, 20, 25, 11, 3, 400, True, "inside the validated range"),  # labels: dy not counted
        (500, 25, 26, 1, 3, 400, False, "below 10 × the joint dimension 51"),
        (
            3000,
            2,
            10,
            0,
            3,
            99,
            False,
            "smallest class has 99 rows, below max(10 × d2, d2²/2) = 100",
        ),
        (3000, 2, 10, 0, 3, 100, True, "inside the validated range"),
        (9000, 2, 30, 0, 3, 449, False, "below max(10 × d2, d2²/2) = 450"),
        (9000, 2, 30, 0, 3, 450, True, "inside the validated range"),
    ],
)
def test_validated_range_at_each_boundary(n, d1, d2, dy, classes, min_class, ok, reason):
    """The rules of docs/check_calibration.md, each one row either side of its boundary."""
    from cch_jax.mi.check import validated_range

    got_ok, got_reason = validated_range(n, d1, d2, dy, n_classes=classes, min_class=min_class)
    assert got_ok is ok and got_reason.endswith(reason)
    assert got_reason.startswith("outside the validated range: ") != ok


def test_check_options_reach_the_check(check_files, capsys):
    """--seed, --k and --knn-budget change what runs: another seed other surrogates, another k
    another kNN estimate, a budget too small for any rows skips the kNN family (and says so)."""
    from cch_jax.cli import main

    f = check_files
    data = ["--teacher", f("h1"), "--student", f("h2"), "--labels", f("y")]
    assert check_json(capsys, data)["gap"] != check_json(capsys, [*data, "--seed", "1"])["gap"]
    knn = [*data, "--families", "knn", "--surrogates", "8", "--json"]
    runs = []
    for k in ("3", "5"):
        assert main(["check", *knn, "--k", k]) == 0
        runs.append(json.loads(capsys.readouterr().out)["families"][0]["gap"]["raw"])
    assert runs[0] != runs[1]
    assert main(["check", *data, "--knn-budget", "1e-9"]) == 0
    text = capsys.readouterr().out
    assert "  knn: not run (" in text and "s budget;" in text


def test_verify_memory_budget_is_in_gigabytes(capsys):
    """--memory-budget 0.25 is 0.25 × 2³⁰ bytes: a student whose rows need ~0.4 GB is refused,
    and the message quotes the budget it was given."""
    argv = ["verify", "--example", "--sampler", "rows", "--n", "2000000", "--lam", "0"]
    code, _, err = run_cli(capsys, *argv, "--seeds", "2", "--memory-budget", "0.25")
    assert code == 2 and err.startswith("cch verify: error: --n=2000000: one student's training")
    assert err.rstrip().endswith("more than the memory budget of 0.25 GB")


def test_verify_reports_its_options_in_json_and_text(capsys):
    argv = ["verify", "--example", "--lam", "0", "--seeds", "2", "--steps", "5", "--lr", "0.05"]
    code, out, _ = run_cli(capsys, *argv, "--sampler", "rows", "--json")
    r = json.loads(out)
    assert code == 1 and (r["lr"], r["sampler"], r["steps"], r["seeds"]) == (0.05, "rows", 5, 2)
    code, text, _ = run_cli(capsys, *argv)
    first = text.split("\n")[0]
    assert code == 1 and ", 5 steps, lr 0.05, float64, training sets drawn as moments" in first
    assert text.split("\n")[-2].startswith("verdict: not converged")


def test_theory_text_when_kd_hurts_and_when_cch_holds(tmp_path, capsys):
    """The hand model with teacher w = 4 (c = 2 > σ² = 1): KD hurts at every λ, R(λ) = 1 +
    (1 + 4λ + 16λ²)/(10(1 + λ)²), R0 = 1.1: at λ = 0.5 R = 1 + 7/22.5, at λ = 1 R = 1.525. CCH
    fails there (x2 carries no information: both MIs are 0). The model of
    `test_theory_json_says_cch_holds_for_a_model_where_it_holds` prints "holds"."""
    np.save(tmp_path / "hand.npy", np.asarray(HAND_COV))
    np.save(tmp_path / "w4.npy", np.array([4.0]))
    argv = ["theory", "--cov", str(tmp_path / "hand.npy"), "--p1", "1", "--n", "12"]
    code, text, _ = run_cli(
        capsys, *argv, "--w1", str(tmp_path / "w4.npy"), "--lam", "0", "0.5", "1"
    )
    lines = text.split("\n")
    assert code == 0 and lines[7].split()[:3] == ["CCH", "verdict", "fails"]
    assert lines[8].split() == [
        "exact",
        "verdict",
        "KD",
        "hurts",
        "for",
        "small",
        "λ",
        "(c",
        "<",
        "σ²)",
    ]
    assert lines[10] == "" and lines[11].split() == ["λ", "R(λ)", "R(λ)", "−", "R0", "KD", "helps?"]
    rows = [line.split() for line in lines[12:] if line.strip()]
    assert [row[3] for row in rows] == ["—", "no", "no"]
    np.testing.assert_allclose(
        [float(row[1]) for row in rows], [1.1, 1 + 7 / 22.5, 1.525], rtol=1e-5
    )
    cov = np.array([[1.0, 0.9, 0.3], [0.9, 1.0, 0.2], [0.3, 0.2, 1.0]])
    np.save(tmp_path / "cov.npy", cov)
    _, text, _ = run_cli(
        capsys, "theory", "--cov", str(tmp_path / "cov.npy"), "--p1", "1", "--n", "20"
    )
    assert text.split("\n")[7].split()[:3] == ["CCH", "verdict", "holds"]


def test_interior_optimum_below_one(hand_model):
    """w = 6/5 (c = 3/5 < σ² = 1): dR/dλ ∝ (w − 2) + λ(2w² − w), so λ* = (2 − w)/(w(2w − 1)) = 10/21,
    inside (0, 1]; there λw = 4/7 and (1 + λw + λ²w²)/(1 + λ)² = (93/49)/(31/21)² = 27/31, so
    min R = 1 + k·27/31 = 1 + 27/310."""
    w1 = np.array([1.2])
    assert float(theory.optimal_lambda(hand_model, w1, 12)) == pytest.approx(10 / 21, rel=1e-12)
    assert float(theory.min_risk(hand_model, w1, 12)) == pytest.approx(1 + 27 / 310, rel=1e-12)
    assert hand_risk(1.2, 10 / 21) == pytest.approx(1 + 27 / 310, rel=1e-14)


def test_population_risk_without_a_bias_is_the_bias_free_risk():
    # eq. 5 by hand: w* = (1, 2), Σ22 = diag(2, 3), σ² = ½; at w = 0, (w − w*)ᵀΣ22(w − w*) =
    # 2·1 + 3·4 = 14, so R = 14.5 with no bias argument (b = 0) and 14.5 + b² with one.
    pop = theory.Population(
        w_star=np.array([1.0, 2.0]), S22=np.diag([2.0, 3.0]), sigma2=np.array(0.5)
    )
    assert float(theory.risk_from_population(pop, np.zeros(2))) == 14.5
    assert float(theory.risk_from_population(pop, np.zeros(2), 3.0)) == 23.5


COLLECT_ONLY = """
import sys, pytest
from jax._src import xla_bridge
class Probe:
    def pytest_collection_finish(self, session):
        print("backends", sorted(xla_bridge._backends))
# --assert=plain: rewriting the test modules' asserts is half of collecting them, and starts no JAX
args = ["--collect-only", "-q", "-p", "no:cacheprovider", "--assert=plain", "tests"]
sys.exit(pytest.main(args, plugins=[Probe()]))
"""


def test_collecting_the_suite_does_not_start_jax():
    # `make mutate` forks every mutant's worker from a process that has only collected the
    # tests; once JAX has started its backend (and threads), such a fork hangs and each mutant
    # times out. So no test module may build a JAX array or key at import or in a parametrize.
    proc = subprocess.run(
        [sys.executable, "-c", COLLECT_ONLY], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "backends []" in proc.stdout, proc.stdout[-500:]


def test_confusion_counts_truthy_values_as_true():
    # Four (cch, helps) cells, one each; verdicts given as counts and floats (truthy, not 0/1
    # booleans): a count taken with `&` and `~` on the raw values would be wrong.
    got = theory.Confusion.count([2, 0, 2, 0], [0.5, 3.0, 0.0, 0.0])
    assert got == theory.Confusion(1, 1, 1, 1)


def test_audit_teachers_baselines_and_models():
    # The audit's noisy teacher is w1 = w_opt + τ‖w_opt‖/√p1·ξ with ξ ~ N(0, I_p1): so
    # r = ‖w1 − w_opt‖²/(τ²‖w_opt‖²) = ‖ξ‖²/p1 ~ χ²(p1)/p1, mean 1 and variance 2/p1. Over M
    # models the mean of r is within 4 standard errors √(2/(p1·M)) of 1.
    p1, m, tau = 4, 400, 0.3
    a = theory.audit(jax.random.key(7), num_models=m, p1=p1, p2=3, n=20, teacher_noise=tau)
    # every model's w_opt at once: optimal_teacher of the batch of covariances (M, p, p)
    w_opt = np.asarray(theory.optimal_teacher(theory.JointGaussian(a.cov, p1, 3)))
    assert w_opt.shape == (m, p1)
    r = np.sum((a.models.teacher - w_opt) ** 2, 1) / (tau**2 * np.sum(w_opt**2, 1))
    assert abs(np.mean(r) - 1) < 4 * np.sqrt(2 / (p1 * m)), np.mean(r)
    # each model's R0 is the public baseline risk of that model (not the vmapped path)
    for i in (0, m - 1):
        assert a.models.baseline[i] == pytest.approx(float(theory.baseline_risk(a.model(i), 20)))
    assert a.model(3).p1 == p1 and a.model(3).p2 == 3


def test_factor_model_defaults_by_their_structure():
    # Σ's x1 block is A1A1ᵀ + B1B1ᵀ + τ1²I, the x2 block A2A2ᵀ + B2B2ᵀ + τ2²I: with p = 12 rows
    # and rank r = 5 (the default), each low-rank part has rank 2r = 10, so each block's two
    # smallest eigenvalues are exactly its noise variance: τ1² = 0.49 here, τ2² = 1 (the default
    # student noise). Var(y) = ‖a‖² + β1²‖a1‖² + β2²‖a2‖² + τy² with unit a, a1, a2 and the
    # defaults β1 = 0.5, β2 = 0.2, τy = 1.5: 1 + 0.25 + 0.04 + 2.25 = 3.54.
    cov = np.asarray(theory.factor_model(12, 12, teacher_noise=0.7).cov)
    e1, e2 = np.linalg.eigvalsh(cov[:12, :12]), np.linalg.eigvalsh(cov[12:24, 12:24])
    np.testing.assert_allclose(e1[:2], 0.49, rtol=1e-10)
    np.testing.assert_allclose(e2[:2], 1.0, rtol=1e-10)
    assert e1[2] > 0.49 + 1e-6 and e2[2] > 1.0 + 1e-6
    assert cov[-1, -1] == pytest.approx(3.54, rel=1e-12)
    for name in ("teacher_noise", "student_noise", "label_noise"):
        kwargs = {"teacher_noise": 0.7, name: 0.0}
        with pytest.raises(ValueError, match=rf"^{name}=0.0 must be > 0 \(keeps Σ positive"):
            theory.factor_model(2, 2, **kwargs)


def test_validate_cov_returns_float64_batches_and_names_p2():
    from theory.model import validate_cov

    got = validate_cov(np.eye(3, dtype=int), 1, 1)  # an integer matrix comes back float64
    assert got.dtype == np.float64 and np.array_equal(got, np.eye(3))
    batch = np.broadcast_to(np.eye(4), (2, 3, 4, 4))  # a (2, 3) batch of (d, d) matrices
    assert validate_cov(batch, 2, 1).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"^p2=0 must be >= 1$"):
        validate_cov(np.eye(3), 1, 0)


# --- the MI estimators and the losses (docs/testing.md, run 5: a sample of their mutants) ---


def test_linear_stats_are_the_sample_moments():
    from cch_jax.losses import linear_stats

    rng = np.random.default_rng(0)
    x, y, t = rng.standard_normal((50, 3)), rng.standard_normal(50), rng.standard_normal(50)
    s = linear_stats(x, y, t)
    # the moments by explicit sums over the rows, ÷ n
    np.testing.assert_allclose(s.yy, sum(v * v for v in y) / 50, rtol=1e-12)
    np.testing.assert_allclose(s.xy, sum(r * v for r, v in zip(x, y)) / 50, rtol=1e-12)
    np.testing.assert_allclose(s.xx, sum(np.outer(r, r) for r in x) / 50, rtol=1e-12)


def test_every_validation_task_samples_what_its_name_says():
    # Each task of the MI validation suite (docs/mi_validation_table.md lists them by name):
    # finite samples, the dimensions in its name ("d1+d2"), every class of a labelled task drawn
    # ("Cclass"), a finite true MI >= 0, and a note.
    import re

    from cch_jax.mi.tasks import tasks

    table = (ROOT / "docs" / "mi_validation_table.md").read_text()
    all_tasks = tasks()
    assert len({t.name for t in all_tasks}) == len(all_tasks)
    rng = np.random.default_rng(0)
    for task in all_tasks:
        assert f"| {task.name} |" in table, task.name
        assert isinstance(task.note, str) and task.note, task.name
        assert np.isfinite(task.mi) and task.mi >= 0, task.name
        x, y = task.sample(rng, 400)
        assert len(x) == len(y) == 400 and np.all(np.isfinite(x)) and np.all(np.isfinite(y))
        dims = re.search(r"-(\d+)\+(\d+)", task.name)
        if dims:
            widths = (np.reshape(x, (400, -1)).shape[1], np.reshape(y, (400, -1)).shape[1])
            assert widths == (int(dims[1]), int(dims[2])), task.name
        classes = re.search(r"-(\d+)class", task.name)
        if classes:
            assert task.labels and set(np.unique(y)) == set(range(int(classes[1]))), task.name


def test_gaussian_mi_reports_at_most_20_canonical_correlations():
    from cch_jax.mi.gaussian import gaussian_mi

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 25))
    y = x[:, :25] + rng.standard_normal((300, 25))
    assert len(gaussian_mi(x, y)["canonical_correlations"]) == 20


def test_normal_scores_are_reproducible_from_the_key():
    from cch_jax.mi import estimate

    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal(300), 1)  # ties: broken at random, from the key
    y = x + rng.standard_normal(300)
    a, b = (estimate(x, y, key=jax.random.key(3), normal_scores=True) for _ in range(2))
    assert a.value == b.value and a.stderr == b.stderr


def test_permutation_p_value_counts_the_null_at_or_above_the_estimate():
    # p = (1 + #{null values >= observed}) / (num + 1), from the null values it reports.
    from cch_jax.mi import estimate

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(200), rng.standard_normal(200)  # independent: p is not tiny
    e = estimate(x, y, key=jax.random.key(0), estimator="gaussian", null=19)
    null = e.details["null"]
    above = sum(v >= e.value for v in null["values"])
    assert above > 0 and null["p_value"] == (1 + above) / 20


def test_knn_subsets_are_stratified_by_label():
    from cch_jax.mi.api import _split_groups

    labels = np.array([0] * 6 + [1] * 6)
    groups = _split_groups(jax.random.key(0), 12, 3, labels)
    for g in range(3):  # round-robin within each label: 2 of each per group
        assert np.bincount(labels[groups == g], minlength=2).tolist() == [2, 2]


def test_class_gaussians_pool_the_within_class_scatter_over_n_minus_c():
    # Two classes of 2 rows each in 1-d, z = (0, 2 | 10, 14): class means 1 and 12, residuals
    # (−1, 1 | −2, 2), within-class scatter 10, pooled variance 10/(4 − 2) = 5. Class 0: its own
    # variance 2/(2 − 1) = 2 shrunk toward 5 with weight d/(n_c + d) = 1/3: 2·2/3 + 5/3 = 3.
    from cch_jax.mi.copula import class_gaussians

    means, covs = class_gaussians(np.array([[0.0], [2.0], [10.0], [14.0]]), np.array([0, 0, 1, 1]))
    assert means.ravel().tolist() == [1.0, 12.0]
    np.testing.assert_allclose(covs[0, 0, 0], 3.0 * (1 + 1e-9), rtol=1e-12)
    np.testing.assert_allclose(covs[1, 0, 0], (8 * 2 / 3 + 5 / 3) * (1 + 1e-9), rtol=1e-12)


def test_normal_scores_are_the_normal_quantiles_of_rank_over_n_plus_1():
    from scipy.stats import norm

    from cch_jax.mi.copula import normal_scores

    z = normal_scores(np.array([[5.0], [-1.0], [2.0]]), np.random.default_rng(0))
    np.testing.assert_allclose(z.ravel(), norm.ppf([3 / 4, 1 / 4, 2 / 4]), rtol=1e-12, atol=0)


def test_check_refuses_a_class_with_fewer_than_3_rows():
    from cch_jax.mi.check import check_cch

    rng = np.random.default_rng(0)
    h = rng.standard_normal((40, 2))
    y = np.r_[np.zeros(38, int), [1, 1]]
    with pytest.raises(ValueError, match=r"every class needs at least 3 rows \(counts \[38, 2\]\)"):
        check_cch(h, h + rng.standard_normal((40, 2)), y, labels=True)


def test_mixed_reference_unstandardised_by_brute_force():
    # Ross (2014) by explicit pairwise max-norm distances, no KD-tree: d_i = k-th nearest other
    # point of i's class, m_i = #{j: ‖x_j − x_i‖ < d_i} (i itself included), N_i = i's class size;
    # I = ψ(n) + ψ(k) − ⟨ψ(N_i)⟩ − ⟨ψ(m_i)⟩. Raw (unstandardised) 2-d columns on different scales.
    from scipy.special import digamma

    from cch_jax.mi.reference import mixed_reference

    rng = np.random.default_rng(2)
    n, k = 40, 3
    labels = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)) * [1.0, 30.0] + labels[:, None] * [1.0, 10.0]
    dist = np.abs(x[:, None, :] - x[None, :, :]).max(-1)
    terms = []
    for i in range(n):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(n) != i))
        d_i = np.sort(dist[i, same])[k - 1]
        m_i = np.sum(dist[i] < d_i)
        terms.append(digamma(np.sum(labels == labels[i])) + digamma(m_i))
    want = digamma(n) + digamma(k) - np.mean(terms)
    got = mixed_reference(x, labels, k=k, standardize=False)
    assert got == pytest.approx(want, abs=1e-12)
    assert mixed_reference(x[:, 1], labels, k=k, standardize=False) == pytest.approx(
        mixed_reference(x[:, 1:], labels, k=k, standardize=False), abs=0
    )


def test_robust_scale_by_hand():
    # column 0: quartiles 2, 3, 4 → centre 3, scale IQR/1.3489795 = 2/1.3489795 (+ 1e-12);
    # column 1 is constant: IQR = 0 and sd = 0, so the scale is the 1e-12 guard alone.
    from cch_jax.mi.neural import _robust_scale

    a = np.array([[1.0, 7.0], [2.0, 7.0], [3.0, 7.0], [4.0, 7.0], [5.0, 7.0]])
    med, scale = _robust_scale(a)
    assert med.tolist() == [3.0, 7.0]
    np.testing.assert_allclose(scale, [2 / 1.3489795 + 1e-12, 1e-12], rtol=1e-12)


def test_neural_mi_names_an_unknown_bound():
    from cch_jax.mi.neural import neural_mi

    with pytest.raises(ValueError, match=r"^estimator='dv' must be one of \['infonce', 'mine'"):
        neural_mi(np.zeros((10, 1)), np.zeros((10, 1)), key=jax.random.key(0), estimator="dv")


def test_permutation_null_on_normal_scores_is_invariant_to_increasing_maps():
    # normal scores depend on ranks only: x and exp(x) give the same estimate and the same null
    from cch_jax.mi import estimate

    rng = np.random.default_rng(3)
    x = rng.standard_normal(150)
    y = x + rng.standard_normal(150)
    a, b = (
        estimate(v, y, key=jax.random.key(1), normal_scores=True, null=4) for v in (x, np.exp(x))
    )
    assert a.value == b.value and a.details["null"]["values"] == b.details["null"]["values"]


def test_check_subsample_keeps_every_row_of_a_small_class():
    # 92 rows of class 0, 8 of class 1; 20 rows drawn, stratified: class 1 keeps min(8, its
    # count) = 8 rows, i.e. all of them, each once; class 0 round(92·20/100) = 18 distinct rows.
    from cch_jax.mi.check import _rows

    y = np.r_[np.zeros(92, int), np.ones(8, int)]
    h = np.arange(100.0)[:, None]
    h1, _, ys = _rows(np.random.default_rng(0), 20, h, h, y, True)
    assert sorted(h1[ys == 1, 0]) == list(range(92, 100))
    assert len(np.unique(h1[ys == 0, 0])) == np.sum(ys == 0) == 18


def test_dense_and_student_t_tasks_have_their_structure():
    # "dense": x and y rotated, so their cross-correlations are spread over every pair (an
    # unrotated pair has them on the diagonal only: off-diagonal ~ 0 ± 1/√n); "student-t": each
    # row scaled by its own χ²_ν draw, so the margins are heavy-tailed (a Gaussian's sample
    # kurtosis is 3 ± 0.08 at n = 4000; a t with ν ≤ 5 has no finite fourth moment or ≥ 9).
    from scipy.stats import kurtosis

    from cch_jax.mi.tasks import tasks

    rng = np.random.default_rng(0)
    seen = set()
    for task in tasks():
        x, y = (np.reshape(a, (4000, -1)) for a in task.sample(rng, 4000))
        if "dense" in task.name and x.shape[1] > 1:
            c = np.corrcoef(x, y, rowvar=False)[: x.shape[1], x.shape[1] :]
            assert np.max(np.abs(c - np.diag(np.diag(c)))) > 0.1, task.name
            seen.add("dense")
        if task.name.startswith("student-t"):
            assert kurtosis(x[:, 0], fisher=False) > 4.5, task.name
            seen.add("t")
    assert seen == {"dense", "t"}


def test_minibatches_are_drawn_from_every_training_row():
    # One input x = 1 per row, targets (0, 0, 3): the least-squares weight is their mean, 1.
    # Minibatch SGD draws rows uniformly with replacement, so its expected gradient is the full
    # one and, with the step decayed to 0 (cosine), it ends near 1: within 0.2 here, where a
    # draw that missed row 0 would end near 1.5 and one that only drew row 0 near 0.
    from cch_jax.data.arrays import ArrayData
    from cch_jax.train import TrainConfig, make_train

    ones = np.ones((3, 1))
    data = ArrayData(ones, np.array([0.0, 0.0, 3.0]), np.zeros(3), ones, np.array([1.0, 1.0, 1.0]))
    config = TrainConfig(
        task="regression", data=data, model="linear", steps=2000, eval_every=2000,
        batch_size=2, optimizer="sgd", schedule="cosine",
    )  # fmt: skip
    res = jax.jit(make_train(config))(data, jax.random.key(0), 0.0, 1.0, 0.05)
    w = float(np.asarray(res.params["params"]["head"]["kernel"]).ravel()[0])
    assert abs(w - 1.0) < 0.2, w


def test_a_constant_column_is_named_with_its_value():
    from cch_jax.mi.validate import validate

    x = np.c_[np.arange(20.0), np.full(20, 2.0)]
    with pytest.raises(
        ValueError,
        match=r"^x: column 1 is constant \(value 2\); every column must vary \(drop constant "
        r"columns\)$",
    ):
        validate(x, np.arange(20.0), names=("x", "y"))


def test_check_accepts_few_rows_when_the_validated_range_is_not_required():
    # The gc family needs n > d + 2 rows for its Wishart bias correction; 20 rows of 2 + 2 + 1
    # columns are enough when the caller waives the validated range (an answer, not an error).
    from cch_jax.mi.check import check_cch

    rng = np.random.default_rng(0)
    h = rng.standard_normal((20, 2))
    y = h[:, :1] + rng.standard_normal((20, 1))
    r = check_cch(h, h + rng.standard_normal((20, 2)), y, labels=False, require_validated=False)
    assert r.to_dict()["n"] == 20


def test_validate_cov_size_and_finiteness_errors_whole():
    from theory.model import validate_cov

    batch = np.broadcast_to(np.eye(4), (2, 3, 4, 4))  # (d, d) = (4, 4) where p1 + p2 + 1 = 5
    with pytest.raises(
        ValueError, match=r"^cov of size 4 must have size p1\+p2\+1=5 \(ordered \[x1, x2, y\]\)$"
    ):
        validate_cov(batch, 2, 2)
    bad = np.eye(3)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^cov has non-finite entries \(NaN or inf\)$"):
        validate_cov(bad, 1, 1)


def test_validate_cov_symmetry_is_relative_to_each_matrix_and_pd_strict():
    from theory.model import SYMMETRY_RTOL, validate_cov

    def skewed(scale, rel):  # scale·I (3 × 3) with one off-diagonal pair apart by rel·scale
        c = scale * np.eye(3)
        c[0, 1] = rel * scale
        return c

    validate_cov(skewed(1e4, SYMMETRY_RTOL / 10), 1, 1)  # relative: 1e-11 passes at any scale
    with pytest.raises(ValueError, match="not symmetric"):
        validate_cov(skewed(1e-4, 10 * SYMMETRY_RTOL), 1, 1)  # 1e-9 relative fails, though tiny
    with pytest.raises(ValueError, match="not symmetric"):  # per matrix, not per batch
        validate_cov(np.stack([skewed(1e4, 0.0), skewed(1.0, 10 * SYMMETRY_RTOL)]), 1, 1)
    exact = np.eye(3)
    exact[0, 1] = SYMMETRY_RTOL  # asymmetry exactly at the tolerance (scale 1) is accepted
    validate_cov(exact, 1, 1)
    # Positive definite strictly: the zero matrix (smallest eigenvalue exactly 0) is refused, and
    # diag(1, −2, 3)'s smallest eigenvalue is reported as it is.
    with pytest.raises(ValueError, match=r"^cov is not positive definite: smallest eigenvalue 0 "):
        validate_cov(np.zeros((3, 3)), 1, 1)
    with pytest.raises(ValueError, match=r"smallest eigenvalue -2 must be > 0$"):
        validate_cov(np.diag([1.0, -2.0, 3.0]), 1, 1)


# --- the latent estimator (run 6's survivors) ---------------------------------------------------
# One configuration for every call, so the autoencoders compile once for these tests.
LATENT = dict(latent_dim=2, steps=20, hidden=8, seeds=2, lr=1e-2, transform="standard")


def _latent_data(n=200):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((n, 2))
    x = np.c_[z, rng.standard_normal(n)]
    y = z + 0.5 * rng.standard_normal((n, 2))
    return x, y


def test_latent_estimate_is_invariant_to_shifting_the_inputs():
    # MI is invariant to translations, and transform="standard" centres each input on its training
    # half first: shifting x by a constant changes nothing but rounding (~1e-14).
    from cch_jax.mi.latent import latent_mi

    x, y = _latent_data()
    a = latent_mi(x, y, key=jax.random.key(1), **LATENT)
    b = latent_mi(x + 50.0, y - 20.0, key=jax.random.key(1), **LATENT)
    assert a["value"] > 0.05  # dependent data: not a vacuous 0 = 0
    np.testing.assert_allclose(b["value"], a["value"], rtol=1e-6)
    np.testing.assert_allclose(b["stderr"], a["stderr"], rtol=1e-6)


def test_latent_estimate_uses_10_disjoint_subsets_by_default():
    # docs/mi_validation_table.md: the kNN stderr comes from m = 10 disjoint random subsets. With
    # 100 evaluation rows and k = 3, up to 25 subsets would fit, so 10 is the default's choice.
    from cch_jax.mi.latent import latent_mi

    x, y = _latent_data()
    default = latent_mi(x, y, key=jax.random.key(1), **LATENT)
    ten = latent_mi(x, y, key=jax.random.key(1), subsets=10, **LATENT)
    eleven = latent_mi(x, y, key=jax.random.key(1), subsets=11, **LATENT)
    assert default["stderr"] == ten["stderr"] != eleven["stderr"]


@pytest.mark.parametrize("constant", ["x", "y"])
def test_latent_estimate_with_a_constant_variable_is_exactly_zero(constant):
    # A constant input gives a constant latent code, which gets a ramp of spread 1e-9 to break
    # ties. Every other distance is far larger, so in KSG each point's k-th neighbour is set by the
    # other variable alone: n_const = N − 1 and n_other = k − 1 for every point, and
    # I = ψ(k) + ψ(N) − ψ(N) − ψ(k) = 0 exactly (for the full set and every subset).
    from cch_jax.mi.latent import latent_mi

    x, y = _latent_data()
    if constant == "x":
        x = np.full_like(x, 3.0)
    else:
        y = np.full_like(y, -1.0)
    e = latent_mi(x, y, key=jax.random.key(1), **LATENT)
    assert abs(e["value"]) < 1e-12 and e["stderr"] < 1e-12, e
    assert e["zero_eps"] == 0  # the details key docs/mi_validation_table.md names


def test_strata_given_as_a_column_are_the_same_labels():
    # An (n, 1) column of labels means the same as (n,) everywhere in the API (y included).
    from cch_jax.mi import estimate

    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 2))
    y = x[:, :1] + rng.standard_normal((120, 1))
    s = rng.integers(0, 3, 120)
    flat = estimate(x, y, key=jax.random.key(0), estimator="ksg", strata=s)
    col = estimate(x, y, key=jax.random.key(0), estimator="ksg", strata=s[:, None])
    assert col.stderr == flat.stderr and col.value == flat.value


def test_class_surrogate_standard_error_matches_the_spread_of_repeated_estimates():
    # i12_se estimates the sd of the Monte Carlo mean Î12 over the draws. Data symmetric under
    # z → −z with the classes swapped make the fitted model symmetric, so t12 has the same law in
    # both classes and the stratified draws (2 per class here) are exchangeable: then E[i12_se²] =
    # Var(Î12) exactly (sample variance with ddof 1 is unbiased). Check it over 600 repeats, with
    # the paired difference d_r = i12_se_r² − (Î12_r − mean)²·R/(R − 1), mean 0 within 4 SE.
    from cch_jax.mi.check import class_surrogate

    rng = np.random.default_rng(0)
    z2 = rng.standard_normal((20, 2)) + [1.5, 0.0]
    z1 = z2 @ np.array([[0.8], [0.3]]) + 0.5 * rng.standard_normal((20, 1))
    z1, z2 = np.r_[z1, -z1], np.r_[z2, -z2]
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    runs = [class_surrogate(z1, z2, labels, np.random.default_rng(r), mc=4) for r in range(600)]
    est = np.array([s.i12 for s in runs])
    se2 = np.array([s.i12_se for s in runs]) ** 2
    R = est.size
    d = se2 - (est - est.mean()) ** 2 * R / (R - 1)
    assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(R), (d.mean(), d.std(ddof=1), est.var())
    assert d.std(ddof=1) / np.sqrt(R) < 0.1 * est.var()  # power: a 3/2 factor in se² would show


# --- a fresh sample of the MI mutants (2026-12-02, seed 1): survivors with a derivation ----------


def test_strata_stratify_the_knn_subsets():
    # Round-robin within each stratum: 17 rows of stratum 0 deal 5, 4, 4, 4 into 4 subsets and
    # 19 rows of stratum 1 deal 5, 5, 5, 4, so the subsets hold 10, 9, 9, 8 rows (smallest 8);
    # without strata, 36 rows deal 9 to each. y is continuous, so nothing else stratifies.
    from cch_jax.mi import estimate

    rng = np.random.default_rng(6)
    x = rng.standard_normal((36, 1))
    y = x + rng.standard_normal((36, 1))
    s = np.r_[np.zeros(17, int), np.ones(19, int)]
    kw = dict(key=jax.random.key(0), estimator="ksg", subsets=4)
    assert estimate(x, y, **kw).details["subset_size"] == 9
    assert estimate(x, y, strata=s, **kw).details["subset_size"] == 8


def test_two_subsets_need_only_2_k_plus_1_rows():
    # Each of the disjoint subsets needs k + 1 rows: with 2 subsets and k = 3, 8 rows suffice.
    from cch_jax.mi import estimate
    from cch_jax.mi.validate import min_samples

    assert min_samples("ksg", k=3, subsets=2) == 8
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 1))
    assert np.isfinite(
        estimate(x, x + rng.standard_normal((8, 1)), key=jax.random.key(0), subsets=2).value
    )


def test_mixed_accepts_exactly_2_k_plus_1_rows_per_class_and_names_a_rarer_one():
    # The rule says "at least 2(k+1) per class": 8 rows of a class pass at k = 3, 7 do not, and the
    # error names that class by its label value (9), not by position.
    from cch_jax.mi import estimate

    rng = np.random.default_rng(8)
    for rare, ok in ((8, True), (7, False)):
        y = np.r_[np.full(30, 5), np.full(rare, 9)]
        x = rng.standard_normal((y.size, 1)) + (y[:, None] == 9)
        call = lambda x=x, y=y: estimate(x, y, key=jax.random.key(0), estimator="mixed", subsets=2)
        if ok:
            assert np.isfinite(call().value)
        else:
            with pytest.raises(
                ValueError, match=r"^y: class 9 has 7 sample\(s\); estimator 'mixed'"
            ):
                call()


def test_non_finite_rows_error_is_the_whole_rule():
    from cch_jax.mi import estimate

    x = np.ones((40, 1))
    x[3] = np.nan
    with pytest.raises(ValueError) as e:
        estimate(x, np.arange(40.0)[:, None], key=jax.random.key(0))
    assert str(e.value) == (
        "x: 1 row(s) contain NaN or inf (first: row 3); all values must be finite (drop or impute "
        "those rows)"
    )


def test_the_gaussian_above_entropy_warning_points_at_the_callers_line():
    # stacklevel=2: the warning names the line that called `estimate`, here this file.
    from cch_jax.mi import estimate

    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 200)
    x = y[:, None] + 1e-4 * rng.standard_normal((200, 1))  # x all but determines y: I ≫ H(Y)
    with pytest.warns(UserWarning, match="above H\\(Y\\)") as record:
        estimate(x, y, key=jax.random.key(0), estimator="gaussian")
    assert record[0].filename == __file__


def test_class_surrogate_label_mi_with_unbalanced_classes_matches_an_independent_monte_carlo():
    # I(H2; Y) of the fitted class-conditional Gaussians (p = 3/4, 1/4), by scipy's densities on
    # 200 000 draws of its own: log p(c | z) − log p_c averaged over the mixture. The surrogate's
    # draws keep the class proportions, so its Monte Carlo mean must agree within 4 combined SEs
    # (a draw weighted by p_c² instead of ≈ 1 would under-count the rare class).
    from scipy.stats import norm

    from cch_jax.mi.check import class_surrogate
    from cch_jax.mi.copula import class_gaussians

    rng = np.random.default_rng(10)
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    z2 = rng.standard_normal((400, 1)) + 1.5 * labels[:, None]
    z1 = z2 + rng.standard_normal((400, 1))
    sur = class_surrogate(z1, z2, labels, np.random.default_rng(11))
    means, covs = class_gaussians(z2, labels)
    p = np.array([0.75, 0.25])
    c = rng.choice(2, 200_000, p=p)
    sd = np.sqrt(covs[:, 0, 0])
    z = means[c, 0] + sd[c] * rng.standard_normal(c.size)
    logj = np.log(p) + norm.logpdf(z[:, None], means[:, 0], sd)  # (N, 2): log p_c N_c(z)
    t = logj[np.arange(c.size), c] - np.logaddexp(logj[:, 0], logj[:, 1]) - np.log(p[c])
    se = np.hypot(sur.i2y_se, t.std(ddof=1) / np.sqrt(t.size))
    assert abs(sur.i2y - t.mean()) < 4 * se, (sur.i2y, t.mean(), se)
    assert t.mean() > 20 * se  # a real dependence, resolved


def test_check_subsamples_continuous_y_rows_to_fit_the_knn_budget():
    # A budget of what 420 rows cost makes the knn family run on a random subsample of ~420 of the
    # 500 rows (continuous y: the unstratified branch), reported in `subsampled`.
    from cch_jax.mi.check import MIN_KNN_ROWS, check_cch, knn_seconds

    rng = np.random.default_rng(12)
    h2 = rng.standard_normal((500, 1))
    h1, y = h2 + rng.standard_normal((500, 1)), h2 + rng.standard_normal((500, 1))
    budget = knn_seconds(420, 1, 1, 1, 16)
    res = check_cch(
        h1, h2, y, labels=False, families=("knn",), knn_budget_s=budget, require_validated=False
    )
    assert MIN_KNN_ROWS <= res.subsampled["knn"] < 500
    assert abs(res.subsampled["knn"] - 420) <= 1  # isqrt of a float ratio
    assert np.isfinite(res.gap)


def test_knn_subset_estimates_use_the_callers_k():
    # KSG with k = N − 1 on N rows is exactly 0 on any continuous data: every point's k
    # neighbours are all the others, the farthest sets ε, and in whichever marginal it is farthest
    # it is not strictly inside ε, so n_x + n_y = (N − 1) + (N − 2) for every point and
    # I = ψ(k) + ψ(N) − ψ(N) − ψ(N − 1) = 0. 12 rows in 2 subsets of 6 with k = 5: both subset
    # estimates are 0 (a subset estimate at another k, e.g. the default 3, is not).
    from cch_jax.mi import estimate

    rng = np.random.default_rng(13)
    x = rng.standard_normal((12, 1))
    e = estimate(x, x + rng.standard_normal((12, 1)), key=jax.random.key(0), k=5, subsets=2)
    np.testing.assert_allclose(e.details["subset_estimates"], [0.0, 0.0], atol=1e-12)
