"""Spot finding on one block of consecutive images, and the exact merge of neighbouring blocks.

A block thresholds its images, labels their strong pixels and returns two kinds of components
per panel: *interior* ones, which cannot touch another block and are final (already size
filtered), and *edge* ones, which touch a frame shared with a neighbouring block and are kept
whole so the merge can join them. Labelling the union of all edge pixels again gives exactly the
components one labelling of the whole range would give, so results never depend on chunking.
Nothing here knows about executors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from findspots.spotfinder.labelling import label_pixels
from findspots.spotfinder.spots import Components, group_components
from findspots.spotfinder.strong import ImageStrong, StrongFinder

log = logging.getLogger("findspots")


@dataclass
class SizeLimits:
    """Inclusive component size limits, in strong pixels."""

    min_size: int
    max_size: int

    def split(self, comps: Components) -> tuple[Components, int, int]:
        """Keep components within limits; also return the counts too small and too large."""
        sizes = comps.sizes
        small = sizes < self.min_size
        large = sizes > self.max_size
        return comps.select(~(small | large)), int(small.sum()), int(large.sum())


@dataclass
class PanelResult:
    """One panel's components from a block (or a merged range)."""

    interior: Components
    edges: Components
    n_small: int = 0
    n_large: int = 0


@dataclass
class BlockResult:
    """What a block returns: per-image counts, per-panel components, and per-panel hot pixels.

    ``hot[p]`` holds the flat indices of panel p's pixels that are strong on every image of the
    block (candidate hot pixels; a range's hot pixels are the intersection over its blocks).
    """

    images: list[ImageStrong]
    panels: list[PanelResult] = field(default_factory=list)
    hot: list[np.ndarray] = field(default_factory=list)


def _empty() -> Components:
    return Components(np.zeros(0, np.int64), np.zeros(0), np.zeros(1, np.int64))


def _concat(parts: list[Components]) -> Components:
    """Concatenate component lists (pixel arrays and their group starts)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    starts = [np.zeros(1, np.int64)]
    offset = 0
    for p in parts:
        starts.append(p.start[1:] + offset)
        offset += p.start[-1]
    return Components(
        np.concatenate([p.keys for p in parts]),
        np.concatenate([p.values for p in parts]),
        np.concatenate(starts),
    )


def _label(keys: np.ndarray, values: np.ndarray, width: int, height: int, three_d: bool) -> Components:
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    labels, ncomp = label_pixels(keys, width, height, three_d)
    return group_components(keys, values, labels, ncomp)


def process_block(
    finder: StrongFinder,
    indices: range,
    open_first: bool,
    open_last: bool,
    three_d: bool,
    limits: SizeLimits,
) -> BlockResult:
    """Threshold the images ``indices`` of a sequence and label them.

    ``open_first``/``open_last`` say whether the block's first/last frame borders another
    block of the same range; components touching an open side are returned as edges.
    """
    images = [finder.find(i) for i in indices]
    result = BlockResult(images=[im.without_pixels() for im in images])
    if not images:
        return result
    first, last = images[0].frame, images[-1].frame
    for p, (width, height) in enumerate(finder.panel_shapes):
        npix = width * height
        keys = np.concatenate([im.idx[p] + np.int64(im.frame) * npix for im in images])
        values = np.concatenate([im.values[p] for im in images])
        comps = _label(keys, values, width, height, three_d)
        if three_d and len(comps) and (open_first or open_last):
            z = comps.keys // npix
            touch_first = np.zeros(len(comps), bool)
            touch_last = np.zeros(len(comps), bool)
            owner = np.repeat(np.arange(len(comps)), comps.sizes)
            if open_first:
                touch_first[owner[z == first]] = True
            if open_last:
                touch_last[owner[z == last]] = True
            is_edge = touch_first | touch_last
        else:
            is_edge = np.zeros(len(comps), bool)
        interior, small, large = limits.split(comps.select(~is_edge))
        result.panels.append(PanelResult(interior, comps.select(is_edge), small, large))
        result.hot.append(reduce(np.intersect1d, [im.idx[p] for im in images]))
    return result


@dataclass
class RangeSpots:
    """Final components of one scan range, per panel, in DIALS row order."""

    panels: list[Components]
    n_extracted: int
    n_small: int
    n_large: int
    hot: list[np.ndarray]  # per panel: flat indices strong on every image of the range


def merge_blocks(
    blocks: list[BlockResult], panel_shapes: list[tuple[int, int]], limits: SizeLimits
) -> RangeSpots:
    """Join edge components across block boundaries and order every component by first pixel."""
    out, extracted, small, large = [], 0, 0, 0
    for p, (width, height) in enumerate(panel_shapes):
        parts = [b.panels[p] for b in blocks if b.panels]
        edges = _concat([r.edges for r in parts])
        joined = _label(edges.keys, edges.values, width, height, True) if len(edges) else edges
        kept, j_small, j_large = limits.split(joined)
        comps = _concat([r.interior for r in parts] + [kept])
        if len(comps):
            order = np.argsort(comps.keys[comps.start[:-1]], kind="stable")
            comps = comps.take(order)
        p_small = sum(r.n_small for r in parts) + j_small
        p_large = sum(r.n_large for r in parts) + j_large
        out.append(comps)
        small += p_small
        large += p_large
        extracted += len(comps) + p_small + p_large
    hot = [reduce(np.intersect1d, [b.hot[p] for b in blocks if b.hot]) for p in range(len(panel_shapes))]
    return RangeSpots(out, extracted, small, large, hot)
