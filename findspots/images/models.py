"""Experiment models (panel, detector, beam, goniometer, scan) and the ImageSequence image source.

Conventions follow dxtbx: the lab frame is the imgCIF frame, lengths are in mm, angles in degrees,
pixel (i, j) covers [i, i+1) x [j, j+1) so its centre is at (i + 0.5, j + 0.5), arrays are indexed
[slow, fast], mask rectangles are (x0, y0, x1, y1) half-open and the trusted range is inclusive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from findspots.errors import ImageError
from findspots.images.trusted import trusted_and_static

STILL_WIDTH = 1e-7  # |oscillation width| below this makes a scan "still" (dxtbx Scan::is_still)
GAIN_TOLERANCE = 1e-7  # a panel gain counts as "not 1" only beyond this (dxtbx imageset)


def _vec(v: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


def _unit(v: Sequence[float] | np.ndarray) -> np.ndarray:
    v = _vec(v)
    return v / np.linalg.norm(v)


def _close(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float], tol: float) -> bool:
    return bool(np.all(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) <= tol))


@dataclass(eq=False)
class Panel:
    """One flat detector panel (dxtbx Panel)."""

    image_size: tuple[int, int]  # (nfast, nslow)
    pixel_size: tuple[float, float]  # (fast, slow) mm
    trusted_range: tuple[float, float]  # inclusive: valid iff lo <= raw <= hi
    origin: np.ndarray  # lab position of the outer corner of pixel (0, 0), mm
    fast_axis: np.ndarray
    slow_axis: np.ndarray
    name: str = "Panel"
    type: str = "SENSOR_PAD"
    gain: float = 1.0
    pedestal: float = 0.0
    mask_rects: list[tuple[int, int, int, int]] = field(default_factory=list)
    thickness: float = 0.0
    material: str = ""
    mu: float | None = None
    raw_offset: tuple[int, int] = (0, 0)  # (x, y) of this panel inside the raw image array
    identifier: str = ""

    def __post_init__(self) -> None:
        self.origin = _vec(self.origin)
        self.fast_axis = _unit(self.fast_axis)
        self.slow_axis = _unit(self.slow_axis)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self.pixel_size = (float(self.pixel_size[0]), float(self.pixel_size[1]))
        self.trusted_range = (float(self.trusted_range[0]), float(self.trusted_range[1]))
        self.mask_rects = [tuple(int(v) for v in r) for r in self.mask_rects]

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape (nslow, nfast)."""
        return self.image_size[1], self.image_size[0]

    def static_mask(self) -> np.ndarray:
        """Boolean (nslow, nfast) array, True = valid, with the untrusted rectangles cleared."""
        mask = np.ones(self.shape, dtype=bool)
        nfast, nslow = self.image_size
        for x0, y0, x1, y1 in self.mask_rects:
            # Clip like dxtbx: rectangles may reach past the panel edge.
            x0, x1 = max(x0, 0), min(x1, nfast)
            y0, y1 = max(y0, 0), min(y1, nslow)
            if x0 < x1 and y0 < y1:
                mask[y0:y1, x0:x1] = False
        return mask

    def trusted_mask(self, raw: np.ndarray, static: np.ndarray | None = None) -> np.ndarray:
        """True where lo <= raw <= hi (both inclusive; the raw, uncorrected values), AND ``static``."""
        lo, hi = self.trusted_range
        if raw.dtype.kind in "iu":
            # Integer bounds compare exactly with the raw counts, without converting them to float.
            info = np.iinfo(raw.dtype)
            if np.ceil(lo) > info.max or np.floor(hi) < info.min:
                return np.zeros(raw.shape, dtype=bool)
            lo = raw.dtype.type(min(max(np.ceil(lo), info.min), info.max))
            hi = raw.dtype.type(max(min(np.floor(hi), info.max), info.min))
        else:
            # as numpy compares a float array with Python floats: in the array's own precision
            lo, hi = raw.dtype.type(lo), raw.dtype.type(hi)
        return trusted_and_static(raw, static, lo, hi)

    def pixel_to_lab(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Lab coordinates (..., 3) mm of pixel position (x, y); plain px->mm, no parallax correction.

        dxtbx Pilatus panels use a parallax-corrected px->mm strategy; this is the simple strategy
        (mm = px * pixel_size), which differs by up to about the sensor thickness times tan(2theta)."""
        x = np.asarray(x, dtype=np.float64)[..., None]
        y = np.asarray(y, dtype=np.float64)[..., None]
        return (
            self.origin
            + x * (self.pixel_size[0] * self.fast_axis)
            + y * (self.pixel_size[1] * self.slow_axis)
        )

    def resolution(self, wavelength: float, s0: np.ndarray) -> np.ndarray:
        """d-spacing (Å) at every pixel centre, (nslow, nfast); inf where s1 == s0 (the direct beam).

        d = 1 / |s1 - s0| with s1 = unit(lab) / wavelength, expanded so that only (nslow, nfast)
        arrays are formed (no (nslow, nfast, 3) temporaries)."""
        s0 = _vec(s0)
        a = self.pixel_size[0] * self.fast_axis
        b = self.pixel_size[1] * self.slow_axis
        o = self.origin
        x = (np.arange(self.image_size[0], dtype=np.float64) + 0.5)[None, :]
        y = (np.arange(self.image_size[1], dtype=np.float64) + 0.5)[:, None]
        norm2 = (
            o @ o
            + 2 * x * (o @ a)
            + 2 * y * (o @ b)
            + x * x * (a @ a)
            + y * y * (b @ b)
            + 2 * x * y * (a @ b)
        )
        dot_s0 = (o @ s0) + x * (a @ s0) + y * (b @ s0)
        cos_term = dot_s0 / np.sqrt(norm2)
        q2 = 1.0 / wavelength**2 - 2.0 * cos_term / wavelength + s0 @ s0
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(np.maximum(q2, 0.0))

    def is_similar_to(self, other: Panel, tol: float = 1e-6) -> bool:
        """Same size, pixel size, trusted range, mask and geometry (within tol mm / unit)."""
        return (
            self.image_size == other.image_size
            and _close(self.pixel_size, other.pixel_size, tol)
            and self.trusted_range == other.trusted_range
            and self.mask_rects == other.mask_rects
            and self.raw_offset == other.raw_offset
            and _close(self.origin, other.origin, tol)
            and _close(self.fast_axis, other.fast_axis, tol)
            and _close(self.slow_axis, other.slow_axis, tol)
            and self.gain == other.gain
            and self.pedestal == other.pedestal
        )


class Detector(list[Panel]):
    """A list of panels (most detectors have one)."""

    def is_similar_to(self, other: Detector, tol: float = 1e-6) -> bool:
        """True when both have the same number of panels and every pair is similar."""
        return len(self) == len(other) and all(
            p.is_similar_to(q, tol) for p, q in zip(self, other, strict=True)
        )


@dataclass(eq=False)
class Beam:
    """Monochromatic beam; direction points from the sample towards the source (dxtbx)."""

    wavelength: float
    direction: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    # carried to the experiment file only (spot finding does not use them)
    polarization_normal: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    polarization_fraction: float = 0.999
    flux: float = 0.0

    def __post_init__(self) -> None:
        self.wavelength = float(self.wavelength)
        self.direction = _unit(self.direction)
        self.polarization_normal = _vec(self.polarization_normal)
        self.polarization_fraction = float(self.polarization_fraction)
        self.flux = float(self.flux)

    @property
    def s0(self) -> np.ndarray:
        """Incident beam vector, -direction / wavelength (1/Å)."""
        return -self.direction / self.wavelength

    def is_similar_to(self, other: Beam, tol: float = 1e-6) -> bool:
        """Same wavelength, direction and polarization within tol (dxtbx's beam comparison)."""
        return (
            abs(self.wavelength - other.wavelength) <= tol
            and _close(self.direction, other.direction, tol)
            and _close(self.polarization_normal, other.polarization_normal, tol)
            and abs(self.polarization_fraction - other.polarization_fraction) <= tol
        )


def rotation_matrix(axis: Sequence[float] | np.ndarray, angle_deg: float) -> np.ndarray:
    """Right-handed rotation matrix about ``axis`` by ``angle_deg`` degrees."""
    x, y, z = _unit(axis)
    a = np.radians(angle_deg)
    c, s, t = np.cos(a), np.sin(a), 1.0 - np.cos(a)
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


@dataclass(eq=False)
class Goniometer:
    """Rotation axis in the lab frame (the effective scan axis for multi-axis goniometers).

    A multi-axis goniometer (dxtbx MultiAxisGoniometer) also keeps its ``axes`` (innermost first, at
    datum, normalised; ``given_axes`` as given, which dxtbx writes back), ``angles`` (degrees),
    ``names`` and ``scan_axis``; see ``Goniometer.multi_axis``."""

    rotation_axis: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    axes: np.ndarray | None = None
    angles: np.ndarray | None = None
    names: list[str] | None = None
    scan_axis: int = 0
    given_axes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rotation_axis = _unit(self.rotation_axis)

    @classmethod
    def multi_axis(
        cls, axes: Sequence, angles: Sequence[float], names: Sequence[str], scan_axis: int
    ) -> Goniometer:
        """Multi-axis goniometer; the rotation axis is the scan axis moved by the axes outside it."""
        axes_arr = np.array([_unit(a) for a in axes])
        angles_arr = np.asarray(angles, dtype=np.float64)
        gonio = cls(axes_arr[scan_axis], axes_arr, angles_arr, list(names), int(scan_axis))
        gonio.rotation_axis = _unit(gonio.setting_rotation @ axes_arr[scan_axis])
        gonio.given_axes = np.array([_vec(a) for a in axes])
        return gonio

    def _product(self, first: int, last: int) -> np.ndarray:
        """Rotations of axes [first, last) at their angles, innermost applied first."""
        out = np.identity(3)
        if self.axes is not None:
            for a, angle in zip(self.axes[first:last], self.angles[first:last], strict=True):
                out = rotation_matrix(a, angle) @ out
        return out

    @property
    def fixed_rotation(self) -> np.ndarray:
        """Rotation by the axes inside the scan axis (identity for a single-axis goniometer)."""
        return self._product(0, self.scan_axis)

    @property
    def setting_rotation(self) -> np.ndarray:
        """Rotation by the axes outside the scan axis (identity for a single-axis goniometer)."""
        return self._product(self.scan_axis + 1, 0 if self.axes is None else len(self.axes))

    @property
    def is_multi_axis(self) -> bool:
        """True for a multi-axis goniometer model."""
        return self.axes is not None

    def is_similar_to(self, other: Goniometer, tol: float = 1e-6) -> bool:
        """Same rotation axis, fixed and setting rotations within tol (dxtbx's goniometer comparison)."""
        return (
            _close(self.rotation_axis, other.rotation_axis, tol)
            and _close(self.fixed_rotation, other.fixed_rotation, tol)
            and _close(self.setting_rotation, other.setting_rotation, tol)
        )


@dataclass(eq=False)
class Scan:
    """Rotation scan: 1-based inclusive image range and (start, width) of the first image, degrees."""

    image_range: tuple[int, int]
    oscillation: tuple[float, float]
    exposure_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.image_range = (int(self.image_range[0]), int(self.image_range[1]))
        self.oscillation = (float(self.oscillation[0]), float(self.oscillation[1]))
        self.exposure_times = np.asarray(self.exposure_times, dtype=np.float64)
        self.epochs = np.asarray(self.epochs, dtype=np.float64)

    @property
    def array_range(self) -> tuple[int, int]:
        """0-based half-open frame range (first - 1, last)."""
        return self.image_range[0] - 1, self.image_range[1]

    @property
    def num_images(self) -> int:
        """Number of images in the scan."""
        return self.image_range[1] - self.image_range[0] + 1

    @property
    def is_still(self) -> bool:
        """True when |oscillation width| < 1e-7 (stills and grid scans)."""
        return abs(self.oscillation[1]) < STILL_WIDTH

    def angle_at_frame(self, frame: float) -> float:
        """Rotation angle (deg) at a 0-based frame coordinate (frame = array_range[0] is the scan start)."""
        return self.oscillation[0] + (frame - self.array_range[0]) * self.oscillation[1]

    def sub(self, first_index: int, last_index: int) -> Scan:
        """The scan of images [first_index, last_index) (0-based positions within this scan)."""
        if not 0 <= first_index < last_index <= self.num_images:
            raise IndexError(f"scan slice [{first_index}, {last_index}) outside 0..{self.num_images}")
        first = self.image_range[0] + first_index
        return Scan(
            image_range=(first, self.image_range[0] + last_index - 1),
            oscillation=(self.oscillation[0] + first_index * self.oscillation[1], self.oscillation[1]),
            exposure_times=self.exposure_times[first_index:last_index],
            epochs=self.epochs[first_index:last_index],
        )


@runtime_checkable
class FrameReader(Protocol):
    """Reads image ``number`` stored at ``path``: a whole (slow, fast) array or one array per panel.

    Readers are pickled to worker processes, so they must open files lazily in each process."""

    def read(self, path: str, number: int) -> np.ndarray | list[np.ndarray]:
        """Raw pixel data of one image."""
        ...


@runtime_checkable
class ShadowMasker(Protocol):
    """Dynamic (scan-angle dependent) mask, e.g. a goniometer shadow (dxtbx ``dynamic_shadowing``)."""

    def mask(self, detector: Detector, scan_angle: float) -> list[np.ndarray]:
        """One bool array per panel, True = not shadowed, at ``scan_angle`` degrees."""
        ...


@dataclass
class ScanInfo:
    """Per-image scan values read from a header."""

    start_angle: float
    angle_increment: float
    exposure_time: float
    epoch: float


@dataclass(eq=False)
class FileModels:
    """What the header of a one-image file gives: the models, this image's scan values, the format's
    dynamic shadow (if it has one) and what the image is (for logs and experiment files)."""

    detector: Detector
    beam: Beam
    goniometer: Goniometer
    scan: ScanInfo
    shadow: ShadowMasker | None
    format_name: str


@dataclass(eq=False)
class ImageSequence:
    """An ordered set of images sharing one detector, beam and goniometer: the program's image source.

    Rotation data and stills/grid scans (zero oscillation, ``is_still``) both use this class; a
    still sequence is labelled in 2D (SPEC §3.1). ``reader`` is either a function of the file path
    (one image per file, e.g. CBF) or a ``FrameReader`` (e.g. HDF5, where many images share a file)."""

    paths: list[str]
    image_numbers: list[int]
    detector: Detector
    beam: Beam
    goniometer: Goniometer | None
    scan: Scan
    template: str
    reader: Callable[[str], np.ndarray] | FrameReader
    external_mask: list[np.ndarray] | None = None  # lookup mask, one bool array per panel, True = good
    split_reason: str | None = None  # why this sequence was split off from the previous one, if it was
    format_mask: list[np.ndarray] | None = None  # the format's static mask (e.g. NeXus pixel_mask == 0)
    shadow: ShadowMasker | None = None  # dynamic goniometer shadow, applied per image at its angle
    format_name: str = ""  # what the images are (for logs and experiment files)
    dynamic_shadowing: bool | str = "Auto"  # as dials.import's imageset parameter
    identifiers: list[str] = field(default_factory=list)  # of its experiments, when read from a file
    _static: list[np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.image_numbers) or len(self.paths) != self.scan.num_images:
            raise ValueError("paths, image_numbers and scan image range differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: slice) -> ImageSequence:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("ImageSequence supports only contiguous slices")
        first, last, _ = item.indices(len(self))
        return self.sub(first, last)

    @property
    def is_still(self) -> bool:
        """True for zero-oscillation sequences (stills, grid scans)."""
        return self.scan.is_still

    @property
    def array_range(self) -> tuple[int, int]:
        """0-based half-open frame range of the scan."""
        return self.scan.array_range

    def frame(self, index: int) -> int:
        """0-based absolute frame number of image ``index`` (array_range[0] + index)."""
        return self.scan.array_range[0] + self._check(index)

    def sub(self, first_index: int, last_index: int) -> ImageSequence:
        """New sequence of images [first_index, last_index) (half-open, like imageset[a:b])."""
        scan = self.scan.sub(first_index, last_index)
        new = replace(
            self,
            paths=self.paths[first_index:last_index],
            image_numbers=self.image_numbers[first_index:last_index],
            scan=scan,
            split_reason=None,
            identifiers=self.identifiers[first_index:last_index] if self.is_still else self.identifiers,
        )
        new._static = self._static  # same detector and lookup mask: share the cached static masks
        return new

    def get_raw(self, index: int) -> list[np.ndarray]:
        """One raw array per panel, native dtype (int32 for Pilatus)."""
        i = self._check(index)
        path = self.paths[i]
        if isinstance(self.reader, FrameReader):
            data = self.reader.read(path, self.image_numbers[i])
        else:
            data = self.reader(path)
        if isinstance(data, list):
            return self._check_panels(data, path)
        return self._split_panels(data, path)

    def corrections(self) -> tuple[bool, bool]:
        """(use the pedestal, use the gain): where dxtbx applies them to the raw data (SPEC §1.1)."""
        use_pedestal = any(p.pedestal != 0 for p in self.detector)
        use_gain = all(p.gain > 0 for p in self.detector) and any(
            abs(p.gain - 1.0) > GAIN_TOLERANCE for p in self.detector
        )
        return use_pedestal, use_gain

    def get_corrected(self, index: int, raw: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Float64 arrays per panel: (raw - pedestal) / gain where dxtbx applies them, else raw."""
        raw = self.get_raw(index) if raw is None else raw
        use_pedestal, use_gain = self.corrections()
        out = []
        for panel, data in zip(self.detector, raw, strict=True):
            img = data.astype(np.float64)
            if use_pedestal:
                img -= panel.pedestal
            if use_gain:
                img /= panel.gain
            out.append(img)
        return out

    def static_masks(self) -> list[np.ndarray]:
        """Per-panel masks that do not depend on the image: panel rectangles AND the lookup mask."""
        if self._static is None:
            masks = [p.static_mask() for p in self.detector]
            for extra in (self.format_mask, self.external_mask):
                if extra is not None:
                    masks = [m & np.asarray(e, dtype=bool) for m, e in zip(masks, extra, strict=True)]
            self._static = masks
        return self._static

    def get_mask(
        self, index: int, raw: list[np.ndarray] | None = None, static: list[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Per-panel bool masks (True = valid): static mask AND trusted range on the raw data.

        ``static`` replaces ``static_masks()``, e.g. by those masks already ANDed with others.
        """
        raw = self.get_raw(index) if raw is None else raw
        static = self.static_masks() if static is None else static
        masks = [p.trusted_mask(r, s) for s, p, r in zip(static, self.detector, raw, strict=True)]
        if self.shadow is not None:
            shadow = self.shadow.mask(self.detector, self.angle(index))
            masks = [m & s for m, s in zip(masks, shadow, strict=True)]
        return masks

    def angle(self, index: int) -> float:
        """Scan angle (degrees) at the start of image ``index``."""
        return self.scan.angle_at_frame(self.frame(index))

    def _check(self, index: int) -> int:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"image index {index} outside 0..{len(self.paths) - 1}")
        return index

    def _check_panels(self, data: list[np.ndarray], path: str) -> list[np.ndarray]:
        if len(data) != len(self.detector):
            raise ImageError(f"{path}: {len(data)} panel arrays read, the detector has {len(self.detector)}")
        for panel, arr in zip(self.detector, data, strict=True):
            if arr.shape != panel.shape:
                raise ImageError(
                    f"{path}: panel {panel.name} is {arr.shape} (slow, fast), expected {panel.shape}"
                )
        return data

    def _split_panels(self, raw: np.ndarray, path: str) -> list[np.ndarray]:
        if len(self.detector) == 1 and self.detector[0].raw_offset == (0, 0):
            if raw.shape != self.detector[0].shape:
                raise ImageError(
                    f"{path}: image is {raw.shape} (slow, fast), expected {self.detector[0].shape}"
                )
            return [raw]
        out = []
        for panel in self.detector:
            x0, y0 = panel.raw_offset
            ny, nx = panel.shape
            part = raw[y0 : y0 + ny, x0 : x0 + nx]
            if part.shape != (ny, nx):
                raise ImageError(f"{path}: image {raw.shape} too small for panel {panel.name}")
            out.append(np.ascontiguousarray(part))
        return out
