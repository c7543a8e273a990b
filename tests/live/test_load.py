"""8 concurrent clients x 200 requests on loopback: every request answered, correctly, memory flat."""

from __future__ import annotations

import bz2
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from findspots.live.request import parse_request
from findspots.live.spots import answer

from .conftest import L_CYSTEINE

pytestmark = pytest.mark.slow

CLIENTS = 8
REQUESTS = 200
MEMORY_GROWTH_LIMIT = 64 * 2**20  # server and workers, after the warm-up pass


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_concurrent_clients(findspots_server, tmp_path):
    # uncompressed copies: bzip2 would take half of each request's time
    images = []
    for source in [p for p in L_CYSTEINE if p.name.startswith("l-cyst_01_")][7:15]:
        image = tmp_path / source.name.removesuffix(".bz2")
        image.write_bytes(bz2.decompress(source.read_bytes()))
        images.append(image)
    expected = {f"{image}": answer(parse_request(f"{image}")) for image in images}
    assert all(e["n_spots_no_ice"] > 10 for e in expected.values())  # the estimates are computed too

    def request(client: int, i: int) -> tuple[str, int, dict]:
        """Mostly spot finding; every 10th a missing image, every 10th (shifted) a bad parameter."""
        if i % 10 == 3:
            return f"{tmp_path}/missing_{client}_{i}.cbf", 404, {}
        if i % 10 == 7:
            return f"{images[0]};nonsense_{i}=1", 400, {}
        target = str(images[(client + i) % len(images)])
        return target, 200, expected[target]

    server = findspots_server("nproc=2")
    for target in expected:  # warm-up: every image read once
        assert server.get(target)[0] == 200
    process = psutil.Process(server.process.pid)
    baseline, threads = tree_rss(process), process.num_threads()
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(tree_rss(process))

    def client(k: int) -> list[str]:
        problems = []
        for i in range(REQUESTS):
            target, status, figures = request(k, i)
            got_status, body = server.get(target, timeout=120)
            if (
                got_status != status
                or (status == 200 and body != figures)
                or (status != 200 and "error" not in body)
            ):
                problems.append(f"{target}: {got_status} {body}")
        return problems

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            problems = [p for found in pool.map(client, range(CLIENTS)) for p in found]
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    assert problems == []
    assert samples and max(samples) - baseline < MEMORY_GROWTH_LIMIT, (baseline, max(samples))
    time.sleep(0.5)  # the last handler threads finish
    assert process.num_threads() == threads  # no thread left behind per request
    print(
        f"{CLIENTS * REQUESTS} requests in {elapsed:.1f} s ({CLIENTS * REQUESTS / elapsed:.1f}/s); "
        f"memory {baseline / 2**20:.0f} MiB -> peak {max(samples) / 2**20:.0f} MiB"
    )
