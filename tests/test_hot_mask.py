"""The hot mask finds the simulated hot pixels, and findspots reads it back as a lookup mask."""

import numpy as np
import pytest
from test_dials_parity import run_findspots


@pytest.mark.shared
def test_hot_pixels_of_p300k_are_the_simulated_ones(tmp_path, shared_data, monkeypatch):
    import json

    truth = json.loads((shared_data / "p300k_60" / "truth.json").read_text())
    monkeypatch.chdir(tmp_path)
    images = sorted((shared_data / "p300k_60").glob("*.cbf"))
    run_findspots(tmp_path, images, ["write_hot_mask=True", "hot_mask_prefix=hot", "nproc=2", "chunksize=7"])
    mask = np.load(tmp_path / "hot_0.npy")
    assert mask.shape == (619, 487)
    hot_xy = sorted(map(tuple, np.argwhere(~mask)[:, ::-1].tolist()))
    assert hot_xy == sorted((x, y) for x, y, _ in truth["hot_pixels_xy_level"])
