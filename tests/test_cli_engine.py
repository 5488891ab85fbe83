"""`cch verify` and `cch scan`: agreement and disagreement verdicts, files, one-line errors."""

import json

import jax
import numpy as np
import pytest
from _cli import run_cli

import theory
from cch_jax.cli.common import example_model
from cch_jax.results import load_scan


def assert_one_line_error(code, err, command, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cch {command}: error:"), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    model = theory.random_model(jax.random.key(0), 2, 3)
    np.save(d / "cov.npy", np.asarray(model.cov))
    np.save(d / "w1_bad.npy", np.ones(3))
    np.save(d / "rect.npy", np.ones((3, 4)))
    not_pd = np.asarray(model.cov).copy()
    not_pd[0, 0] = -1.0
    np.save(d / "not_pd.npy", not_pd)
    return d, model


def test_verify_agrees_with_the_theory(capsys):
    argv = "verify --example --lam 0 1 --seeds 500 --steps 1000 --json".split()
    code, out, _ = run_cli(capsys, *argv)
    r = json.loads(out)
    assert code == 0 and r["verdict"] == "agrees" and r["agrees"] and r["converged"]
    assert [x["lam"] for x in r["results"]] == [0.0, 1.0]
    model, n = example_model()
    expected = theory.expected_risk(model, theory.optimal_teacher(model), np.array([0.0, 1.0]), n)
    for x, e in zip(r["results"], np.asarray(expected), strict=True):
        assert x["theory"] == pytest.approx(float(e), rel=1e-12)
        assert x["z"] == pytest.approx((x["mean"] - x["theory"]) / x["sem"], rel=1e-12)
        assert abs(x["z"]) < 4 and x["students"] == 500 and x["diverged"] == 0
    assert r["seeds"] == 500 and r["steps"] == 1000 and r["n"] == 40


def test_verify_flags_untrained_students(capsys):
    # The same program as above (shapes, steps) with a tiny step: students stay near their init.
    args = ["--example", "--lam", "0", "1", "--seeds", "500", "--steps", "1000", "--lr", "1e-7"]
    code, out, _ = run_cli(capsys, "verify", *args, "--json")
    r = json.loads(out)
    assert code == 1 and r["verdict"] == "disagrees" and not r["converged"]
    assert all(x["max_rel_weight_error"] > 1e-3 and abs(x["z"]) > 4 for x in r["results"])


def test_verify_report_text_for_each_verdict():
    from cch_jax.cli.verify import format_report

    row = {"lam": 0.5, "theory": 1.0, "mean": 1.01, "sem": 0.01, "z": 1.0, "diverged": 0}
    base = {
        "p1": 2,
        "p2": 3,
        "n": 12,
        "seeds": 50,
        "steps": 3,
        "lr": 0.1,
        "dtype": "float64",
        "optimizer": "adam",
        "z_tolerance": 4.0,
        "train_seconds": 1.0,
    }
    slow = format_report(
        {
            **base,
            "results": [{**row, "max_rel_weight_error": 0.5}],
            "agrees": False,
            "converged": False,
            "verdict": "not converged",
        }
    )
    assert "verdict: not converged" in slow and "raise --steps" in slow
    bad = format_report(
        {
            **base,
            "results": [{**row, "z": 9.0, "diverged": 2, "max_rel_weight_error": 1e-7}],
            "agrees": False,
            "converged": True,
            "verdict": "disagrees",
        }
    )
    assert "verdict: disagrees" in bad and "2 students diverged" in bad and "[0.5]" in bad


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--example", "--lam", "-1"], ["--lam=-1.0", ">= 0"]),
        (["--example", "--seeds", "0"], ["--seeds=0", ">= 2"]),
        (["--example", "--steps", "0"], ["--steps=0", ">= 1"]),
        (["--example", "--lr", "0"], ["--lr=0.0", "> 0"]),
        (["--example", "--n", "5"], ["--n=5", "must exceed p2+1=5"]),
        (["--cov", "COV", "--p1", "2", "--n", "4"], ["--n=4", "p2+1=4"]),
        (["--cov", "COV", "--p1", "2", "--n", "20", "--w1", "W1BAD"], ["--w1", "(3,)", "(2,)"]),
        (["--cov", "RECT", "--p1", "1", "--n", "20"], ["--cov", "(3, 4)", "square"]),
        (["--cov", "NOTPD", "--p1", "2", "--n", "20"], ["--cov", "positive definite"]),
        (["--cov", "COV", "--p1", "9", "--n", "20"], ["--p1=9", "p2"]),
        (["--p1", "2", "--n", "20"], ["--cov", "required"]),
        (["--cov", "missing.npy", "--p1", "2", "--n", "20"], ["--cov", "does not exist"]),
        (["--example", "--memory-budget", "0"], ["--memory-budget=0.0", "> 0"]),
        (
            ["--example", "--n", "100000000", "--sampler", "rows", "--memory-budget", "0.5"],
            ["--n=100000000", "memory budget"],
        ),
    ],
)
def test_verify_bad_input_is_one_line_exit_2(capsys, model_files, args, fragments):
    d, _ = model_files
    files = {"COV": "cov.npy", "W1BAD": "w1_bad.npy", "RECT": "rect.npy", "NOTPD": "not_pd.npy"}
    args = [str(d / files[a]) if a in files else a for a in args]
    code, _, err = run_cli(capsys, "verify", *args)
    assert_one_line_error(code, err, "verify", *fragments)


