"""The report's figures: one function per figure, numpy arrays in, a matplotlib Figure out.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display) and drawn
on the Agg canvas: :func:`render` draws a figure, :func:`encode_png` compresses the drawing (the two can
run in different threads), :func:`to_png` does both.

What keeps a report cheap: fixed margins instead of a layout engine, few ticks, no mathtext, one
collection instead of a patch per histogram bin, images passed to imshow as small integer levels of a
colour map, and all zoom insets in one axes without ticks.

The module is long because it holds every figure of the report, one function (or a few named parts)
each; they share the colours, margins and axis helpers defined first, which a split would scatter.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, NoNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from findspots.report.data import RESOLUTION_ESTIMATES

# Colour-blind friendly palette (Okabe-Ito), one meaning each, the same in every figure.
BLUE = "#0072B2"  # spots
ORANGE = "#E69F00"  # strong pixels
GREEN = "#009E73"  # resolution
RED = "#D55E00"  # problems: images without spots, hot pixels
PURPLE = "#CC79A7"  # strong-pixel limit
SKY = "#56B4E9"  # ice rings
GREY = "#666666"
MASK_RGBA = (0.93, 0.62, 0.0, 0.55)  # masked pixels on the detector view

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    # A fixed title height: the automatic one measures every tick label of the axes again.
    "axes.titley": 1.0,
    # Read when drawing (see render): unhinted glyphs draw a third faster and look the same at 100 dpi.
    "text.hinting": "no_hinting",
}

BAND_ROWS = 128  # rows of the detector image reduced at a time
MAX_SCATTER = 20_000  # spots drawn in the size-intensity scatter
# How each per-image resolution estimate is drawn: label, marker, filled.
ESTIMATE_STYLE = {
    "estimated_d_min": ("estimated_d_min", "o", True),
    "d_min_distl_method_1": ("DISTL method 1", "s", False),
    "d_min_distl_method_2": ("DISTL method 2", "^", False),
}
NICE_D = (50, 20, 10, 8, 6, 5, 4, 3.5, 3, 2.5, 2.2, 2, 1.8, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7)


def _figure(width: float, height: float) -> Figure:
    # Fixed margins rather than a layout engine: constrained layout doubles the rendering time.
    return Figure(figsize=(width, height), dpi=100, facecolor="white")


def _add_axes(fig: Figure, left: float, bottom: float, width: float, height: float, **kwargs):
    """Axes at a position given in inches from the figure's lower left corner."""
    fw, fh = fig.get_size_inches()
    return fig.add_axes((left / fw, bottom / fh, width / fw, height / fh), **kwargs)


