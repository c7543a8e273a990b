"""input.watch: following a template while its images are written; the outputs of an offline run."""

from __future__ import annotations

import bz2
import threading
import time
from pathlib import Path

import pytest

from findspots.app.cli import run
from findspots.batch.checkpoint import Checkpoints
from findspots.images.cbf_header import BINARY_START
from findspots.images.complete import is_complete

from .test_events import SWEEP, assert_events_are_server_answers, read_events

TEMPLATE = "l-cyst_01_#####.cbf"
CHUNK = 64 * 1024  # the copy writes a 2.4 MB image in 38 pieces, so readers meet partial files


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """The bundled sweep decompressed (plain CBFs, so that a copy is slow enough to be seen half done)."""
    folder = tmp_path_factory.mktemp("sources")
    out = []
    for image in SWEEP:
        target = folder / image.name.removesuffix(".bz2")
        target.write_bytes(bz2.decompress(image.read_bytes()))
        out.append(target)
    return out


def copy_in_chunks(source: Path, target: Path, pause: float = 0.005) -> None:
    """Copy as a slow writer does: piece by piece, each flushed."""
    with source.open("rb") as src, target.open("wb") as dst:
        while piece := src.read(CHUNK):
            dst.write(piece)
            dst.flush()
            time.sleep(pause)


def output_args(folder: Path) -> list[str]:
    return [
        f"output.reflections={folder / 'strong.refl'}",
        f"output.log={folder / 'log'}",
        "output.debug_log=None",
        "output.report=None",
    ]


def offline(folder: Path, images: list[Path], extra: list[str] = ()) -> bytes:
    """The reflection table of an offline run on ``images``."""
    folder.mkdir()
    assert run([*map(str, images), *extra, *output_args(folder)]) == 0
    return (folder / "strong.refl").read_bytes()


def follow(folder: Path, incoming: Path, *extra: str) -> int:
    folder.mkdir(exist_ok=True)
    return run([f"input.template={incoming / TEMPLATE}", "input.watch=True", *extra, *output_args(folder)])


class Copier(threading.Thread):
    """Copies images into ``incoming`` one after the other while findspots follows; ``after_each(k)``
    runs once the k-th image is whole. Any failure is kept for the test to raise."""

    def __init__(self, images: list[Path], incoming: Path, after_each=None):
        super().__init__(daemon=True)
        self.images, self.incoming, self.after_each = images, incoming, after_each
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for k, image in enumerate(self.images, start=1):
                copy_in_chunks(image, self.incoming / image.name)
                if self.after_each is not None:
                    self.after_each(k)
        except BaseException as err:  # noqa: BLE001 (raised again in the test's thread)
            self.error = err


