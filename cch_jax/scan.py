"""Scans: many training runs (λ × temperature × learning_rate × seed) under one compiled program.

    result = run_scan(config, lams, temperatures, seeds, learning_rates=[1e-2], out="results/x")

How it runs
  * The grid is flattened into R runs (axis order lam, temperature, learning_rate, seed; seed
    fastest). Run r trains with key = jax.random.key(seed_r), so a seed names a training set
    (Gaussian data) and an initialisation, shared across λ, T and lr (common random numbers).
  * Runs are processed in chunks of `chunk_size` by ONE jitted `vmap(train)`; the last chunk is
    padded (with copies of its last run, then dropped) so the shape, hence the program, never
    changes: one trace and one compile per scan, whatever the grid size.
  * With several local devices the chunk's run axis is sharded over a 1-d Mesh ("runs") with
    NamedSharding (padded to a multiple of the device count); fixed data arrays are replicated.
  * With `out=DIR`: a manifest DIR/scan.json, each finished chunk saved atomically as
    DIR/chunks/chunk_NNNNN.npz, and at the end DIR/results.npz + DIR/results.json (config,
    versions, device, seeds). A rerun with the same DIR and the same scan resumes after the last
    saved chunk and gives the same numbers; a finished DIR is just loaded.
  * `process_index`/`process_count` split the chunks between processes (multi-host: see
    docs/engine.md): process p computes chunks p, p + P, …; whoever finds all chunks merges.

Swept values are traced, never static: λ, T, lr and the seed are arrays fed to the program.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cch_jax.progress import Progress
from cch_jax.results import (
    AXES,
    GRID_AXES,
    ScanResult,
    flatten_tree,
    load_scan,
    save_json,
    save_npz,
    save_scan,
    unflatten_tree,
)
from cch_jax.train import ArrayData, Metrics, TrainConfig, TrainResult, make_train

MAX_SEED = 2**31 - 1


def _values(name, values, *, rule: Callable, text: str, integer=False) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}={np.asarray(values).tolist()} must be a non-empty 1-d list")
    if integer:
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name}={arr.tolist()} must be integers")
    elif not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name}={arr.tolist()} must be real numbers")
    bad = arr[~rule(arr.astype(np.float64))]
    if bad.size:
        raise ValueError(f"{name}={bad[0].item()} must be {text}")
    return arr


def check_grid(config: TrainConfig, lams, temperatures, seeds, learning_rates):
    """Validate the swept values; return them as 1-d numpy arrays (λ, T, seed, lr)."""
    finite = np.isfinite
    if config.task == "classification":
        lams = _values(
            "lam", lams, rule=lambda a: finite(a) & (a >= 0) & (a <= 1), text="in [0, 1]"
        )
    else:
        lams = _values("lam", lams, rule=lambda a: finite(a) & (a >= 0), text=">= 0 and finite")
    temperatures = _values(
        "temperature", temperatures, rule=lambda a: finite(a) & (a > 0), text="> 0 and finite"
    )
    seeds = _values(
        "seeds",
        seeds,
        rule=lambda a: (a >= 0) & (a <= MAX_SEED),
        text=f"in [0, {MAX_SEED}]",
        integer=True,
    )
    if len(np.unique(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds.tolist()} must be distinct (a seed names a training run)")
    learning_rates = _values(
        "learning_rate", learning_rates, rule=lambda a: finite(a) & (a > 0), text="> 0 and finite"
    )
    return lams, temperatures, seeds, learning_rates


def grid_runs(lams, temperatures, learning_rates, seeds) -> dict:
    """The flattened grid: {axis: (R,) values}, axis order lam, temperature, learning_rate, seed."""
    mesh = np.meshgrid(lams, temperatures, learning_rates, seeds, indexing="ij")
    return {a: m.ravel() for a, m in zip(GRID_AXES, mesh, strict=True)}


def make_chunk_fn(config: TrainConfig, data=None, *, vmap_size: int | None = None):
    """jit(vmap(train)) over a chunk of runs: (data, seeds, lams, temps, lrs) -> TrainResult.

    vmap_size: None vectorises the whole chunk; k vectorises k runs at a time and loops over those
    blocks inside the same program (`lax.map(..., batch_size=k)`; the chunk length must be a
    multiple of k). Smaller blocks keep each step's working set in cache on a CPU, and k = 1 avoids
    XLA CPU's per-student convolutions, whose vmapped (grouped) form costs ∝ k² (BENCHMARKS.md).

    Without fixed data the jitted function is cached per config content, so scans of the same
    config and chunk shape (a resumed scan, a process's share, a rerun) reuse the compiled program.
    """
    if vmap_size is not None and (isinstance(vmap_size, bool) or int(vmap_size) < 1):
        raise ValueError(f"vmap_size={vmap_size!r} must be None or a positive integer")
    if data is not None:
        return _chunk_fn(config, data, vmap_size)
    key = json.dumps([config.to_dict(), vmap_size], sort_keys=True, default=str)
    if key not in _CHUNK_FNS:
        while len(_CHUNK_FNS) >= 16:  # bounded: drop the oldest
            _CHUNK_FNS.pop(next(iter(_CHUNK_FNS)))
        _CHUNK_FNS[key] = _chunk_fn(config, None, vmap_size)
    return _CHUNK_FNS[key]


# Compiled chunk functions by config content (the config's JSON description, which for data-free
# configs determines the program). jax.jit caches the compiled program per input shape.
_CHUNK_FNS: dict = {}


def clear_cache() -> None:
    """Forget the cached chunk functions (the next scan traces and compiles afresh)."""
    _CHUNK_FNS.clear()


def _chunk_fn(config: TrainConfig, data, vmap_size: int | None = None):
    train = make_train(config, data)

    def run_chunk(data, seeds, lams, temperatures, learning_rates) -> TrainResult:
        keys = jax.vmap(jax.random.key)(seeds)
        runs = (keys, lams, temperatures, learning_rates)
        if vmap_size is None or vmap_size >= seeds.shape[0]:
            return jax.vmap(train, in_axes=(None, 0, 0, 0, 0))(data, *runs)
        if seeds.shape[0] % vmap_size:  # a remainder block would trace `train` a second time
            raise ValueError(f"vmap_size={vmap_size} must divide the chunk length {seeds.shape[0]}")
        return jax.lax.map(lambda r: train(data, *r), runs, batch_size=vmap_size)

    return jax.jit(run_chunk)


def shardings(devices: Sequence) -> tuple:
    """(run-axis sharding, replicated sharding) over a 1-d Mesh ("runs",) of `devices`.

    The chunk's runs are split evenly across the devices (the chunk is padded to a multiple of
    their number); fixed data are replicated. With one device both are that device.
    """
    if len(devices) == 1:
        single = jax.sharding.SingleDeviceSharding(devices[0])
        return single, single
    mesh = Mesh(np.asarray(devices), ("runs",))
    return NamedSharding(mesh, P("runs")), NamedSharding(mesh, P())


def _fingerprint(
    config: TrainConfig, data, grid: dict, chunk_size: int, keep_params: bool, vmap_size=None
) -> str:
    """Hash of everything that determines the numbers of every chunk (for safe resumption)."""
    h = hashlib.sha256()
    desc = {
        "config": config.to_dict(),
        "grid": {a: np.asarray(v).tolist() for a, v in grid.items()},
        "chunk_size": chunk_size,
        "keep_params": keep_params,
        "dtype": str(jnp.result_type(float)),
    }
    if vmap_size is not None:  # blocks may round differently; absent = the old fingerprints
        desc["vmap_size"] = vmap_size
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    if data is not None:  # fixed arrays: hash their bytes too
        for leaf in jax.tree.leaves(data):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def environment() -> dict:
    """Versions and device for the results sidecar."""
    import flax
    import optax

    import cch_jax

    dev = jax.devices()[0]
    return {
        "versions": {
            "cch": cch_jax.__version__,
            "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None) or jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": {
            "platform": dev.platform,
            "kind": dev.device_kind,
            "local_device_count": jax.local_device_count(),
            "process_count": jax.process_count(),
        },
        "x64": bool(jax.config.jax_enable_x64),
    }


def _chunk_path(out: Path, i: int) -> Path:
    return out / "chunks" / f"chunk_{i:05d}.npz"


def _save_chunk(path: Path, res: TrainResult, keep_params: bool) -> None:
    arrays = {"diverged": res.diverged}
    arrays.update({f"metrics/{k}": v for k, v in res.metrics._asdict().items()})
    if keep_params:
        arrays.update(flatten_tree(res.params, "params"))
    save_npz(path, arrays)


def _load_chunk(path: Path) -> TrainResult:
    with np.load(path) as z:
        flat = {k: z[k] for k in z.files}
    metrics = Metrics(**{k: flat[f"metrics/{k}"] for k in Metrics._fields})
    return TrainResult(unflatten_tree(flat, "params"), metrics, flat["diverged"])


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    """Pad the run axis to `size` with copies of the last run (finite, and dropped afterwards)."""
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)]) if len(x) < size else x


def run_scan(
    config: TrainConfig,
    lams: Sequence[float],
    temperatures: Sequence[float] = (1.0,),
    seeds: Sequence[int] = (0,),
    learning_rates: Sequence[float] = (1e-2,),
    *,
    data: ArrayData | None = None,
    chunk_size: int = 4096,
    vmap_size: int | None = None,
    out: str | Path | None = None,
    keep_params: bool = True,
    progress: bool | None = None,
    devices: Sequence | None = None,
    process_index: int = 0,
    process_count: int = 1,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ScanResult | None:
    """Train every run of the grid lams × temperatures × learning_rates × seeds.

    Args:
      config: the TrainConfig (data source, student, steps, optimiser, …).
      lams, temperatures, seeds, learning_rates: the swept values (1-d); seeds distinct ints.
      data: fixed ArrayData if not in the config.
      chunk_size: runs per compiled call (memory ∝ chunk_size; 10⁵ linear students → a few
        chunks; CNN students: a few hundred per chunk on a GPU).
      vmap_size: vectorise this many runs at a time within a chunk, looping over the blocks inside
        the compiled program (None: the whole chunk). A CPU option: small blocks stay in cache, and
        1 for CNN students (vmapped convolutions are slow on XLA CPU). One device only. The chunk
        is padded to a multiple of it.
      out: directory for chunk files and the final results.npz/.json (resumable); None: memory only.
      keep_params: also return/save the final params of every run (False for large models).
      progress: progress bar on stderr; None = only when stderr is a terminal.
      devices: devices to shard the run axis over (default: all local devices).
      process_index, process_count: compute only chunks i with i % process_count == process_index.
      on_chunk: called as on_chunk(i, n_chunks) after chunk i is finished (and saved).

    Returns:
      ScanResult with axes (lam, temperature, learning_rate, seed, step); None when this process
      computed its share of a split scan but other processes' chunks are still missing.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1")
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} must lie in [0, process_count={process_count})"
        )
    n_devices = len(jax.local_devices() if devices is None else devices)
    if vmap_size is not None and n_devices > 1:
        raise ValueError(
            f"vmap_size={vmap_size} needs one device (got {n_devices}): its blocks are a "
            "sequential loop, which cannot run over a sharded run axis"
        )
    lams, temperatures, seeds, learning_rates = check_grid(
        config, lams, temperatures, seeds, learning_rates
    )
    data = (
        data if data is not None else (config.data if isinstance(config.data, ArrayData) else None)
    )
    chunk_fn = make_chunk_fn(config, data, vmap_size=vmap_size)  # validates before any work
    grid = grid_runs(lams, temperatures, learning_rates, seeds)
    n_runs = len(grid["seed"])
    chunk = min(chunk_size, n_runs)
    n_chunks = math.ceil(n_runs / chunk)
    coords = (
        ("lam", tuple(lams.tolist())),
        ("temperature", tuple(temperatures.tolist())),
        ("learning_rate", tuple(learning_rates.tolist())),
        ("seed", tuple(seeds.tolist())),
        ("step", tuple(config.eval_steps.tolist())),
    )
    shape = tuple(len(v) for _, v in coords[:4])
    meta = {
        "config": config.to_dict(),
        "seeds": seeds.tolist(),
        "chunk_size": chunk,
        "n_runs": n_runs,
        "n_chunks": n_chunks,
        "fingerprint": _fingerprint(config, data, grid, chunk, keep_params, vmap_size),
        **environment(),
    }

    out = None if out is None else Path(out)
    if out is not None:
        done = _finished(out, meta["fingerprint"])
        if done is not None:
            return done
        manifest = out / "scan.json"
        if manifest.exists():
            old = json.loads(manifest.read_text()).get("fingerprint")
            if old != meta["fingerprint"]:
                raise ValueError(
                    f"out={str(out)!r} holds a different scan (fingerprint {old}, this one "
                    f"{meta['fingerprint']}): use another directory or delete it"
                )
        else:
            save_json(manifest, meta)

    devices = list(jax.local_devices() if devices is None else devices)
    meta["run_axis_devices"] = len(devices)
    step = len(devices) if vmap_size is None else min(vmap_size, chunk)
    padded = step * math.ceil(chunk / step)
    run_sharding, data_sharding = shardings(devices)
    dtype = jnp.result_type(float)
    if data is not None:
        data = jax.device_put(data, data_sharding)

    if progress is None:
        progress = sys.stderr.isatty()
    mine = [i for i in range(n_chunks) if i % process_count == process_index]
    bar = Progress(len(mine), desc="scan", enabled=progress)
    start = time.perf_counter()
    results: dict[int, TrainResult] = {}
    for i in mine:
        path = None if out is None else _chunk_path(out, i)
        if path is not None and path.exists():
            results[i] = _load_chunk(path)
            bar.update(skipped=True)
            continue
        lo, hi = i * chunk, min((i + 1) * chunk, n_runs)
        inputs = [
            _pad(grid["seed"][lo:hi].astype(np.int32), padded),
            *(_pad(grid[a][lo:hi].astype(dtype), padded) for a in GRID_AXES[:3]),
        ]
        inputs = [jax.device_put(x, run_sharding) for x in inputs]
        res = jax.device_get(chunk_fn(data, *inputs))
        res = jax.tree.map(lambda x, n=hi - lo: np.asarray(x)[:n], res)
        if not keep_params:
            res = res._replace(params=None)
        if path is not None:
            _save_chunk(path, res, keep_params)
        results[i] = res
        bar.update()
        if on_chunk is not None:
            on_chunk(i, n_chunks)
    bar.close()

    if len(results) < n_chunks:  # a split scan: merge only once every chunk exists
        if out is None:
            return None
        for i in range(n_chunks):
            if i not in results:
                if not _chunk_path(out, i).exists():
                    return None
                results[i] = _load_chunk(_chunk_path(out, i))

    parts = [results[i] for i in range(n_chunks)]
    merged = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
    grid_shape = lambda x: x.reshape(shape + x.shape[1:])
    result = ScanResult(
        params=jax.tree.map(grid_shape, merged.params) if keep_params else None,
        metrics=Metrics(*(grid_shape(m) for m in merged.metrics)),
        diverged=grid_shape(merged.diverged),
        axes=AXES,
        coords=coords,
    )
    if out is not None:
        meta["wall_seconds_last_session"] = time.perf_counter() - start
        save_scan(result, out / "results.npz", meta)
        shutil.rmtree(out / "chunks", ignore_errors=True)
    return result


def _finished(out: Path, fingerprint: str) -> ScanResult | None:
    """The saved result in `out` if it is this very scan, else None."""
    sidecar = out / "results.json"
    if not (sidecar.exists() and (out / "results.npz").exists()):
        return None
    if json.loads(sidecar.read_text()).get("fingerprint") != fingerprint:
        return None
    return load_scan(out / "results.npz")[0]
