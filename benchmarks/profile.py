"""Per-stage profile of findspots on the benchmark sweep, and its start-up time.

The stages are timed separately on the first ``--nimages`` images of the sweep (default 20). The
pipeline objects are built the way ``findspots.app.pipeline.find_spots`` builds them (parameters,
``StrongFinder``, threshold, static masks, size limits), and each stage calls the functions the
pipeline calls, in the same order, on one process (nproc=1: one block):

* input: ``load_inputs`` (the header of every image);
* per image, what ``StrongFinder.find`` does:

  * decode: ``ImageSequence.get_raw`` (``cbf.read_raw``), with its parts: file read, header
    (locate, ``parse_header``, checks) and ``decode_byte_offset``. Also timed, outside the sum: the
    Content-MD5 check, which runs only with ``input.verify_md5=True``, and fabio's byte-offset
    decoder on the same stream, for comparison;
  * correct: ``get_corrected`` (float64), only where the pipeline needs it (gain or pedestal, or
    non-integer data). Raw integer counts go to the threshold as they are;
  * mask: ``get_mask(index, raw, static)`` and its fused numba kernel ``trusted._in_range``;
  * threshold: the ``DispersionThreshold`` call, then its compiled kernels one by one on the same
    image: classic ``_sliding_dispersion``; extended ``_sliding_dispersion`` (pass 1),
    ``_chessboard_core`` (erosion) and ``_sliding_final`` (pass 2). Non-integer images, or the
    overflow fallback, use ``_stat_mask``, ``_dispersion_kernel`` and ``_extended_final`` instead.
    The kernels' result is checked against the threshold's;
  * strong pixels: ``flatnonzero`` and the values, as ``StrongFinder.find`` stores them;
  * check (outside the sum): ``StrongFinder.find`` itself, decode to strong pixels in one call,
    which must give the same pixels;

* once per run, as ``run_range`` does it at nproc=1 (one block, so nothing to join): ``process_block``
  on the images found above (labelling, size limits, measures of the block's spots, hot-pixel
  candidates), with its parts timed again (``blocks._label``: sort, ``label_pixels`` union-find,
  ``group_components``; ``SizeLimits.split``; ``measure``; ``intersect1d``); the checkpoint file;
  ``merge_blocks``; filters, rows and shoeboxes (``pipeline._add_range``, with ``_filter_chain``
  and ``shoeboxes`` timed again); and the write (``SpotRows.table`` and ``write_reflections``).

Then the whole program in this process (``findspots.app.cli.run``, nproc=1): with the default
report, with ``output.report=None`` (what the stages' sum compares with) and with the report under
cProfile, to show what the stage list misses; and start-up: ``python -c
"import findspots.app.cli"``, the modules a run imports, the first call of each compiled stage on a
warm numba cache, a whole one-image run, and starting the worker pool used for nproc > 1.

    .venv/bin/python benchmarks/profile.py                      # p6m sweep, 20 images, ~1 min
    .venv/bin/python benchmarks/profile.py --nimages 3 --no-cprofile --no-startup --max-wait 0 \\
        --out /tmp/profile_check.md                             # quick check of this script

Output: ``results/profile_<sweep>.md`` and ``.json`` for the default 20 images,
``results/profile_<sweep>_first<N>.md`` for another ``--nimages``, or ``--out``.
"""

from __future__ import annotations

import os
import sys

# This file is called profile.py, which would shadow the standard library's ``profile`` module
# (imported by cProfile) when run as a script: take its folder off the path for that import.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
import argparse  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import cProfile  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import profile as _stdlib_profile  # noqa: E402,F401
import pstats  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from functools import reduce  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(HERE))

from make_sweep import make_sweep, preset  # noqa: E402
from procmon import source_hash, wait_for_idle  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
FINDSPOTS = str(REPO / ".venv" / "bin" / "findspots")
DEFAULT_NIMAGES = 20

# Row kinds: "stage" rows add up to the per-image sum, "part" rows (indented) are parts of the stage
# above them, "extra" rows (alternatives, options, checks) are measured for comparison only.
STAGE, PART, EXTRA = "stage", "part", "extra"
# What calling a changed private function raises (numba: no matching signature); its rows are skipped.
CHANGED_API = (AttributeError, TypeError, ValueError, numba.core.errors.NumbaError)


# ----------------------------------------------------------------------------------------- timing


