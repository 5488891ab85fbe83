"""CLI paths the other tests do not take: a closed pipe in a plain environment, --version, help
texts, verify --w1, mi --labels/--subsets/--seed, check --key/--families."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

import theory
from cch_jax.cli import build_parser
from cch_jax.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent


def run_json(args, capsys):
    capsys.readouterr()
    rc = cli([*args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def plain_env() -> dict:
    """The environment of a normal shell: no PYTHONUNBUFFERED (stdout block-buffered in a pipe)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["CCH_NO_COMPILE_CACHE"] = "1"
    return env


def test_closed_pipe_is_not_an_error_in_a_plain_environment():
    """`cch theory --example | head -0`: the reader is gone before cch writes. Buffered stdout
    would fail at interpreter exit (exit 120, "Exception ignored … BrokenPipeError")."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cch_jax.cli", "theory", "--example"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=plain_env(),
    )
    proc.stdout.close()  # cch is still importing: its output meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == "", err


def test_version_is_the_package_version(capsys):
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as info:
        cli(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cch {want}"


def _subparsers():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


# argparse %-formats help strings but not descriptions: "95%%" in a description prints as is.
@pytest.mark.parametrize("name", list(_subparsers()))
def test_every_option_has_help_and_no_literal_percent_signs(name, capsys):
    sp = _subparsers()[name]
    for action in sp._actions:
        assert action.help, (name, action.option_strings or action.dest)
    with pytest.raises(SystemExit):
        cli([name, "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out, name


# --------------------------------------------------------------------------- verify


def test_verify_w1_is_the_teacher_it_compares_with(tmp_path, capsys):
    model = theory.factor_model(4, 4, teacher_noise=0.5, rank=2)  # the --example model
    w1 = 0.5 * np.asarray(theory.optimal_teacher(model))
    np.save(tmp_path / "w1.npy", w1)
    args = ["--example", "--lam", "1.0", "--w1", str(tmp_path / "w1.npy")]
    _, r = run_json(["verify", *args, "--seeds", "4", "--steps", "20"], capsys)
    _, t = run_json(["theory", *args], capsys)
    _, default = run_json(["theory", "--example", "--lam", "1.0"], capsys)
    assert r["results"][0]["theory"] == pytest.approx(t["risk"][0], rel=1e-12)
    assert t["risk"][0] != pytest.approx(default["risk"][0], rel=1e-6)  # w1 made a difference


# --------------------------------------------------------------------------- mi


@pytest.fixture
def labelled(tmp_path):
    """x (n, 2) whose mean depends on a 3-class label y, saved with y as integral floats (CSV)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.standard_normal((600, 2)) + np.eye(3, 2)[y] * 1.5
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y.astype(float), delimiter=",")
    np.save(tmp_path / "y_int.npy", y)
    return tmp_path


def test_mi_labels_flag_treats_float_labels_as_classes(labelled, capsys):
    x = str(labelled / "x.npy")
    _, as_float = run_json(
        ["mi", x, str(labelled / "y.csv"), "--labels", "--estimator", "mixed"], capsys
    )
    _, as_int = run_json(["mi", x, str(labelled / "y_int.npy"), "--estimator", "mixed"], capsys)
    assert as_float == as_int and as_float["estimator"] == "mixed"
    assert 0 < as_float["mi"] < np.log(3)  # I(X; Y) ≤ H(Y) ≤ log 3
    assert cli(["mi", x, str(labelled / "x.npy"), "--labels", "--json"]) == 2  # not labels


