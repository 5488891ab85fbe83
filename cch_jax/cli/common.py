"""Helpers shared by the CLI sub-commands: array loading, JSON output, argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cch_jax.cli import UserError
from cch_jax.serialize import jsonable


def load_array(path: str, *, name: str, key: str | None = None) -> np.ndarray:
    """Load a .npy, .npz (member `key`, or the only member) or .csv file as float64."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{name}: file {path!r} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p) as z:
                if key is None:
                    if len(z.files) != 1:
                        raise UserError(f"{name}: {path!r} holds {z.files}; choose one with --key")
                    key = z.files[0]
                if key not in z.files:
                    raise UserError(f"{name}: {path!r} has no array {key!r} (has {z.files})")
                return np.asarray(z[key])
        if p.suffix == ".csv":
            return np.loadtxt(p, delimiter=",", ndmin=2)
        return np.asarray(np.load(p, allow_pickle=False))
    except UserError:
        raise
    except Exception as err:  # unreadable file: report, don't trace
        raise UserError(f"{name}: cannot read {path!r}: {err}") from None


def print_json(obj) -> None:
    print(json.dumps(jsonable(obj), indent=2))
