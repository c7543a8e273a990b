"""Generate (once, cached) synthetic rotation sweeps for the findspots benchmarks.

Presets (``--preset``):

* ``p6m``        100 Pilatus 6M images (2463 x 2527, int32), ~300 spots per image, each spot on 1-4 images.
* ``e16m``       20 Eiger-16M-sized images (4148 x 4362), same spot density per unit area (~2000/image).
* ``dense``      200 Pilatus 6M images with ~4000 small spots per image (tens of thousands of strong
                 pixels per image, most of them in spots that are kept): memory benchmark, case A.
* ``dense_zing`` 200 Pilatus 6M images with ~400 spots per image plus ~45 000 isolated one-pixel
                 zingers per image (about the strong-pixel count of ``dense``, but almost none of them
                 end up in a spot: they are removed as too small): memory benchmark, case B.

Every image is a Pilatus-style miniCBF (byte-offset, written by fabio) whose header follows the
simulated test data in ``../shared/data/p6m_5`` (``Start_angle`` advancing by the 0.1 deg
oscillation). The images hold a Poisson background of about 1-10 counts falling off with the
distance from the beam centre, module gaps of -1, a few fixed hot pixels, and Gaussian spots
(pixel-integrated profiles, sigma_xy 0.7-1.4 px, sigma_z 0.15-0.7 images, so a spot covers 1-4
images). Everything is vectorised numpy; image ``k`` of a sweep depends only on (seed, k), so the
result does not depend on ``--jobs``.

The output folder is ``$FINDSPOTS_BENCH_DIR`` (or ``--root``), default ``/tmp/findspots-bench``;
each preset goes to its own subfolder with a ``sweep.json`` describing it. A sweep whose
``sweep.json`` matches the requested settings is reused, not regenerated.

    .venv/bin/python benchmarks/make_sweep.py                 # the p6m sweep
    .venv/bin/python benchmarks/make_sweep.py --preset e16m
    .venv/bin/python benchmarks/make_sweep.py --preset dense --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import ndtr

DEFAULT_ROOT = "/tmp/findspots-bench"
FORMAT_VERSION = 3  # bump when the generator changes, so cached sweeps are rebuilt

PILATUS_HEADER = """\
# Detector: PILATUS 6M, S/N 60-0000 Synthetic
# {timestamp}
# Pixel_size 172e-6 m x 172e-6 m
# Silicon sensor, thickness 0.000450 m
# Exposure_time 0.0990000 s
# Exposure_period 0.1000000 s
# Tau = 0 s
# Count_cutoff 1048500 counts
# Threshold_setting: 6344 eV
# Gain_setting: autog (vrf = 1.000)
# N_excluded_pixels = 0
# Excluded_pixels: (nil)
# Flat_field: (nil)
# Trim_file: (nil)
# Image_path: /synthetic/
# Wavelength {wavelength:.5f} A
# Detector_distance {distance:.5f} m
# Beam_xy ({beam_x:.2f}, {beam_y:.2f}) pixels
# Start_angle {start:.4f} deg.
# Angle_increment {osc:.4f} deg.
# Detector_2theta 0.0000 deg.
# Phi {start:.4f} deg.
# Oscillation_axis X, CW
# N_oscillations 1"""

EIGER_HEADER = PILATUS_HEADER.replace("PILATUS 6M, S/N 60-0000", "EIGER 16M, S/N E-32-0000").replace(
    "172e-6 m x 172e-6 m", "75e-6 m x 75e-6 m"
)


@dataclass
class SweepSpec:
    """Everything that defines a sweep (stored in sweep.json; a change regenerates it)."""

    name: str
    detector: str  # "p6m" or "e16m"
    nimages: int
    spots_per_image: float
    zingers_per_image: int = 0
    hot_pixels: int = 30
    seed: int = 1234
    osc: float = 0.1
    sigma_xy: tuple[float, float] = (0.7, 1.4)
    sigma_z: tuple[float, float] = (0.15, 0.7)
    intensity_mean: float = 1500.0
    intensity_min: float = 80.0
    bg_edge: float = 1.0  # background counts at the detector edge ...
    bg_centre: float = 10.0  # ... and at the beam centre
    bg_scale: float = 0.35  # e-folding distance of the falloff, as a fraction of the half-diagonal
    wavelength: float = 0.9795
    distance_m: float = 0.25
    version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)


# (width, height, module (fast, slow), gap (fast, slow), header template)
DETECTORS = {
    "p6m": (2463, 2527, (487, 195), (7, 17), PILATUS_HEADER),
    "e16m": (4148, 4362, (1028, 512), (12, 38), EIGER_HEADER),
}

