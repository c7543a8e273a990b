"""The hot-pixel mask: pixels strong on every image of a scan range (docs/dials-behaviour.md#hot-mask).

Written as a NumPy ``.npy`` boolean array (True = good), 2D for a single panel and 3D (panel,
slow, fast) for several, which ``spotfinder.lookup.mask`` reads back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def hot_mask(shapes: list[tuple[int, int]], hot: list[np.ndarray]) -> list[np.ndarray]:
    """Per-panel masks (True = good) from each panel's hot flat indices; shapes are (width, height)."""
    masks = []
    for (width, height), idx in zip(shapes, hot, strict=True):
        mask = np.ones(height * width, bool)
        mask[idx] = False
        masks.append(mask.reshape(height, width))
    return masks


def write_hot_mask(path: str | Path, masks: list[np.ndarray]) -> None:
    """Save the masks atomically as one ``.npy`` file."""
    path = Path(path)
    array = masks[0] if len(masks) == 1 else np.stack(masks)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
