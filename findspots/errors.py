"""Errors that reach the user as one line (what, which file or parameter, what to do)."""

from __future__ import annotations


class FindSpotsError(Exception):
    """A user-facing failure; ``str(err)`` is the one line printed, ``exit_code`` the status."""

    exit_code = 1


class ParameterError(FindSpotsError):
    """A parameter value that cannot work (exit code 2, nothing processed)."""

    exit_code = 2


class NotYetSupported(ParameterError):
    """A parameter of the tree whose behaviour is not built yet."""

    def __init__(self, what: str):
        super().__init__(f"{what} is not yet supported by findspots; leave it at its default")


class TooManyStrongPixels(FindSpotsError):
    """An image has more strong pixels than ``max_strong_pixel_fraction`` allows."""


class WorkerDied(FindSpotsError):
    """A block killed its worker process (e.g. out of memory) as many times as allowed."""


class ImageError(Exception):
    """An image file is missing, unreadable, corrupt or inconsistent with its sequence.

    Not a ``FindSpotsError``: the command line reports it on its own, with exit status 1.
    ``findspots.images`` re-exports it, where most callers import it from."""
