"""Per-stage profile of findspots on the benchmark sweep, and its start-up time.

Stages, timed separately on the first ``--nimages`` images of the sweep (default 20), with the same
functions the pipeline calls:

* decode: ``findspots.images.cbf.read_raw`` (split into file read, header parse, MD5 check and
  byte-offset decompression), compared with ``fabio.open(path).data`` and with a small numba
  byte-offset decoder written here (an idea for findspots, measured only);
* correct + mask: ``ImageSequence.get_corrected`` (float64 copy) and ``get_mask`` (trusted range);
* threshold: ``findspots.threshold.dispersion.dispersion`` / ``dispersion_extended`` (and the
  compiled kernels inside them), plus extracting the strong pixels (``np.flatnonzero``);
* labelling: sort of the pixel keys, ``findspots.labelling.label_pixels`` (3D) and
  ``findspots.spots.group_components``;
* measures: ``findspots.spots.measure`` and ``shoeboxes``;
* write: ``findspots.refl.write_reflections`` of the table the pipeline would write.

Then the whole program in this process under cProfile (``findspots.cli.run``, nproc=1), to show
what the stage list misses, and start-up: ``python -c "import findspots.cli"``, the modules the
run imports, the time to the first threshold call on a warm numba cache, and starting the dask
cluster used for nproc > 1.

    .venv/bin/python benchmarks/profile.py                      # p6m sweep, 20 images
    .venv/bin/python benchmarks/profile.py --nimages 10 --no-cprofile
"""

from __future__ import annotations

import os
import sys

# This file is called profile.py, which would shadow the standard library's ``profile`` module
# (imported by cProfile) when run as a script: take its folder off the path for that import.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
import argparse  # noqa: E402
import cProfile  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import profile as _stdlib_profile  # noqa: E402,F401
import pstats  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(HERE))

from make_sweep import make_sweep, preset  # noqa: E402
from procmon import source_hash, wait_for_idle  # noqa: E402
from prototypes import numba_read, sliding_dispersion, sliding_dispersion_extended  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")


# ----------------------------------------------------------------------------------------- timing


