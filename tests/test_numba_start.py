"""numba's set-up without its probe of scipy's BLAS (findspots.numba_start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("scipy")

CHECK = """
import sys
from findspots.spotfinder.labelling import load_compiled
load_compiled()
import numba.np.arraymath
print("scipy.linalg" in sys.modules, numba.np.arraymath._HAVE_BLAS)
import scipy.linalg  # the user's own imports of scipy still work
print(scipy.linalg.norm([3.0, 4.0]))
"""


def test_first_compiled_call_skips_the_blas_probe_only() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "5.0"]
