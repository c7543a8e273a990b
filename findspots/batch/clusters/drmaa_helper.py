"""The process that owns the DRMAA session, and the findspots side's handle on it.

libdrmaa (SGE's links jemalloc) brings its own allocator into whatever process loads it; in the
findspots process that broke glibc's malloc state (``free(): invalid pointer`` at exit, after the
table was saved). So findspots never loads it: ``python -m findspots.batch.clusters.drmaa_helper``
imports ``drmaa``, opens the session and answers one JSON request per line on stdin, one JSON
reply per line on stdout, until stdin closes (then it ends the session).

Requests: ``{"submit": {template attributes}}`` -> ``{"job": id}``; ``{"terminate": id}`` ->
``{}``, also when the job had already ended. A failure is ``{"error": message}``; the first line,
sent once the session is open, is ``{}`` or that error.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading


def _answer(session, request: dict) -> dict:
    import drmaa

    if "submit" in request:
        template = session.createJobTemplate()
        try:
            for name, value in request["submit"].items():
                setattr(template, name, value)
            return {"job": session.runJob(template)}
        finally:
            session.deleteJobTemplate(template)
    try:
        session.control(request["terminate"], drmaa.JobControlAction.TERMINATE)
    except drmaa.errors.InvalidJobException:
        pass  # already finished
    return {}


def _reply(replies, message: dict) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def serve() -> int:
    """The helper process: open the session, answer requests until stdin closes."""
    # the replies get their own copy of stdout; whatever libdrmaa prints goes to stderr instead
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        import drmaa

        session = drmaa.Session()
        session.initialize()
    except Exception as err:  # ImportError, OSError, RuntimeError, or drmaa's own on a bad SGE_ROOT
        _reply(replies, {"error": f"{type(err).__name__}: {err}"})
        return 1
    _reply(replies, {})
    try:
        for line in sys.stdin:
            try:
                _reply(replies, _answer(session, json.loads(line)))
            except Exception as err:  # e.g. a native specification the scheduler refuses
                _reply(replies, {"error": f"{type(err).__name__}: {err}"})
    finally:
        session.exit()
    return 0


class DrmaaHelper:
    """A running helper process; its methods block until it answers (one request at a time)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C stops findspots, which then cancels its jobs through here
        )
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)  # the session ends before findspots does
        opened = self._read()
        if "error" in opened:
            self.close()
            raise RuntimeError(opened["error"])

    def submit(self, template: dict) -> str:
        """Run a job with these job template attributes; its job id."""
        return self._request({"submit": template})["job"]

    def terminate(self, job_id: str) -> None:
        """Cancel a job; nothing when it has already ended."""
        self._request({"terminate": job_id})

    def close(self) -> None:
        """End the session and the helper process."""
        with self._lock:  # not in the middle of a request
            if self._closed:
                return
            self._closed = True
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()

    def _request(self, request: dict) -> dict:
        with self._lock:
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):  # the process ended, or close() ran
                pass  # _read says which
            answer = self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def _read(self) -> dict:
        line = "" if self._closed else self._proc.stdout.readline()
        if not line:
            return {"error": f"the DRMAA helper process ended (exit status {self._proc.wait()})"}
        return json.loads(line)


if __name__ == "__main__":
    sys.exit(serve())
