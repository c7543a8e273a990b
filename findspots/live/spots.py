"""The spots of one request's image and the nine figures of the answer, as ``findspots IMAGE`` finds them.

Runs in a worker process: the parameters arrive checked (:mod:`findspots.live.request`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from findspots.analysis.per_image import resolution_selection, spot_d, spot_figures
from findspots.app.pipeline import check_parameters, find_spots
from findspots.images.inputs import load_inputs

# What the figures read, for an image without spots.
EMPTY_TABLE = {
    "xyzobs.px.value": np.zeros((0, 3)),
    "intensity.sum.value": np.zeros(0),
    "intensity.sum.variance": np.zeros(0),
    "panel": np.zeros(0, np.uint64),
    "id": np.zeros(0, np.int32),
}


def image_table(path: str, params) -> tuple[dict[str, np.ndarray], list]:
    """Reflection-table columns and image sequences of the spots in ``path`` (one image, or the
    ``scan_range`` of a multi-image file), found in this process as ``findspots`` finds them."""
    sf = params.spotfinder
    sf.mp.method, sf.mp.nproc, sf.mp.njobs = "none", 1, 1  # the request is the unit of parallelism
    sf.write_hot_mask = False
    params.output.shoeboxes = False
    check_parameters(params)
    sequences = load_inputs([path], verify_md5=params.input.verify_md5)
    rows = find_spots(sequences, params)
    return (rows.table() if len(rows) else dict(EMPTY_TABLE)), sequences


def request_figures(
    table: Mapping[str, np.ndarray],
    sequences: list,
    *,
    d_min: float | None,
    d_max: float | None,
    filter_ice: bool,
    ice_width: float,
) -> dict[str, float | int]:
    """The nine figures of every spot of the table at once, as DIALS's server computes them (one image
    per request, but a ``scan_range`` of several images is summed up the same way), after dropping the
    centroids outside ``d_min``..``d_max``."""
    d = spot_d(table, sequences)
    keep = resolution_selection(d, d_min, d_max)
    return spot_figures(
        d[keep],
        np.asarray(table["intensity.sum.value"], dtype=np.float64)[keep],
        np.asarray(table["intensity.sum.variance"], dtype=np.float64)[keep],
        filter_ice=filter_ice,
        ice_width=ice_width,
    )


def answer(request) -> dict:
    """The JSON answer to a :class:`~findspots.live.request.Request`: ``image`` then the nine figures."""
    table, sequences = image_table(request.path, request.params)
    figures = request_figures(
        table,
        sequences,
        d_min=request.d_min,
        d_max=request.d_max,
        filter_ice=request.filter_ice,
        ice_width=request.ice_width,
    )
    # numpy scalars as Python numbers, for json
    return {"image": request.image, **{name: np.asarray(v).item() for name, v in figures.items()}}
