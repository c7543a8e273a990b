"""Group image files into sequences the way dials.import does (template, numbering, oscillation)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from findspots.images.cbf import read_start
from findspots.images.formats import file_format
from findspots.images.models import STILL_WIDTH, FileModels, ImageSequence, Scan, ScanInfo

logger = logging.getLogger(__name__)

# Allowed mismatch between an image's start angle and the previous image's end, and between widths,
# as a fraction of the oscillation width (our choice, close to dials.import's scan tolerance).
SCAN_TOLERANCE = 0.03
# Suffixes left out of the template's digit search (so e.g. ".bz2" never counts as the number).
_SUFFIXES = (".cbf.gz", ".cbf.bz2", ".cbf", ".img.gz", ".img.bz2", ".img", ".gz", ".bz2")
_HEADER_THREADS = 8  # header reads are I/O and (de)compression bound, which release the GIL


@dataclass
class _Image:
    path: str
    template: str
    number: int
    models: FileModels
    reader: Callable[[str], np.ndarray]


def template_and_number(path: str) -> tuple[str, int | None]:
    """Replace the last run of digits in the file name with '#'s: ('/d/x_#####.cbf', 12) for x_00012.cbf."""
    directory, name = os.path.split(path)
    n_suffix = next((len(s) for s in _SUFFIXES if name.lower().endswith(s)), 0)
    stem, suffix = name[: len(name) - n_suffix], name[len(name) - n_suffix :]
    m = re.search(r"(\d+)(\D*)$", stem)
    if m is None:
        return path, None
    template = stem[: m.start(1)] + "#" * len(m.group(1)) + m.group(2) + suffix
    return os.path.join(directory, template), int(m.group(1))


def _read_one(path: str, verify_md5: bool) -> _Image:
    template, number = template_and_number(path)
    # one decompression of a .gz/.bz2 file's start serves both the format and a CBF's header
    start = read_start(path)
    fmt = file_format(path, start)
    models = fmt.models_from_start(path, start) if fmt.models_from_start else fmt.read_models(path)
    return _Image(path, template, 1 if number is None else number, models, fmt.reader(verify_md5))


def _read_all(paths: list[str], verify_md5: bool) -> list[_Image]:
    if len(paths) <= 2:
        return [_read_one(p, verify_md5) for p in paths]
    with ThreadPoolExecutor(max_workers=min(_HEADER_THREADS, len(paths))) as pool:
        return list(pool.map(_read_one, paths, [verify_md5] * len(paths)))


def _is_still(info: ScanInfo) -> bool:
    return abs(info.angle_increment) < STILL_WIDTH


def split_reason(prev: _Image, cur: _Image) -> str | None:
    """Why cur cannot follow prev in one sequence, or None when it can."""
    name = os.path.basename(cur.path)
    prev_m, cur_m = prev.models, cur.models
    if cur.template != prev.template:
        return f"new template {cur.template}"
    if cur.number != prev.number + 1:
        return f"image numbers jump from {prev.number} to {cur.number} ({name})"
    width = prev_m.scan.angle_increment
    if _is_still(prev_m.scan) != _is_still(cur_m.scan):
        return f"oscillation width changes from {width} to {cur_m.scan.angle_increment} ({name})"
    if not _is_still(cur_m.scan):
        tol = SCAN_TOLERANCE * abs(width)
        if abs(cur_m.scan.angle_increment - width) > tol:
            return f"oscillation width changes from {width} to {cur_m.scan.angle_increment} ({name})"
        expected = prev_m.scan.start_angle + width
        if abs(cur_m.scan.start_angle - expected) > tol:
            return f"start angle {cur_m.scan.start_angle} does not follow {expected:.4f} ({name})"
    if not cur_m.detector.is_similar_to(prev_m.detector):
        return f"detector size or geometry differs ({name})"
    if not cur_m.beam.is_similar_to(prev_m.beam):
        return f"beam differs ({name})"
    if not cur_m.goniometer.is_similar_to(prev_m.goniometer):
        return f"goniometer differs ({name})"
    return None


def _make_sequence(group: list[_Image], reason: str | None) -> ImageSequence:
    first = group[0].models
    scan = Scan(
        image_range=(group[0].number, group[-1].number),
        oscillation=(first.scan.start_angle, first.scan.angle_increment),
        exposure_times=np.array([g.models.scan.exposure_time for g in group]),
        epochs=np.array([g.models.scan.epoch for g in group]),
    )
    return ImageSequence(
        paths=[g.path for g in group],
        image_numbers=[g.number for g in group],
        detector=first.detector,
        beam=first.beam,
        goniometer=first.goniometer,
        scan=scan,
        template=group[0].template,
        reader=group[0].reader,
        split_reason=reason,
        shadow=first.shadow,
        format_name=first.format_name,
    )


def group_images(paths: list[str], verify_md5: bool = False) -> list[ImageSequence]:
    """Sort files by (template, number) and cut them into sequences like dials.import.

    A new sequence starts at a new template, a gap in numbering, a change of oscillation width, a
    start angle that does not continue the previous image, or a change of detector/beam/goniometer.
    Zero-oscillation images with consecutive numbers form one still sequence. Each sequence cut
    from the same template as the one before carries ``split_reason`` (also logged). ``verify_md5``
    gives formats with checksums (CBF Content-MD5) the reader that checks them."""
    unique = list(dict.fromkeys(os.path.normpath(p) for p in paths))
    images = sorted(_read_all(unique, verify_md5), key=lambda im: (im.template, im.number))
    sequences: list[ImageSequence] = []
    group: list[_Image] = []
    reason: str | None = None
    for im in images:
        why = split_reason(group[-1], im) if group else None
        if group and why is not None:
            sequences.append(_make_sequence(group, reason))
            group = []
            reason = None if im.template != sequences[-1].template else why
            if reason is not None:
                logger.info("Starting a new sequence: %s", reason)
        group.append(im)
    if group:
        sequences.append(_make_sequence(group, reason))
    return sequences
