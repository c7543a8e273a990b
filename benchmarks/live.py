"""Live benchmark: findspots-server against dials.find_spots_server on the same images and cores.

Both servers run on loopback with the same ``nproc`` and answer the same requests (the same image
paths and parameters, DIALS's classic threshold so both find the same spots). For each server:

* **throughput**: ``--clients`` concurrent clients send ``--requests`` requests in all, round-robin over
  the images, each waiting for its answer before the next (closed loop); images per second = answered
  requests / wall time;
* **latency**: requests sent open-loop at ``--load`` (default 80 %) of that server's measured throughput
  for ``--seconds``; each request's latency is request sent -> answer read; p50, p99 and the maximum;
* **CPU per request**: user + system CPU of the server and its workers over the throughput run, per
  request (much less sensitive to other load on a shared machine than the rates).

The sweep is the benchmarks' synthetic Pilatus 6M sweep (``make_sweep.py``, uncompressed CBF), so
``images/s per core`` compares with the batch benchmark. Results go to ``results/live_<name>.json`` and
``.md``. One untimed warm-up request per image comes first (page cache, numba).

``--mode follow`` measures ``findspots input.watch=True`` instead (DIALS has no follow mode): for each
``nproc`` the sweep's images are dropped into an empty folder at ``--rate`` images/s, each written under
a name outside the template and renamed into it (as a detector's writer does), while
``output.per_image_events`` is polled every 2 ms; each image's latency is rename -> its event line.
Sustained rate = events / (last event - first rename). Results go to ``results/live_follow_<preset>``.

    .venv/bin/python benchmarks/live.py                          # p6m, 20 images, nproc 1 and 2
    .venv/bin/python benchmarks/live.py --nproc 2 --requests 200 --servers findspots
    .venv/bin/python benchmarks/live.py --mode follow --rate 10  # findspots following a folder
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from make_sweep import make_sweep, preset  # noqa: E402
from procmon import wait_for_idle  # noqa: E402

SERVERS = {
    "findspots": [str(REPO / ".venv" / "bin" / "findspots-server")],
    "dials": [shutil.which("dials.find_spots_server") or "/usr/bin/dials.find_spots_server"],
}
# Same spots from both: DIALS 3.12's server defaults to dispersion_extended, whose masked-pixel rule
# differs from current DIALS (docs/departures.md#dials-versions); classic agrees exactly.
PARAMETERS = "threshold.algorithm=dispersion;filter.max_spot_size=1000"
GOAL_PER_CORE = 25.0  # Pilatus 6M images/s per core, sustained
GOAL_P99_MS = 150.0
GOAL_RATIO = 5.0
FINDSPOTS = str(REPO / ".venv" / "bin" / "findspots")
EVENT_POLL_S = 0.002
FOLLOW_TIMEOUT_S = 5  # input.watch_timeout: following ends this long after the last image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 300.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.read()


def start_server(name: str, nproc: int) -> tuple[subprocess.Popen, str]:
    """Start one server on a free loopback port; return it and its base URL once it answers."""
    port = free_port()
    argv = [*SERVERS[name], f"port={port}", f"nproc={nproc}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} server exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{name} server did not listen within 120 s")


def stop_server(proc: subprocess.Popen, base: str) -> None:
    try:
        get(f"{base}/Ctrl-C", timeout=10)
    except (urllib.error.URLError, OSError):
        pass  # DIALS's server closes the connection as it stops
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (a server and its workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def request_url(base: str, image: Path) -> str:
    return f"{base}{image};{PARAMETERS}"


def throughput(base: str, images: list[Path], clients: int, requests: int) -> dict:
    """Closed loop: ``clients`` threads, ``requests`` answers in all."""
    latencies: list[float] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            json.loads(get(request_url(base, images[i % len(images)])))
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - t0
    return {"requests": requests, "wall_s": wall, "rate": requests / wall, **percentiles(latencies)}


def paced(base: str, images: list[Path], rate: float, seconds: float) -> dict:
    """Open loop: one request every 1/rate s for ``seconds``, each on its own thread."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        json.loads(get(request_url(base, images[i % len(images)])))
        with lock:
            latencies.append(time.perf_counter() - t0)

    n = max(1, int(rate * seconds))
    start = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        futures = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, i))
        for f in futures:
            f.result()
    return {"rate": rate, "requests": n, **percentiles(latencies)}


