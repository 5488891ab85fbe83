"""Hostile input and faults (issue 13): every bad input is one line and exit 2, never a traceback;
no silent wrong answer; no file of the user's is lost; exit codes 0/1/2/3."""

import json
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
from _cli import run_cli

import theory
from cch_jax.cli import EXIT_INTERNAL_ERROR, main
from cch_jax.data.arrays import check_arrays
from cch_jax.results import ScanStore, load_scan
from cch_jax.scan import run_scan
from cch_jax.train import ArrayData, GaussianSource, TrainConfig

GAUSSIAN = {
    "train": {"steps": 20, "eval_every": 10},
    "data": {"random": {"p1": 2, "p2": 3, "key": 0}, "n": 12},
    "grid": {"lam": [0.0, 1.0], "seeds": 3},
}


def assert_one_line(code, err, *fragments, command="scan"):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith(f"cch {command}: error:"), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def scan_cli(capsys, tmp_path, cfg, *extra):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return run_cli(capsys, "scan", "--config", path, "--out", tmp_path / "out", *extra)


def edited(section, **changes):
    cfg = json.loads(json.dumps(GAUSSIAN))
    cfg[section] = changes.pop("_replace", {**cfg.get(section, {}), **changes})
    return cfg


# --- configs: tracebacks and silently ignored keys -----------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "fragments"),
    [
        (edited("grid", seeds={"start": 3}), ["grid.seeds", "count required"]),
        (edited("data", random={"p1": 2}), ["data.random", "p2 required"]),
        (edited("data", random=5), ["data.random=5", "must be a table"]),
        ({**GAUSSIAN, "data": 5}, ["[data] must be a table"]),
        (edited("data", w_1="w1.npy"), ["unknown key", "w_1"]),
        (edited("data", random={"p1": 2, "p2": 3, "kye": 7}), ["unknown key", "kye"]),
        (edited("scan", keep_params="false"), ["scan.keep_params='false'", "true or false"]),
        (edited("scan", x64="no"), ["scan.x64='no'", "true or false"]),
        (edited("scan", chunk_size="big"), ["scan.chunk_size='big'", "integer"]),
        (edited("train", steps=2.9), ["train.steps=2.9", "integer"]),
        (edited("grid", seeds=3_000_000_000), ["grid.seeds", "2147483647"]),
        (edited("grid", lam="all"), ["grid.lam='all'", "number"]),
        (edited("train", optimizer="lbfgs"), ["train.optimizer='lbfgs'"]),
        ([1, 2], ["table of sections"]),
    ],
)
def test_bad_configs_are_one_line_naming_the_key(capsys, tmp_path, cfg, fragments):
    assert_one_line(*scan_cli(capsys, tmp_path, cfg)[::2], *fragments)


def test_p1_must_be_an_integer(capsys, tmp_path):
    np.save(tmp_path / "c.npy", np.eye(6))
    cfg = edited("data", _replace={"cov": "c.npy", "p1": 2.9, "n": 12})
    assert_one_line(*scan_cli(capsys, tmp_path, cfg)[::2], "data.p1=2.9", "integer")


def test_a_directory_or_a_missing_config(capsys, tmp_path):
    code, _, err = run_cli(capsys, "scan", "--config", tmp_path)
    assert_one_line(code, err, "is a directory")
    code, _, err = run_cli(capsys, "scan", "--config", tmp_path / "nope.toml")
    assert_one_line(code, err, "does not exist")


# --- sizes: refused before any work, in one line -------------------------------------------------


def test_sizes_beyond_the_memory_budget_are_refused_up_front(capsys, tmp_path):
    big_grid = edited("grid", seeds=2_000_000_000)
    assert_one_line(*scan_cli(capsys, tmp_path, big_grid)[::2], "2000000000", "memory budget")
    big_n = edited("data", n=100_000_000, sampler="rows")  # moments drawn directly would fit
    code, _, err = scan_cli(capsys, tmp_path, big_n, "--memory-budget", "1")
    assert_one_line(code, err, "data.n=100000000", "memory budget")
    assert not (tmp_path / "out").exists()  # refused before the folder was touched


