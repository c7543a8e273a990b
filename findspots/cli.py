"""The ``findspots`` command: parse parameters, find spots, write the reflection table."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from findspots import __version__
from findspots.errors import FindSpotsError

log = logging.getLogger("findspots")

USAGE = """\
usage: findspots [options] [param.phil] [name=value ...] image_files ...

Find strong spots on X-ray diffraction images, as dials.find_spots does. Images are grouped
into sweeps (consecutive numbers, matching oscillation) or stills; strong pixels are found on
each image, joined into spots (3D for rotation sweeps, 2D for stills), measured, filtered and
written as a DIALS reflection table (msgpack) that dials.index reads.

examples:
  findspots image_00*.cbf
  findspots image_00*.cbf threshold.algorithm=dispersion_extended output.reflections=strong.refl
  findspots params.phil image_00*.cbf
  findspots -c -e 1        show every parameter up to expert level 1, with -a 1 for help text

options:
  -h, --help               this help and the parameters (-hh, -hhh for expert levels)
  -c, --show-config        print the parameter tree and exit (-e N expert level, -a N attributes)
  -v                       more output (-vv for debug messages and tracebacks)
  --phil FILE              read parameters from FILE (repeatable)
"""


def _log_per_image_statistics(table: dict, experiments: list, sequences: list) -> None:
    """The per-image table of each experiment (``per_image_statistics=True``)."""

    from findspots.histogram import per_image_table
    from findspots.per_image import on_ice_rings, per_image_rows, spot_resolution

    for i, experiment in enumerate(experiments):
        seq = sequences[experiment.sequence_index]
        rows = table["id"] == i
        xyz = table["xyzobs.px.value"][rows]
        d = spot_resolution(seq, table["panel"][rows], xyz[:, :2])
        if experiment.image_index is None:
            first, count = seq.frame(0), len(seq)
        else:
            first, count = seq.frame(experiment.image_index), 1
        stats = per_image_rows(xyz[:, 2], table["intensity.sum.value"][rows], on_ice_rings(d), first, count)
        log.info("Number of centroids per image for imageset %d:\n%s", i, per_image_table(stats))


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that workers and cluster jobs are shut down."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _fail(message: str, code: int, verbosity: int) -> int:
    """One line on stderr; the traceback goes to the debug log (and stderr with -vv)."""
    log.debug("error", exc_info=True)
    if verbosity >= 2:
        import traceback

        traceback.print_exc()
    print(f"findspots: error: {message}", file=sys.stderr)
    return code


def _check_writable(path: str) -> None:
    """Fail before reading any image when the output cannot be written."""
    directory = Path(path).resolve().parent
    if not directory.is_dir():
        raise FindSpotsError(f"output.reflections={path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise FindSpotsError(f"output.reflections={path}: directory {directory} is not writable")


def run(argv: list[str]) -> int:
    """Run findspots on command-line arguments; returns the exit status."""
    from findspots.batch.checkpoint import Checkpoints
    from findspots.histogram import spot_histogram
    from findspots.images import ImageError
    from findspots.images.inputs import load_inputs
    from findspots.logs import setup
    from findspots.parameters import format_config, parse_arguments
    from findspots.phil import PhilError
    from findspots.pipeline import check_parameters, find_spots
    from findspots.refl import write_reflections

    verbosity = 1
    try:
        args = parse_arguments(argv)
    except PhilError as err:
        print(f"findspots: error: {err}", file=sys.stderr)
        return 2
    verbosity = args.verbosity
    if args.show_config:
        print(format_config(args.expert_level, args.attributes_level))
        return 0
    if args.help or not args.data_args:
        print(USAGE)
        print(format_config(max(args.help - 1, 0), args.attributes_level))
        return 0 if args.help else 2
    params = args.params
    out = params.output
    try:
        setup(verbosity, out.log, out.debug_log)
        log.info("findspots %s", __version__)
        for warning in args.warnings:
            log.warning(warning)
        if args.modified:
            log.info("The following parameters have been modified:\n\n%s", args.modified)
        _check_writable(out.reflections)
        check_parameters(params)
        started = time.perf_counter()
        sequences = load_inputs(args.data_args)
        checkpoints = Checkpoints(Path(f"{out.reflections}.findspots-checkpoint"))
        rows = find_spots(sequences, params, checkpoints)
        for s in range(len(rows.images)):
            log.info("\nHistogram of per-image spot count for imageset %d:", s)
            log.info(spot_histogram(rows.z_of_sequence(s)))
        log.info("\n%s", "-" * 80)
        if not len(rows):
            log.warning("No reflections found; %s not written", out.reflections)
            checkpoints.remove()
            return 0
        table = rows.table()
        if not out.shoeboxes:
            table.pop("shoebox", None)
        write_reflections(out.reflections, table)
        log.info("Saved %d reflections to %s", len(rows), out.reflections)
        checkpoints.remove()
        if params.per_image_statistics:
            _log_per_image_statistics(table, rows.experiments, sequences)
        log.debug("Time taken: %.2f s", time.perf_counter() - started)
        return 0
    except FindSpotsError as err:
        return _fail(str(err), err.exit_code, verbosity)
    except PhilError as err:
        return _fail(str(err), 2, verbosity)
    except ImageError as err:
        return _fail(str(err), 1, verbosity)
    except (KeyboardInterrupt, Terminated) as err:
        code = 143 if isinstance(err, Terminated) else 130
        print(
            f"findspots: stopped by {'SIGTERM' if code == 143 else 'SIGINT'}; finished blocks are kept, "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return code
    except Exception as err:  # a bug: still one line for the user, the traceback in the debug log
        return _fail(
            f"internal error ({type(err).__name__}: {err}); details in {out.debug_log}", 1, verbosity
        )


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = run(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into e.g. head: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
