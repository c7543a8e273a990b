"""Peak memory of findspots on a 100-frame HDF5 sweep: frames are streamed, never the whole sweep.

Writes an NXmx master and four bitshuffle-LZ4 data files of 25 frames each (EIGER 4M-like frames,
2162 x 2068 uint16, Poisson background with Gaussian spots), once with one frame per chunk and once
with ten frames per chunk, then measures:

* ``reader``: a child process that opens the sweep and reads every frame as the spot finder does
  (raw, corrected float64, mask), keeping nothing; the growth of its peak RSS over the RSS after
  opening, in MB and in frames (one frame's working set = raw int32 + float64 + bool = 13 B/pixel);
* ``findspots nproc=N``: the whole program on 10 and on 100 frames, with psutil polling every process
  of the tree: the peak RSS of each process (for ``nproc=1`` the program itself is the worker). If
  memory followed the sweep length, 100 frames would need ~90 more frames' worth than 10 frames.

    .venv/bin/python benchmarks/hdf5_memory.py                 # both chunk layouts, nproc 1 and 2
    .venv/bin/python benchmarks/hdf5_memory.py --frames 100 --chunk 10 --nproc 2 --keep /tmp/h5bench
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from images.nxmx_writer import Geometry, write_sweep  # noqa: E402

SHAPE = (2162, 2068)
MB = 1024 * 1024


def make_frames(n: int, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """n frames of Poisson background (mean 0.5) with ~40 Gaussian spots each, uint16."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, *shape), np.uint16)
    for f in range(n):
        frames[f] = rng.poisson(0.5, shape)
    yy, xx = np.mgrid[-3:4, -3:4]
    blob = np.exp(-(yy**2 + xx**2) / 2.0)
    for f in range(n):
        for y, x in zip(
            rng.integers(10, shape[0] - 10, 40), rng.integers(10, shape[1] - 10, 40), strict=True
        ):
            frames[f, y - 3 : y + 4, x - 3 : x + 4] += (blob * rng.integers(50, 500)).astype(np.uint16)
    return frames


def write(folder: Path, n: int, chunk: int) -> Path:
    """The sweep as master + data files of 25 frames, ``chunk`` frames per HDF5 chunk."""
    frames = make_frames(n, SHAPE)  # ~0.9 GB in this process only; the measured runs are children
    origin = (-1041.0 * 0.075, 1115.0 * 0.075, -200.0)
    g = Geometry(origin=origin, pixel_size=0.075, wavelength=0.976, trusted=(0, 60000), width=0.1)
    return write_sweep(folder, f"chunk{chunk}", frames, g, per_file=25, chunk_frames=chunk)


READER_CHILD = textwrap.dedent(
    """
    import sys
    from findspots.images.inputs import load_inputs
    def status(key):  # VmRSS / VmHWM of this process (VmHWM starts afresh at exec, unlike ru_maxrss)
        line = next(x for x in open("/proc/self/status") if x.startswith(key))
        return int(line.split()[1]) * 1024
    (seq,) = load_inputs([sys.argv[1]])
    for i in range(len(seq)):
        raw = seq.get_raw(i)
        seq.get_corrected(i, raw)
        seq.get_mask(i, raw)
        if i == 0:  # after the first frame: filters, file handles, caches and one frame's arrays
            base = status("VmRSS")
        del raw
    print(base, status("VmHWM"))
    """
)


def reader_growth(master: Path) -> tuple[float, float]:
    """(MB, frames) of peak RSS growth while streaming every frame through the image interface."""
    out = subprocess.run(
        [sys.executable, "-c", READER_CHILD, str(master)], capture_output=True, text=True, check=True
    )
    base, peak = (int(v) for v in out.stdout.split())
    frame = SHAPE[0] * SHAPE[1] * 13
    return (peak - base) / MB, (peak - base) / frame


def _poll(proc: psutil.Process, peaks: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            procs = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            name = "program" if p.pid == proc.pid else f"{p.pid}"
            peaks[name] = max(peaks.get(name, 0), rss)
        time.sleep(0.05)


def findspots_peaks(master: Path, frames: int, nproc: int, workdir: Path) -> dict[str, float]:
    """Peak RSS (MB) of the program and of each child process for one run."""
    out = workdir / f"{master.stem}_{frames}_{nproc}.refl"
    cmd = [sys.executable, "-m", "findspots.app.cli", str(master), f"scan_range=1,{frames}", f"nproc={nproc}"]
    cmd += [f"output.reflections={out}", f"output.log={out}.log", f"output.debug_log={out}.debug.log"]
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir)
    peaks: dict[str, float] = {}
    stop = threading.Event()
    thread = threading.Thread(target=_poll, args=(proc, peaks, stop), daemon=True)
    thread.start()
    _, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(err.decode()[-2000:])
    return {k: v / MB for k, v in peaks.items()}


def _workers(peaks: dict[str, float], nproc: int) -> list[float]:
    """Peak RSS of the processes doing the image work (the program itself when nproc=1)."""
    children = sorted((v for k, v in peaks.items() if k != "program"), reverse=True)
    return [peaks["program"]] if nproc == 1 else children[:nproc]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--chunk", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--keep", type=Path, help="write the sweeps here (kept) instead of a temporary folder"
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="hdf5_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    frame_mb = SHAPE[0] * SHAPE[1] * 13 / MB
    print(f"frame {SHAPE[1]} x {SHAPE[0]}: working set {frame_mb:.1f} MB (int32 + float64 + bool)")
    whole = args.frames * SHAPE[0] * SHAPE[1] * 8 / MB
    print(f"whole sweep of {args.frames} frames as float64: {whole:.0f} MB\n")
    for chunk in args.chunk:
        master = write(folder, args.frames, chunk)
        mb, frames = reader_growth(master)
        what = f"chunk {chunk:>2} frame(s): reader streaming {args.frames} frames"
        print(f"{what}: peak +{mb:.0f} MB = {frames:.2f} frames")
        for nproc in args.nproc:
            short = _workers(findspots_peaks(master, 10, nproc, folder), nproc)
            full = _workers(findspots_peaks(master, args.frames, nproc, folder), nproc)
            growth = max(full) - max(short)
            print(
                f"   findspots nproc={nproc}: worker peak RSS {', '.join(f'{v:.0f}' for v in full)} MB on "
                f"{args.frames} frames vs {', '.join(f'{v:.0f}' for v in short)} MB on 10 frames: "
                f"+{growth:.0f} MB = {growth / frame_mb:+.2f} frames"
            )
    print(f"\nsweeps in {folder}")


if __name__ == "__main__":
    main()
