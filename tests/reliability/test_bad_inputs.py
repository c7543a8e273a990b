"""Every bad input gives one clear line: exit code != 0, the culprit (file, image number or parameter)
and what to do on stderr, no traceback, and no output file left behind.

Each case runs ``python -m findspots.app.cli`` as a user would, on real L-cysteine images (bundled data),
three of them, the second one damaged unless said otherwise.
"""

from __future__ import annotations

import bz2
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from findspots.images.byte_offset import decode_byte_offset
from reliability.cbftools import (
    L_CYST,
    binary_of,
    encode_byte_offset,
    findspots,
    leftovers,
    real_cbf,
    with_binary,
)

SHAPE = (1679, 1475)  # (slow, fast) of the Pilatus 2M images
DAMAGED = "copy the file again from its source, or leave it out of the command"


@pytest.fixture(scope="module")
def originals() -> list[bytes]:
    return [real_cbf(k) for k in (1, 2, 3)]


def write_images(folder: Path, images: list[bytes], suffix: str = ".cbf") -> list[Path]:
    paths = []
    for k, data in enumerate(images, start=1):
        path = folder / f"img_{k:05d}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def run_bad(tmp_path: Path, args: list, *extra: str):
    """Run in tmp_path with the default output names there (strong.pickle is the default output)."""
    return findspots([*args, "output.reflections=out.refl", *extra], tmp_path)


def assert_clean_failure(result, cwd: Path, culprit: str, advice: str, code: int | None = None) -> str:
    """One ``findspots: error:`` line naming the culprit and what to do; no traceback; nothing left."""
    assert result.returncode != 0, result.stdout[-2000:]
    if code is not None:
        assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("findspots: error: "), line
    assert culprit in line, line
    assert advice in line, line
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert leftovers(cwd) == [], leftovers(cwd)
    assert not list(cwd.glob("*.partial")), "a log was left under its temporary name"
    return line


# ------------------------------------------------------------------------------------ damaged images