def test_mi_subsets_and_seed(labelled, capsys):
    """The kNN interval uses t with subsets − 1 degrees of freedom; the seed moves the subsets
    (hence the stderr) but not the full-sample estimate; the same seed repeats exactly."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal(500)
    np.save(labelled / "a.npy", a)
    np.save(labelled / "b.npy", a + rng.standard_normal(500))
    files = ["mi", str(labelled / "a.npy"), str(labelled / "b.npy")]
    _, cal = run_json([*files, "--calibrate", "12"], capsys)  # the bias-aware interval: t_{B−1}
    q = (cal["ci"][1] - cal["mi"]) / cal["stderr"]
    assert q == pytest.approx(stats.t.ppf(0.975, 11), rel=1e-9)
    # The uncorrected estimate on standardised columns (normal scores' ties are seeded too).
    base = [*files, "--calibrate", "0", "--no-normal-scores"]
    _, five = run_json([*base, "--subsets", "5"], capsys)
    q = (five["ci"][1] - five["mi"]) / five["stderr"]
    assert q == pytest.approx(stats.t.ppf(0.975, 4), rel=1e-9)
    _, s0 = run_json([*base, "--seed", "0"], capsys)
    _, s1 = run_json([*base, "--seed", "1"], capsys)
    _, again = run_json([*base, "--seed", "1"], capsys)
    assert s0["mi"] == s1["mi"] == five["mi"] and s0["stderr"] != s1["stderr"]
    assert again == s1


# --------------------------------------------------------------------------- check


def test_check_key_reads_npz_members(tmp_path, capsys):
    """--key picks the same member from every .npz: the result equals the .npy run's."""
    rng = np.random.default_rng(3)
    h2 = rng.standard_normal((300, 2))
    h1 = h2 + 0.5 * rng.standard_normal((300, 2))
    y = (h2[:, 0] > 0).astype(np.int64)
    for name, arr in (("h1", h1), ("h2", h2), ("y", y)):
        np.save(tmp_path / f"{name}.npy", arr)
        np.savez(tmp_path / f"{name}.npz", rep=arr, other=np.zeros(3))
    npy = ["--teacher", "h1.npy", "--student", "h2.npy", "--labels", "y.npy"]
    npz = ["--teacher", "h1.npz", "--student", "h2.npz", "--labels", "y.npz", "--key", "rep"]
    fix = lambda args: [str(tmp_path / a) if a.endswith((".npy", ".npz")) else a for a in args]
    gc = ["--families", "gc", "--surrogates", "8"]
    _, a = run_json(["check", *fix(npy), *gc], capsys)
    _, b = run_json(["check", *fix(npz), *gc], capsys)
    a.pop("seconds"), b.pop("seconds")
    assert a == b and a["labels"] is True and a["n"] == 300 and a["dims"] == [2, 2, 0]
    # Two members and no --key: a one-line user error, exit 2.
    assert cli(["check", *fix(npz[:-2]), *gc]) == 2
    assert "choose one with --key" in capsys.readouterr().err


def test_check_families_are_the_ones_run(tmp_path, capsys):
    """--families: only the named families run, the first one's numbers are reported, and a
    family's numbers do not depend on whether a later family runs after it (same seed)."""
    rng = np.random.default_rng(4)
    h2 = rng.standard_normal(500)
    np.save(tmp_path / "h1.npy", h2 + rng.standard_normal(500))
    np.save(tmp_path / "h2.npy", h2)
    np.save(tmp_path / "y.npy", h2 + 2 * rng.standard_normal(500))
    args = [
        "check",
        "--teacher",
        str(tmp_path / "h1.npy"),
        "--student",
        str(tmp_path / "h2.npy"),
        "--labels",
        str(tmp_path / "y.npy"),
        "--surrogates",
        "8",
    ]
    _, both = run_json(args, capsys)
    _, gc = run_json([*args, "--families", "gc"], capsys)
    _, knn = run_json([*args, "--families", "knn"], capsys)
    assert [f["family"] for f in both["families"]] == ["gc", "knn"]
    assert [f["family"] for f in gc["families"]] == ["gc"] and gc["skipped"] == {}
    assert [f["family"] for f in knn["families"]] == ["knn"]
    assert gc["families"][0] == both["families"][0]
    for r in (gc, knn):
        (f,) = r["families"]
        assert r["gap"] == f["gap"]["value"] and r["gap_ci"] == f["gap"]["ci"]
        assert r["mi_student_label"] == f["mi_student_label"]["value"]
    assert knn["gap"] != gc["gap"]
    # One family is never a validated verdict: the calibrated check needs both.
    assert gc["validated"] is False and gc["verdict"] == "inconclusive"
    true_sy = -0.5 * np.log(1 - 1 / 5)  # ρ² = 1/(1 + 4)
    assert both["families"][1]["mi_student_label"]["ci"][0] < true_sy


def test_readme_cov_example_is_the_documented_recipe(capsys):
    """README's `cch theory --cov cov.npy` example: the shipped file is what its recipe makes."""
    path = ROOT / "docs" / "examples" / "cov_4_4.npy"
    model = theory.random_model(jax.random.key(0), 4, 4)
    np.testing.assert_allclose(np.load(path), model.cov, rtol=1e-12)
    rc, r = run_json(["theory", "--cov", str(path), "--p1", "4", "--n", "40"], capsys)
    assert rc == 0 and r["p2"] == 4
