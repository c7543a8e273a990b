"""Progress of images processed: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import functools
import logging
import sys
import time

log = logging.getLogger("findspots")


@functools.cache
def _bar_class() -> type:
    """tqdm without its monitor thread: local workers are forked while a bar is shown, and forking
    a process that has other threads risks the child inheriting a held lock."""
    from tqdm import tqdm

    return type("Bar", (tqdm,), {"monitor_interval": 0})


class Progress:
    """Counts processed images out of ``total``."""

    def __init__(self, total: int, label: str = "images", interval: float = 30.0):
        self.total = total
        self.done = 0
        self.interval = interval
        self._last_log = time.monotonic()
        self._bar = None
        if sys.stderr.isatty() and total > 1:
            self._bar = _bar_class()(total=total, unit="img", desc=label, leave=False, file=sys.stderr)

    def update(self, n: int) -> None:
        """Record ``n`` more images done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.done < self.total and now - self._last_log >= self.interval:
            self._last_log = now
            log.info("Processed %d of %d images", self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
