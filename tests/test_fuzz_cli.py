"""Fuzzing `cch scan` with hostile config files and input arrays (issue 13): every outcome is
exit 0 with a correct result, or exit 2 with one line on stderr; never a traceback, never exit 3."""

import json
import tempfile
from pathlib import Path

import jax
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cch_jax.cli import main
from cch_jax.results import load_scan

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

BASE = {
    "train": {"steps": 20, "eval_every": 10},
    "data": {"random": {"p1": 2, "p2": 3, "key": 0}, "n": 12},
    "grid": {"lam": [0.0, 1.0], "seeds": 3},
    "scan": {"chunk_size": 4},
}
KEYS = {  # the keys a config may hold, and a few it may not
    "train": [
        "task",
        "model",
        "steps",
        "eval_every",
        "optimizer",
        "schedule",
        "batch_size",
        "fast_path",
        "model_kwargs",
        "stepz",
    ],
    "data": ["kind", "random", "n", "p1", "cov", "w1", "path", "w_1"],
    "grid": ["lam", "temperature", "learning_rate", "seeds", "seed"],
    "scan": ["chunk_size", "keep_params", "vmap_size", "out", "big"],
}
SCALARS = st.one_of(
    st.integers(-3, 30),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.booleans(),
    st.sampled_from(
        [
            "",
            "big",
            "false",
            "linear",
            "mlp",
            "cnn",
            "sgd",
            "cosine",
            "arrays",
            "gaussian",
            "classification",
            "regression",
            "nope.npy",
        ]
    ),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["p1", "p2", "key", "kye", "start", "count", "hidden"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=5,
)
EDITS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(sorted(KEYS)), st.none(), VALUES),  # a whole section
        st.sampled_from(sorted(KEYS)).flatmap(
            lambda s: st.tuples(st.just(s), st.sampled_from(KEYS[s]), VALUES | st.just("DELETE"))
        ),
    ),
    min_size=1,
    max_size=3,
)


def edit(config: dict, edits) -> dict:
    cfg = json.loads(json.dumps(config))
    for section, key, value in edits:
        if key is None:
            cfg[section] = value
        elif isinstance(cfg.get(section), dict):
            if value == "DELETE":
                cfg[section].pop(key, None)
            else:
                cfg[section][key] = value
    return cfg


def run_scan_cli(capsys, folder: Path, cfg) -> tuple[int, str, str]:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg))  # NaN/Infinity as JSON's common extension
    x64 = jax.config.jax_enable_x64
    try:
        code = main(["scan", "--config", str(path), "--out", str(folder / "out"), "--json"])
    finally:
        jax.config.update("jax_enable_x64", x64)  # a config's x64 = true must not leak
    out, err = capsys.readouterr()
    return code, out, err


def assert_exit_0_or_one_line(code, err):
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cch scan: error: "), err
        assert "Traceback" not in err


@SETTINGS
@given(edits=EDITS)
def test_fuzzed_configs_exit_0_correctly_or_2_in_one_line(capsys, edits):
    cfg = edit(BASE, edits)
    with tempfile.TemporaryDirectory() as d:
        code, out, err = run_scan_cli(capsys, Path(d), cfg)
        assert_exit_0_or_one_line(code, err)
        event(f"exit {code}")
        if code:
            return
        result, meta = load_scan(Path(d) / "out" / "results.npz")
    # A correct result: the grid asked for, and for linear students on the Gaussian model the
    # exact risk of every run that did not diverge is at least the population minimum σ².
    grid = cfg["grid"]
    lengths = [
        len(v) if isinstance(v, list) else 1
        for v in (grid["lam"], grid.get("temperature", [1]), grid.get("learning_rate", [1]))
    ]
    seeds = grid["seeds"]
    n_seeds = (
        len(seeds)
        if isinstance(seeds, list)
        else (seeds["count"] if isinstance(seeds, dict) else seeds)
    )
    assert result.diverged.shape == (*lengths, n_seeds)
    assert json.loads(out)["shape"]["seed"] == n_seeds
    data = meta["config"]["data"]
    if meta["config"]["model"] == "linear" and data["kind"] == "gaussian":
        cov, p1 = np.asarray(data["cov"]), data["p1"]
        s22, s2y = cov[p1:-1, p1:-1], cov[p1:-1, -1]
        sigma2 = cov[-1, -1] - s2y @ np.linalg.solve(s22, s2y)  # Var(y | x2): the least risk
        final = np.asarray(result.final_test)[~np.asarray(result.diverged)]
        assert np.all(np.isfinite(final)) and np.all(final >= sigma2 * (1 - 1e-3))


