"""How many frames of an NXmx (or Dectris) master can be read whole now, while its data are still being
written (``input.watch`` on a master).

The data grow in two ways, each handled: a writer appends frames to a data dataset under SWMR (the
dataset is read as an SWMR reader and refreshed), and data files linked from the master appear one
after the other. Frames count from the first, in the order the master reads them, up to the first
that is not whole:

- a data file that no writer holds under SWMR counts once it opens and its size did not change since
  the previous look (:func:`findspots.images.complete.is_complete`): a file copied in or still being
  written in place is not read half; a file that HDF5 cannot open yet (truncated) is not there yet;
- a frame counts once every chunk holding it is written: a frame of the dataset's extent whose chunk
  is not yet written would read as the fill value;
- the next data file is looked at only once a file is whole and no writer holds it.

A master whose frames are a virtual dataset (mapping the data files' frames) is refused: its extent is
that of the whole sweep from the start, and the frames of files not yet written would read as fill values.
"""

from __future__ import annotations

from findspots.errors import NotYetSupported
from findspots.images.complete import CompleteFiles
from findspots.images.nexus import data_links
from findspots.images.swmr import open_hdf5


def written_frames(ds, start: int) -> int:
    """Frames of the 3D dataset ``ds`` whose chunks are all written, counting on from ``start`` frames
    known to be; a dataset that is not chunked is written whole."""
    if ds.chunks is None:
        return ds.shape[0]
    per_chunk, rows, cols = ds.chunks
    corners = [(y, x) for y in range(0, ds.shape[1], rows) for x in range(0, ds.shape[2], cols)]
    k = start
    while k < ds.shape[0] and all(
        ds.id.get_chunk_info_by_coord((k - k % per_chunk, y, x)).byte_offset is not None for y, x in corners
    ):
        k += 1
    return k


class GrowingMaster:
    """The frames of the master ``path`` readable now, looked at again and again (:meth:`frames`)."""

    def __init__(self, path: str):
        self.path = path
        self._whole: list[int] = []  # frames of each data member known to be whole, in order
        self._partial = 0  # frames known to be whole in the member after those
        self._complete = CompleteFiles()  # an HDF5 file no writer holds: whole once its size holds

    def frames(self) -> int:
        """Frames readable whole now, from the first (never fewer than at the previous look)."""
        links = self._links()
        for link in links[len(self._whole) :]:
            if link is None:
                break
            count, whole = self._look(*link)
            if not whole:
                self._partial = count
                break
            self._whole.append(count)
            self._partial = 0
        return sum(self._whole) + self._partial

    def _links(self) -> list[tuple[str, str] | None]:
        try:
            with open_hdf5(self.path) as master:
                if not master.swmr_mode and not self._complete(self.path):
                    return []
                return data_links(master)
        except (OSError, KeyError):  # a master not there yet, or still being written
            return []

    def _look(self, file: str, dataset: str) -> tuple[int, bool]:
        """(frames of ``dataset`` in ``file`` whole now, whether the member is whole and done)."""
        try:
            with open_hdf5(file) as fh:
                if not fh.swmr_mode and not self._complete(file):
                    return self._partial, False
                ds = fh[dataset]
                if ds.is_virtual:  # its frames' files are not looked at: it would read fill values
                    raise NotYetSupported(
                        f"input.watch=True on {self.path}, whose frames are a virtual dataset,"
                    )
                if fh.swmr_mode:
                    ds.refresh()
                count = written_frames(ds, self._partial)
                return count, not fh.swmr_mode and count == ds.shape[0]
        except (OSError, KeyError):  # not there yet, or not readable yet
            return self._partial, False
