"""The run's image files: the data arguments, ``input.template``'s files, and following a sweep while it is
written (``input.watch``), with its per-image events (``output.per_image_events``) on the way.

Following polls the template's folder, or an NXmx master's data; an image is taken once its file is
complete (:func:`findspots.images.complete.is_complete`: a file still being written is never read), a
master's frame once it can be read whole (:mod:`findspots.images.nexus_follow`: frames appended under
SWMR, data files appearing one after the other), and is analysed on its own at once when events are
asked for. Following ends ``input.watch_timeout`` seconds after the last new image, or when
``input.watch_images`` have arrived; the images taken are then read as an offline run reads them (a
master's frames as ``spotfinder.scan_range=1,N``), so the spots and every output are those of
``findspots`` on the same files, and a stopped run resumes from its checkpoints like any run.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from findspots.errors import ImageError, ParameterError
from findspots.images.complete import CompleteFiles
from findspots.images.inputs import kind_of
from findspots.images.nexus_follow import GrowingMaster
from findspots.live.events import Sink, event_sink

log = logging.getLogger("findspots")

POLL_S = 0.2  # between the starts of two looks (a non-CBF file is whole once its size holds that long)


def template_regex(template: str) -> tuple[str, re.Pattern]:
    """The folder of ``template`` and the file-name pattern of its images (the number is group 1)."""
    directory, name = os.path.split(template)
    runs = re.findall(r"#+", name)
    if len(runs) != 1:
        raise ParameterError(
            f"input.template={template}: needs one run of # for the image number, e.g. /data/x_#####.cbf"
        )
    prefix, suffix = name.split(runs[0])
    return directory or ".", re.compile(f"{re.escape(prefix)}(\\d{{{len(runs[0])}}}){re.escape(suffix)}")


def template_files(template: str) -> dict[int, str]:
    """The files of ``template`` there now: image number -> path."""
    directory, pattern = template_regex(template)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise ImageError(f"input.template={template}: folder {directory} does not exist") from None
    return {
        int(m.group(1)): os.path.join(directory, name) for name in names if (m := pattern.fullmatch(name))
    }


def follow(
    what: str,
    look: Callable[[], list[tuple[str, int]]],
    pending: Callable[[list[tuple[str, int]]], list[int]],
    timeout: float,
    most: int | None,
    sink: Sink,
) -> list[tuple[str, int]]:
    """The images (path, number) that ``look()`` finds whole, each handed to ``sink`` as it comes, until
    ``timeout`` seconds pass without a new one or ``most`` have arrived; ``pending(taken)``: the numbers
    of the images there but not taken, logged at the end. ``what`` names the images followed."""
    taken: list[tuple[str, int]] = []
    last = time.monotonic()
    log.info("Following %s (until %g s without a new image)", what, timeout)
    while True:
        looked = time.monotonic()
        new = look()
        if most is not None:
            new = new[: most - len(taken)]
        if new:
            for path, number in new:
                log.info("Image %d arrived: %s", number, path)
            taken += new
            sink(new)
            last = time.monotonic()
        if most is not None and len(taken) >= most:
            log.info("%d image(s) arrived: following ends", len(taken))
            break
        if time.monotonic() - last >= timeout:
            log.info("No new image for %g s: following ends with %d image(s)", timeout, len(taken))
            break
        time.sleep(max(0.0, looked + POLL_S - time.monotonic()))  # a long batch's analysis was the wait
    left = pending(taken)
    if left:
        log.warning("Left out %d image(s) still incomplete or beyond input.watch_images: %s", len(left), left)
    return taken


def follow_template(template: str, timeout: float, most: int | None, sink: Sink) -> list[str]:
    """The template's images, followed (:func:`follow`): each taken once its file is complete; returns
    their paths in number order."""
    seen: set[int] = set()
    complete = CompleteFiles()

    def look() -> list[tuple[str, int]]:
        new = []
        for number, path in sorted(template_files(template).items()):
            if number in seen:
                continue
            if complete(path):
                new.append((path, number))
        seen.update(number for _, number in new)
        return new

    def pending(taken: list[tuple[str, int]]) -> list[int]:
        return sorted(set(template_files(template)) - {number for _, number in taken})

    taken = follow(template, look, pending, timeout, most, sink)
    if not taken:
        raise ImageError(f"input.template={template}: no complete image appeared within {timeout:g} s")
    return [path for path, _ in sorted(taken, key=lambda image: image[1])]


def follow_master(master: str, timeout: float, most: int | None, sink: Sink) -> int:
    """The frames of the NXmx master ``master``, followed (:func:`follow`) while its data are written:
    each taken once it can be read whole (:class:`~findspots.images.nexus_follow.GrowingMaster`);
    returns how many, from the first."""
    growing = GrowingMaster(master)
    seen = 0

    def look() -> list[tuple[str, int]]:
        nonlocal seen
        first, seen = seen + 1, growing.frames()
        return [(master, k) for k in range(first, seen + 1)]

    def pending(taken: list[tuple[str, int]]) -> list[int]:
        return list(range(len(taken) + 1, growing.frames() + 1))

    taken = follow(master, look, pending, timeout, most, sink)
    if not taken:
        raise ImageError(
            f"input.watch=True: no complete frame of {master} appeared within {timeout:g} s; check that the "
            "detector writes there, or raise input.watch_timeout"
        )
    return len(taken)


def image_arguments(data_args: list[str], params, cluster_dir: Path | None = None) -> list[str]:
    """The run's data arguments: ``data_args`` and ``input.template``'s files, or with ``input.watch`` the
    template's images, or the frames of one NXmx master, followed while they are written (their events
    written as they arrive); a followed master's frames are those of ``spotfinder.scan_range`` then."""
    inputs = params.input
    if not inputs.watch:
        if not inputs.template:
            return data_args
        files = [path for _, path in sorted(template_files(inputs.template).items())]
        if not files:
            raise ImageError(f"input.template={inputs.template}: no files match; check the template")
        return [*data_args, *files]
    timeout, most = inputs.watch_timeout, inputs.watch_images
    if inputs.template:
        if data_args:
            raise ParameterError(
                f"input.watch=True follows input.template alone; leave out {data_args[0]} and any other file"
            )
        with event_sink(params, cluster_dir) as sink:
            return follow_template(inputs.template, timeout, most, sink or _ignore)
    master = _master(data_args)
    if params.spotfinder.scan_range:
        raise ParameterError(
            f"input.watch=True on {master} takes its frames as they are written; leave out "
            "spotfinder.scan_range (input.watch_images=N stops after N frames)"
        )
    with event_sink(params, cluster_dir) as sink:
        frames = follow_master(master, timeout, most, sink or _ignore)
    params.spotfinder.scan_range = [(1, frames)]
    return [master]


def _master(data_args: list[str]) -> str:
    """The one NXmx master among the data arguments of a followed run (it may not exist yet)."""
    written = len(data_args) == 1 and os.path.exists(data_args[0]) and os.path.getsize(data_args[0]) > 0
    if len(data_args) != 1 or (written and kind_of(data_args[0]) != "hdf5"):
        raise ParameterError(
            "input.watch=True: needs input.template=DIR/name_#####.cbf (the images to follow) or the one "
            "NXmx master file whose frames to follow"
        )
    return data_args[0]


def _ignore(images: list[tuple[str, int]]) -> None:
    """No events: the images are only taken."""
