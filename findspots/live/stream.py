"""Finding spots on a series received from a Dectris detector's stream interface (``input.stream``).

The stream is version 1 of the SIMPLON stream interface: the detector PUSHes multipart ZeroMQ messages
and findspots connects a PULL socket to it. A series is a ``dheader-1.0`` message (with header_detail
basic or all, the detector configuration JSON follows, and with all, the flatfield, pixel mask and
count-rate table, each a JSON part and a data part), one message per frame (``dimage-1.0``,
``dimage_d-1.0`` with the frame's shape, type and encoding, the compressed data, ``dconfig-1.0``) and a
``dseries_end-1.0`` message.

The frames are written as they arrive into ``<output.reflections>.stream.h5``
(:mod:`findspots.images.stream_source`): the receiver holds one frame at a time (plus what ZeroMQ queues
when the detector runs ahead: at most 1000 messages). The file is kept, as the image file of
``output.experiments`` and so that ``findspots <that file>`` reruns the series; delete it when it is no
longer needed. Per-image events (``output.per_image_events``) are written while the series arrives:
the frames stored are handed to the event workers whenever no further message is waiting (so frames
that came together are analysed together), which read them from the file as it grows (SWMR); each is
findspots-server's answer for its frame of the kept file. Once the series has ended, its images go
through the run as an HDF5 sweep's do: 3D spots and every output are those of ``findspots`` on that file.

Geometry: from the header's detector configuration (beam centre, distance, wavelength, pixel size,
sensor, omega start and increment, countrate_correction_count_cutoff as the upper trusted value, the
pixel mask), read as the Dectris master file holding it is read; or, when an experiment file is given
on the command line (for a header without configuration), from its first sequence.

A stream has one consumer: PULL hands each message to one of the sockets connected, so several
consumers each see part of the series. A consumer that misses frames refuses the series (one line
naming the frames it has not seen) rather than finding spots that join across missing images.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from findspots.errors import FindSpotsError, ParameterError
from findspots.images.inputs import kind_of, load_inputs
from findspots.images.models import ImageSequence, Scan
from findspots.images.nexus import NexusReader, Source
from findspots.images.stream_source import DATA, SeriesFile, frame_format
from findspots.live.events import Sink, event_sink

log = logging.getLogger("findspots")

STREAM_FORMAT = "Dectris EIGER stream (SIMPLON stream v1)"


class StreamError(FindSpotsError):
    """The stream cannot give a series to find spots on (exit status 1, one line)."""


@dataclass
class Header:
    """A series header: its number, the detector configuration and pixel mask when it carries them."""

    series: int
    config: dict | None
    pixel_mask: np.ndarray | None


@dataclass
class Received:
    """What was received of a series: its header, the frames kept (0 .. count - 1) and their shape."""

    header: Header
    count: int
    shape: tuple[int, int]  # (slow, fast)


class BadMessage(ValueError):
    """A message that is not of the stream interface (why, in a few words)."""


def _json(part: bytes, what: str) -> dict:
    try:
        value = json.loads(bytes(part))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadMessage(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadMessage(f"{what} is not a JSON object")
    return value


def htype(parts: list[bytes]) -> str:
    """The message's type: the ``htype`` of its first part (e.g. ``dimage-1.0``)."""
    return str(_json(parts[0], "part 1").get("htype", ""))


def parse_header(parts: list[bytes]) -> Header:
    """A ``dheader-1.0`` message: series number, configuration (header_detail basic/all), pixel mask."""
    first = _json(parts[0], "the header's part 1")
    config = None
    if first.get("header_detail", "none") != "none":
        if len(parts) < 2:
            raise BadMessage(f"header_detail {first['header_detail']} but no configuration part")
        config = _json(parts[1], "the header's configuration part")
    mask = None
    rest = parts[2:] if config is not None else []
    for k in range(0, len(rest) - 1, 2):
        info = _json(rest[k], f"the header's part {k + 3}")
        if info.get("htype") == "dpixelmask-1.0":  # the flatfield and count-rate table are not used
            fast, slow = (int(v) for v in info["shape"])
            mask = np.frombuffer(rest[k + 1], np.dtype(info.get("type", "uint32")).newbyteorder("<"))
            if mask.size != fast * slow:
                raise BadMessage(f"pixel mask of {mask.size} values for shape {info['shape']}")
            mask = mask.reshape(slow, fast)
    return Header(int(first.get("series", 0)), config, mask)


