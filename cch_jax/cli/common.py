"""Helpers shared by the CLI sub-commands: array loading, JSON output, argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cch_jax.cli import UserError
from cch_jax.serialize import jsonable


def load_array(path: str, *, name: str, key: str | None = None) -> np.ndarray:
    """A numeric array from a .npy, .npz (member `key`, or the only member) or .csv (float64) file.

    Every problem is a UserError naming `name` and the file: missing, a folder, not in the format
    its suffix says, or holding anything but numbers (pickled objects are never loaded).
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{name}: {path!r} is a directory; give an array file (.npy, .npz, .csv)")
    if not p.is_file():
        raise UserError(f"{name}: file {path!r} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if key is None:
                    if len(z.files) != 1:
                        raise UserError(f"{name}: {path!r} holds {z.files}; choose one with --key")
                    key = z.files[0]
                if key not in z.files:
                    raise UserError(f"{name}: {path!r} has no array {key!r} (has {z.files})")
                arr = np.asarray(z[key])
        elif p.suffix == ".csv":
            arr = np.loadtxt(p, delimiter=",", ndmin=2)
        else:
            with open(p, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise UserError(
                        f"{name}: {path!r} is not a .npy file (no NumPy header): save arrays "
                        "with numpy.save, or give a .csv"
                    )
            arr = np.asarray(np.load(p, allow_pickle=False))
    except UserError:
        raise
    except Exception as err:  # unreadable file: report, don't trace
        if "pickle" in str(err):  # never suggest allow_pickle: loading it could run code
            err = "it holds Python objects, not numbers"
        raise UserError(f"{name}: cannot read {path!r}: {err}") from None
    if arr.dtype.kind not in "biuf":  # bool, integers, floats
        raise UserError(
            f"{name}: {path!r} holds an array of dtype {arr.dtype}; it must hold numbers "
            "(encode labels as integers 0, 1, …)"
        )
    return arr


def print_json(obj) -> None:
    print(json.dumps(jsonable(obj), indent=2))
