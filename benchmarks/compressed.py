"""Compressed CBFs (issue 15): findspots against dials.find_spots on bzip2 and gzip images, beside the
decompression floor.

Sets: the real thaumatin grid (19 Pilatus3 6M stills, ``../shared/data/real``, skipped when absent) and the
bundled L-cysteine sweep 01 (15 Pilatus 2M images, ``data/l_cysteine``), each as shipped (``.cbf.bz2``)
and recompressed as ``.cbf.gz`` (gzip level 6, made once in the benchmark cache). Both programs run with
their defaults at ``nproc=1`` (findspots with its HTML report), alternately, for ``--rounds`` rounds; the
report gives medians. The floor is the time one process takes only to decompress the same files
(Python's ``bz2``/``gzip``, the C libraries both programs use), the minimum of three passes: no reader of
these files can be faster, so ``findspots - floor`` is what findspots spends on everything else.

    .venv/bin/python benchmarks/compressed.py              # ~4 min on 2 quiet cores
    .venv/bin/python benchmarks/compressed.py --rounds 1 --sets l_cysteine
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_sweep import bench_root  # noqa: E402
from run import REPO, dials_import, dials_version, findspots_version, run_program  # noqa: E402

SETS = {
    "thaumatin_grid": (REPO.parent / "shared/data/real/thaumatin_grid_i24_pilatus3_6m", "*.cbf.bz2"),
    "l_cysteine": (REPO / "data/l_cysteine", "l-cyst_01_*.cbf.bz2"),
}
DECOMPRESS = {".bz2": bz2.decompress, ".gz": gzip.decompress}


def gz_copy(paths: list[Path], folder: Path) -> list[Path]:
    """``paths`` (.cbf.bz2) recompressed as .cbf.gz in ``folder``, made once."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        target = folder / (p.name.removesuffix(".bz2") + ".gz")
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.compress(bz2.decompress(p.read_bytes()), compresslevel=6))
            tmp.rename(target)
        out.append(target)
    return out


def floor_s(paths: list[Path], passes: int = 3) -> float:
    """Seconds to decompress every file once in this process (best of ``passes``; files in page cache)."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        for p in paths:
            DECOMPRESS[p.suffix](p.read_bytes())
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--max-wait", type=float, default=120.0)
    ap.add_argument("--out", default=str(HERE / "results" / "compressed.md"))
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="findspots-compressed-", dir=bench_root()))
    rows = []
    for name in [s for s in args.sets.split(",") if s]:
        folder, pattern = SETS[name]
        bz2_paths = sorted(folder.glob(pattern))
        if not bz2_paths:
            print(f"{name}: no images in {folder}, skipped", flush=True)
            continue
        for kind, paths in (("bz2", bz2_paths), ("gz", gz_copy(bz2_paths, bench_root() / f"{name}_gz"))):
            expt = dials_import(paths, bench_root())  # not beside the images: data/, shared/ stay as they are
            floor = floor_s(paths)
            walls: dict[str, list[float]] = {"dials": [], "findspots": []}
            spots: dict[str, int] = {}
            for rnd in range(args.rounds):
                for prog in ("dials", "findspots") if rnd % 2 == 0 else ("findspots", "dials"):
                    res, summary = run_program(
                        prog, "dispersion_extended", 1, paths, expt, workdir, wait=args.max_wait
                    )
                    walls[prog].append(res.wall_s)
                    spots[prog] = summary["spots"]
                    print(f"{name} {kind} {prog}: {res.wall_s:.2f} s, {summary['spots']} spots", flush=True)
            dials, ours = statistics.median(walls["dials"]), statistics.median(walls["findspots"])
            rows.append(
                dict(
                    set=name,
                    kind=kind,
                    images=len(paths),
                    floor_s=floor,
                    dials_s=dials,
                    findspots_s=ours,
                    dials_spots=spots["dials"],
                    findspots_spots=spots["findspots"],
                )
            )
    meta = dict(dials=dials_version(), findspots=findspots_version(), rounds=args.rounds)
    meta["date"] = time.strftime("%F %H:%M")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.write_text(report(rows, meta))
    print(out.read_text())
    return 0


def report(rows: list[dict], meta: dict) -> str:
    """The markdown table of the measured rows."""
    lines = [
        "# Compressed CBFs: findspots against DIALS, and the decompression floor",
        "",
        f"- {meta['dials']}; findspots {meta['findspots']}; {meta['rounds']} round(s), medians, nproc=1, "
        f"defaults (findspots with its HTML report); {meta['date']}",
        "- floor: one process decompressing the same files and nothing else (best of 3).",
        "",
        "| set | compression | images | DIALS s | findspots s | speed-up | floor s | floor / findspots "
        "| findspots - floor, ms per image | spots DIALS / findspots |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rest_ms = 1000 * (r["findspots_s"] - r["floor_s"]) / r["images"]
        spots = f"{r['dials_spots']} / {r['findspots_spots']}"
        lines.append(
            f"| {r['set']} | {r['kind']} | {r['images']} | {r['dials_s']:.2f} | {r['findspots_s']:.2f} | "
            f"**{r['dials_s'] / r['findspots_s']:.2f}x** | {r['floor_s']:.2f} | "
            f"{r['floor_s'] / r['findspots_s']:.0%} | {rest_ms:.0f} | {spots} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