def percentiles(latencies: list[float]) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))],
        "max_ms": ms[-1],
    }


def measure(name: str, nproc: int, images: list[Path], args) -> dict:
    wait_for_idle(max_wait_s=args.idle_wait)
    proc, base = start_server(name, nproc)
    try:
        for image in images:  # warm-up, untimed
            get(request_url(base, image))
        cpu_s = tree_cpu_s(proc.pid)
        closed = throughput(base, images, args.clients, args.requests)
        closed["cpu_ms"] = 1000 * (tree_cpu_s(proc.pid) - cpu_s) / args.requests
        open_loop = paced(base, images, args.load * closed["rate"], args.seconds)
    finally:
        stop_server(proc, base)
    return {"server": name, "nproc": nproc, "throughput": closed, "latency": open_loop}


def event_times(events: Path, wanted: int, proc: subprocess.Popen, seen: dict[int, float]) -> None:
    """Poll ``events`` every 2 ms until ``wanted`` indices have lines or ``proc`` exits; ``seen``: index
    -> time.monotonic() its line was first read."""
    offset, partial = 0, b""
    while len(seen) < wanted:
        done = proc.poll() is not None  # read once more after exit: the last lines may be new
        with contextlib.suppress(FileNotFoundError), events.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
            offset += len(chunk)
            now = time.monotonic()
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                seen.setdefault(json.loads(line)["index"], now)
        if done:
            return
        time.sleep(EVENT_POLL_S)


