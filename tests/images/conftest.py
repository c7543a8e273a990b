"""Fixtures for the image tests: the shared data folder (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the shared data as ``shared``."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """<repo>/../shared/data, or skip the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def p300k_files(shared_data: Path) -> list[str]:
    """The 60 simulated Pilatus 300K images."""
    files = sorted(str(p) for p in (shared_data / "p300k_60").glob("p300k_*.cbf"))
    if len(files) != 60:
        pytest.skip("p300k_60 images incomplete")
    return files


@pytest.fixture(scope="session")
def thaumatin_files(shared_data: Path) -> list[str]:
    """The 19 thaumatin grid-scan stills (PILATUS3 6M miniCBF, bz2)."""
    files = sorted(str(p) for p in (shared_data / "real/thaumatin_grid_i24_pilatus3_6m").glob("*.cbf.bz2"))
    if len(files) != 19:
        pytest.skip("thaumatin grid images incomplete")
    return files


def _lcyst(shared_data: Path, sweep: int) -> list[str]:
    folder = shared_data / "real/l_cysteine_i19_pilatus2m"
    files = sorted(str(p) for p in folder.glob(f"l-cyst_{sweep:02d}_*.cbf.bz2"))
    if len(files) != 15:
        pytest.skip(f"l-cysteine sweep {sweep} incomplete")
    return files


@pytest.fixture(scope="session")
def lcyst01_files(shared_data: Path) -> list[str]:
    """The 15 images of l-cysteine sweep 01 (PILATUS 2M full CBF, bz2)."""
    return _lcyst(shared_data, 1)


@pytest.fixture(scope="session")
def lcyst02_files(shared_data: Path) -> list[str]:
    """The 15 images of l-cysteine sweep 02."""
    return _lcyst(shared_data, 2)


@pytest.fixture(scope="session")
def load_expt():
    """Function loading an ExperimentList JSON file, skipping when it is absent."""

    def load(path: Path) -> dict:
        if not path.is_file():
            pytest.skip(f"reference {path} not found")
        return json.loads(path.read_text())

    return load
