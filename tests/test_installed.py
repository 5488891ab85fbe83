"""Installed as users install it (`pip install .`, not editable): outputs go to the current
directory, never into the installation, and a read-only installation works."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "results", "figures", "mutants", "build", "__pycache__", ".pytest_cache"}


def _read_only(tree: Path) -> None:
    for p in [tree, *tree.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _has_build_backend() -> bool:
    """pyproject.toml's build requirements (setuptools >= 68, wheel) are importable here."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("wheel")  # installed, or PackageNotFoundError
        return int(version("setuptools").split(".")[0]) >= 68
    except PackageNotFoundError:
        return False


@pytest.mark.slow
def test_a_read_only_non_editable_install_writes_only_to_the_current_directory(tmp_path):
    src, site, work = tmp_path / "src", tmp_path / "site", tmp_path / "work"
    shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP])
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    if _has_build_backend():  # the dev extra installs it: no isolated build env (~4 s) to set up
        pip.append("--no-build-isolation")
    done = subprocess.run([*pip, str(src)], capture_output=True, text=True)
    if done.returncode != 0 and "connection" in done.stderr.lower():
        pytest.skip("pip could not reach the package index to build the wheel")
    assert done.returncode == 0, done.stderr[-2000:]
    _read_only(site)
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import cch_jax, experiments; print(cch_jax.__file__)"],
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
            check=True,
        ).stdout
        assert where.startswith(str(site)), where  # the installed copy, not the checkout
        run = subprocess.run(
            [sys.executable, "-m", "cch_jax.cli", "reproduce", "cch_audit", "--quick"],
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert (work / "results" / "quick" / "cch_audit" / "results.json").is_file()
        assert (work / "figures" / "quick" / "cch_audit.png").is_file()
        assert not list(site.rglob("results.json")) and not list(site.rglob("*.png"))
    finally:
        for p in [site, *site.rglob("*")]:  # let pytest clean up
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