def styled(function):
    """Run a figure builder with the report's rcParams (fonts, grid, spines)."""

    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    wrapper.__wrapped__ = function
    return wrapper


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes: drawn by Agg, encoded by Pillow."""
    return encode_png(render(fig))


def render(fig: Figure) -> Image.Image:
    """The figure drawn by Agg (with the report's rcParams), as an RGBA image on the canvas's buffer."""
    canvas = FigureCanvasAgg(fig)
    with matplotlib.rc_context(STYLE):
        for ax in fig.axes:
            _drop_unseen_ticks(ax.xaxis)
            _drop_unseen_ticks(ax.yaxis)
        canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)


def _drop_unseen_ticks(axis) -> None:
    """Fix the axis's major ticks to the locations its locator gives inside the view.

    matplotlib makes a tick (five artists, about a millisecond) for every location of the locator, which
    goes a step past each end of the view, and then draws only those inside: a quarter of the ticks."""
    locator = axis.get_major_locator()
    if isinstance(locator, FixedLocator | NullLocator):
        return
    locs = np.asarray(locator(), dtype=np.float64)
    transform = axis.get_transform()
    lo, hi = sorted(transform.transform(np.asarray(axis.get_view_interval(), dtype=np.float64)))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = transform.transform(locs)
    slack = 1e-10 * (hi - lo)  # as matplotlib decides which ticks to draw
    inside = locs[(t >= lo - slack) & (t <= hi + slack)]
    # A single tick is formatted from the view's ends instead of its neighbours: leave such axes alone.
    if 2 <= inside.size < locs.size:
        axis.set_major_locator(FixedLocator(inside))


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of a :func:`render` output."""
    info = PngInfo()
    info.add_text("Software", "findspots")
    buf = io.BytesIO()
    # The figures are opaque, so RGB loses nothing and leaves a quarter less to compress; zlib level 1
    # encodes the detector view three times faster than the default level for about 10 % more bytes.
    image.convert("RGB").save(buf, format="png", compress_level=1, pnginfo=info)
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _d_ticks(s_max: float, max_ticks: int = 9) -> list[float]:
    """Nice d values (Angstrom, descending) in (0, s_max] of 1/d^2, at least s_max / max_ticks apart."""
    kept: list[float] = []
    for d in reversed(NICE_D):  # from high resolution down, so the far end is always labelled
        s = 1 / d**2
        if s <= s_max * 1.0001 and (not kept or 1 / kept[-1] ** 2 - s >= s_max / max_ticks):
            kept.append(d)
    return kept[::-1]


# --------------------------------------------------------------------------------------- per-image plot


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _shade(ax, x: np.ndarray, mask: np.ndarray, half: float, color: str, alpha: float) -> None:
    """Shade the x ranges of the images where ``mask`` holds (one patch per run of images)."""
    spans = [(x[a] - half, x[b - 1] - x[a] + 2 * half) for a, b in _runs(mask)]
    if spans:
        ax.broken_barh(
            spans, (0, 1), transform=ax.get_xaxis_transform(), color=color, alpha=alpha, lw=0, zorder=0
        )


def _lines(ax, x: np.ndarray, y: np.ndarray, breaks, **kwargs) -> None:
    """Plot y(x) as one line per sequence (no line joins the last image of one to the next)."""
    starts = sorted({0, *(int(np.searchsorted(x, bx)) for bx, _ in breaks)})
    for a, b in zip(starts, [*starts[1:], len(x)], strict=True):
        ax.plot(x[a:b], y[a:b], **kwargs)
        kwargs.pop("label", None)


@styled
def per_image_figure(
    x: np.ndarray,
    spots: np.ndarray,
    strong: np.ndarray,
    over_limit: np.ndarray,
    *,
    no_ice: np.ndarray | None = None,
    estimates: dict[str, np.ndarray] | None = None,
    strong_limit: float | None = None,
    d_overall: float | None = None,
    breaks: Sequence[tuple[float, str]] = (),
    xlabel: str = "image number",
    tick_labels: Sequence[int] | None = None,
) -> Figure:
    """Spots, strong pixels and the resolution estimates per image, stacked on one x axis.

    ``x``: the image positions; ``no_ice``: spots off the ice rings per image (None: not shown);
    ``estimates``: per name of RESOLUTION_ESTIMATES the per-image estimate (NaN: none);
    ``over_limit``: more strong pixels than allowed; ``breaks``: (x, label) where a new sequence starts;
    ``d_overall``: the estimate from all spots, drawn as a horizontal line; ``tick_labels``: the label
    of each x position 0, 1, ... (image numbers when x is a running index)."""
    x = np.asarray(x, dtype=np.float64)
    spots = np.asarray(spots)
    strong = np.asarray(strong)
    over_limit = np.asarray(over_limit, dtype=bool)
    fig = _figure(10, 7.0)
    left, width = 0.85, 6.95
    ax1 = _add_axes(fig, left, 4.75, width, 2.1)
    ax2 = _add_axes(fig, left, 2.6, width, 1.95, sharex=ax1)
    ax3 = _add_axes(fig, left, 0.55, width, 1.85, sharex=ax1)
    if not len(x):
        _empty(ax1, "no images processed")
        return fig
    marker = "o" if len(x) <= 120 else None
    half = 0.5 * (float(np.min(np.diff(x))) if len(x) > 1 else 1.0)
    _mark_images((ax1, ax2, ax3), x, spots == 0, over_limit, half, breaks)
    _spots_panel(ax1, x, spots, no_ice, half, breaks, marker)
    _strong_panel(ax2, x, strong, over_limit, strong_limit, breaks, marker)
    for ax in (ax1, ax2):
        ax.yaxis.set_major_formatter(_thousands())
    _resolution_panel(ax3, x, estimates or {}, d_overall)
    ax3.set_xlabel(xlabel)
    for ax in (ax1, ax2):
        ax.tick_params(labelbottom=False)
    for ax in (ax1, ax2, ax3):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=1.6)
    _image_axis(ax3, x, half, breaks, tick_labels)
    return fig


def _mark_images(axes, x: np.ndarray, none: np.ndarray, over_limit: np.ndarray, half: float, breaks) -> None:
    """On every panel: shade images without spots and images over the limit, and mark sequence starts."""
    for ax in axes:
        _shade(ax, x, none, half, RED, 0.12)
        _shade(ax, x, over_limit, half, PURPLE, 0.22)
        for bx, _ in breaks[1:]:
            ax.axvline(bx - half, color=GREY, lw=0.9, ls=":")


