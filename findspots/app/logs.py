"""Logging set-up: terminal, the plain log file and the debug log, DIALS style.

The log files are written under a temporary name beside the final one (``findspots.log.<pid>.partial``)
and renamed onto it by :func:`finish` when the run ends, whatever the outcome: a run killed outright
leaves the previous run's log in place and its own partial log beside it.
"""

from __future__ import annotations

import logging
import os
import sys

from findspots.errors import FindSpotsError

LOGGER = "findspots"


class _PlainFormatter(logging.Formatter):
    """Messages as they are; warnings and above prefixed ``WARN:`` (as DIALS log files do)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"WARN: {text}" if record.levelno >= logging.WARNING else text


class _ConsoleHandler(logging.StreamHandler):
    """The terminal handler: when the reader of a pipe goes away (``findspots ... | head``), the
    rest of the run's messages go to the log files only, without an error per message."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())  # so that the flush at exit is quiet too
            os.close(devnull)
            return
        super().handleError(record)


def setup(verbosity: int, log_file: str | None = None, debug_file: str | None = None) -> logging.Logger:
    """Route the ``findspots`` logger to the terminal and, when named, the two log files.

    verbosity 0 prints warnings only, 1 (default) information, 2+ debug messages.
    """
    finish()  # a previous run in this process
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    console = _ConsoleHandler(sys.stdout)
    console.setLevel(logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)
    console.setFormatter(_PlainFormatter())
    logger.addHandler(console)
    if log_file:
        handler = _file_handler("output.log", log_file)
        handler.setLevel(logging.INFO if verbosity < 2 else logging.DEBUG)
        handler.setFormatter(_PlainFormatter())
        logger.addHandler(handler)
    if debug_file:
        handler = _file_handler("output.debug_log", debug_file)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return logger


class _AtomicFileHandler(logging.FileHandler):
    """A log file written under a temporary name; :meth:`publish` renames it onto the final name."""

    def __init__(self, path: str):
        self.final = os.path.abspath(path)
        directory, name = os.path.split(self.final)
        self.published = False
        super().__init__(os.path.join(directory, f"{name}.{os.getpid()}.partial"), mode="w")

    def emit(self, record: logging.LogRecord) -> None:
        if not self.published:  # e.g. a library logging during interpreter shutdown, after finish()
            super().emit(record)

    def publish(self) -> None:
        self.published = True
        self.close()
        if os.path.exists(self.baseFilename):
            os.replace(self.baseFilename, self.final)


def _file_handler(parameter: str, path: str) -> logging.FileHandler:
    if os.path.isdir(path):
        raise FindSpotsError(f"{parameter}={path}: is a directory; give a file name")
    try:
        return _AtomicFileHandler(path)
    except OSError as err:
        raise FindSpotsError(
            f"{parameter}={path}: cannot write the log file ({err.strerror}); choose a writable place"
        ) from None


def finish() -> None:
    """Close the log files and rename each onto its final name (the end of a run, failed or not)."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _AtomicFileHandler):
            logger.removeHandler(handler)
            try:
                handler.publish()
            except OSError as err:
                print(
                    f"findspots: warning: log {handler.baseFilename} not renamed to {handler.final} "
                    f"({err.strerror})",
                    file=sys.stderr,
                )


def capture_library_logs(name: str) -> None:
    """Send a library's log records (e.g. dask's "distributed") to the debug log only.

    Libraries like distributed print warnings to the terminal ("event loop unresponsive" under
    load); users get findspots's own lines there, and the details stay in the debug log.
    """
    library = logging.getLogger(name)
    for handler in list(library.handlers):
        library.removeHandler(handler)
    library.propagate = False
    library.setLevel(logging.INFO)
    for handler in logging.getLogger(LOGGER).handlers:
        if handler.level <= logging.DEBUG and isinstance(handler, logging.FileHandler):
            library.addHandler(handler)
