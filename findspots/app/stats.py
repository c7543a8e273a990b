"""``findspots-stats models.expt strong.refl [json=FILE] [split_json=True] [id=N]``.

What ``dials.spot_counts_per_image`` does for an existing spot table (findspots's or DIALS's): prints the
per-image table and the overall block, and with ``json=`` writes the nine per-image figures as one JSON
object (``split_json=True`` also writes ``<name>_<figure>.<ext>``, one list per file;
``joint_json=False`` leaves out the joint file). ``id=N`` keeps the rows of experiment N only (the
per-image lists still cover every image, as DIALS's do).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from findspots.analysis.per_image import per_image_figures, table_figures
from findspots.analysis.text import spot_counts_text
from findspots.images import ImageError, read_experiments
from findspots.output.refl import read_reflections

USAGE = (
    "usage: findspots-stats models.expt strong.refl [json=FILE] [split_json=True] [joint_json=False] [id=N]"
)
NEEDED = ("xyzobs.px.value", "intensity.sum.value", "intensity.sum.variance", "panel", "id")


class UsageError(Exception):
    """A command-line mistake, printed as one line."""


def _flag(name: str, value: str) -> bool:
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise UsageError(f"{name}={value}: expected True or False")


def parse_arguments(argv: list[str]) -> dict:
    """The two input files and the options, checked."""
    options = {"json": None, "split_json": False, "joint_json": True, "id": None}
    files = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if not sep:
            files.append(arg)
        elif name == "json":
            options["json"] = value
        elif name in ("split_json", "joint_json"):
            options[name] = _flag(name, value)
        elif name == "id":
            if not value.isdigit():
                raise UsageError(f"id={value}: expected an experiment number (0, 1, ...)")
            options["id"] = int(value)
        else:
            raise UsageError(f"{arg}: unknown option; {USAGE}")
    if len(files) != 2:
        raise UsageError(
            f"expected an experiment file and one reflection file, got {len(files)} files; {USAGE}"
        )
    if options["split_json"] and options["json"] and options["json"].count(".") != 1:
        raise UsageError(
            f"json={options['json']}: split_json needs a file name with one dot (e.g. stats.json)"
        )
    return {"experiments": files[0], "reflections": files[1], **options}


def load_table(path: str) -> dict[str, np.ndarray]:
    """The columns the analysis needs from a reflection table file."""
    try:
        table = read_reflections(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such reflection file") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: not a readable reflection table ({err})") from None
    if "miller_index" in table:
        raise UsageError(f"{path}: only unindexed reflections are supported (the table has miller_index)")
    missing = [name for name in NEEDED if name not in table]
    if missing:
        raise UsageError(f"{path}: column {missing[0]} is missing; give a spot-finding table (strong.refl)")
    return {name: np.asarray(table[name]) for name in NEEDED}


def write_json(figures: dict[str, list], path: str, split: bool, joint: bool) -> None:
    """The joint JSON file and, with ``split``, one file per figure (``<stem>_<figure>.<ext>``)."""
    if split:
        stem, ext = path.split(".")
        for name, values in figures.items():
            Path(f"{stem}_{name}.{ext}").write_text(json.dumps(values))
    if joint:
        Path(path).write_text(json.dumps(figures))


def run(argv: list[str]) -> int:
    """Run the command; the exit status."""
    try:
        args = parse_arguments(argv)
        sequences = read_experiments(args["experiments"])
        table = load_table(args["reflections"])
        if args["id"] is not None:
            rows = table["id"] == args["id"]
            table = {name: values[rows] for name, values in table.items()}
        figures = per_image_figures(table, sequences)
        sys.stdout.write(spot_counts_text(figures, table_figures(table, sequences)))
        if args["json"]:
            write_json(figures, args["json"], args["split_json"], args["joint_json"])
    except (UsageError, ImageError) as err:
        print(f"findspots-stats: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    except OSError as err:
        print(f"findspots-stats: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(sys.argv[1:]))
