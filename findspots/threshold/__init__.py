"""Threshold algorithms behind one interface: ``fn(image, mask) -> strong`` (boolean arrays).

The algorithm is chosen by name (``spotfinder.threshold.algorithm``); every algorithm reads its
settings from the parameter tree once, when it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from findspots.errors import NotYetSupported, ParameterError
from findspots.threshold.dispersion import dispersion, dispersion_extended, min_count

Threshold = Callable[[np.ndarray, np.ndarray], np.ndarray]

_DISPERSION_FAMILY = {"dispersion": dispersion, "dispersion_extended": dispersion_extended}


def make_threshold(threshold_params) -> Threshold:
    """Build the threshold function selected by ``threshold.algorithm``."""
    name = threshold_params.algorithm
    if name not in _DISPERSION_FAMILY:
        raise NotYetSupported(f"spotfinder.threshold.algorithm={name}")
    p = threshold_params.dispersion
    if p.global_threshold in (None, "Auto"):
        raise NotYetSupported("spotfinder.threshold.dispersion.global_threshold=Auto")
    kernel = tuple(int(k) for k in p.kernel_size)
    min_count(kernel, p.min_local)  # validate once, before any image is read
    if p.gain is not None and p.gain <= 0:
        raise ParameterError(f"spotfinder.threshold.dispersion.gain={p.gain}: must be > 0")
    return partial(
        _DISPERSION_FAMILY[name],
        kernel_size=kernel,
        sigma_background=p.sigma_background,
        sigma_strong=p.sigma_strong,
        min_local=p.min_local,
        global_threshold=p.global_threshold,
        gain=p.gain,
    )