class Timer:
    """Accumulates seconds per row name, and the kind of each row."""

    def __init__(self):
        self.t: dict[str, list[float]] = {}
        self.kind: dict[str, str] = {}
        self.skipped: dict[str, str] = {}

    def __call__(self, name, kind, fn, /, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.t.setdefault(name, []).append(time.perf_counter() - t0)
        self.kind.setdefault(name, kind)
        return out

    def drop(self, prefix: str) -> None:
        for name in [k for k in self.t if k.startswith(prefix)]:
            del self.t[name]
            self.kind.pop(name, None)

    def per_image_ms(self, name: str, nimages: int) -> float:
        return 1000 * sum(self.t.get(name, [])) / nimages


def _decode_parts(tm: Timer, cbf, path: str) -> None:
    """The parts of ``cbf.read_raw`` (private functions: the rows are skipped if they changed), the
    optional MD5 check and fabio's decoder on the same stream."""
    from fabio import compression

    prefix = "  read_raw: "
    try:
        data = tm(f"{prefix}file read (read_all)", PART, cbf.read_all, path)

        def header_part(data):
            header, start = cbf._split_header(path, data)
            shape = header.shape
            cbf._check_element_count(header, shape)
            binary = cbf._binary_section(header, data, start + len(cbf.BINARY_START), False)
            return header, shape, binary

        header, shape, binary = tm(
            f"{prefix}header (_split_header: locate, parse_header; checks)", PART, header_part, data
        )
        arr = tm(
            f"{prefix}decode_byte_offset (numba)",
            PART,
            lambda: cbf._checked_array(header, cbf._decode(header, data, binary, shape), shape),
        )

        def md5_check(binary):  # what _binary_section does with verify_md5=True
            return base64.b64encode(hashlib.md5(binary).digest()).decode() == header.mime.get("content-md5")

        ok = tm(
            "option: MD5 check (input.verify_md5=True only; not in the default path)",
            EXTRA,
            md5_check,
            binary,
        )
        stream = bytes(binary)  # fabio takes bytes only; the copy is not timed
        fab = tm(
            "alt: fabio decByteOffset on the same stream (for comparison)",
            EXTRA,
            compression.decByteOffset,
            stream,
            size=shape[0] * shape[1],
            dtype="int32",
        )
        if not ok or not np.array_equal(np.asarray(fab).reshape(shape), arr):
            raise SystemExit(f"{path}: MD5 check failed or fabio's decoder disagrees")
    except CHANGED_API as e:  # a changed private API only skips these rows
        tm.drop(prefix)
        tm.skipped["read_raw parts"] = f"{type(e).__name__}: {e}"


def _mask_part(tm: Timer, panel, raw: np.ndarray, static: np.ndarray) -> None:
    """The fused trusted-range kernel inside ``get_mask`` (private: skipped if it changed)."""
    from findspots.images import trusted

    try:
        lo, hi = panel.trusted_range
        if raw.dtype.kind in "iu":  # as Panel.trusted_mask: integer bounds for integer counts
            info = np.iinfo(raw.dtype)
            lo = raw.dtype.type(min(max(np.ceil(lo), info.min), info.max))
            hi = raw.dtype.type(max(min(np.floor(hi), info.max), info.min))
        else:
            lo, hi = raw.dtype.type(lo), raw.dtype.type(hi)
        out = np.empty(raw.shape, np.bool_)
        static = np.ascontiguousarray(static, dtype=np.bool_)
        tm(
            "  kernel: trusted._in_range (trusted range & static, fused)",
            PART,
            trusted._in_range,
            raw,
            static.view(np.uint8),
            lo,
            hi,
            out.view(np.uint8),
        )
    except CHANGED_API as e:
        tm.drop("  kernel: trusted")
        tm.skipped["mask kernel"] = f"{type(e).__name__}: {e}"


def _kernel_parts(tm: Timer, disp, threshold, image, mask, strong, extended: bool) -> tuple[int, str]:
    """The compiled kernels of the threshold, called as ``_dispersion_pass`` and
    ``dispersion_extended`` call them, on the same image. Returns (pixels that differ from the
    threshold's result, the path taken). Private functions: the rows are skipped if they changed."""
    prefix = "  kernel: "
    try:
        img, msk = disp._prepare(image, mask)
        valid = msk.view(np.uint8)
        ky, kx = threshold.kernel_size
        count = disp.min_count(threshold.kernel_size, threshold.min_local)
        gain = float(threshold.gain) if threshold.gain else 0.0
        sb, ss = float(threshold.sigma_background), float(threshold.sigma_strong)
        glob = float(threshold.global_threshold)
        exact = tm(f"{prefix}_exact (integer-valued check)", PART, disp._exact, img)
        path = "sliding window (exact integer sums)" if exact else "summed-area table"

        def first_pass(sigma_s, thr, value_test, suffix):
            nonlocal path
            out = np.empty(img.shape, np.bool_)
            settings = (ky, kx, sb, sigma_s, count, thr, gain, value_test, out)
            if exact and tm(
                f"{prefix}_sliding_dispersion{suffix}", PART, disp._sliding_dispersion, img, valid, *settings
            ):
                return out
            if exact:
                path = "sliding window, fell back to the summed-area table"
            use = tm(f"{prefix}_stat_mask{suffix}", PART, disp._stat_mask, img, msk)
            tm(f"{prefix}_dispersion_kernel{suffix}", PART, disp._dispersion_kernel, img, msk, use, *settings)
            return out

        if not extended:
            out = first_pass(ss, glob, True, "")
        else:
            flag = first_pass(0.0, 0.0, False, " (pass 1)")
            core = tm(
                f"{prefix}_chessboard_core (erosion)",
                PART,
                disp._chessboard_core,
                flag.view(np.uint8),
                valid,
                min(ky, kx),
            )
            out = np.empty(img.shape, np.bool_)
            settings = (ky + 2, kx + 2, ss, glob, gain, out)
            if not (
                exact
                and tm(
                    f"{prefix}_sliding_final (pass 2)", PART, disp._sliding_final, img, valid, core, *settings
                )
            ):
                if exact:
                    path = "sliding window, fell back to the summed-area table"
                tm(f"{prefix}_extended_final (pass 2)", PART, disp._extended_final, img, msk, core, *settings)
        return int((out != strong).sum()), path
    except CHANGED_API as e:
        tm.drop(prefix)
        tm.skipped["kernel parts"] = f"{type(e).__name__}: {e}"
        return 0, "?"


def pipeline_objects(paths: list[Path], algorithm: str, max_spot_size: int, tm: Timer):
    """Parameters, sequence, finder and size limits, as ``find_spots`` makes them for one sequence."""
    from findspots.app.parameters import parse_arguments
    from findspots.app.pipeline import check_roi, min_spot_size, with_maximum_trusted_value
    from findspots.images.inputs import load_inputs
    from findspots.spotfinder.blocks import SizeLimits
    from findspots.spotfinder.masks import load_lookup_mask, static_masks
    from findspots.spotfinder.strong import StrongFinder
    from findspots.threshold import make_threshold
    from findspots.threshold.radial_profile import SequenceGeometry

    argv = [*map(str, paths), f"threshold.algorithm={algorithm}", f"filter.max_spot_size={max_spot_size}"]
    params = parse_arguments(argv).params
    sf = params.spotfinder
    seqs = tm(
        "input: load_inputs (header of every image)",
        STAGE,
        load_inputs,
        [str(p) for p in paths],
        params.input.verify_md5,
    )
    if len(seqs) != 1 or len(seqs[0].detector) != 1:
        raise SystemExit("the profile expects one sequence of single-panel images")
    seq = with_maximum_trusted_value(seqs[0], params.maximum_trusted_value)
    finder = StrongFinder(
        sequence=seq,
        static_masks=static_masks(seq, sf.filter, load_lookup_mask(sf.lookup.mask, seq.detector)),
        threshold=make_threshold(sf.threshold, geometry=SequenceGeometry(seq.detector, seq.beam)),
        roi=check_roi(sf.region_of_interest, seq),
        max_strong_fraction=sf.filter.max_strong_pixel_fraction,
        compute_mean_background=sf.compute_mean_background,
    )
    limits = SizeLimits(min_spot_size(sf.filter, seqs), sf.filter.max_spot_size)
    finder.fix_global_threshold(0)
    return params, seq, finder, limits


def _found(finder, images: list):
    """A copy of ``finder`` whose ``find(k)`` hands back ``images[k]``, found and timed before, so
    that ``process_block`` is timed on what follows the per-image stages."""
    found = copy.copy(finder)
    found.find = images.__getitem__
    return found


def _block_parts(tm: Timer, images: list, finder, three_d: bool, limits) -> int | None:
    """The parts of ``process_block`` after the images, on one block of panel 0: labelling (with its
    own parts), size limits, measures and hot-pixel candidates. Returns the components labelled
    (None if skipped). Private functions: the rows are skipped if they changed."""
    from findspots.spotfinder.blocks import _label, upper_trusted
    from findspots.spotfinder.labelling import label_pixels
    from findspots.spotfinder.spots import group_components, measure

    prefix = "  block: "
    try:
        width, height = finder.panel_shapes[0]
        keys = np.concatenate([im.idx[0] + np.int64(im.frame) * width * height for im in images])
        values = np.concatenate([im.values[0] for im in images])
        comps = tm(f"{prefix}labelling (blocks._label)", PART, _label, keys, values, width, height, three_d)
        order = tm(f"{prefix}labelling: argsort keys", PART, np.argsort, keys, kind="stable")
        keys, values = keys[order], values[order]
        labels, ncomp = tm(
            f"{prefix}labelling: label_pixels (numba union-find)",
            PART,
            label_pixels,
            keys,
            width,
            height,
            three_d,
        )
        tm(f"{prefix}labelling: group_components", PART, group_components, keys, values, labels, ncomp)
        interior = tm(f"{prefix}size limits (SizeLimits.split)", PART, limits.split, comps)[0]
        upper = upper_trusted(finder)[0]
        tm(f"{prefix}measure interior spots (spots.measure)", PART, measure, interior, width, height, upper)
        tm(
            f"{prefix}hot-pixel candidates (intersect1d)",
            PART,
            reduce,
            np.intersect1d,
            [im.idx[0] for im in images],
        )
        return int(ncomp)
    except CHANGED_API as e:
        tm.drop(prefix)
        tm.skipped["block parts"] = f"{type(e).__name__}: {e}"
        return None


def _add_range_parts(tm: Timer, seq, spots, pixels, filter_params, upper: float | None) -> None:
    """The filter chain and the shoeboxes inside ``_add_range``, on panel 0 (``upper``: None when the
    run keeps no shoeboxes). Private functions: the rows are skipped if they changed."""
    from findspots.app.pipeline import _filter_chain
    from findspots.spotfinder.spots import shoeboxes

    prefix = "  _add_range: "
    try:
        keep = tm(
            f"{prefix}_filter_chain", PART, _filter_chain, seq, spots.panels, spots.boxes, filter_params
        )[0]
        if upper is not None:
            width, height = seq.detector[0].image_size
            bbox = spots.panels[0].bbox[keep]
            over = pixels.values > upper
            rows = np.flatnonzero(keep)
            tm(f"{prefix}shoeboxes", PART, shoeboxes, pixels, bbox, width, height, 0, invalid=over, rows=rows)
    except CHANGED_API as e:
        tm.drop(prefix)
        tm.skipped["_add_range parts"] = f"{type(e).__name__}: {e}"


def stages(paths: list[Path], algorithm: str, max_spot_size: int) -> tuple[Timer, dict]:
    """Time every stage of the pipeline for one algorithm on ``paths`` (one block, nproc=1)."""
    from findspots.app.pipeline import SpotRows, _add_range, _box_grow, experiments_of
    from findspots.batch.checkpoint import Checkpoints
    from findspots.images import cbf
    from findspots.output.refl import write_reflections
    from findspots.spotfinder.blocks import merge_blocks, process_block, upper_trusted
    from findspots.spotfinder.strong import ImageStrong

    disp = importlib.import_module("findspots.threshold.dispersion")  # the module, not the function
    tm = Timer()
    params, seq, finder, limits = pipeline_objects(paths, algorithm, max_spot_size, tm)
    sf = params.spotfinder
    three_d = not seq.is_still and not sf.force_2d
    panel = seq.detector[0]
    static = [s & f for s, f in zip(seq.static_masks(), finder.static_masks, strict=True)]
    extended = algorithm == "dispersion_extended"
    images: list[ImageStrong] = []
    kernel_mismatch = find_mismatch = 0
    paths_taken: set[str] = set()
    for k, path in enumerate(seq.paths):
        # -- decode (the sequence's reader is cbf.read_raw for these files), then its parts
        raw = tm("decode: get_raw (cbf.read_raw)", STAGE, seq.get_raw, k)
        _decode_parts(tm, cbf, path)
        # -- like StrongFinder.find: raw integer counts without corrections go to the threshold as
        # they are, anything else as the float64 corrected image
        exact_raw = not any(seq.corrections()) and all(r.dtype.kind in "iu" for r in raw)
        data = raw if exact_raw else tm("correct: get_corrected (float64)", STAGE, seq.get_corrected, k, raw)
        mask = tm("mask: get_mask (trusted range & static)", STAGE, seq.get_mask, k, raw, static)[0]
        _mask_part(tm, panel, raw[0], static[0])
        d = data[0]
        strong = tm(
            "threshold: StrongFinder._threshold (the algorithm's call)", STAGE, finder._threshold, d, mask, 0
        )
        bad, taken = _kernel_parts(tm, disp, finder.threshold, d, mask, strong, extended)
        kernel_mismatch += bad
        paths_taken.add(taken)

        def strong_pixels(strong, d):
            idx = np.flatnonzero(strong)
            return idx.astype(np.int64), d.ravel()[idx].astype(np.float64)

        idx, values = tm("strong pixels: flatnonzero + values", STAGE, strong_pixels, strong, d)
        images.append(ImageStrong(frame=seq.frame(k), count=idx.size, idx=[idx], values=[values]))
        check = tm("check: StrongFinder.find (decode to strong pixels in one call)", EXTRA, finder.find, k)
        find_mismatch += int(not np.array_equal(check.idx[0], idx))
        del raw, data, mask, strong, check
    # -- once per range, as run_range does it at nproc=1: one block (no edge components: nothing is
    # joined, so no boxes to add after the merge), its checkpoint, the merge, then _add_range
    keep_pixels = params.output.shoeboxes
    result = tm(
        "block: process_block on the found images (labelling, size limits, measures, hot pixels)",
        STAGE,
        process_block,
        _found(finder, images),
        range(len(images)),
        False,
        False,
        three_d,
        limits,
        _box_grow(sf.filter.background_gradient),
        keep_pixels,
    )
    ncomp = _block_parts(tm, images, finder, three_d, limits)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = Checkpoints(Path(tmp) / "strong.refl.findspots-checkpoint")
        tm("checkpoint: save the block (npz)", STAGE, checkpoints.save, "block", result)
        uppers = upper_trusted(finder)
        spots = tm(
            "merge: merge_blocks",
            STAGE,
            merge_blocks,
            [result],
            finder.panel_shapes,
            limits,
            uppers,
            keep_pixels,
        )
        del result  # as run_range frees the blocks once merged
        pixels = spots.pixels[0]  # _add_range hands them over to the shoeboxes; kept for the parts below
        rows = SpotRows(experiments=experiments_of([seq]))
        log = logging.getLogger("findspots")
        level = log.level
        log.setLevel(logging.WARNING)  # _add_range logs its counts at INFO
        try:
            tm(
                "filters, rows, shoeboxes: _add_range",
                STAGE,
                _add_range,
                rows,
                spots,
                finder,
                seq,
                0,
                limits,
                sf.filter,
                keep_pixels,
            )
            _add_range_parts(tm, seq, spots, pixels, sf.filter, uppers[0] if keep_pixels else None)
        finally:
            log.setLevel(level)
        table = tm("write: SpotRows.table", STAGE, rows.table)
        shoebox = table.get("shoebox")
        if not keep_pixels:
            table.pop("shoebox", None)
        out = Path(tmp) / "strong.refl"
        tm("write: write_reflections", STAGE, write_reflections, str(out), table, {})
        size = out.stat().st_size
    info = dict(
        threshold_path=", ".join(sorted(paths_taken)),
        kernel_parts_mismatched_pixels=kernel_mismatch,
        find_check_mismatched_images=find_mismatch,
        strong_pixels=sum(im.count for im in images),
        components=ncomp,
        extracted=spots.n_extracted,
        small=spots.n_small,
        large=spots.n_large,
        spots=len(rows),
        shoebox_voxels=int(shoebox.offsets[-1]) if shoebox is not None else 0,
        refl_bytes=size,
    )
    return tm, info


def _cli_argv(
    paths: list[Path], algorithm: str, max_spot_size: int, tmp: str, report: bool = True
) -> list[str]:
    return [
        *map(str, paths),
        f"threshold.algorithm={algorithm}",
        f"filter.max_spot_size={max_spot_size}",
        "nproc=1",
        f"output.reflections={tmp}/s.refl",
        f"output.log={tmp}/l.log",
        f"output.debug_log={tmp}/d.log",
        f"output.report={tmp}/findspots.html" if report else "output.report=None",
    ]


def _drop_cli_handlers() -> None:
    for h in list(logging.getLogger("findspots").handlers):  # the CLI's handlers; keep stdout clean
        logging.getLogger("findspots").removeHandler(h)


def cli_run(paths: list[Path], algorithm: str, max_spot_size: int, report: bool = True) -> float:
    """The whole CLI in-process (nproc=1, with the default report or none), no profiler; returns the
    wall s."""
    from findspots.app import cli

    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):  # the CLI's log lines
            t0 = time.perf_counter()
            rc = cli.run(_cli_argv(paths, algorithm, max_spot_size, tmp, report))
            wall = time.perf_counter() - t0
    _drop_cli_handlers()
    if rc != 0:
        raise SystemExit(f"findspots failed: {rc}")
    return wall


