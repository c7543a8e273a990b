"""Grouping files into sequences, and the ImageSequence interface (masks, slicing, frames)."""

from __future__ import annotations

import bz2
import gzip
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from findspots.images import ImageError, ImageSequence, group_images
from findspots.images.cbf import read_start
from findspots.images.cbf_header import BINARY_START
from findspots.images.sweeps import template_and_number


def _copy(files: list[str], tmp_path: Path, edits: dict[int, tuple[bytes, bytes]] | None = None) -> list[str]:
    """Copy files into tmp_path, replacing header bytes in some of them."""
    out = []
    for k, f in enumerate(files):
        dest = tmp_path / Path(f).name
        if edits and k in edits:
            old, new = edits[k]
            data = Path(f).read_bytes()
            assert old in data
            dest.write_bytes(data.replace(old, new, 1))
        else:
            shutil.copyfile(f, dest)
        out.append(str(dest))
    return out


def _ref_mask(npz: Path) -> np.ndarray:
    z = np.load(npz)
    shape = tuple(int(v) for v in z["panel0_shape"])
    return np.unpackbits(z["panel0_valid_packed"])[: shape[0] * shape[1]].reshape(shape).astype(bool)


# ---------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("path", "template", "number"),
    [
        ("/d/p300k_00012.cbf", "/d/p300k_#####.cbf", 12),
        ("/d/thau_3_2_0001.cbf.bz2", "/d/thau_3_2_####.cbf.bz2", 1),
        ("/d/l-cyst_01_00015.cbf.gz", "/d/l-cyst_01_#####.cbf.gz", 15),
        ("/d/x1_2_003.CBF", "/d/x1_2_###.CBF", 3),
        ("/d/image.cbf", "/d/image.cbf", None),
    ],
)
def test_template_and_number(path: str, template: str, number: int | None) -> None:
    assert template_and_number(path) == (template, number)


# ------------------------------------------------------------------------------------------ grouping


def test_p300k_is_one_rotation_sequence(p300k_files: list[str]) -> None:
    (seq,) = group_images(list(reversed(p300k_files)))
    assert isinstance(seq, ImageSequence)
    assert len(seq) == 60
    assert seq.paths == p300k_files
    assert seq.image_numbers == list(range(1, 61))
    assert seq.scan.image_range == (1, 60)
    assert seq.array_range == (0, 60)
    assert seq.scan.oscillation == (0.0, 0.1)
    assert not seq.is_still
    assert seq.template == str(Path(p300k_files[0]).parent / "p300k_#####.cbf")
    assert seq.split_reason is None
    assert [seq.frame(0), seq.frame(59)] == [0, 59]
    assert seq.scan.exposure_times.shape == (60,)
    np.testing.assert_allclose(np.diff(seq.scan.epochs), 0.1, atol=1e-6)


def test_lcysteine_sweep_is_one_sequence(lcyst01_files: list[str]) -> None:
    (seq,) = group_images(lcyst01_files)
    assert len(seq) == 15
    assert seq.scan.image_range == (1, 15)
    assert seq.scan.oscillation == (-145.0, 0.1)
    assert not seq.is_still
    assert seq.template.endswith("l-cyst_01_#####.cbf.bz2")


def test_two_lcysteine_sweeps_are_two_sequences(lcyst01_files: list[str], lcyst02_files: list[str]) -> None:
    seqs = group_images(lcyst02_files + lcyst01_files)
    assert [s.template.rsplit("/", 1)[1] for s in seqs] == [
        "l-cyst_01_#####.cbf.bz2",
        "l-cyst_02_#####.cbf.bz2",
    ]
    assert [len(s) for s in seqs] == [15, 15]
    assert all(s.split_reason is None for s in seqs)  # different templates are not "splits"


def test_thaumatin_grid_is_one_still_sequence(thaumatin_files: list[str]) -> None:
    (seq,) = group_images(thaumatin_files)
    assert len(seq) == 19
    assert seq.is_still
    assert seq.scan.oscillation == (89.9997, 0.0)
    assert seq.scan.image_range == (1, 19)
    assert [seq.frame(i) for i in range(19)] == list(range(19))
    assert seq.template.endswith("thau_3_2_####.cbf.bz2")
    np.testing.assert_allclose(seq.goniometer.rotation_axis, [0.0, 1.0, 0.0])


