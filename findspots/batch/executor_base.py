"""The executor interface (``Executor.run``), the in-process executor, and the worker-death rule that
every executor with worker processes shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from findspots.errors import WorkerDied

# A dead worker's block is rerun on another worker; a block that kills this many workers fails.
ALLOWED_WORKER_DEATHS = 3


def worker_died(deaths: int, what: str, how: str | None = None) -> WorkerDied:
    """The error of a task that killed ``deaths`` worker processes (``how``: the last one's end)."""
    ended = f" ({how})" if how else ""
    return WorkerDied(
        f"a worker process died {deaths} times on {what}{ended}, e.g. out of memory; "
        "use fewer processes (nproc) or smaller blocks (mp.chunksize)"
    )


class Executor:
    """Runs ``fn(shared, *args)`` for each args tuple; yields ``(index, result)`` as they finish.

    ``describe(i)`` says what task ``i`` is (e.g. "images 21-40 of x_#####.cbf") in the error of a
    task that keeps killing its workers.
    """

    def run(
        self, fn: Callable, shared: Any, tasks: Sequence[tuple], describe: Callable[[int], str] | None = None
    ) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (and cancel cluster jobs)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Runs tasks one after the other in this process: no start-up cost."""

    def run(self, fn, shared, tasks, describe=None):
        for i, args in enumerate(tasks):
            yield i, fn(shared, *args)
