"""Blocks merged across their boundaries give exactly the components of one labelling.

Property test: random sparse strong pixels in a small sweep (spots crossing block edges and
spots longer than a block), cut into random blocks.
"""

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from findspots.batch.engine import run_range
from findspots.batch.executor_base import InProcessExecutor
from findspots.batch.plan import Plan
from findspots.spotfinder.blocks import SizeLimits, flattened_boxes, merge_blocks, process_block
from findspots.spotfinder.spots import measure
from findspots.spotfinder.strong import ImageStrong

W, H = 12, 9
UPPER = 90.0  # pixel values above it are overloaded


class FakeSequence:
    """Corrected images of one panel, frame i at index i (what the background-gradient boxes read)."""

    def __init__(self, images):
        self.images = images
        self.detector = [SimpleNamespace(image_size=(W, H), trusted_range=(-1, UPPER))]

    def frame(self, index):
        return index

    def get_corrected(self, index):
        return [self.images[index]]


class FakeFinder:
    """Strong pixels given per frame: what a StrongFinder would return."""

    def __init__(self, frames):
        self.frames = frames
        self.panel_shapes = [(W, H)]
        rng = np.random.default_rng(len(frames))
        self.sequence = FakeSequence([rng.normal(50, 20, (H, W)) for _ in frames])

    def find(self, index):
        idx, values = self.frames[index]
        return ImageStrong(index, idx.size, [idx], [values])


@st.composite
def sweeps(draw):
    nframes = draw(st.integers(2, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.floats(0.05, 0.5))
    frames = []
    # long columns through many frames make spots longer than a block
    column = rng.random((H, W)) < density / 3
    for _ in range(nframes):
        strong = (rng.random((H, W)) < density) | column
        idx = np.flatnonzero(strong).astype(np.int64)
        frames.append((idx, rng.integers(1, 100, idx.size).astype(float)))
    cuts = sorted(draw(st.sets(st.integers(1, nframes - 1), max_size=nframes - 1)))
    return frames, cuts


def merged(finder, bounds, three_d, limits, keep_pixels=True):
    blocks = []
    for b, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        last = b < len(bounds) - 2
        blocks.append(
            process_block(finder, range(start, stop), b > 0, last, three_d, limits, keep_pixels=keep_pixels)
        )
    return merge_blocks(blocks, finder.panel_shapes, limits, [UPPER], keep_pixels)


@settings(max_examples=150, deadline=None)
@given(sweeps(), st.sampled_from([(1, 1000), (3, 1000), (2, 6)]), st.booleans())
def test_any_chunking_equals_one_block(sweep, size_limits, three_d):
    frames, cuts = sweep
    finder = FakeFinder(frames)
    limits = SizeLimits(*size_limits)
    whole = merged(finder, [0, len(frames)], three_d, limits)
    chunked = merged(finder, [0, *cuts, len(frames)], three_d, limits)
    assert (chunked.n_extracted, chunked.n_small, chunked.n_large) == (
        whole.n_extracted,
        whole.n_small,
        whole.n_large,
    )
    a, b = whole.pixels[0], chunked.pixels[0]
    np.testing.assert_array_equal(a.start, b.start)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.values, b.values)
    # the measures, taken where each component was completed, are those of the final pixels
    expected = measure(a, W, H, UPPER).to_arrays()
    without_pixels = merged(finder, [0, *cuts, len(frames)], three_d, limits, keep_pixels=False)
    assert len(without_pixels.pixels[0]) == 0
    for m in (whole.panels[0], chunked.panels[0], without_pixels.panels[0]):
        got = m.to_arrays()
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name].tobytes() == value.tobytes(), name


@settings(max_examples=60, deadline=None)
@given(sweeps(), st.booleans())
def test_background_gradient_boxes_of_any_chunking_equal_those_read_after_the_merge(sweep, three_d):
    # the boxes come from the blocks (interior spots) and from worker tasks (spots joined across
    # blocks); they must equal the boxes read for the final spots from the images, to the last bit
    frames, cuts = sweep
    finder = FakeFinder(frames)
    limits = SizeLimits(1, 1000)
    blocks = tuple(range(a, b) for a, b in zip([0, *cuts], [*cuts, len(frames)], strict=True))
    plan = Plan(blocks, 1, 1, 1, None)
    _, spots = run_range(finder, plan, three_d, limits, InProcessExecutor(), lambda im: None, box_grow=2)
    comps = spots.pixels[0]
    expected = flattened_boxes(finder.sequence, 0, measure(comps, W, H).bbox, 2)
    assert len(spots.boxes[0]) == len(comps) == len(expected)
    for ours, theirs in zip(spots.boxes[0], expected, strict=True):
        assert ours.shape == theirs.shape
        assert ours.tobytes() == theirs.tobytes()


def test_a_spot_joined_across_blocks_gets_its_box_from_every_frame():
    # one 2x2 spot on frames 0-3, cut after frame 1: its box sums the four frames' data
    idx = np.array([13, 14, 25, 26], np.int64)
    frames = [(idx, np.full(4, 10.0))] * 4
    finder = FakeFinder(frames)
    plan = Plan((range(0, 2), range(2, 4)), 1, 1, 2, None)
    merged_only = merge_blocks(
        [
            process_block(finder, b, i > 0, i < 1, True, SizeLimits(1, 100), 1)
            for i, b in enumerate(plan.blocks)
        ],
        finder.panel_shapes,
        SizeLimits(1, 100),
        [UPPER],
    )
    assert merged_only.joined(0).tolist() == [0]  # no block saw the whole spot
    _, spots = run_range(
        finder, plan, True, SizeLimits(1, 100), InProcessExecutor(), lambda im: None, box_grow=1
    )
    images = finder.sequence.images
    np.testing.assert_array_equal(spots.boxes[0][0], sum(im[0:4, 0:4] for im in images))
