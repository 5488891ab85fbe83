"""Scan results with named axes, their summaries, and atomic .npz + JSON sidecar files.

A `ScanResult` holds, for a grid lam × temperature × learning_rate × seed of training runs:

    params     Flax variables; every leaf has shape (L, T, R, S, *param_shape)
    metrics    Metrics(total, label, kd, test); each (L, T, R, S, E), E = steps // eval_every
    diverged   bool (L, T, R, S): the run's loss became NaN/inf (never averaged in)
    axes       ("lam", "temperature", "learning_rate", "seed", "step")
    coords     the values along each axis (`result.coord("lam")`, …; "step" = recorded steps)

`result.sel(lam=0.5, seed=3)` picks by value and drops those axes (like xarray's .sel).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import flax.struct
import jax
import numpy as np

from cch_jax.serialize import jsonable
from cch_jax.train import Metrics

GRID_AXES = ("lam", "temperature", "learning_rate", "seed")
AXES = (*GRID_AXES, "step")


@flax.struct.dataclass
class ScanResult:
    """See the module docstring. `axes`/`coords` are static (not pytree leaves)."""

    params: Any
    metrics: Metrics
    diverged: Any
    axes: tuple = flax.struct.field(pytree_node=False, default=AXES)
    coords: tuple = flax.struct.field(pytree_node=False, default=())  # ((name, values), ...)

    def coord(self, name: str) -> np.ndarray:
        """The values along axis `name`."""
        for axis, values in self.coords:
            if axis == name:
                return np.asarray(values)
        raise ValueError(f"axis={name!r} is not one of {self.axes}")

    @property
    def grid_axes(self) -> tuple:
        return tuple(a for a in self.axes if a != "step")

    @property
    def final_test(self):
        """The test metric after the last step: metrics.test[..., -1] (no step axis)."""
        test = self.metrics.test
        return test[..., -1] if "step" in self.axes else test

    def sel(self, **values) -> ScanResult:
        """Pick one value along each named axis (exact match, or within 1e-12 relative)."""
        index = {}
        for name, value in values.items():
            if name not in self.axes:
                raise ValueError(f"axis={name!r} is not one of {self.axes}")
            c = self.coord(name)
            hits = np.flatnonzero(np.isclose(c, value, rtol=1e-12, atol=0))
            if hits.size == 0:
                raise ValueError(f"{name}={value} is not among the scanned values {c.tolist()}")
            index[name] = int(hits[0])

        def take(x, axes):
            if x is None:
                return None
            idx = tuple(index.get(a, slice(None)) for a in axes)
            return x[idx]

        grid = self.grid_axes
        params = jax.tree.map(lambda x: take(x, grid), self.params)
        metrics = Metrics(*(take(m, self.axes) for m in self.metrics))
        keep = tuple(a for a in self.axes if a not in index)
        coords = tuple((a, v) for a, v in self.coords if a not in index)
        return ScanResult(params, metrics, take(self.diverged, grid), keep, coords)

    def summary(self, metric_name: str = "test") -> str:
        """Per (lam, temperature, learning_rate): final metric mean ± SEM over the seeds that did
        not diverge, and the number of diverged runs (flagged, never averaged in)."""
        r = self
        if "seed" not in r.grid_axes:
            raise ValueError("summary needs a 'seed' axis")
        final = np.asarray(r.final_test)
        div = np.asarray(r.diverged)
        seed_ax = r.grid_axes.index("seed")
        mean, sem, count = seed_stats(final, div, axis=seed_ax)
        n_div = int(div.sum())
        lines = [
            f"{div.size} runs over {dict((a, len(v)) for a, v in r.coords if a != 'step')}; "
            f"diverged: {n_div}" + ("  <-- DIVERGED RUNS EXCLUDED FROM MEANS" if n_div else ""),
            f"  {'lam':>10} {'T':>8} {'lr':>10}  {metric_name + ' mean':>14} {'SEM':>10}  "
            f"{'seeds':>6} {'diverged':>8}",
        ]
        other = [a for a in r.grid_axes if a != "seed"]
        div_count = div.sum(axis=seed_ax)
        for idx in np.ndindex(*mean.shape):
            vals = {a: r.coord(a)[i] for a, i in zip(other, idx)}
            lines.append(
                f"  {vals.get('lam', np.nan):>10.4g} {vals.get('temperature', np.nan):>8.4g} "
                f"{vals.get('learning_rate', np.nan):>10.4g}  {mean[idx]:>14.6g} {sem[idx]:>10.3g}  "
                f"{int(count[idx]):>6d} {int(div_count[idx]):>8d}"
            )
        return "\n".join(lines)


def seed_stats(values, diverged, axis: int):
    """(mean, SEM, count) of `values` along `axis` over runs that did not diverge.

    SEM = sample std (ddof=1) / √count; NaN where fewer than 2 runs remain.
    """
    v = np.where(np.asarray(diverged), np.nan, np.asarray(values, dtype=np.float64))
    count = np.sum(~np.isnan(v), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=axis) / np.where(count > 0, count, np.nan)
        dev = np.where(np.isnan(v), 0.0, v - np.expand_dims(mean, axis))
        var = np.sum(dev**2, axis=axis) / np.where(count > 1, count - 1, np.nan)
    return mean, np.sqrt(var / count), count


# --- files -------------------------------------------------------------------------------------


def atomic_write_bytes(path, write) -> None:
    """Write a file atomically: `write(fileobj)` into a temp file beside it, then os.replace.

    An interrupted write leaves at most a stray temp file, never a half-written `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path, arrays: dict) -> None:
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def save_json(path, obj) -> None:
    text = json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def _key_name(entry) -> str:
    return str(getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry))))


def flatten_tree(tree, prefix: str) -> dict:
    """{prefix/a/b: leaf} for a nested-dict pytree (Flax variables)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join([prefix, *(_key_name(k) for k in path)]): np.asarray(v) for path, v in flat}


def unflatten_tree(flat: dict, prefix: str):
    """Inverse of flatten_tree for nested dicts; None when no key has the prefix."""
    out: dict = {}
    for name, value in flat.items():
        parts = name.split("/")
        if parts[0] != prefix:
            continue
        node = out
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out or None


def result_arrays(result: ScanResult) -> dict:
    arrays = {"diverged": np.asarray(result.diverged)}
    arrays.update({f"metrics/{k}": np.asarray(v) for k, v in result.metrics._asdict().items()})
    if result.params is not None:
        arrays.update(flatten_tree(result.params, "params"))
    for axis, values in result.coords:
        arrays[f"coords/{axis}"] = np.asarray(values)
    return arrays


def save_scan(result: ScanResult, path, meta: dict | None = None) -> Path:
    """Save `result` as PATH.npz and its JSON sidecar PATH.json (both atomic); return the .npz path.

    The sidecar holds `meta` (config, versions, device, seeds, …) plus the axes and coords.
    """
    path = Path(path).with_suffix(".npz")
    save_npz(path, result_arrays(result))
    sidecar = dict(meta or {})
    sidecar["axes"] = list(result.axes)
    sidecar["coords"] = {a: np.asarray(v).tolist() for a, v in result.coords}
    sidecar["n_diverged"] = int(np.sum(result.diverged))
    save_json(path.with_suffix(".json"), sidecar)
    return path


def load_scan(path) -> tuple[ScanResult, dict]:
    """(ScanResult, sidecar dict) from a file written by save_scan."""
    path = Path(path).with_suffix(".npz")
    with np.load(path) as z:
        flat = {k: z[k] for k in z.files}
    meta = json.loads(path.with_suffix(".json").read_text())
    axes = tuple(meta["axes"])
    coords = tuple((a, tuple(flat[f"coords/{a}"].tolist())) for a in axes)
    metrics = Metrics(**{k: flat[f"metrics/{k}"] for k in Metrics._fields})
    params = unflatten_tree(flat, "params")
    return ScanResult(params, metrics, flat["diverged"], axes, coords), meta
