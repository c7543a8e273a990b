"""One request, ``GET /PATH/TO/IMAGE;name=value;...``: the image to read and its parameters, checked.

Parameters are those of ``findspots`` (partial names as on its command line) plus the server's own
(:data:`REQUEST_PHIL`), which are tried first, as ``dials.find_spots_server`` does: ``filter=False``
is ``ice_rings.filter``. ``d_min``/``d_max`` are taken out of the spot finding and applied to the
centroids afterwards (as DIALS's server does). Everything that is wrong with a request is a
:class:`RequestError` carrying the HTTP status and one line.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from typing import Any

from findspots import phil
from findspots.app.parameters import parse_arguments
from findspots.app.pipeline import check_parameters
from findspots.errors import FindSpotsError

REQUEST_PHIL = """\
ice_rings
  .help = "The ice rings of the figures (n_spots_no_ice, total_intensity, the resolution estimates)"
{
  filter = True
    .type = bool
    .help = "Leave the spots on ice rings out of the figures that exclude ice"
  width = 0.004
    .type = float(value_min=0)
    .help = "Half-width times two of an ice ring, in 1/d^2"
}
index = False
  .type = bool
  .help = "Index the spots (DIALS's server only: refused here)"
integrate = False
  .type = bool
  .help = "Integrate after indexing (DIALS's server only: refused here)"
indexing_min_spots = 10
  .type = int(value_min=1)
  .help = "Spots off ice needed before indexing (accepted for DIALS's clients; unused)"
"""

_ASSIGNMENT = re.compile(r"[A-Za-z_][\w.]*=")
PARAMETER_SETS_KEPT = 64  # distinct parameter lists whose checked parameters the server keeps


class RequestError(Exception):
    """A request that cannot be answered with figures: ``status`` (HTTP) and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """A checked request: what the answer calls the image, the file to read, and the parameters."""

    image: str  # as asked: the answer's "image"
    path: str  # the real path of the file
    params: Any  # findspots parameters, without d_min/d_max
    d_min: float | None
    d_max: float | None
    filter_ice: bool
    ice_width: float


@functools.cache
def _request_master() -> phil.Scope:
    return phil.parse(REQUEST_PHIL, source="findspots-server request")


def image_path(image: str, root: str | None) -> str:
    """The real path of a requested image; 403 outside ``root`` (after links and ``..``), 404 if absent.

    A relative path is taken from the server's working folder, as DIALS's server does."""
    if "%3A//" in image:
        raise RequestError(400, f"{image}: URLs are not served; give the path of an image file")
    real = os.path.realpath(image)
    if root is not None:
        top = os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise RequestError(403, f"{image}: outside the served folder {root}")
    if not os.path.exists(real):
        raise RequestError(404, f"{image}: no such file")
    if os.path.isdir(real):
        raise RequestError(400, f"{image}: is a folder; give the path of an image file")
    if root is not None and real.lower().endswith((".expt", ".json")):
        # an experiment list names image files of its own, which could lie anywhere
        raise RequestError(403, f"{image}: experiment files are not served when root= is set")
    return real


def split_parameters(items: list[str]) -> tuple[phil.ExtractedScope, list[str]]:
    """The server's parameters (extracted) and the remaining ``name=value`` items, for findspots."""
    master = _request_master()
    working = master.copy()
    interpreter = phil.ArgumentInterpreter(master)
    rest = []
    for item in items:
        if not _ASSIGNMENT.match(item):
            raise RequestError(400, f"{item}: not a name=value parameter")
        try:
            interpreter.resolve(item.partition("=")[0])
        except phil.PhilError:
            rest.append(item)
            continue
        try:
            interpreter.assign(working, item)
        except phil.PhilError as err:
            raise RequestError(400, str(err)) from None
    return working.extract(), rest


def make_request(image: str, path: str, params, own: phil.ExtractedScope) -> Request:
    """The request for ``path`` with findspots ``params`` (``d_min``/``d_max`` moved out of the spot
    finding, see :func:`take_resolution`) and the server's own parameters ``own``."""
    d_min, d_max = take_resolution(params)
    return Request(
        image=image,
        path=path,
        params=params,
        d_min=d_min,
        d_max=d_max,
        filter_ice=own.ice_rings.filter,
        ice_width=own.ice_rings.width,
    )


def take_resolution(params) -> tuple[float | None, float | None]:
    """``d_min``/``d_max`` taken out of the spot finding of ``params``, to apply to the centroids instead."""
    resolution = params.spotfinder.filter
    d_min, d_max = resolution.d_min, resolution.d_max
    resolution.d_min = resolution.d_max = None  # cheaper, and as DIALS's server does
    return d_min, d_max


def parse_request(target: str, root: str | None = None) -> Request:
    """The request of an HTTP target ``/PATH;name=value;...`` (``root``: the served folder, or None)."""
    image, *items = target.split(";")
    path = image_path(image, root)
    # each request gets its own copy of the parameters: answering one changes some of them
    template = copy.deepcopy(checked_parameters(tuple(item for item in items if item)))
    return dataclasses.replace(template, image=image, path=path)


@functools.lru_cache(maxsize=PARAMETER_SETS_KEPT)
def checked_parameters(items: tuple[str, ...]) -> Request:
    """The request (without image and path) of the ``name=value`` items, parsed and checked; shared by
    every request with these items, so never changed: copy it.

    Kept per list of items, as clients send the same parameters with every image: parsing copies
    the whole findspots parameter tree, the largest cost of a request besides its spot finding.
    A list that fails raises its RequestError and is not kept."""
    own, rest = split_parameters(list(items))
    if own.index or own.integrate:
        raise RequestError(400, "index/integrate: findspots-server finds spots only; leave them out")
    try:
        parsed = parse_arguments(rest)
    except phil.PhilError as err:
        raise RequestError(400, str(err)) from None
    if parsed.data_args:
        raise RequestError(400, f"{parsed.data_args[0]}: not a name=value parameter")
    request = make_request("", "", parsed.params, own)
    try:
        check_parameters(request.params)
    except FindSpotsError as err:
        raise RequestError(400, str(err)) from None
    return request
