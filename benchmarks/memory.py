"""Memory benchmark (issues 5 and 15): parent and worker peak memory on long sweeps with many strong pixels.

Two 200-image Pilatus 6M sweeps from ``make_sweep.py`` with about the same number of strong pixels
but very different numbers of spots:

* ``dense``      (case A): ~4000 small spots per image, most strong pixels end up in kept spots;
* ``dense_zing`` (case B): ~400 spots per image plus ~40 000 isolated one-pixel zingers per image,
  which are strong but are removed as too small (``min_spot_size=3``) in the workers.

Two sets of runs (``--cases``):

* ``nproc1`` (issue 15): case A with ``nproc=1`` and default parameters otherwise (automatic chunks,
  HTML report on), once with ``output.shoeboxes=False`` and once with shoeboxes;
* ``blocks`` (issue 5): cases A and B with ``nproc=2`` and small chunks (``mp.chunksize=5``, 40 blocks),
  so that many components cross block edges.

Each set also has a short run (the first 10 images of case A) for the fixed start-up memory. For
each run the report gives the parent's and the largest worker's peak RSS, the summed tree PSS, the
total strong pixels (from the log) and the spots found, and the parent's growth over the start-up
run per spot and per strong pixel: memory proportional to spots means B's parent stays close to
the start-up figure while A's grows with its spots. ``--dials`` adds DIALS (``dials.find_spots``
with the same nproc and shoebox settings) on the same sweeps for comparison. The full sweep is 6M
(the worker goal is stated for 6M images), with classic ``dispersion`` (the ``blocks`` set with
``max_spot_size=100``) unless ``--algorithm`` says otherwise. The report also gives the size of
each run's reflection file: what the parent must hold.

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --cases nproc1
    .venv/bin/python benchmarks/memory.py --nimages 100 --dials
    .venv/bin/python benchmarks/memory.py --from-json benchmarks/results/memory.json --before old.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from make_sweep import bench_root, make_sweep, preset  # noqa: E402
from procmon import run_measured, source_hash  # noqa: E402
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


@dataclass
class Case:
    """One measured run: its name, sweep and settings (``chunksize`` None: automatic)."""

    name: str
    sweep: str  # "A" or "B"
    nimages: int | None  # None: the whole sweep
    nproc: int
    chunksize: int | None
    shoeboxes: bool = True
    max_spot_size: bool = True  # pass the algorithm's max_spot_size (else the default)


def cases(which: list[str], nproc: int, chunksize: int) -> list[Case]:
    """The runs of the sets ``which`` (see the module docstring), in order."""
    out = []
    if "nproc1" in which:
        out += [
            Case("start-up (10 images of A), nproc=1", "A", 10, 1, None, False, False),
            Case("A, nproc=1, no shoeboxes", "A", None, 1, None, False, False),
            Case("A, nproc=1, shoeboxes", "A", None, 1, None, True, False),
        ]
    if "blocks" in which:
        out += [
            Case(f"start-up (10 images of A), nproc={nproc}", "A", 10, nproc, chunksize),
            Case(f"A: dense spots, nproc={nproc}", "A", None, nproc, chunksize),
            Case(f"B: dense zingers, nproc={nproc}", "B", None, nproc, chunksize),
        ]
    return out


def one_run(program: str, paths: list[Path], alg: str, case: Case, workdir: Path) -> dict:
    wd = Path(tempfile.mkdtemp(prefix=f"mem-{program}-", dir=workdir))
    params = [
        f"threshold.algorithm={alg}",
        *([f"filter.max_spot_size={ALGORITHMS[alg]}"] if case.max_spot_size else []),
        f"nproc={case.nproc}",
        *([f"mp.chunksize={case.chunksize}"] if case.chunksize else []),
        *([] if case.shoeboxes else ["output.shoeboxes=False"]),
    ]
    expt = dials_import(paths) if program == "dials" else None
    argv, refl, log = program_argv(program, paths, expt, params, wd)
    # no wait for an idle machine: peak memory does not depend on the other programs running
    trace: list = []
    res = run_measured(argv, cwd=wd, trace=trace)
    if res.rc != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{program} failed (rc {res.rc})")
    spots, _ = count_spots(refl)
    out = dict(
        name=case.name,
        program=program,
        nproc=case.nproc,
        chunksize=case.chunksize,
        shoeboxes=case.shoeboxes,
        refl_bytes=refl.stat().st_size,
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
        f"- {meta['machine']}; sweeps: {meta['sweeps']}; `{meta['algorithm']}`; "
        f"source `{meta.get('source')}`",
        "- nproc=2 runs: `max_spot_size=100`, `mp.chunksize=5`; nproc=1 runs: default parameters (automatic "
        "chunks) but `output.shoeboxes` as given; every run writes the HTML report.",
        "- parent = the program's own process; worker = its largest child process (for findspots a forked "
        "pool worker); tree PSS = peak of the summed proportional set size; refl = the reflection file.",
        "- growth = parent peak minus the parent peak of the short start-up run (same program and nproc).",
        *(
            [f"- before = the parent peak of the same run on source `{meta['before']['source']}`."]
            if "before" in meta
            else []
        ),
        "",
        "| run | program | shoeboxes | strong pixels | extracted | spots kept | refl MB | parent peak GB | "
        "before GB | worker peak GB | tree PSS GB | parent growth MB | growth bytes/spot | "
        "growth bytes/strong px | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nproc_of = {r["name"]: r.get("nproc", meta.get("nproc")) for r in rows}
    base = {
        (r["program"], nproc_of[r["name"]]): r["parent_rss_peak"]
        for r in rows
        if r["name"].startswith("start-up")
    }
    for r in rows:
        growth = r["parent_rss_peak"] - base.get((r["program"], nproc_of[r["name"]]), 0)
        per_spot = growth / r["spots"] if r["spots"] else float("nan")
        per_px = growth / r["strong_pixels"] if r["strong_pixels"] else float("nan")
        refl = f"{r['refl_bytes'] / 1e6:.0f}" if "refl_bytes" in r else "–"
        before = _gb(r["before_parent_rss_peak"]) if "before_parent_rss_peak" in r else "–"
        lines.append(
            f"| {r['name']} | {r['program']} | {'yes' if r.get('shoeboxes', True) else 'no'} | "
            f"{r['strong_pixels']} | {r['extracted']} | {r['spots']} | {refl} | "
            f"{_gb(r['parent_rss_peak'])} | {before} | "
            f"{_gb(r['worker_rss_peak'])} | {_gb(r['tree_pss_peak'])} | "
            f"{growth / 1e6:.0f} | {per_spot:.0f} | {per_px:.1f} | {r['wall_s']:.1f} |"
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


def attach_before(saved: dict, before: dict) -> None:
    """Give each run of ``saved`` (a run's .json) the parent peak of the same run in ``before``."""
    peaks = {(r["name"], r["program"]): r["parent_rss_peak"] for r in before["rows"]}
    for r in saved["rows"]:
        if (r["name"], r["program"]) in peaks:
            r["before_parent_rss_peak"] = peaks[r["name"], r["program"]]
    saved["meta"]["before"] = {k: before["meta"].get(k) for k in ("source", "date")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root")
    ap.add_argument("--nimages", type=int, help="images per sweep (default: the presets' 200)")
    ap.add_argument("--algorithm", default="dispersion", choices=sorted(ALGORITHMS))
    ap.add_argument(
        "--cases", nargs="+", default=["nproc1", "blocks"], choices=["nproc1", "blocks"], help="sets of runs"
    )
    ap.add_argument("--nproc", type=int, default=2, help="processes of the blocks set")
    ap.add_argument("--chunksize", type=int, default=5, help="mp.chunksize of the blocks set")
    ap.add_argument("--jobs", type=int, default=2, help="processes for generating the sweeps")
    ap.add_argument("--dials", action="store_true", help="also run dials.find_spots on the same sweeps")
    ap.add_argument("--out", help="default benchmarks/results/memory.md")
    ap.add_argument("--from-json", help="only re-render the report of an earlier run's .json")
    ap.add_argument("--before", help="an earlier run's .json (e.g. of an older source) to compare with")
    args = ap.parse_args(argv)
    if args.from_json:
        if args.before:
            saved = json.loads(Path(args.from_json).read_text())
            attach_before(saved, json.loads(Path(args.before).read_text()))
            Path(args.from_json).write_text(json.dumps(saved, indent=1))
        return rerender(args.from_json, report, "rows")
    spec_a = preset("dense", args.nimages)
    spec_b = preset("dense_zing", args.nimages)
    runs = cases(args.cases, args.nproc, args.chunksize)
    sweeps = {"A": make_sweep(spec_a, args.root, args.jobs)}
    if any(c.sweep == "B" for c in runs):
        sweeps["B"] = make_sweep(spec_b, args.root, args.jobs)
    workdir = Path(tempfile.mkdtemp(prefix="findspots-mem-", dir=bench_root(args.root)))
    programs = ["findspots"] + (["dials"] if args.dials else [])
    rows = []
    for prog in programs:
        for case in runs:
            r = one_run(prog, sweeps[case.sweep][: case.nimages], args.algorithm, case, workdir)
            rows.append(r)
            print(
                f"{case.name:36s} {prog:9s}: strong px {r['strong_pixels']}, spots {r['spots']}, parent "
                f"{_gb(r['parent_rss_peak'])} GB, worker {_gb(r['worker_rss_peak'])} GB, "
                f"wall {r['wall_s']:.1f} s",
                flush=True,
            )
    shutil.rmtree(workdir, ignore_errors=True)
    meta = dict(
        machine=f"{os.cpu_count()} CPU cores",
        sweeps=", ".join(f"{s.name}" for s in (spec_a, spec_b)[: len(sweeps)]) + " (Pilatus 6M)",
        algorithm=args.algorithm,
        source=source_hash(),
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    saved = {"meta": meta, "rows": rows}
    if args.before:
        attach_before(saved, json.loads(Path(args.before).read_text()))
    text = report(rows, meta)
    out = Path(args.out) if args.out else HERE / "results" / "memory.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(saved, indent=1))
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