PRESETS = {
    "p6m": SweepSpec("p6m_100", "p6m", 100, 300),
    "e16m": SweepSpec("e16m_20", "e16m", 20, 2000, hot_pixels=100),
    "dense": SweepSpec("p6m_dense_200", "p6m", 200, 4000, seed=77, sigma_xy=(0.6, 1.0)),
    "dense_zing": SweepSpec("p6m_densezing_200", "p6m", 200, 400, zingers_per_image=45000, seed=78),
}


def bench_root(root: str | None = None) -> Path:
    return Path(root or os.environ.get("FINDSPOTS_BENCH_DIR") or DEFAULT_ROOT)


def gap_mask(width: int, height: int, module: tuple[int, int], gap: tuple[int, int]) -> np.ndarray:
    """True on inter-module gap pixels."""
    period_x, period_y = module[0] + gap[0], module[1] + gap[1]
    xs = np.arange(width) % period_x >= module[0]
    ys = np.arange(height) % period_y >= module[1]
    return ys[:, None] | xs[None, :]


def background(spec: SweepSpec, width: int, height: int, beam: tuple[float, float]) -> np.ndarray:
    """Mean background counts per pixel: bg_edge + (bg_centre - bg_edge) * exp(-r / r0)."""
    y = np.arange(height, dtype=np.float64)[:, None] + 0.5 - beam[1]
    x = np.arange(width, dtype=np.float64)[None, :] + 0.5 - beam[0]
    r = np.sqrt(x * x + y * y)
    r0 = spec.bg_scale * 0.5 * np.hypot(width, height)
    return spec.bg_edge + (spec.bg_centre - spec.bg_edge) * np.exp(-r / r0)


def sweep_spots(spec: SweepSpec, width: int, height: int) -> dict[str, np.ndarray]:
    """All spots of the sweep: centre (x, y, z in images), widths, total intensity."""
    rng = np.random.default_rng([spec.seed, 0])
    n = int(round(spec.spots_per_image * spec.nimages))
    margin = 4.0
    return dict(
        x=rng.uniform(margin, width - margin, n),
        y=rng.uniform(margin, height - margin, n),
        z=rng.uniform(-0.5, spec.nimages + 0.5, n),
        sxy=rng.uniform(*spec.sigma_xy, n),
        sz=rng.uniform(*spec.sigma_z, n),
        intensity=spec.intensity_min + rng.exponential(spec.intensity_mean, n),
    )


def render_spots(mean: np.ndarray, spots: dict[str, np.ndarray], k: int) -> None:
    """Add the expected counts of every spot on image k (frame [k, k+1)) to ``mean`` in place."""
    z, sz = spots["z"], spots["sz"]
    frac = ndtr((k + 1 - z) / sz) - ndtr((k - z) / sz)
    on = frac > 1e-3
    if not on.any():
        return
    cx, cy, s = spots["x"][on], spots["y"][on], spots["sxy"][on]
    amp = spots["intensity"][on] * frac[on]
    half = int(np.ceil(4 * s.max()))
    offs = np.arange(-half, half + 1)
    ix = np.floor(cx).astype(np.int64)[:, None] + offs[None, :]  # (n, w)
    iy = np.floor(cy).astype(np.int64)[:, None] + offs[None, :]
    gx = ndtr((ix + 1 - cx[:, None]) / s[:, None]) - ndtr((ix - cx[:, None]) / s[:, None])
    gy = ndtr((iy + 1 - cy[:, None]) / s[:, None]) - ndtr((iy - cy[:, None]) / s[:, None])
    h, w = mean.shape
    value = amp[:, None, None] * gy[:, :, None] * gx[:, None, :]
    flat = iy[:, :, None] * w + ix[:, None, :]
    inside = (iy[:, :, None] >= 0) & (iy[:, :, None] < h) & (ix[:, None, :] >= 0) & (ix[:, None, :] < w)
    mean += np.bincount(flat[inside], weights=value[inside], minlength=h * w).reshape(h, w)


