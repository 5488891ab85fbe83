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
  * With `out=DIR` a `cch_jax.results.ScanStore` owns the folder: a manifest DIR/scan.json, each
    finished chunk saved atomically as DIR/chunks/chunk_NNNNN.npz, and at the end
    DIR/results.npz + DIR/results.json (config, versions, device, seeds). A rerun with the same
    DIR and the same scan resumes after the last saved chunk and gives the same numbers; a
    finished DIR is just loaded. A folder holding anything else is refused.
  * Before any work: the grid, the data (shapes, finite values, label range) and the size (the
    results and one Gaussian run must fit in the memory budget; chunks shrink to fit it).
  * `process_index`/`process_count` split the chunks between processes (multi-host: see
    docs/engine.md): process p computes chunks p, p + P, …; whoever finds all chunks merges.

Swept values are traced, never static: λ, T, lr and the seed are arrays fed to the program.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cch_jax.data.arrays import check_arrays
from cch_jax.progress import Progress
from cch_jax.results import (
    AXES,
    GRID_AXES,
    ScanResult,
    ScanStore,
    environment,
    result_arrays,
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


def _chunk_result(flat: dict) -> TrainResult:
    metrics = Metrics(**{k: flat[f"metrics/{k}"] for k in Metrics._fields})
    return TrainResult(unflatten_tree(flat, "params"), metrics, flat["diverged"])


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    """Pad the run axis to `size` with copies of the last run (finite, and dropped afterwards)."""
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)]) if len(x) < size else x


