"""run_scan: one trace per scan, chunking and padding, resumption after a kill, files, process
split, multi-device sharding (in a subprocess with 4 host devices), validation, progress."""

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import theory
from cch_jax.progress import Progress, format_seconds
from cch_jax.results import atomic_write_bytes, load_scan
from cch_jax.scan import clear_cache, run_scan
from cch_jax.train import GaussianSource, TrainConfig

GRID = dict(lams=[0.0, 1.0], temperatures=[1.0, 2.0], seeds=np.arange(5), learning_rates=[0.05])
N_RUNS = 20  # 2 × 2 × 1 × 5: with chunk_size=7, chunks of 7, 7, 6 (the last one padded)


@pytest.fixture(scope="module")
def config():
    model = theory.random_model(jax.random.key(5), 2, 3)
    return TrainConfig(data=GaussianSource(model, 12), steps=40, eval_every=20)


def scan(config, **kwargs):
    return run_scan(
        config,
        GRID["lams"],
        GRID["temperatures"],
        GRID["seeds"],
        learning_rates=GRID["learning_rates"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def chunked(config, traces):
    clear_cache()  # no compiled function from an earlier test
    before = traces["train"]
    result = scan(config, chunk_size=7)
    return result, traces["train"] - before


def assert_same(a, b, exact=True):
    check = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    for x, y in zip(
        jax.tree.leaves((a.params, a.metrics, a.diverged)),
        jax.tree.leaves((b.params, b.metrics, b.diverged)),
        strict=True,
    ):
        check(np.asarray(x), np.asarray(y))
    assert a.coords == b.coords and a.axes == b.axes


def test_one_trace_for_a_whole_chunked_scan(chunked):
    _, traces = chunked
    assert traces == 1  # three chunks, one trace (so one compile): the swept values are traced


def test_named_axes_coords_and_sel(chunked):
    result, _ = chunked
    assert result.axes == ("lam", "temperature", "learning_rate", "seed", "step")
    assert result.metrics.test.shape == (2, 2, 1, 5, 2)
    assert result.diverged.shape == (2, 2, 1, 5)
    assert result.params["params"]["head"]["kernel"].shape == (2, 2, 1, 5, 3, 1)
    assert result.coord("step").tolist() == [20, 40]
    one = result.sel(lam=1.0, seed=3, step=40)
    assert one.axes == ("temperature", "learning_rate")
    np.testing.assert_array_equal(one.metrics.test, result.metrics.test[1, :, :, 3, 1])
    np.testing.assert_array_equal(
        one.params["params"]["head"]["kernel"],
        result.params["params"]["head"]["kernel"][1, :, :, 3],
    )
    with pytest.raises(ValueError, match=r"lam=0.5 is not among the scanned values \[0.0, 1.0\]"):
        result.sel(lam=0.5)


def test_regression_runs_ignore_temperature_and_seeds_differ(chunked):
    result, _ = chunked
    test = result.metrics.test
    np.testing.assert_array_equal(test[:, 0], test[:, 1])  # T only enters classification KD
    assert len(np.unique(test[0, 0, 0, :, -1])) == 5  # each seed its own training set


def test_chunking_and_padding_do_not_change_the_numbers(config, chunked):
    assert_same(scan(config, chunk_size=1000), chunked[0], exact=False)


def test_a_killed_scan_resumes_and_ends_with_the_same_numbers(config, chunked, tmp_path, traces):
    out = tmp_path / "scan"

    def kill_after_chunk_1(i, n):
        if i == 1:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        scan(config, chunk_size=7, out=out, on_chunk=kill_after_chunk_1)
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [
        "chunk_00000.npz",
        "chunk_00001.npz",
    ]
    assert not (out / "results.npz").exists()

    computed = []
    resumed = scan(config, chunk_size=7, out=out, on_chunk=lambda i, n: computed.append(i))
    assert computed == [2]  # only the chunk that was missing
    assert_same(resumed, chunked[0])
    assert not (out / "chunks").exists()

    before = traces["train"]
    again = scan(config, chunk_size=7, out=out, on_chunk=lambda i, n: computed.append(i))
    assert computed == [2] and traces["train"] == before  # loaded, not recomputed
    assert_same(again, chunked[0])

    with pytest.raises(ValueError, match="holds a different scan"):
        run_scan(config, [0.0, 3.0], [1.0], np.arange(5), out=out)


def test_results_files_and_sidecar(config, chunked, tmp_path):
    scan(config, chunk_size=7, out=tmp_path)
    loaded, meta = load_scan(tmp_path / "results.npz")
    assert_same(loaded, chunked[0])
    sidecar = json.loads((tmp_path / "results.json").read_text())
    assert sidecar == meta
    assert set(meta["versions"]) >= {"jax", "flax", "optax", "numpy"}
    assert meta["device"]["platform"] == jax.devices()[0].platform
    assert meta["seeds"] == list(range(5))
    assert meta["config"]["data"]["n"] == 12 and meta["config"]["steps"] == 40
    assert meta["axes"] == list(chunked[0].axes) and meta["n_diverged"] == 0
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "x.npz"

    def fail_midway(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, fail_midway)
    assert list(tmp_path.iterdir()) == []
    atomic_write_bytes(target, lambda f: f.write(b"ok"))
    assert target.read_bytes() == b"ok"


def test_processes_split_the_chunks(config, chunked, tmp_path):
    first = scan(config, chunk_size=7, out=tmp_path, process_index=0, process_count=2)
    assert first is None  # chunks 0 and 2 done; chunk 1 belongs to process 1
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "chunk_00000.npz",
        "chunk_00002.npz",
    ]
    second = scan(config, chunk_size=7, out=tmp_path, process_index=1, process_count=2)
    assert_same(second, chunked[0])


MULTI_DEVICE = textwrap.dedent(
    """
    import json, jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    import theory
    from cch_jax.scan import clear_cache, run_scan
    from cch_jax.train import GaussianSource, TrainConfig
    model = theory.random_model(jax.random.key(5), 2, 3)
    config = TrainConfig(data=GaussianSource(model, 12), steps=40, eval_every=20)
    grid = ([0.0, 1.0], [1.0, 2.0], np.arange(5))
    many = run_scan(config, *grid, learning_rates=[0.05], chunk_size=7, out=OUT)
    one = run_scan(config, *grid, learning_rates=[0.05], chunk_size=7, devices=jax.devices()[:1])
    # the mechanism run_scan uses: the run axis really is split over the 4 devices
    from cch_jax.scan import make_chunk_fn, shardings
    runs, _ = shardings(jax.devices())
    put = lambda x: jax.device_put(np.asarray(x), runs)
    res = make_chunk_fn(config)(None, put(np.arange(8, dtype=np.int32)), *(put(np.ones(8)),) * 3)
    meta = json.load(open(OUT + "/results.json"))
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree.leaves((many.params, many.metrics)), jax.tree.leaves((one.params, one.metrics))))
    print(json.dumps({"devices": jax.local_device_count(), "diff": diff,
                      "run_axis_devices": meta["run_axis_devices"],
                      "output_devices": len(res.metrics.test.sharding.device_set),
                      "shard_shape": res.metrics.test.sharding.shard_shape(res.metrics.test.shape),
                      "test": many.metrics.test.tolist()}))
    """
)


def test_sharded_over_4_devices_equals_one_device(chunked, tmp_path):
    # the suite's own XLA flags kept (conftest.py: the optimisation level changes rounding)
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(tmp_path)!r}\n" + MULTI_DEVICE],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["devices"] == report["run_axis_devices"] == report["output_devices"] == 4
    assert report["shard_shape"] == [2, 2]  # 8 runs × 2 recorded steps: 2 runs per device
    assert report["diff"] <= 1e-12
    np.testing.assert_allclose(report["test"], chunked[0].metrics.test, rtol=1e-12)


