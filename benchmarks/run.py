"""End-to-end benchmark: findspots against dials.find_spots on the same synthetic sweep.

For each threshold algorithm (classic ``dispersion`` with ``max_spot_size=100``, and
``dispersion_extended`` with ``max_spot_size=1000``) and each process count (1 and 2), both
programs run on the same images with the same parameters, alternately (the order flips every
round), for several rounds; the report gives medians.

* DIALS: ``dials.import`` once (not timed: findspots reads the image headers inside its own timed
  run, so the comparison slightly favours DIALS), then
  ``dials.find_spots imported.expt nproc=N threshold.algorithm=ALG filter.max_spot_size=M``.
* findspots: ``.venv/bin/findspots IMAGES nproc=N threshold.algorithm=ALG filter.max_spot_size=M``
  with its reflections and logs in a temporary folder.

Measured per run: wall time, user+sys CPU, peak memory (see ``procmon.py``: the program's own
process, its largest child process, the tree's summed PSS, and ``/usr/bin/time -v``'s maximum RSS),
the number of spots in each output table (read with ``findspots.output.refl.read_reflections``) and the
total strong pixels from each log. One untimed warm-up run of each program comes first (page cache,
numba cache), on a few images.

    .venv/bin/python benchmarks/run.py                    # p6m sweep, 3 rounds, everything
    .venv/bin/python benchmarks/run.py --rounds 1 --nproc 1 --algorithms dispersion
    .venv/bin/python benchmarks/run.py --preset e16m
    .venv/bin/python benchmarks/run.py --format nxmx      # the same images as NXmx + bitshuffle-LZ4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from make_sweep import DETECTORS, bench_root, make_sweep, preset  # noqa: E402
from nxmx_copy import dials_env, nxmx_copy  # noqa: E402
from procmon import RunResult, run_measured, source_hash, wait_for_idle  # noqa: E402

FINDSPOTS = REPO / ".venv" / "bin" / "findspots"
DIALS_FIND = shutil.which("dials.find_spots") or "/usr/bin/dials.find_spots"
DIALS_IMPORT = shutil.which("dials.import") or "/usr/bin/dials.import"

ALGORITHMS = {"dispersion": 100, "dispersion_extended": 1000}  # algorithm -> max_spot_size
GOALS = {"dispersion": 4.0, "dispersion_extended": 3.0}  # speed-up wanted at nproc=1
SCALING_GOAL = 1.8


def dials_version() -> str:
    try:
        out = subprocess.run(["dials.version"], capture_output=True, text=True, timeout=120).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def findspots_version() -> str:
    try:
        out = subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-c", "import findspots; print(findspots.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        rev = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip()
        return f"{out} (git {rev}, source sha1 {source_hash()})"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dials_import(paths: list[Path], root: Path | None = None) -> Path:
    """imported.expt for the sweep (made once, in ``root`` or else next to the images)."""
    folder = (root or paths[0].parent) / f"dials_import_{paths[0].stem}_{paths[-1].stem}"
    expt = folder / "imported.expt"
    stamp = folder / "paths.txt"
    listing = "\n".join(str(p) for p in paths)
    if expt.exists() and stamp.exists() and stamp.read_text() == listing:
        return expt
    folder.mkdir(exist_ok=True)
    r = subprocess.run([DIALS_IMPORT, *map(str, paths)], cwd=folder, capture_output=True, text=True)
    if r.returncode != 0 or not expt.exists():
        sys.exit(f"dials.import failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    stamp.write_text(listing)
    return expt


def count_spots(path: Path) -> tuple[int, np.ndarray | None]:
    if not path.exists():
        return 0, None
    from findspots.output.refl import read_reflections

    table = read_reflections(path)
    xyz = np.asarray(table["xyzobs.px.value"]) if "xyzobs.px.value" in table.columns else None
    return len(table), xyz


def strong_pixels(log: Path) -> int | None:
    if not log.exists():
        return None
    return sum(int(m) for m in re.findall(r"Found (\d+) strong pixels on image", log.read_text()))


def run_program(
    program: str,
    alg: str,
    nproc: int,
    paths: list[Path],
    expt: Path,
    workdir: Path,
    extra: list[str] | None = None,
    wait: float = 180.0,
) -> tuple[RunResult, dict]:
    """One measured run in a fresh folder; returns the measurement and its outputs' summary.

    It first waits (up to ``wait`` seconds) for the machine to be idle."""
    wd = Path(tempfile.mkdtemp(prefix=f"{program}-", dir=workdir))
    params = [
        f"threshold.algorithm={alg}",
        f"filter.max_spot_size={ALGORITHMS[alg]}",
        f"nproc={nproc}",
        *(extra or []),
    ]
    argv, refl, log = program_argv(program, paths, expt, params, wd)
    waited = wait_for_idle(max_wait_s=wait) if wait > 0 else 0.0
    res = run_measured(argv, cwd=wd)
    if res.rc != 0:
        print(res.stdout[-2000:], res.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{program} failed (rc {res.rc}): {' '.join(argv[:3])} ...")
    n, xyz = count_spots(refl)
    summary = {"spots": n, "strong_pixels": strong_pixels(log), "xyz": xyz, "waited_s": waited}
    shutil.rmtree(wd, ignore_errors=True)
    return res, summary


def rerender(saved_json: str, render, key: str) -> int:
    """Write (and print) the Markdown report of an earlier run's .json beside it; ``key`` holds its rows."""
    saved = json.loads(Path(saved_json).read_text())
    text = render(saved[key], saved["meta"])
    Path(saved_json).with_suffix(".md").write_text(text)
    print(text)
    return 0


