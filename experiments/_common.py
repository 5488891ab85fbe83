"""What every reproduction shares: output locations, saved results, figure style."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from cch_jax.results import save_json, save_npz

# Outputs go under the current directory (or where --out/--figures say), never next to the
# installed package: an installed package may be read-only, and is no place for a user's results.


def results_dir(name: str, out=None, quick: bool = False) -> Path:
    """./results/<name> (./results/quick/<name> for --quick) unless `out` is given."""
    if out is not None:
        return Path(out) / name
    return Path.cwd() / "results" / ("quick" if quick else "") / name


def figures_dir(figures=None, quick: bool = False) -> Path:
    """./figures/ for full-size runs, ./figures/quick/ for --quick (never overwrites full-size)."""
    if figures is not None:
        return Path(figures)
    return Path.cwd() / "figures" / ("quick" if quick else "")


def environment() -> dict:
    """Versions, device and date, recorded beside every result (results.environment + date)."""
    from cch_jax.results import environment as scan_environment

    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"date": date, **scan_environment()}


def save_results(directory: Path, arrays: dict, meta: dict) -> None:
    """results.npz + results.json in `directory`, both written atomically."""
    save_npz(directory / "results.npz", arrays)
    save_json(directory / "results.json", {**meta, "environment": environment()})


def load_results(directory) -> tuple[dict, dict]:
    """(arrays, meta) saved by `save_results`."""
    directory = Path(directory)
    npz, sidecar = directory / "results.npz", directory / "results.json"
    for f in (npz, sidecar):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: run the experiment first (cch reproduce)")
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(sidecar.read_text())


def new_figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3})
    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: Path) -> Path:
    """Write a PNG atomically (temp file + rename)."""
    import matplotlib.pyplot as plt

    from cch_jax.results import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"))
    plt.close(fig)
    return path
