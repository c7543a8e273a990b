"""Strong pixels of one image: corrected data, per-image mask, threshold, region of interest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from findspots.errors import TooManyStrongPixels
from findspots.spotfinder.arrays import ArrayRecord
from findspots.threshold import Threshold


@dataclass
class ImageStrong(ArrayRecord):
    """Strong pixels of one image: per panel, flat indices (ascending) and corrected values."""

    frame: int
    count: int
    idx: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    mean_background: float | None = None

    def without_pixels(self) -> ImageStrong:
        """The per-image summary only (what the log needs)."""
        return ImageStrong(self.frame, self.count, mean_background=self.mean_background)


@dataclass
class StrongFinder:
    """Finds strong pixels on the images of one sequence with fixed masks and settings.

    ``sequence`` is an image source (``get_raw``, ``get_corrected``, ``get_mask``, ``frame``);
    ``static_masks`` is one boolean array per panel (True = usable) from the filter parameters,
    ANDed with each image's own mask; ``roi`` is ``(x0, x1, y0, y1)`` or None; ``rejected`` holds
    frames whose threshold result is forced empty (``exclude_images``).
    """

    sequence: object
    static_masks: list[np.ndarray]
    threshold: Threshold
    roi: tuple[int, int, int, int] | None = None
    rejected: frozenset[int] = frozenset()
    max_strong_fraction: float | None = 0.25
    compute_mean_background: bool = False
    # the sequence's static masks ANDed with ours, made on first use (not pickled)
    _static: list[np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self):
        return {**self.__dict__, "_static": None}

    @property
    def panel_shapes(self) -> list[tuple[int, int]]:
        """(width, height) of each panel."""
        return [(m.shape[1], m.shape[0]) for m in self.static_masks]

    def _threshold(self, image: np.ndarray, mask: np.ndarray, panel: int) -> np.ndarray:
        if self.roi is None:
            return self.threshold(image, mask, panel=panel)
        x0, x1, y0, y1 = self.roi
        strong = np.zeros(image.shape, bool)
        strong[y0:y1, x0:x1] = self.threshold(
            image[y0:y1, x0:x1], mask[y0:y1, x0:x1], panel=panel, roi=self.roi
        )
        return strong

    def fix_global_threshold(self, index: int) -> float | None:
        """Estimate ``global_threshold=Auto`` once, from image ``index``'s first panel (ROI crop), into
        the finder's threshold; returns the value (None without Auto).

        DIALS estimates it in each process; fixing it here keeps results independent of chunking.
        """
        if not getattr(self.threshold, "auto", False):
            return None
        if self.threshold.global_threshold is None:
            image = self.sequence.get_corrected(index)[0]
            if self.roi is not None:
                x0, x1, y0, y1 = self.roi
                image = image[y0:y1, x0:x1]
            self.threshold = self.threshold.estimated_from(image)
        return self.threshold.global_threshold

    def find(self, index: int) -> ImageStrong:
        """Threshold image ``index`` of the sequence and check the strong-pixel fraction."""
        seq = self.sequence
        frame = seq.frame(index)
        raw = seq.get_raw(index)
        # uncorrected integer counts go to the threshold as they are (exact and faster there)
        exact_raw = not any(seq.corrections()) and all(r.dtype.kind in "iu" for r in raw)
        data = raw if exact_raw else seq.get_corrected(index, raw)
        result = ImageStrong(frame=frame, count=0)
        backgrounds = []
        if self._static is None:
            self._static = [s & f for s, f in zip(seq.static_masks(), self.static_masks, strict=True)]
        masks = seq.get_mask(index, raw, self._static)
        for p, (d, mask) in enumerate(zip(data, masks, strict=True)):
            if frame in self.rejected:
                strong = np.zeros(d.shape, bool)
            else:
                strong = self._threshold(d, mask, p)
            idx = np.flatnonzero(strong)
            result.idx.append(idx.astype(np.int64))
            result.values.append(d.ravel()[idx].astype(np.float64))
            result.count += idx.size
            if self.compute_mean_background:
                background = mask & ~strong
                backgrounds.append(float(d[background].mean()) if background.any() else 0.0)
        if backgrounds:
            result.mean_background = sum(backgrounds) / len(backgrounds)
        self._check_fraction(result, sum(r.size for r in raw), index)
        return result

    def _check_fraction(self, result: ImageStrong, npixels: int, index: int) -> None:
        fraction = self.max_strong_fraction
        if fraction is None or fraction >= 1:
            return
        allowed = math.ceil(fraction * npixels)
        if result.count > allowed:
            raise TooManyStrongPixels(
                f"image {result.frame + 1} ({self.sequence.paths[index]}): {result.count} strong pixels "
                f"({result.count / npixels:.1%} of {npixels}) exceed the maximum {allowed} allowed by "
                f"spotfinder.filter.max_strong_pixel_fraction={fraction}; try changing spot finding "
                "parameters (e.g. a mask, sigma_strong or global_threshold)"
            )
