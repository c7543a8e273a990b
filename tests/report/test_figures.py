"""The drawing layer's own pieces: block reduction, panel mosaics, grey levels, and what the report costs."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest

from findspots.report import FIGURE_NAMES, build_figures, write_report
from findspots.report.detector import Mosaic
from findspots.report.figures import block_reduce, grey_levels, shaded_greys

from .conftest import DATA


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
@pytest.mark.parametrize("shape, factor", [((300, 270), 3), ((257, 131), 4), ((10, 7), 3), ((5, 5), 1)])
def test_block_reduce_equals_a_direct_computation(shape, factor, dtype):
    rng = np.random.default_rng(1)
    image = rng.integers(-2, 100, shape).astype(dtype)
    valid = rng.random(shape) > 0.3
    valid[:factor, :factor] = False  # a block with no valid pixel
    blocks, frac = block_reduce(image, valid, factor)
    h, w = -(-shape[0] // factor), -(-shape[1] // factor)
    assert blocks.shape == frac.shape == (h, w)
    for i in range(h):
        for j in range(w):
            cut = np.s_[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            ok = valid[cut]
            expected = image[cut][ok].max() if ok.any() else np.nan
            assert np.array_equal(blocks[i, j], expected, equal_nan=True)
            assert frac[i, j] == pytest.approx(ok.mean())


def test_mosaic_reads_like_the_composed_frame():
    rng = np.random.default_rng(2)
    panels = [rng.integers(0, 50, (19, 23)).astype(np.int32) for _ in range(3)]
    offsets = [(0, 0), (0, 21), (5, 42)]
    frame = np.zeros((61, 28), np.int32)
    for p, (ox, oy) in zip(panels, offsets, strict=True):
        frame[oy : oy + 19, ox : ox + 23] = p
    mosaic = Mosaic(panels, offsets)
    assert mosaic.shape == frame.shape and mosaic.dtype == frame.dtype
    for key in (np.s_[0:61], np.s_[15:25], np.s_[40:70], np.s_[10:30, 3:9]):
        assert np.array_equal(mosaic[key], frame[key])
    valid = Mosaic([p > 5 for p in panels], offsets)
    for got, expected in zip(block_reduce(mosaic, valid, 4), block_reduce(frame, frame > 5, 4), strict=True):
        assert np.array_equal(got, expected, equal_nan=True)


def test_grey_levels_index_the_shaded_colour_map():
    values = np.array([[0.0, 0.5, 1.0, 2.0], [-1.0, np.nan, 0.25, np.nan]])
    shaded = np.array([[False, False, True, False], [False, False, False, True]])
    levels = grey_levels(values, 0.0, 1.0, shaded)
    # linear from vmin to vmax, clipped; NaN white (256); shaded ones 257 further on
    assert levels.tolist() == [[0, 128, 255 + 257, 255], [0, 256, 64, 256 + 257]]
    colours = shaded_greys()(levels, bytes=True)[..., :3].astype(int)
    assert colours[1, 1].tolist() == [255, 255, 255]  # no valid pixel: white
    assert colours[0, 0].tolist() == [255, 255, 255] and colours[0, 3].sum() < 10  # Greys: white to black
    # the mask's orange over black and over white (the test of the detector view looks for the latter)
    assert np.abs(colours[1, 3] - (245, 202, 115)).max() <= 2
    assert colours[0, 2][0] > colours[0, 2][1] > colours[0, 2][2]


def test_the_collector_is_back_on_after_the_figures(lcyst_data):
    assert gc.isenabled()
    build_figures(lcyst_data)
    assert gc.isenabled()


def test_an_encoding_failure_is_reported_per_figure(lcyst_data, tmp_path, monkeypatch):
    import findspots.report.figures as F

    def broken(image):
        raise OSError("disk full")

    monkeypatch.setattr(F, "encode_png", broken)
    figures = build_figures(lcyst_data)
    assert not figures.png and set(figures.errors) == set(FIGURE_NAMES)
    text = write_report(lcyst_data, tmp_path / "r.html", figures).read_text()
    assert text.count("figure not available: OSError: disk full") == 4


def _cli_modules(tmp_path, *options: str) -> set[str]:
    """The top-level modules loaded by a command-line run on one bundled image (in a fresh interpreter)."""
    image = DATA / "l_cysteine" / "l-cyst_01_00001.cbf.bz2"
    code = f"""
import sys
from findspots.app.cli import run
assert run([{str(image)!r}, "nproc=1", "output.reflections={tmp_path / "s.refl"}",
            "output.log={tmp_path / "l"}", "output.debug_log={tmp_path / "d"}", *{list(options)!r}]) == 0
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_no_report_no_matplotlib(tmp_path):
    """Without a report or plots the run never imports matplotlib (its import alone costs 0.25 s)."""
    assert "matplotlib" not in _cli_modules(tmp_path, "output.report=None")
    assert "matplotlib" in _cli_modules(tmp_path, f"output.report={tmp_path / 'r.html'}")


def _fork_counter(monkeypatch) -> list[int]:
    """Make the report see two CPUs and count its forks."""
    import os

    forks, fork = [], os.fork
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or fork())
    return forks


def test_two_processes_draw_the_same_bytes(lcyst_data, lcyst_figures, monkeypatch):
    """nproc > 1: half of the figures come from a forked process, byte for byte as drawn in one."""
    forks = _fork_counter(monkeypatch)
    one = build_figures(lcyst_data, nproc=1)
    assert not forks and one.png == lcyst_figures.png
    for nproc in (2, "Auto"):
        two = build_figures(lcyst_data, nproc=nproc)
        assert not two.errors and list(two.png) == list(FIGURE_NAMES) and two.png == lcyst_figures.png
    assert len(forks) == 2


def test_the_parent_draws_what_a_dead_child_did_not(lcyst_data, lcyst_figures, monkeypatch):
    import os

    import findspots.report as R

    parent, render = os.getpid(), R._render

    def dying(data, analysis, names):
        if os.getpid() != parent:
            os._exit(3)  # as if killed: nothing sent back
        return render(data, analysis, names)

    forks = _fork_counter(monkeypatch)
    monkeypatch.setattr(R, "_render", dying)
    figures = build_figures(lcyst_data, nproc=2)
    assert len(forks) == 1 and not figures.errors and figures.png == lcyst_figures.png