def _spots_panel(
    ax, x: np.ndarray, spots: np.ndarray, no_ice: np.ndarray | None, half: float, breaks, marker: str | None
) -> None:
    """Top panel: spots per image (and those off the ice rings), images without spots crossed, each
    sequence's label at its start."""
    none = spots == 0
    _lines(ax, x, spots, breaks, color=BLUE, lw=1.4, marker=marker, ms=3.5, label="spots (by centroid)")
    if no_ice is not None:
        _lines(
            ax,
            x,
            no_ice,
            breaks,
            color=BLUE,
            lw=1,
            ls="--",
            marker=marker,
            ms=3.5,
            mfc="white",
            label="spots off ice rings\n(n_spots_no_ice)",
        )
    if none.any():
        ax.plot(
            x[none],
            spots[none],
            ls="none",
            marker="x",
            color=RED,
            ms=7,
            mew=1.8,
            clip_on=False,
            zorder=5,
            label=f"no spots ({int(none.sum())} image{'s' if none.sum() > 1 else ''})",
        )
    ax.set_ylabel("spots per image")
    ax.set_ylim(bottom=0, top=max(1, spots.max()) * 1.12)
    for bx, label in breaks if len(breaks) > 1 else ():
        ax.annotate(
            label,
            (bx - half, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            va="top",
            fontsize=7.5,
            color=GREY,
        )


def _strong_panel(
    ax, x: np.ndarray, strong: np.ndarray, over_limit: np.ndarray, strong_limit: float | None, breaks, marker
) -> None:
    """Middle panel: strong pixels per image, images over the limit marked, and the limit itself."""
    _lines(ax, x, strong, breaks, color=ORANGE, lw=1.4, marker=marker, ms=3.5, label="strong pixels")
    if over_limit.any():
        ax.plot(
            x[over_limit],
            strong[over_limit],
            ls="none",
            marker="^",
            color=PURPLE,
            ms=7,
            label="over max_strong_pixel_fraction",
        )
    top = max(1, strong.max()) * 1.12
    if strong_limit is not None:
        if strong_limit <= 2 * top:
            ax.axhline(strong_limit, color=PURPLE, ls="--", lw=1, label=f"limit: {strong_limit:,.0f}")
            top = max(top, strong_limit * 1.08)
        else:
            ax.plot([], [], color=PURPLE, ls="--", lw=1, label=f"limit: {strong_limit:,.0f}\n(far above)")
    ax.set_ylim(bottom=0, top=top)
    ax.set_ylabel("strong pixels")


def _resolution_panel(ax, x: np.ndarray, estimates: dict[str, np.ndarray], d_overall: float | None) -> None:
    """Bottom panel: the per-image resolution estimates (images without one left out) and the overall d95."""
    shown = {n: np.asarray(estimates[n], dtype=np.float64) for n in RESOLUTION_ESTIMATES if n in estimates}
    values = np.concatenate([v[np.isfinite(v)] for v in shown.values()] or [np.zeros(0)])
    if not values.size:
        why = "no image has more than 10 spots off the ice rings" if shown else "no per-image analysis"
        ax.text(
            0.5,
            0.5,
            f"no resolution estimate: {why}",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=GREY,
        )
        ax.set_yticks([])
    else:
        lo, hi = float(values.min()), float(values.max())
        if d_overall is not None and math.isfinite(d_overall):
            ax.axhline(
                d_overall, color=GREY, lw=1, ls="--", alpha=0.8, label=f"d95 of all spots: {d_overall:.2f} Å"
            )
            lo, hi = min(lo, d_overall), max(hi, d_overall)
        for name, d in shown.items():
            label, mark, filled = ESTIMATE_STYLE[name]
            has = np.isfinite(d)
            ax.plot(
                x[has],
                d[has],
                color=GREEN,
                lw=0,
                marker=mark,
                ms=4.5,
                mfc=GREEN if filled else "white",
                label=label,
            )
        pad = max(0.08 * (hi - lo), 0.04 * hi)
        ax.set_ylim(hi + pad, max(lo - pad, 0.0))  # inverted: further out (smaller d) is up
    ax.set_ylabel("d (Å), up = further out")


def _image_axis(ax, x: np.ndarray, half: float, breaks, tick_labels: Sequence[int] | None) -> None:
    """The shared x axis: its ticks, their labels (image numbers) and its range."""
    # Every image up to 15, else about a dozen ticks: each one, on three shared axes, costs milliseconds.
    if len(x) <= 15 and not breaks[1:]:
        ax.set_xticks(x)
    else:
        ax.xaxis.set_major_locator(_integer_ticks(12))
    if tick_labels is not None:
        from matplotlib.ticker import FuncFormatter

        numbers = list(tick_labels)
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda v, _: str(numbers[int(v)]) if v == int(v) and 0 <= v < len(numbers) else "")
        )
    ax.set_xlim(x.min() - half, x.max() + half)


# ------------------------------------------------------------------------------------------- grid scan

GRID_NO_ESTIMATE = "#d9d9d9"  # a cell without a resolution estimate
GRID_BEST = BLUE  # outline of the best cell (no blue in either colour map)
GRID_MAP_SIZE = 3.3  # inches: the longer side of each map


