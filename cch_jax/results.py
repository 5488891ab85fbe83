"""Scan results with named axes, their summaries, and atomic .npz + JSON sidecar files.

A `ScanResult` holds, for a grid lam × temperature × learning_rate × seed of training runs:

    params     Flax variables; every leaf has shape (L, T, R, S, *param_shape)
    metrics    Metrics(total, label, kd, test); each (L, T, R, S, E), E = steps // eval_every
    diverged   bool (L, T, R, S): the run's loss became NaN/inf (never averaged in)
    axes       ("lam", "temperature", "learning_rate", "seed", "step")
    coords     the values along each axis (`result.coord("lam")`, …; "step" = recorded steps)

`result.sel(lam=0.5, seed=3)` picks by value and drops those axes (like xarray's .sel).

`ScanStore` owns a scan's output folder: its manifest, the chunk files a killed scan resumes
from, and the merged results (see its docstring). Every file is written atomically.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import flax.struct
import jax
import numpy as np

from cch_jax.metrics import Metrics
from cch_jax.serialize import jsonable

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


def result_arrays(result) -> dict:
    """{name: array} of a ScanResult (or of any record with params, metrics, diverged)."""
    arrays = {"diverged": np.asarray(result.diverged)}
    arrays.update({f"metrics/{k}": np.asarray(v) for k, v in result.metrics._asdict().items()})
    if result.params is not None:
        arrays.update(flatten_tree(result.params, "params"))
    for axis, values in getattr(result, "coords", ()):
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


def read_npz(path) -> dict:
    """{name: array} of an .npz file; a truncated or corrupt file raises ValueError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"{path} is not a readable .npz file ({type(err).__name__}: {err})"
        ) from None


def read_json(path) -> dict:
    """The JSON object in `path`; a corrupt file raises ValueError naming it."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(obj).__name__}")
    return obj


def load_scan(path) -> tuple[ScanResult, dict]:
    """(ScanResult, sidecar dict) from a file written by save_scan.

    A missing file raises FileNotFoundError, a corrupt one ValueError; both name the file.
    """
    path = Path(path).with_suffix(".npz")
    flat = read_npz(path)
    meta = read_json(path.with_suffix(".json"))
    try:
        axes = tuple(meta["axes"])
        coords = tuple((a, tuple(flat[f"coords/{a}"].tolist())) for a in axes)
        metrics = Metrics(**{k: flat[f"metrics/{k}"] for k in Metrics._fields})
        diverged = flat["diverged"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} (with its .json) is not a saved scan: {err} is missing") from None
    return ScanResult(unflatten_tree(flat, "params"), metrics, diverged, axes, coords), meta


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


# --- a scan's output folder ----------------------------------------------------------------------

MANIFEST = "scan.json"
MANIFEST_FORMAT = "cch-scan"


class ScanStore:
    """A scan's output folder: it owns the manifest, resumption and the merged results.

        DIR/scan.json               the manifest (config, grid, fingerprint), created exclusively
        DIR/chunks/chunk_NNNNN.npz  each finished chunk (deleted once the results are saved)
        DIR/results.npz, .json      the merged results and their sidecar (`save_scan`)

    The folder must be new, empty, or hold a manifest of this very scan (same fingerprint):
    nothing else is ever overwritten, and only files the scan wrote are deleted. The manifest is
    created with an exclusive link, so of two different scans started at once into one folder one
    is refused; processes that share one scan (`process_index`) share the folder. A chunk file
    that cannot be read (truncated by a crash, emptied) is deleted with a warning and recomputed.
    """

    def __init__(self, out, meta: dict):
        self.dir = Path(out)
        self.meta = dict(meta, format=MANIFEST_FORMAT)
        self.fingerprint = meta["fingerprint"]
        self._claim()

    # The folder --------------------------------------------------------------------------------

    def _claim(self) -> None:
        d = self.dir
        if d.exists() and not d.is_dir():
            raise ValueError(f"out={str(d)!r} is a file: give a folder (new or empty)")
        d.mkdir(parents=True, exist_ok=True)
        manifest = d / MANIFEST
        if not manifest.exists():
            theirs = sorted(p.name for p in d.iterdir() if not _is_our_temp(p, MANIFEST))
            if MANIFEST in theirs:  # another scan claimed the folder since `exists()`: compare
                theirs = []
            elif theirs:
                shown = ", ".join(theirs[:3]) + (", …" if len(theirs) > 3 else "")
                raise ValueError(
                    f"out={str(d)!r} is not empty ({shown}) and holds no scan (no {MANIFEST}): "
                    "give a new or empty folder (files there are never overwritten)"
                )
            text = json.dumps(jsonable(self.meta), indent=2, sort_keys=True) + "\n"
            if not manifest.exists() and _create_exclusive(manifest, text.encode()):
                return
        old = _manifest(manifest)
        if old["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"out={str(d)!r} holds a different scan (fingerprint {old['fingerprint']}, this "
                f"one {self.fingerprint}): use another directory or delete it"
            )

    # Chunks ------------------------------------------------------------------------------------

    def chunk_path(self, i: int) -> Path:
        return self.dir / "chunks" / f"chunk_{i:05d}.npz"

    def save_chunk(self, i: int, arrays: dict) -> None:
        save_npz(self.chunk_path(i), arrays)

    def load_chunk(self, i: int, n_runs: int) -> dict | None:
        """Chunk i's arrays ({name: (n_runs, ...)}), or None when it is missing or unreadable."""
        path = self.chunk_path(i)
        if not path.exists():
            return None
        try:
            flat = read_npz(path)
            if not flat or any(np.shape(v)[:1] != (n_runs,) for v in flat.values()):
                raise ValueError(f"{path} does not hold {n_runs} runs")
        except FileNotFoundError:  # another process finished the scan and removed it
            return None
        except ValueError as err:
            warnings.warn(f"{err}; computing that chunk again", stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        return flat

    # Results -----------------------------------------------------------------------------------

    def finished(self) -> ScanResult | None:
        """The saved result if the folder holds this very scan's results, else None."""
        sidecar, npz = self.dir / "results.json", self.dir / "results.npz"
        if not (sidecar.exists() and npz.exists()):
            return None
        if read_json(sidecar).get("fingerprint") != self.fingerprint:
            return None
        return load_scan(npz)[0]

    def finish(self, result: ScanResult, n_chunks: int, **extra) -> None:
        """Save the merged results, then delete the chunk files (only those the scan wrote)."""
        save_scan(result, self.dir / "results.npz", {**self.meta, **extra})
        chunks = self.dir / "chunks"
        for i in range(n_chunks):
            self.chunk_path(i).unlink(missing_ok=True)
        if chunks.is_dir():
            for p in chunks.iterdir():
                if p.name.startswith(".chunk_") and p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)  # left by a write killed midway
            if not any(chunks.iterdir()):
                chunks.rmdir()


def _is_our_temp(path: Path, name: str) -> bool:
    """A temp file of `atomic_write_bytes` for `name` (another process is creating it)."""
    return path.name.startswith(f".{name}.") and path.name.endswith(".tmp")


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists (then False). Readers never see it partial:
    the data are written to a temp file, which is then hard-linked to `path` (atomic, exclusive)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(out, "wb") as f:
                f.write(data)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _manifest(path: Path) -> dict:
    meta = read_json(path)
    if not isinstance(meta.get("fingerprint"), str):
        raise ValueError(
            f"{path} is not the manifest of a cch scan (no fingerprint): give another folder"
        )
    return meta
