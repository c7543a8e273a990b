"""Blocks merged across their boundaries give exactly the components of one labelling.

Property test: random sparse strong pixels in a small sweep (spots crossing block edges and
spots longer than a block), cut into random blocks.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from findspots.spotfinder.blocks import SizeLimits, merge_blocks, process_block
from findspots.spotfinder.strong import ImageStrong

W, H = 12, 9


class FakeFinder:
    """Strong pixels given per frame: what a StrongFinder would return."""

    def __init__(self, frames):
        self.frames = frames
        self.panel_shapes = [(W, H)]

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


def merged(finder, bounds, three_d, limits):
    blocks = []
    for b, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        blocks.append(process_block(finder, range(start, stop), b > 0, b < len(bounds) - 2, three_d, limits))
    return merge_blocks(blocks, finder.panel_shapes, limits)


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
    a, b = whole.panels[0], chunked.panels[0]
    np.testing.assert_array_equal(a.start, b.start)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.values, b.values)
