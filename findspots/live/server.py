"""``findspots-server``: answers ``dials.find_spots_client`` (and any HTTP client) with spot-finding figures.

``GET /PATH/TO/IMAGE;name=value;...`` finds the spots of that image with those findspots parameters
and answers 200 with JSON: ``image`` and the nine figures of ``dials.find_spots_server``. A bad request
answers 4xx (5xx for a failure of the server) with ``{"image": ..., "error": "<one line>"}``; the
server goes on serving. ``GET /Ctrl-C`` (``dials.find_spots_client stop``) stops it after the requests
in progress; ``GET /`` answers 200 (``dials.find_spots_client ping``).
"""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from findspots import __version__, phil
from findspots.app.parameters import master, parse_arguments
from findspots.app.pipeline import resolve_nproc
from findspots.batch.clusters.base import cluster_workdir
from findspots.errors import FindSpotsError, ParameterError, WorkerDied
from findspots.images import ImageError
from findspots.live.request import RequestError, parse_request
from findspots.live.workers import Workers, start_workers

USAGE = """\
usage: findspots-server [host=127.0.0.1] [port=1701] [root=DIR] [nproc=N] [mp.method=slurm njobs=J ...]

Finds spots on single images for dials.find_spots_client (or curl):
  dials.find_spots_client port=1701 /data/image_0001.cbf threshold.algorithm=dispersion d_min=2
  curl 'http://127.0.0.1:1701/data/image_0001.cbf;d_min=2'
Answers JSON with the nine per-image figures of dials.find_spots_server. Any findspots parameter can
be given per request, and ice_rings.filter, ice_rings.width; scan_range=N,N picks image N of a
multi-image file. Stop it with: dials.find_spots_client stop port=1701

host other than loopback needs root=DIR: only images under DIR are served (403 otherwise).
nproc (default: the CPUs here) requests run at once; with spotfinder.mp.method (sge, slurm, ...)
they run on njobs cluster jobs of nproc processes each (the other spotfinder.mp parameters apply).
"""

SERVER_PHIL = """\
host = 127.0.0.1
  .type = str
  .help = "The address to listen on; anything but loopback needs root"
port = 1701
  .type = int(value_min=0, value_max=65535)
  .help = "The port to listen on (0: any free port, printed at start)"
root = None
  .type = str
  .help = "Only images under this folder are served (after resolving links)"
"""

REQUEST_TIMEOUT_S = 60  # a client that connects and sends nothing is dropped after this


class UsageError(Exception):
    """A bad server command line (one line)."""


def _status(err: Exception) -> tuple[int, str]:
    """HTTP status and one line for a request that failed."""
    if isinstance(err, RequestError):
        return err.status, str(err)
    if isinstance(err, (ParameterError, phil.PhilError)):
        return 400, str(err)
    if isinstance(err, WorkerDied):
        return 500, str(err)
    if isinstance(err, (ImageError, FindSpotsError)):
        return 422, str(err)
    return 500, f"internal error ({type(err).__name__}: {err})"


class Handler(BaseHTTPRequestHandler):
    """One HTTP request (each on its own thread)."""

    server_version = f"findspots-server/{__version__}"
    timeout = REQUEST_TIMEOUT_S
    server: SpotServer

    def do_GET(self) -> None:
        if self.path == "/Ctrl-C":
            self._reply(200, {"stopping": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        if self.path == "/":
            self._reply(200, {"server": "findspots-server", "version": __version__})
            return
        image = self.path.split(";")[0]
        try:
            status, body = 200, self.server.workers.run(parse_request(self.path, self.server.root))
        except Exception as err:
            status, message = _status(err)
            body = {"image": image, "error": message}
        self._reply(status, body)

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SpotServer(ThreadingHTTPServer):
    """A thread per connection; stopping waits for the requests in progress."""

    daemon_threads = False
    block_on_close = True

    workers: Workers  # set once started, before serving

    def __init__(self, address: tuple[str, int], root: str | None):
        host = address[0] or None  # "": every interface
        infos = socket.getaddrinfo(host, address[1], type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        self.address_family = infos[0][0]
        self.root = root
        super().__init__(address, Handler)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address ("" means every interface)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise UsageError(f"host={host}: unknown host ({err.strerror})") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def parse_command_line(argv: list[str]) -> tuple[phil.ExtractedScope, object, bool]:
    """Server parameters, the spotfinder.mp parameters, and whether nproc was given."""
    own = phil.parse(SERVER_PHIL, source="findspots-server")
    working = own.copy()
    own_names = phil.ArgumentInterpreter(own)
    findspots_names = phil.ArgumentInterpreter(master())
    rest, paths = [], []
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if not eq:
            raise UsageError(f"{arg}: not a name=value parameter\n{USAGE}")
        try:
            own_names.resolve(name)
        except phil.PhilError:
            definition, _ = findspots_names.resolve(name)
            if not definition.path.startswith("spotfinder.mp."):
                raise UsageError(
                    f"{arg}: spot-finding parameters go in each request (image;{arg}); the server "
                    "takes host, port, root and spotfinder.mp parameters"
                ) from None
            rest.append(arg)
            paths.append(definition.path)
        else:
            own_names.assign(working, arg)
    mp = parse_arguments(rest).params.spotfinder.mp
    return working.extract(), mp, "spotfinder.mp.nproc" in paths


def check_root(host: str, root: str | None) -> str | None:
    """The served folder: required (and must exist) when ``host`` is not loopback."""
    if root is None:
        if not is_loopback(host):
            raise UsageError(
                f"host={host} is reachable from other machines: give root=DIR, the folder whose "
                "images may be served"
            )
        return None
    if not Path(root).is_dir():
        raise UsageError(f"root={root}: no such folder; give the folder whose images may be served")
    return str(Path(root).resolve())


def serve(argv: list[str]) -> int:
    """Run the server until stopped; the exit status."""
    try:
        params, mp, nproc_given = parse_command_line(argv)
        root = check_root(params.host, params.root)
    except (UsageError, phil.PhilError) as err:
        print(f"findspots-server: error: {err}", file=sys.stderr)
        return 2
    try:
        server = SpotServer((params.host, params.port), root)
    except OSError as err:
        print(
            f"findspots-server: error: cannot listen on {params.host}:{params.port} ({err.strerror})",
            file=sys.stderr,
        )
        return 1
    nproc = resolve_nproc(mp.nproc if nproc_given else "Auto")
    if mp.method not in (None, "none"):
        print(
            f"findspots-server: starting {mp.njobs or 1} {mp.method} job(s) of {nproc} process(es)",
            flush=True,
        )
    try:
        server.workers = start_workers(
            mp, nproc, cluster_workdir(f"findspots-server-{server.server_address[1]}")
        )
    except FindSpotsError as err:
        server.server_close()
        print(f"findspots-server: error: {err}", file=sys.stderr)
        return err.exit_code
    host, port = server.server_address[:2]
    url_host = f"[{host}]" if ":" in host else host
    print(
        f"findspots-server {__version__}: serving http://{url_host}:{port}/ with {server.workers.description}"
        + (f", images under {root}" if root else "")
        + f"; stop with: dials.find_spots_client stop host={host} port={port}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.workers.close()
    print("findspots-server: stopped", flush=True)
    return 0


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C


def main() -> None:
    """Console-script entry point."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(USAGE)
        sys.exit(0)
    sys.exit(serve(sys.argv[1:]))