def _truncated(images):
    images[1] = images[1][: len(images[1]) // 2]
    return images


def _header_only(images):
    images[1] = images[1][:3000]
    return images


def _short_stream(images):
    # 3000 bytes of pixel data (about 3000 pixels) replaced by 1000 two-byte deltas of the same length,
    # checksum dropped (as many writers never write one): only the decoder can notice.
    stream = binary_of(images[1])
    images[1] = with_binary(images[1], stream[:500000] + b"\x80\x00\x00" * 1000 + stream[503000:], md5=False)
    return images


def _cut_escape(images):
    # the last pixel jumps by 100000 (a 4-byte escape), cut off after its first 3 bytes
    values = decode_byte_offset(binary_of(images[1]), SHAPE[0] * SHAPE[1], np.int32).astype(np.int64)
    values[-1] += 100000
    images[1] = with_binary(images[1], encode_byte_offset(values)[:-4], md5=False)
    return images


def _out_of_range(images):
    # an 8-byte escape that takes a signed 32-bit pixel to 2**40
    stream = binary_of(images[1])
    escape = b"\x80\x00\x80\x00\x00\x00\x80" + (2**40).to_bytes(8, "little", signed=True)
    images[1] = with_binary(images[1], escape + stream[1:], md5=False)
    return images


def _checksum(images):
    data = bytearray(images[1])
    data[-5000] ^= 0x55  # inside the pixel data, which carries a Content-MD5
    images[1] = bytes(data)
    return images


def _not_an_image(images):
    images[1] = b"Experiment notes: crystal 2 looked cracked.\n" * 40
    return images


def _empty(images):
    images[1] = b""
    return images


def _cbf_without_data(images):
    images[1] = images[1][: images[1].index(b"_array_data.data")]
    return images


DAMAGED_IMAGES = {
    "truncated image": (_truncated, "truncated CBF"),
    "truncated header": (_header_only, "no binary data section"),
    "byte-offset data ends early": (_short_stream, "(the byte-offset data ends early)"),
    "byte-offset escape cut short": (_cut_escape, "cut short inside pixel"),
    "byte-offset value out of range": (_out_of_range, "leaves the int32 range"),
    "checksum mismatch": (_checksum, "does not match its Content-MD5"),
    "CBF without pixel data": (_cbf_without_data, "no binary data section"),
}
EXTRA_ARGS = {"checksum mismatch": ("input.verify_md5=True",)}  # Content-MD5 is checked only on request


@pytest.mark.parametrize("case", DAMAGED_IMAGES)
def test_damaged_image_is_named(tmp_path, originals, case):
    damage, what = DAMAGED_IMAGES[case]
    images = write_images(tmp_path, damage(list(originals)))
    result = run_bad(tmp_path, images, *EXTRA_ARGS.get(case, ()))
    line = assert_clean_failure(result, tmp_path, "img_00002.cbf", DAMAGED, code=1)
    assert what in line


def test_wrong_checksum_of_intact_data_is_read_by_default(tmp_path, originals):
    # as in DIALS, the Content-MD5 line is not checked unless input.verify_md5=True
    images = list(originals)
    images[1] = re.sub(rb"Content-MD5:[^\r\n]*", b"Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==", images[1], count=1)
    assert images[1] != originals[1]
    result = findspots([*write_images(tmp_path, images), "output.reflections=out.refl"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.refl").exists()


def test_absurd_image_size(tmp_path, originals):
    # every header claims 100000 x 100000 pixels: an error, not a 40 GB allocation
    images = [with_binary(c, binary_of(c), shape=(100000, 100000), md5=False) for c in originals]
    result = run_bad(tmp_path, write_images(tmp_path, images))
    line = assert_clean_failure(result, tmp_path, "img_00001.cbf", DAMAGED, code=1)
    assert "cannot hold 100000 x 100000 pixels" in line


@pytest.mark.parametrize("case", ["not an image", "empty file"])
def test_file_that_is_not_an_image(tmp_path, originals, case):
    damage = {"not an image": _not_an_image, "empty file": _empty}[case]
    images = write_images(tmp_path, damage(list(originals)))
    result = run_bad(tmp_path, images)
    assert_clean_failure(result, tmp_path, "img_00002.cbf: unrecognised file format", "supported inputs: CBF")


def test_truncated_bz2_image(tmp_path):
    raw = [p.read_bytes() for p in L_CYST[:3]]
    raw[1] = raw[1][:30000]
    images = write_images(tmp_path, raw, ".cbf.bz2")
    result = run_bad(tmp_path, images)
    line = assert_clean_failure(result, tmp_path, "img_00002.cbf.bz2", DAMAGED, code=1)
    assert "corrupt or truncated compressed file" in line


def test_corrupt_bz2_image(tmp_path):
    raw = [p.read_bytes() for p in L_CYST[:3]]
    damaged = bytearray(raw[1])
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(64)  # fails the bzip2 block checksum
    raw[1] = bytes(damaged)
    with pytest.raises(OSError):
        bz2.decompress(raw[1])
    images = write_images(tmp_path, raw, ".cbf.bz2")
    result = run_bad(tmp_path, images)
    line = assert_clean_failure(result, tmp_path, "img_00002.cbf.bz2", DAMAGED, code=1)
    assert "corrupt or truncated compressed file" in line


def test_missing_file(tmp_path, originals):
    images = write_images(tmp_path, originals)
    images[1].unlink()
    result = run_bad(tmp_path, images)
    assert_clean_failure(result, tmp_path, "img_00002.cbf: no such file", "check the path", code=1)


def test_missing_files_of_a_glob(tmp_path, originals):
    write_images(tmp_path, originals)
    result = run_bad(tmp_path, [str(tmp_path / "image_*.cbf")])
    assert_clean_failure(result, tmp_path, "image_*.cbf", "check the directory and the pattern", code=2)


def test_directory_given_as_image(tmp_path, originals):
    images = write_images(tmp_path, originals)
    (tmp_path / "sub").mkdir()
    result = run_bad(tmp_path, [images[0], tmp_path / "sub"])
    assert_clean_failure(result, tmp_path, "sub: is a directory", "give the image files or a glob")


def _cropped(cbf: bytes, rows: int) -> bytes:
    values = decode_byte_offset(binary_of(cbf), SHAPE[0] * SHAPE[1], np.int32).reshape(SHAPE)
    return with_binary(cbf, encode_byte_offset(values[:rows]), shape=(rows, SHAPE[1]))


@pytest.mark.parametrize("odd", [1, 2])
def test_images_of_different_sizes_in_one_sweep(tmp_path, originals, odd):
    images = list(originals)
    images[odd - 1] = _cropped(images[odd - 1], 1600)  # a consistent, readable, smaller image
    paths = write_images(tmp_path, images)
    result = run_bad(tmp_path, paths)
    line = assert_clean_failure(
        result, tmp_path, f"img_0000{odd}.cbf: image {odd} is 1475 x 1600 pixels", "", code=1
    )
    assert "the other images of its sweep (1..3) are 1475 x 1679; remove or replace the files" in line


# -------------------------------------------------------------------------- header values without sense


def _header(images, old: bytes, new: bytes):
    out = []
    for data in images:
        data, n = re.subn(old, new, data)
        assert n, old
        out.append(data)
    return out


NEGATIVE_DISTANCE = [
    (b"FRAME1 DET_Z 0.0 160.00", b"FRAME1 DET_Z 0.0 -160.00"),
    (b"SCAN1 DET_Z      0.0 0.0 0.0 160.00", b"SCAN1 DET_Z      0.0 0.0 0.0 -160.00"),
]
ZERO_WAVELENGTH = [
    (b"WAVELENGTH1 0.68890 1", b"WAVELENGTH1 0.0 1"),
    (b"Wavelength 0.68890 A", b"Wavelength 0.0 A"),
]
ZERO_DISTANCE = [
    (b"FRAME1 DET_Z 0.0 160.00", b"FRAME1 DET_Z 0.0 0.0"),
    (b"SCAN1 DET_Z      0.0 0.0 0.0 160.00", b"SCAN1 DET_Z      0.0 0.0 0.0 0.0"),
]
HEADER_CASES = {
    "negative distance": (NEGATIVE_DISTANCE, "detector distance -160.00 mm"),
    "zero distance": (ZERO_DISTANCE, "detector distance 0 mm"),
    "zero wavelength": (ZERO_WAVELENGTH, "wavelength 0 A"),
}


@pytest.mark.parametrize(
    "case, parameter",
    [
        ("negative distance", "d_min=1.5"),
        ("zero distance", "ice_rings.filter=True"),
        ("zero wavelength", "per_image_statistics=True"),
        ("zero wavelength", "threshold.algorithm=radial_profile"),
    ],
)
def test_header_geometry_without_sense_where_geometry_is_needed(tmp_path, originals, case, parameter):
    edits, what = HEADER_CASES[case]
    images = list(originals)
    for old, new in edits:
        images = _header(images, old, new)
    paths = write_images(tmp_path, images)
    result = run_bad(tmp_path, paths, parameter)
    line = assert_clean_failure(result, tmp_path, "img_00001.cbf", "correct the header", code=1)
    assert what in line and parameter.split("=")[0] in line


@pytest.mark.parametrize(
    "edit, what",
    [
        ((b"WAVELENGTH1 0.68890 1", b"WAVELENGTH1 1e999 1"), "no finite wavelength"),
        (
            (
                b"DET_2THETA rotation    detector .         1 0 0",
                b"DET_2THETA rotation    detector .         0 0 0",
            ),
            "no finite detector origin",
        ),
        ((rb"FRAME1 GON_OMEGA -?[\d.]+", b"FRAME1 GON_OMEGA -1e999"), "no finite start angle"),
    ],
)
def test_header_values_that_are_not_numbers_are_always_an_error(tmp_path, originals, edit, what):
    # NaN geometry would split the sweep into one-image sequences and silently change the spots
    paths = write_images(tmp_path, _header(list(originals), *edit))
    result = run_bad(tmp_path, paths)
    line = assert_clean_failure(result, tmp_path, "img_00001.cbf", "correct the image header", code=1)
    assert what in line


def test_zero_wavelength_where_geometry_is_not_needed_still_finds_the_spots(tmp_path, originals):
    images = list(originals)
    for old, new in ZERO_WAVELENGTH:
        images = _header(images, old, new)
    result = run_bad(tmp_path, write_images(tmp_path, images))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.refl").exists()


# ---------------------------------------------------------------------------------------- parameters

PARAMETER_CASES = {
    "unknown": ("foo.bar=1", "Unknown parameter: foo.bar", "findspots -c -e 3"),
    "mistyped": (
        "sigma_strnog=3",
        "sigma_strnog",
        "Did you mean: spotfinder.threshold.dispersion.sigma_strong",
    ),
    "wrong type": ("sigma_strong=abc", "spotfinder.threshold.dispersion.sigma_strong=abc", "is not a number"),
    "not a choice": ("threshold.algorithm=magic", "threshold.algorithm=magic", "must be one of"),
    "above range": ("max_strong_pixel_fraction=2", "max_strong_pixel_fraction=2", "must be <= 1"),
    "below range": ("nproc=0", "spotfinder.mp.nproc=0", "must be >= 1"),
    "negative d_min": ("d_min=-1", "spotfinder.filter.d_min=-1", "must be >= 0"),
    "min_spot_size 0": ("min_spot_size=0", "min_spot_size=0", "must be >= 1"),
    "nan": ("sigma_strong=nan", "sigma_strong=nan", "nan is not allowed"),
    "min_local=1": ("min_local=1", "min_local=1", "must be <= 0 (whole kernel) or between 2"),
    "kernel_size with one value": ("kernel_size=3", "kernel_size=3", "expected 2 values"),
    "unknown option": ("--frobnicate", "--frobnicate", "Unknown option"),
}


@pytest.mark.parametrize("case", PARAMETER_CASES)
def test_bad_parameter_is_named_before_any_image_is_read(tmp_path, case):
    arg, culprit, advice = PARAMETER_CASES[case]
    # the image does not exist: a parameter error must come first
    result = run_bad(tmp_path, [tmp_path / "never_read_00001.cbf", arg])
    assert_clean_failure(result, tmp_path, culprit, advice, code=2)


@pytest.mark.parametrize(
    "arg",
    [
        "kernel_size=-2,-2",
        "kernel_size=100000000000,1",
        "kernel_size=None",
        "min_local=None",
        "sigma_strong=None",
    ],
)
def test_threshold_values_that_cannot_work(tmp_path, originals, arg):
    images = write_images(tmp_path, originals[:1])
    result = run_bad(tmp_path, [*images, arg])
    assert_clean_failure(result, tmp_path, arg.split("=")[0] + "=", "needed", code=2)


def test_parameter_file_missing_and_broken(tmp_path, originals):
    images = write_images(tmp_path, originals[:1])
    result = run_bad(tmp_path, [images[0], "nothere.phil"])
    assert_clean_failure(result, tmp_path, "nothere.phil", "Parameter file not found", code=2)
    (tmp_path / "broken.phil").write_text("spotfinder {\n  threshold.dispersion.sigma_strong = 3\n")
    result = run_bad(tmp_path, [images[0], tmp_path / "broken.phil"])
    assert_clean_failure(result, tmp_path, "broken.phil", "missing '}'", code=2)


@pytest.mark.parametrize(
    "arg, advice",
    [
        ("region_of_interest=0,5000,0,10", "needs 0 <= x0 < x1 <= 1475"),
        ("region_of_interest=10,5,0,10", "needs 0 <= x0 < x1 <= 1475"),
        ("region_of_interest=0,10,1679,1700", "0 <= y0 < y1 <= 1679"),
        ("scan_range=2,9", "must be within image range 1..3"),
        ("scan_range=0,2", "must be within image range 1..3"),
        ("scan_range=3,2", "must be in ascending order"),
    ],
)
def test_impossible_region_or_scan_range(tmp_path, originals, arg, advice):
    images = write_images(tmp_path, originals)
    result = run_bad(tmp_path, [*images, "chunksize=1", "min_chunksize=1"], arg)
    name = arg.split("=")[0]
    assert_clean_failure(result, tmp_path, f"spotfinder.{name}={arg.split('=')[1]}", advice, code=2)


def test_max_strong_pixel_fraction_exceeded(tmp_path, originals):
    images = write_images(tmp_path, originals)
    result = run_bad(tmp_path, images, "max_strong_pixel_fraction=0.00001", "chunksize=1", "min_chunksize=1")
    line = assert_clean_failure(
        result,
        tmp_path,
        "spotfinder.filter.max_strong_pixel_fraction=1e-05",
        "try changing spot finding",
        code=1,
    )
    assert re.search(r"image 1 \(.*img_00001\.cbf\)", line)


# -------------------------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "target, what",
    [
        ("no/such/dir/out.refl", "does not exist"),
        (".", "is a directory"),
        ("/proc/out.refl", "cannot write in /proc"),  # read-only even for root
        ("/dev/null", "is not a regular file"),
    ],
)
def test_unwritable_output_is_found_before_any_image_is_read(tmp_path, originals, target, what):
    images = write_images(tmp_path, originals)
    images[1].unlink()  # an image error would show if images were read first
    result = findspots([*images, f"output.reflections={target}"], tmp_path)
    assert_clean_failure(result, tmp_path, f"output.reflections={target}", what, code=1)
    assert "choose" in result.stderr or "give a file name" in result.stderr


@pytest.mark.parametrize("name", ["experiments", "report"])
def test_unwritable_experiments_or_report(tmp_path, originals, name):
    images = write_images(tmp_path, originals[:1])
    images[0].unlink()  # an image error would show if images were read first
    result = run_bad(tmp_path, images, f"output.{name}=no/such/dir/x")
    assert_clean_failure(result, tmp_path, f"output.{name}=no/such/dir/x", "create it", code=1)


def test_unwritable_log(tmp_path, originals):
    images = write_images(tmp_path, originals[:1])
    result = run_bad(tmp_path, images, "output.log=no/such/dir/x.log")
    assert_clean_failure(result, tmp_path, "output.log=no/such/dir/x.log", "choose a writable place", code=1)


def test_unwritable_hot_mask(tmp_path, originals):
    images = write_images(tmp_path, originals[:1])
    result = run_bad(tmp_path, images, "write_hot_mask=True", "hot_mask_prefix=no/such/dir/hot")
    assert_clean_failure(result, tmp_path, "spotfinder.hot_mask_prefix=no/such/dir/hot", "create it", code=1)


# ------------------------------------------------------------------------------ failures leave nothing


def test_failure_after_checkpoints_were_saved_removes_them(tmp_path, originals):
    images = write_images(tmp_path, _truncated(list(originals)) + [originals[2]])  # 4 images, #2 truncated
    result = run_bad(tmp_path, images, "chunksize=1", "min_chunksize=1")
    assert_clean_failure(result, tmp_path, "img_00002.cbf", DAMAGED, code=1)
    assert (tmp_path / "findspots.log").exists() and (tmp_path / "findspots.debug.log").exists()
    assert "Traceback" in (tmp_path / "findspots.debug.log").read_text()


def test_failure_keeps_the_checkpoints_of_an_earlier_run(tmp_path, originals):
    images = write_images(tmp_path, _truncated(list(originals)))
    earlier = tmp_path / "out.refl.findspots-checkpoint"
    earlier.mkdir()
    (earlier / "block.npz").write_bytes(b"an earlier run's block")
    result = run_bad(tmp_path, images, "chunksize=1", "min_chunksize=1")
    assert result.returncode == 1
    assert (earlier / "block.npz").read_bytes() == b"an earlier run's block"


def test_old_output_survives_a_failed_run(tmp_path, originals):
    images = write_images(tmp_path, _truncated(list(originals)))
    (tmp_path / "out.refl").write_bytes(b"results of an earlier run")
    result = run_bad(tmp_path, images)
    assert result.returncode == 1
    assert (tmp_path / "out.refl").read_bytes() == b"results of an earlier run"
    assert not list(tmp_path.glob(".out.refl*"))


def test_traceback_only_with_verbosity_2(tmp_path, originals):
    images = write_images(tmp_path, _truncated(list(originals)))
    quiet = run_bad(tmp_path, images)
    assert "Traceback" not in quiet.stderr
    loud = run_bad(tmp_path, images, "-vv")
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("findspots: error: ")
    debug = (tmp_path / "findspots.debug.log").read_text()
    assert "Traceback" in debug and "truncated CBF" in debug


# ---------------------------------------------------------------------- not errors, but said clearly


def test_gap_in_numbering_splits_the_sweep_and_says_so(tmp_path, originals):
    paths = write_images(tmp_path, originals)
    paths[2].rename(tmp_path / "img_00004.cbf")
    paths[2] = tmp_path / "img_00004.cbf"
    result = run_bad(tmp_path, paths, "sigma_strong=2", "min_spot_size=2")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "image numbers jump from 2 to 4" in result.stdout
    assert "image numbers jump from 2 to 4" in (tmp_path / "findspots.log").read_text()
    from findspots.output.refl import read_reflections

    ids = set(np.unique(read_reflections(tmp_path / "out.refl")["id"]).tolist())
    assert ids == {0, 1}, "two sweeps, two experiment ids"


def test_no_spots_is_a_warning_and_no_file(tmp_path, originals):
    images = write_images(tmp_path, originals[:2])
    (tmp_path / "out.refl").write_bytes(b"results of an earlier run")
    result = run_bad(tmp_path, images, "sigma_strong=1000")
    assert result.returncode == 0, result.stderr
    assert "No reflections found; out.refl not written" in result.stdout
    assert (tmp_path / "out.refl").read_bytes() == b"results of an earlier run"
    assert not list(tmp_path.glob("*checkpoint*"))


def test_the_run_itself_is_clean(tmp_path):
    images = [shutil.copy(p, tmp_path) for p in L_CYST[:3]]
    result = run_bad(tmp_path, images)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "out.refl").exists()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*"))