TOML = """
[train]
steps = 20
eval_every = 10

[data]
kind = "gaussian"
cov = "cov.npy"
p1 = 2
n = 12

[grid]
lam = [0.0, 1.0]
learning_rate = [0.05]
seeds = 3
"""


def test_scan_from_toml_saves_results(capsys, model_files, tmp_path):
    d, _ = model_files
    cfg = d / "scan.toml"
    cfg.write_text(TOML)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "scan", "--config", str(cfg), "--out", str(out))
    assert code == 0 and "diverged: 0" in stdout
    result, meta = load_scan(out / "results.npz")
    assert result.metrics.test.shape == (2, 1, 1, 3, 2)
    assert meta["config"]["data"]["n"] == 12 and meta["seeds"] == [0, 1, 2]
    assert set(meta["versions"]) >= {"jax", "flax", "optax", "numpy"}


def test_scan_from_json_with_fixed_arrays(capsys, tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    x = rng.normal(size=(40, 5)) + 2 * np.eye(3, 5)[y]
    np.savez(
        tmp_path / "arrays.npz",
        x_train=x[:30],
        y_train=y[:30],
        teacher_train=4 * np.eye(3)[y[:30]],
        x_test=x[30:],
        y_test=y[30:],
    )
    cfg = {
        "train": {"task": "classification", "model": "linear", "steps": 30, "eval_every": 10},
        "data": {"kind": "arrays", "path": "arrays.npz"},
        "grid": {"lam": [0.0, 0.5], "temperature": [2.0], "learning_rate": [0.1], "seeds": [7]},
    }
    (tmp_path / "scan.json").write_text(json.dumps(cfg))
    code, stdout, _ = run_cli(
        capsys,
        "scan",
        "--config",
        str(tmp_path / "scan.json"),
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    r = json.loads(stdout)
    assert code == 0 and r["n_diverged"] == 0
    assert r["shape"] == {"lam": 2, "temperature": 1, "learning_rate": 1, "seed": 1, "step": 3}
    acc = np.asarray(r["final_test_mean"], dtype=float)
    assert np.all((acc > 1 / 3) & (acc <= 1))  # above chance on separable blobs


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (("temperature = [1.0]", "temperature = [0.0]"), ["temperature=0.0", "> 0"]),
        (("lam = [0.0, 1.0]", "lam = [0.0, -2.0]"), ["lam=-2.0", ">= 0"]),
        (("seeds = 3", "seeds = 0"), ["grid.seeds=0", ">= 1"]),
        (("n = 12", "n = 4"), ["data.n=4", "p2+1=4"]),
        (("steps = 20", "stpes = 20"), ["unknown key", "stpes"]),
        (("eval_every = 10", "eval_every = 7"), ["eval_every=7", "divide steps=20"]),
        (('kind = "gaussian"', 'kind = "zarr"'), ["data.kind='zarr'"]),
        (("[grid]", "[grid"), ["cannot parse"]),
    ],
)
def test_scan_bad_config_is_one_line_exit_2(capsys, model_files, tmp_path, edit, fragments):
    d, _ = model_files
    text = TOML.replace("seeds = 3", "seeds = 3\ntemperature = [1.0]").replace(*edit)
    cfg = d / f"bad_{abs(hash(edit))}.toml"
    cfg.write_text(text)
    code, _, err = run_cli(capsys, "scan", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "scan", *fragments)


@pytest.mark.parametrize("cache_on", [True, False])
def test_cli_keeps_compiled_programs_between_runs(tmp_path, cache_on):
    """`cch` stores its compiled programs in $CCH_CACHE/xla (so a rerun loads them), unless
    CCH_NO_COMPILE_CACHE is set. A fresh process each time: JAX reads its cache settings once.

    The cache is the CLI's, whatever the command: `cch theory` (its jitted closed forms, ~40
    programs) costs a third of a small `cch verify`. Loading cached programs must not write to
    stderr: on AMD Zen 4 with jaxlib 0.9.2 each loaded program logged two false machine-mismatch
    errors from XLA's C++ logger, ~120 lines for this command, until `cch` set its log level.
    """
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "CCH_", "TF_CPP_"))}
    env.update(CCH_CACHE=str(tmp_path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    if not cache_on:
        env["CCH_NO_COMPILE_CACHE"] = "1"
    cmd = [sys.executable, "-m", "cch_jax.cli", "theory", "--example", "--json"]
    # With the cache on, the second run reads what the first one wrote; off, one run shows that
    # nothing is written (a second would start from the same empty folder).
    for _ in range(2 if cache_on else 1):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
        assert json.loads(out.stdout)["p1"] == 4
    entries = list((tmp_path / "xla").glob("*")) if (tmp_path / "xla").exists() else []
    assert bool(entries) == cache_on, entries