def program_argv(
    program: str, paths: list[Path], expt: Path | None, params: list[str], wd: Path
) -> tuple[list[str], Path, Path]:
    """The command line of one run writing into ``wd``, its reflection file and its log file."""
    refl = wd / "strong.refl"
    if program == "dials":
        log = wd / "dials.find_spots.log"
        return [DIALS_FIND, str(expt), *params, f"output.reflections={refl}", f"output.log={log}"], refl, log
    log = wd / "findspots.log"
    argv = [
        str(FINDSPOTS),
        *map(str, paths),
        *params,
        f"output.reflections={refl}",
        f"output.log={log}",
        f"output.debug_log={wd / 'findspots.debug.log'}",
    ]
    return argv, refl, log


def warm_up(paths: list[Path], expt: Path, workdir: Path) -> None:
    """Read every image file once (page cache) and run each program on a few images (numba cache)."""
    multi_image = paths[0].suffix == ".h5"
    for p in paths[0].parent.glob("*.h5") if multi_image else paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 22):
                pass
    few = [*paths, "scan_range=1,3"] if multi_image else paths[:3]
    wd = Path(tempfile.mkdtemp(prefix="warm-", dir=workdir))
    subprocess.run(
        [
            str(FINDSPOTS),
            *map(str, few),
            "threshold.algorithm=dispersion_extended",
            f"output.reflections={wd / 'a.refl'}",
            f"output.log={wd / 'a.log'}",
            f"output.debug_log={wd / 'a.debug.log'}",
        ],
        cwd=wd,
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [
            str(FINDSPOTS),
            *map(str, few),
            "threshold.algorithm=dispersion",
            f"output.reflections={wd / 'b.refl'}",
            f"output.log={wd / 'b.log'}",
            f"output.debug_log={wd / 'b.debug.log'}",
        ],
        cwd=wd,
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [
            DIALS_FIND,
            str(expt),
            "scan_range=1,3",
            f"output.reflections={wd / 'c.refl'}",
            f"output.log={wd / 'c.log'}",
        ],
        cwd=wd,
        capture_output=True,
        check=True,
    )
    shutil.rmtree(wd, ignore_errors=True)


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f}"