@styled
def grid_figure(no_ice: np.ndarray, d_min: np.ndarray, best: tuple[int, int], best_label: str) -> Figure:
    """Heat maps of a grid scan: spots off the ice rings and estimated_d_min, one cell per image.

    ``no_ice``, ``d_min``: (NY, NX) arrays, row 0 drawn at the bottom as dials.find_spots_client's
    ``grid=`` draws it; NaN in ``d_min``: no estimate (grey). ``best``: the (row, column) outlined in
    both maps; ``best_label`` names it in the title. The counts' colours run from 0 to the largest count."""
    no_ice = np.asarray(no_ice, dtype=np.float64)
    d_min = np.asarray(d_min, dtype=np.float64)
    ny, nx = no_ice.shape
    cell = GRID_MAP_SIZE / max(nx, ny)
    width, height = cell * nx, cell * ny
    fig = _figure(10, height + 1.3)
    fig.suptitle(f"outlined: {best_label}", y=1 - 0.12 / (height + 1.3), va="top", fontsize=9)
    edges = {"edgecolors": "white", "linewidth": 1 if cell >= 0.08 else 0}
    counts = _add_axes(fig, 0.85, 0.55, width, height)
    mesh = counts.pcolormesh(no_ice, cmap="Reds", norm=Normalize(0, max(1.0, float(no_ice.max()))), **edges)
    fig.colorbar(
        mesh, cax=_add_axes(fig, 0.85 + width + 0.12, 0.55, 0.15, height), label="spots off ice rings"
    )
    counts.set_title("n_spots_no_ice")
    resolution = _add_axes(fig, 5.3, 0.55, width, height)
    cmap = matplotlib.colormaps["Greens_r"].with_extremes(bad=GRID_NO_ESTIMATE)
    known = d_min[np.isfinite(d_min)]
    norm = Normalize(float(known.min()), float(known.max())) if known.size else Normalize(0, 1)
    mesh = resolution.pcolormesh(np.ma.masked_invalid(d_min), cmap=cmap, norm=norm, **edges)
    bar = fig.colorbar(
        mesh, cax=_add_axes(fig, 5.3 + width + 0.12, 0.55, 0.15, height), label="d (Å); grey: none"
    )
    if not known.size:
        bar.set_ticks([])
    resolution.set_title("estimated_d_min")
    for ax in (counts, resolution):
        ax.add_patch(Rectangle((best[1], best[0]), 1, 1, fill=False, edgecolor=GRID_BEST, lw=2, zorder=3))
        ax.set_xlim(0, nx)
        ax.set_ylim(0, ny)
        ax.grid(False)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        for set_ticks, n in ((ax.set_xticks, nx), (ax.set_yticks, ny)):
            ticks = np.unique(np.linspace(0, n - 1, min(n, 8)).round().astype(int))
            set_ticks(ticks + 0.5, [str(t) for t in ticks])  # at the cell centres
    return fig


# ----------------------------------------------------------------------------------- spots vs resolution


@styled
def resolution_figure(
    d: np.ndarray,
    *,
    d_detector: float,
    ice_rings: Sequence[float] = (),
    ice_width: float = 0.002,
    d95: float | None = None,
    bins: int | None = None,
) -> Figure:
    """Spot count against resolution on a 1/d^2 axis (equal widths: equal areas), ice rings shaded."""
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    fig = _figure(10, 3.7)
    ax = _add_axes(fig, 0.85, 0.55, 6.95, 2.6)
    ax.set_axisbelow(True)
    s_max = 1.0 / d_detector**2 if math.isfinite(d_detector) and d_detector > 0 else 0.0
    if d.size:
        s_max = max(s_max, float((1 / d**2).max()))
    if s_max <= 0:
        _empty(ax, "no spots")
        return fig
    s = 1.0 / d**2
    n_bins = bins or int(np.clip(2 * math.sqrt(max(d.size, 1)), 20, 120))
    edges = np.linspace(0, s_max, n_bins + 1)
    counts, _ = np.histogram(s, edges)
    ice_rings = np.asarray(ice_rings, dtype=np.float64)
    shown_rings = [r for r in ice_rings if 1 / r**2 <= s_max]
    for ring in shown_rings:
        c = 1 / ring**2
        ax.axvspan(c - ice_width / 2, c + ice_width / 2, color=SKY, alpha=0.55, lw=0, zorder=3)
    ax.stairs(counts, edges, fill=True, color=BLUE, alpha=0.8, label="spots", zorder=1)
    ax.stairs(counts, edges, color=BLUE, lw=1, zorder=1.1)
    if d95 is not None and math.isfinite(d95):
        ax.axvline(1 / d95**2, color=GREEN, ls="--", lw=1.4, label=f"d95 of all spots: {d95:.2f} Å", zorder=2)
    ax.axvline(s_max, color=GREY, lw=1, ls=":", label=f"detector corner: {d_detector:.2f} Å")
    ax.set_xlim(0, s_max * 1.015)
    ax.set_ylim(0, max(1, counts.max()) * 1.15)
    ticks = _d_ticks(s_max, 10)
    ax.set_xticks([1 / t**2 for t in ticks], [f"{t:g}" for t in ticks])
    ax.set_xlabel("resolution d (Å), on a 1/d² scale")
    ax.set_ylabel("spots per shell")
    top = ax.secondary_xaxis("top")
    top.set_xlabel("1/d² (Å⁻²)")
    handles, labels = ax.get_legend_handles_labels()
    if shown_rings:
        handles.append(Patch(color=SKY, alpha=0.7))
        labels.append(f"ice rings ({shown_rings[0]:.2f}–{shown_rings[-1]:.2f} Å)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=1.6)
    if not d.size:
        ax.text(0.5, 0.5, "no spots", transform=ax.transAxes, ha="center", va="center", color=GREY)
    return fig


# ----------------------------------------------------------------------------------------- histograms


def _log_edges(values: np.ndarray, n: int = 40) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.array([lo / 1.5, hi * 1.5])
    return np.logspace(math.log10(lo), math.log10(hi), n + 1) * np.r_[0.999, np.ones(n - 1), 1.001]


def _integer_edges(values: np.ndarray, max_bins: int = 40) -> tuple[np.ndarray, bool]:
    """Bin edges at half-integers and whether they are log-spaced (above ``max_bins`` distinct values)."""
    lo, hi = int(values.min()), int(values.max())
    if hi - lo + 1 <= max_bins:
        return np.arange(lo, hi + 2) - 0.5, False
    edges = np.unique(np.round(np.logspace(math.log10(max(lo, 1)), math.log10(hi + 1), max_bins + 1)))
    return edges - 0.5, True


def _histogram_panel(ax, values: np.ndarray, edges: np.ndarray, log: bool) -> None:
    """Histogram of ``values`` in ``edges``: on a log x axis with plain labels, or on whole numbers."""
    if log:
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis, values)
    else:
        ax.xaxis.set_major_locator(_integer_ticks())
    _bars(ax, values, edges)


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _bars(ax, values: np.ndarray, edges: np.ndarray) -> None:
    """The histogram of ``values`` as one collection of bars (matplotlib's hist makes a patch per bin,
    and adding and drawing them cost more than the rest of the panel)."""
    from matplotlib.collections import PolyCollection

    counts, _ = np.histogram(values, edges)
    full = counts > 0
    x0, x1, top = edges[:-1][full], edges[1:][full], counts[full].astype(np.float64)
    zero = np.zeros_like(top)
    corners = np.stack([np.stack(c, axis=1) for c in ((x0, zero), (x0, top), (x1, top), (x1, zero))], axis=1)
    bars = PolyCollection(corners, facecolors=BLUE, edgecolors="white", linewidths=0.4, alpha=0.85)
    ax.add_collection(bars)
    ax.set_xlim(*_padded(edges[0], edges[-1], ax.get_xscale() == "log"))
    ax.set_ylim(0, max(1, counts.max()) * 1.05)