def test_run_scan_shrinks_chunks_to_the_budget_and_refuses_what_cannot_fit():
    model = theory.random_model(jax.random.key(0), 2, 3)
    # Rows: the sampler whose size grows with n (moments drawn directly do not).
    config = TrainConfig(data=GaussianSource(model, 100, sampler="rows"), steps=10, eval_every=10)
    one_run = 3 * 100 * 6 * np.dtype(jax.numpy.result_type(float)).itemsize
    small = run_scan(config, [0.0], seeds=np.arange(5), chunk_size=4, memory_budget=2 * one_run)
    whole = run_scan(config, [0.0], seeds=np.arange(5), chunk_size=4)
    np.testing.assert_allclose(small.final_test, whole.final_test, rtol=1e-6)
    with pytest.raises(ValueError, match="data.n=100: one training set"):
        run_scan(config, [0.0], seeds=np.arange(5), memory_budget=one_run // 2)
    with pytest.raises(ValueError, match=r"1 × 1 × 1 × 10000000 = 10000000 runs needs"):
        run_scan(config, [0.0], seeds=np.arange(10**7), memory_budget=2**20)


# --- arrays data: validated before training ------------------------------------------------------


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 40)
    x = rng.normal(size=(40, 5)) + 2 * np.eye(3, 5)[y]
    t = 4 * np.eye(3)[y]
    return dict(x_train=x[:30], y_train=y[:30], teacher_train=t[:30], x_test=x[30:], y_test=y[30:])


def arrays_config(tmp_path, arrays, task="classification"):
    np.savez(tmp_path / "arrays.npz", **arrays)
    return {
        "train": {"task": task, "steps": 10, "eval_every": 10},
        "data": {"kind": "arrays", "path": "arrays.npz"},
        "grid": {"lam": [0.5], "temperature": [2.0], "learning_rate": [0.1], "seeds": 2},
    }


def spoil(name, index, value):
    a = blobs()
    arr = a[name].astype(np.float64)
    arr[index] = value
    a[name] = arr
    return a


@pytest.mark.parametrize(
    ("arrays", "fragments"),
    [
        (spoil("x_test", (0, 0), np.nan), ["x_test[0, 0]=nan", "finite"]),
        (spoil("x_train", (3, 1), np.inf), ["x_train[3, 1]=inf", "finite"]),
        (spoil("teacher_train", (2, 0), np.nan), ["teacher_train[2, 0]=nan"]),
        (spoil("y_train", 0, -1), ["y_train: label -1", "[0, 3)"]),
        (spoil("y_test", 4, 3), ["y_test: label 3", "[0, 3)"]),
        (spoil("y_train", 1, 1.5), ["y_train: label 1.5", "integer"]),
        ({**blobs(), "y_train": np.array(["a"] * 30)}, ["data.path", "<U1", "numbers"]),
    ],
)
def test_bad_arrays_are_refused_before_training(capsys, tmp_path, arrays, fragments):
    cfg = arrays_config(tmp_path, arrays)
    assert_one_line(*scan_cli(capsys, tmp_path, cfg)[::2], *fragments)


def test_check_arrays_api_errors_name_the_array():
    with pytest.raises(ValueError, match=r"y_test: label 7 must lie in \[0, C\) = \[0, 3\)"):
        check_arrays(ArrayData(**spoil("y_test", 0, 7)), "classification")
    with pytest.raises(TypeError, match="x_train: an array of dtype complex128"):
        check_arrays(ArrayData(**{**blobs(), "x_train": np.ones((30, 5), complex)}), "regression")
    with pytest.raises(ValueError, match="x_test: an array of shape"):
        check_arrays(ArrayData(**{**blobs(), "x_test": np.ones((0, 5))}), "regression")
    check_arrays(ArrayData(**blobs()), "classification")  # valid data pass


# --- exploding but finite losses are flagged ----------------------------------------------------


def test_an_exploding_but_finite_run_is_flagged_as_diverged():
    model = theory.random_model(jax.random.key(0), 2, 3)
    config = TrainConfig(data=GaussianSource(model, 40), steps=40, eval_every=10, optimizer="sgd")
    run = lambda lr: run_scan(config, [0.0], seeds=np.arange(4), learning_rates=[lr])
    calm, wild = run(0.01), run(0.3)
    assert not calm.diverged.any() and np.all(calm.final_test < 10)
    test = np.asarray(wild.final_test)
    exploded = np.isfinite(test) & (test > 1e10)  # finite, and far past any sane risk
    assert exploded.any()  # the case in point exists in this grid …
    assert np.all(wild.diverged[exploded])  # … and is flagged, so never averaged in
    assert "DIVERGED RUNS EXCLUDED" in wild.summary()