# --- input arrays ------------------------------------------------------------------------------

FLOATS = st.floats(-5, 5, width=32) | st.sampled_from([np.nan, np.inf, -np.inf])


@st.composite
def arrays_data(draw):
    """Five arrays, mostly valid, sometimes with non-finite values, bad labels or shapes.

    Sizes come from a few values, the edges among them (one row, one feature): every new shape
    compiles a new program (~1.5 s), a repeated one is served from the cache (~0.3 s)."""
    pick = lambda values: draw(st.sampled_from(values))
    n, m, d, c = pick([1, 2, 8]), pick([1, 5]), pick([1, 3]), 3
    spoil = draw(st.sampled_from(["none", "values", "labels", "shape", "strings"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = {
        "x_train": rng.normal(size=(n, d)),
        "y_train": rng.integers(0, c, n),
        "teacher_train": rng.normal(size=(n, c)),
        "x_test": rng.normal(size=(m, d)),
        "y_test": rng.integers(0, c, m),
    }
    name = draw(st.sampled_from(sorted(a)))
    if spoil == "values" and a[name].dtype.kind == "f":
        a[name].flat[draw(st.integers(0, a[name].size - 1))] = draw(FLOATS)
    elif spoil == "labels" and name in ("y_train", "y_test"):
        a[name][draw(st.integers(0, len(a[name]) - 1))] = draw(st.integers(-2, c + 1))
    elif spoil == "shape":
        a[name] = a[name][: max(0, len(a[name]) - draw(st.integers(1, 2)))]
    elif spoil == "strings" and name in ("y_train", "y_test"):
        a[name] = a[name].astype(str)
    return a


def valid(a: dict) -> bool:
    n, m, c = len(a["x_train"]), len(a["x_test"]), a["teacher_train"].shape[-1]
    return (
        all(a[k].dtype.kind in "iuf" for k in a)
        and n > 0
        and m > 0
        and len(a["y_train"]) == len(a["teacher_train"]) == n
        and len(a["y_test"]) == m
        and all(np.all(np.isfinite(a[k])) for k in a)
        and all(np.all((a[k] >= 0) & (a[k] < c)) for k in ("y_train", "y_test"))
    )


@SETTINGS
@given(arrays=arrays_data())
def test_fuzzed_arrays_exit_0_correctly_or_2_in_one_line(capsys, arrays):
    cfg = {
        "train": {"task": "classification", "steps": 10, "eval_every": 10},
        "data": {"kind": "arrays", "path": "arrays.npz"},
        "grid": {"lam": [0.5], "temperature": [2.0], "learning_rate": [0.1], "seeds": 2},
    }
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "arrays.npz", **arrays)
        code, _, err = run_scan_cli(capsys, Path(d), cfg)
        assert_exit_0_or_one_line(code, err)
        event(f"exit {code}")
        assert (code == 0) == valid(arrays), (code, err)  # exit 0 exactly for valid data
        if code == 0:
            result, _ = load_scan(Path(d) / "out" / "results.npz")
            accuracy = np.asarray(result.final_test)
            assert not result.diverged.any() and np.all((accuracy >= 0) & (accuracy <= 1))
