"""`cch mi` and `cch check`: JSON shape, verdicts, readable output, one-line errors with exit 2."""

import json

import numpy as np
import pytest

from cch_jax.cli import main
from cch_jax.mi.reference import ksg_reference


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    x = rng.standard_normal((n, 2))
    y = 0.7 * x + 0.7 * rng.standard_normal((n, 2))
    lab = rng.integers(0, 3, n)
    h2 = rng.standard_normal((n, 2)) + lab[:, None]
    h1 = h2 + 0.3 * rng.standard_normal((n, 2))  # teacher ≈ student: large I(H1; H2)
    far = rng.standard_normal((n, 2))  # teacher independent of the student
    paths = {}
    for name, a in dict(x=x, y=y, lab=lab, h1=h1, h2=h2, far=far).items():
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], a)
    np.savez(tmp_path / "xy.npz", a=x, b=y)
    paths["npz"] = str(tmp_path / "xy.npz")
    np.savetxt(tmp_path / "lab.csv", lab, fmt="%d", delimiter=",")
    paths["labcsv"] = str(tmp_path / "lab.csv")
    bad = x.copy()
    bad[5, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    paths["nan"] = str(tmp_path / "nan.npy")
    np.save(tmp_path / "short.npy", y[:-1])
    paths["short"] = str(tmp_path / "short.npy")
    np.save(tmp_path / "const.npy", np.c_[x, np.ones(n)])
    paths["const"] = str(tmp_path / "const.npy")
    np.save(tmp_path / "one.npy", np.zeros(n, int))
    paths["one"] = str(tmp_path / "one.npy")
    np.save(tmp_path / "tiny.npy", x[:12])
    paths["tiny"] = str(tmp_path / "tiny.npy")
    paths["_x"], paths["_y"] = x, y
    return paths


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_mi_json(files, capsys):
    argv = ["mi", files["x"], files["y"], "--estimator", "ksg", "--k", "4", "--json"]
    out = _json(capsys, argv + ["--calibrate", "0", "--no-normal-scores"])
    assert set(out) == {"estimator", "mi", "stderr", "ci", "n", "normal_scores", "calibrated"}
    assert out["n"] == 600 and out["estimator"] == "ksg"
    assert out["calibrated"] is False and out["normal_scores"] is False
    # float32 CLI vs float64 reference: same neighbours, rounding-level difference
    assert out["mi"] == pytest.approx(ksg_reference(files["_x"], files["_y"], k=4), abs=1e-4)
    assert out["ci"][0] < out["mi"] < out["ci"][1]


def test_mi_normal_scores_make_ksg_invariant_to_monotone_maps(files, tmp_path, capsys):
    # Same ranks, hence the same normal scores (no ties in continuous data): the same estimate.
    np.save(tmp_path / "xw.npy", files["_x"] ** 3)
    np.save(tmp_path / "yw.npy", np.exp(files["_y"]))
    base = ["--estimator", "ksg", "--json", "--calibrate", "0"]
    a = _json(capsys, ["mi", files["x"], files["y"], *base])
    b = _json(capsys, ["mi", str(tmp_path / "xw.npy"), str(tmp_path / "yw.npy"), *base])
    assert a["normal_scores"] is True and a["mi"] == b["mi"]
    c = _json(
        capsys,
        ["mi", str(tmp_path / "xw.npy"), str(tmp_path / "yw.npy"), *base, "--no-normal-scores"],
    )
    assert abs(c["mi"] - a["mi"]) > 0.05  # standardising alone does not undo the warp


def test_mi_calibrated_interval_accounts_for_ksg_bias(tmp_path, capsys):
    # 5 + 5 dims, ρ = 0.6 per canonical pair: I = −(5/2) log(1 − 0.36) = 1.116 nats. KSG at
    # n = 1000 is biased down by ~0.25 nats (many of its sampling SEs): its sampling interval
    # misses the truth; the bias-aware one is centred on the corrected value and covers it.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 5))
    y = 0.6 * x + 0.8 * rng.standard_normal((1000, 5))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    true = -2.5 * np.log(1 - 0.36)
    out = _json(capsys, ["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--json"])
    assert out["calibrated"] and out["calibration"]["surrogates"] == 16
    assert out["uncorrected"]["ci"][1] < true  # the bias the sampling interval ignores
    assert out["ci"][0] < true < out["ci"][1]
    assert out["mi"] == pytest.approx(out["uncorrected"]["mi"] - out["bias"], abs=1e-12)


def test_mi_npz_key_and_readable(files, capsys):
    assert main(["mi", files["npz"], files["npz"], "--key", "a", "--y-key", "b"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("I(X; Y) = ") and "95% CI" in text and "nats" in text


def test_mi_mixed_with_csv_labels_and_null(files, capsys):
    out = _json(
        capsys,
        ["mi", files["h2"], files["labcsv"], "--estimator", "mixed", "--null", "3", "--json"],
    )
    assert out["estimator"] == "mixed" and out["mi"] > 0.3
    assert out["null"]["num"] == 3


def _check_argv(files, teacher, labels):
    return [
        "check",
        "--teacher",
        files[teacher],
        "--student",
        files["h2"],
        "--labels",
        files[labels],
    ]


def test_check_holds(files, capsys):
    out = _json(capsys, _check_argv(files, "h1", "lab") + ["--json"])
    assert set(out) >= {"mi_teacher_student", "mi_student_label", "gap", "gap_ci", "verdict"}
    assert out["validated"] is True and out["labels"] is True
    assert [f["family"] for f in out["families"]] == ["gc", "knn"]
    for f in out["families"]:  # bias correction is linear: corrected gap = corrected difference
        g = f["gap"]["value"]
        i12, i2y = f["mi_teacher_student"]["value"], f["mi_student_label"]["value"]
        assert g == pytest.approx(i12 - i2y, abs=1e-12)
        assert f["gap"]["ci"][0] > 0 and f["side"] == 1
    assert out["gap_ci"][0] > 0 and out["verdict"] == "cch-holds"


def test_check_fails_and_readable(files, capsys):
    argv = _check_argv(files, "far", "labcsv")
    out = _json(capsys, argv + ["--json"])
    assert out["verdict"] == "cch-fails" and out["gap_ci"][1] < 0
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "verdict: cch-fails" in text and "n = 600, dims 2 + 2: validated (inside" in text
    assert "does not mean KD will hurt" in text.replace("\n", " ")


def test_check_outside_validated_range_is_never_confident(files, capsys, tmp_path):
    # 2 + 2 dims at n = 600 is validated; the same data with 40 extra noise columns per side
    # is not: the verdict must be inconclusive, and say why.
    rng = np.random.default_rng(1)
    for name in ("h1", "h2"):
        a = np.load(files[name])
        np.save(tmp_path / f"{name}_wide.npy", np.c_[a, rng.standard_normal((a.shape[0], 40))])
    argv = [
        "check",
        "--teacher",
        str(tmp_path / "h1_wide.npy"),
        "--student",
        str(tmp_path / "h2_wide.npy"),
        "--labels",
        files["lab"],
        "--families",
        "gc",
    ]
    out = _json(capsys, argv + ["--json"])
    assert out["validated"] is False and "validated" in out["validated_reason"]
    assert out["verdict"] == "inconclusive"
    assert out["families"][0]["side"] == 1  # the estimate itself still sees the gap
    assert main(argv) == 0
    assert "NOT validated" in capsys.readouterr().out


def test_check_reports_ties(files, capsys, tmp_path):
    h2 = np.load(files["h2"]).round(1)  # coarse values: many ties in every column
    np.save(tmp_path / "h2r.npy", h2)
    argv = [
        "check",
        "--teacher",
        files["h1"],
        "--student",
        str(tmp_path / "h2r.npy"),
        "--labels",
        files["lab"],
        "--families",
        "gc",
    ]
    out = _json(capsys, argv + ["--json"])
    dup = (
        h2.shape[0]
        - np.unique(np.c_[np.load(files["h1"]), h2, np.load(files["lab"])], axis=0).shape[0]
    )
    assert out["ties"]["tied_rows"] == h2.shape[0] and out["ties"]["duplicate_rows"] == dup
    assert main(argv) == 0
    assert f"{h2.shape[0]} rows share a value" in capsys.readouterr().out


def test_verdict_rule():
    from cch_jax.cli.check import verdict_of

    assert verdict_of((0.1, 0.3)) == "cch-holds"
    assert verdict_of((-0.3, -0.1)) == "cch-fails"
    assert verdict_of((-0.1, 0.2)) == "inconclusive"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["mi", "{x}", "{short}"], "600 rows but Y has 599"),
        (["mi", "{nan}", "{y}"], "NaN or inf"),
        (["mi", "{const}", "{y}"], "column 2 is constant"),
        (["mi", "{tiny}", "{tiny}"], "fewer than 40"),
        (["mi", "{x}", "{missing}"], "does not exist"),
        (["check", "--teacher", "{h1}", "--student", "{h2}", "--labels", "{one}"], "single class"),
        (["check", "--teacher", "{h1}", "--student", "{short}", "--labels", "{lab}"], "rows"),
        (
            ["check", "--teacher", "{nan}", "--student", "{h2}", "--labels", "{lab}"],
            "--teacher: 1 row",
        ),
        (
            [
                "check",
                "--teacher",
                "{h1}",
                "--student",
                "{h2}",
                "--labels",
                "{lab}",
                "--surrogates",
                "3",
            ],
            "surrogates=3 must be >= 8",
        ),
        (
            [
                "check",
                "--teacher",
                "{h1}",
                "--student",
                "{h2}",
                "--labels",
                "{lab}",
                "--knn-budget",
                "-1",
            ],
            "knn_budget_s=-1.0",
        ),
    ],
)
def test_bad_input_one_line_exit_2(files, capsys, argv, needle):
    files = {**files, "missing": files["x"] + ".nope"}
    argv = [a.format(**{k: v for k, v in files.items() if not k.startswith("_")}) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert needle in err
