"""Finished block results saved beside the output, so a rerun after a crash resumes.

A checkpoint folder ``<output>.findspots-checkpoint/`` holds one ``.npz`` file per finished block,
named by a key that hashes the input files (path, size, modification time), every parameter that
affects results, and the block's image range; a changed input or parameter therefore never reuses
a stale block. A file holds the block's ``BlockResult.to_arrays()`` and the :data:`FORMAT` it was
written in; a file of another format is recomputed, never read. Files are written under a temporary
name and renamed (atomic), read without pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from findspots.spotfinder.blocks import BlockResult

log = logging.getLogger("findspots")

FORMAT = 3  # version of the file layout; raise it when BlockResult.to_arrays() changes incompatibly
_FORMAT_KEY = "checkpoint_format"


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
        """The saved result for ``key``, or None (missing, unreadable or old-format files are recomputed)."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                written = int(z[_FORMAT_KEY]) if _FORMAT_KEY in z.files else 1
                if written != FORMAT:
                    log.info(
                        "Ignoring checkpoint %s (format %d, not %d): recomputing it", path, written, FORMAT
                    )
                    return None
                return BlockResult.from_arrays({k: z[k] for k in z.files if k != _FORMAT_KEY})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # damaged (e.g. a disk filled up): recompute the block

    def save(self, key: str, result: BlockResult) -> None:
        """Store ``result`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp.npz"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **result.to_arrays(), **{_FORMAT_KEY: np.array(FORMAT)})
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the folder after a successful run."""
        shutil.rmtree(self.folder, ignore_errors=True)