class _Generator:
    """Per-sweep constants, built once per process, and one image at a time."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        width, height, module, gap, self.header = DETECTORS[spec.detector]
        self.shape = (height, width)
        self.beam = (width * 0.4977, height * 0.5027)  # a little off centre, like p6m_5
        self.gaps = gap_mask(width, height, module, gap)
        self.bg = background(spec, width, height, self.beam)
        self.spots = sweep_spots(spec, width, height)
        rng = np.random.default_rng([spec.seed, 1])
        self.hot_idx = rng.choice(width * height, spec.hot_pixels, replace=False)
        self.hot_val = rng.uniform(2000, 60000, spec.hot_pixels)

    def image(self, k: int) -> np.ndarray:
        spec = self.spec
        mean = self.bg.copy()
        render_spots(mean, self.spots, k)
        rng = np.random.default_rng([spec.seed, 2, k])
        if spec.zingers_per_image:
            zi = rng.integers(0, mean.size, spec.zingers_per_image)
            mean.ravel()[zi] += rng.uniform(40, 400, zi.size)
        data = rng.poisson(mean).astype(np.int32)
        data.ravel()[self.hot_idx] = rng.poisson(self.hot_val).astype(np.int32)
        data[self.gaps] = -1
        return data

    def header_contents(self, k: int) -> str:
        spec = self.spec
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1767225600 + k * spec.osc * 1.0)) + ".000"
        text = self.header.format(
            timestamp=stamp,
            wavelength=spec.wavelength,
            distance=spec.distance_m,
            beam_x=self.beam[0],
            beam_y=self.beam[1],
            start=k * spec.osc,
            osc=spec.osc,
        )
        return text.replace("\n", "\r\n")

    def write(self, k: int, path: Path) -> None:
        from fabio.cbfimage import CbfImage

        img = CbfImage(data=self.image(k))
        img.header["_array_data.header_convention"] = "PILATUS_1.2"
        img.header["_array_data.header_contents"] = self.header_contents(k)
        tmp = path.with_name(path.name + ".part")
        img.write(str(tmp))
        os.replace(tmp, path)


_WORKER: _Generator | None = None


def _init_worker(spec_dict: dict) -> None:
    global _WORKER
    _WORKER = _Generator(SweepSpec(**spec_dict))


def _write_one(args: tuple[int, str]) -> int:
    k, path = args
    _WORKER.write(k, Path(path))
    return k


def image_paths(folder: Path, spec: SweepSpec) -> list[Path]:
    prefix = spec.detector
    return [folder / f"{prefix}_{k + 1:05d}.cbf" for k in range(spec.nimages)]


def _spec_json(spec: SweepSpec) -> dict:
    d = asdict(spec)
    d["sigma_xy"] = list(spec.sigma_xy)
    d["sigma_z"] = list(spec.sigma_z)
    return d


def make_sweep(spec: SweepSpec, root: str | None = None, jobs: int = 1, quiet: bool = False) -> list[Path]:
    """The image paths of ``spec``'s sweep, generating it first unless an identical one exists."""
    folder = bench_root(root) / spec.name
    paths = image_paths(folder, spec)
    meta = folder / "sweep.json"
    want = _spec_json(spec)
    if meta.exists() and all(p.exists() for p in paths):
        try:
            if json.loads(meta.read_text()).get("spec") == want:
                return paths
        except ValueError:
            pass
    folder.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    t0 = time.perf_counter()
    todo = [(k, str(p)) for k, p in enumerate(paths)]
    if not quiet:
        print(f"generating {spec.nimages} images in {folder} ...", file=sys.stderr, flush=True)
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(want,)) as pool:
            for k in pool.map(_write_one, todo, chunksize=4):
                if not quiet and (k + 1) % 20 == 0:
                    print(f"  {k + 1}/{spec.nimages}", file=sys.stderr, flush=True)
    else:
        _init_worker(want)
        for args in todo:
            k = _write_one(args)
            if not quiet and (k + 1) % 20 == 0:
                print(f"  {k + 1}/{spec.nimages}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    meta.write_text(
        json.dumps(
            {
                "spec": want,
                "n_spots_simulated": int(round(spec.spots_per_image * spec.nimages)),
                "generated_in_s": round(seconds, 1),
            },
            indent=1,
        )
    )
    if not quiet:
        print(f"done in {seconds:.0f} s", file=sys.stderr)
    return paths


def preset(name: str, nimages: int | None = None) -> SweepSpec:
    spec = PRESETS[name]
    if nimages is not None and nimages != spec.nimages:
        base = spec.name.rsplit("_", 1)[0]
        spec = SweepSpec(**{**asdict(spec), "name": f"{base}_{nimages}", "nimages": nimages})
    return spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="p6m")
    ap.add_argument("--nimages", type=int, help="override the preset's number of images")
    ap.add_argument("--root", help=f"output root (default $FINDSPOTS_BENCH_DIR or {DEFAULT_ROOT})")
    ap.add_argument("--jobs", type=int, default=1, help="generator processes (default 1)")
    args = ap.parse_args(argv)
    spec = preset(args.preset, args.nimages)
    paths = make_sweep(spec, args.root, args.jobs)
    print(paths[0].parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
