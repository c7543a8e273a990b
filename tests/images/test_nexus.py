"""HDF5 input: NXmx masters with linked, chunked, compressed data files; bare Eiger data files."""

from __future__ import annotations

import logging
import pickle
import shutil
import subprocess
from pathlib import Path

import h5py
import hdf5plugin
import msgpack
import numpy as np
import pytest

from findspots.app.cli import run
from findspots.images import ImageError, group_images
from findspots.images.expt import read_experiments
from findspots.images.inputs import load_inputs
from findspots.images.nexus import NexusReader, nexus_sequence, to_dxtbx_values
from images.bslz4 import decode_bslz4
from images.nxmx_writer import Geometry, write_data_file, write_master, write_sweep

EIGER2 = "real/single_images/eiger2_16m_4mroi_stream_5291452"
DIALS = shutil.which("dials.import") is not None


def _synthetic(n: int = 6, shape: tuple[int, int] = (40, 50), seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = rng.poisson(2.0, (n, *shape)).astype(np.uint16)
    frames[:, 10:12, 20:22] += np.arange(n, dtype=np.uint16)[:, None, None] * 50 + 100
    return frames


def _run(tmp_path: Path, name: str, inputs: list[str], *extra: str) -> bytes:
    out = tmp_path / f"{name}.refl"
    argv = [*inputs, *extra, f"output.reflections={out}"]
    argv += [
        f"output.log={tmp_path / name}.log",
        f"output.debug_log={tmp_path / name}.debug.log",
        "output.report=None",
    ]
    assert run(argv) == 0
    return out.read_bytes()


# ---------------------------------------------------------------------------------- real Eiger2 frame


def test_eiger2_frame_equals_stream_decode(shared_data: Path, caplog) -> None:
    """The HDF5 (bitshuffle-LZ4 chunk) read equals an independent decode of the 0MQ stream packet."""
    folder = shared_data / EIGER2
    packet = msgpack.unpackb((folder / "image000044").read_bytes())
    stream = decode_bslz4(packet[2], np.uint16).reshape(2162, 2068)
    with caplog.at_level(logging.WARNING, logger="findspots"):
        seq = nexus_sequence(str(folder / "eiger2_stream_frame44_bslz4_data_000001.h5"))
    assert "without its master" in caplog.text and "images read as stills" in caplog.text
    frame = seq.reader.frame(0)
    assert frame.dtype == np.uint16 and frame.shape == (2162, 2068)
    np.testing.assert_array_equal(frame, stream)
    assert int((stream == 65535).sum()) == 260886  # masked pixels (5.8%)
    (raw,) = seq.get_raw(0)
    assert raw.dtype == np.int32 and int((raw == -1).sum()) == 260886  # dxtbx's marker for 2^16 - 1
    assert seq.image_numbers == [44] and seq.is_still and seq.goniometer is None
    panel = seq.detector[0]
    assert panel.trusted_range == (0.0, 18533.0)  # countrate_correction_count_cutoff
    assert panel.pixel_size == pytest.approx((0.075, 0.075))
    np.testing.assert_allclose(panel.origin, (-1041.247003856041 * 0.075, 1115.7474063453324 * 0.075, -337.0))
    assert seq.beam.wavelength == pytest.approx(0.9762458012141636)
    assert not seq.get_mask(0)[0][raw == -1].any()


# ------------------------------------------------------------------------------------ NXmx sweeps


@pytest.fixture(scope="module")
def p300k_nxmx(tmp_path_factory, p300k_files: list[str]) -> Path:
    """The 60 p300k CBF frames as an NXmx master + 3 bitshuffle-LZ4 data files (chunks of 4 frames)."""
    (seq,) = group_images(p300k_files)
    frames = np.stack([seq.get_raw(i)[0] for i in range(len(seq))])
    panel = seq.detector[0]
    mask = np.zeros(panel.shape, np.uint32)
    for x0, y0, x1, y1 in panel.mask_rects:
        mask[y0:y1, x0:x1] = 1  # bit 0: gap
    g = Geometry(origin=tuple(panel.origin), pixel_mask=mask, start=0.0, width=0.1)
    folder = tmp_path_factory.mktemp("nxmx")
    return write_sweep(folder, "p300k", frames, g, per_file=25, chunk_frames=4)


def test_nxmx_sweep_reads_like_cbf(p300k_nxmx: Path, p300k_files: list[str]) -> None:
    (cbf,) = group_images(p300k_files)
    seq = nexus_sequence(str(p300k_nxmx))
    assert len(seq) == 60 and seq.scan.image_range == (1, 60) and seq.scan.oscillation == (0.0, 0.1)
    assert [s.count for s in seq.reader.sources] == [25, 25, 10]
    p, q = seq.detector[0], cbf.detector[0]
    np.testing.assert_allclose(p.origin, q.origin, atol=1e-9)
    np.testing.assert_allclose(p.fast_axis, q.fast_axis)
    np.testing.assert_allclose(p.slow_axis, q.slow_axis)
    assert p.trusted_range == q.trusted_range and p.thickness == pytest.approx(0.45)
    np.testing.assert_allclose(seq.goniometer.rotation_axis, (1.0, 0.0, 0.0))
    for i in (0, 3, 4, 24, 25, 59):
        np.testing.assert_array_equal(seq.get_raw(i)[0], cbf.get_raw(i)[0])
        np.testing.assert_array_equal(seq.get_mask(i)[0], cbf.get_mask(i)[0])  # pixel_mask == panel gaps


def test_nxmx_sweep_spots_byte_identical_to_cbf(
    tmp_path: Path, p300k_nxmx: Path, p300k_files: list[str]
) -> None:
    from_cbf = _run(tmp_path, "cbf", p300k_files)
    assert _run(tmp_path, "h5", [str(p300k_nxmx)]) == from_cbf
    # a glob naming the master and its data files reads the sweep once
    assert _run(tmp_path, "glob", [str(p300k_nxmx.parent / "p300k_*.h5")]) == from_cbf
    ranged = _run(tmp_path, "cbf_r", p300k_files, "scan_range=11,30")
    assert _run(tmp_path, "h5_r", [str(p300k_nxmx)], "scan_range=11,30") == ranged


def test_chunk_read_once_for_consecutive_frames(p300k_nxmx: Path, monkeypatch) -> None:
    seq = nexus_sequence(str(p300k_nxmx))
    reader = seq.reader
    first = reader.frame(4)
    assert reader._block[:2] == (4, 8)  # chunk of frames 4..7 decoded once
    monkeypatch.setattr(NexusReader, "_dataset", lambda self, src: pytest.fail("chunk decoded again"))
    for i in (5, 6, 7):
        assert reader.frame(i).shape == first.shape
    monkeypatch.undo()
    reader.frame(8)
    assert reader._block[:2] == (8, 12)
    reader.frame(24)  # last frame of the first file: the chunk is cut at the file end
    assert reader._block[:2] == (24, 25)


def test_reader_is_picklable_and_reopens_lazily(p300k_nxmx: Path) -> None:
    seq = nexus_sequence(str(p300k_nxmx))
    expected = seq.get_raw(30)[0]
    assert seq.reader._files  # open in this process
    clone = pickle.loads(pickle.dumps(seq))
    assert clone.reader._files == {} and clone.reader._block is None
    np.testing.assert_array_equal(clone.get_raw(30)[0], expected)


def test_pixel_mask_bits_and_gzip(tmp_path: Path) -> None:
    frames = _synthetic()
    mask = np.zeros(frames.shape[1:], np.uint32)
    mask[0, :] = 1  # gap
    mask[5, 7] = 8  # over-responding
    mask[6, 8] = 1 << 31  # virtual pixel: dxtbx masks any nonzero value
    master = write_sweep(
        tmp_path, "g", frames, Geometry(pixel_mask=mask, trusted=(0, 60000)), compression="gzip"
    )
    seq = nexus_sequence(str(master))
    (m,) = seq.get_mask(0)
    assert not m[0].any() and not m[5, 7] and not m[6, 8] and m[1:, :].sum() == m.size - 50 - 2
    np.testing.assert_array_equal(seq.reader.frame(3), frames[3])


def test_virtual_dataset_master(tmp_path: Path) -> None:
    """A DLS-style master whose /entry/data/data is a virtual dataset over two data files."""
    frames = _synthetic(8)
    write_data_file(tmp_path / "v_000001.h5", frames[:5], "bslz4", 2)
    write_data_file(tmp_path / "v_000002.h5", frames[5:], "bslz4", 2)
    write_master(tmp_path / "v_master.h5", [], 8, frames.shape[1:], Geometry())
    layout = h5py.VirtualLayout(shape=frames.shape, dtype=frames.dtype)
    layout[:5] = h5py.VirtualSource("v_000001.h5", "/entry/data/data", shape=(5, *frames.shape[1:]))
    layout[5:] = h5py.VirtualSource("v_000002.h5", "/entry/data/data", shape=(3, *frames.shape[1:]))
    with h5py.File(tmp_path / "v_master.h5", "a") as fh:
        fh["entry/data"].create_virtual_dataset("data", layout)
    seq = nexus_sequence(str(tmp_path / "v_master.h5"))
    assert [(Path(s.file).name, s.count) for s in seq.reader.sources] == [
        ("v_000001.h5", 5),
        ("v_000002.h5", 3),
    ]
    for i in range(8):
        np.testing.assert_array_equal(seq.reader.frame(i), frames[i])


def test_two_module_detector(tmp_path: Path) -> None:
    frames = _synthetic(3, (30, 40))
    master = write_sweep(tmp_path, "m", frames, Geometry())
    with h5py.File(master, "a") as fh:
        det = fh["entry/instrument/detector"]
        det.move("module", "module_a")
        det.copy("module_a", "module_b")
        for name, origin, size in (("module_a", (0, 0), (30, 18)), ("module_b", (0, 22), (30, 18))):
            del det[f"{name}/data_origin"], det[f"{name}/data_size"]
            det[f"{name}/data_origin"] = np.array(origin)
            det[f"{name}/data_size"] = np.array(size)
            for axis in ("fast_pixel_direction", "slow_pixel_direction"):
                det[f"{name}/{axis}"].attrs["depends_on"] = f"/entry/instrument/detector/{name}/module_offset"
    seq = nexus_sequence(str(master))
    assert len(seq.detector) == 2 and [p.image_size for p in seq.detector] == [(18, 30), (18, 30)]
    a, b = seq.get_raw(1)
    np.testing.assert_array_equal(a, frames[1][:, :18])
    np.testing.assert_array_equal(b, frames[1][:, 22:40])


def test_bit_depth_markers() -> None:
    data = np.array([[0, 5, 65534, 65535]], np.uint16)
    np.testing.assert_array_equal(to_dxtbx_values(data, 16), [[0, 5, -2, -1]])
    np.testing.assert_array_equal(to_dxtbx_values(data, None), [[0, 5, 65534, 65535]])
    big = np.array([[2**31 - 1, 2**31 - 2, 7]], np.uint32)
    np.testing.assert_array_equal(to_dxtbx_values(big, 32), [[-1, -2, 7]])


def test_still_master_and_missing_data(tmp_path: Path, caplog) -> None:
    frames = _synthetic(4)
    master = write_sweep(tmp_path, "s", frames, Geometry(width=0.0), per_file=2)
    seq = nexus_sequence(str(master))
    assert seq.is_still and len(seq) == 4
    (tmp_path / "s_data_000002.h5").unlink()
    with caplog.at_level(logging.WARNING, logger="findspots"):
        seq = nexus_sequence(str(master))
    assert len(seq) == 2 and "data_000002 not found" in caplog.text
    (tmp_path / "s_data_000001.h5").unlink()
    with pytest.raises(ImageError, match="no image data"):
        nexus_sequence(str(master))


def test_not_nexus_hdf5_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["a"] = np.zeros(3)
    with pytest.raises(ImageError, match="x.h5: HDF5 file is neither"):
        load_inputs([str(tmp_path / "x.h5")])


# ----------------------------------------------------------------------- against dials.import 3.12


@pytest.mark.skipif(not DIALS, reason="DIALS (dials.import) not installed")
def test_geometry_and_indices_match_dials_import(tmp_path: Path) -> None:
    """dials.import of our NXmx master gives our models; its .expt (single_file_indices) reads back."""
    frames = _synthetic(6)
    g = Geometry(origin=(-3.1, 4.2, -120.0), start=10.0, width=0.5, wavelength=1.2, trusted=(0, 40000))
    master = write_sweep(tmp_path, "d", frames, g, per_file=6, compression="gzip")
    env_cmd = ["dials.import", str(master), "output.experiments=imported.expt", "output.log=import.log"]
    subprocess.run(env_cmd, cwd=tmp_path, check=True, capture_output=True)
    (from_expt,) = read_experiments(str(tmp_path / "imported.expt"))
    direct = nexus_sequence(str(master))
    p, q = from_expt.detector[0], direct.detector[0]
    for a, b in ((p.origin, q.origin), (p.fast_axis, q.fast_axis), (p.slow_axis, q.slow_axis)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert p.trusted_range == q.trusted_range == (0.0, 40000.0)  # 3.12 wrote (-1, 40000)
    assert from_expt.scan.oscillation == pytest.approx(direct.scan.oscillation) == (10.0, 0.5)
    assert from_expt.beam.wavelength == pytest.approx(1.2)
    np.testing.assert_allclose(from_expt.goniometer.rotation_axis, direct.goniometer.rotation_axis)
    for i in range(6):
        np.testing.assert_array_equal(from_expt.get_raw(i)[0], direct.get_raw(i)[0])


def test_hdf5plugin_is_the_filter_source() -> None:
    assert hdf5plugin.PLUGIN_PATH  # bitshuffle/LZ4 come from hdf5plugin, registered on first read
