"""What the per-image analysis (issue 13) adds to a run: its stage time against the whole run.

On the 100-image Pilatus 6M sweep (``make_sweep.py``'s ``p6m``, generated if missing) ``findspots`` runs
``--repeats`` times (default 3) with default parameters (so with the HTML report) and
``output.per_image=FILE``. Per run: the wall time of the whole command and the analysis stage's own
time, from the run's debug log ("Per-image analysis: ... s", the ``per-image analysis`` timing of the
report). The analysis is also timed alone, in this process, on the run's reflection table
(``per_image_figures``, as the run calls it). Output: ``results/per_image_cost.md`` and ``.json``.

    .venv/bin/python benchmarks/per_image_cost.py              # ~4 min on 2 quiet cores
    .venv/bin/python benchmarks/per_image_cost.py --nproc 1 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FINDSPOTS = REPO / ".venv" / "bin" / "findspots"
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "benchmarks"))

from make_sweep import make_sweep, preset  # noqa: E402

STAGE = re.compile(r"Per-image analysis: ([0-9.]+) s")


def run_once(images: list[Path], nproc: int, folder: Path) -> dict:
    """One findspots run: its wall time, the analysis stage's time (from the debug log), spot count."""
    debug = folder / "debug.log"
    argv = [
        str(FINDSPOTS),
        *map(str, images),
        f"nproc={nproc}",
        f"output.reflections={folder / 'strong.refl'}",
        f"output.log={folder / 'findspots.log'}",
        f"output.debug_log={debug}",
        f"output.report={folder / 'findspots.html'}",
        f"output.per_image={folder / 'per_image.json'}",
    ]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - started
    stage = float(STAGE.search(debug.read_text()).group(1))
    figures = json.loads((folder / "per_image.json").read_text())
    return {"wall_s": wall, "analysis_s": stage, "spots": sum(figures["n_spots_total"])}


def analysis_alone(images: list[Path], folder: Path, repeats: int) -> list[float]:
    """``per_image_figures`` on the run's table, in this process, ``repeats`` times (seconds each)."""
    from findspots.analysis.per_image import per_image_figures
    from findspots.images import group_images
    from findspots.output.refl import read_reflections

    table = dict(read_reflections(folder / "strong.refl").columns)
    sequences = group_images([str(p) for p in images])
    per_image_figures(table, sequences)  # warm: the ice-ring cache, numpy's first calls
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        per_image_figures(table, sequences)
        times.append(time.perf_counter() - started)
    return times


def report(runs: list[dict], alone: list[float], nproc: int, nimages: int) -> str:
    wall = statistics.median(r["wall_s"] for r in runs)
    stage = statistics.median(r["analysis_s"] for r in runs)
    share = [100 * r["analysis_s"] / r["wall_s"] for r in runs]
    rows = "\n".join(
        f"| {i + 1} | {r['wall_s']:.2f} | {r['analysis_s']:.3f} | {p:.2f} % |"
        for i, (r, p) in enumerate(zip(runs, share, strict=True))
    )
    return f"""# Cost of the per-image analysis (issue 13)

`benchmarks/per_image_cost.py`: {nimages}-image Pilatus 6M sweep (`make_sweep.py` preset `p6m`),
`findspots` with default parameters (HTML report included), `nproc={nproc}`, `output.per_image=FILE`;
{len(runs)} runs, {runs[0]["spots"]:,} spots.

| run | whole run (s) | per-image analysis (s) | share |
|---|---|---|---|
{rows}

- Median: analysis **{stage:.3f} s**, whole run **{wall:.2f} s**; share per run: median
  **{statistics.median(share):.2f} %**, largest {max(share):.2f} % (goal: under 5 %).
- The analysis alone, in one process on the run's table ({len(alone)} repeats after a warm-up):
  {", ".join(f"{t:.3f}" for t in alone)} s (median {statistics.median(alone):.3f} s).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--root", help="where the sweep is cached (make_sweep.py's --root)")
    args = ap.parse_args(argv)
    images = make_sweep(preset("p6m"), args.root)
    runs = []
    with tempfile.TemporaryDirectory(prefix="findspots-per-image-") as tmp:
        folder = Path(tmp)
        run_once(images[:5], args.nproc, folder)  # warm-up: page cache, numba cache
        for i in range(args.repeats):
            runs.append(run_once(images, args.nproc, folder))
            print(f"run {i + 1}: {runs[-1]}", flush=True)
        alone = analysis_alone(images, folder, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    text = report(runs, alone, args.nproc, len(images))
    (RESULTS / "per_image_cost.md").write_text(text)
    (RESULTS / "per_image_cost.json").write_text(json.dumps({"runs": runs, "alone_s": alone}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