# --- misleading messages -----------------------------------------------------------------------


def test_input_file_messages(capsys, tmp_path):
    (tmp_path / "text.npy").write_text("1,2,3\n")
    np.save(tmp_path / "labels.npy", np.array(["cat", "dog"]))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    base = ["check", "--student", tmp_path / "text.npy", "--labels", tmp_path / "text.npy"]
    code, _, err = run_cli(capsys, *base, "--teacher", tmp_path)
    assert_one_line(code, err, "--teacher", "is a directory", command="check")
    code, _, err = run_cli(capsys, *base, "--teacher", tmp_path / "text.npy")
    assert_one_line(code, err, "--teacher", "not a .npy file", command="check")
    assert "pickle" not in err
    code, _, err = run_cli(capsys, "theory", "--example", "--w1", tmp_path / "objects.npy")
    assert_one_line(code, err, "--w1", "Python objects", command="theory")
    assert "pickle" not in err.lower()
    h = tmp_path / "h.npy"
    np.save(h, np.zeros((2, 2)))
    code, _, err = run_cli(
        capsys, "check", "--teacher", h, "--student", h, "--labels", tmp_path / "labels.npy"
    )
    assert_one_line(code, err, "--labels", "<U3", "numbers", command="check")


def finished_scan(capsys, tmp_path):
    code, _, _ = scan_cli(capsys, tmp_path, GAUSSIAN)
    assert code == 0
    return tmp_path / "out"