def _padded(lo: float, hi: float, log: bool, fraction: float = 0.05) -> tuple[float, float]:
    """(lo, hi) widened by ``fraction`` of the span at each end (of the log span on a log axis)."""
    if log:
        a, b = _padded(math.log10(lo), math.log10(hi), False, fraction)
        return 10**a, 10**b
    pad = fraction * (hi - lo)
    return lo - pad, hi + pad


def _plain_number(v: float) -> str:
    """1, 0.5, 1,000, 100,000, then 1e6, 2e7, ... (without mathtext's superscripts)."""
    if v >= 1e6:
        mantissa, exponent = f"{v:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def _integer_ticks(n: int = 10) -> MaxNLocator:
    """At most about ``n`` ticks, on whole numbers."""
    return MaxNLocator(nbins=n, integer=True, steps=[1, 2, 5, 10])


def _thousands():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}")


def _plain_log_axis(axis, values: np.ndarray) -> None:
    """Log axis over ``values`` labelled 1, 2, 5, 10, 20, ... (or 10, 100, 1,000, ... over many decades).

    Matplotlib's default labels are powers of ten typeset by mathtext, whose first use costs 0.15 s."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = values[values > 0]
    decades = math.log10(positive.max() / positive.min()) if positive.size else 1.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _plain_number(v)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _scatter_by_colour(ax, x: np.ndarray, y: np.ndarray, value: np.ndarray, scale: ScalarMappable, **kwargs):
    """Scatter coloured by ``value`` through ``scale``, one collection per distinct value (most
    common first, so the rarer colours stay on top).

    A collection of one colour is drawn by Agg as one marker stamped at whole pixels, three times faster
    than a marker rasterised per point in its own colour; the points move by under a pixel."""
    values, counts = np.unique(value, return_counts=True)
    colours = scale.to_rgba(values)
    for k in np.argsort(-counts, kind="stable"):
        on = value == values[k]
        ax.scatter(x[on], y[on], color=colours[k], **kwargs)


@styled
def histograms_figure(
    intensity: np.ndarray,
    n_signal: np.ndarray,
    n_images: np.ndarray,
    *,
    hot: np.ndarray | None = None,
) -> Figure:
    """Spot intensity, size (pixels) and images spanned histograms, and size against intensity.

    ``hot``: indices of spots that look like hot pixels (highlighted in the scatter)."""
    intensity = np.asarray(intensity, dtype=np.float64)
    n_signal = np.asarray(n_signal)
    n_images = np.asarray(n_images)
    fig = _figure(10, 6.6)
    a1 = _add_axes(fig, 0.75, 3.85, 3.9, 2.4)
    a2 = _add_axes(fig, 5.55, 3.85, 3.9, 2.4)
    a3 = _add_axes(fig, 0.75, 0.55, 3.9, 2.4)
    a4 = _add_axes(fig, 5.55, 0.55, 3.5, 2.4)
    if not intensity.size:
        for ax in (a1, a2, a3, a4):
            _empty(ax, "no spots")
        return fig
    positive = intensity > 0
    if positive.any():
        _histogram_panel(a1, intensity[positive], _log_edges(intensity[positive]), True)
    n_bad = int((~positive).sum())
    if n_bad:
        a1.text(
            0.98,
            0.95,
            f"{n_bad} spot(s) with I ≤ 0 not shown",
            transform=a1.transAxes,
            ha="right",
            va="top",
            color=GREY,
            fontsize=8,
        )
    _label(a1, "Spot intensity", "summed intensity (counts)", "spots")
    _histogram_panel(a2, n_signal, *_integer_edges(n_signal))
    _label(a2, "Spot size", "pixels in the spot (n_signal)", "spots")
    _histogram_panel(a3, n_images, *_integer_edges(n_images))
    _label(a3, "Images per spot", "images spanned (bounding box z extent)", "spots")

    hot_mask = np.zeros(intensity.size, bool)
    if hot is not None and len(hot):
        hot_mask[np.asarray(hot, dtype=np.int64)] = True
    ok = positive & ~hot_mask
    n_ok = int(ok.sum())
    if n_ok > MAX_SCATTER:  # a random subset keeps the figure fast and readable for huge runs
        keep = np.random.default_rng(0).choice(np.flatnonzero(ok), MAX_SCATTER, replace=False)
        ok = np.zeros_like(ok)
        ok[keep] = True
    size = float(np.clip(3000 / max(ok.sum(), 1), 2, 14))
    scale = ScalarMappable(Normalize(n_images.min(), max(n_images.max(), n_images.min() + 1)), "viridis")
    _scatter_by_colour(a4, n_signal[ok], intensity[ok], n_images[ok], scale, s=size, alpha=0.8, lw=0)
    if (hot_mask & positive).any():
        sel = hot_mask & positive
        a4.scatter(
            n_signal[sel],
            intensity[sel],
            marker="s",
            s=26,
            facecolors="none",
            edgecolors=RED,
            lw=1.3,
            label="possible hot pixel",
        )
        a4.legend(loc="lower right")
    if positive.any():
        a4.set_yscale("log")
        a4.set_xscale("log")
        _plain_log_axis(a4.xaxis, n_signal)
        _plain_log_axis(a4.yaxis, intensity)
    cax = _add_axes(fig, 9.15, 0.55, 0.12, 2.4)
    fig.colorbar(scale, cax=cax, label="images spanned", alpha=0.8)
    a4.set_xlabel("pixels in the spot")
    a4.set_ylabel("summed intensity")
    subset = f" ({MAX_SCATTER:,} of {n_ok:,} spots)" if n_ok > MAX_SCATTER else ""
    a4.set_title(f"Size against intensity{subset}", loc="left")
    return fig


# ------------------------------------------------------------------------------------------ detector


@dataclass
class Inset:
    """A zoomed crop around one spot: ``crop``/``valid`` cover pixels [x0, x0+w) x [y0, y0+h)."""

    label: str
    title: str
    crop: np.ndarray
    valid: np.ndarray
    x0: int
    y0: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]  # x0, x1, y0, y1


def _block_reduce(a: np.ndarray, factor: int, combine: np.ufunc) -> np.ndarray:
    """``combine`` over factor x factor blocks (the last ones cut by the edge), shape ceil(h/f), ceil(w/f).

    Strided passes: numpy's reduction over a short reshaped axis is several times slower, and needs
    padding. ``a``'s dtype must hold the result (the caller widens it for sums).
    """
    cols = a[:, 0::factor].copy()
    for k in range(1, factor):
        part = a[:, k::factor]
        combine(cols[:, : part.shape[1]], part, out=cols[:, : part.shape[1]])
    rows = cols[0::factor].copy()
    for k in range(1, factor):
        part = cols[k::factor]
        combine(rows[: part.shape[0]], part, out=rows[: part.shape[0]])
    return rows


def _block_max(a: np.ndarray, factor: int) -> np.ndarray:
    """Maximum over factor x factor blocks (the last ones cut by the edge)."""
    return _block_reduce(a, factor, np.maximum)


def _block_count(mask: np.ndarray, factor: int) -> np.ndarray:
    """True pixels per factor x factor block (the last ones cut by the edge)."""
    return _block_reduce(mask.astype(np.uint16), factor, np.add)


def block_reduce(image, valid, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block maximum of the valid pixels (NaN where a block has none) and the valid fraction per block.

    ``image``/``valid``: 2D arrays, or anything with ``shape``, ``dtype`` (the image) and row slicing
    (a :class:`~findspots.report.detector.Mosaic`)."""
    if factor <= 1:
        valid = np.asarray(valid[:], dtype=bool)
        return np.where(valid, image[:], np.nan).astype(np.float64), valid.astype(np.float64)
    h, w = image.shape
    low = -np.inf if image.dtype.kind == "f" else np.iinfo(image.dtype).min
    # A band of rows at a time: the masked copy stays in cache instead of a new 25 MB array (6M pixels).
    step = factor * max(1, BAND_ROWS // factor)
    tops, counts = [], []
    for r in range(0, h, step):
        good = np.asarray(valid[r : r + step], dtype=bool)
        tops.append(_block_max(np.where(good, image[r : r + step], low), factor))
        counts.append(_block_count(good, factor))
    top = np.vstack(tops)
    blocks = top.astype(np.float64)
    blocks[top == low] = np.nan
    # blocks cut by the image edge: the fraction of the pixels that exist
    rows = np.minimum(factor, h - np.arange(top.shape[0]) * factor)
    cols = np.minimum(factor, w - np.arange(top.shape[1]) * factor)
    return blocks, np.vstack(counts) / np.outer(rows, cols).astype(np.float64)


def display_range(log_values: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) of the log10(counts + 1) display: background light grey, spots black.

    vmin is the 2nd percentile; vmax the 99.9th percentile but at least 1.3 decades above vmin, so a
    low-background image is not stretched until its noise looks like spots."""
    finite = log_values[np.isfinite(log_values)]
    if not finite.size:
        return 0.0, 1.0
    if finite.size > 250_000:  # a regular sample gives the same display range at a fraction of the cost
        finite = finite[:: finite.size // 125_000]
    lo, hi = np.quantile(finite, [0.02, 0.999])
    return float(lo), float(max(hi, lo + 1.3))


def grey_levels(values: np.ndarray, vmin: float, vmax: float, shaded: np.ndarray | None = None) -> np.ndarray:
    """Indices into :func:`shaded_greys` of ``values`` (linear from ``vmin`` to ``vmax``): 0-255 the
    greys, 256 white for NaN, and the same plus 257 where ``shaded``."""
    span = vmax - vmin if vmax > vmin else 1.0
    t = (np.asarray(values, dtype=np.float32) - np.float32(vmin)) * np.float32(255 / span)
    nan = np.isnan(t)
    t[nan] = 0
    index = np.clip(t, 0, 255).round().astype(np.uint16)
    index[nan] = 256
    if shaded is not None:
        index[shaded] += 257
    return index


def shaded_greys() -> ListedColormap:
    """The colour map of :func:`grey_levels`: the 256 greys of :func:`_greys`, white, then those 257
    under :data:`MASK_RGBA`."""
    plain = np.vstack([_greys()(np.linspace(0, 1, 256))[:, :3], [[1.0, 1.0, 1.0]]])
    r, g, b, a = MASK_RGBA
    return ListedColormap(np.vstack([plain, plain * (1 - a) + np.array([r, g, b]) * a]))


def _show_levels(ax, levels: np.ndarray, extent) -> None:
    """Draw :func:`grey_levels` output: colour-mapped after resampling the small integer image.

    matplotlib resamples RGB images as float64 RGBA, several times slower on the detector view."""
    ax.imshow(
        levels,
        cmap=shaded_greys(),
        norm=NoNorm(),
        extent=extent,
        interpolation="nearest",
        interpolation_stage="data",
        aspect="auto",
    )


@styled
def detector_figure(
    image: np.ndarray,
    valid: np.ndarray,
    *,
    spots_xy: np.ndarray | None = None,
    hot_xy: np.ndarray | None = None,
    insets: Sequence[Inset] = (),
    beam_xy: tuple[float, float] | None = None,
    resolution_grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    title: str = "",
    width_px: int = 1000,
) -> Figure:
    """The image, log-scaled (dark = strong), masked pixels shaded, spot centroids circled, zoom insets.

    ``image``/``valid``: the whole detector (panels in their raw layout), True = usable pixel;
    ``resolution_grid``: (x, y, d) sampling of the d-spacing for labelled resolution rings."""
    h, w = image.shape
    insets = list(insets)[:5]
    fig_w = width_px / 100
    left, right, top, bottom = 0.7, 1.0, 0.35, 0.5
    aw = fig_w - left - right
    ah = aw * h / w
    if ah > 11:  # very tall detectors: keep the page readable
        ah = 11.0
        aw = ah * w / h
    inset_size = (fig_w - 0.8) / 5 - 0.2
    inset_block = inset_size + 0.75 if insets else 0.0
    fig_h = top + ah + bottom + inset_block
    fig = _figure(fig_w, fig_h)
    ax = _add_axes(fig, left, inset_block + bottom, aw, ah)
    ax.grid(False)
    factor = max(1, math.ceil(max(w / (aw * 100), h / (ah * 100))))
    small, frac = block_reduce(image, valid, factor)
    shown = np.log10(np.clip(small, 0, None) + 1.0)
    vmin, vmax = display_range(shown)
    extent = (0, small.shape[1] * factor, small.shape[0] * factor, 0)
    _show_levels(ax, grey_levels(shown, vmin, vmax, frac < 0.5), extent)
    if resolution_grid is not None:
        gx, gy, gd = resolution_grid
        if np.isfinite(gd).any():
            d_lo, d_hi = float(np.nanmin(gd)), float(np.nanmax(gd))
            levels = sorted(lv for lv in _d_ticks(1 / d_lo**2, max_ticks=6) if d_lo < lv < d_hi)
            if levels:
                cs = ax.contour(gx, gy, gd, levels=levels, colors=GREEN, linewidths=0.9, linestyles="--")
                ax.clabel(cs, fmt=lambda v: f"{v:g} Å", fontsize=8, inline_spacing=2)
    spots_xy = np.zeros((0, 2)) if spots_xy is None else np.asarray(spots_xy, dtype=np.float64).reshape(-1, 2)
    if len(spots_xy):
        size = float(np.clip(4000 / max(len(spots_xy), 1), 16, 120))
        ax.scatter(
            spots_xy[:, 0],
            spots_xy[:, 1],
            s=size,
            facecolors="none",
            edgecolors=BLUE,
            linewidths=1.2 if size > 40 else 0.7,
        )
    hot_xy = np.zeros((0, 2)) if hot_xy is None else np.asarray(hot_xy, dtype=np.float64).reshape(-1, 2)
    if len(hot_xy):
        ax.scatter(hot_xy[:, 0], hot_xy[:, 1], s=90, marker="s", facecolors="none", edgecolors=RED, lw=1.4)
    if beam_xy is not None and 0 <= beam_xy[0] <= w and 0 <= beam_xy[1] <= h:
        ax.plot(*beam_xy, marker="+", color=RED, ms=14, mew=1.6)
    for inset in insets:
        near_top = inset.centroid[1] < 0.04 * h  # keep the label inside the image
        ax.annotate(
            inset.label,
            inset.centroid,
            xytext=(7, -16 if near_top else 7),
            textcoords="offset points",
            color="white",
            fontsize=9,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.15", "fc": BLUE, "ec": "none", "alpha": 0.9},
        )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xlabel("fast (pixels)")
    ax.set_ylabel("slow (pixels)")
    if title:
        ax.set_title(title, loc="left")
    handles = [
        Line2D([], [], ls="none", marker="o", mfc="none", mec=BLUE, ms=9, label="spot centroid"),
        Patch(color=MASK_RGBA, label="masked"),
    ]
    if resolution_grid is not None:
        handles.append(Line2D([], [], color=GREEN, ls="--", label="resolution (d)"))
    if beam_xy is not None:
        handles.append(Line2D([], [], ls="none", marker="+", color=RED, ms=10, mew=1.5, label="beam centre"))
    if len(hot_xy):
        handles.append(
            Line2D([], [], ls="none", marker="s", mfc="none", mec=RED, ms=8, label="possible hot pixel")
        )
    ax.legend(handles=handles, loc="upper right", frameon=True, framealpha=0.9, fontsize=8)
    cax = _add_axes(fig, left + aw + 0.15, inset_block + bottom + 0.2 * ah, 0.14, 0.6 * ah)
    scale = ScalarMappable(Normalize(vmin, vmax), _greys())
    fig.colorbar(scale, cax=cax, label="log10(counts + 1)")
    if insets:
        _draw_insets(fig, insets, inset_size)
    return fig


def _greys():
    from matplotlib import colormaps

    return colormaps["Greys"].with_extremes(bad=(1, 1, 1, 0))


def _draw_insets(fig: Figure, insets: Sequence[Inset], size: float, count: int = 5) -> None:
    """The zoomed crops side by side along the bottom, ``size`` inches square, in one axes.

    The axes' data units are inches from its upper left corner: one axes without ticks for all of them
    costs matplotlib a fraction of one axes each."""
    fig_w = fig.get_size_inches()[0]
    ax = _add_axes(fig, 0.4, 0.1, fig_w - 0.8, size)
    ax.set_axis_off()
    ax.set_xlim(0, fig_w - 0.8)
    ax.set_ylim(size, 0)
    gap = (fig_w - 0.8 - count * size) / (count - 1)
    frames, boxes, centroids = [], [], []
    for i, inset in enumerate(insets):
        left = i * (size + gap)
        ch, cw = inset.crop.shape
        scale = size / max(ch, cw, 1)
        _show_levels(ax, _inset_levels(inset), (left, left + cw * scale, ch * scale, 0))
        frames.append(_outline(left, 0.0, left + size, size))
        bx0, bx1, by0, by1 = inset.bbox
        boxes.append(
            _outline(*_inset_xy(inset, left, scale, bx0, by0), *_inset_xy(inset, left, scale, bx1, by1))
        )
        centroids.append(_inset_xy(inset, left, scale, *inset.centroid))
        ax.annotate(
            f"{inset.label}: {inset.title}",
            (left, 0),
            xytext=(0, 4),
            textcoords="offset points",
            va="bottom",
            fontsize=8,
            annotation_clip=False,
        )
    ax.plot(*np.concatenate(frames).T, color="#999999", lw=0.8, clip_on=False)
    ax.plot(*np.concatenate(boxes).T, color=BLUE, lw=1.3)
    ax.plot(*np.array(centroids).T, ls="none", marker="+", color=RED, ms=10, mew=1.6)


def _inset_xy(inset: Inset, left: float, scale: float, x: float, y: float) -> tuple[float, float]:
    """Detector pixel (x, y) in the insets' axes (inches), kept inside the crop as clipping would."""
    ch, cw = inset.crop.shape
    return left + float(np.clip(x - inset.x0, 0, cw)) * scale, float(np.clip(y - inset.y0, 0, ch)) * scale


def _outline(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The rectangle's corners, closed, then a NaN row that separates it from the next in one line."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0], [np.nan, np.nan]])


def _inset_levels(inset: Inset) -> np.ndarray:
    """The crop's grey levels, square-root stretched from its median (background) to its peak."""
    crop = np.where(inset.valid, inset.crop, np.nan)
    finite = crop[np.isfinite(crop)]
    lo = float(np.median(finite)) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    stretched = np.sqrt(np.clip((crop - lo) / max(hi - lo, 1.0), 0.0, 1.0))
    return grey_levels(stretched, 0.0, 1.0, ~inset.valid)
