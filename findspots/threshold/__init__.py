"""Threshold algorithms behind one interface.

``make_threshold(threshold_params, geometry=None)`` builds the algorithm named by
``spotfinder.threshold.algorithm`` (``dispersion``, ``dispersion_extended``, ``radial_profile`` or
``helen``), reading and checking its settings once. The result is a picklable callable object:

    strong = threshold(image, mask, panel=0, roi=None)

- ``image``: float64 2D array, one panel's corrected data (or its region-of-interest crop);
- ``mask``: bool array of the same shape, True = usable;
- ``panel``: the panel's index in the detector (only ``radial_profile`` uses it, to pick the 2θ
  array; ``helen`` uses it to name its debug files);
- ``roi``: ``(x0, x1, y0, y1)`` when ``image`` is the crop ``[y0:y1, x0:x1]`` of the panel, else
  None (only ``radial_profile`` uses it, to crop the 2θ array the same way);
- returns a bool array of the image's shape, True = strong.

``fn(image, mask)`` keeps working for single-panel callers without a region of interest.

``geometry`` is needed by ``radial_profile`` only: a callable ``geometry(panel_index) -> 2θ array``
(radians, shape (nslow, nfast) of the whole panel), optionally with a ``gain(panel_index)``
method giving the panel gain (1.0 otherwise); :class:`findspots.threshold.radial_profile.
SequenceGeometry` (detector, beam) is one, and pickles, which a lambda does not.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np

from findspots.errors import ParameterError
from findspots.phil import Auto
from findspots.threshold.dispersion import dispersion, dispersion_extended, min_count
from findspots.threshold.global_auto import estimate_global_threshold
from findspots.threshold.helen import HelenThreshold
from findspots.threshold.radial_profile import RadialProfileThreshold, SequenceGeometry

log = logging.getLogger("findspots")

Threshold = Callable[..., np.ndarray]

_DISPERSION_FAMILY = {"dispersion": dispersion, "dispersion_extended": dispersion_extended}

__all__ = [
    "DispersionThreshold",
    "HelenThreshold",
    "RadialProfileThreshold",
    "SequenceGeometry",
    "Threshold",
    "estimate_global_threshold",
    "make_threshold",
]


class DispersionThreshold:
    """``dispersion`` / ``dispersion_extended`` callable (calling convention: module docstring).

    ``global_threshold`` is the value used; with ``global_threshold=Auto`` (``auto`` True) it is None
    until the caller makes the threshold to use with :meth:`estimated_from` (the first image of the
    run) or :meth:`with_global_threshold` (a value estimated before). The value is fixed before the
    object is sent to any worker, so the spots never depend on chunking or processes.

    Deliberate difference from DIALS: DIALS re-estimates in every worker process (each pickled task
    estimates from its own first image), so its spots can depend on nproc and chunking; here the
    estimate is made once and shared, which matches a serial DIALS run (nproc=1), whose first
    image sets the value for the whole run.
    """

    def __init__(
        self,
        algorithm: str,
        kernel_size: tuple[int, int],
        sigma_background: float,
        sigma_strong: float,
        min_local: int,
        global_threshold,
        gain: float | None,
    ):
        self.algorithm = algorithm
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.sigma_background = sigma_background
        self.sigma_strong = sigma_strong
        self.min_local = min_local
        self.gain = gain
        self.auto = global_threshold is Auto or global_threshold == "Auto"
        self.global_threshold: float | None = None if self.auto else float(global_threshold)

    def with_global_threshold(self, value: float) -> DispersionThreshold:
        """This threshold with the ``global_threshold=Auto`` value fixed to ``value``."""
        fixed = copy.copy(self)
        fixed.global_threshold = float(value)
        return fixed

    def estimated_from(self, image: np.ndarray) -> DispersionThreshold:
        """This threshold with the ``global_threshold=Auto`` value estimated from ``image`` (logged)."""
        value = estimate_global_threshold(image)
        log.info("Setting global_threshold: %i", value)
        return self.with_global_threshold(value)

    def __call__(self, image: np.ndarray, mask: np.ndarray, panel: int = 0, roi=None) -> np.ndarray:
        if self.global_threshold is None:
            raise ValueError("global_threshold=Auto has no value yet: set it with with_global_threshold()")
        return _DISPERSION_FAMILY[self.algorithm](
            image,
            mask,
            kernel_size=self.kernel_size,
            sigma_background=self.sigma_background,
            sigma_strong=self.sigma_strong,
            min_local=self.min_local,
            global_threshold=self.global_threshold,
            gain=self.gain,
        )


def _dispersion(name: str, p) -> DispersionThreshold:
    where = "spotfinder.threshold.dispersion"
    for field in ("kernel_size", "min_local", "sigma_background", "sigma_strong"):
        if getattr(p, field) is None:
            raise ParameterError(f"{where}.{field}=None: a value is needed")
    if len(p.kernel_size) != 2 or not all(0 <= k <= 1000 for k in p.kernel_size):
        raise ParameterError(
            f"{where}.kernel_size={','.join(map(str, p.kernel_size))}: "
            "two half-sizes between 0 and 1000 are needed"
        )
    kernel = tuple(int(k) for k in p.kernel_size)
    min_count(kernel, p.min_local)  # validate once, before any image is read
    if p.gain is not None and p.gain <= 0:
        raise ParameterError(f"spotfinder.threshold.dispersion.gain={p.gain}: must be > 0")
    g = p.global_threshold
    if g is None or (isinstance(g, str) and g != "Auto"):
        raise ParameterError(
            f"spotfinder.threshold.dispersion.global_threshold={g}: a number or Auto is needed"
        )
    return DispersionThreshold(name, kernel, p.sigma_background, p.sigma_strong, p.min_local, g, p.gain)


def make_threshold(
    threshold_params, geometry: Callable | None = None, auto_global_threshold: float | None = None
) -> Threshold:
    """Build the threshold callable selected by ``threshold.algorithm`` (see the module docstring).

    ``radial_profile`` may be built without ``geometry`` (to check the parameters); calling it then
    raises :class:`ParameterError`. ``auto_global_threshold``: the value of dispersion's
    ``global_threshold=Auto`` when the caller has estimated it already (ignored for a number)."""
    name = threshold_params.algorithm
    if name in _DISPERSION_FAMILY:
        threshold = _dispersion(name, threshold_params.dispersion)
        if threshold.auto and auto_global_threshold is not None:
            return threshold.with_global_threshold(auto_global_threshold)
        return threshold
    if name == "radial_profile":
        p = threshold_params.radial_profile
        return RadialProfileThreshold(p.n_iqr, p.blur, p.n_bins, geometry)
    if name == "helen":
        p = threshold_params.helen
        return HelenThreshold(
            p.exp_spot_dimension, p.global_threshold, p.min_blob_score, p.num_passes, p.debug
        )
    raise ParameterError(f"spotfinder.threshold.algorithm={name}: unknown algorithm")
