"""Every shipped parameter file parses and sets what its comment says."""

from pathlib import Path

import pytest

from findspots.app.parameters import parse_arguments

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.phil"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_config_parses(config):
    args = parse_arguments([str(config), "image.cbf"])
    assert args.modified  # it changes something
    assert args.data_args == ["image.cbf"]


def test_values():
    by_name = {c.name: parse_arguments([str(c)]).params for c in CONFIGS}
    assert by_name["dials-current.phil"].spotfinder.threshold.algorithm == "dispersion_extended"
    assert by_name["dials-current.phil"].spotfinder.filter.max_spot_size == 1000
    assert by_name["cluster-sge.phil"].spotfinder.mp.method == "sge"
    assert by_name["cluster-slurm.phil"].spotfinder.mp.njobs == 8
    assert by_name["stills-grid.phil"].spotfinder.filter.max_strong_pixel_fraction is None
    assert by_name["pilatus-rotation.phil"].spotfinder.filter.ice_rings.filter is True
