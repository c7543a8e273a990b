"""A pool of forked worker processes on this machine: the executor of local runs (``nproc > 1``).

Workers are forked, so they start at once with every module the parent has imported. Each runs one
task at a time; the shared object is pickled once per ``run`` and sent to each worker (as dask's
scatter does: image readers such as HDF5 files reopen themselves after unpickling, and must not be
inherited open across a fork). Results and task exceptions come back pickled over each worker's
pipe. A worker that dies is replaced and its task rerun; a task that kills ``ALLOWED_WORKER_DEATHS``
workers fails the run. Workers ignore SIGINT (the parent handles Ctrl-C and stops them) and die with
the parent, even when it is killed outright.

Forking is safe here because the parent runs no threads of its own by then (the progress bar has no
monitor thread); OpenBLAS's threads are shut down around a fork by OpenBLAS itself, and the per-block
kernels are single-threaded numba functions, so no thread-count setting is needed in the workers.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from findspots.batch.executor_base import ALLOWED_WORKER_DEATHS, Executor, worker_died

log = logging.getLogger("findspots")

WORKER_NAME = b"findspots-pool"  # the workers' process name (ps, top; at most 15 bytes)
STOP_GRACE_S = 2.0  # how long close() waits for idle workers to exit before killing them

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (attached as its ``__cause__``)."""

    def __str__(self) -> str:
        return f"\n\nIn the worker process:\n{self.args[0]}"


# ---------------------------------------------------------------------------------------------
# The worker side


def _prctl(option: int, arg) -> None:
    """Linux prctl(2); does nothing elsewhere (or where libc is not found)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _become_worker(parent_pid: int) -> None:
    """Signals, name and lifetime of a freshly forked worker (its stop signals are still blocked)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    _prctl(_PR_SET_NAME, ctypes.c_char_p(WORKER_NAME))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, which raises
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _rebuilds(exc: BaseException) -> bool:
    """Whether the parent gets ``exc`` back with its type and message: unpickling calls the
    constructor that ``__reduce__`` names (a class whose ``__init__`` rewrites its argument fails)."""
    try:
        pickle.dumps(exc)
        rebuild, args = exc.__reduce__()[:2]
        copy = rebuild(*args)
    except Exception:
        return False
    return type(copy) is type(exc) and str(copy) == str(exc)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe; else its nearest base class of ours or a library's with the
    same message (so the parent still reports e.g. a ParameterError as one); else a RuntimeError."""
    if _rebuilds(exc):
        return exc
    for base in type(exc).__mro__[1:]:
        if base in (Exception, BaseException) or not issubclass(base, BaseException):
            break
        try:
            copy = base(str(exc))
        except Exception:
            continue
        if str(copy) == str(exc) and _rebuilds(copy):
            return copy
    return RuntimeError(f"{type(exc).__qualname__}: {exc}")


def _error_reply(index: int, exc: BaseException) -> tuple:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ("error", index, _portable(exc), text)


def _load_shared(conn: Connection) -> tuple[Callable, Any]:
    """The run's function and shared object, sent as one pickle after the "shared" message; when
    they cannot be loaded (e.g. an image file gone), a function that raises why."""
    try:
        return conn.recv()
    except (EOFError, ConnectionError):  # the pipe, not the pickle: the parent is gone
        raise
    except Exception as exc:
        error = exc

        def fail(shared, *args):
            raise error

        return fail, None


def _serve(conn: Connection) -> None:
    """Answer the parent's messages until it says stop or goes away."""
    fn: Callable | None = None
    shared: Any = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "shared":
            try:
                fn, shared = _load_shared(conn)
            except (EOFError, ConnectionError):
                return
            continue
        _, index, args = message
        try:
            reply = ("done", index, fn(shared, *args))
        except BaseException as exc:  # every failure of a task is the parent's to report
            reply = _error_reply(index, exc)
        try:
            conn.send(reply)  # pickles first: an unpicklable result fails here, with nothing sent
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:
            conn.send(_error_reply(index, exc))


def _worker_main(parent_pid: int, conn: Connection, inherited: list[Connection]) -> None:
    _become_worker(parent_pid)
    for other in inherited:  # other workers' parent ends: they must see EOF when the parent dies
        other.close()
    _serve(conn)


# ---------------------------------------------------------------------------------------------
# The parent side


class _Worker:
    """One worker process, its end of the pipe, and the task it is running (None: idle)."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection):
        self.process = process
        self.conn = conn
        self.task: int | None = None
        self.generation = 0  # the run whose shared object it holds

    def how_it_ended(self) -> str:
        """'killed by SIGKILL' or 'exit status N'."""
        self.process.join(1.0)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5.0)


@dataclass
class _Run:
    """One ``run`` call: its tasks, the shared object's pickle, and what is left to do."""

    generation: int
    payload: bytes
    tasks: Sequence[tuple]
    describe: Callable[[int], str]
    pending: collections.deque = field(default_factory=collections.deque)
    deaths: collections.Counter = field(default_factory=collections.Counter)