def wait_for_lines(path: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {n} events after {timeout} s")


def test_following_a_sweep_gives_events_as_images_arrive_and_the_offline_spots(tmp_path, sources):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    events = tmp_path / "run" / "events.jsonl"
    events.parent.mkdir()
    # the next image is copied only once the previous one's event is in the file: events are streamed
    copier = Copier(sources, incoming, after_each=lambda k: wait_for_lines(events, k))
    copier.start()
    code = follow(tmp_path / "run", incoming, "input.watch_timeout=5", f"output.per_image_events={events}")
    copier.join()
    assert copier.error is None and code == 0
    copies = [incoming / s.name for s in sources]
    assert_events_are_server_answers(read_events(events), copies, [])
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline(tmp_path / "offline", copies)
    log = (tmp_path / "run" / "log").read_text()
    assert "Image 15 arrived" in log and "No new image for 5 s: following ends with 15 image(s)" in log


def test_watch_images_ends_the_run_with_that_many(tmp_path, sources):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for image in sources[:6]:
        copy_in_chunks(image, incoming / image.name, pause=0)
    started = time.monotonic()
    assert follow(tmp_path / "run", incoming, "input.watch_images=4", "input.watch_timeout=600") == 0
    assert time.monotonic() - started < 120  # not the timeout
    log = (tmp_path / "run" / "log").read_text()
    assert "4 image(s) arrived: following ends" in log and "Left out 2 image(s)" in log
    first4 = [incoming / s.name for s in sources[:4]]
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline(tmp_path / "offline", first4)


def test_watch_timeout_ends_the_run_after_the_last_image(tmp_path, sources):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    copied = []
    copier = Copier(sources[:3], incoming, after_each=lambda k: copied.append(time.monotonic()))
    copier.start()
    assert follow(tmp_path / "run", incoming, "input.watch_timeout=2") == 0
    ended = time.monotonic()
    copier.join()
    assert copier.error is None and ended - copied[-1] >= 2
    assert "No new image for 2 s: following ends with 3 image(s)" in (tmp_path / "run" / "log").read_text()
    copies = [incoming / s.name for s in sources[:3]]
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline(tmp_path / "offline", copies)


def test_a_half_written_image_is_not_read(tmp_path, sources):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    data = sources[0].read_bytes()
    half = data.find(BINARY_START) + len(BINARY_START) + 1000  # the header and a little of the data
    target = incoming / sources[0].name
    events = tmp_path / "run" / "events.jsonl"

    def write_slowly() -> None:
        with target.open("wb") as out:
            out.write(data[:half])
            out.flush()
            time.sleep(2)  # findspots looks at the half file ten times meanwhile
            out.write(data[half:])

    writer = threading.Thread(target=write_slowly)
    writer.start()
    code = follow(
        tmp_path / "run",
        incoming,
        "input.watch_images=1",
        "input.watch_timeout=60",
        f"output.per_image_events={events}",
    )
    writer.join()
    assert code == 0
    assert_events_are_server_answers(read_events(events), [target], [])
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline(tmp_path / "offline", [target])


def test_is_complete_waits_for_the_binary_section_and_the_compressed_stream(tmp_path, sources):
    data = sources[0].read_bytes()
    start = data.find(BINARY_START) + len(BINARY_START)
    binary_size = 2476549  # X-Binary-Size in this image's header
    part = tmp_path / "part.cbf"
    for size, complete in [(100, False), (start, False), (start + binary_size - 1, False)]:
        part.write_bytes(data[:size])
        assert is_complete(str(part), size) is complete, size
    for size in (start + binary_size, len(data)):  # the padding after the binary data is not needed
        part.write_bytes(data[:size])
        assert is_complete(str(part), None), size
    packed = SWEEP[0].read_bytes()
    part = tmp_path / "part.cbf.bz2"
    for size, complete in [(len(packed) // 2, False), (len(packed) - 1, False), (len(packed), True)]:
        part.write_bytes(packed[:size])
        assert is_complete(str(part), size) is complete, size
    other = tmp_path / "image.img"
    other.write_bytes(b"x" * 10)
    assert not is_complete(str(other), None) and not is_complete(str(other), 9)
    assert is_complete(str(other), 10)  # a file of another format: complete once its size is stable


def test_a_killed_follow_run_resumes_from_its_checkpoints(tmp_path, sources, monkeypatch):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for image in sources:
        copy_in_chunks(image, incoming / image.name, pause=0)
    args = ("input.watch_images=15", "chunksize=1", "min_chunksize=1")
    with monkeypatch.context() as m:
        m.setattr(Checkpoints, "remove", lambda self: None)  # as if killed after the blocks
        assert follow(tmp_path / "run", incoming, *args) == 0
    out = tmp_path / "run" / "strong.refl"
    out.unlink()
    checkpoint = Path(f"{out}.findspots-checkpoint")
    for p in sorted(checkpoint.glob("*.npz"))[5:]:
        p.unlink()
    assert follow(tmp_path / "run", incoming, *args) == 0
    assert f"Resumed 5 of 15 blocks from {checkpoint}" in (tmp_path / "run" / "log").read_text()
    copies = [incoming / s.name for s in sources]
    assert out.read_bytes() == offline(tmp_path / "offline", copies, ["chunksize=1", "min_chunksize=1"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["input.watch=True"], "input.watch=True: needs input.template=DIR/name_#####.cbf"),
        (["input.watch=True", "input.template=/tmp/x.cbf"], "input.template=/tmp/x.cbf: needs one run of #"),
    ],
)
def test_watch_parameter_errors_are_one_line(tmp_path, capsys, args, message):
    data = [] if "input.template" in " ".join(args) else [str(SWEEP[0])]
    assert run([*data, *args, *output_args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
