"""Spot finding on one block of consecutive images, and the exact merge of neighbouring blocks.

A block thresholds its images, labels their strong pixels and returns two kinds of components
per panel: *interior* ones, which cannot touch another block and are final (already size
filtered and measured: their pixels travel only when the caller keeps them, for shoeboxes), and
*edge* ones, which touch a frame shared with a neighbouring block and are kept whole so the merge
can join them. Labelling the union of all edge pixels again gives exactly the
components one labelling of the whole range would give, so results never depend on chunking.

With ``spotfinder.filter.background_gradient`` on, a block also returns the data the filter needs for
its interior components (see :func:`flattened_boxes`); a component joined across blocks gets its box
from :func:`component_boxes`, run on a worker too, since no single block sees its whole bounding box.
Nothing here knows about executors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from findspots.spotfinder.arrays import ArrayRecord
from findspots.spotfinder.labelling import label_pixels
from findspots.spotfinder.spots import Components, SpotMeasures, gather_measures, group_components, measure
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
class SpotBoxes(ArrayRecord):
    """2-D boxes of image data, one per spot, packed: box k has shape ``shape[k]`` (rows, columns)."""

    data: np.ndarray  # float64, every box raveled, in order
    shape: np.ndarray  # int64 (N, 2)

    @classmethod
    def from_list(cls, boxes: list[np.ndarray]) -> SpotBoxes:
        """Pack a list of 2-D float64 arrays."""
        data = np.concatenate([b.ravel() for b in boxes]) if boxes else np.zeros(0)
        return cls(data, np.array([b.shape for b in boxes], np.int64).reshape(-1, 2))

    def to_list(self) -> list[np.ndarray]:
        """The boxes as separate 2-D arrays."""
        ends = np.cumsum(self.shape[:, 0] * self.shape[:, 1])
        return [
            self.data[end - rows * cols : end].reshape(rows, cols)
            for (rows, cols), end in zip(self.shape, ends, strict=True)
        ]


def _no_boxes() -> SpotBoxes:
    return SpotBoxes(np.zeros(0), np.zeros((0, 2), np.int64))


def _no_measures() -> SpotMeasures:
    return measure(_empty(), 1, 1)


@dataclass
class PanelResult(ArrayRecord):
    """One panel's components from a block.

    ``measures`` are the interior components' measures; ``interior`` their pixels, only where the
    caller keeps them (else empty). ``boxes`` holds the background-gradient boxes of the interior
    components (empty when that filter is off).
    """

    interior: Components
    edges: Components
    n_small: int = 0
    n_large: int = 0
    boxes: SpotBoxes = field(default_factory=_no_boxes)
    measures: SpotMeasures = field(default_factory=_no_measures)


@dataclass
class BlockResult(ArrayRecord):
    """What a block returns: per-image counts, per-panel components, and per-panel hot pixels.

    ``hot[p]`` holds the flat indices of panel p's pixels that are strong on every image of the
    block (candidate hot pixels; a range's hot pixels are the intersection over its blocks).
    """

    images: list[ImageStrong]
    panels: list[PanelResult] = field(default_factory=list)
    hot: list[np.ndarray] = field(default_factory=list)


def _empty() -> Components:
    return Components(np.zeros(0, np.int64), np.zeros(0), np.zeros(1, np.int64))


def _gather(parts: list[Components], order: np.ndarray) -> Components:
    """The components of ``parts`` (as if concatenated) at indices ``order``, copied once."""
    sizes = np.concatenate([p.sizes for p in parts])[order]
    start = np.zeros(sizes.size + 1, np.int64)
    np.cumsum(sizes, out=start[1:])
    out = Components(np.empty(start[-1], np.int64), np.empty(start[-1]), start)
    at = np.empty(order.size, np.int64)
    at[order] = start[:-1]  # where each component, in concatenated order, goes
    offset = 0
    for part in parts:
        part.copy_into(out, np.arange(len(part)), at[offset : offset + len(part)])
        offset += len(part)
    return out


def _label(keys: np.ndarray, values: np.ndarray, width: int, height: int, three_d: bool) -> Components:
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    del order
    labels, ncomp = label_pixels(keys, width, height, three_d)
    return group_components(keys, values, labels, ncomp)


def _join_edges(parts: list[PanelResult], width: int, height: int) -> Components:
    """Label the union of the parts' edge pixels in 3-D; the parts' edges are released on the way."""
    keys = np.concatenate([r.edges.keys for r in parts]) if parts else np.zeros(0, np.int64)
    values = np.concatenate([r.edges.values for r in parts]) if parts else np.zeros(0)
    for r in parts:
        r.edges = _empty()
    return _label(keys, values, width, height, True) if keys.size else _empty()


def flattened_boxes(sequence, panel: int, bbox: np.ndarray, grow: int) -> list[np.ndarray]:
    """Corrected data summed over each spot's frames, over its bbox grown by ``grow`` in x and y.

    What ``spotfinder.filter.background_gradient`` fits its plane to; reads the frames again.
    """
    width, height = sequence.detector[panel].image_size
    x0 = np.maximum(bbox[:, 0] - grow, 0)
    x1 = np.minimum(bbox[:, 1] + grow, width)
    y0 = np.maximum(bbox[:, 2] - grow, 0)
    y1 = np.minimum(bbox[:, 3] + grow, height)
    boxes = [np.zeros((b - a, d - c)) for a, b, c, d in zip(y0, y1, x0, x1, strict=True)]
    first = sequence.frame(0)
    for frame in np.unique(np.concatenate([np.arange(b[4], b[5]) for b in bbox])) if len(bbox) else []:
        image = sequence.get_corrected(int(frame) - first)[panel]
        for i in np.flatnonzero((bbox[:, 4] <= frame) & (frame < bbox[:, 5])):
            boxes[i] += image[y0[i] : y1[i], x0[i] : x1[i]]
    return boxes


def component_boxes(finder: StrongFinder, panel: int, bbox: np.ndarray, grow: int) -> SpotBoxes:
    """The :func:`flattened_boxes` of spots of ``panel`` (a worker task for joined components)."""
    return SpotBoxes.from_list(flattened_boxes(finder.sequence, panel, bbox, grow))


def upper_trusted(finder: StrongFinder) -> list[float]:
    """Per panel, the value above which a pixel is overloaded."""
    return [float(panel.trusted_range[1]) for panel in finder.sequence.detector]


def process_block(
    finder: StrongFinder,
    indices: range,
    open_first: bool,
    open_last: bool,
    three_d: bool,
    limits: SizeLimits,
    box_grow: int | None = None,
    keep_pixels: bool = True,
) -> BlockResult:
    """Threshold the images ``indices`` of a sequence and label them.

    ``open_first``/``open_last`` say whether the block's first/last frame borders another
    block of the same range; components touching an open side are returned as edges.
    ``box_grow`` (background_gradient on) also returns the interior components' boxes;
    ``keep_pixels`` the interior components' pixels (for shoeboxes).
    """
    images = [finder.find(i) for i in indices]
    result = BlockResult(images=[im.without_pixels() for im in images])
    if not images:
        return result
    first, last = images[0].frame, images[-1].frame
    uppers = upper_trusted(finder)
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
        measures = measure(interior, width, height, uppers[p])
        edges = comps.select(is_edge)
        del comps
        panel = PanelResult(interior if keep_pixels else _empty(), edges, small, large, measures=measures)
        if box_grow is not None:
            panel.boxes = component_boxes(finder, p, measures.bbox, box_grow)
        result.panels.append(panel)
        result.hot.append(reduce(np.intersect1d, [im.idx[p] for im in images]))
    return result


@dataclass
class RangeSpots:
    """Final components of one scan range, per panel, in DIALS row order: their measures, and their
    pixels where kept (else empty)."""

    panels: list[SpotMeasures]
    pixels: list[Components]
    n_extracted: int
    n_small: int
    n_large: int
    hot: list[np.ndarray]  # per panel: flat indices strong on every image of the range
    # per panel and component, its background-gradient box: None for a component joined across blocks
    # until the caller fills it in with component_boxes (all None when the filter is off)
    boxes: list[list[np.ndarray | None]]

    def pop_pixels(self, panel: int) -> Components:
        """The pixels of ``panel``'s components, handed over: the range keeps none of them after."""
        pixels, self.pixels[panel] = self.pixels[panel], _empty()
        return pixels

    def joined(self, panel: int) -> np.ndarray:
        """Indices of the components of ``panel`` still without a box."""
        return np.array([i for i, b in enumerate(self.boxes[panel]) if b is None], np.int64)


def merge_blocks(
    blocks: list[BlockResult],
    panel_shapes: list[tuple[int, int]],
    limits: SizeLimits,
    uppers: list[float],
    keep_pixels: bool = True,
) -> RangeSpots:
    """Join edge components across block boundaries and order every component by first pixel.

    ``uppers``: per panel, the upper trusted value (see :func:`upper_trusted`); ``keep_pixels`` as
    the blocks were run with. The blocks' edge pixels are released as they are joined."""
    out, pixels, boxes, extracted, small, large = [], [], [], 0, 0, 0
    for p, (width, height) in enumerate(panel_shapes):
        parts = [b.panels[p] for b in blocks if b.panels]
        kept, j_small, j_large = limits.split(_join_edges(parts, width, height))
        every = [r.measures for r in parts] + [measure(kept, width, height, uppers[p])]
        # interior components whose block carried no box (filter off) stay None like the joined ones
        panel_boxes = [box for r in parts for box in r.boxes.to_list() or [None] * len(r.measures)] + [
            None
        ] * len(kept)
        order = np.argsort(np.concatenate([m.first for m in every]), kind="stable")
        measures = gather_measures(every, order)
        panel_boxes = [panel_boxes[i] for i in order]
        comps = _gather([r.interior for r in parts] + [kept], order) if keep_pixels else _empty()
        boxes.append(panel_boxes)
        p_small = sum(r.n_small for r in parts) + j_small
        p_large = sum(r.n_large for r in parts) + j_large
        out.append(measures)
        pixels.append(comps)
        small += p_small
        large += p_large
        extracted += len(measures) + p_small + p_large
    hot = [reduce(np.intersect1d, [b.hot[p] for b in blocks if b.hot]) for p in range(len(panel_shapes))]
    return RangeSpots(out, pixels, extracted, small, large, hot, boxes)