def cprofile_run(paths: list[Path], algorithm: str, max_spot_size: int, top: int = 25) -> tuple[float, str]:
    """The whole CLI in-process under cProfile (nproc=1); returns (wall s, top functions by tottime)."""
    from findspots.app import cli

    with tempfile.TemporaryDirectory() as tmp:
        argv = _cli_argv(paths, algorithm, max_spot_size, tmp)
        prof = cProfile.Profile()
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            prof.enable()
            rc = cli.run(argv)
            prof.disable()
            wall = time.perf_counter() - t0
    _drop_cli_handlers()
    if rc != 0:
        raise SystemExit(f"findspots failed: {rc}")
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


# What ``findspots.app.cli.run`` imports before the first image is read (the report's imports come later).
RUN_IMPORTS = (
    "import findspots.app.cli, findspots.batch.checkpoint, findspots.batch.clusters.base, "
    "findspots.output.histogram, findspots.images.expt, findspots.images.inputs, findspots.app.logs, "
    "findspots.app.parameters, findspots.app.pipeline, findspots.output.refl"
)

# The first call of each compiled stage, in the pipeline's order, on one image (argv[1]); the numba
# cache is warm, so each time is mostly loading that function's cache entries (the first one also
# sets numba itself up).
FIRST_CALL = r"""
import sys, time; t0 = time.perf_counter()
import numpy as np
from findspots.images.cbf import read_raw
from findspots.images.trusted import trusted_and_static
from findspots.threshold.dispersion import dispersion, dispersion_extended
from findspots.spotfinder.labelling import label_pixels
from findspots.spotfinder.spots import group_components, measure
t1 = time.perf_counter()
raw = read_raw(sys.argv[1]); t2 = time.perf_counter()
trusted_and_static(raw, None, raw.dtype.type(0), raw.dtype.type(1000000)); t3 = time.perf_counter()
img = np.random.default_rng(0).poisson(2.0, (64, 64)).astype(raw.dtype); msk = np.ones(img.shape, bool)
dispersion(img, msk); t4 = time.perf_counter()
dispersion_extended(img, msk); t5 = time.perf_counter()
keys = np.flatnonzero(img > 3).astype(np.int64); lab, n = label_pixels(keys, 64, 64, True)
c = group_components(keys, img.ravel()[keys].astype(float), lab, n); measure(c, 64, 64)
t6 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
"""

