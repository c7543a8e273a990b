"""The ``findspots`` command: parse parameters, find spots, write the reflection table."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import NoReturn

from findspots import __version__
from findspots.app.malloc import reuse_freed_buffers
from findspots.errors import FindSpotsError, ParameterError
from findspots.numba_start import skip_blas_probe

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


def _write_report(
    params, args, table: dict, rows, sequences: list, timings: dict, per_image: dict | None
) -> None:
    """The HTML report and PNG plots (``output.report``, ``output.plots``); failures only warn."""
    out = params.output
    if not out.report and not out.plots:
        return
    try:
        from findspots.report import ReportData, build_figures, image_counts, write_plots, write_report

        data = ReportData(
            table=table,
            sequences=sequences,
            images=image_counts(rows.images),
            max_strong_fraction=params.spotfinder.filter.max_strong_pixel_fraction,
            counts=rows.counts,
            modified_parameters=args.modified,
            inputs=list(args.data_args),
            timings=timings,
            per_image=per_image,
            grid=tuple(out.grid) if out.grid else None,
            grid_order=out.grid_order,
        )
        figures = build_figures(data, nproc=params.spotfinder.mp.nproc)
        if out.report:
            write_report(data, out.report, figures=figures)
            log.info("Report written to %s", out.report)
        if out.plots:
            write_plots(data, out.plots, figures=figures)
            log.info("Plots written to %s", out.plots)
    except Exception as err:  # the spots are written; a report problem must not fail the run
        log.debug("report failed", exc_info=True)
        log.warning("Could not write the report: %s", err)


def _per_image_figures(params, table: dict, sequences: list, timings: dict) -> dict | None:
    """DIALS's nine per-image figures (as ``dials.spot_counts_per_image``) when an output shows them:
    ``output.per_image`` (written here), the report or the plots; their time goes into ``timings``."""
    import numpy as np

    from findspots.analysis.per_image import per_image_figures

    out = params.output
    if not (out.per_image or out.report or out.plots):
        return None
    started = time.perf_counter()
    empty = ("intensity.sum.value", "intensity.sum.variance", "panel", "id")
    columns = table or {"xyzobs.px.value": np.zeros((0, 3)), **dict.fromkeys(empty, np.zeros(0))}
    figures = per_image_figures(columns, sequences)
    timings["per-image analysis"] = time.perf_counter() - started
    log.debug("Per-image analysis: %.3f s", timings["per-image analysis"])
    if out.per_image:
        _write_per_image(out.per_image, figures)
    return figures


def _write_per_image(path: str, figures: dict) -> None:
    """The figures as one JSON object, formatted as ``dials.spot_counts_per_image json=`` writes it."""
    import json

    from findspots.output.refl import atomic_file

    with atomic_file(Path(path)) as fh:
        fh.write(json.dumps(figures).encode("ascii"))
    log.info("Saved the per-image figures to %s", path)


def _log_per_image_statistics(table: dict, experiments: list, sequences: list) -> None:
    """The per-image table of each experiment (``per_image_statistics=True``)."""

    from findspots.analysis.per_image import on_ice_rings, per_image_rows, spot_resolution
    from findspots.output.histogram import per_image_table

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


# The stop signal received (None: none yet), how many arrived, whether run() has returned, and
# whether the stop's exception was dropped in a finaliser and is still to be raised (_on_unraisable).
_stop = {"signum": None, "count": 0, "exiting": False, "dropped": False}
_REDELIVERY_DELAY_S = 0.01  # after a dropped stop exception: long enough to leave the finaliser


def _stop_exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _on_signal(signum, frame) -> None:
    """SIGTERM/SIGINT: the first one raises (Terminated/KeyboardInterrupt) in the main thread; a second
    one lets the shutdown of workers and cluster jobs finish; a third ends the process at once."""
    _stop["count"] += 1
    if _stop["signum"] is None and not _stop["exiting"]:
        _stop["signum"] = signum
        raise _stop_exception(signum)
    if _stop["count"] >= 3:
        os._exit(128 + signum)
    if not _stop["exiting"]:
        os.write(2, b"findspots: stopping: shutting down workers (a third signal exits at once)\n")


def _on_unraisable(unraisable) -> None:
    """``sys.unraisablehook``. A stop signal that arrives while the main thread runs a finaliser (an
    object's ``__del__``, a weakref callback, a generator closed by the garbage collector) raises its
    exception there, where Python cannot propagate it: Python prints "Exception ignored in ..." and
    carries on, and the run would go on to its end. Raise it again, from SIGALRM, once out of there."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)) and _stop["signum"] is not None:
        _stop["dropped"] = True
        signal.setitimer(signal.ITIMER_REAL, _REDELIVERY_DELAY_S)
    else:
        sys.__unraisablehook__(unraisable)


def _on_alarm(signum, frame) -> None:
    """SIGALRM: raise the stop exception a finaliser dropped (see _on_unraisable)."""
    if frame is not None and frame.f_code is _on_unraisable.__code__:  # still in the hook: not yet
        signal.setitimer(signal.ITIMER_REAL, _REDELIVERY_DELAY_S)
    elif _stop["dropped"] and not _stop["exiting"]:
        _stop["dropped"] = False
        raise _stop_exception(_stop["signum"])


def _install_stop_handlers() -> None:
    """SIGTERM and SIGINT stop the run (see _on_signal), for the whole process."""
    _stop.update(signum=None, count=0, exiting=False, dropped=False)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    sys.unraisablehook = _on_unraisable
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    """At interpreter exit: Python puts back the default action of handled signals while it shuts
    down, so a late SIGTERM (a batch system sends a second one) would turn exit status 143 into a
    kill; the exit status is decided by then, so ignore them."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _raise_if_stopped() -> None:
    """Raise again a stop signal whose exception was swallowed (e.g. caught by a library), so that a
    stopped run never writes results."""
    if _stop["signum"] is not None:
        _stop["dropped"] = False  # raised here: not again from SIGALRM
        raise _stop_exception(_stop["signum"])


def _stopped(err: BaseException) -> int:
    code = 143 if isinstance(err, Terminated) else 130
    print(
        f"findspots: stopped by {'SIGTERM' if code == 143 else 'SIGINT'}; finished blocks are kept, "
        "rerun the same command to resume",
        file=sys.stderr,
    )
    return code


# What to do, for messages of other modules that say what is wrong but not what to do.
_HINTS = (
    (lambda m: m.endswith(": no such file"), "check the path (and that its disk is mounted)"),
    (
        lambda m: m.startswith(("Unknown parameter", "Ambiguous parameter")) and "Did you mean" not in m,
        "'findspots -c -e 3' lists every parameter",
    ),
    (
        lambda m: "corrupt or truncated compressed file" in m and m.endswith(")"),
        "copy the file again from its source, or leave it out of the command",
    ),
)


def _with_hint(message: str) -> str:
    for applies, hint in _HINTS:
        if applies(message):
            return f"{message}; {hint}"
    return message


def _fail(message: str, code: int, verbosity: int) -> int:
    """One line on stderr; the traceback goes to the debug log (and stderr with -vv)."""
    log.debug("error", exc_info=True)
    if verbosity >= 2:
        import traceback

        traceback.print_exc()
    print(f"findspots: error: {_with_hint(message)}", file=sys.stderr)
    return code


def _check_writable(path: str, parameter: str = "output.reflections") -> None:
    """Fail before reading any image when ``path`` cannot be written (atomically: a temporary file
    beside it, then a rename), trying it for real so that read-only mounts are caught even as root."""
    target = Path(path)
    directory = target.resolve().parent
    if not directory.is_dir():
        raise FindSpotsError(
            f"{parameter}={path}: directory {directory} does not exist; create it or choose another path"
        )
    if target.is_dir():
        raise FindSpotsError(f"{parameter}={path}: is a directory; give a file name")
    if target.exists() and not target.is_file():
        raise FindSpotsError(f"{parameter}={path}: is not a regular file; give a file name")
    probe = directory / f".{target.name}.{os.getpid()}.probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise FindSpotsError(
            f"{parameter}={path}: cannot write in {directory} ({err.strerror}); choose a writable place"
        ) from None


def _check_outputs(params) -> None:
    """Every file the run will write can be written (before any image is read)."""
    out = params.output
    _check_writable(out.reflections)
    for name in ("experiments", "datablock", "report", "per_image_events", "per_image"):
        if getattr(out, name, None):
            _check_writable(getattr(out, name), f"output.{name}")
    sf = params.spotfinder
    if sf.write_hot_mask:
        _check_writable(f"{sf.hot_mask_prefix}_0.npy", "spotfinder.hot_mask_prefix")


def _sizes(sequence) -> str:
    return ", ".join(f"{w} x {h}" for w, h in (p.image_size for p in sequence.detector))


def _check_sweep_sizes(sequences: list) -> None:
    """Consecutive images of one template (one sweep) must have one size: an image of another size
    is a wrong or damaged file, which would otherwise silently cut the sweep in three."""
    from collections import Counter

    from findspots.images import ImageError

    sweeps: list[list] = []  # runs of sequences with one template and consecutive numbers
    for seq in sequences:
        last = sweeps[-1][-1] if sweeps else None
        if last and seq.template == last.template and seq.image_numbers[0] == last.image_numbers[-1] + 1:
            sweeps[-1].append(seq)
        else:
            sweeps.append([seq])
    for sweep in sweeps:
        images = Counter()
        for seq in sweep:
            images[_sizes(seq)] += len(seq.image_numbers)
        if len(images) < 2:
            continue
        usual = images.most_common(1)[0][0]
        odd = next(seq for seq in sweep if _sizes(seq) != usual)
        first, last = odd.image_numbers[0], odd.image_numbers[-1]
        which = f"image {first} is" if first == last else f"images {first}..{last} are"
        raise ImageError(
            f"{odd.paths[0]}: {which} {_sizes(odd)} pixels but the other images of its sweep "
            f"({sweep[0].image_numbers[0]}..{sweep[-1].image_numbers[-1]}) are {usual}; "
            "remove or replace the files that do not belong to the sweep"
        )


def _check_grid(params, sequences: list) -> None:
    """``output.grid=NX,NY`` must have one cell per image to be processed (known from the headers)."""
    from findspots.app.pipeline import scan_ranges

    if not params.output.grid:
        return
    nx, ny = params.output.grid
    ranges = [r for seq in sequences for r in scan_ranges(seq, params.spotfinder.scan_range)]
    n = sum(j1 - j0 + 1 for j0, j1 in ranges)
    if nx * ny != n:
        raise ParameterError(
            f"output.grid={nx},{ny}: {nx} x {ny} = {nx * ny} grid cells but {n} images are to be processed; "
            f"give NX,NY with NX x NY = {n}"
        )


def _geometry_users(params) -> list[str]:
    """The parameters set that need the experiment geometry (wavelength, detector position)."""
    sf = params.spotfinder
    f = sf.filter
    users = {
        f"spotfinder.filter.d_min={f.d_min}": f.d_min is not None,
        f"spotfinder.filter.d_max={f.d_max}": f.d_max is not None,
        "spotfinder.filter.resolution_range": bool(f.resolution_range),
        "spotfinder.filter.ice_rings.filter=True": f.ice_rings.filter,
        "spotfinder.threshold.algorithm=radial_profile": sf.threshold.algorithm == "radial_profile",
        "per_image_statistics=True": params.per_image_statistics,
    }
    return [name for name, used in users.items() if used]


def _geometry_problem(sequence) -> str | None:
    """What makes no sense in a sequence's geometry (from its image headers), or None."""
    import numpy as np

    wavelength = sequence.beam.wavelength
    if not wavelength > 0:
        return f"wavelength {wavelength:g} A"
    towards = -np.asarray(sequence.beam.direction, float)  # the beam's direction of travel
    for k, panel in enumerate(sequence.detector):
        where = f"panel {k} " if len(sequence.detector) > 1 else ""
        if not min(panel.pixel_size) > 0:
            return f"{where}pixel size {panel.pixel_size[0]:g} x {panel.pixel_size[1]:g} mm"
        normal = np.cross(panel.fast_axis, panel.slow_axis)
        normal /= np.linalg.norm(normal)
        distance = float(np.dot(panel.origin, normal))
        facing = float(np.dot(towards, normal))
        if abs(distance) < 1e-6:
            return f"{where}detector distance 0 mm"
        if abs(facing) > 0.5 and distance * facing < 0:  # a panel facing the beam lies behind the sample
            return f"{where}detector distance {-abs(distance):.2f} mm"
    return None


def _check_geometry(sequences: list, params) -> None:
    """Header geometry that makes no sense is an error where the parameters need the geometry."""
    from findspots.images import ImageError

    users = _geometry_users(params)
    if not users:
        return
    for seq in sequences:
        problem = _geometry_problem(seq)
        if problem:
            raise ImageError(
                f"{seq.paths[0]}: the image header gives {problem}, which makes no sense, and {users[0]} "
                "needs the geometry; correct the header, or run without that parameter"
            )


def run(argv: list[str]) -> int:
    """Run findspots on command-line arguments; returns the exit status."""
    from findspots.app.parameters import parse_arguments
    from findspots.phil import PhilError

    try:
        args = parse_arguments(argv)
    except PhilError as err:
        print(f"findspots: error: {_with_hint(str(err))}", file=sys.stderr)
        return 2
    inputs = args.params.input
    if args.show_config or args.help or not (args.data_args or inputs.template or inputs.stream):
        return _show_parameters(args)
    return _run_logged(args)


def _show_parameters(args) -> int:
    """``-c``: the parameter tree; ``-h``, or no image given: the usage, then the tree."""
    from findspots.app.parameters import format_config

    if args.show_config:
        print(format_config(args.expert_level, args.attributes_level))
        return 0
    print(USAGE)
    print(format_config(max(args.help - 1, 0), args.attributes_level))
    return 0 if args.help else 2


def _run_logged(args) -> int:
    """The run with its log files; every failure becomes its exit status and one line on stderr."""
    from findspots.app.logs import finish, setup
    from findspots.batch.checkpoint import Checkpoints
    from findspots.images import ImageError
    from findspots.phil import PhilError

    out = args.params.output
    checkpoints = Checkpoints(Path(f"{out.reflections}.findspots-checkpoint"))
    resuming = True  # until looked at: the folder may hold an earlier run's blocks

    def bad_input(message: str, code: int) -> int:
        if not resuming:  # nothing of a failed run is left behind, older runs' blocks are
            checkpoints.remove()
        return _fail(message, code, args.verbosity)

    try:
        setup(args.verbosity, out.log, out.debug_log)
        _log_start(args)
        resuming = checkpoints.folder.exists()
        _find_and_write(args, checkpoints)
        return 0
    except FindSpotsError as err:
        return bad_input(str(err), err.exit_code)
    except PhilError as err:
        return bad_input(str(err), 2)
    except ImageError as err:
        return bad_input(str(err), 1)
    except (KeyboardInterrupt, Terminated) as err:
        return _stopped(err)
    except Exception as err:  # a bug: still one line for the user, the traceback in the debug log
        return _fail(
            f"internal error ({type(err).__name__}: {err}); details in {out.debug_log}", 1, args.verbosity
        )
    finally:
        finish()


def _log_start(args) -> None:
    log.info("findspots %s", __version__)
    for warning in args.warnings:
        log.warning(warning)
    if args.modified:
        log.info("The following parameters have been modified:\n\n%s", args.modified)


def _find_and_write(args, checkpoints) -> None:
    """Check the parameters and outputs, read the images, find the spots, write every output."""
    from findspots.app.pipeline import check_parameters, find_spots
    from findspots.batch.clusters.base import cluster_workdir
    from findspots.images.inputs import load_inputs
    from findspots.live.events import write_events
    from findspots.live.stream import stream_sequences
    from findspots.live.watch import image_arguments

    params = args.params
    _check_outputs(params)
    check_parameters(params)
    started = time.perf_counter()
    workdir = cluster_workdir(params.output.reflections)
    if params.input.stream:
        sequences = stream_sequences(args.data_args, params, workdir)
    else:
        data = image_arguments(args.data_args, params, workdir)
        sequences = load_inputs(data, verify_md5=params.input.verify_md5)
    _check_grid(params, sequences)
    _check_sweep_sizes(sequences)
    _check_geometry(sequences, params)
    write_events(sequences, params, workdir)
    rows = find_spots(sequences, params, checkpoints, workdir)
    _raise_if_stopped()
    _log_histograms(rows)
    found = time.perf_counter()
    table = _write_results(params.output, rows, sequences)
    checkpoints.remove()
    rows.count("written", len(rows))
    timings = {"spot finding": found - started, "writing": time.perf_counter() - found}
    per_image = _per_image_figures(params, table, sequences, timings)
    _write_report(params, args, table, rows, sequences, timings, per_image)
    if params.per_image_statistics and table:
        _log_per_image_statistics(table, rows.experiments, sequences)
    log.debug("Time taken: %.2f s", time.perf_counter() - started)


def _log_histograms(rows) -> None:
    from findspots.output.histogram import spot_histogram

    for s in range(len(rows.images)):
        log.info("\nHistogram of per-image spot count for imageset %d:", s)
        log.info(spot_histogram(rows.z_of_sequence(s)))
    log.info("\n%s", "-" * 80)


def _write_results(out, rows, sequences: list) -> dict:
    """The reflection table, the experiment models and the hot-pixel masks; returns the table."""
    from findspots.images.expt import experiment_identifier, write_experiments
    from findspots.output.refl import write_reflections
    from findspots.spotfinder.hot_mask import write_hot_mask

    table = rows.table() if len(rows) else {}
    if not out.shoeboxes:
        table.pop("shoebox", None)
    models = out.experiments or out.datablock
    given = [experiment_identifier(sequences[e.sequence_index], e.image_index) for e in rows.experiments]
    given = [g if given.count(g) == 1 else "" for g in given]  # a split sequence's copies get new ones
    identifiers = [g or str(uuid.uuid4()) for g in given] if models or all(given) else []
    if table:
        write_reflections(out.reflections, table, dict(enumerate(identifiers)))
        log.info("Saved %d reflections to %s", len(rows), out.reflections)
    else:
        log.warning("No reflections found; %s not written", out.reflections)
    if models:
        write_experiments(models, sequences, identifiers=identifiers)
        log.info("Saved %d experiment(s) to %s", len(identifiers), models)
    for path, masks in rows.hot_masks:
        write_hot_mask(path, masks)
    return table


def main() -> None:
    """Console-script entry point."""
    _install_stop_handlers()
    reuse_freed_buffers()
    skip_blas_probe()
    try:
        code = run(sys.argv[1:])
        _stop["exiting"] = True  # from here on a signal no longer interrupts the exit
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into e.g. head: stop quietly, as Unix tools do
        _stop["exiting"] = True  # a signal now would raise in an exit function, which Python only prints
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except (KeyboardInterrupt, Terminated) as err:  # during start-up or the final report of run()
        code = _stopped(err)
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit without tearing the interpreter down: freeing every module and object (numba,
    matplotlib, ...) takes ~0.2 s after a run, for nothing. The exit functions still run (log
    handlers, temporary folders, ours) and the standard streams are flushed. Under a profiler or
    a debugger the exit is the normal one, so that they can write their results."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader gone: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