def parse_frame(parts: list[bytes]):
    """A ``dimage-1.0`` message: (series, 0-based frame number, frame format, compressed payload)."""
    if len(parts) < 3:
        raise BadMessage(f"an image message of {len(parts)} part(s), expected 4")
    image = _json(parts[0], "the image's part 1")
    described = _json(parts[1], "the image's part 2")
    if described.get("htype") != "dimage_d-1.0":
        raise BadMessage(f"the image's part 2 has htype {described.get('htype')!r}, expected dimage_d-1.0")
    try:
        fmt = frame_format(described)
        series, frame = int(image["series"]), int(image["frame"])
    except (KeyError, TypeError, ValueError) as err:
        raise BadMessage(f"the image's description: {err}") from None
    return series, frame, fmt, bytes(parts[2])


class Receiver:
    """A PULL socket connected to the stream at ``url``."""

    def __init__(self, url: str, timeout: float):
        import zmq

        self.url, self.timeout = url, timeout
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.connect(url)
        except zmq.ZMQError as err:
            self.close()
            raise ParameterError(
                f"input.stream={url}: {err}; give tcp://HOST:PORT of the detector's stream"
            ) from None
        self.count = 0  # messages received

    def waiting(self) -> bool:
        """Whether a message can be received at once."""
        return bool(self._socket.poll(0))

    def next(self) -> list[bytes] | None:
        """The next message's parts, or None after ``timeout`` seconds without one."""
        if not self._socket.poll(int(self.timeout * 1000)):
            return None
        self.count += 1
        return self._socket.recv_multipart()

    def close(self) -> None:
        self._socket.close()
        self._context.term()


def receive(url: str, path: str, timeout: float, with_models: bool, sink: Sink | None = None) -> Received:
    """Receive one series from ``url`` into the file ``path``; returns what was kept.

    ``with_models``: the geometry comes from an experiment file, so the header's configuration is not
    needed. ``sink``: takes the frames (file, 1-based frame) as they are stored. Ends at ``dseries_end``,
    or ``timeout`` seconds after the last message (a warning)."""
    receiver = Receiver(url, timeout)
    partial = f"{path}.partial"
    spill: SeriesFile | None = None
    try:
        header = _wait_for_header(receiver)
        if header.config is None and not with_models:
            raise StreamError(
                f"input.stream={url}: the header of series {header.series} carries no detector configuration "
                "(header_detail none); set header_detail to basic or all on the detector, or give the "
                "geometry as models.expt on the command line"
            )
        log.info(
            "Series %d: header received (%s)",
            header.series,
            "detector configuration" if header.config is not None else "no detector configuration",
        )
        spill = SeriesFile(partial, None if with_models else header.config, header.pixel_mask)
        count = _receive_frames(receiver, header, spill, sink)
        shape = spill.fmt.shape
        spill.close(count)
        spill = None
        os.replace(partial, path)
        return Received(header, count, shape)
    except BadMessage as err:
        raise StreamError(
            f"input.stream={url}: message {receiver.count} is not a Dectris stream v1 message ({err}); "
            "check that this is the detector's stream interface (SIMPLON stream version 1)"
        ) from None
    finally:
        receiver.close()
        if spill is not None:
            spill.abandon()
        if os.path.exists(partial):
            os.unlink(partial)


def _wait_for_header(receiver: Receiver) -> Header:
    log.info("Waiting for a series on %s (until %g s without a message)", receiver.url, receiver.timeout)
    while True:
        parts = receiver.next()
        if parts is None:
            raise StreamError(
                f"input.stream={receiver.url}: no series header within {receiver.timeout:g} s; check that "
                "the detector's stream is enabled and armed, or raise input.watch_timeout"
            )
        kind = htype(parts)
        if kind.startswith("dheader-1.0"):
            return parse_header(parts)
        if kind.startswith("dimage-1.0"):
            series, frame, _, _ = parse_frame(parts)
            raise StreamError(
                f"input.stream={receiver.url}: frame {frame} of series {series} arrived before its header "
                "(joined mid-series); start findspots before the detector is armed"
            )
        if not kind.startswith("dseries_end-1.0"):  # the end of a series missed: wait for the next one
            raise BadMessage(f"htype {kind!r}")


