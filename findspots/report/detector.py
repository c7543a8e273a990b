"""The detector view's inputs: one image of a sequence as a single array, its mask, spots and insets."""

from __future__ import annotations

import math

import numpy as np

from findspots.geometry.parallax import panel_mu
from findspots.geometry.resolution import d_spacing
from findspots.report.data import Analysis, ReportData, beam_centre
from findspots.report.figures import Inset

INSET_COUNT = 5
GAP = 8  # pixels between panels stacked when the panels have no raw layout


def panel_offsets(detector) -> list[tuple[int, int]]:
    """(x, y) of each panel in the displayed array: the raw layout, or panels stacked top to bottom."""
    offsets = [tuple(int(v) for v in p.raw_offset) for p in detector]
    if len(set(offsets)) == len(offsets):
        return offsets
    out, y = [], 0
    for p in detector:
        out.append((0, y))
        y += p.image_size[1] + GAP
    return out


class Mosaic:
    """Panels placed at their offsets in one frame (zeros / False between them), built a band of rows
    at a time when sliced: a 24-panel Pilatus 12M frame is never made whole (50 MB and, fresh, a tenth
    of a second of page faults), yet ``mosaic[y0:y1, x0:x1]`` and ``.shape`` read like an array's."""

    def __init__(self, panels: list[np.ndarray], offsets):
        self.panels = panels
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        self.dtype = panels[0].dtype
        self.shape = (
            max(oy + p.shape[0] for p, (ox, oy) in zip(panels, self.offsets, strict=True)),
            max(ox + p.shape[1] for p, (ox, oy) in zip(panels, self.offsets, strict=True)),
        )

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        r0, r1, _ = rows.indices(self.shape[0])
        out = np.zeros((max(r1 - r0, 0), self.shape[1]), dtype=self.dtype)
        for p, (ox, oy) in zip(self.panels, self.offsets, strict=True):
            a, b = max(r0, oy), min(r1, oy + p.shape[0])
            if a < b:
                out[a - r0 : b - r0, ox : ox + p.shape[1]] = p[a - oy : b - oy]
        return out[:, cols]


def composite(detector, panels: list[np.ndarray], offsets) -> np.ndarray | Mosaic:
    """The per-panel arrays as one frame: the panel itself, or a :class:`Mosaic` of several."""
    if len(panels) == 1 and tuple(offsets[0]) == (0, 0):
        return panels[0]
    return Mosaic(panels, offsets)


def resolution_grid(sequence, offsets, shape, points: int = 220):
    """(x, y, d) sampled every few pixels over the composite; NaN off the panels."""
    h, w = shape
    step = max(2, math.ceil(max(h, w) / points))
    gx = np.arange(step / 2, w, step)
    gy = np.arange(step / 2, h, step)
    gd = np.full((len(gy), len(gx)), np.nan)
    beam = sequence.beam
    for panel, (ox, oy) in zip(sequence.detector, offsets, strict=True):
        pw, ph = panel.image_size
        ix = np.flatnonzero((gx >= ox) & (gx < ox + pw))
        iy = np.flatnonzero((gy >= oy) & (gy < oy + ph))
        if ix.size and iy.size:
            xx, yy = np.meshgrid(gx[ix] - ox, gy[iy] - oy)
            mu = panel_mu(panel, beam.wavelength)
            gd[np.ix_(iy, ix)] = d_spacing(panel, xx, yy, beam.wavelength, beam.s0, mu)
    gd[~np.isfinite(gd)] = np.nan
    return gx, gy, gd


