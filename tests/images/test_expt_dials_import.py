"""Our experiment file for the two bundled L-cysteine sweeps against dials.import's (3.12), key by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from findspots.images.expt import experiments_dict
from findspots.images.inputs import load_inputs

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "data" / "lcyst_both_dials312_import.expt"

# Bit differences left, all within 1e-12 relative: CBFlib derives the fast axis from pixel coordinates
# (fast_axis, origin[1]) and adds the time of day to a Julian day number (5 of the 30 epochs, 4e-5 s).
NOT_BIT_EQUAL = {"fast_axis", "origin", "epochs"}
ONLY_CURRENT_DXTBX = {
    "__id__",
    "probe",
    "sample_to_source_distance",
}  # beam keys 3.12 neither writes nor needs


def _compare(ours, theirs, path: str, loose: list[str]) -> None:
    if isinstance(theirs, dict):
        extra = set(ours) - set(theirs)
        assert extra <= ONLY_CURRENT_DXTBX, f"{path}: {extra}"
        for key in theirs:
            if key not in ("identifier", "template"):
                _compare(ours[key], theirs[key], f"{path}/{key}", loose)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), path
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _compare(a, b, f"{path}[{k}]", loose)
    elif ours != theirs:
        assert any(f"/{name}" in path for name in NOT_BIT_EQUAL), f"{path}: {ours} != {theirs}"
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12), path
        loose.append(path)


def test_models_equal_dials_import_key_by_key() -> None:
    sequences = load_inputs(sorted(str(p) for p in (REPO / "data" / "l_cysteine").glob("*.cbf.bz2")))
    ours = experiments_dict(sequences, legacy_trusted_range=True)  # 3.12 writes (-1, 388705)
    theirs = json.loads(REFERENCE.read_text())
    loose: list[str] = []
    _compare(ours, theirs, "", loose)
    assert [e["beam"] for e in ours["experiment"]] == [0, 0] and len(ours["goniometer"]) == 2
    assert len(loose) == 3 + 5  # fast_axis[1], fast_axis[2], origin[1]; 5 epochs


def test_current_dxtbx_trusted_range_and_read_back() -> None:
    sequences = load_inputs(sorted(str(p) for p in (REPO / "data" / "l_cysteine").glob("*.cbf.bz2")))
    panel = experiments_dict(sequences)["detector"][0]["panels"][0]
    # current dxtbx FormatCBFFull trusts 0..388704 inclusive (undefined value -1 + 1, overload 388705 - 1);
    # written as (-0.5, 388704.5) so that DIALS 3.12, which reads exclusive ends, trusts the same counts
    assert panel["trusted_range"] == [-0.5, 388704.5]
    assert (
        panel["mu"] == 1.4153536370336604
        and panel["px_mm_strategy"]["type"] == "ParallaxCorrectedPxMmStrategy"
    )