class Timer:
    """Accumulates seconds per stage name."""

    def __init__(self):
        self.t: dict[str, list[float]] = {}
        self.skipped: dict[str, str] = {}

    def __call__(self, name, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.t.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    def per_image_ms(self, name: str, nimages: int) -> float:
        return 1000 * sum(self.t.get(name, [])) / nimages


def _read_raw_parts(tm: Timer, cbf, path: str, npix: int) -> None:
    """The parts of ``read_raw`` (private findspots functions: skipped if they changed)."""
    from fabio import compression

    names = [
        "  read_raw: file read",
        "  read_raw: header parse",
        "  read_raw: MD5 check",
        "  read_raw: fabio decByteOffset",
        "  read_raw: reshape/astype check",
    ]
    try:
        data = tm(names[0], cbf._read_all, path)
        start = data.find(cbf.BINARY_START, max(data.find(cbf.BINARY_SECTION), 0))
        header = tm(names[1], cbf.parse_header, path, data[:start])
        binary = data[start + 4 : start + 4 + int(header.mime["x-binary-size"])]
        tm(names[2], lambda b: hashlib.md5(b).digest(), binary)
        dec = tm(names[3], compression.decByteOffset, binary, size=npix, dtype="int32")
        tm(names[4], cbf._checked_array, header, np.asarray(dec), header.shape)
    except Exception as e:  # noqa: BLE001 - a changed private API only skips these rows
        for name in names:
            tm.t.pop(name, None)
        tm.skipped["read_raw parts"] = f"{type(e).__name__}: {e}"


def _kernel_parts(tm: Timer, disp, image, mask, extended: bool) -> None:
    """The compiled kernels inside the threshold, on the path findspots takes for ``image`` (the
    sliding-window path for integer counts where findspots has one, else the summed-area table),
    plus the summed-area kernel as an ``alt`` row when it is not the one used. Private findspots
    functions: the rows are skipped if they changed."""
    try:
        img, msk = disp._prepare(image, mask)
        exact = False
        if hasattr(disp, "_exact") and hasattr(disp, "_sliding_dispersion"):
            exact = tm("  kernel: _exact (integer-valued check)", disp._exact, img)
        use = tm("  kernel: _stat_mask", disp._stat_mask, img, msk)
        out = np.empty(img.shape, np.bool_)
        first = disp._sliding_dispersion if exact else disp._dispersion_kernel
        fname = "_sliding_dispersion" if exact else "_dispersion_kernel"
        final = disp._sliding_final if exact else disp._extended_final
        gname = "_sliding_final" if exact else "_extended_final"
        if not extended:
            tm(f"  kernel: {fname}", first, img, msk, use, 3, 3, 6.0, 3.0, 2, 0.0, 0.0, True, out)
            if exact:
                tm(
                    "  kernel alt: _dispersion_kernel (summed-area table, used for corrected data)",
                    disp._dispersion_kernel,
                    img.astype(np.float64),
                    msk,
                    use,
                    3,
                    3,
                    6.0,
                    3.0,
                    2,
                    0.0,
                    0.0,
                    True,
                    out,
                )
            return
        flag = np.empty(img.shape, np.bool_)
        tm(f"  kernel: {fname} (pass 1)", first, img, msk, use, 3, 3, 6.0, 0.0, 2, 0.0, 0.0, False, flag)
        core = tm("  kernel: _chessboard_core (erosion)", disp._chessboard_core, flag, msk, 3)
        tm(f"  kernel: {gname} (pass 2)", final, img, msk, core, 5, 5, 3.0, 0.0, 0.0, out)
        if exact:
            f64 = img.astype(np.float64)
            tm(
                "  kernel alt: _dispersion_kernel (pass 1, summed-area table)",
                disp._dispersion_kernel,
                f64,
                msk,
                use,
                3,
                3,
                6.0,
                0.0,
                2,
                0.0,
                0.0,
                False,
                flag,
            )
            tm(
                "  kernel alt: _extended_final (pass 2, summed-area table)",
                disp._extended_final,
                f64,
                msk,
                core,
                5,
                5,
                3.0,
                0.0,
                0.0,
                out,
            )
    except Exception as e:  # noqa: BLE001
        for name in [k for k in tm.t if k.startswith("  kernel")]:
            tm.t.pop(name, None)
        tm.skipped["kernel parts"] = f"{type(e).__name__}: {e}"


def stages(paths: list[Path], algorithm: str, max_spot_size: int) -> tuple[Timer, dict]:
    """Time every stage of the pipeline for one algorithm on ``paths`` (one block, 3D)."""
    from findspots.blocks import SizeLimits
    from findspots.images import cbf
    from findspots.images.sweeps import group_images
    from findspots.labelling import label_pixels
    from findspots.pipeline import OVERLOADED, STRONG
    from findspots.refl import write_reflections
    from findspots.spots import group_components, measure, shoeboxes

    disp = importlib.import_module("findspots.threshold.dispersion")  # the module, not the function

    tm = Timer()
    seq = tm("sweep grouping (headers of all images)", group_images, [str(p) for p in paths])[0]
    panel = seq.detector[0]
    width, height = panel.image_size
    npix = width * height
    static = seq.static_masks()
    kernel = (3, 3)
    keys_all, values_all = [], []
    mismatches = 0
    fabio = __import__("fabio")
    for k, p in enumerate(paths):
        path = str(p)
        # -- decode, three ways (same result)
        raw = tm("decode: read_raw (total)", cbf.read_raw, path)
        _read_raw_parts(tm, cbf, path, npix)
        fab = tm("decode alt: fabio.open(path).data", lambda q: fabio.open(q).data, path)
        nb = tm("decode alt: numba byte-offset decoder", numba_read, path)
        if k == 0 and not (np.array_equal(fab, raw) and np.array_equal(nb, raw)):
            raise SystemExit("decoders disagree")
        # -- correct + mask: like findspots.strong, raw integer counts without corrections go to the
        # threshold as they are (where this findspots version does so), else the float64 corrected image
        corrections = seq.corrections() if hasattr(seq, "corrections") else (True,)
        raw_direct = not any(corrections) and raw.dtype.kind in "iu" and hasattr(disp, "_sliding_dispersion")
        name = (
            "correct alt: get_corrected (float64; not needed for raw counts)"
            if raw_direct
            else ("correct: get_corrected (float64)")
        )
        image = tm(name, seq.get_corrected, k, [raw])[0]
        mask = tm("mask: get_mask (trusted & static)", seq.get_mask, k, [raw])[0] & static[0]
        data = raw if raw_direct else image
        # -- threshold
        if algorithm == "dispersion":
            strong = tm("threshold: dispersion", disp.dispersion, data, mask, kernel)
            _kernel_parts(tm, disp, data, mask, False)
        else:
            strong = tm("threshold: dispersion_extended", disp.dispersion_extended, data, mask, kernel)
            _kernel_parts(tm, disp, data, mask, True)
        # -- the sliding-window prototype (benchmarks/prototypes.py), on the float64 and the raw image
        if algorithm == "dispersion":
            alt = tm("threshold alt: sliding window, float64 image", sliding_dispersion, image, mask, kernel)
            alt32 = tm(
                "threshold alt: sliding window, raw int32 image", sliding_dispersion, raw, mask, kernel
            )
        else:
            alt = tm(
                "threshold alt: sliding window, float64 image",
                sliding_dispersion_extended,
                image,
                mask,
                kernel,
            )
            alt32 = tm(
                "threshold alt: sliding window, raw int32 image",
                sliding_dispersion_extended,
                raw,
                mask,
                kernel,
            )
        mismatches += int((alt != strong).sum() + (alt32 != strong).sum())
        idx = tm("strong pixels: flatnonzero + values", np.flatnonzero, strong)
        keys_all.append(idx + np.int64(k) * npix)
        values_all.append(image.ravel()[idx])
        del raw, fab, nb, image, mask, strong, alt, alt32
    keys = np.concatenate(keys_all)
    values = np.concatenate(values_all)
    order = tm("labelling: argsort keys", np.argsort, keys, kind="stable")
    keys, values = keys[order], values[order]
    labels, ncomp = tm("labelling: label_pixels (3D)", label_pixels, keys, width, height, True)
    comps = tm("labelling: group_components", group_components, keys, values, labels, ncomp)
    limits = SizeLimits(3, max_spot_size)
    comps, small, large = tm("filter: size limits", limits.split, comps)
    m = tm("measures: measure", measure, comps, width, height)
    keep = np.linalg.norm(m.peak - m.xyz, axis=1) <= 2.0
    comps = tm("filter: max_separation select", comps.select, keep)
    bbox = m.bbox[keep]
    over = comps.values > panel.trusted_range[1]
    nspots = len(comps)
    sb = tm("measures: shoeboxes", shoeboxes, comps, bbox, width, height, 0, invalid=over)
    inten = m.intensity[keep]
    cols = {
        "bbox": bbox,
        "flags": np.full(nspots, STRONG, np.uint64)
        | np.where(
            np.bincount(np.repeat(np.arange(nspots), comps.sizes)[over], minlength=nspots) > 0, OVERLOADED, 0
        ).astype(np.uint64),
        "id": np.zeros(nspots, np.int32),
        "intensity.sum.value": inten,
        "intensity.sum.variance": np.abs(inten),
        "n_signal": comps.sizes.astype(np.int32),
        "panel": np.zeros(nspots, np.uint64),
        "shoebox": sb,
        "xyzobs.px.value": m.xyz[keep],
        "xyzobs.px.variance": m.variance[keep],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tm("write: write_reflections", write_reflections, Path(tmp) / "strong.refl", cols, {0: "x"})
        size = (Path(tmp) / "strong.refl").stat().st_size if (Path(tmp) / "strong.refl").exists() else 0
    info = dict(
        prototype_mismatched_pixels=mismatches,
        strong_pixels=int(keys.size),
        components=int(ncomp),
        spots=nspots,
        small=small,
        large=large,
        shoebox_voxels=int(sb.offsets[-1]),
        refl_bytes=size,
    )
    return tm, info


def cprofile_run(paths: list[Path], algorithm: str, max_spot_size: int, top: int = 25) -> tuple[float, str]:
    """The whole CLI in-process under cProfile (nproc=1); returns (wall s, top functions by tottime)."""
    from findspots import cli

    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            *map(str, paths),
            f"threshold.algorithm={algorithm}",
            f"filter.max_spot_size={max_spot_size}",
            "nproc=1",
            f"output.reflections={tmp}/s.refl",
            f"output.log={tmp}/l.log",
            f"output.debug_log={tmp}/d.log",
        ]
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        rc = cli.run(argv)
        prof.disable()
        wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"findspots failed: {rc}")
    import logging

    for h in list(logging.getLogger("findspots").handlers):  # the CLI's handlers; keep stdout clean
        logging.getLogger("findspots").removeHandler(h)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    text = text[text.find("ncalls") :] if "ncalls" in text else text
    return wall, text


