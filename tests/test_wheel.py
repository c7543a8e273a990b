"""A wheel install works: the wheel carries every data file the package opens.

The wheel is built from a copy of the sources (so that the build leaves nothing in the checkout),
with the setuptools of this environment (``--no-build-isolation``: no index needed), then installed,
not editable, into a folder of its own with ``pip install --target``. Its dependencies are this
environment's: the installed copy runs with ``PYTHONPATH`` set to that folder, whose entries come
before site-packages and the editable install's finder (which only answers what the path does not),
and every check first asserts that ``findspots`` was imported from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Run by the installed copy: each data file the package opens, as the package opens it.
CHECKS = """
import sys
from pathlib import Path

import findspots
assert Path(findspots.__file__).is_relative_to(sys.argv[1]), findspots.__file__

from findspots.app.parameters import master
print("global_threshold", master().extract().spotfinder.threshold.dispersion.global_threshold)

import dask
from findspots.batch.clusters.base import load_defaults
load_defaults()
print("sge name", dask.config.get("jobqueue.sge.name"))
print("sge death-timeout", dask.config.get("jobqueue.sge.death-timeout"))
"""


def _can_build_wheels() -> bool:
    """setuptools builds wheels itself from 70.1; before, with the ``wheel`` package (test extra)."""
    import importlib.util

    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (``--target``)."""
    if not _can_build_wheels():
        pytest.skip("setuptools < 70.1 needs the 'wheel' package to build wheels: pip install -e '.[test]'")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "findspots", source / "findspots", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp / "dist"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True, timeout=120
    )
    (wheel,) = wheels.glob("findspots-*.whl")
    target = tmp / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", target, wheel], check=True, timeout=120
    )
    return target


def _run(installed: Path, *args) -> str:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    # cwd outside the checkout: "" on sys.path must not find the sources either
    result = subprocess.run(
        args, cwd=installed.parent, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_installed_copy_opens_its_data_files(installed):
    out = _run(installed, sys.executable, "-c", CHECKS, str(installed))
    assert out.splitlines() == [
        "global_threshold 0.0",  # the master PHIL (phil/spotfinder.phil)
        "sge name findspots-worker",  # the cluster defaults (batch/clusters/defaults.yaml)
        "sge death-timeout 120",  # dask-jobqueue's own: 60
    ]


def test_the_installed_command_shows_the_master_parameters(installed):
    """The console script of the wheel prints the same parameter tree as the checkout."""
    script = installed / "bin" / "findspots"
    shown = _run(installed, script, "-c", "-e", "3", "-a", "2")
    source = subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", "-c", "-e", "3", "-a", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert shown == source.stdout
    assert "global_threshold = 0" in shown and "sigma_strong = 3" in shown
    usage = _run(installed, script, "--help")
    assert usage.startswith("usage: findspots [options]")
