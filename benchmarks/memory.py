"""Memory benchmark (issue 5): parent and worker peak memory on long sweeps with many strong pixels.

Two 200-image Pilatus 6M sweeps from ``make_sweep.py`` with about the same number of strong pixels
but very different numbers of spots:

* ``dense``      (case A): ~4000 small spots per image, most strong pixels end up in kept spots;
* ``dense_zing`` (case B): ~400 spots per image plus ~40 000 isolated one-pixel zingers per image,
  which are strong but are removed as too small (``min_spot_size=3``) in the workers.

findspots runs on each with ``nproc=2`` and small chunks (``mp.chunksize=5``, 40 blocks), plus a
short run (the first 10 images of case A) for the fixed start-up memory. For each run the report
gives the parent's and the largest worker's peak RSS, the summed tree PSS, the total strong pixels
(from the log) and the spots found, and the parent's growth over the start-up run per spot and
per strong pixel: memory proportional to spots means B's parent stays close to the start-up
figure while A's grows with its spots. ``--dials`` adds DIALS (``dials.find_spots nproc=2``) on the
same sweeps for comparison. The full sweep is 6M (the worker goal is stated for 6M images), with
classic ``dispersion`` (``max_spot_size=100``) unless ``--algorithm`` says otherwise.

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --nimages 100 --dials
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from make_sweep import bench_root, make_sweep, preset  # noqa: E402
from procmon import run_measured, wait_for_idle  # noqa: E402
from run import ALGORITHMS, count_spots, dials_import, program_argv, rerender  # noqa: E402

LOG_NUMBERS = {
    "strong_pixels": r"Found (\d+) strong pixels on image",
    "extracted": r"Extracted (\d+) spots",
    "removed_small": r"Removed (\d+) spots with size <",
    "removed_large": r"Removed (\d+) spots with size >",
}


def log_numbers(log: Path) -> dict[str, int]:
    text = log.read_text() if log.exists() else ""
    return {k: sum(int(v) for v in re.findall(pat, text)) for k, pat in LOG_NUMBERS.items()}


def one_run(
    program: str,
    paths: list[Path],
    alg: str,
    nproc: int,
    chunksize: int,
    workdir: Path,
    extra: list[str] | None = None,
) -> dict:
    wd = Path(tempfile.mkdtemp(prefix=f"mem-{program}-", dir=workdir))
    params = [
        f"threshold.algorithm={alg}",
        f"filter.max_spot_size={ALGORITHMS[alg]}",
        f"nproc={nproc}",
        f"mp.chunksize={chunksize}",
        *(extra or []),
    ]
    expt = dials_import(paths) if program == "dials" else None
    argv, refl, log = program_argv(program, paths, expt, params, wd)
    wait_for_idle()
    trace: list = []
    res = run_measured(argv, cwd=wd, trace=trace)
    if res.rc != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{program} failed (rc {res.rc})")
    spots, _ = count_spots(refl)
    out = dict(
        program=program,
        nimages=len(paths),
        spots=spots,
        **log_numbers(log),
        wall_s=res.wall_s,
        cpu_s=res.user_s + res.sys_s,
        others_cpu_s=res.others_cpu_s,
        parent_rss_peak=res.parent_rss_peak,
        worker_rss_peak=res.worker_rss_peak,
        tree_pss_peak=res.tree_pss_peak,
        tree_rss_peak=res.tree_rss_peak,
        procs=sorted(([p.depth, p.name, p.rss] for p in res.procs.values()), key=lambda r: (r[0], -r[2])),
        trace=[(round(t, 2), r, w) for t, r, w in trace[:: max(1, len(trace) // 200)]],
    )
    shutil.rmtree(wd, ignore_errors=True)
    return out


def _program_name(cmdline: str) -> str:
    """'python3 /usr/bin/dials.find_spots ...' -> 'dials.find_spots'; other names unchanged."""
    if "(" in cmdline:
        return cmdline
    tokens = cmdline.split()
    if len(tokens) > 1 and tokens[0].startswith("python"):
        return tokens[1].rsplit("/", 1)[-1]
    return tokens[0].rsplit("/", 1)[-1] if tokens else "?"


def _gb(x: float) -> str:
    return f"{x / 1e9:.3f}"


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Memory: parent and worker peaks on long, dense sweeps",
        "",
        f"- {meta['machine']}; sweeps: {meta['sweeps']}; `{meta['algorithm']}`, "
        f"`max_spot_size={ALGORITHMS[meta['algorithm']]}`, `nproc={meta['nproc']}`, "
        f"`mp.chunksize={meta['chunksize']}`",
        "- parent = the program's own process; worker = its largest child process (for findspots a forked "
        "pool worker); tree PSS = peak of the summed proportional set size.",
        "- growth = parent peak minus the parent peak of the short start-up run (same program).",
        "",
        "| run | program | images | strong pixels | extracted | spots kept | parent peak GB | "
        "worker peak GB | "
        "tree PSS GB | parent growth MB | growth bytes/spot | growth bytes/strong px | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["program"]: r["parent_rss_peak"] for r in rows if r["name"] == "start-up (10 images of A)"}
    for r in rows:
        growth = r["parent_rss_peak"] - base.get(r["program"], 0)
        per_spot = growth / r["spots"] if r["spots"] else float("nan")
        per_px = growth / r["strong_pixels"] if r["strong_pixels"] else float("nan")
        lines.append(
            f"| {r['name']} | {r['program']} | {r['nimages']} | {r['strong_pixels']} | {r['extracted']} | "
            f"{r['spots']} | {_gb(r['parent_rss_peak'])} | {_gb(r['worker_rss_peak'])} | "
            f"{_gb(r['tree_pss_peak'])} | {growth / 1e6:.0f} | {per_spot:.0f} | {per_px:.1f} | "
            f"{r['wall_s']:.1f} |"
        )
    lines += [
        "",
        "Processes of each run (depth below the program: count x name, largest peak RSS in GB; DIALS "
        "starts a new worker process per chunk):",
        "",
    ]
    for r in rows:
        groups: dict[tuple, list[int]] = {}
        for d, name, rss in r["procs"]:
            groups.setdefault((d, _program_name(name)), []).append(rss)
        procs = ", ".join(
            f"depth {d}: {len(v)} x `{name}` max {max(v) / 1e9:.2f}"
            for (d, name), v in sorted(groups.items())
        )
        lines.append(f"- {r['name']} / {r['program']}: {procs}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root")
    ap.add_argument("--nimages", type=int, help="images per sweep (default: the presets' 200)")
    ap.add_argument("--algorithm", default="dispersion", choices=sorted(ALGORITHMS))
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--chunksize", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="processes for generating the sweeps")
    ap.add_argument("--dials", action="store_true", help="also run dials.find_spots on the same sweeps")
    ap.add_argument("--out", help="default benchmarks/results/memory.md")
    ap.add_argument("--from-json", help="only re-render the report of an earlier run's .json")
    args = ap.parse_args(argv)
    if args.from_json:
        return rerender(args.from_json, report, "rows")
    spec_a = preset("dense", args.nimages)
    spec_b = preset("dense_zing", args.nimages)
    paths_a = make_sweep(spec_a, args.root, args.jobs)
    paths_b = make_sweep(spec_b, args.root, args.jobs)
    workdir = Path(tempfile.mkdtemp(prefix="findspots-mem-", dir=bench_root(args.root)))
    programs = ["findspots"] + (["dials"] if args.dials else [])
    rows = []
    for prog in programs:
        for name, paths in (
            ("start-up (10 images of A)", paths_a[:10]),
            ("A: dense spots", paths_a),
            ("B: dense zingers", paths_b),
        ):
            r = one_run(prog, paths, args.algorithm, args.nproc, args.chunksize, workdir)
            r["name"] = name
            rows.append(r)
            print(
                f"{name:28s} {prog:9s}: strong px {r['strong_pixels']}, spots {r['spots']}, parent "
                f"{_gb(r['parent_rss_peak'])} GB, worker {_gb(r['worker_rss_peak'])} GB, "
                f"wall {r['wall_s']:.1f} s",
                flush=True,
            )
    shutil.rmtree(workdir, ignore_errors=True)
    import os

    meta = dict(
        machine=f"{os.cpu_count()} CPU cores",
        sweeps=f"{spec_a.name}, {spec_b.name} (Pilatus 6M)",
        algorithm=args.algorithm,
        nproc=args.nproc,
        chunksize=args.chunksize,
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    text = report(rows, meta)
    out = Path(args.out) if args.out else HERE / "results" / "memory.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
