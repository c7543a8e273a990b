"""What the parent keeps of the spots: measures taken where a component is completed, shoeboxes of
selected rows without a copy of their pixels, and table columns held once."""

import numpy as np

from findspots.app.pipeline import SpotRows
from findspots.spotfinder.labelling import label_pixels
from findspots.spotfinder.spots import FOREGROUND, VALID, group_components, measure, shoeboxes

W, H = 10, 8


def components(pixels):
    """pixels: {(z, y, x): value}, labelled in 3-D."""
    keys = np.array([z * W * H + y * W + x for z, y, x in pixels], np.int64)
    values = np.array(list(pixels.values()), float)
    order = np.argsort(keys)
    labels, n = label_pixels(keys[order], W, H, True)
    return group_components(keys[order], values[order], labels, n)


# three spots: a 2-pixel one on frame 0, a 3-pixel one across frames 0-1 with one pixel above 50
# (overloaded), a 1-pixel one on frame 1
COMPS = components({(0, 1, 1): 5, (0, 1, 2): 7, (0, 5, 5): 60, (1, 5, 5): 9, (1, 5, 6): 3, (1, 7, 0): 2})


def test_measure_counts_first_pixel_size_and_overloaded_pixels():
    m = measure(COMPS, W, H, upper=50.0)
    assert m.first.tolist() == [11, 55, 150]  # (0,1,1), (0,5,5), (1,7,0)
    assert m.size.tolist() == [2, 3, 1]
    assert m.n_over.tolist() == [0, 1, 0]
    assert m.bbox.tolist() == [[1, 3, 1, 2, 0, 1], [5, 7, 5, 6, 0, 2], [0, 1, 7, 8, 1, 2]]
    assert measure(COMPS, W, H).n_over.tolist() == [0, 0, 0]  # no upper value: nothing overloaded
    picked = m.take(np.array([2, 0]))
    assert picked.first.tolist() == [150, 11] and picked.size.tolist() == [1, 2]


def test_shoeboxes_of_selected_rows_equal_those_of_the_selected_components():
    m = measure(COMPS, W, H, upper=50.0)
    over = COMPS.values > 50.0
    rows = np.array([1, 2])
    ours = shoeboxes(COMPS, m.bbox[rows], W, H, 0, invalid=over, rows=rows)
    selected = COMPS.take(rows)
    theirs = shoeboxes(selected, m.bbox[rows], W, H, 0, invalid=selected.values > 50.0)
    for name in ("panel", "bbox", "offsets", "data", "mask", "background"):
        assert getattr(ours, name).tobytes() == getattr(theirs, name).tobytes(), name
    data, mask, _ = ours.get(0)  # spot 1: 2 frames x 1 row x 2 columns
    assert data.ravel().tolist() == [60, 0, 9, 3]
    assert mask.ravel().tolist() == [FOREGROUND, 0, VALID | FOREGROUND, VALID | FOREGROUND]


def test_table_joins_each_column_once_and_keeps_only_the_joined_column():
    rows = SpotRows()
    rows.add("bbox", np.zeros((2, 6), np.int32))
    rows.add("bbox", np.ones((1, 6), np.int32))
    rows.add("id", np.array([0, 0, 1], np.int32))
    table = rows.table()
    assert table["bbox"].tolist() == [[0] * 6, [0] * 6, [1] * 6]
    assert table["id"].tolist() == [0, 0, 1]
    assert [len(parts) for parts in rows.columns.values()] == [1, 1]
    assert rows.columns["bbox"][0] is table["bbox"]  # held once, not copied again
    assert len(rows) == 3
