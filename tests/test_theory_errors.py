"""Bad input raises ValueError/TypeError naming the argument and the rule; theory is float64."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import theory
from cch_jax.cli import main


@pytest.fixture
def model():
    return theory.random_model(jax.random.key(0), 2, 3)


def good_cov():
    return np.array(theory.random_model(jax.random.key(0), 2, 3).cov)


@pytest.mark.parametrize(
    "cov,p1,p2,match",
    [
        (np.eye(6)[:, :5], 2, 3, "square"),
        (np.eye(5), 2, 3, "p1\\+p2\\+1=6"),
        (np.where(np.eye(6) > 0, np.nan, 0.0), 2, 3, "non-finite"),
        (np.eye(6) + np.triu(np.full((6, 6), 0.1), 1), 2, 3, "not symmetric"),
        (np.diag([1.0, 1, 1, 1, 1, -1]), 2, 3, "not positive definite"),
        (np.eye(6), 0, 5, "p1=0 must be >= 1"),
    ],
)
def test_joint_gaussian_rejects(cov, p1, p2, match):
    with pytest.raises(ValueError, match=match):
        theory.JointGaussian(cov, p1, p2)


def test_joint_gaussian_accepts_tiny_asymmetry():
    cov = good_cov()
    cov[0, 1] += 1e-13 * np.abs(cov).max()
    theory.JointGaussian(cov, 2, 3)


def test_n_too_small_says_risk_infinite(model):
    w1 = theory.optimal_teacher(model)
    with pytest.raises(ValueError, match=r"n=4 must exceed p2\+1=4: the expected risk is infinite"):
        theory.expected_risk(model, w1, 0.5, 4)
    for fn in (theory.optimal_lambda, theory.helpful_lambda_max, theory.min_risk):
        with pytest.raises(ValueError, match="n=3"):
            fn(model, w1, 3)
    with pytest.raises(ValueError, match="n=2"):
        theory.baseline_risk(model, 2)
    with pytest.raises(TypeError, match="n=10.5"):
        theory.expected_risk(model, w1, 0.5, 10.5)


def test_negative_lambda(model):
    w1 = theory.optimal_teacher(model)
    with pytest.raises(ValueError, match="lam=.*must be >= 0"):
        theory.expected_risk(model, w1, [0.1, -0.2], 20)
    with pytest.raises(ValueError, match="lam=.*must be >= 0"):
        theory.expected_risk(model, w1, np.nan, 20)


def test_w1_shape(model):
    with pytest.raises(ValueError, match=r"w1 of shape \(3,\) must have shape \(p1,\)=\(2,\)"):
        theory.expected_risk(model, np.ones(3), 0.5, 20)


def test_gamma_range(model):
    with pytest.raises(ValueError, match="gamma=1.0 must lie in"):
        theory.asymptotic_risk(model, theory.optimal_teacher(model), 0.5, 1.0)


def test_mi_blocks_names(model):
    with pytest.raises(ValueError, match="block='z'"):
        theory.mi_blocks(model, "z", "y")
    with pytest.raises(ValueError, match="disjoint"):
        theory.mi_blocks(model, ("x1", "y"), "y")


def test_results_are_float64_without_global_x64():
    """In a fresh process (x64 off), theory still computes in float64; the engine default stays."""
    code = (
        "import jax, jax.numpy as jnp, theory\n"
        "m = theory.random_model(jax.random.key(0), 2, 3)\n"
        "w = theory.optimal_teacher(m)\n"
        "vals = [theory.expected_risk(m, w, [0.0, 1.0], 20), theory.mi_teacher_student(m, w),"
        " theory.optimal_lambda(m, w, 20), m.cov]\n"
        "print(all(v.dtype == jnp.float64 for v in vals), jnp.ones(1).dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "float32"]


def run_cli(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json(tmp_path, capsys):
    np.save(tmp_path / "cov.npy", good_cov())
    rc, out, err = run_cli(
        [
            "theory",
            "--cov",
            str(tmp_path / "cov.npy"),
            "--p1",
            "2",
            "--n",
            "20",
            "--lam",
            "0",
            "0.5",
            "--json",
        ],
        capsys,
    )
    assert rc == 0, err
    r = json.loads(out)
    keys = {
        "risk",
        "baseline_risk",
        "risk_slope_at_zero",
        "lambda_star",
        "lambda_max",
        "risk_min",
        "mi_teacher_student",
        "mi_student_label",
        "cch_holds",
        "kd_helps_small_lambda",
        "assumptions",
    }
    assert keys <= set(r)
    m = theory.JointGaussian(good_cov(), 2, 3)
    np.testing.assert_allclose(
        r["risk"], theory.expected_risk(m, theory.optimal_teacher(m), [0, 0.5], 20), rtol=1e-12
    )
    assert r["risk"][0] == pytest.approx(r["baseline_risk"], rel=1e-12)


@pytest.mark.parametrize(
    "cov,extra,match",
    [
        (np.diag([1.0, 1, 1, 1, 1, -1]), [], "not positive definite"),
        (None, [], "does not exist"),
        (np.eye(6), ["--n", "4"], "must exceed"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, cov, extra, match):
    path = tmp_path / "cov.npy"
    if cov is not None:
        np.save(path, cov)
    args = ["theory", "--cov", str(path), "--p1", "2", "--n", "20", *extra]
    rc, out, err = run_cli(args, capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and match in err
    assert "Traceback" not in err


def test_cli_garbage_file_exits_2(tmp_path):
    path = tmp_path / "cov.npy"
    path.write_text("not an array")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cch_jax.cli",
            "theory",
            "--cov",
            str(path),
            "--p1",
            "2",
            "--n",
            "20",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--cov" in proc.stderr and "not a .npy file" in proc.stderr
    assert "Traceback" not in proc.stderr