def choose_insets(idx: np.ndarray, intensity: np.ndarray, d: np.ndarray, n_signal: np.ndarray) -> list:
    """Up to INSET_COUNT (row, why) pairs: brightest, furthest out, largest, median and faintest spot."""
    if not idx.size:
        return []
    inten = intensity[idx]
    order = np.argsort(inten, kind="stable")
    dd = np.where(np.isfinite(d[idx]), d[idx], np.inf)
    picks = [
        (idx[order[-1]], "brightest"),
        (idx[int(np.argmin(dd))], "furthest out"),
        (idx[int(np.argmax(n_signal[idx]))], "largest"),
        (idx[order[len(order) // 2]], "median intensity"),
        (idx[order[0]], "faintest"),
    ]
    out, seen = [], set()
    for row, why in picks:
        if int(row) not in seen:
            seen.add(int(row))
            out.append((int(row), why))
    # fill up with spots spread over the intensity range
    for q in (0.75, 0.25, 0.9, 0.1):
        if len(out) >= INSET_COUNT:
            break
        row = int(idx[order[int(q * (len(order) - 1))]])
        if row not in seen:
            seen.add(row)
            out.append((row, f"{int(q * 100)}th pct intensity"))
    return out[:INSET_COUNT]


def display_counts(seq, index: int, raw: list[np.ndarray]) -> list[np.ndarray]:
    """Per-panel counts to display: the raw arrays unless a pedestal or gain applies.

    The view shows block maxima only, which raw counts give as well; the float64 copies of
    ``get_corrected`` cost more than the rest of the view on a Pilatus 6M, so they are made only where
    the correction changes the values."""
    use_pedestal, use_gain = seq.corrections()
    return seq.get_corrected(index, raw) if use_pedestal or use_gain else raw


def detector_view(data: ReportData, analysis: Analysis) -> dict | None:
    """Keyword arguments for :func:`findspots.report.figures.detector_figure`, or None without images."""
    best = analysis.best_image
    if best is None:
        return None
    s, number = best
    seq = data.sequences[s]
    index = seq.image_numbers.index(number)
    raw = seq.get_raw(index)
    corrected = display_counts(seq, index, raw)
    masks = seq.get_mask(index, raw)
    if data.masks is not None and data.masks[s] is not None:
        masks = [m & np.asarray(f, dtype=bool) for m, f in zip(masks, data.masks[s], strict=True)]
    offsets = panel_offsets(seq.detector)
    image = composite(seq.detector, corrected, offsets)
    valid = composite(seq.detector, masks, offsets)

    table = data.table
    on = np.flatnonzero((analysis.sequence == s) & (analysis.image == number))
    xy = np.zeros((0, 2))
    panels = np.zeros(0, np.int64)
    if on.size:
        xy = np.asarray(table["xyzobs.px.value"], dtype=np.float64)[on, :2].copy()
        panels = (
            np.asarray(table["panel"], dtype=np.int64)[on] if "panel" in table else np.zeros(on.size, int)
        )
        xy += np.asarray([offsets[p] for p in panels], dtype=np.float64).reshape(-1, 2)
    # hot-pixel suspects of this sequence, whichever image holds their centroid (the pixel is fixed)
    hot = np.asarray(analysis.hot, dtype=np.int64)
    hot = hot[analysis.sequence[hot] == s] if hot.size else hot
    hot_xy = np.zeros((0, 2))
    if hot.size:
        hot_xy = np.asarray(table["xyzobs.px.value"], dtype=np.float64)[hot, :2].copy()
        hot_panels = (
            np.asarray(table["panel"], dtype=np.int64)[hot] if "panel" in table else np.zeros(hot.size, int)
        )
        hot_xy += np.asarray([offsets[p] for p in hot_panels], dtype=np.float64).reshape(-1, 2)

    insets = []
    bbox = np.asarray(table["bbox"], dtype=np.int64) if on.size else np.zeros((0, 6), np.int64)
    for k, (row, why) in enumerate(choose_insets(on, analysis.intensity, analysis.d, analysis.n_signal)):
        ox, oy = offsets[int(panels[np.searchsorted(on, row)])]
        x0, x1, y0, y1 = (int(v) for v in bbox[row, :4])
        x0, x1, y0, y1 = x0 + ox, x1 + ox, y0 + oy, y1 + oy
        cx, cy = xy[np.searchsorted(on, row)]
        half = int(min(30, max(6, math.ceil(max(x1 - x0, y1 - y0) / 2) + 3)))
        cx0 = int(max(0, min(image.shape[1] - 2 * half, round(cx) - half)))
        cy0 = int(max(0, min(image.shape[0] - 2 * half, round(cy) - half)))
        cx0, cy0 = max(cx0, 0), max(cy0, 0)
        crop = image[cy0 : cy0 + 2 * half, cx0 : cx0 + 2 * half]
        good = valid[cy0 : cy0 + 2 * half, cx0 : cx0 + 2 * half]
        d = analysis.d[row]
        d_text = f"{d:.2f} Å" if np.isfinite(d) else "beam"
        insets.append(
            Inset(
                label=str(k + 1),
                title=(
                    f"{why}\nI = {analysis.intensity[row]:,.0f}, {d_text}\n"
                    f"{int(analysis.n_signal[row])} px on {int(analysis.n_images[row])} image(s)"
                ),
                crop=np.asarray(crop, dtype=np.float64),
                valid=np.asarray(good, dtype=bool),
                x0=cx0,
                y0=cy0,
                centroid=(float(cx), float(cy)),
                bbox=(x0, x1, y0, y1),
            )
        )

    beam_xy = None
    for panel, (ox, oy) in zip(seq.detector, offsets, strict=True):
        c = beam_centre(panel, seq.beam.s0)
        if c is not None and 0 <= c[0] <= panel.image_size[0] and 0 <= c[1] <= panel.image_size[1]:
            beam_xy = (c[0] + ox, c[1] + oy)
            break
    row = next(r for r in analysis.rows if r.sequence == s and r.image == number)
    name = seq.template.rsplit("/", 1)[-1]
    return {
        "image": image,
        "valid": valid,
        "spots_xy": xy,
        "hot_xy": hot_xy,
        "insets": insets,
        "beam_xy": beam_xy,
        "resolution_grid": resolution_grid(seq, offsets, image.shape),
        "title": (
            f"{name}, image {number}"
            + (f" (sequence {s})" if len(data.sequences) > 1 else "")
            + f": {row.spots} spot centroids circled, {row.strong:,} strong pixels"
        ),
    }