class LocalPool(Executor):
    """``nproc`` forked worker processes, started now and kept until :meth:`close`."""

    def __init__(self, nproc: int):
        self._context = multiprocessing.get_context("fork")
        self._workers: list[_Worker | None] = [None] * nproc
        self._generation = 0
        try:
            for slot in range(nproc):
                self._workers[slot] = self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        inherited = [w.conn for w in self._workers if w is not None]
        process = self._context.Process(
            target=_worker_main, args=(os.getpid(), child_end, inherited), name="findspots-pool", daemon=True
        )
        # a stop signal arriving during the fork would run the parent's handler in the child
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            child_end.close()
        return _Worker(process, parent_end)

    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        return [w.process.pid for w in self._workers if w is not None and w.process.is_alive()]

    def run(
        self,
        fn: Callable,
        shared: Any,
        tasks: Sequence[tuple],
        describe: Callable[[int], str] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(shared, *args)`` for each task on the workers; yield ``(index, result)`` as they end."""
        self._generation += 1
        state = _Run(
            generation=self._generation,
            payload=pickle.dumps((fn, shared), protocol=pickle.HIGHEST_PROTOCOL),
            tasks=tasks,
            describe=describe or (lambda i: f"task {i}"),
            pending=collections.deque(range(len(tasks))),
        )
        try:
            while state.pending or self._busy():
                slot = self._idle_slot()
                while state.pending and slot is not None:
                    self._assign(state, slot, state.pending.popleft())
                    slot = self._idle_slot()
                yield from self._collect(state)
        finally:
            self._stop_busy()

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w is not None and w.task is not None]

    def _idle_slot(self) -> int | None:
        for slot, worker in enumerate(self._workers):
            if worker is None or worker.task is None:
                return slot
        return None

    def _assign(self, state: _Run, slot: int, index: int) -> None:
        """Send task ``index`` (and the run's shared object, once) to the worker of ``slot``."""
        worker = self._workers[slot]
        if worker is None or not worker.process.is_alive():  # gone while idle: no task to blame
            if worker is not None:
                worker.kill()
            worker = self._workers[slot] = self._start()
        worker.task = index
        try:
            if worker.generation != state.generation:
                worker.conn.send(("shared",))
                worker.conn.send_bytes(state.payload)
                worker.generation = state.generation
            worker.conn.send(("task", index, state.tasks[index]))
        except OSError:
            self._died(state, slot)

    def _collect(self, state: _Run) -> Iterator[tuple[int, Any]]:
        """Wait until a busy worker answers or dies; yield the results that came."""
        busy = {w.conn: w for w in self._busy()}
        sentinels = {w.process.sentinel: w for w in busy.values()}
        ready = wait([*busy, *sentinels])
        answered = {busy[r] for r in ready if r in busy} | {sentinels[r] for r in ready if r in sentinels}
        for worker in answered:
            try:
                message = worker.conn.recv() if worker.conn.poll() else None
            except (EOFError, OSError):  # it died while sending
                message = None
            if message is None:
                self._died(state, self._workers.index(worker))
                continue
            worker.task = None
            if message[0] == "error":
                exc = message[2]
                exc.__cause__ = RemoteTraceback(message[3])
                raise exc
            yield message[1], message[2]

    def _died(self, state: _Run, slot: int) -> None:
        """Replace the dead worker of ``slot`` and rerun its task, unless that task killed too many."""
        worker = self._workers[slot]
        index, how = worker.task, worker.how_it_ended()
        worker.kill()
        self._workers[slot] = None
        state.deaths[index] += 1
        what = state.describe(index)
        if state.deaths[index] >= ALLOWED_WORKER_DEATHS:
            raise worker_died(state.deaths[index], what, how)
        log.warning("A worker process died on %s (%s); running it again", what, how)
        self._workers[slot] = self._start()
        state.pending.appendleft(index)

    def _stop_busy(self) -> None:
        """Kill the workers still running a task of an abandoned run: their results would be stale."""
        for slot, worker in enumerate(self._workers):
            if worker is not None and worker.task is not None:
                worker.kill()
                self._workers[slot] = None

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy or slow ones are killed."""
        self._stop_busy()
        workers = [w for w in self._workers if w is not None]
        self._workers = [None] * len(self._workers)
        for worker in workers:
            try:
                worker.conn.send(("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            worker.kill()
