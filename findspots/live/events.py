"""Per-image events (``output.per_image_events=FILE.jsonl``): a JSON line per image as soon as it is analysed.

Each line is ``{"image": path, "index": n, <the nine figures>}``: ``index`` is the image's number in its
template (``x_00012.cbf`` -> 12) or its 1-based frame in a multi-image (HDF5) file, the numbers that
``scan_range`` uses. The figures are findspots-server's answer to a request for that image with the
run's parameters (:func:`findspots.live.spots.answer`, the one function both use): the image's spots
found alone, in 2D, ``d_min``/``d_max`` applied to the centroids, the server's ice-ring defaults.

This is a pass of its own over the images rather than a by-product of the block workers: the server's
answer finds spots without the resolution mask and with a global threshold fixed on the image itself,
which the blocks do not, so only the server's own code path gives the same answer in every case; it
costs reading and thresholding each image a second time. Lines are written in the order images finish
(``index`` says which), each flushed at once: the file is a stream that readers follow, not an atomic
output, and it is started afresh by every run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from findspots.app.pipeline import resolve_nproc, scan_ranges
from findspots.batch.executor import Executors
from findspots.batch.executor_base import Executor
from findspots.live.request import Request, make_request, split_parameters
from findspots.live.spots import answer
from findspots.spotfinder.labelling import load_compiled

log = logging.getLogger("findspots")

# Analyses images as they come: (path, number) each.
Sink = Callable[[list[tuple[str, int]]], None]


def image_request(params, path: str, index: int) -> Request:
    """The server's request for image ``index`` of ``path`` with the run's parameters (copied)."""
    params = copy.deepcopy(params)
    params.spotfinder.scan_range = [(index, index)]  # the image alone, also in a multi-image file
    own, _ = split_parameters([])  # the server's defaults for its own parameters
    return make_request(path, path, params, own)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The per-image spot finding's own log lines would bury the run's."""
    logger = logging.getLogger("findspots")
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def image_event(params, path: str, index: int) -> dict:
    """The event line of one image (a worker task): ``image``, ``index``, then the nine figures."""
    with _quiet():
        figures = answer(image_request(params, path, index))
    return {"image": figures.pop("image"), "index": index, **figures}


def sequence_images(sequences: list, ranges: Callable) -> list[tuple[str, int]]:
    """(path, number) of every image to analyse; ``ranges(sequence)``: its inclusive number ranges."""
    out = []
    for seq in sequences:
        wanted = {n for j0, j1 in ranges(seq) for n in range(j0, j1 + 1)}
        out += [(p, n) for p, n in zip(seq.paths, seq.image_numbers, strict=True) if n in wanted]
    return out


class EventStream:
    """The events file, written and flushed a line at a time."""

    def __init__(self, path: str):
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, event: dict) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def analyse(
    images: list[tuple[str, int]], params, executor: Executor, stream: EventStream, shown_as: str | None
) -> None:
    """Analyse ``images`` (path, number) on ``executor``, writing each event as it arrives (its ``image``
    ``shown_as`` when given)."""
    tasks = list(images)

    def describe(i: int) -> str:
        return f"image {tasks[i][1]} of {tasks[i][0]} (output.per_image_events)"

    for _, event in executor.run(image_event, params, tasks, describe):
        stream.write(event if shown_as is None else {**event, "image": shown_as})


@contextlib.contextmanager
def event_sink(params, cluster_dir: Path | None, shown_as: str | None = None) -> Iterator[Sink | None]:
    """Writes the events of the images handed to it (None when ``output.per_image_events`` is not set).

    ``shown_as``: the name the events give the one file they read, when that is not its path (a stream's
    series is read while it is received into a temporary file). Local workers are started here: enter
    it before opening files that they must not inherit open."""
    path = params.output.per_image_events
    if not path:
        yield None
        return
    mp = params.spotfinder.mp
    nproc, njobs = resolve_nproc(mp.nproc), mp.njobs or 1
    if nproc > 1 and mp.method in (None, "none"):
        load_compiled()  # before the local workers are forked
    with EventStream(path) as stream, Executors(mp, cluster_dir) as executors:
        executor = executors.get(nproc, njobs)
        yield lambda images: analyse(images, params, executor, stream, shown_as)
    log.info("Per-image events written to %s", path)


def write_events(sequences: list, params, cluster_dir: Path | None = None) -> None:
    """``output.per_image_events`` for the images of ``sequences`` in the run's scan ranges; nothing for a
    followed run (``input.watch``) or a stream (``input.stream``), which wrote them as images arrived."""
    if params.input.watch or params.input.stream:
        return
    with event_sink(params, cluster_dir) as sink:
        if sink is not None:
            sink(sequence_images(sequences, lambda seq: scan_ranges(seq, params.spotfinder.scan_range)))
