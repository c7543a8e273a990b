"""Text summaries printed by find-spots: the per-image spot-count histogram and the per-image table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_LABEL = "image"
_MIN_LABEL_PADDING = 7


def spot_histogram(
    z: np.ndarray, image_count: int | None = None, *, width: int = 60, height: int = 10, char: str = "*"
) -> str:
    """The ASCII per-image spot-count histogram of the DIALS log, byte for byte (rule below).

    The rule, checked against every reference log (``z`` is the ``xyzobs.px.value`` z column, row order):

    - No spots: a single newline. Otherwise ``zmin``, ``zmax`` are the min and max of the *unjittered* z,
      the footer labels are ``xmin = ceil(zmin)`` and ``xmax = ceil(zmax)``, and the image count is
      ``xmax - xmin + 1``: it comes from z, not from the imageset (a sweep whose last spots are on image
      55 of 60 reports 55 images). If that count is <= 1 the whole output is ``"{n} spots found on 1 image"``.
    - Columns: ``w = min(count, width)``. Each z is jittered by -0.25 on even rows (0, 2, ...) and +0.25 on
      odd rows, so spots on one image straddle two columns. Bin edges are ``e_i = zmin + i * step`` for
      i = 1..w-1 with ``step = (zmax - zmin) / w``; column 0 takes jittered z < e_1, column k takes
      e_k <= z < e_(k+1), the last column everything >= e_(w-1) (jittered values beyond [zmin, zmax]
      land in the end columns).
    - Heights: ``floor(c * (height / max_c) + 0.5)`` (half rounds up, in that float order). Header
      ``"{n} spots found on {count} images (max {max_c} / bin)"``, then ``height`` rows of exactly ``w``
      characters (trailing spaces kept), row r (height..1) having ``char`` where the scaled count > r - 1.
    - Footer: ``xmin``, the filler, ``xmax`` where ``pad = w - len(str(xmin)) - len(str(xmax))``; the
      filler is empty if pad <= 0, ``pad`` spaces if pad < 7, else ``"image"`` centred in ``pad`` columns
      with the extra space on the right when ``pad - 5`` is odd.

    ``image_count`` overrides the image count derived from z (not something DIALS does: leave it None for
    parity); it sets both the header's number and the column count.
    """
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if len(z) == 0:
        return "\n"
    zmin, zmax = float(z.min()), float(z.max())
    xmin, xmax = math.ceil(zmin), math.ceil(zmax)
    count = xmax - xmin + 1 if image_count is None else int(image_count)
    if count <= 1:
        return f"{len(z)} spots found on 1 image"
    ncols = min(count, width)
    counts = _column_counts(z, zmin, zmax, ncols)
    max_count = int(counts.max())
    scaled = np.floor(counts * (height / max_count) + 0.5)
    lines = [f"{len(z)} spots found on {count} images (max {max_count} / bin)"]
    lines += ["".join(np.where(scaled > row - 1, char, " ")) for row in range(height, 0, -1)]
    lines.append(_footer(xmin, xmax, ncols))
    return "\n".join(lines)


def _column_counts(z: np.ndarray, zmin: float, zmax: float, ncols: int) -> np.ndarray:
    # Alternate jitter splits each image's spots between neighbouring columns, as DIALS does.
    jittered = z + np.where(np.arange(len(z)) % 2 == 0, -0.25, 0.25)
    step = (zmax - zmin) / ncols
    edges = zmin + np.arange(1, ncols) * step
    column = np.searchsorted(edges, jittered, side="right")
    return np.bincount(column, minlength=ncols).astype(np.float64)


def _footer(xmin: int, xmax: int, ncols: int) -> str:
    pad = ncols - len(str(xmin)) - len(str(xmax))
    if pad <= 0:
        filler = ""
    elif pad < _MIN_LABEL_PADDING:
        filler = " " * pad
    else:
        filler = _LABEL.center(pad)
    return f"{xmin}{filler}{xmax}"


PER_IMAGE_HEADERS = ("image", "#spots", "#spots_no_ice", "total_intensity")


def per_image_table(rows: Sequence[tuple[int, int, int, float]]) -> str:
    """The psql-style per-image table of ``per_image_statistics=True`` (total intensity as %.0f)."""
    cells = [(str(int(i)), str(int(n)), str(int(m)), f"{float(t):.0f}") for i, n, m, t in rows]
    return psql_table(PER_IMAGE_HEADERS, cells)


def psql_table(headers: Sequence[str], cells: Sequence[Sequence[str]], align: Sequence[str] = ()) -> str:
    """A table in the layout of ``tabulate(tablefmt="psql")``; columns right-aligned unless ``align``
    gives "<" (left) or ">" per column."""
    # A column is at least two wider than its header, and every cell has one space each side.
    widths = [len(h) + 2 for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    rule = "+".join("-" * (w + 2) for w in widths)
    aligns = list(align) or [">"] * len(headers)

    def line(values: Sequence[str]) -> str:
        return "|" + "|".join(f" {v:{a}{w}} " for v, a, w in zip(values, aligns, widths, strict=True)) + "|"

    out = [f"+{rule}+", line(headers), f"|{rule}|"]
    out += [line(row) for row in cells]
    out.append(f"+{rule}+")
    return "\n".join(out)
