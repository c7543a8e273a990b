"""The run report: one self-contained HTML page (``output.report``) and PNG figures (``output.plots``).

Typical use, after spot finding::

    from findspots.report import ReportData, build_figures, image_counts, write_plots, write_report

    data = ReportData(table=table, sequences=sequences, images=image_counts(rows.images), ...)
    figures = build_figures(data, nproc)   # render once (in two processes if nproc > 1), use for both
    write_report(data, "findspots.html", figures)
    write_plots(data, "plots", figures)    # per_image.png, resolution.png, detector.png, spot_histograms.png
                                           # and grid.png for a grid scan (ReportData.grid)

matplotlib is imported only here (Agg, through ``matplotlib.figure.Figure``), so importing findspots
does not pay for it.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack

from findspots.geometry.ice_rings import ice_ring_d_spacings
from findspots.report.data import (
    ICE_RING_WIDTH,
    RESOLUTION_ESTIMATES,
    Analysis,
    ReportData,
    analyse,
    grid_cells,
    image_counts,
)

__all__ = [
    "FIGURE_NAMES",
    "GRID_FIGURE",
    "Figures",
    "ReportData",
    "analyse",
    "build_figures",
    "grid_inputs",
    "image_counts",
    "write_plots",
    "write_report",
]

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

FIGURE_NAMES = ("per_image", "resolution", "detector", "spot_histograms")
GRID_FIGURE = "grid"  # the heat maps of a grid scan: only with ReportData.grid
# The detector view first: its PNG takes longest to compress, done while the others are drawn.
RENDER_ORDER = ("detector", "per_image", GRID_FIGURE, "resolution", "spot_histograms")
# Drawn by the second process when there are two: on a Pilatus 6M run about half of the drawing time, the
# detector view (reading the image again, its block reduction and the largest PNG) most of it.
CHILD_FIGURES = ("detector", "resolution")
ICE_RINGS_D_MIN = 1.4  # rings drawn from 3.90 A down to here; further out they are weak and crowded


@dataclass
class Figures:
    """Rendered figures: PNG bytes by name (see FIGURE_NAMES), the analysis and the rendering time."""

    png: dict[str, bytes]  # (and GRID_FIGURE for a grid scan)
    analysis: Analysis
    seconds: float
    errors: dict[str, str] = field(default_factory=dict)  # figure name -> why it could not be drawn


def build_figures(data: ReportData, nproc: int | str | None = 1) -> Figures:
    """Analyse the run and render every figure to PNG.

    ``nproc``: ``mp.nproc`` of the run (Auto or None: the CPUs this process may use). Above 1, and with
    more than one CPU, a forked process draws CHILD_FIGURES while this one draws the rest.
    A figure that fails (e.g. the detector view's image cannot be read again) is left out and its
    error recorded, so the rest of the report is still written."""
    import_module("findspots.report.figures")  # matplotlib: imported once, before any fork
    started = time.perf_counter()
    analysis = analyse(data)
    names = [n for n in RENDER_ORDER if n in _names(data)]
    out = Figures(png={}, analysis=analysis, seconds=0.0)
    with _collector_paused():
        if _processes(nproc) > 1:
            forked = [n for n in names if n in CHILD_FIGURES]
            collect = _render_forked(data, analysis, forked)
            try:
                png, errors = _render(data, analysis, [n for n in names if n not in forked])
            finally:  # the child is waited for even when drawing here is interrupted
                theirs = collect()
            drawn, failed = theirs or _render(data, analysis, forked)  # a dead child's figures drawn here
            png.update(drawn)
            errors.update(failed)
        else:
            png, errors = _render(data, analysis, names)
    out.png = {n: png[n] for n in _names(data) if n in png}
    out.errors = {n: errors[n] for n in names if n in errors}
    out.seconds = time.perf_counter() - started
    return out


def _processes(nproc: int | str | None) -> int:
    """Processes to draw in: at most two (the figures split in two about even halves), one CPU each."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wanted = cpus if nproc in (None, "Auto") else int(nproc)
    return 2 if min(wanted, cpus) > 1 and hasattr(os, "fork") else 1


def _render(data: ReportData, analysis: Analysis, names: list[str]) -> tuple[dict, dict]:
    """PNG bytes of the named figures that have something to show, and why the others failed (both by
    name)."""
    from findspots.report import figures as F

    builders = _builders(data, analysis)
    png, errors, pending = {}, {}, {}
    # Pillow compresses a drawn figure without the GIL while matplotlib draws the next one.
    with ThreadPoolExecutor(max_workers=1) as encoder:
        for name in names:
            try:
                fig = builders[name]()
                if fig is not None:
                    pending[name] = encoder.submit(F.encode_png, F.render(fig))
            except Exception as err:  # a broken figure must not lose the run's report
                errors[name] = f"{type(err).__name__}: {err}"
        for name, future in pending.items():
            try:
                png[name] = future.result()
            except Exception as err:
                errors[name] = f"{type(err).__name__}: {err}"
    return png, errors


def _render_forked(data: ReportData, analysis: Analysis, names: list[str]) -> Callable[[], tuple | None]:
    """Start drawing ``names`` (as :func:`_render`) in a forked process; returns the function that waits
    for its results (None: the child died without them).

    Forked, the child has the run's data without copying or pickling it; only PNG bytes come back."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, send, and leave without the parent's exit handlers or buffers
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(msgpack.packb(_render(data, analysis, names)))  # str -> bytes / str maps
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)

    def collect() -> tuple | None:
        try:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
        finally:
            _, status = os.waitpid(pid, 0)
        return tuple(msgpack.unpackb(payload)) if status == 0 and payload else None

    return collect


def _builders(data: ReportData, a: Analysis) -> dict[str, Callable[[], Figure | None]]:
    """Per figure name, a function that builds it (None: nothing to show)."""
    import numpy as np

    from findspots.report import figures as F
    from findspots.report.detector import detector_view

    def detector():
        view = detector_view(data, a)
        return None if view is None else F.detector_figure(**view)

    def grid():
        inputs = grid_inputs(data, a)
        return None if inputs is None else F.grid_figure(**inputs)

    return {
        "per_image": lambda: F.per_image_figure(**_per_image_inputs(data, a)),
        GRID_FIGURE: grid,
        "resolution": lambda: F.resolution_figure(
            a.d,
            d_detector=a.d_detector,
            ice_rings=ice_ring_d_spacings(ICE_RINGS_D_MIN),
            ice_width=ICE_RING_WIDTH,
            d95=a.d95,
        ),
        "detector": detector,
        "spot_histograms": lambda: F.histograms_figure(
            a.intensity, a.n_signal, a.n_images, hot=np.asarray(a.hot, dtype=np.int64)
        ),
    }


def _per_image_inputs(data: ReportData, a: Analysis) -> dict:
    """Keyword arguments of :func:`findspots.report.figures.per_image_figure`."""
    import numpy as np

    rows = a.rows
    if len(data.sequences) > 1:
        x = np.arange(len(rows), dtype=np.float64)
        breaks, last = [], None
        for i, r in enumerate(rows):
            if r.sequence != last:
                breaks.append((float(i), f"seq {r.sequence}"))
                last = r.sequence
        xlabel = "image number (sequences one after the other)"
        tick_labels = [r.image for r in rows]
    else:
        x = np.array([r.image for r in rows], dtype=np.float64)
        breaks, xlabel, tick_labels = [], "image number", None
    limits = [s.strong_limit for s in a.sequences if s.strong_limit is not None]
    analysed = data.per_image is not None
    return {
        "x": x,
        "spots": np.array([r.spots for r in rows]),
        "strong": np.array([r.strong for r in rows]),
        "over_limit": np.array([r.over_limit for r in rows], dtype=bool),
        "no_ice": _per_row(rows, lambda r: r.spots_no_ice) if analysed else None,
        "estimates": {n: _per_row(rows, lambda r, n=n: r.estimates.get(n)) for n in RESOLUTION_ESTIMATES}
        if analysed
        else None,
        "strong_limit": min(limits) if limits else None,
        "d_overall": a.d95,
        "breaks": breaks,
        "xlabel": xlabel,
        "tick_labels": tick_labels,
    }


def _per_row(rows, value: Callable) -> np.ndarray:
    """``value(row)`` of every image row as floats, NaN where it is None."""
    import numpy as np

    return np.array([np.nan if value(r) is None else value(r) for r in rows], dtype=np.float64)


def _names(data: ReportData) -> tuple[str, ...]:
    """The figures this report has."""
    return (*FIGURE_NAMES, GRID_FIGURE) if data.grid else FIGURE_NAMES


def grid_inputs(data: ReportData, a: Analysis) -> dict | None:
    """Keyword arguments of :func:`findspots.report.figures.grid_figure` (None: no grid, or no analysis).

    Processed image k (in :attr:`Analysis.rows` order) fills cell ``grid_cells(...) == k``; the best cell
    is the image with most spots off the ice rings (the first on ties)."""
    import numpy as np

    if not data.grid or data.per_image is None:
        return None
    nx, ny = data.grid
    cells = grid_cells(len(a.rows), nx, ny, data.grid_order)
    no_ice = _per_row(a.rows, lambda r: r.spots_no_ice)
    best = int(np.argmax(no_ice))
    row, column = (int(v[0]) for v in np.nonzero(cells == best))
    several = len(a.sequences) > 1
    image = f"{a.rows[best].sequence}:{a.rows[best].image}" if several else str(a.rows[best].image)
    return {
        "no_ice": no_ice[cells],
        "d_min": _per_row(a.rows, lambda r: r.estimates.get("estimated_d_min"))[cells],
        "best": (row, column),
        "best_label": f"image {image} (row {row}, column {column}), {int(no_ice[best])} spots off ice rings",
    }


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the duration.

    matplotlib allocates some 10^5 objects per figure, which sets off full collections over the run's
    whole heap (0.05-0.1 s each, a quarter of the report's time) that free nothing: the figures are
    still in use. What they leave is collected once the collector is back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_report(data: ReportData, path: str | Path, figures: Figures | None = None) -> Path:
    """Write the self-contained HTML report to ``path``; returns the path."""
    from findspots.report.html import page

    figures = figures or build_figures(data)
    path = Path(path)
    text = page(data, figures.analysis, figures.png, figures.seconds, figures.errors)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_plots(data: ReportData, directory: str | Path, figures: Figures | None = None) -> list[Path]:
    """Write the figures as ``<directory>/<name>.png`` (directory created when missing); returns the paths."""
    figures = figures or build_figures(data)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in _names(data):
        if name in figures.png:
            p = directory / f"{name}.png"
            p.write_bytes(figures.png[name])
            paths.append(p)
    return paths
