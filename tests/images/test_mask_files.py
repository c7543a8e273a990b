"""The one mask-file reader (``images.mask_files``) and its two users: lookup.mask and an imageset's mask."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.images import ImageError
from findspots.images.expt import read_experiments
from findspots.images.mask_files import MaskFileError, read_mask_file
from findspots.images.models import Detector, Panel
from findspots.spotfinder.masks import load_lookup_mask

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
LCYST = REPO / "data" / "l_cysteine"


def panel(nfast: int = 5, nslow: int = 4, raw_offset: tuple[int, int] = (0, 0)) -> Panel:
    return Panel(
        image_size=(nfast, nslow),
        pixel_size=(1.0, 1.0),
        trusted_range=(0, 100),
        origin=(0.0, 0.0, -100.0),
        fast_axis=(1, 0, 0),
        slow_axis=(0, -1, 0),
        raw_offset=raw_offset,
    )


ONE = Detector([panel()])
TWO = Detector([panel(), panel(raw_offset=(0, 6))])  # rows 0-3 and 6-9 of a 10 x 5 image


def bad_at(*pixels: tuple[int, int], shape: tuple[int, int] = (4, 5)) -> np.ndarray:
    """A good-pixel mask with the given (row, column) pixels bad."""
    good = np.ones(shape, bool)
    for p in pixels:
        good[p] = False
    return good


def read(path: Path, detector: Detector = ONE) -> list[np.ndarray]:
    return read_mask_file(path, detector, f"test={path.name}")


# ------------------------------------------------------------------------------------------ formats


def test_npy_2d_3d_and_image_sized(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", bad_at((1, 2)))
    (m,) = read(tmp_path / "a.npy")
    assert m.dtype == bool and [tuple(p) for p in np.argwhere(~m)] == [(1, 2)]
    np.save(tmp_path / "b.npy", np.stack([bad_at((0, 0)), bad_at((3, 4))]).astype(np.int16) * 9)
    a, b = read(tmp_path / "b.npy", TWO)
    assert (~a).sum() == 1 and not a[0, 0] and (~b).sum() == 1 and not b[3, 4]
    image = np.ones((10, 5), np.uint8)
    image[7, 1] = 0  # row 1 of the second panel; rows 4-5 are the gap between the panels
    image[4:6] = 0
    np.save(tmp_path / "c.npy", image)
    a, b = read(tmp_path / "c.npy", TWO)
    assert a.all() and [tuple(p) for p in np.argwhere(~b)] == [(1, 1)]


def test_hdf5_rules_in_order(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "root.h5", "w") as fh:  # /mask wins over anything else
        fh["mask"] = bad_at((2, 2))
        fh["mask_0"] = bad_at((0, 0))
    assert not read(tmp_path / "root.h5")[0][2, 2]
    with h5py.File(tmp_path / "per_panel.h5", "w") as fh:  # mask_N per panel, numeric order
        for k in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9):
            fh[f"mask_{k}"] = bad_at((k % 4, 0))
    eleven = Detector([panel() for _ in range(11)])
    assert [int(np.argwhere(~m)[0][0]) for m in read(tmp_path / "per_panel.h5", eleven)] == [
        k % 4 for k in range(11)
    ]
    with h5py.File(tmp_path / "nexus.nxs", "w") as fh:  # NeXus pixel_mask: 0 = good, set bits = bad
        fh["entry/instrument/detector/pixel_mask"] = np.where(bad_at((3, 1)), 0, 8).astype(np.uint32)
        fh["entry/data/other"] = np.zeros((4, 5), np.int32)
    assert [tuple(p) for p in np.argwhere(~read(tmp_path / "nexus.nxs")[0])] == [(3, 1)]
    with h5py.File(tmp_path / "only.h5", "w") as fh:  # the only 2D/3D integer dataset
        fh["x/y"] = bad_at((0, 4)).astype(np.uint8)
        fh["x/scalar"] = 1
    assert [tuple(p) for p in np.argwhere(~read(tmp_path / "only.h5")[0])] == [(0, 4)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.npy", None, r"test=absent.npy: no such file"),
        ("float.npy", np.ones((4, 5)), r"test=float.npy: mask data must be boolean or integer, not float64"),
        (
            "wide.npy",
            np.ones((4, 6), bool),
            r"panel 0 mask is \(4, 6\) \(rows, columns\), the panel is \(4, 5\)",
        ),
        ("three.npy", np.ones((3, 4, 5), bool), r"holds 3 panel masks, the detector has 1"),
        ("flat.npy", np.ones(20, bool), r"mask must be 2D \(one panel\) or 3D \(panels\), not 1D"),
        ("notes.msk", b"hello", r"test=notes.msk: not a .npy or HDF5/NeXus mask file"),
    ],
)
def test_errors_name_the_file(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    with pytest.raises(MaskFileError, match=message):
        read(path)


def test_ambiguous_hdf5_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "two.h5", "w") as fh:
        fh["a"] = bad_at()
        fh["b"] = bad_at()
    with pytest.raises(MaskFileError, match=r"several possible mask datasets \(a, b\); keep one or name it"):
        read(tmp_path / "two.h5")
    with h5py.File(tmp_path / "pm.h5", "w") as fh:
        fh["p/pixel_mask"] = np.zeros((4, 5), np.uint32)
        fh["q/pixel_mask"] = np.zeros((4, 5), np.uint32)
    with pytest.raises(MaskFileError, match=r"several pixel_mask datasets \(p/pixel_mask, q/pixel_mask\)"):
        read(tmp_path / "pm.h5")
    with h5py.File(tmp_path / "none.h5", "w") as fh:
        fh["f"] = np.ones((4, 5))
    with pytest.raises(MaskFileError, match="no /mask, pixel_mask or 2D/3D boolean or integer dataset"):
        read(tmp_path / "none.h5")


class _Trap:
    """Unpickling this would create a file: the reader must never unpickle."""

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("name", ["mask.pickle", "mask.dat"])
def test_pickles_are_refused_unread_with_a_conversion_hint(tmp_path: Path, name: str) -> None:
    trap = _Trap()
    trap.path = str(tmp_path / "unpickled")
    (tmp_path / name).write_bytes(pickle.dumps(trap))  # starts with 0x80, whatever the name
    with pytest.raises(MaskFileError) as err:
        read(tmp_path / name)
    message = str(err.value)
    assert message.startswith(f"test={name}: DIALS mask pickles are not read (unpickling can run code)")
    assert "dials.python -c" in message and "numpy.save('mask.npy'" in message and "\n" not in message
    assert not (tmp_path / "unpickled").exists()


# ------------------------------------------------------------------------------------------ both users


def test_lookup_mask_and_imageset_mask_read_alike(tmp_path: Path) -> None:
    """Both users read the same formats and refuse the same files, each with its own error type."""
    pixel_mask = np.zeros((1679, 1475), np.uint32)
    pixel_mask[100:200, 300:400] = 16  # NeXus: set bits are bad (an imageset mask could not be NeXus before)
    with h5py.File(tmp_path / "mask.nxs", "w") as fh:
        fh["entry/instrument/detector/pixel_mask"] = pixel_mask
    d = json.loads((DATA / "lcyst01_imported.expt").read_text())
    d["imageset"][0]["template"] = str(LCYST / "l-cyst_01_#####.cbf.bz2")
    d["imageset"][0]["mask"] = "mask.nxs"
    (tmp_path / "m.expt").write_text(json.dumps(d))
    (seq,) = read_experiments(str(tmp_path / "m.expt"))
    (lookup,) = load_lookup_mask(tmp_path / "mask.nxs", seq.detector)
    np.testing.assert_array_equal(seq.external_mask[0], lookup)
    assert (~lookup).sum() == 100 * 100 and not lookup[100:200, 300:400].any()

    np.save(tmp_path / "float.npy", np.ones((1679, 1475)))  # the imageset reader accepted floats before
    d["imageset"][0]["mask"] = "float.npy"
    (tmp_path / "f.expt").write_text(json.dumps(d))
    with pytest.raises(ImageError, match=r"float.npy: mask data must be boolean or integer, not float64"):
        read_experiments(str(tmp_path / "f.expt"))
    with pytest.raises(
        ParameterError, match=r"lookup.mask=.*float.npy: mask data must be boolean or integer"
    ):
        load_lookup_mask(tmp_path / "float.npy", seq.detector)

    np.save(tmp_path / "small.npy", np.ones((10, 10), bool))  # nor was the shape checked
    d["imageset"][0]["mask"] = "small.npy"
    (tmp_path / "s.expt").write_text(json.dumps(d))
    with pytest.raises(ImageError, match=r"small.npy: panel 0 mask is \(10, 10\).*\(1679, 1475\)"):
        read_experiments(str(tmp_path / "s.expt"))
