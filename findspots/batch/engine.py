"""Running one scan range as image blocks: resume, submit, log in image order, merge."""

from __future__ import annotations

import logging

from findspots.batch.checkpoint import Checkpoints
from findspots.batch.executor_base import Executor
from findspots.batch.plan import Plan
from findspots.batch.progress import Progress
from findspots.spotfinder.blocks import (
    BlockResult,
    RangeSpots,
    SizeLimits,
    component_boxes,
    merge_blocks,
    process_block,
    upper_trusted,
)
from findspots.spotfinder.strong import ImageStrong

log = logging.getLogger("findspots")


class OrderedImageLog:
    """Emits per-image lines in image order, whatever order blocks finish in."""

    def __init__(self, nblocks: int, emit):
        self.results: list[BlockResult | None] = [None] * nblocks
        self.next = 0
        self.emit = emit

    def add(self, b: int, result: BlockResult) -> None:
        self.results[b] = result
        while self.next < len(self.results) and self.results[self.next] is not None:
            for image in self.results[self.next].images:
                self.emit(image)
            self.next += 1


def block_images(sequence, block: range) -> str:
    """The images of a block as the user numbers them, e.g. 'images 21-40 of x_#####.cbf'."""
    numbers = getattr(sequence, "image_numbers", None)
    first, last = (numbers[block[0]], numbers[block[-1]]) if numbers else (block[0] + 1, block[-1] + 1)
    images = f"image {first}" if first == last else f"images {first}-{last}"
    template = getattr(sequence, "template", None)
    return f"{images} of {template}" if template else images


def run_range(
    finder,
    plan: Plan,
    three_d: bool,
    limits: SizeLimits,
    executor: Executor,
    emit_image,
    checkpoints: Checkpoints | None = None,
    range_key: str = "",
    box_grow: int | None = None,
    keep_pixels: bool = True,
) -> tuple[list[ImageStrong], RangeSpots]:
    """Process the blocks of ``plan`` and merge them into the range's final components.

    ``box_grow`` (background_gradient on): every final component also gets its box, computed on the
    workers (see :mod:`findspots.spotfinder.blocks`). ``keep_pixels``: the final components keep
    their pixels (for shoeboxes); without, the parent holds only their measures.
    """
    n = len(plan.blocks)
    ordered = OrderedImageLog(n, emit_image)
    pixels = "-pixels" if keep_pixels else ""  # a block saved without pixels cannot serve shoeboxes
    keys = [f"{range_key}-{b[0]}-{b[-1]}{pixels}" for b in plan.blocks]
    todo = []
    for b, key in enumerate(keys):
        saved = checkpoints.load(key) if checkpoints else None
        if saved is not None:
            ordered.add(b, saved)
        else:
            todo.append(b)
    if len(todo) < n:
        log.info("Resumed %d of %d blocks from %s", n - len(todo), n, checkpoints.folder)
    tasks = [(plan.blocks[b], b > 0, b < n - 1, three_d, limits, box_grow, keep_pixels) for b in todo]
    progress = Progress(sum(len(plan.blocks[b]) for b in todo))

    def describe(i: int) -> str:
        return block_images(finder.sequence, plan.blocks[todo[i]])

    try:
        for i, result in executor.run(process_block, finder, tasks, describe):
            b = todo[i]
            if checkpoints is not None:
                checkpoints.save(keys[b], result)
            progress.update(len(plan.blocks[b]))
            ordered.add(b, result)
    finally:
        progress.close()
    images = [im for r in ordered.results for im in r.images]
    spots = merge_blocks(ordered.results, finder.panel_shapes, limits, upper_trusted(finder), keep_pixels)
    ordered.results.clear()  # the blocks' arrays are merged: free them before the boxes and the rows
    if box_grow is not None:
        _box_joined(finder, spots, box_grow, executor)
    return images, spots


def _box_joined(finder, spots: RangeSpots, grow: int, executor: Executor) -> None:
    """Fill in the boxes of the components joined across blocks, one worker task per panel."""
    joined = {p: spots.joined(p) for p in range(len(spots.panels))}
    joined = {p: idx for p, idx in joined.items() if idx.size}
    if not joined:
        return
    tasks = [(p, spots.panels[p].bbox[idx], grow) for p, idx in joined.items()]
    panels = list(joined)

    def describe(i: int) -> str:
        return f"the boxes of {len(joined[panels[i]])} spot(s) across blocks on panel {panels[i]}"

    for i, boxes in executor.run(component_boxes, finder, tasks, describe):
        for k, box in zip(joined[panels[i]], boxes.to_list(), strict=True):
            spots.boxes[panels[i]][k] = box
