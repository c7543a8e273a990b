"""The run's image files: the data arguments, ``input.template``'s files, and following a sweep while it is
written (``input.watch``), with its per-image events (``output.per_image_events``) on the way.

Following polls the template's folder; an image is taken once its file is complete
(:func:`findspots.images.complete.is_complete`: a file still being written is never read) and is analysed
on its own at once when events are asked for. Following ends ``input.watch_timeout`` seconds after the
last new image, or when ``input.watch_images`` have arrived; the images taken are then read as an
offline run reads them, so the spots and every output are those of ``findspots`` on the same files,
and a stopped run resumes from its checkpoints like any run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

from findspots.errors import ImageError, NotYetSupported, ParameterError
from findspots.images.complete import is_complete
from findspots.images.inputs import kind_of
from findspots.live.events import Sink, event_sink

log = logging.getLogger("findspots")

POLL_S = 0.2  # between looks at the template's folder


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


def follow(template: str, timeout: float, most: int | None, sink: Sink) -> list[str]:
    """The template's images, each handed to ``sink`` once complete, until ``timeout`` seconds pass
    without a new one or ``most`` have arrived; returns their paths in number order."""
    taken: dict[int, str] = {}
    sizes: dict[str, int] = {}
    last = time.monotonic()
    log.info("Following %s (until %g s without a new image)", template, timeout)
    while True:
        new = []
        for number, path in sorted(template_files(template).items()):
            if number in taken:
                continue
            if is_complete(path, sizes.get(path)):
                new.append((path, number))
            with contextlib.suppress(OSError):
                sizes[path] = os.path.getsize(path)
        if most is not None:
            new = new[: most - len(taken)]
        if new:
            for path, number in new:
                log.info("Image %d arrived: %s", number, path)
            taken.update((number, path) for path, number in new)
            sink(new)
            last = time.monotonic()
        if most is not None and len(taken) >= most:
            log.info("%d image(s) arrived: following ends", len(taken))
            break
        if time.monotonic() - last >= timeout:
            log.info("No new image for %g s: following ends with %d image(s)", timeout, len(taken))
            break
        time.sleep(POLL_S)
    left = sorted(set(template_files(template)) - set(taken))
    if left:
        log.warning("Left out %d image(s) still incomplete or beyond input.watch_images: %s", len(left), left)
    if not taken:
        raise ImageError(f"input.template={template}: no complete image appeared within {timeout:g} s")
    return [taken[n] for n in sorted(taken)]


def image_arguments(data_args: list[str], params, cluster_dir: Path | None = None) -> list[str]:
    """The run's data arguments: ``data_args`` and ``input.template``'s files, or with ``input.watch`` the
    template's images followed while they are written (their events written as they arrive)."""
    inputs = params.input
    if not inputs.watch:
        if not inputs.template:
            return data_args
        files = [path for _, path in sorted(template_files(inputs.template).items())]
        if not files:
            raise ImageError(f"input.template={inputs.template}: no files match; check the template")
        return [*data_args, *files]
    hdf5 = next((a for a in data_args if os.path.exists(a) and kind_of(a) == "hdf5"), None)
    if hdf5 is not None:
        raise NotYetSupported(f"input.watch=True with the HDF5 file {hdf5}")
    if not inputs.template:
        raise ParameterError(
            "input.watch=True: needs input.template=DIR/name_#####.cbf (the images to follow)"
        )
    if data_args:
        raise ParameterError(
            f"input.watch=True follows input.template alone; leave out {data_args[0]} and any other file"
        )
    with event_sink(params, cluster_dir) as sink:
        return follow(inputs.template, inputs.watch_timeout, inputs.watch_images, sink or _ignore)


def _ignore(images: list[tuple[str, int]]) -> None:
    """No events: the images are only taken."""