def test_gap_starts_new_sequence_with_reason(
    p300k_files: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    files = p300k_files[:4] + p300k_files[5:]
    with caplog.at_level(logging.INFO, logger="findspots.images.sweeps"):
        first, second = group_images(files)
    assert (len(first), len(second)) == (4, 55)
    assert first.scan.image_range == (1, 4) and second.scan.image_range == (6, 60)
    assert second.array_range == (5, 60) and second.frame(0) == 5
    assert second.scan.oscillation == pytest.approx((0.5, 0.1))
    assert first.split_reason is None
    assert second.split_reason == "image numbers jump from 4 to 6 (p300k_00006.cbf)"
    assert "image numbers jump from 4 to 6" in caplog.text


def test_start_angle_mismatch_splits(p300k_files: list[str], tmp_path: Path) -> None:
    edit = (b"# Start_angle 0.2000 deg.", b"# Start_angle 0.7000 deg.")
    seqs = group_images(_copy(p300k_files[:4], tmp_path, {2: edit}))
    assert [len(s) for s in seqs] == [2, 1, 1]
    assert seqs[1].scan.oscillation == pytest.approx((0.7, 0.1))
    assert seqs[1].split_reason == "start angle 0.7 does not follow 0.2000 (p300k_00003.cbf)"
    assert seqs[2].split_reason == "start angle 0.3 does not follow 0.8000 (p300k_00004.cbf)"


def test_width_change_splits(p300k_files: list[str], tmp_path: Path) -> None:
    files = _copy(p300k_files[:3], tmp_path, {2: (b"# Angle_increment 0.1000", b"# Angle_increment 0.2000")})
    first, second = group_images(files)
    assert (len(first), len(second)) == (2, 1)
    assert "oscillation width changes from 0.1 to 0.2" in second.split_reason


def test_geometry_change_splits(p300k_files: list[str], tmp_path: Path) -> None:
    edit = (b"# Beam_xy (250.30, 300.70)", b"# Beam_xy (251.30, 300.70)")
    seqs = group_images(_copy(p300k_files[:3], tmp_path, {1: edit}))
    assert [len(s) for s in seqs] == [1, 1, 1]
    assert "detector size or geometry differs (p300k_00002.cbf)" == seqs[1].split_reason
    assert "detector size or geometry differs (p300k_00003.cbf)" == seqs[2].split_reason


def test_bad_file_in_group_names_it(p300k_files: list[str], tmp_path: Path) -> None:
    files = _copy(p300k_files[:3], tmp_path)
    Path(files[1]).write_text("not an image\n")
    with pytest.raises(ImageError, match=r"p300k_00002\.cbf: not a CBF file"):
        group_images(files)


def test_duplicate_paths_are_ignored(p300k_files: list[str]) -> None:
    (seq,) = group_images(p300k_files[:3] + p300k_files[:2])
    assert len(seq) == 3


class _CountingBZ2Decompressor:
    """bz2.BZ2Decompressor, counting the streams opened and the bytes they produced."""

    streams = 0
    produced = 0

    def __init__(self) -> None:
        type(self).streams += 1
        self._stream = _BZ2Decompressor()

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._stream.decompress(data, max_length)
        type(self).produced += len(out)
        return out

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


_BZ2Decompressor = bz2.BZ2Decompressor


def test_grouping_decompresses_only_each_header_once(lcyst01_files: list[str], monkeypatch) -> None:
    """Issue 15: the format check and the header read each decompressed the first bzip2 block."""
    monkeypatch.setattr(bz2, "BZ2Decompressor", _CountingBZ2Decompressor)
    monkeypatch.setattr(_CountingBZ2Decompressor, "streams", 0)
    monkeypatch.setattr(_CountingBZ2Decompressor, "produced", 0)
    (seq,) = group_images(lcyst01_files)
    assert len(seq) == 15
    assert _CountingBZ2Decompressor.streams == 15
    # 8 kB of each header's start (two 4 kB pieces), not the 2.5 MB of a whole image
    assert _CountingBZ2Decompressor.produced == 15 * 8192


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress), ("", bytes)]
)
def test_read_start_is_the_header_of_a_cbf(lcyst01_files, tmp_path, suffix, compress) -> None:
    data = bz2.decompress(Path(lcyst01_files[0]).read_bytes())
    path = tmp_path / f"image.cbf{suffix}"
    path.write_bytes(compress(data))
    start = read_start(str(path))
    assert data.find(BINARY_START) == 6644  # the text before the binary data
    assert 6644 < len(start) <= 65539 and start == data[: len(start)]  # 64 kB at most, of any file


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_compressed_cbf_cut_in_its_header_is_named(lcyst01_files, tmp_path, suffix, compress) -> None:
    data = compress(bz2.decompress(Path(lcyst01_files[0]).read_bytes()))
    path = tmp_path / f"cut.cbf{suffix}"
    path.write_bytes(data[:3000])
    with pytest.raises(
        ImageError, match=rf"cut\.cbf\{suffix}: corrupt or truncated compressed file \(the file"
    ):
        group_images([str(path)])


