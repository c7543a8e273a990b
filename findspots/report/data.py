"""What the report shows: the run's inputs (:class:`ReportData`) and the numbers derived from them.

Everything here is plain numpy on the reflection table and the sequences' geometry; the figures and the
page only draw and print these numbers, so the tests can compare them with the table directly.

Resolution estimates per image: those of DIALS's per-image analysis (``estimated_d_min`` and the two
DISTL methods, :mod:`findspots.analysis.per_image`), computed once per run and given in
:attr:`ReportData.per_image`. Overall estimate (``d95``): the d at the 95th percentile of all spots' 1/d^2
(linear interpolation), i.e. 5 % of the spots lie further out; it uses no intensities, so it is not a
data-processing resolution limit (that needs merged I/sigma).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from findspots.analysis.per_image import experiment_images, spot_resolution
from findspots.app.pipeline import experiments_of
from findspots.geometry.ice_rings import ice_ring_d_spacings
from findspots.geometry.resolution import detector_max_resolution

D_PERCENTILE = 95.0  # percentile of 1/d^2 used for the overall resolution estimates
# The per-image analysis's resolution estimates shown (its figure names); -1 there means none.
RESOLUTION_ESTIMATES = ("estimated_d_min", "d_min_distl_method_1", "d_min_distl_method_2")
GRID_ORDERS = ("raster", "snake")
HOT_MIN_IMAGES = 5  # a spot spanning every image of a sweep of at least this many images is suspicious
HOT_MAX_WIDTH = 3  # ... when its bounding box is at most this many pixels wide and high

ICE_RING_WIDTH = 0.002  # 1/d^2, spotfinder.filter.ice_rings.width


@dataclass
class ReportData:
    """Everything the report needs from one run (the pipeline fills it; see ``findspots.report``).

    - ``table``: the reflection table columns as written (``xyzobs.px.value`` (N, 3), ``bbox`` (N, 6),
      ``intensity.sum.value``, ``n_signal``, ``panel``, ``id``; any other column is ignored).
    - ``sequences``: the :class:`findspots.images.ImageSequence` objects, in the order that defines the
      experiment ids (one id per rotation sequence, one per image of a still sequence).
    - ``images``: per processed image ``(sequence index, image number, strong pixel count)``
      (:func:`image_counts` builds it from the pipeline's per-sequence image results).
    - ``max_strong_fraction``: ``spotfinder.filter.max_strong_pixel_fraction`` (None: no limit).
    - ``counts``: spots at each filtering step, in order, e.g. ``{"extracted": 218, "too small": 161,
      "too large": 0, "peak-centroid filter": 4, "written": 53}``.
    - ``modified_parameters``: the PHIL diff text; ``inputs``: the input file names as given.
    - ``timings``: seconds per stage, e.g. ``{"reading + thresholding": 1.9, ..., "total": 2.4}``.
    - ``masks``: optional, per sequence a list of per-panel boolean arrays (True = usable), e.g. the
      spot finder's static masks (border, untrusted regions, resolution limits, ice rings); the
      detector view shades what they exclude. Without them it shades the panels' own mask and the
      pixels outside the trusted range.
    - ``per_image``: optional, the nine figures of
      :func:`findspots.analysis.per_image.per_image_figures` of ``table`` and ``sequences`` (one list
      entry per image of every experiment); the per-image plot shows ``n_spots_no_ice`` and the
      :data:`RESOLUTION_ESTIMATES` from it. None: spot and strong-pixel counts only.
    - ``grid``: optional ``(NX, NY)``, the processed images are a grid scan of NX columns and NY rows
      walked in ``grid_order`` (:data:`GRID_ORDERS`; see :func:`grid_cells`): the report adds heat maps.
    """

    table: Mapping[str, object]
    sequences: list
    images: list[tuple[int, int, int]]
    max_strong_fraction: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    modified_parameters: str = ""
    inputs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    masks: list | None = None  # optional, per sequence: the per-panel filter masks (True = usable)
    per_image: dict[str, list] | None = None
    grid: tuple[int, int] | None = None
    grid_order: str = "raster"


def image_counts(per_sequence: Iterable[Iterable[object]]) -> list[tuple[int, int, int]]:
    """``ReportData.images`` from per-sequence lists of image results with ``frame`` (0-based) and ``count``.

    The pipeline's ``SpotRows.images`` is such a list; the image number is ``frame + 1``."""
    return [(s, int(im.frame) + 1, int(im.count)) for s, images in enumerate(per_sequence) for im in images]


# ----------------------------------------------------------------------------------------------- geometry


def beam_centre(panel, s0) -> tuple[float, float] | None:
    """Pixel position (x, y) where the direct beam meets the panel plane, or None when it misses it."""
    direction = np.asarray(s0, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)  # the direct beam travels along s0
    normal = np.cross(panel.fast_axis, panel.slow_axis)
    denom = float(direction @ normal)
    if abs(denom) < 1e-12:
        return None
    t = float(panel.origin @ normal) / denom
    if t <= 0:
        return None
    rel = t * direction - panel.origin
    return (
        float(rel @ panel.fast_axis) / panel.pixel_size[0],
        float(rel @ panel.slow_axis) / panel.pixel_size[1],
    )


# ----------------------------------------------------------------------------------------------- analysis


@dataclass
class ImageRow:
    """One processed image: its strong pixels, spots (by centroid) and per-image analysis figures."""

    sequence: int
    image: int  # image number (frame + 1)
    strong: int
    spots: int
    over_limit: bool  # more strong pixels than max_strong_pixel_fraction allows
    spots_no_ice: int | None = None  # n_spots_no_ice (None: no per-image analysis)
    # per name of RESOLUTION_ESTIMATES: the estimate in Angstrom, None where the analysis gives none
    estimates: dict[str, float | None] = field(default_factory=dict)


@dataclass
class SequenceSummary:
    """Per-sequence totals."""

    index: int
    template: str
    first: int
    last: int
    n_images: int  # processed images
    still: bool
    oscillation: tuple[float, float]
    wavelength: float
    spots: int
    strong: int
    d95: float | None
    d_detector: float  # highest resolution at the detector corners
    strong_limit: int | None  # strong pixels allowed per image


@dataclass
class Analysis:
    """Per-spot and per-image numbers derived from a :class:`ReportData`."""

    n_spots: int
    sequence: np.ndarray  # per spot: sequence index
    image: np.ndarray  # per spot: image number holding the centroid
    d: np.ndarray  # per spot: d (Angstrom)
    intensity: np.ndarray
    n_signal: np.ndarray
    n_images: np.ndarray  # per spot: images spanned (bbox z extent)
    rows: list[ImageRow]
    sequences: list[SequenceSummary]
    d95: float | None  # all spots
    d_detector: float
    hot: list[int]  # row indices of spots that look like hot pixels
    ice: list[tuple[float, int, float]]  # (ring d, spots in ring, spots expected from neighbours)

    @property
    def best_image(self) -> tuple[int, int] | None:
        """(sequence, image number) with the most spots (first on ties); most strong pixels without spots."""
        if not self.rows:
            return None
        key = (lambda r: r.spots) if self.n_spots else (lambda r: r.strong)
        best = max(self.rows, key=key)
        return best.sequence, best.image


def percentile_d(d: np.ndarray, percentile: float = D_PERCENTILE) -> float | None:
    """d at the given percentile of 1/d^2 (None when ``d`` is empty)."""
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        return None
    s = np.quantile(1.0 / d**2, percentile / 100.0)
    return float(1.0 / math.sqrt(s)) if s > 0 else math.inf


def experiment_sequences(sequences: list) -> list[int]:
    """Sequence index of each experiment id, as the pipeline numbers them."""
    out: list[int] = []
    for s, seq in enumerate(sequences):
        out += [s] * (len(seq) if seq.is_still else 1)
    return out


def _column(table, name: str, n: int, dtype, shape=()) -> np.ndarray:
    if name in table:
        return np.asarray(table[name], dtype=dtype).reshape((n, *shape))
    return np.zeros((n, *shape), dtype=dtype)


def analyse(data: ReportData) -> Analysis:
    """Assign spots to sequences and images, compute d per spot and the per-image table."""
    table = data.table
    xyz = np.zeros((0, 3))
    if "xyzobs.px.value" in table:
        xyz = np.asarray(table["xyzobs.px.value"], dtype=np.float64).reshape(-1, 3)
    n = len(xyz)
    bbox = _column(table, "bbox", n, np.int64, (6,))
    ids = _column(table, "id", n, np.int64)
    panels = _column(table, "panel", n, np.int64)
    exp_seq = np.asarray(experiment_sequences(data.sequences) or [0], dtype=np.int64)
    seq_of = exp_seq[np.clip(ids, 0, len(exp_seq) - 1)]
    frame = np.floor(xyz[:, 2]).astype(np.int64)
    if n:
        frame = np.clip(frame, bbox[:, 4], np.maximum(bbox[:, 5] - 1, bbox[:, 4]))
    image = frame + 1

    d = np.full(n, np.nan)
    for s, seq in enumerate(data.sequences):
        sel = seq_of == s
        d[sel] = spot_resolution(seq, panels[sel], xyz[sel, :2])
    finite = np.isfinite(d)

    # spots per (sequence, image)
    # spots grouped by (sequence, image): one sort, then a slice per image
    order = np.lexsort((image, seq_of))
    uniq, first, count = np.unique(
        np.stack([seq_of[order], image[order]], axis=1).reshape(-1, 2),
        axis=0,
        return_index=True,
        return_counts=True,
    )
    starts = {(int(a), int(b)): int(i) for (a, b), i in zip(uniq, first, strict=True)}
    ends = {(int(a), int(b)): int(i + c) for (a, b), i, c in zip(uniq, first, count, strict=True)}
    limits = [_strong_limit(seq, data.max_strong_fraction) for seq in data.sequences]
    position = figure_positions(data.sequences) if data.per_image is not None else {}

    rows = []
    for s, number, strong in data.images:
        key = (int(s), int(number))
        count = ends[key] - starts[key] if key in starts else 0
        limit = limits[s]
        row = ImageRow(
            sequence=int(s),
            image=int(number),
            strong=int(strong),
            spots=count,
            over_limit=limit is not None and strong > limit,
        )
        if key in position:
            k = position[key]
            row.spots_no_ice = int(data.per_image["n_spots_no_ice"][k])
            row.estimates = {n: _estimate(data.per_image[n][k]) for n in RESOLUTION_ESTIMATES}
        rows.append(row)

    summaries = []
    for s, seq in enumerate(data.sequences):
        mine = [r for r in rows if r.sequence == s]
        sel = (seq_of == s) & finite
        summaries.append(
            SequenceSummary(
                index=s,
                template=seq.template,
                first=seq.image_numbers[0],
                last=seq.image_numbers[-1],
                n_images=len(mine),
                still=bool(seq.is_still),
                oscillation=tuple(seq.scan.oscillation),
                wavelength=float(seq.beam.wavelength),
                spots=int((seq_of == s).sum()),
                strong=sum(r.strong for r in mine),
                d95=percentile_d(d[sel]),
                d_detector=detector_max_resolution(seq.detector, seq.beam),
                strong_limit=_strong_limit(seq, data.max_strong_fraction),
            )
        )

    n_images = (bbox[:, 5] - bbox[:, 4]) if n else np.zeros(0, np.int64)
    d_det = min((s.d_detector for s in summaries), default=math.inf)
    return Analysis(
        n_spots=n,
        sequence=seq_of,
        image=image,
        d=d,
        intensity=_column(table, "intensity.sum.value", n, np.float64),
        n_signal=_column(table, "n_signal", n, np.int64),
        n_images=n_images,
        rows=rows,
        sequences=summaries,
        d95=percentile_d(d[finite]),
        d_detector=d_det,
        hot=_hot_pixels(data, xyz, bbox, panels, seq_of, image, n_images, rows),
        ice=_ice_excess(d[finite], d_det),
    )


def figure_positions(sequences: list) -> dict[tuple[int, int], int]:
    """(sequence index, image number) -> the image's entry in the per-image analysis's lists."""
    out: dict[tuple[int, int], int] = {}
    for e, (_, frames) in zip(experiments_of(sequences), experiment_images(sequences), strict=True):
        for frame in frames:
            out[(e.sequence_index, frame + 1)] = len(out)
    return out


def _estimate(value: float) -> float | None:
    """A per-image resolution estimate; the analysis's -1 (too few spots off the ice rings) is None."""
    return None if value < 0 else float(value)


def grid_cells(n: int, nx: int, ny: int, order: str = "raster") -> np.ndarray:
    """(NY, NX) array of the image position (0..n-1) in each grid cell, row 0 first.

    Image i lies in row i // NX, column i % NX; ``order="snake"`` runs every odd row backwards."""
    if nx * ny != n or order not in GRID_ORDERS:
        raise ValueError(f"a {order} {nx} x {ny} grid for {n} images")
    cells = np.arange(n).reshape(ny, nx)
    if order == "snake":
        cells[1::2] = cells[1::2, ::-1]
    return cells


def _strong_limit(sequence, fraction: float | None) -> int | None:
    """Strong pixels allowed per image (the pipeline's rule: ceil(fraction * pixels)); None: no limit."""
    if fraction is None or fraction >= 1:
        return None
    npixels = sum(p.image_size[0] * p.image_size[1] for p in sequence.detector)
    return math.ceil(fraction * npixels)


def _hot_pixels(data, xyz, bbox, panels, seq_of, image, n_images, rows) -> list[int]:
    """Spots that look like hot pixels rather than diffraction.

    Rotation sweep: a spot no wider than HOT_MAX_WIDTH pixels in x and y spanning every processed image
    of a sweep of >= HOT_MIN_IMAGES images (a reflection crosses the Ewald sphere in a few images and
    a long-lived reflection near the rotation axis is spread out, not a fixed pixel). Stills: the same
    pixel (rounded centroid) holding a spot on at least half of the images, and on at least 3."""
    out: list[int] = []
    processed = {}
    for r in rows:
        processed[r.sequence] = processed.get(r.sequence, 0) + 1
    for s, seq in enumerate(data.sequences):
        n_proc = processed.get(s, 0)
        mine = np.flatnonzero(seq_of == s)
        if not mine.size:
            continue
        if not seq.is_still:
            if n_proc >= HOT_MIN_IMAGES:
                small = (bbox[mine, 1] - bbox[mine, 0] <= HOT_MAX_WIDTH) & (
                    bbox[mine, 3] - bbox[mine, 2] <= HOT_MAX_WIDTH
                )
                out += mine[(n_images[mine] >= n_proc) & small].tolist()
            continue
        if n_proc < 3:
            continue
        keys = np.stack([panels[mine], np.floor(xyz[mine, 0]), np.floor(xyz[mine, 1])], axis=1)
        _, pixel = np.unique(keys, axis=0, return_inverse=True)
        pixel = pixel.reshape(-1)
        # distinct images per pixel: count the distinct (pixel, image) pairs of each pixel
        pairs = np.unique(np.stack([pixel, image[mine]], axis=1), axis=0)
        n_images_at = np.bincount(pairs[:, 0], minlength=pixel.max() + 1)
        out += mine[n_images_at[pixel] >= max(3, math.ceil(0.5 * n_proc))].tolist()
    return sorted(out)


def _ice_excess(d: np.ndarray, d_min: float) -> list[tuple[float, int, float]]:
    """Ice rings holding clearly more spots than the shells beside them.

    For each ring (within the detector) count the spots within ICE_RING_WIDTH/2 of it in 1/d^2 and,
    for comparison, the spots in the two shells of the same width on either side (the expected count
    is their mean). A ring is reported with >= 10 spots and >= 3 times the expected count."""
    if not d.size:
        return []
    s = 1.0 / d**2
    half = ICE_RING_WIDTH / 2
    out = []
    for ring in ice_ring_d_spacings(max(d_min, 1.0)):
        c = 1.0 / ring**2
        inside = int((np.abs(s - c) < half).sum())
        beside = (np.abs(s - (c - 3 * half)) < half) | (np.abs(s - (c + 3 * half)) < half)
        expected = float(beside.sum()) / 2.0
        if inside >= 10 and inside >= 3 * max(expected, 1.0):
            out.append((float(ring), inside, expected))
    return out
