"""What the CLI sub-commands share: array loading, the Gaussian model and teacher options, library
errors in the user's words, JSON output. Sub-commands import this module and no other of cch_jax.cli.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np

import theory
from cch_jax.cli import UserError
from cch_jax.serialize import jsonable

__all__ = [
    "MODEL_OPTIONS",
    "UserError",
    "add_model_options",
    "example_model",
    "load_array",
    "options_in_errors",
    "print_json",
    "read_model",
    "read_teacher",
]


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


@contextlib.contextmanager
def options_in_errors(**options: str):
    """Say library errors in the user's words: a message about argument `name` (the library's
    messages begin with it: "lam=-1.0 must be >= 0") names the option instead ("--lam=-1.0 …")."""
    try:
        yield
    except (ValueError, TypeError) as err:
        name = re.match(r"\w+", str(err))
        if name is None or name.group() not in options:
            raise
        raise UserError(options[name.group()] + str(err)[name.end() :]) from None


def example_model():
    """The built-in example: `theory.factor_model(4, 4, teacher_noise=0.5, rank=2)`, n = 40.

    Chosen because it shows the point of the exact verdict: CCH fails here, yet KD helps at
    every λ > 0.
    """
    return theory.factor_model(4, 4, teacher_noise=0.5, rank=2), 40


def add_model_options(p) -> None:
    """--cov, --p1, --w1, --n, --example: the Gaussian model options of `cch theory`/`cch verify`."""
    p.add_argument("--cov", help="covariance .npy (or .npz/.csv), ordered [x1, x2, y]")
    p.add_argument("--p1", type=int, help="teacher dimension p1 (p2 = size − p1 − 1)")
    p.add_argument("--w1", help="teacher weights .npy of shape (p1,); default Σ11⁻¹Σ1y")
    p.add_argument("--n", type=int, help="training-set size n (> p2 + 1)")
    p.add_argument("--example", action="store_true", help="use the built-in example model")


# The library arguments behind the model options (for `options_in_errors`).
MODEL_OPTIONS = {"cov": "--cov", "p1": "--p1", "w1": "--w1", "n": "--n"}


def read_model(args):
    """(theory.JointGaussian, n) from --cov/--p1/--n, or --example (its n unless --n is given).

    The library checks the values (inside `options_in_errors(**MODEL_OPTIONS)`); only what is
    the command line's own is checked here: the options present, p2 = size − p1 − 1.
    """
    if args.example:
        model, n = example_model()
        return model, n if args.n is None else args.n
    missing = [f"--{a}" for a in ("cov", "p1", "n") if getattr(args, a) is None]
    if missing:
        raise UserError(f"{', '.join(missing)} required (or use --example)")
    cov = load_array(args.cov, name="--cov")
    size = cov.shape[0] if cov.ndim else 0
    p2 = size - args.p1 - 1
    if p2 < 1:
        raise UserError(f"--p1={args.p1} must leave p2 = size − p1 − 1 >= 1 (size {size})")
    return theory.JointGaussian(cov, args.p1, p2), args.n


def read_teacher(args, model):
    """w1 from --w1, else the population-optimal teacher Σ11⁻¹Σ1y."""
    return load_array(args.w1, name="--w1") if args.w1 else theory.optimal_teacher(model)