# ------------------------------------------------------------------------------------ ImageSequence


def test_thaumatin_mask_matches_dials_312(thaumatin_files: list[str], shared_data: Path) -> None:
    ref = _ref_mask(shared_data / "real/dials_3.12_reference/thaumatin_grid/mask_image0.npz")
    (seq,) = group_images(thaumatin_files)
    raw = seq.get_raw(0)
    (mask,) = seq.get_mask(0, raw)
    assert mask.shape == ref.shape == (2527, 2463)
    np.testing.assert_array_equal(mask, ref)
    assert int(mask.sum()) == 5697275
    # The one case where 3.12's exclusive (-1, cutoff) and our inclusive (0, cutoff) differ:
    # raw == Count_cutoff (absent from these images) is valid for us and masked in 3.12.
    hacked = raw[0].copy()
    y, x = 1000, 1000
    assert ref[y, x]
    hacked[y, x] = 115897
    (mask2,) = seq.get_mask(0, [hacked])
    old = seq.static_masks()[0] & (hacked > -1) & (hacked < 115897)
    assert np.argwhere(mask2 != old).tolist() == [[y, x]] and mask2[y, x]


def test_lcysteine_mask_matches_dials_312(lcyst01_files: list[str], shared_data: Path) -> None:
    ref = _ref_mask(shared_data / "real/dials_3.12_reference/l_cysteine_sweep01/mask_image0.npz")
    (seq,) = group_images(lcyst01_files)
    np.testing.assert_array_equal(seq.get_mask(0)[0], ref)


def test_get_raw_and_corrected(p300k_files: list[str]) -> None:
    (seq,) = group_images(p300k_files[:5])
    (raw,) = seq.get_raw(0)
    assert raw.dtype == np.int32 and int(raw.sum(dtype=np.int64)) == 1988888
    (corr,) = seq.get_corrected(0, [raw])
    assert corr.dtype == np.float64
    np.testing.assert_array_equal(corr, raw)
    panel = seq.detector[0]
    panel.gain, panel.pedestal = 2.0, 1.0
    try:
        (corr,) = seq.get_corrected(0, [raw])
        np.testing.assert_allclose(corr, (raw - 1.0) / 2.0)
        panel.gain = 1.0 + 1e-8  # within 1e-7 of 1: gain not applied, pedestal still is
        (corr,) = seq.get_corrected(0, [raw])
        np.testing.assert_array_equal(corr, raw - 1.0)
    finally:
        panel.gain, panel.pedestal = 1.0, 0.0


def test_sub_and_slicing(p300k_files: list[str]) -> None:
    (seq,) = group_images(p300k_files)
    part = seq.sub(10, 20)
    assert len(part) == 10
    assert part.scan.image_range == (11, 20) and part.array_range == (10, 20)
    assert part.frame(0) == 10
    assert part.scan.oscillation == pytest.approx((1.0, 0.1))
    assert part.paths == p300k_files[10:20]
    np.testing.assert_array_equal(part.get_raw(0)[0], seq.get_raw(10)[0])
    assert seq[10:20].paths == part.paths
    with pytest.raises(IndexError):
        seq.sub(5, 5)
    with pytest.raises(IndexError):
        part.get_raw(10)


def test_external_mask_is_anded(p300k_files: list[str]) -> None:
    (plain,) = group_images(p300k_files[:2])
    ext = np.ones((619, 487), dtype=bool)
    ext[0:10, 0:10] = False
    seq = replace(plain, external_mask=[ext])
    (mask,) = seq.get_mask(0)
    assert not mask[0:10, 0:10].any() and plain.get_mask(0)[0][0:10, 0:10].all()
    panel = seq.detector[0]
    np.testing.assert_array_equal(mask, panel.static_mask() & ext & panel.trusted_mask(seq.get_raw(0)[0]))
