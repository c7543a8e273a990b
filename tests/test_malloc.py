"""The malloc tuning that keeps image-sized buffers for reuse."""

import platform
import subprocess
import sys

import pytest

from findspots.app.malloc import reuse_freed_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_image_sized_buffers_are_reused_after_the_tuning():
    """An image's worth of arrays (24 MB of counts, six 6.4 MB masks), freed and allocated again
    forty times, is faulted in about once, not forty times."""
    code = """
import resource, sys
import numpy as np
from findspots.app.malloc import reuse_freed_buffers
if sys.argv[1] == "tuned":
    assert reuse_freed_buffers()
np.ones(1).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    counts = np.ones(3_000_000)
    masks = [np.ones(800_000) for _ in range(6)]
    del counts, masks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
            ).stdout
        )
        for mode in ("default", "tuned")
    }
    pages = 62_400_000 // 4096
    assert faults["default"] > 5 * pages  # glibc gives such blocks back to the kernel, again and again
    assert faults["tuned"] < 2 * pages


def test_tuning_is_harmless_to_call_twice():
    assert reuse_freed_buffers() == reuse_freed_buffers()
