"""Spot-for-spot comparison of a findspots table with a DIALS reference
(docs/dials-behaviour.md#comparing)."""

from __future__ import annotations

import numpy as np

from findspots.output.refl import Shoeboxes

COLUMNS = (
    "bbox",
    "flags",
    "id",
    "panel",
    "n_signal",
    "intensity.sum.value",
    "intensity.sum.variance",
    "xyzobs.px.value",
    "xyzobs.px.variance",
)


def assert_same_spots(ours, ref, rtol: float = 1e-6, atol: float = 1e-6) -> int:
    """Assert equal row count and order, integer columns equal, float columns to ``rtol``.

    ``ours`` and ``ref`` map column names to arrays (a ReflectionTable or an npz works).
    Returns the number of rows compared.
    """
    n_ours, n_ref = len(ours["bbox"]), len(ref["bbox"])
    assert n_ours == n_ref, f"{n_ours} spots found, DIALS found {n_ref}"
    for name in COLUMNS:
        a, b = np.asarray(ours[name]), np.asarray(ref[name])
        if a.dtype.kind == "f":
            close = np.isclose(a, b, rtol=rtol, atol=atol)
            bad = np.flatnonzero(~close.reshape(n_ref, -1).all(axis=1))
        else:
            bad = np.flatnonzero((a.astype(np.int64) != b.astype(np.int64)).reshape(n_ref, -1).any(axis=1))
        assert bad.size == 0, (
            f"{name}: {bad.size} rows differ, first row {bad[0]}: {a[bad[0]]} != {b[bad[0]]}"
        )
    return n_ref


def assert_same_shoeboxes(ours: Shoeboxes, ref: Shoeboxes) -> None:
    """Shoebox boxes, data and masks identical."""
    np.testing.assert_array_equal(ours.bbox, ref.bbox)
    np.testing.assert_array_equal(ours.offsets, ref.offsets)
    np.testing.assert_array_equal(ours.data, ref.data)
    np.testing.assert_array_equal(ours.mask, ref.mask)
    np.testing.assert_array_equal(ours.background, ref.background)