POOL_START = r"""
import time; t0 = time.perf_counter()
from findspots.batch.local_pool import LocalPool
t1 = time.perf_counter()
pool = LocalPool(2); t2 = time.perf_counter()
pool.close(); t3 = time.perf_counter()
from findspots.batch.executor import local_dask_executor
ex = local_dask_executor(2); t4 = time.perf_counter()
ex.close(); t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
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


def startup(one_image: Path, repeat: int = 5) -> dict:
    subprocess.run([PY, "-c", FIRST_CALL, str(one_image)], check=True, capture_output=True)  # warm numba
    out = {
        "python -c pass": _wall([PY, "-c", "pass"], repeat),
        "python -c 'import findspots.app.cli'": _wall([PY, "-c", "import findspots.app.cli"], repeat),
        "python -c '<what a run imports>' (see below)": _wall([PY, "-c", RUN_IMPORTS], repeat),
        "python -c 'import distributed' (mp.dashboard=True only)": _wall(
            [PY, "-c", "import distributed"], repeat
        ),
        "findspots --help": _wall([FINDSPOTS, "--help"], repeat),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            FINDSPOTS,
            str(one_image),
            f"output.reflections={tmp}/s.refl",
            f"output.log={tmp}/l.log",
            f"output.debug_log={tmp}/d.log",
        ]
        report = [f"output.report={tmp}/findspots.html"]
        out["findspots on 1 image, whole process (classic)"] = _wall(cmd + report, 3)
        out["findspots on 1 image, whole process (extended)"] = _wall(
            cmd + report + ["threshold.algorithm=dispersion_extended"], 3
        )
        out["findspots on 1 image, whole process (classic, output.report=None)"] = _wall(
            cmd + ["output.report=None"], 3
        )
    t0 = time.perf_counter()
    first = subprocess.run([PY, "-c", FIRST_CALL, str(one_image)], check=True, capture_output=True, text=True)
    out["first-call script, whole process"] = time.perf_counter() - t0
    imp, dec, msk, d, e, lab = (float(v) for v in first.stdout.split())
    out["  import numpy + the compiled stages' modules"] = imp
    out["  first read_raw (numba set-up + decoder cache load)"] = dec
    out["  first trusted_and_static (mask)"] = msk
    out["  first dispersion call"] = d
    out["  first dispersion_extended call"] = e
    out["  first label + group + measure call"] = lab
    pool = subprocess.run([PY, "-c", POOL_START], check=True, capture_output=True, text=True)
    pi, ps, pc, ds, dc = (float(v) for v in pool.stdout.split())
    out["nproc > 1: import findspots.batch.local_pool"] = pi
    out["nproc > 1: start LocalPool(2) (forked workers)"] = ps
    out["nproc > 1: close it"] = pc
    out["mp.dashboard=True: start dask LocalCluster(2)"] = ds
    out["mp.dashboard=True: close it"] = dc
    return out


# ------------------------------------------------------------------------------------------ report


def _row_names(results: dict) -> list[str]:
    """Every row name in pipeline order: an algorithm's own rows go just before the next row it
    shares with the algorithms before it (e.g. the extended kernels after the classic one)."""
    names: list[str] = []
    for alg in results:
        own = list(results[alg]["timer"])
        for i, name in enumerate(own):
            if name in names:
                continue
            later = [n for n in own[i + 1 :] if n in names]
            names.insert(names.index(later[0]) if later else len(names), name)
    return names


def report(results: dict, nimages: int, meta: dict) -> str:
    lines = [
        f"# findspots per-stage profile: {meta['sweep']} (first {nimages} images)",
        "",
        f"- {meta['machine']}; findspots source {meta.get('source', '?')}.",
        f"- Times are ms per image: the median over the {nimages} images for per-image rows, total / "
        f"{nimages} for the rows done once per run (input, block, checkpoint, merge, filters and "
        "shoeboxes, write). One process, warm numba cache, images in the page cache.",
        "- Bold rows add up to the sum. Indented rows are parts of the row above, timed again separately. "
        "`alt`, `option` and `check` rows are measured for comparison only and are not in the sum.",
        "",
    ]
    algs = list(results)
    lines += [
        "## Pipeline stages (ms / image)",
        "",
        "| stage | " + " | ".join(algs) + " |",
        "|---|" + "---|" * len(algs),
    ]
    main_sum = {alg: 0.0 for alg in algs}
    for name in _row_names(results):
        row = []
        kind = next(results[a]["kinds"][name] for a in algs if name in results[a]["kinds"])
        for alg in algs:
            t = results[alg]["timer"]
            if name in t:
                # per-image rows: median over the images (robust to other load on the machine);
                # once-per-run rows: total / images
                ms = 1000 * (
                    statistics.median(t[name]) if len(t[name]) == nimages else sum(t[name]) / nimages
                )
                row.append(f"{ms:.1f}")
                if kind == STAGE:
                    main_sum[alg] += ms
            else:
                row.append("")
        if kind == PART:
            label = "&nbsp;&nbsp;" * 2 + name.strip()
        elif kind == STAGE:
            label = f"**{name}**"
        else:
            label = name
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("| **sum of the stages** | " + " | ".join(f"**{main_sum[a]:.1f}**" for a in algs) + " |")
    for key, what in (
        (
            "cli_wall",
            "whole CLI run in-process (nproc=1, with the report; modules already imported), per image",
        ),
        ("cli_wall_no_report", "the same with output.report=None, per image"),
        ("cli_wall_cprofile", "the same with the report under cProfile, per image"),
    ):
        lines.append(
            f"| {what} | "
            + " | ".join(
                f"{1000 * results[a][key] / nimages:.1f}" if results[a].get(key) else "-" for a in algs
            )
            + " |"
        )
    lines += ["", "| sweep | " + " | ".join(algs) + " |", "|---|" + "---|" * len(algs)]
    for key in results[algs[0]]["info"]:
        lines.append(f"| {key} | " + " | ".join(str(results[a]["info"].get(key, "")) for a in algs) + " |")
    for alg in algs:
        for what, why in results[alg].get("skipped", {}).items():
            lines.append(f"\n(skipped {what} for {alg}: {why})")
    if "startup" in meta:
        lines += ["", "## Start-up (s, warm numba cache, median of 5; whole runs median of 3)", ""]
        lines += ["| what | s |", "|---|---|"]
        for k, v in meta["startup"].items():
            label = "&nbsp;&nbsp;" * 2 + k.strip() if k.startswith(" ") else k
            lines.append(f"| {label} | {v:.3f} |")
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


def output_path(out: str | None, sweep: str, nimages: int) -> Path:
    """``--out``, else results/profile_<sweep>.md for the default image count, else a name with the
    count in it, so that a quick run does not replace the committed profile."""
    if out:
        return Path(out)
    suffix = "" if nimages == DEFAULT_NIMAGES else f"_first{nimages}"
    return HERE / "results" / f"profile_{sweep}{suffix}.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="p6m", help="sweep preset of make_sweep.py (default p6m)")
    ap.add_argument(
        "--root", help="sweep cache folder (default $FINDSPOTS_BENCH_DIR or /tmp/findspots-bench)"
    )
    ap.add_argument(
        "--nimages",
        type=int,
        default=DEFAULT_NIMAGES,
        help=f"images of the sweep to profile (default {DEFAULT_NIMAGES})",
    )
    ap.add_argument("--algorithms", default="dispersion,dispersion_extended")
    ap.add_argument(
        "--no-cprofile", action="store_true", help="skip the whole-run timings (plain and cProfile)"
    )
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up timings")
    ap.add_argument(
        "--max-wait",
        type=float,
        default=180.0,
        help="seconds to wait at most for the machine to go idle before timing (default 180)",
    )
    ap.add_argument(
        "--out",
        help=f"report path (.md; the .json goes beside it). Default: results/profile_<sweep>.md for "
        f"{DEFAULT_NIMAGES} images, results/profile_<sweep>_first<N>.md otherwise",
    )
    args = ap.parse_args(argv)
    if args.nimages < 1:
        ap.error("--nimages must be at least 1")
    from findspots.app.malloc import reuse_freed_buffers

    reuse_freed_buffers()  # as the findspots command does at start
    spec = preset(args.preset)
    paths = make_sweep(spec, args.root)[: args.nimages]
    n = len(paths)
    algorithms = [a for a in args.algorithms.split(",") if a]
    # Warm up: numba caches, page cache, the allocator's free lists, and (for the whole runs below)
    # the modules a run imports, the report's too, so that both algorithms' runs start equal.
    for alg in algorithms:
        stages(paths[:2], alg, 100 if alg == "dispersion" else 1000)
    if not args.no_cprofile and algorithms:
        cli_run(paths[:1], algorithms[0], 100)
    wait_for_idle(max_wait_s=args.max_wait)
    results = {}
    for alg in algorithms:
        mss = 100 if alg == "dispersion" else 1000
        tm, info = stages(paths, alg, mss)
        results[alg] = {"timer": tm.t, "kinds": tm.kind, "info": info, "skipped": tm.skipped}
        print(
            f"{alg}: " + ", ".join(f"{k} {tm.per_image_ms(k, n):.1f}" for k in tm.t if tm.kind[k] == STAGE),
            flush=True,
        )
        if not args.no_cprofile:
            results[alg]["cli_wall"] = cli_run(paths, alg, mss)
            results[alg]["cli_wall_no_report"] = cli_run(paths, alg, mss, report=False)
            wall, text = cprofile_run(paths, alg, mss)
            results[alg]["cli_wall_cprofile"] = wall
            results[alg]["cprofile"] = text
    meta = {
        "sweep": spec.name,
        "nimages": n,
        "source": source_hash(),
        "machine": f"{os.cpu_count()} CPU cores, numba {numba.__version__}, numpy {np.__version__}",
    }
    if not args.no_startup:
        meta["startup"] = startup(paths[0])
        meta["importtime"] = importtime(RUN_IMPORTS)
    text = report(results, n, meta)
    out = output_path(args.out, spec.name, n)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