def _receive_frames(receiver: Receiver, header: Header, spill: SeriesFile, sink: Sink | None) -> int:
    """Store the series' frames until its end or the timeout, handing them to ``sink`` on the way;
    returns how many frames it has from 0."""
    url, series = receiver.url, header.series
    ended = False
    stored: list[int] = []  # frames not yet handed to the sink
    while True:
        if stored and not receiver.waiting():
            _hand_over(spill, stored, sink)
        parts = receiver.next()
        if parts is None:
            n = len(spill.frames)
            log.warning(
                "input.stream=%s: no message for %g s after %d frame(s) of series %d and no end of series: "
                "the stream stopped mid-series; finding spots on the frames received",
                url,
                receiver.timeout,
                n,
                series,
            )
            break
        kind = htype(parts)
        if kind.startswith("dseries_end-1.0"):
            log.info("Series %d ended: %d frame(s) received", series, len(spill.frames))
            ended = True
            break
        if not kind.startswith("dimage-1.0"):
            raise BadMessage(f"htype {kind!r} inside series {series}")
        got, frame, fmt, payload = parse_frame(parts)
        if got != series:
            raise StreamError(
                f"input.stream={url}: frame {frame} of series {got} arrived inside series {series} (its end "
                "was not received); run findspots once per series"
            )
        try:
            spill.add(frame, fmt, payload)
        except ValueError as err:
            raise BadMessage(f"frame {frame}: {err}") from None
        if sink is not None:
            stored.append(frame)
    if stored:
        _hand_over(spill, stored, sink)
    return _check_complete(url, header, spill.frames, ended)


def _hand_over(spill: SeriesFile, stored: list[int], sink: Sink) -> None:
    """Hand the frames ``stored`` (0-based, emptied) to ``sink`` once readers can see them."""
    spill.flush()
    sink([(spill.path, frame + 1) for frame in stored])
    stored.clear()


def _check_complete(url: str, header: Header, frames: set[int], ended: bool) -> int:
    """The number of frames 0 .. n - 1 received; StreamError when some in between are missing, a warning
    when the series ``ended`` short of the frames its configuration announced."""
    n = max(frames) + 1 if frames else 0
    missing = sorted(set(range(n)) - frames)
    if missing:
        raise StreamError(
            f"input.stream={url}: this consumer received {len(frames)} of frames 0..{n - 1} of series "
            f"{header.series} (frame {missing[0]} and {len(missing) - 1} more missing): another consumer on "
            "the same stream took them (PULL hands each frame to one consumer); run one findspots per stream"
        )
    if not frames:
        raise StreamError(f"input.stream={url}: series {header.series} ended without any frame")
    config = header.config or {}
    expected = int(config.get("nimages", 0)) * int(config.get("ntrigger", 1))
    if ended and expected > n:
        log.warning("Series %d: %d of its %d frame(s) received", header.series, n, expected)
    return n


def _models_sequence(path: str, count: int, models: ImageSequence) -> ImageSequence:
    """The received frames with the models of ``models`` (an experiment file's sequence)."""
    width = models.scan.oscillation[1]
    start = models.scan.oscillation[0]
    exposure = models.scan.exposure_times[:1]
    return ImageSequence(
        paths=[path] * count,
        image_numbers=list(range(1, count + 1)),
        detector=models.detector,
        beam=models.beam,
        goniometer=models.goniometer,
        scan=Scan((1, count), (start, width), np.resize(exposure, count) if exposure.size else np.zeros(0)),
        template=path,
        reader=NexusReader([Source(path, DATA, 0, count)]),
        external_mask=models.external_mask,
        shadow=models.shadow,
        format_name=STREAM_FORMAT,
        dynamic_shadowing=models.dynamic_shadowing,
    )


def stream_sequences(data_args: list[str], params, cluster_dir: Path | None = None) -> list[ImageSequence]:
    """The series received from ``input.stream`` as the run's one image sequence, its per-image events
    written as its frames arrive (see the module)."""
    inputs = params.input
    if inputs.watch or inputs.template:
        raise ParameterError(
            f"input.stream={inputs.stream} takes its images from the stream; leave out input.watch and "
            "input.template"
        )
    models = None
    if data_args:
        sequences = load_inputs(data_args)
        if len(data_args) > 1 or kind_of(data_args[0]) != "json":
            raise ParameterError(
                f"input.stream={inputs.stream} takes its images from the stream; leave out {data_args[0]} "
                "(only an experiment file, for the geometry, may be given)"
            )
        if params.output.per_image_events:
            raise ParameterError(
                "output.per_image_events with the geometry of an experiment file on a stream is not yet "
                "supported; leave out the experiment file (header_detail basic or all) or the events"
            )
        models = sequences[0]
    path = f"{params.output.reflections}.stream.h5"
    with event_sink(params, cluster_dir, shown_as=path) as sink:  # its workers start before the file opens
        received = receive(inputs.stream, path, inputs.watch_timeout, models is not None, sink)
    log.info("Frames of series %d kept in %s", received.header.series, path)
    if models is None:
        return load_inputs([path])
    shapes = [p.shape for p in models.detector]
    if len(shapes) == 1 and shapes[0] != received.shape:
        raise StreamError(
            f"{data_args[0]}: its detector is {shapes[0]} (slow, fast) pixels but the stream's frames are "
            f"{received.shape}; give the experiment file of this detector"
        )
    return [_models_sequence(path, received.count, models)]