def default_memory_budget() -> int:
    """Bytes a scan may plan for by default: 80% of the first device's memory limit (GPU/TPU),
    or half the machine's physical memory (CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(0.8 * stats["bytes_limit"])
    try:
        return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf: assume 8 GB
        return 8 * 2**30


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GB"


def plan_chunks(config: TrainConfig, shape: Sequence[int], chunk_size: int, budget: int) -> int:
    """Runs per chunk: `chunk_size`, fewer when a chunk of them would not fit in `budget` bytes.

    shape: the grid's lengths (lam, temperature, learning_rate, seed). Refuses (ValueError, before
    any work) a scan whose results alone exceed the budget, and a Gaussian run whose training set
    alone does. The estimates are lower bounds: results count the metrics and the grid (params
    come on top), a Gaussian run its sample x1, x2, y three times over.
    """
    n_runs = math.prod(shape)
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    per_run = (4 * len(config.eval_steps) + 4) * itemsize + 1  # metrics, the grid, diverged
    if n_runs * per_run > budget:
        raise ValueError(
            f"the grid lam × temperature × learning_rate × seed = "
            f"{' × '.join(map(str, shape))} = {n_runs} runs needs {_gb(n_runs * per_run)} for its "
            f"results alone, more than the memory budget of {_gb(budget)} (memory_budget)"
        )
    source = config.data
    if getattr(source, "model", None) is None:  # fixed arrays: shared by the runs of a chunk
        return min(chunk_size, n_runs)
    model = source.model
    sample = 3 * source.n * (model.p1 + model.p2 + 1) * itemsize
    if sample > budget:
        raise ValueError(
            f"data.n={source.n}: one training set of n × (p1 + p2 + 1) = {source.n} × "
            f"{model.p1 + model.p2 + 1} values needs about {_gb(sample)} to train on, more than "
            f"the memory budget of {_gb(budget)}"
        )
    return max(1, min(chunk_size, n_runs, budget // sample))


def _run_chunks(
    chunk_fn, data, grid: dict, todo: Sequence[int], chunk: int, padded: int, sharding
) -> Iterator[tuple[int, TrainResult]]:
    """The chunk loop: for each chunk index in `todo`, (index, its TrainResult) as numpy arrays.

    Chunk i holds runs [i·chunk, (i + 1)·chunk) of the flattened grid, padded to `padded` runs (so
    every call has one shape, hence one program) and cut back after the call.
    """
    n_runs = len(grid["seed"])
    dtype = jnp.result_type(float)
    for i in todo:
        lo, hi = i * chunk, min((i + 1) * chunk, n_runs)
        inputs = [
            _pad(grid["seed"][lo:hi].astype(np.int32), padded),
            *(_pad(grid[a][lo:hi].astype(dtype), padded) for a in GRID_AXES[:3]),
        ]
        res = chunk_fn(data, *(jax.device_put(x, sharding) for x in inputs))
        yield i, jax.tree.map(lambda x, n=hi - lo: np.asarray(x)[:n], jax.device_get(res))


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
    memory_budget: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ScanResult | None:
    """Train every run of the grid lams × temperatures × learning_rates × seeds.

    Args:
      config: the TrainConfig (data source, student, steps, optimiser, …).
      lams, temperatures, seeds, learning_rates: the swept values (1-d); seeds distinct ints.
      data: fixed ArrayData if not in the config (validated: finite values, labels in [0, C)).
      chunk_size: runs per compiled call (memory ∝ chunk_size; 10⁵ linear students → a few
        chunks; CNN students: a few hundred per chunk on a GPU). Lowered when a chunk of Gaussian
        runs would not fit in the memory budget.
      vmap_size: vectorise this many runs at a time within a chunk, looping over the blocks inside
        the compiled program (None: the whole chunk). A CPU option: small blocks stay in cache, and
        1 for CNN students (vmapped convolutions are slow on XLA CPU). One device only. The chunk
        is padded to a multiple of it.
      out: folder for chunk files and the final results.npz/.json (resumable; `ScanStore`): new,
        empty, or holding this very scan; None: memory only.
      keep_params: also return/save the final params of every run (False for large models).
      progress: progress bar on stderr; None = only when stderr is a terminal.
      devices: devices to shard the run axis over (default: all local devices).
      process_index, process_count: compute only chunks i with i % process_count == process_index.
      memory_budget: bytes the scan may plan for (default `default_memory_budget()`); a scan whose
        results or single run cannot fit is refused before any work (`plan_chunks`).
      on_chunk: called as on_chunk(i, n_chunks) after chunk i is finished (and saved).

    Returns:
      ScanResult with axes (lam, temperature, learning_rate, seed, step); None when this process
      computed its share of a split scan but other processes' chunks are still missing.
    """
    # Validate everything before any work.
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size={chunk_size!r} must be an integer")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1")
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} must lie in [0, process_count={process_count})"
        )
    devices = list(jax.local_devices() if devices is None else devices)
    if vmap_size is not None and len(devices) > 1:
        raise ValueError(
            f"vmap_size={vmap_size} needs one device (got {len(devices)}): its blocks are a "
            "sequential loop, which cannot run over a sharded run axis"
        )
    # The size first: a grid of 10⁹ seeds is refused before it is sorted for duplicates.
    shape = tuple(int(np.size(v)) for v in (lams, temperatures, learning_rates, seeds))
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    chunk = plan_chunks(config, shape, chunk_size, budget)
    lams, temperatures, seeds, learning_rates = check_grid(
        config, lams, temperatures, seeds, learning_rates
    )
    data = (
        data if data is not None else (config.data if isinstance(config.data, ArrayData) else None)
    )
    chunk_fn = make_chunk_fn(config, data, vmap_size=vmap_size)  # checks the data's shapes
    if data is not None:
        check_arrays(data, config.task)
    n_runs = math.prod(shape)
    grid = grid_runs(lams, temperatures, learning_rates, seeds)
    n_chunks = math.ceil(n_runs / chunk)
    coords = (
        ("lam", tuple(lams.tolist())),
        ("temperature", tuple(temperatures.tolist())),
        ("learning_rate", tuple(learning_rates.tolist())),
        ("seed", tuple(seeds.tolist())),
        ("step", tuple(config.eval_steps.tolist())),
    )
    meta = {
        "config": config.to_dict(),
        "seeds": seeds.tolist(),
        "chunk_size": chunk,
        "n_runs": n_runs,
        "n_chunks": n_chunks,
        "fingerprint": _fingerprint(config, data, grid, chunk, keep_params, vmap_size),
        **environment(),
    }

    # The folder: this scan's, or refused; a finished scan is just loaded.
    store = None if out is None else ScanStore(out, meta)
    if store is not None and (done := store.finished()) is not None:
        return done

    # The chunks: this process's share, loaded where saved, computed where not.
    rows = lambda i: min(chunk, n_runs - i * chunk)
    mine = [i for i in range(n_chunks) if i % process_count == process_index]
    results = {}
    for i in mine:
        flat = None if store is None else store.load_chunk(i, rows(i))
        if flat is not None:
            results[i] = _chunk_result(flat)
    todo = [i for i in mine if i not in results]
    step = len(devices) if vmap_size is None else min(vmap_size, chunk)
    run_sharding, data_sharding = shardings(devices)
    if data is not None:
        data = jax.device_put(data, data_sharding)
    bar = Progress(
        len(mine), desc="scan", enabled=sys.stderr.isatty() if progress is None else progress
    )
    for _ in results:
        bar.update(skipped=True)
    start = time.perf_counter()
    padded = step * math.ceil(chunk / step)
    for i, res in _run_chunks(chunk_fn, data, grid, todo, chunk, padded, run_sharding):
        if not keep_params:
            res = res._replace(params=None)
        if store is not None:
            store.save_chunk(i, result_arrays(res))
        results[i] = res
        bar.update()
        if on_chunk is not None:
            on_chunk(i, n_chunks)
    bar.close()

    # Merge once every chunk exists (a split scan: other processes' chunks come from the files).
    for i in range(n_chunks):
        if i not in results:
            flat = None if store is None else store.load_chunk(i, rows(i))
            if flat is None:
                return None if store is None else store.finished()
            results[i] = _chunk_result(flat)
    merged = jax.tree.map(lambda *xs: np.concatenate(xs), *(results[i] for i in range(n_chunks)))
    grid_shape = lambda x: x.reshape(shape + x.shape[1:])
    result = ScanResult(
        params=jax.tree.map(grid_shape, merged.params) if keep_params else None,
        metrics=Metrics(*(grid_shape(m) for m in merged.metrics)),
        diverged=grid_shape(merged.diverged),
        axes=AXES,
        coords=coords,
    )
    if store is not None:
        store.finish(
            result,
            n_chunks,
            run_axis_devices=len(devices),
            wall_seconds_last_session=time.perf_counter() - start,
        )
    return result
