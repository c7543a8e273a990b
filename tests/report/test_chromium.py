"""The report opened in a real browser (headless Chromium): every figure is drawn, at full size.

Skipped when Chromium is not installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install -y chromium)"
)

BORDER = (0xEE, 0xF1, 0xF4)  # the 1 px border the page draws around each figure (html.CSS)


def screenshot(html_path, png_path, profile, height: int = 9000) -> np.ndarray:
    """Render ``html_path`` in headless Chromium (no network, no GPU) and return the RGB screenshot."""
    from PIL import Image

    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--screenshot={png_path}",
        f"--window-size=1400,{height}",
        html_path.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert png_path.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return np.asarray(Image.open(png_path).convert("RGB"))


def figure_boxes(shot: np.ndarray, min_width: int = 900) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) inside the bordered figures: found from their 1 px border lines."""
    border = np.all(shot == BORDER, axis=2)
    rows = np.flatnonzero(border.sum(axis=1) >= min_width)
    boxes = []
    # a figure is a top border row and the next bottom border row with the same columns
    used = set()
    for i, top in enumerate(rows):
        if top in used:
            continue
        cols = np.flatnonzero(border[top])
        left, right = cols.min(), cols.max()
        for bottom in rows[i + 1 :]:
            if border[bottom, left] and border[bottom, right] and border[top:bottom, left].all():
                boxes.append((int(top) + 1, int(bottom), int(left) + 1, int(right)))
                used.add(bottom)
                break
    return boxes


def test_report_renders_in_chromium(lcyst_report, lcyst_figures, tmp_path):
    from PIL import Image

    shot = screenshot(lcyst_report, tmp_path / "report.png", tmp_path / "profile")
    html = lcyst_report.read_text()
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    pngs = [np.asarray(Image.open(io.BytesIO(base64.b64decode(s))).convert("RGB")) for s in sources]
    boxes = figure_boxes(shot)
    assert len(boxes) == len(pngs) == 4, boxes
    for (top, bottom, left, right), png in zip(boxes, pngs, strict=True):
        region = shot[top:bottom, left:right]
        # drawn at its natural size, pixel for pixel the embedded figure (not a broken-image icon)
        assert region.shape == png.shape
        assert np.abs(region.astype(int) - png.astype(int)).mean() < 2
        # and not blank: plots, text and the detector image give many colours
        assert len(np.unique(region.reshape(-1, 3), axis=0)) > 200
    # the page around the figures rendered too: header bar and the summary cards' text
    assert (np.abs(shot[5, 5].astype(int) - (0x17, 0x32, 0x4D)).max()) <= 2


def test_grid_heat_map_renders_in_chromium(lcyst_grid_report, lcyst_grid_data, tmp_path):
    """The heat map of a 5 x 3 grid as the browser shows it: 15 cells, each in the colour of DIALS's
    n_spots_no_ice of its image, and the best image's cell (image 14: row 2, column 3) outlined."""
    import json

    from matplotlib import colormaps

    from findspots.report import analyse, grid_inputs
    from findspots.report.figures import GRID_BEST, grid_figure, render

    from .conftest import PER_IMAGE

    shot = screenshot(lcyst_grid_report, tmp_path / "grid.png", tmp_path / "profile")
    boxes = figure_boxes(shot)
    assert len(boxes) == 5, boxes
    top, bottom, left, right = boxes[1]  # after the per-image figure
    region = shot[top:bottom, left:right].astype(int)
    # where the left map's axes lie in the figure (the same layout, drawn again here)
    fig = grid_figure(**grid_inputs(lcyst_grid_data, analyse(lcyst_grid_data)))
    assert region.shape[:2] == render(fig).size[::-1]
    x0, y0, x1, y1 = fig.axes[0].get_window_extent().extents
    height = region.shape[0]
    counts = np.array(json.loads(PER_IMAGE.read_text())["n_spots_no_ice"]).reshape(3, 5)  # DIALS 3.12's
    reds = colormaps["Reds"]
    blue = np.array([int(GRID_BEST[i : i + 2], 16) for i in (1, 3, 5)])
    for row in range(3):  # row 0 at the bottom
        y = height - (y0 + (row + 0.5) * (y1 - y0) / 3)
        line = region[round(y), round(x0) + 3 : round(x1) - 3]
        # 5 cells along the row, parted by white edges (or the best cell's outline)
        edges = np.all(line >= 250, axis=1) | (np.abs(line - blue).max(axis=1) <= 60)
        assert len([r for r in np.split(edges, np.flatnonzero(np.diff(edges)) + 1) if not r[0]]) == 5
        for column in range(5):
            x = x0 + (column + 0.5) * (x1 - x0) / 5
            expected = np.array(reds(counts[row, column] / 7, bytes=True)[:3])
            assert np.abs(region[round(y), round(x)] - expected).max() <= 3, (row, column)
    # the outline in GRID_BEST runs around cell (2, 3) and nowhere else in the map
    inside = region[round(height - y1) : round(height - y0), round(x0) : round(x1)]
    ys, xs = np.nonzero(np.abs(inside - blue).max(axis=2) <= 10)
    cell_w, cell_h = (x1 - x0) / 5, (y1 - y0) / 3
    assert len(xs) > 4 * min(cell_w, cell_h)
    assert xs.min() >= 3 * cell_w - 3 and xs.max() <= 4 * cell_w + 3
    assert ys.min() >= -1 and ys.max() <= cell_h + 3  # the top row in the picture is row 2
