"""Finished block results saved beside the output, so a rerun after a crash resumes.

A checkpoint folder ``<output>.findspots-checkpoint/`` holds one ``.npz`` file per finished block,
named by a key that hashes the input files (path, size, modification time), every parameter that
affects results, and the block's image range; a changed input or parameter therefore never reuses
a stale block. Files are written under a temporary name and renamed (atomic), read without pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from findspots.spotfinder.blocks import BlockResult, PanelResult
from findspots.spotfinder.spots import Components
from findspots.spotfinder.strong import ImageStrong


def run_key(paths: list[str], settings: object, version: str) -> str:
    """Hash of the inputs and the result-affecting settings (any JSON-able object)."""
    h = hashlib.sha256(version.encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


class Checkpoints:
    """Block results of one run, stored in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> BlockResult | None:
        """The saved result for ``key``, or None (missing or unreadable files are recomputed)."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return _unpack(z)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # damaged (e.g. a disk filled up): recompute the block

    def save(self, key: str, result: BlockResult) -> None:
        """Store ``result`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp.npz"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **_pack(result))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the folder after a successful run."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _pack(result: BlockResult) -> dict[str, np.ndarray]:
    arrays = {
        "frames": np.array([im.frame for im in result.images], np.int64),
        "counts": np.array([im.count for im in result.images], np.int64),
        "background": np.array(
            [np.nan if im.mean_background is None else im.mean_background for im in result.images]
        ),
        "npanels": np.array(len(result.panels)),
    }
    for p, panel in enumerate(result.panels):
        for kind in ("interior", "edges"):
            comps = getattr(panel, kind)
            arrays[f"{p}.{kind}.keys"] = comps.keys
            arrays[f"{p}.{kind}.values"] = comps.values
            arrays[f"{p}.{kind}.start"] = comps.start
        arrays[f"{p}.removed"] = np.array([panel.n_small, panel.n_large], np.int64)
        arrays[f"{p}.hot"] = result.hot[p]
    return arrays


def _unpack(z) -> BlockResult:
    images = [
        ImageStrong(int(f), int(c), mean_background=None if np.isnan(b) else float(b))
        for f, c, b in zip(z["frames"], z["counts"], z["background"], strict=True)
    ]
    panels, hot = [], []
    for p in range(int(z["npanels"])):
        hot.append(z[f"{p}.hot"])
        comps = {
            kind: Components(z[f"{p}.{kind}.keys"], z[f"{p}.{kind}.values"], z[f"{p}.{kind}.start"])
            for kind in ("interior", "edges")
        }
        small, large = (int(v) for v in z[f"{p}.removed"])
        panels.append(PanelResult(comps["interior"], comps["edges"], small, large))
    return BlockResult(images, panels, hot)