@pytest.mark.parametrize(
    ("grid", "err", "match"),
    [
        (dict(lams=[0.0, -1.0]), ValueError, r"lam=-1.0 must be >= 0"),
        (dict(lams=[np.nan]), ValueError, r"lam=nan must be >= 0 and finite"),
        (dict(temperatures=[0.0]), ValueError, r"temperature=0.0 must be > 0"),
        (dict(seeds=[]), ValueError, r"seeds=\[\] must be a non-empty"),
        (dict(seeds=[1, 1]), ValueError, r"seeds=\[1, 1\] must be distinct"),
        (dict(seeds=[0.5]), TypeError, r"seeds=\[0.5\] must be integers"),
        (dict(seeds=[-3]), ValueError, r"seeds=-3 must be in \[0, "),
        (dict(learning_rates=[-0.1]), ValueError, r"learning_rate=-0.1 must be > 0"),
    ],
)
def test_bad_grids_are_rejected_before_any_work(config, grid, err, match, traces):
    g = {**GRID, **grid}
    before = traces["train"]
    with pytest.raises(err, match=match):
        run_scan(
            config, g["lams"], g["temperatures"], g["seeds"], learning_rates=g["learning_rates"]
        )
    assert traces["train"] == before


def test_classification_lam_must_lie_in_unit_interval():
    cfg = TrainConfig(task="classification", data=None)
    with pytest.raises(ValueError, match=r"lam=1.5 must be in \[0, 1\]"):
        run_scan(cfg, [1.5], [1.0], [0])


def test_progress_bar_reports_count_and_eta():
    buf = io.StringIO()
    bar = Progress(3, desc="scan", file=buf)
    bar.update(skipped=True)
    bar.update()
    bar.update()
    bar.close()
    text = buf.getvalue()
    assert "3/3 chunks" in text and "ETA 0:00" in text and text.endswith("\n")
    assert format_seconds(3725) == "1:02:05" and format_seconds(65) == "1:05"
    assert format_seconds(float("nan")) == "?"
    silent = io.StringIO()
    Progress(2, file=silent, enabled=False).update()
    assert silent.getvalue() == ""