def follow_run(nproc: int, images: list[Path], args) -> dict:
    """One ``findspots input.watch=True`` run fed ``images`` at ``args.rate`` images/s: latencies
    rename -> event line, sustained rate, and the exit status after following ends."""
    wait_for_idle(max_wait_s=args.idle_wait)
    with tempfile.TemporaryDirectory(prefix="live_follow_") as tmp:
        folder = Path(tmp)
        argv = [
            FINDSPOTS,
            f"input.template={folder}/img_#####.cbf",
            "input.watch=True",
            f"input.watch_timeout={FOLLOW_TIMEOUT_S}",
            f"output.per_image_events={folder}/events.jsonl",
            f"nproc={nproc}",
            "output.report=None",
            "threshold.algorithm=dispersion",
            f"output.reflections={folder}/strong.refl",
            f"output.log={folder}/log",
            f"output.debug_log={folder}/dlog",
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # let it start following before the first image
        seen: dict[int, float] = {}
        poller = threading.Thread(target=event_times, args=(folder / "events.jsonl", len(images), proc, seen))
        poller.start()
        renamed: dict[int, float] = {}
        start = time.monotonic()
        for number, image in enumerate(images, 1):
            delay = start + (number - 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name = f"img_{number:05d}.cbf"
            shutil.copyfile(image, folder / f".{name}.tmp")  # outside the template until renamed
            os.rename(folder / f".{name}.tmp", folder / name)
            renamed[number] = time.monotonic()
        try:
            returncode = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
        poller.join()
    latencies = [seen[n] - renamed[n] for n in renamed if n in seen]
    span = max(seen.values()) - renamed[1] if seen else float("nan")
    return {
        "nproc": nproc,
        "images": len(images),
        "events": len(seen),
        "rate_offered": args.rate,
        "rate_sustained": len(seen) / span,
        **(percentiles(latencies) if latencies else {}),
        "returncode": returncode,
    }


def render_follow(results: list[dict], meta: dict) -> str:
    lines = [
        f"# Live benchmark, following a folder: {meta['sweep']} ({meta['nimages']} Pilatus 6M images, "
        "uncompressed CBF)",
        "",
        f"{meta['date']}, {meta['cores']} cores; `findspots input.watch=True input.watch_timeout="
        f"{FOLLOW_TIMEOUT_S} threshold.algorithm=dispersion`; images renamed into the folder at "
        f"{meta['rate']:g} images/s; latency = rename -> its line in `output.per_image_events`. "
        "DIALS has no follow mode, so there is nothing to compare with.",
        "",
        "| nproc | images | events | images/s offered | sustained | p50 ms | p99 ms | max ms | exit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['nproc']} | {r['images']} | {r['events']} | {r['rate_offered']:g} | "
            f"{r['rate_sustained']:.1f} | {r.get('p50_ms', float('nan')):.0f} | "
            f"{r.get('p99_ms', float('nan')):.0f} | {r.get('max_ms', float('nan')):.0f} | {r['returncode']} |"
        )
    return "\n".join(lines) + "\n"


def render(results: list[dict], meta: dict) -> str:
    lines = [
        f"# Live benchmark: {meta['sweep']} ({meta['nimages']} Pilatus 6M images, uncompressed CBF)",
        "",
        f"{meta['date']}, {meta['cores']} cores; `{PARAMETERS}` on every request; "
        f"{meta['clients']} clients x {meta['requests']} requests (closed loop), then "
        f"{int(meta['load'] * 100)} % of that rate for {meta['seconds']} s (open loop).",
        "",
        "| server | nproc | images/s | per core | CPU ms / request | p50 ms (closed) | p50 ms at load "
        "| p99 ms at load | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, lat = r["throughput"], r["latency"]
        lines.append(
            f"| {r['server']} | {r['nproc']} | {t['rate']:.1f} | {t['rate'] / r['nproc']:.1f} | "
            f"{t['cpu_ms']:.1f} | {t['p50_ms']:.0f} | {lat['p50_ms']:.0f} | {lat['p99_ms']:.0f} | "
            f"{lat['max_ms']:.0f} |"
        )
    by = {(r["server"], r["nproc"]): r["throughput"] for r in results}
    lines += [
        "",
        f"Goals: >= {GOAL_PER_CORE:g} images/s per core, p99 < {GOAL_P99_MS:g} ms at load, "
        f">= {GOAL_RATIO:g}x DIALS's server.",
    ]
    for nproc in sorted({r["nproc"] for r in results}):
        if ("findspots", nproc) in by and ("dials", nproc) in by:
            ours, theirs = by[("findspots", nproc)], by[("dials", nproc)]
            lines.append(
                f"- nproc={nproc}: findspots-server / dials.find_spots_server = "
                f"{ours['rate'] / theirs['rate']:.2f}x (images/s), "
                f"{theirs['cpu_ms'] / ours['cpu_ms']:.2f}x (CPU per request)"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="p6m")
    ap.add_argument("--nimages", type=int, default=20)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=sorted(SERVERS, reverse=True))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--load", type=float, default=0.8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--idle-wait", type=float, default=300.0, help="longest wait for an idle machine, s")
    ap.add_argument("--name", help="results name (default live_<preset>, live_follow_<preset> to follow)")
    ap.add_argument("--mode", choices=["server", "follow"], default="server")
    ap.add_argument("--rate", type=float, default=10.0, help="images/s dropped into the folder (follow)")
    args = ap.parse_args(argv)
    spec = preset(args.preset, args.nimages)
    images = [p.resolve() for p in make_sweep(spec)]
    if args.mode == "follow":
        return follow_main(images, spec.name, args)
    results = []
    for nproc in args.nproc:
        for name in args.servers:
            results.append(measure(name, nproc, images, args))
            print(json.dumps(results[-1]), flush=True)
    meta = {
        "sweep": spec.name,
        "nimages": len(images),
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "clients": args.clients,
        "requests": args.requests,
        "load": args.load,
        "seconds": args.seconds,
    }
    write_results(args.name or f"live_{args.preset}", meta, results, render(results, meta))
    return 0


def write_results(name: str, meta: dict, results: list[dict], text: str) -> None:
    """``results/<name>.json`` (meta and results) and ``results/<name>.md`` (``text``, also printed)."""
    out = HERE / "results"
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    (out / f"{name}.md").write_text(text)
    print(text)


def follow_main(images: list[Path], sweep: str, args) -> int:
    print("DIALS has no follow mode: findspots input.watch=True alone", flush=True)
    results = []
    for nproc in args.nproc:
        results.append(follow_run(nproc, images, args))
        print(json.dumps(results[-1]), flush=True)
    meta = {
        "sweep": sweep,
        "nimages": len(images),
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "rate": args.rate,
    }
    write_results(args.name or f"live_follow_{args.preset}", meta, results, render_follow(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