def test_corrupt_results_and_manifest_are_named(capsys, tmp_path):
    out = finished_scan(capsys, tmp_path)
    (out / "results.json").write_text("{ not json")
    code, _, err = scan_cli(capsys, tmp_path, GAUSSIAN)
    assert_one_line(code, err, "results.json", "not readable JSON")
    (out / "scan.json").write_text("")
    code, _, err = scan_cli(capsys, tmp_path, GAUSSIAN)
    assert_one_line(code, err, "scan.json", "not readable JSON")
    (out / "results.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"results.npz is not a readable \.npz"):
        load_scan(out / "results.npz")


def test_plot_on_a_scan_folder_says_what_it_is(capsys, tmp_path):
    out = finished_scan(capsys, tmp_path)
    code, _, err = run_cli(capsys, "plot", out)
    assert_one_line(code, err, "results.json holds no experiment's results", command="plot")


# --- the --out folder: the user's files survive, one scan per folder -----------------------------


def test_a_users_folder_is_refused_and_its_files_survive(capsys, tmp_path):
    out = tmp_path / "out"
    (out / "chunks").mkdir(parents=True)
    mine = {out / "results.json": "my notes", out / "chunks" / "chunk_00000.npz": "my data"}
    for path, text in mine.items():
        path.write_text(text)
    code, _, err = scan_cli(capsys, tmp_path, GAUSSIAN)
    assert_one_line(code, err, "is not empty", "holds no scan")
    assert {p: p.read_text() for p in mine} == mine
    assert sorted(p.name for p in out.rglob("*")) == ["chunk_00000.npz", "chunks", "results.json"]


def test_a_scan_deletes_only_the_files_it_wrote(capsys, tmp_path):
    out = finished_scan(capsys, tmp_path)  # its own folder: scan.json is ours
    (out / "chunks").mkdir()
    keep = out / "chunks" / "notes.txt"
    keep.write_text("mine")
    code, _, _ = scan_cli(capsys, tmp_path, edited("grid", seeds=3))  # the same scan: loaded
    assert code == 0 and keep.read_text() == "mine"
    model = theory.random_model(jax.random.key(0), 2, 3)
    config = TrainConfig(data=GaussianSource(model, 12), steps=20, eval_every=10)
    other = tmp_path / "other"
    other.mkdir()
    run_scan(config, [0.0], seeds=np.arange(3), chunk_size=1, out=other)  # 3 chunks, merged
    assert sorted(p.name for p in other.iterdir()) == ["results.json", "results.npz", "scan.json"]


def test_a_different_scan_into_a_used_folder_is_refused(capsys, tmp_path):
    finished_scan(capsys, tmp_path)
    code, _, err = scan_cli(capsys, tmp_path, edited("grid", seeds=4))
    assert_one_line(code, err, "holds a different scan")
    assert load_scan(tmp_path / "out" / "results.npz")[1]["seeds"] == [0, 1, 2]


def test_two_scans_started_at_once_get_the_folder_exclusively(tmp_path):
    barrier = threading.Barrier(8)
    outcome = {}

    def claim(k):
        barrier.wait()
        try:
            ScanStore(tmp_path / "out", {"fingerprint": f"scan{k % 2}"})
            outcome[k] = "ok"
        except ValueError as err:
            outcome[k] = str(err)

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifest = json.loads((tmp_path / "out" / "scan.json").read_text())
    winner = int(manifest["fingerprint"][-1])
    for k, result in outcome.items():  # the same scan shares the folder; the other is refused
        assert (result == "ok") == (k % 2 == winner), (k, result)
    assert all("holds a different scan" in r for r in outcome.values() if r != "ok")


# --- truncated or empty chunk files on resume ----------------------------------------------------


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04\x14\x00truncated"])
def test_an_unreadable_chunk_is_recomputed_on_resume(tmp_path, damage):
    model = theory.random_model(jax.random.key(0), 2, 3)
    config = TrainConfig(data=GaussianSource(model, 12), steps=20, eval_every=10)
    scan = lambda **kw: run_scan(config, [0.0, 1.0], seeds=np.arange(3), chunk_size=2, **kw)

    def stop_after_chunk_1(i, n):
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(out=tmp_path, on_chunk=stop_after_chunk_1)
    (tmp_path / "chunks" / "chunk_00001.npz").write_bytes(damage)
    computed = []
    with pytest.warns(UserWarning, match="chunk_00001.npz is not a readable .npz"):
        resumed = scan(out=tmp_path, on_chunk=lambda i, n: computed.append(i))
    assert computed == [1, 2]  # chunk 0 loaded; the damaged chunk 1 and the missing 2 computed
    np.testing.assert_array_equal(resumed.final_test, scan().final_test)


# --- exit codes ----------------------------------------------------------------------------------


def test_an_internal_error_exits_3_in_one_line(capsys, monkeypatch):
    import cch_jax.cli.theory as theory_cli

    def broken(args):
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(theory_cli, "run", broken)
    code, _, err = run_cli(capsys, "theory", "--example")
    assert code == EXIT_INTERNAL_ERROR == 3
    assert err.strip() == (
        "cch theory: internal error: RuntimeError: a bug (rerun with CCH_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("CCH_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["theory", "--example"])


def test_readme_documents_the_exit_codes():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in ("0", "1", "2", "3"):
        assert f"| {code} |" in readme


# --- outputs go to the current directory, never into the package ---------------------------------


def test_experiment_outputs_go_under_the_current_directory(tmp_path, monkeypatch):
    import experiments
    from experiments._common import figures_dir, results_dir

    monkeypatch.chdir(tmp_path)
    package = Path(experiments.__file__).resolve().parent.parent
    for path in (results_dir("x"), results_dir("x", quick=True), figures_dir(quick=True)):
        assert path.is_relative_to(tmp_path) and not path.is_relative_to(package / "experiments")
    assert results_dir("x", quick=True) == tmp_path / "results" / "quick" / "x"
    assert results_dir("x", out="elsewhere") == Path("elsewhere") / "x"


def test_a_reproduction_with_default_folders_writes_only_under_the_current_directory(
    tmp_path, monkeypatch
):
    import experiments

    package = Path(experiments.__file__).resolve().parent.parent
    roots = [package / d for d in ("experiments", "cch_jax", "theory")]
    before = {p for r in roots for p in r.rglob("*") if "__pycache__" not in p.parts}
    monkeypatch.chdir(tmp_path)
    experiments.load("cch_audit").main(quick=True, num_models=50, p1=2, p2=2, n=12)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "results/quick/cch_audit/results.json" in written
    assert any(w.startswith("figures/quick/") and w.endswith(".png") for w in written)
    after = {p for r in roots for p in r.rglob("*") if "__pycache__" not in p.parts}
    assert after == before  # nothing written beside the package's own files
