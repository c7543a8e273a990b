"""The run report: one self-contained HTML page (``output.report``) and PNG figures (``output.plots``).

Typical use, after spot finding::

    from findspots.report import ReportData, build_figures, image_counts, write_plots, write_report

    data = ReportData(table=table, sequences=sequences, images=image_counts(rows.images), ...)
    figures = build_figures(data)          # render once, use for both outputs
    write_report(data, "findspots.html", figures)
    write_plots(data, "plots", figures)    # per_image.png, resolution.png, detector.png, spot_histograms.png

matplotlib is imported only here (Agg, through ``matplotlib.figure.Figure``), so importing findspots
does not pay for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from findspots.report.data import (
    ICE_RING_WIDTH,
    MIN_SPOTS_FOR_D,
    Analysis,
    ReportData,
    analyse,
    ice_ring_d_spacings,
    image_counts,
)

__all__ = [
    "FIGURE_NAMES",
    "Figures",
    "ReportData",
    "analyse",
    "build_figures",
    "image_counts",
    "write_plots",
    "write_report",
]

FIGURE_NAMES = ("per_image", "resolution", "detector", "spot_histograms")
ICE_RINGS_D_MIN = 1.4  # rings drawn from 3.90 A down to here; further out they are weak and crowded


@dataclass
class Figures:
    """Rendered figures: PNG bytes by name (see FIGURE_NAMES), the analysis and the rendering time."""

    png: dict[str, bytes]
    analysis: Analysis
    seconds: float
    errors: dict[str, str] = field(default_factory=dict)  # figure name -> why it could not be drawn


def build_figures(data: ReportData) -> Figures:
    """Analyse the run and render every figure to PNG.

    A figure that fails (e.g. the detector view's image cannot be read again) is left out and its
    error recorded, so the rest of the report is still written."""
    import numpy as np

    from findspots.report import figures as F
    from findspots.report.detector import detector_view

    started = time.perf_counter()
    a = analyse(data)
    rows = a.rows
    several = len(data.sequences) > 1
    if several:
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

    def per_image():
        return F.per_image_figure(
            x,
            np.array([r.spots for r in rows]),
            np.array([r.strong for r in rows]),
            np.array([np.nan if r.d95 is None else r.d95 for r in rows]),
            np.array([r.spots >= MIN_SPOTS_FOR_D for r in rows], dtype=bool),
            np.array([r.over_limit for r in rows], dtype=bool),
            strong_limit=min(limits) if limits else None,
            d_overall=a.d95,
            breaks=breaks,
            xlabel=xlabel,
            tick_labels=tick_labels,
        )

    def resolution():
        return F.resolution_figure(
            a.d,
            d_detector=a.d_detector,
            ice_rings=ice_ring_d_spacings(ICE_RINGS_D_MIN),
            ice_width=ICE_RING_WIDTH,
            d95=a.d95,
        )

    def detector():
        view = detector_view(data, a)
        return None if view is None else F.detector_figure(**view)

    def histograms():
        return F.histograms_figure(a.intensity, a.n_signal, a.n_images, hot=np.asarray(a.hot, dtype=np.int64))

    out = Figures(png={}, analysis=a, seconds=0.0)
    for name, build in zip(FIGURE_NAMES, (per_image, resolution, detector, histograms), strict=True):
        try:
            fig = build()
        except Exception as err:  # a broken figure must not lose the run's report
            out.errors[name] = f"{type(err).__name__}: {err}"
            continue
        if fig is not None:
            out.png[name] = F.to_png(fig)
    out.seconds = time.perf_counter() - started
    return out


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
    for name in FIGURE_NAMES:
        if name in figures.png:
            p = directory / f"{name}.png"
            p.write_bytes(figures.png[name])
            paths.append(p)
    return paths