# ---------------------------------------------------------------------------------------- start-up


def _wall(cmd: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# What ``findspots.cli.run`` imports before the first image is thresholded (fabio: first decode).
RUN_IMPORTS = (
    "import findspots.cli, findspots.batch.checkpoint, findspots.histogram, findspots.images.sweeps, "
    "findspots.logs, findspots.parameters, findspots.pipeline, findspots.refl, fabio.compression"
)

FIRST_CALL = r"""
import time; t0 = time.perf_counter()
import numpy as np
from findspots.threshold.dispersion import dispersion, dispersion_extended
t1 = time.perf_counter()
img = np.random.default_rng(0).poisson(2.0, (64, 64)).astype(float); msk = np.ones(img.shape, bool)
dispersion(img, msk); t2 = time.perf_counter()
dispersion_extended(img, msk); t3 = time.perf_counter()
from findspots.labelling import label_pixels; from findspots.spots import measure, group_components
keys = np.flatnonzero(img > 3).astype(np.int64); lab, n = label_pixels(keys, 64, 64, True)
c = group_components(keys, img.ravel()[keys], lab, n); measure(c, 64, 64); t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""

DASK_START = r"""
import time; t0 = time.perf_counter()
from findspots.batch.executor import local_dask_executor
t1 = time.perf_counter()
ex = local_dask_executor(2); t2 = time.perf_counter()
ex.close(); t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def importtime(statement: str, top: int = 15) -> list[tuple[float, str]]:
    """Largest cumulative import times (s) under ``python -X importtime -c statement``, with the
    nesting shown by indentation (only the first three levels)."""
    r = subprocess.run([PY, "-X", "importtime", "-c", statement], capture_output=True, text=True)
    rows = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$", line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            if depth <= 2:
                rows.append((int(m.group(2)) / 1e6, ".." * depth + m.group(4).strip()))
    return sorted(rows, reverse=True)[:top]


def startup(repeat: int = 5, one_image: Path | None = None) -> dict:
    subprocess.run([PY, "-c", FIRST_CALL], check=True, capture_output=True)  # warm the numba cache
    out = {
        "python -c pass": _wall([PY, "-c", "pass"], repeat),
        "python -c 'import findspots.cli'": _wall([PY, "-c", "import findspots.cli"], repeat),
        "python -c '<what a run imports>' (see below)": _wall([PY, "-c", RUN_IMPORTS], repeat),
        "python -c 'import fabio.compression'": _wall([PY, "-c", "import fabio.compression"], repeat),
        "python -c 'import distributed' (nproc > 1)": _wall([PY, "-c", "import distributed"], repeat),
        "findspots --help": _wall([str(REPO / ".venv" / "bin" / "findspots"), "--help"], repeat),
    }
    if one_image:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                str(REPO / ".venv" / "bin" / "findspots"),
                str(one_image),
                f"output.reflections={tmp}/s.refl",
                f"output.log={tmp}/l.log",
                f"output.debug_log={tmp}/d.log",
            ]
            out["findspots on 1 image, whole process (classic)"] = _wall(cmd, 3)
            out["findspots on 1 image, whole process (extended)"] = _wall(
                cmd + ["threshold.algorithm=dispersion_extended"], 3
            )
            out["findspots on 1 image, whole process (classic, output.report=None)"] = _wall(
                cmd + ["output.report=None"], 3
            )
    t0 = time.perf_counter()
    first = subprocess.run([PY, "-c", FIRST_CALL], check=True, capture_output=True, text=True)
    out["first-call script, whole process"] = time.perf_counter() - t0
    imp, d, e, lab = (float(v) for v in first.stdout.split())
    out["  import numpy + findspots.threshold.dispersion"] = imp
    out["  first dispersion call (numba cache load)"] = d
    out["  first dispersion_extended call"] = e
    out["  first label + measure call"] = lab
    dask = subprocess.run([PY, "-c", DASK_START], check=True, capture_output=True, text=True)
    di, ds, dc = (float(v) for v in dask.stdout.split())
    out["dask: import executor module"] = di
    out["dask: start LocalCluster(2 workers)"] = ds
    out["dask: close it"] = dc
    return out


