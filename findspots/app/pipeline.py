"""Spot finding over image sequences: masks, scan ranges, blocks, measures, filters, rows.

Row order follows DIALS (SPEC §3.5): sequence, then scan range as given, then panel, then each
component's smallest (z, y, x) pixel.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from findspots import __version__
from findspots.batch.checkpoint import Checkpoints, run_key
from findspots.batch.engine import run_range
from findspots.batch.executor import Executors
from findspots.batch.plan import Plan, plan_blocks
from findspots.errors import NotYetSupported, ParameterError
from findspots.phil import to_dict
from findspots.spotfinder import filters
from findspots.spotfinder.blocks import RangeSpots, SizeLimits, upper_trusted
from findspots.spotfinder.exclusions import rejected_frames
from findspots.spotfinder.hot_mask import hot_mask
from findspots.spotfinder.labelling import load_compiled
from findspots.spotfinder.masks import check_mask_parameters, load_lookup_mask, static_masks
from findspots.spotfinder.spots import concat_shoeboxes, shoeboxes
from findspots.spotfinder.strong import ImageStrong, StrongFinder
from findspots.threshold import make_threshold
from findspots.threshold.radial_profile import SequenceGeometry

log = logging.getLogger("findspots")

STRONG = 32
OVERLOADED = 1024
RULE = "-" * 80


@dataclass
class Experiment:
    """What an output row's ``id`` refers to: a rotation sequence, or one still image."""

    sequence_index: int
    image_index: int | None  # None for a whole rotation sequence


