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
