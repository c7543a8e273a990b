"""Per-image analysis of a spot list, as DIALS 3.12's ``dials.spot_counts_per_image`` and find-spots server.

Each spot's d comes from its centroid with the panel's parallax-corrected px->mm: d = 1/|s1 − s0|; a spot
with s1 = s0 exactly (d infinite) is left out of every figure. A spot belongs to image floor(z) (z in
0-based frames, so the scan's first image is frame ``array_range[0]``) of its experiment: one experiment
per rotation sequence, one per image of a still sequence, numbered as the pipeline numbers ``id``.
Spots whose 1/d² is strictly within ``ice_width / 2`` of a hexagonal-ice ring are "on ice".

For each image (:func:`spot_figures`): ``n_spots_total``, ``n_spots_no_ice``, ``n_spots_4A`` (d > 4 Å),
``total_intensity`` (of the spots off ice), and — only when more than 10 spots are off ice, else −1 —
``estimated_d_min``, the two DISTL estimates and their noisiness (:mod:`.resolution_estimates`).

``per_image_statistics=True`` (the find-spots log table) uses :func:`spot_resolution`, :func:`on_ice_rings`
and :func:`per_image_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from findspots.analysis import resolution_estimates as est
from findspots.app.pipeline import experiments_of
from findspots.geometry.ice_rings import ice_ring_d_spacings
from findspots.geometry.parallax import panel_mu
from findspots.geometry.resolution import d_spacing

ICE_WIDTH = 0.004  # in 1/d^2: the per-image analysis's ice_rings.width
MIN_SPOTS_FOR_RESOLUTION = 10  # resolution estimates need more spots than this off the ice rings
D_4A = 4.0

# The figures in the key order of DIALS's JSON (its field order).
FIGURE_NAMES = (
    "d_min_distl_method_1",
    "d_min_distl_method_2",
    "estimated_d_min",
    "n_spots_4A",
    "n_spots_no_ice",
    "n_spots_total",
    "noisiness_method_1",
    "noisiness_method_2",
    "total_intensity",
)


def spot_resolution(sequence, panel: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """d (Angstrom) at each spot centroid, with the panel's parallax-corrected px->mm.

    Without a usable wavelength there is no reciprocal space: every d is inf (|rlp| = 0), so the spots
    drop out of the per-image figures as DIALS drops spots at the origin."""
    beam = sequence.beam
    if not (math.isfinite(beam.wavelength) and beam.wavelength > 0):
        return np.full(len(xy), np.inf)
    d = np.empty(len(xy))
    for p in np.unique(panel):
        rows = panel == p
        det = sequence.detector[int(p)]
        d[rows] = d_spacing(
            det, xy[rows, 0], xy[rows, 1], beam.wavelength, beam.s0, panel_mu(det, beam.wavelength)
        )
    return d


def on_ice_rings(d: np.ndarray, width: float = ICE_WIDTH) -> np.ndarray:
    """Spots with |1/d² − 1/d_ring²| < width/2 for a hexagonal-ice ring (the boundary is off the ring).

    The rings are those with 1/d_ring² up to 1/d_min² + width/2, d_min the smallest finite d given.
    """
    finite = d[np.isfinite(d)]
    if not finite.size:
        return np.zeros(d.shape, bool)
    half = width / 2.0
    d_limit = 1.0 / math.sqrt(1.0 / float(finite.min()) ** 2 + half)
    rings = 1.0 / ice_ring_d_spacings(d_limit) ** 2
    with np.errstate(divide="ignore"):
        inv = 1.0 / d**2
    return (np.abs(inv[:, None] - rings[None, :]) < half).any(axis=1)


def per_image_rows(
    z: np.ndarray, intensity: np.ndarray, ice: np.ndarray, first_frame: int, nimages: int
) -> list[tuple[int, int, int, float]]:
    """(position 1..N, #spots, #spots_no_ice, total_intensity of non-ice spots) per image."""
    image = np.floor(z).astype(np.int64) - first_frame
    ok = (image >= 0) & (image < nimages)
    counts = np.bincount(image[ok], minlength=nimages)
    clean = ok & ~ice
    no_ice = np.bincount(image[clean], minlength=nimages)
    total = np.bincount(image[clean], weights=intensity[clean], minlength=nimages)
    return [(i + 1, int(counts[i]), int(no_ice[i]), float(total[i])) for i in range(nimages)]


def spot_figures(
    d: np.ndarray,
    intensity: np.ndarray,
    variance: np.ndarray,
    *,
    filter_ice: bool = True,
    ice_width: float = ICE_WIDTH,
) -> dict[str, float | int]:
    """The nine figures of one spot list (d in Å, row order kept), keys as :data:`FIGURE_NAMES`."""
    keep = np.isfinite(d)
    d, intensity, variance = d[keep], intensity[keep], variance[keep]
    ice = on_ice_rings(d, ice_width) if filter_ice and len(d) else np.zeros(len(d), bool)
    n_no_ice = int((~ice).sum())
    out = {
        "n_spots_4A": int((d > D_4A).sum()),
        "n_spots_no_ice": n_no_ice,
        "n_spots_total": len(d),
        "total_intensity": est.ordered_sum(intensity[~ice]),
        "estimated_d_min": -1.0,
        "d_min_distl_method_1": -1.0,
        "noisiness_method_1": -1.0,
        "d_min_distl_method_2": -1.0,
        "noisiness_method_2": -1.0,
    }
    if n_no_ice > MIN_SPOTS_FOR_RESOLUTION:
        d_star_sq = 1.0 / d**2
        out["estimated_d_min"] = est.estimated_d_min(d_star_sq, intensity, variance, ice)
        out["d_min_distl_method_1"], out["noisiness_method_1"] = est.distl_method_1(d_star_sq, variance)
        out["d_min_distl_method_2"], out["noisiness_method_2"] = est.distl_method_2(d_star_sq, variance)
    return {name: out[name] for name in FIGURE_NAMES}


def experiment_images(sequences: list) -> list[tuple[object, list[int]]]:
    """(sequence, its 0-based frames) of each experiment id, in id order."""
    out = []
    for e in experiments_of(sequences):
        seq = sequences[e.sequence_index]
        frames = range(*seq.array_range) if e.image_index is None else [seq.frame(e.image_index)]
        out.append((seq, list(frames)))
    return out


def spot_d(table: Mapping[str, np.ndarray], sequences: list) -> np.ndarray:
    """d (Å) of every row from its experiment's geometry; inf for rows whose id has no experiment."""
    xyz = np.asarray(table["xyzobs.px.value"], dtype=np.float64).reshape(-1, 3)
    ids = np.asarray(table["id"], dtype=np.int64)
    panel = np.asarray(table["panel"], dtype=np.int64)
    d = np.full(len(xyz), np.inf)
    for i, (seq, _) in enumerate(experiment_images(sequences)):
        rows = ids == i
        if rows.any():
            d[rows] = spot_resolution(seq, panel[rows], xyz[rows, :2])
    return d


def resolution_selection(d: np.ndarray, d_min: float | None, d_max: float | None) -> np.ndarray:
    """Rows kept by the server's centroid filter: d >= d_min and d <= d_max (only if either is set)."""
    keep = np.ones(len(d), bool)
    if d_min or d_max:
        if d_min is not None:
            keep &= d >= d_min
        if d_max is not None:
            keep &= d <= d_max
    return keep


def per_image_figures(
    table: Mapping[str, np.ndarray],
    sequences: list,
    *,
    d_min: float | None = None,
    d_max: float | None = None,
    filter_ice: bool = True,
    ice_width: float = 0.004,
) -> dict[str, list]:
    """The nine figures of every image of every experiment, in experiment then image order.

    ``table`` holds the reflection-table columns (``xyzobs.px.value``, ``intensity.sum.value``,
    ``intensity.sum.variance``, ``panel``, ``id``); ``sequences`` the ImageSequences the ids refer to.
    ``d_min``/``d_max`` drop centroids outside that resolution range first (as the find-spots server
    does); ``filter_ice`` and ``ice_width`` choose the ice-ring rule. The layout is that of
    ``dials.spot_counts_per_image json=``: one list per figure, keys as :data:`FIGURE_NAMES`.
    """
    d = spot_d(table, sequences)
    keep = resolution_selection(d, d_min, d_max)
    z = np.asarray(table["xyzobs.px.value"], dtype=np.float64).reshape(-1, 3)[:, 2]
    frame = np.floor(z)
    ids = np.asarray(table["id"], dtype=np.int64)
    intensity = np.asarray(table["intensity.sum.value"], dtype=np.float64)
    variance = np.asarray(table["intensity.sum.variance"], dtype=np.float64)
    out: dict[str, list] = {name: [] for name in FIGURE_NAMES}
    for i, (_, frames) in enumerate(experiment_images(sequences)):
        rows = np.flatnonzero(keep & (ids == i))
        rows = rows[np.argsort(frame[rows], kind="stable")]  # grouped by image, row order kept within
        wanted = np.asarray(frames, dtype=np.float64)
        starts = np.searchsorted(frame[rows], wanted)
        ends = np.searchsorted(frame[rows], wanted, side="right")
        for a, b in zip(starts, ends, strict=True):
            sel = rows[a:b]
            figures = spot_figures(
                d[sel], intensity[sel], variance[sel], filter_ice=filter_ice, ice_width=ice_width
            )
            for name in FIGURE_NAMES:
                out[name].append(figures[name])
    return out


def table_figures(table: Mapping[str, np.ndarray], sequences: list) -> dict[str, float | int]:
    """The nine figures of the whole table at once (the "Overall statistics" of spot_counts_per_image)."""
    return spot_figures(
        spot_d(table, sequences),
        np.asarray(table["intensity.sum.value"], dtype=np.float64),
        np.asarray(table["intensity.sum.variance"], dtype=np.float64),
    )
