"""Servers for the live tests: findspots-server and DIALS's dials.find_spots_server on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
L_CYSTEINE = sorted((REPO / "data" / "l_cysteine").glob("*.cbf.bz2"))
THAUMATIN = REPO / "data" / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2"
START_TIMEOUT_S = 60


@dataclass
class Server:
    """A server process and where it listens."""

    process: subprocess.Popen
    port: int
    log: Path

    def get(self, target: str, timeout: float = 120) -> tuple[int, dict]:
        """HTTP status and JSON body of ``GET target``."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{target}", timeout=timeout) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def free_port() -> int:
    """A loopback port free now (for DIALS's server, which cannot pick one itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(process: subprocess.Popen) -> None:
    """End a server started in its own session, with its worker processes."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_findspots_server(args: list[str], log: Path) -> Server:
    """``findspots-server port=0 ARGS``; its port from the first line it prints."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from findspots.live.server import main; main()", "port=0", *args],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
    )
    line = process.stdout.readline()
    if "serving http://" not in line:
        process.wait(10)
        raise RuntimeError(f"findspots-server did not start: {line}{log.read_text()}")
    port = int(line.split("serving http://")[1].split("/")[0].rsplit(":", 1)[1])
    return Server(process, port, log)


@pytest.fixture
def findspots_server(tmp_path) -> Iterator[Callable[..., Server]]:
    """Starts findspots-servers (``findspots_server("nproc=2", ...)``); all stopped at the end."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = start_findspots_server(list(args), tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        _stop_group(server.process)


@pytest.fixture(scope="module")
def dials_server(tmp_path_factory) -> Iterator[Server]:
    """DIALS 3.12's ``dials.find_spots_server nproc=2`` (skips when DIALS is absent)."""
    if shutil.which("dials.find_spots_server") is None or shutil.which("dials.find_spots_client") is None:
        pytest.skip("DIALS is not installed (apt-get install -y dials)")
    folder = tmp_path_factory.mktemp("dials_server")
    port = free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        ["dials.find_spots_server", f"port={port}", "nproc=2"],
        cwd=folder,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop_group(process)
                raise RuntimeError(f"dials.find_spots_server did not start: {log.read_text()}") from None
            time.sleep(0.2)
    yield server
    _stop_group(process)