@dataclass
class SpotRows:
    """Reflection table columns being assembled, plus what the summary and report need."""

    columns: dict[str, list] = field(default_factory=dict)
    images: list[list[ImageStrong]] = field(default_factory=list)  # per sequence
    experiments: list[Experiment] = field(default_factory=list)
    # per sequence: the hot-pixel mask file and its masks, written after the reflection table so that
    # a run that fails before its table leaves no mask behind
    hot_masks: list[tuple[str, list[np.ndarray]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # spots at each filtering step, all ranges

    def count(self, step: str, n: int) -> None:
        self.counts[step] = self.counts.get(step, 0) + n

    def add(self, name: str, value) -> None:
        self.columns.setdefault(name, []).append(value)

    def __len__(self) -> int:
        return sum(len(v) for v in self.columns.get("bbox", []))

    def z_of_sequence(self, s: int) -> np.ndarray:
        """Centroid z of the rows of sequence ``s`` (for its histogram)."""
        if not len(self):
            return np.zeros(0)
        ids = np.concatenate(self.columns["id"])
        z = np.concatenate(self.columns["xyzobs.px.value"])[:, 2]
        members = [i for i, e in enumerate(self.experiments) if e.sequence_index == s]
        return z[np.isin(ids, members)]

    def table(self) -> dict:
        """The reflection table columns as arrays (and one Shoeboxes), in row order.

        Each column's parts are replaced by the joined column, so that the rows are held once."""
        for name, parts in self.columns.items():
            if len(parts) > 1:
                parts[:] = [concat_shoeboxes(parts) if name == "shoebox" else np.concatenate(parts)]
        return {name: parts[0] for name, parts in self.columns.items()}


def min_spot_size(filter_params, sequences) -> int:
    """``min_spot_size``, resolving Auto from the first panel's sensor type."""
    value = filter_params.min_spot_size
    if value in (None, "Auto"):
        first = sequences[0].detector[0]
        value = 3 if first.type == "SENSOR_PAD" else 6
        log.info("Setting spotfinder.filter.min_spot_size=%d", value)
    return int(value)


def scan_ranges(sequence, requested: list) -> list[tuple[int, int]]:
    """Validated 1-based inclusive image ranges of ``sequence`` (SPEC §3.3)."""
    first, last = sequence.image_numbers[0], sequence.image_numbers[-1]
    if not requested:
        return [(first, last)]
    out = []
    for j0, j1 in requested:
        if j1 < j0:
            raise ParameterError(f"spotfinder.scan_range={j0},{j1}: must be in ascending order")
        if j0 < first or j1 > last:
            raise ParameterError(
                f"spotfinder.scan_range={j0},{j1}: must be within image range {first}..{last}"
            )
        out.append((j0, j1))
    return out


def check_roi(roi, sequence) -> tuple[int, int, int, int] | None:
    """Validate ``region_of_interest=x0,x1,y0,y1`` against every panel."""
    if not roi:
        return None
    x0, x1, y0, y1 = roi
    for panel in sequence.detector:
        width, height = panel.image_size
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ParameterError(
                f"spotfinder.region_of_interest={x0},{x1},{y0},{y1}: needs 0 <= x0 < x1 <= {width} "
                f"and 0 <= y0 < y1 <= {height}"
            )
    return (x0, x1, y0, y1)


def with_maximum_trusted_value(sequence, value: float | None):
    """The sequence with every panel's upper trusted value replaced (``maximum_trusted_value``)."""
    if value is None:
        return sequence
    log.info("Overriding maximum trusted value to %.1f", value)
    panels = [dataclasses.replace(p, trusted_range=(p.trusted_range[0], value)) for p in sequence.detector]
    return dataclasses.replace(sequence, detector=type(sequence.detector)(panels))


def _check_unsupported(params) -> None:
    sf = params.spotfinder
    checks = {
        "spotfinder.filter.use_trusted_range=False": not sf.filter.use_trusted_range,
    }
    for what, set_ in checks.items():
        if set_:
            raise NotYetSupported(what)


def check_parameters(params) -> None:
    """Reject parameters that cannot run, before any image is read."""
    _check_unsupported(params)
    make_threshold(params.spotfinder.threshold)
    check_mask_parameters(params.spotfinder.filter)


def experiments_of(sequences: list) -> list[Experiment]:
    """The experiment list: one per rotation sequence, one per image of a still sequence."""
    out = []
    for s, seq in enumerate(sequences):
        out += [Experiment(s, i) for i in range(len(seq))] if seq.is_still else [Experiment(s, None)]
    return out


def resolve_nproc(value) -> int:
    """``mp.nproc``: Auto means the CPUs this process may use."""
    if value in (None, "Auto"):
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        log.info("Setting nproc=%d", n)
        return n
    return int(value)


def result_settings(params) -> dict:
    """Every parameter that can change the spots (the checkpoint key): all but mp and output."""
    settings = to_dict(params.spotfinder)
    settings.pop("mp", None)
    settings["maximum_trusted_value"] = params.maximum_trusted_value
    return settings


def _log_plan(plan: Plan, method: str) -> None:
    if plan.chunksize_logged is not None:
        log.info("Setting chunksize=%d", plan.chunksize_logged)
    log.info("Extracting strong pixels from images")
    if plan.njobs > 1:
        log.info(
            " Using %s with %d parallel job(s) and %d processes per node\n", method, plan.njobs, plan.nproc
        )
    else:
        log.info(" Using multiprocessing with %d parallel job(s)\n", plan.nproc)
    sizes = sorted({len(b) for b in plan.blocks}, reverse=True)
    log.debug(
        "Plan: %d block(s) of %s image(s) on %d worker(s)",
        len(plan.blocks),
        "/".join(map(str, sizes)),
        plan.workers,
    )


def find_spots(
    sequences: list, params, checkpoints: Checkpoints | None = None, cluster_dir: Path | None = None
) -> SpotRows:
    """Find spots in every sequence, in order; returns the assembled rows.

    ``params`` have passed :func:`check_parameters` (the command checks them before reading any image);
    ``checkpoints`` (optional) stores finished blocks so that a rerun resumes; ``cluster_dir`` is
    where cluster jobs keep their logs and temporary credentials.
    """
    sf = params.spotfinder
    mp = sf.mp
    limits = SizeLimits(min_spot_size(sf.filter, sequences), sf.filter.max_spot_size)
    if limits.max_size <= limits.min_size:
        raise ParameterError(
            f"spotfinder.filter.max_spot_size={limits.max_size} must be greater than "
            f"min_spot_size={limits.min_size}"
        )
    log.info("Configuring spot finder from input parameters")
    auto_threshold = None
    nproc = resolve_nproc(mp.nproc)
    chunksize = None if mp.chunksize in (None, "Auto") else int(mp.chunksize)
    settings = result_settings(params)
    rows = SpotRows(experiments=experiments_of(sequences))
    images_of = [
        seq.image_numbers if e.image_index is None else [seq.image_numbers[e.image_index]]
        for e in rows.experiments
        for seq in [sequences[e.sequence_index]]
    ]
    rejected = rejected_frames(sf.exclude_images, sf.exclude_images_multiple, images_of)
    with Executors(mp, cluster_dir) as executors:
        for s, seq in enumerate(sequences):
            log.info("%s\nFinding strong spots in imageset %d\n%s", RULE, s, RULE)
            members = [e for e, x in enumerate(rows.experiments) if x.sequence_index == s]
            base = members[0]
            excluded = sorted(set().union(*(rejected[e] for e in members)))
            if excluded:
                log.info("Excluding image(s) %s from spot finding", ", ".join(map(str, excluded)))
            seq = with_maximum_trusted_value(seq, params.maximum_trusted_value)
            threshold = make_threshold(sf.threshold, SequenceGeometry(seq.detector, seq.beam), auto_threshold)
            finder = StrongFinder(
                sequence=seq,
                static_masks=static_masks(seq, sf.filter, load_lookup_mask(sf.lookup.mask, seq.detector)),
                threshold=threshold,
                roi=check_roi(sf.region_of_interest, seq),
                rejected=frozenset(seq.frame(seq.image_numbers.index(n)) for n in excluded),
                max_strong_fraction=sf.filter.max_strong_pixel_fraction,
                compute_mean_background=sf.compute_mean_background,
            )
            three_d = not seq.is_still and not sf.force_2d
            key = run_key(seq.paths, settings, __version__) if checkpoints else ""
            seq_images: list[ImageStrong] = []
            hot = [np.zeros(0, np.int64) for _ in seq.detector]
            for j0, j1 in scan_ranges(seq, sf.scan_range):
                log.info("\nFinding spots in image %d to %d...", j0, j1)
                first = seq.image_numbers.index(j0)
                indices = range(first, first + (j1 - j0) + 1)
                auto_threshold = finder.fix_global_threshold(first)
                plan = plan_blocks(indices, nproc, mp.njobs or 1, chunksize, mp.min_chunksize or 1, mp.method)
                _log_plan(plan, mp.method)
                if plan.nproc > 1 and mp.method in (None, "none"):
                    load_compiled()  # before the local workers are forked
                executor = executors.get(plan.nproc, plan.njobs)
                images, spots = run_range(
                    finder,
                    plan,
                    three_d,
                    limits,
                    executor,
                    _log_image,
                    checkpoints,
                    f"{key}-{s}-{j0}-{j1}",
                    _box_grow(sf.filter.background_gradient),
                    keep_pixels=params.output.shoeboxes,
                )
                seq_images += images
                _add_range(rows, spots, finder, seq, base, limits, sf.filter, params.output.shoeboxes)
                if sf.write_hot_mask:
                    log.info("Found %d possible hot pixel(s)", sum(h.size for h in spots.hot))
                    hot = [np.union1d(a, b) for a, b in zip(hot, spots.hot, strict=True)]
            rows.images.append(seq_images)
            if sf.write_hot_mask:
                rows.hot_masks.append((f"{sf.hot_mask_prefix}_{s}.npy", hot_mask(finder.panel_shapes, hot)))
    return rows


def _log_image(im: ImageStrong) -> None:
    if im.mean_background is None:
        log.info("Found %d strong pixels on image %d", im.count, im.frame + 1)
    else:
        log.info(
            "Found %d strong pixels on image %d with average background %s",
            im.count,
            im.frame + 1,
            im.mean_background,
        )


def _box_grow(gradient) -> int | None:
    """How far the background-gradient boxes reach beyond a spot's bbox; None when that filter is off."""
    return (gradient.background_size or 0) + 1 if gradient.filter else None


def _filter_chain(seq, measures: list, boxes: list[list[np.ndarray]], filter_params) -> list[np.ndarray]:
    """Per-panel keep flags from DIALS's filter chain, run over the whole range's spots.

    ``boxes``: per panel, each spot's background-gradient box (used only when that filter is on)."""
    keeps = [np.ones(len(m.bbox), bool) for m in measures]
    total = sum(k.size for k in keeps)

    def run(name: str, keep_of_all: np.ndarray) -> None:
        before = sum(int(k.sum()) for k in keeps)
        parts = np.split(keep_of_all, np.cumsum([k.size for k in keeps])[:-1])
        for k, part in zip(keeps, parts, strict=True):
            k &= part
        log.info("Filtered %d of %d spots by %s", sum(int(k.sum()) for k in keeps), before, name)

    if filter_params.max_separation is not None:
        run(
            "peak-centroid distance",
            np.concatenate(
                [filters.peak_centroid(m.peak, m.xyz, filter_params.max_separation) for m in measures]
            )
            if total
            else np.zeros(0, bool),
        )
    gradient = filter_params.background_gradient
    if gradient.filter:
        trusted = [seq.detector[p].trusted_range for p, m in enumerate(measures) for _ in range(len(m.bbox))]
        every_box = [box for panel in boxes for box in panel]
        run("background gradient", filters.background_gradient(every_box, trusted, gradient.gradient_cutoff))
    if filter_params.spot_density.filter:
        xy = np.concatenate([m.xyz[:, :2] for m in measures]) if total else np.zeros((0, 2))
        run("spot density", filters.spot_density(xy))
    return keeps


def _add_range(rows, spots: RangeSpots, finder, seq, base, limits, filter_params, with_shoeboxes) -> None:
    """Measure and filter one scan range's components and append their rows."""
    log.info("\nExtracted %d spots", spots.n_extracted)
    log.info("Removed %d spots with size < %d pixels", spots.n_small, limits.min_size)
    n_kept = sum(len(m) for m in spots.panels)
    rows.count("extracted", spots.n_extracted)
    rows.count(f"size < {limits.min_size} px removed", spots.n_small)
    rows.count(f"size > {limits.max_size} px removed", spots.n_large)
    log.info("Removed %d spots with size > %d pixels", spots.n_large, limits.max_size)
    measures = spots.panels  # measured where each component was completed
    log.info("Calculated %d spot centroids", n_kept)
    log.info("Calculated %d spot intensities", n_kept)
    keeps = _filter_chain(seq, measures, spots.boxes, filter_params)
    rows.count("removed by the filter chain", n_kept - sum(int(k.sum()) for k in keeps))
    for p, (m, keep) in enumerate(zip(measures, keeps, strict=True)):
        n = int(keep.sum())
        if not n:
            continue
        kept = np.flatnonzero(keep)
        m = m.take(kept)
        bbox, xyz, var, inten = m.bbox, m.xyz, m.variance, m.intensity
        flags = np.full(n, STRONG, np.uint64)
        flags[m.n_over > 0] |= np.uint64(OVERLOADED)
        if seq.is_still:
            ids = base + (bbox[:, 4] - seq.frame(0))
        else:
            ids = np.full(n, base)
        rows.add("bbox", bbox)
        rows.add("flags", flags)
        rows.add("id", ids.astype(np.int32))
        rows.add("intensity.sum.value", inten)
        rows.add("intensity.sum.variance", np.abs(inten))
        rows.add("n_signal", (m.size - m.n_over).astype(np.int32))
        rows.add("panel", np.full(n, p, np.uint64))
        rows.add("xyzobs.px.value", xyz)
        rows.add("xyzobs.px.variance", var)
        if with_shoeboxes:
            comps = spots.pop_pixels(p)  # freed once boxed, before the table is written
            over = comps.values > upper_trusted(finder)[p]  # the overload rule the measures' n_over used
            sb = shoeboxes(comps, bbox, *finder.panel_shapes[p], p, invalid=over, rows=kept)
            rows.add("shoebox", sb)