def _xyz_diff(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None or a.shape != b.shape:
        return None
    if a.size == 0:
        return 0.0
    ia = np.lexsort(np.round(a, 3).T[::-1])
    ib = np.lexsort(np.round(b, 3).T[::-1])
    return float(np.abs(a[ia] - b[ib]).max())


def report(runs: list[dict], meta: dict) -> str:
    """The Markdown report of all runs (medians per program, algorithm and nproc)."""
    npix = meta["width"] * meta["height"]
    nimg = meta["nimages"]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["program"], r["algorithm"], r["nproc"]), []).append(r)

    def med(prog, alg, n, key):
        return _med([r[key] for r in groups.get((prog, alg, n), [])])

    def best(prog, alg, n, key):
        values = [r[key] for r in groups.get((prog, alg, n), [])]
        return min(values) if values else float("nan")

    lines = [
        f"# findspots vs dials.find_spots: {meta['sweep']}",
        "",
        f"- sweep: {nimg} images of {meta['width']} x {meta['height']} pixels ({meta['detector']}), "
        f"`{meta['folder']}`",
        f"- DIALS: {meta['dials_version']} (`{DIALS_FIND}`); findspots {meta['findspots_version']}",
        f"- machine: {meta['cpus']} CPU cores ({meta['cpu_model']}), {meta['mem_gb']:.0f} GB RAM, "
        f"Python {meta['python']}; {meta['rounds']} rounds, programs alternating; medians shown",
        f"- date: {meta['date']}",
        "- findspots extra parameters: "
        f"`{meta.get('findspots_args') or 'none (defaults, incl. the HTML report)'}`",
        "",
        "## Wall time",
        "",
        "speed-up = DIALS wall / findspots wall (medians; `best` = ratio of the fastest runs). CPU s = "
        "user + sys of the whole process tree (`/usr/bin/time -v`), medians; the CPU-time ratio is much less "
        "sensitive to other load on a shared machine than the wall-time ratio. Pixel rates use the median "
        "wall.",
        "",
        "| algorithm | nproc | DIALS s | findspots s | speed-up | best | goal | DIALS img/s | "
        "findspots img/s "
        "| DIALS Mpx/s/core | findspots Mpx/s/core | DIALS CPU s | findspots CPU s | CPU-time ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    algs = [a for a in ALGORITHMS if any(k[1] == a for k in groups)]
    nprocs = sorted({k[2] for k in groups})
    for alg in algs:
        for n in nprocs:
            d = med("dials", alg, n, "wall_s")
            f = med("findspots", alg, n, "wall_s")
            cpu = med("findspots", alg, n, "cpu_s")
            dcpu = med("dials", alg, n, "cpu_s")
            goal = f">= {GOALS[alg]:.0f}x" if n == 1 else ""
            ok = ""
            if n == 1 and d == d and f == f:
                ok = " ✅" if d / f >= GOALS[alg] else " ❌"
            lines.append(
                f"| {alg} | {n} | {d:.1f} | {f:.1f} | **{d / f:.2f}x** | "
                f"{best('dials', alg, n, 'wall_s') / best('findspots', alg, n, 'wall_s'):.2f}x | "
                f"{goal}{ok} | {nimg / d:.2f} | "
                f"{nimg / f:.2f} | {npix * nimg / 1e6 / d / n:.1f} | {npix * nimg / 1e6 / f / n:.1f} | "
                f"{dcpu:.1f} | {cpu:.1f} | {dcpu / cpu:.2f}x |"
            )
    if len(nprocs) > 1 and 1 in nprocs:
        lines += [
            "",
            "## Scaling (wall time at nproc=1 / wall time at nproc=N)",
            "",
            "| algorithm | N | DIALS | findspots | DIALS best | findspots best | findspots goal |",
            "|---|---|---|---|---|---|---|",
        ]
        for alg in algs:
            for n in nprocs[1:]:
                d = med("dials", alg, 1, "wall_s") / med("dials", alg, n, "wall_s")
                f = med("findspots", alg, 1, "wall_s") / med("findspots", alg, n, "wall_s")
                db = best("dials", alg, 1, "wall_s") / best("dials", alg, n, "wall_s")
                fb = best("findspots", alg, 1, "wall_s") / best("findspots", alg, n, "wall_s")
                goal = f">= {SCALING_GOAL}x" + (" ✅" if f >= SCALING_GOAL else " ❌") if n == 2 else ""
                lines.append(f"| {alg} | {n} | {d:.2f}x | {f:.2f}x | {db:.2f}x | {fb:.2f}x | {goal} |")
    lines += [
        "",
        "## Peak memory (GB, medians)",
        "",
        "`parent`: the program's own process; `worker`: its largest child process (dask worker or "
        "nanny, multiprocessing worker); `tree PSS`: peak of the summed proportional set size of the "
        "whole tree; `time -v`: `/usr/bin/time -v` maximum RSS (largest single process).",
        "",
        "| algorithm | nproc | program | parent RSS | worker RSS | tree PSS | tree RSS sum | time -v |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for alg in algs:
        for n in nprocs:
            for prog in ("dials", "findspots"):
                if (prog, alg, n) not in groups:
                    continue
                worker = med(prog, alg, n, "worker_rss_peak")
                lines.append(
                    f"| {alg} | {n} | {prog} | {_gb(med(prog, alg, n, 'parent_rss_peak'))} | "
                    f"{_gb(worker) if worker else '-'} | {_gb(med(prog, alg, n, 'tree_pss_peak'))} | "
                    f"{_gb(med(prog, alg, n, 'tree_rss_peak'))} | "
                    f"{_gb(med(prog, alg, n, 'maxrss_time_kb') * 1e3)} |"
                )
    lines += [
        "",
        "## Same spots?",
        "",
        "| algorithm | nproc | DIALS spots | findspots spots | DIALS strong px | findspots strong px | "
        "max xyz diff (px) |",
        "|---|---|---|---|---|---|---|",
    ]
    for alg in algs:
        for n in nprocs:
            d = groups.get(("dials", alg, n), [])
            f = groups.get(("findspots", alg, n), [])
            if not d or not f:
                continue
            ds = sorted({r["spots"] for r in d})
            fs = sorted({r["spots"] for r in f})
            dp = sorted({r["strong_pixels"] if r.get("strong_pixels") is not None else -1 for r in d})
            fp = sorted({r["strong_pixels"] if r.get("strong_pixels") is not None else -1 for r in f})
            diff = f[-1].get("xyz_diff")
            same = "✅" if ds == fs and dp == fp else "❌"
            lines.append(
                f"| {alg} | {n} | {'/'.join(map(str, ds))} | {'/'.join(map(str, fs))} {same} | "
                f"{'/'.join(map(str, dp))} | {'/'.join(map(str, fp))} | "
                f"{'-' if diff is None else f'{diff:.2g}'} |"
            )
    sources = sorted({r.get("source") for r in runs if r.get("source")})
    if len(sources) > 1:
        lines += [
            "",
            f"**Note: findspots' source changed during the benchmark** ({', '.join(sources)}; "
            "see the `source` column).",
        ]
    lines += [
        "",
        "## All runs",
        "",
        "`others' CPU`: CPU seconds the rest of the machine used during the run (interference; the "
        "machine is shared). Each run started once the machine was idle (or after `--max-wait` seconds).",
        "",
        "| round | program | algorithm | nproc | wall s | CPU s | others' CPU s | parent GB | "
        "worker GB | tree PSS GB | spots | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['round']} | {r['program']} | {r['algorithm']} | {r['nproc']} | {r['wall_s']:.2f} | "
            f"{r['cpu_s']:.1f} | {r.get('others_cpu_s', 0.0):.1f} | {_gb(r['parent_rss_peak'])} | "
            f"{_gb(r['worker_rss_peak'])} | {_gb(r['tree_pss_peak'])} | {r['spots']} | "
            f"{r.get('source', '')} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="p6m", help="make_sweep preset (default p6m)")
    ap.add_argument("--nimages", type=int, help="override the preset's number of images")
    ap.add_argument(
        "--format",
        choices=("cbf", "nxmx"),
        default="cbf",
        help="the sweep's CBFs, or the same images as an NXmx master + bitshuffle-LZ4 data file",
    )
    ap.add_argument("--root", help="sweep cache root (default $FINDSPOTS_BENCH_DIR or /tmp/findspots-bench)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--algorithms", default="dispersion,dispersion_extended")
    ap.add_argument("--nproc", default="1,2")
    ap.add_argument("--programs", default="dials,findspots")
    ap.add_argument("--out", help="results file (default benchmarks/results/run_<sweep>.md, plus .json)")
    ap.add_argument("--no-warm-up", action="store_true")
    ap.add_argument(
        "--max-wait",
        type=float,
        default=180.0,
        help="before each run, wait up to this many seconds for an idle machine (0: never wait)",
    )
    ap.add_argument(
        "--findspots-args",
        default="",
        help="extra findspots parameters, space separated (e.g. 'output.report=None')",
    )
    ap.add_argument("--from-json", help="only re-render the report of an earlier run's .json")
    args = ap.parse_args(argv)
    if args.from_json:
        return rerender(args.from_json, report, "runs")

    spec = preset(args.preset, args.nimages)
    paths = make_sweep(spec, args.root)
    name = spec.name
    if args.format == "nxmx":
        paths, name = [nxmx_copy(paths)], f"{spec.name}_nxmx"
        os.environ.update(dials_env())  # for dials.import and dials.find_spots
    width, height = DETECTORS[spec.detector][:2]
    algorithms = [a for a in args.algorithms.split(",") if a]
    nprocs = [int(n) for n in args.nproc.split(",") if n]
    programs = [p for p in args.programs.split(",") if p]
    expt = dials_import(paths) if "dials" in programs else Path("-")
    workdir = Path(tempfile.mkdtemp(prefix="findspots-run-", dir=bench_root(args.root)))
    meta = dict(
        sweep=name,
        folder=str(paths[0].parent),
        detector=spec.detector,
        width=width,
        height=height,
        nimages=spec.nimages,
        dials_version=dials_version(),
        findspots_version=findspots_version(),
        cpus=os.cpu_count(),
        cpu_model=_cpu_model(),
        mem_gb=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
        python=platform.python_version(),
        rounds=args.rounds,
        date=time.strftime("%Y-%m-%d %H:%M"),
        findspots_args=args.findspots_args,
    )
    print(
        f"{meta['sweep']}: DIALS {meta['dials_version']}, findspots {meta['findspots_version']}", flush=True
    )
    if not args.no_warm_up:
        warm_up(paths, expt, workdir)
    out = Path(args.out) if args.out else HERE / "results" / f"run_{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.json")  # saved after every run, in case the benchmark dies
    runs = []
    xyz_of: dict[tuple, np.ndarray | None] = {}
    for rnd in range(args.rounds):
        for alg in algorithms:
            for n in nprocs:
                order = programs if rnd % 2 == 0 else programs[::-1]
                for prog in order:
                    extra = args.findspots_args.split() if prog == "findspots" else None
                    res, summary = run_program(prog, alg, n, paths, expt, workdir, extra, wait=args.max_wait)
                    xyz_of[(prog, alg, n)] = summary.pop("xyz")
                    row = dict(
                        round=rnd + 1, program=prog, algorithm=alg, nproc=n, **summary, **res.as_dict()
                    )
                    row["cpu_s"] = res.user_s + res.sys_s
                    row["source"] = source_hash()  # findspots may be edited while this runs
                    if prog == "findspots":
                        row["xyz_diff"] = _xyz_diff(xyz_of.get(("dials", alg, n)), xyz_of[(prog, alg, n)])
                    runs.append(row)
                    partial.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1, default=str))
                    print(
                        f"round {rnd + 1} {prog:9s} {alg:19s} nproc={n}: {res.wall_s:6.1f} s "
                        f"cpu {row['cpu_s']:6.1f} s parent {_gb(res.parent_rss_peak)} GB "
                        f"worker {_gb(res.worker_rss_peak)} GB tree PSS {_gb(res.tree_pss_peak)} GB, "
                        f"{summary['spots']} spots; others' CPU {res.others_cpu_s:.1f} s",
                        flush=True,
                    )
    for r in runs:
        if r["program"] == "findspots" and r.get("xyz_diff") is None:
            r["xyz_diff"] = _xyz_diff(
                xyz_of.get(("dials", r["algorithm"], r["nproc"])),
                xyz_of.get(("findspots", r["algorithm"], r["nproc"])),
            )
    shutil.rmtree(workdir, ignore_errors=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1, default=str))
    partial.unlink(missing_ok=True)
    text = report(runs, meta)
    out.write_text(text)
    print()
    print(text)
    print(f"written to {out} (and .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