# ------------------------------------------------------------------------------------------ report


STAGE_GROUPS = [
    ("decode", "decode: read_raw (total)"),
    ("correct", "correct: get_corrected (float64)"),
    ("mask", "mask: get_mask (trusted & static)"),
    ("threshold", None),
    ("strong pixels", "strong pixels: flatnonzero + values"),
    ("labelling", ("labelling: argsort keys", "labelling: label_pixels (3D)", "labelling: group_components")),
    ("filter", ("filter: size limits", "filter: max_separation select")),
    ("measures", ("measures: measure",)),
    ("shoeboxes", ("measures: shoeboxes",)),
    ("write", ("write: write_reflections",)),
]


def report(results: dict, nimages: int, meta: dict) -> str:
    lines = [
        f"# findspots per-stage profile: {meta['sweep']} (first {nimages} images)",
        "",
        f"- {meta['machine']}; findspots source {meta.get('source', '?')}; times are ms per image: the "
        f"median over the {nimages} images for per-image stages, and total / {nimages} for labelling, "
        "measures and write (done once for all images); one process, warm numba cache, images in the page "
        "cache. Indented rows are parts of the row above; `alt` rows are alternatives measured for "
        "comparison (not part of the sum).",
        "",
    ]
    algs = list(results)
    lines += [
        "## Pipeline stages (ms / image)",
        "",
        "| stage | " + " | ".join(algs) + " |",
        "|---|" + "---|" * len(algs),
    ]
    names: list[str] = []
    for alg in algs:
        for name in results[alg]["timer"]:
            if name not in names:
                names.append(name)
    main_sum = {alg: 0.0 for alg in algs}
    for name in names:
        row = []
        for alg in algs:
            t = results[alg]["timer"]
            if name in t:
                # per-image stages: median over the images (robust to other load on the machine);
                # once-per-sweep stages: total / images
                ms = 1000 * (
                    statistics.median(t[name]) if len(t[name]) == nimages else sum(t[name]) / nimages
                )
                row.append(f"{ms:.1f}")
                if not name.startswith(" ") and " alt" not in name and not name.startswith("sweep grouping"):
                    main_sum[alg] += ms
            else:
                row.append("")
        label = name.replace(" ", "&nbsp;", 2) if name.startswith(" ") else name
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append(
        "| **sum of pipeline stages** | " + " | ".join(f"**{main_sum[a]:.1f}**" for a in algs) + " |"
    )
    lines.append(
        "| whole CLI run in-process (cProfile on), per image | "
        + " | ".join(
            f"{1000 * results[a]['cli_wall'] / nimages:.1f}" if results[a].get("cli_wall") else "-"
            for a in algs
        )
        + " |"
    )
    lines += ["", "| sweep | " + " | ".join(algs) + " |", "|---|" + "---|" * len(algs)]
    for key in (
        "prototype_mismatched_pixels",
        "strong_pixels",
        "components",
        "spots",
        "small",
        "large",
        "shoebox_voxels",
        "refl_bytes",
    ):
        lines.append(f"| {key} | " + " | ".join(str(results[a]["info"][key]) for a in algs) + " |")
    for alg in algs:
        for what, why in results[alg].get("skipped", {}).items():
            lines.append(f"\n(skipped {what} for {alg}: {why})")
    if "startup" in meta:
        lines += ["", "## Start-up (s, warm numba cache, median of 5)", "", "| what | s |", "|---|---|"]
        for k, v in meta["startup"].items():
            lines.append(f"| {k} | {v:.3f} |")
    if "importtime" in meta:
        lines += [
            "",
            "## Largest imports of a run (cumulative s, `-X importtime`, nesting shown by ..)",
            "",
            f"`{RUN_IMPORTS}`",
            "",
            "| module | s |",
            "|---|---|",
        ]
        for s, name in meta["importtime"]:
            lines.append(f"| {name} | {s:.3f} |")
    for alg in algs:
        if results[alg].get("cprofile"):
            lines += [
                "",
                f"## cProfile of the whole run, {alg} (top functions by own time)",
                "",
                "```",
                results[alg]["cprofile"].rstrip(),
                "```",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="p6m")
    ap.add_argument("--root")
    ap.add_argument("--nimages", type=int, default=20, help="images of the sweep to profile (default 20)")
    ap.add_argument("--algorithms", default="dispersion,dispersion_extended")
    ap.add_argument("--no-cprofile", action="store_true")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--out", help="default benchmarks/results/profile_<sweep>.md")
    args = ap.parse_args(argv)
    spec = preset(args.preset)
    paths = make_sweep(spec, args.root)[: args.nimages]
    n = len(paths)
    # Warm up: numba caches (ours and findspots'), page cache.
    numba_read(str(paths[0]))
    stages(paths[:2], "dispersion", 100)
    stages(paths[:2], "dispersion_extended", 1000)
    wait_for_idle()
    results = {}
    for alg in [a for a in args.algorithms.split(",") if a]:
        mss = 100 if alg == "dispersion" else 1000
        tm, info = stages(paths, alg, mss)
        results[alg] = {"timer": tm.t, "info": info, "skipped": tm.skipped}
        print(
            f"{alg}: " + ", ".join(f"{k} {tm.per_image_ms(k, n):.1f}" for k in tm.t if not k.startswith(" ")),
            flush=True,
        )
        if not args.no_cprofile:
            wall, text = cprofile_run(paths, alg, mss)
            results[alg]["cli_wall"] = wall
            results[alg]["cprofile"] = text
    meta = {
        "sweep": spec.name,
        "source": source_hash(),
        "machine": f"{os.cpu_count()} CPU cores, numba {numba.__version__}, numpy {np.__version__}",
    }
    if not args.no_startup:
        meta["startup"] = startup(one_image=paths[0])
        meta["importtime"] = importtime(RUN_IMPORTS)
    text = report(results, n, meta)
    out = Path(args.out) if args.out else HERE / "results" / f"profile_{spec.name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
