"""A faster first compiled call: numba's one-time set-up without its probe of scipy's BLAS.

The first compiled function a process runs or loads from the cache sets numba's CPU target up, and
that imports ``numba.np.arraymath``, which probes for a BLAS (for ``np.dot`` and ``np.linalg`` in
compiled code) by importing ``scipy.linalg.cython_blas`` where scipy is installed: 0.1 s on a quiet
core, 0.2-0.4 s on a busy one, in every findspots process and worker. No findspots kernel uses BLAS,
so that one import, made from numba's probe, is refused; numba then records that it has no BLAS, as
it does where scipy is absent. Other imports of scipy, and scipy imported before, are untouched.
"""

from __future__ import annotations

import importlib.abc
import sys

_PROBE = ("numba.np.linalg", "ensure_blas")  # (module, function) that imports scipy for the probe


class _RefuseBlasProbe(importlib.abc.MetaPathFinder):
    """Refuses importing scipy (or a part not yet imported) from inside numba's BLAS probe."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] != "scipy":
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if (frame.f_globals.get("__name__"), frame.f_code.co_name) == _PROBE:
                raise ImportError(f"{fullname}: not imported for numba's BLAS probe (findspots uses no BLAS)")
            frame = frame.f_back
        return None


def skip_blas_probe() -> None:
    """Refuse numba's BLAS probe in this process (and the processes forked from it), once."""
    if "numba.np.arraymath" in sys.modules or any(isinstance(f, _RefuseBlasProbe) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RefuseBlasProbe())
