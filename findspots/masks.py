"""Static per-panel masks built once per sequence from the filter parameters (SPEC §2.3)."""

from __future__ import annotations

import numpy as np

from findspots.errors import NotYetSupported, ParameterError


def apply_border(mask: np.ndarray, border: int) -> None:
    """Clear ``border`` rows and columns at every edge of ``mask`` (in place)."""
    if border and border > 0:
        mask[:border, :] = False
        mask[-border:, :] = False
        mask[:, :border] = False
        mask[:, -border:] = False


def static_masks(sequence, filter_params) -> list[np.ndarray]:
    """Panel masks (True = usable) from the filter parameters; the detector's own come per image."""
    f = filter_params
    if f.d_min is not None and f.d_max is not None and f.d_min > f.d_max:
        raise ParameterError(
            f"spotfinder.filter.d_min={f.d_min} > spotfinder.filter.d_max={f.d_max}: no spots will be found"
        )
    for name in ("d_min", "d_max"):
        if getattr(f, name) is not None:
            raise NotYetSupported(f"spotfinder.filter.{name}")
    if f.resolution_range:
        raise NotYetSupported("spotfinder.filter.resolution_range")
    if f.untrusted:
        raise NotYetSupported("spotfinder.filter.untrusted")
    if f.ice_rings.filter:
        raise NotYetSupported("spotfinder.filter.ice_rings.filter=True")
    masks = []
    for panel in sequence.detector:
        mask = np.ones(panel.shape, bool)
        apply_border(mask, f.border)
        masks.append(mask)
    return masks
