"""DIALS msgpack reflection table reading and writing (docs/dials-behaviour.md#refl-format)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import pickle
import re
import struct
import time

import msgpack
import numpy as np
import pytest

from findspots.output import refl
from findspots.output.refl import ReflectionTable, Shoeboxes, column_type, read_reflections, write_reflections

A_SEED = "p300k_60/dials_reference/a_seed"


def make_shoeboxes(n: int, seed: int = 0, present: np.ndarray | None = None) -> Shoeboxes:
    rng = np.random.default_rng(seed)
    extent = rng.integers(0, 4, size=(n, 3))
    start = rng.integers(0, 500, size=(n, 3))
    bbox = np.empty((n, 6), np.int32)
    bbox[:, 0::2] = start
    bbox[:, 1::2] = start + extent
    sizes = extent.prod(axis=1)
    if present is not None:
        sizes[~present] = 0
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    voxels = int(offsets[-1])
    return Shoeboxes(
        panel=rng.integers(0, 3, n),
        bbox=bbox,
        offsets=offsets,
        data=rng.normal(size=voxels).astype(np.float32),
        mask=rng.integers(0, 64, voxels).astype(np.uint8),
        background=rng.normal(size=voxels).astype(np.float32),
        present=present,
    )


def all_columns(n: int, seed: int = 0, shoeboxes: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    cols = {
        "flag": rng.integers(0, 2, n).astype(bool),
        "id": rng.integers(-5, 5, n).astype(np.int32),
        "flags": rng.integers(0, 2**63, n, dtype=np.uint64),
        "intensity.sum.value": rng.normal(size=n),
        "xy": rng.normal(size=(n, 2)),
        "xyzobs.px.value": rng.normal(size=(n, 3)),
        "ub": rng.normal(size=(n, 3, 3)),
        "bbox": rng.integers(-10, 10, (n, 6)).astype(np.int32),
        "miller_index": rng.integers(-30, 30, (n, 3)).astype(np.int32),
    }
    if shoeboxes:
        cols["shoebox"] = make_shoeboxes(n, seed)
    return cols


def assert_shoeboxes_equal(a: Shoeboxes, b: Shoeboxes) -> None:
    for name in ("panel", "bbox", "offsets", "data", "mask", "background"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    pa = np.ones(len(a), bool) if a.present is None else a.present
    pb = np.ones(len(b), bool) if b.present is None else b.present
    np.testing.assert_array_equal(pa, pb)


def assert_tables_equal(table: ReflectionTable, columns: dict) -> None:
    assert sorted(table.columns) == sorted(columns)
    for name, values in columns.items():
        got = table.columns[name]
        if isinstance(values, Shoeboxes):
            assert_shoeboxes_equal(got, values)
        else:
            np.testing.assert_array_equal(got, values, err_msg=name)
            assert got.dtype == values.dtype and got.shape == values.shape, name


def raw_table(path) -> list:
    return msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)


def write_raw(path, obj) -> None:
    path.write_bytes(msgpack.packb(obj, use_bin_type=True))


def minimal_table(nrows: int = 2) -> list:
    ids = np.arange(nrows, dtype="<i4").tobytes()
    return [refl.TABLE_TAG, 1, {"identifiers": {}, "nrows": nrows, "data": {"id": ["int", [nrows, ids]]}}]


# --- round trips


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("with_shoeboxes", [True, False])
def test_round_trip_every_column_type(tmp_path, version, with_shoeboxes):
    cols = all_columns(50, seed=version, shoeboxes=with_shoeboxes)
    path = tmp_path / "t.refl"
    write_reflections(path, cols, {0: "abc", 3: "def"}, version=version)
    table = read_reflections(path)
    assert table.version == version
    assert table.nrows == len(table) == 50
    assert table.identifiers == {0: "abc", 3: "def"}
    assert_tables_equal(table, cols)
    assert "flag" in table and table["flag"].dtype == bool


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_empty_table_and_no_identifiers(tmp_path, version):
    cols = all_columns(0)
    path = tmp_path / "empty.refl"
    write_reflections(path, cols, version=version)
    table = read_reflections(path)
    assert table.nrows == 0 and table.identifiers == {}
    assert_tables_equal(table, cols)


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_rows_without_shoebox_arrays(tmp_path, version):
    present = np.array([True, False, True, False, False, True])
    sb = make_shoeboxes(6, present=present)
    path = tmp_path / "p.refl"
    write_reflections(path, {"shoebox": sb}, version=version)
    back = read_reflections(path)["shoebox"]
    assert_shoeboxes_equal(back, sb)
    blob = raw_table(path)[2]["data"]["shoebox"][1][1]
    assert blob[28] == version  # first row's present flag
    with pytest.raises(ValueError, match="no allocated arrays"):
        back.get(1)


def test_round_trip_many_rows_spanning_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(refl, "_CHUNK_BYTES", 512)
    cols = {"shoebox": make_shoeboxes(3000, seed=7)}
    for version in (1, 2):
        path = tmp_path / f"c{version}.refl"
        write_reflections(path, cols, version=version)
        assert_tables_equal(read_reflections(path), cols)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_reads_compressed_files(tmp_path, compress):
    cols = all_columns(20)
    path = tmp_path / "t.refl"
    write_reflections(path, cols)
    packed = tmp_path / "t.refl.compressed"
    packed.write_bytes(compress(path.read_bytes()))
    assert_tables_equal(read_reflections(packed), cols)


def test_shoeboxes_shape_and_get():
    sb = make_shoeboxes(10, seed=3)
    for i in range(len(sb)):
        data, mask, background = sb.get(i)
        x0, x1, y0, y1, z0, z1 = sb.bbox[i]
        assert sb.shape(i) == (z1 - z0, y1 - y0, x1 - x0) == data.shape == mask.shape == background.shape
        np.testing.assert_array_equal(data.ravel(), sb.data[sb.offsets[i] : sb.offsets[i + 1]])


def test_shoeboxes_reject_inconsistent_offsets():
    sb = make_shoeboxes(4, seed=1)
    with pytest.raises(ValueError, match="offsets"):
        Shoeboxes(sb.panel, sb.bbox, sb.offsets + 1, sb.data, sb.mask, sb.background)
    with pytest.raises(ValueError, match="voxels"):
        Shoeboxes(sb.panel, sb.bbox, sb.offsets, sb.data[:-1], sb.mask, sb.background)


# --- format details


def test_header_and_column_order(tmp_path):
    n = 3
    cols = {name: np.zeros(n) for name in ("b", "a", "B", "xyz.a", "xyz", "_z", "a.b")}
    path = tmp_path / "o.refl"
    write_reflections(path, cols, {5: "x", 1: "y"})
    tag, version, header = raw_table(path)
    assert (tag, version) == (refl.TABLE_TAG, 1)
    assert list(header) == ["identifiers", "nrows", "data"]
    assert list(header["data"]) == sorted(cols, key=str.encode)
    assert list(header["identifiers"]) == [1, 5]
    assert header["data"]["a"] == ["double", [n, bytes(8 * n)]]


def test_type_inference():
    assert column_type(np.zeros(2, np.int32)) == "int"
    assert column_type(np.zeros(2, np.uint64)) == "std::size_t"
    assert column_type(np.zeros(2, bool)) == "bool"
    assert column_type(np.zeros((2, 6), np.int32)) == "int6"
    assert column_type(np.zeros((2, 3), np.int32)) == "cctbx::miller::index<>"
    assert column_type(np.zeros((2, 2))) == "vec2<double>"
    assert column_type(make_shoeboxes(2)) == "Shoebox<>"
    for bad in (np.zeros(2, np.int64), np.zeros(2, np.float32), np.zeros((2, 4)), np.zeros((2, 6), np.int64)):
        with pytest.raises(TypeError):
            column_type(bad)
    with pytest.raises(TypeError):
        column_type([1, 2])


def test_write_rejects_bad_columns(tmp_path):
    path = tmp_path / "bad.refl"
    with pytest.raises(TypeError):
        write_reflections(path, {"a": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="different lengths"):
        write_reflections(path, {"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="version"):
        write_reflections(path, {"a": np.zeros(3)}, version=3)
    assert list(tmp_path.iterdir()) == []


def test_version_1_has_int32_masks_and_flag_1(tmp_path):
    sb = make_shoeboxes(5, seed=2)
    path = tmp_path / "v1.refl"
    write_reflections(path, {"shoebox": sb})
    raw = path.read_bytes()
    # 0x93, then "dials::af::reflection_table" as fixstr (1 + 27 bytes), then the version.
    assert raw[:2] == b"\x93\xbb" and raw[29] == 1
    blob = raw_table(path)[2]["data"]["shoebox"][1][1]
    nvox = int(sb.offsets[1])
    assert struct.unpack_from("<I6iB", blob, 0) == (sb.panel[0], *sb.bbox[0], 1)
    mask_bytes = blob[29 + 4 * nvox : 29 + 8 * nvox]
    np.testing.assert_array_equal(np.frombuffer(mask_bytes, "<i4"), sb.mask[:nvox])
    assert len(blob) == 29 * len(sb) + 12 * int(sb.offsets[-1])
    write_reflections(path, {"shoebox": sb}, version=2)
    blob2 = raw_table(path)[2]["data"]["shoebox"][1][1]
    assert path.read_bytes()[29] == 2 and blob2[28] == 2
    assert len(blob2) == 29 * len(sb) + 9 * int(sb.offsets[-1])


def encode_wide(obj) -> bytes:
    """msgpack with every integer as uint64 (0xcf), which DIALS-compatible readers must accept."""
    if isinstance(obj, bool) or not isinstance(obj, (int, list, dict)):
        return msgpack.packb(obj, use_bin_type=True)
    if isinstance(obj, int):
        return b"\xcf" + struct.pack(">Q", obj)
    if isinstance(obj, list):
        return b"\xdd" + struct.pack(">I", len(obj)) + b"".join(encode_wide(v) for v in obj)
    items = b"".join(encode_wide(k) + encode_wide(v) for k, v in obj.items())
    return b"\xdf" + struct.pack(">I", len(obj)) + items


def test_reads_any_unsigned_int_encoding(tmp_path):
    obj = minimal_table(3)
    obj[2]["identifiers"] = {0: "u"}
    path = tmp_path / "wide.refl"
    path.write_bytes(encode_wide(obj))
    table = read_reflections(path)
    assert table.nrows == 3 and table.version == 1 and table.identifiers == {0: "u"}
    np.testing.assert_array_equal(table["id"], [0, 1, 2])


def test_reads_mixed_shoebox_flags(tmp_path):
    sb = make_shoeboxes(6, seed=5)
    path = tmp_path / "mixed.refl"
    write_reflections(path, {"shoebox": sb}, version=1)
    v1 = raw_table(path)[2]["data"]["shoebox"][1][1]
    write_reflections(path, {"shoebox": sb}, version=2)
    v2 = raw_table(path)[2]["data"]["shoebox"][1][1]

    def row(blob: bytes, i: int, per_voxel: int) -> bytes:
        sizes = np.diff(sb.offsets)
        start = 29 * i + per_voxel * int(sizes[:i].sum())
        return blob[start : start + 29 + per_voxel * int(sizes[i])]

    mixed = b"".join(row(v1, i, 12) if i % 2 else row(v2, i, 9) for i in range(len(sb)))
    obj = [
        refl.TABLE_TAG,
        2,
        {"identifiers": {}, "nrows": len(sb), "data": {"shoebox": ["Shoebox<>", [6, mixed]]}},
    ]
    write_raw(path, obj)
    assert_shoeboxes_equal(read_reflections(path)["shoebox"], sb)


# --- rejections


def _mutations():
    def unknown_key(o):
        o[2]["extra"] = 1

    def unknown_type(o):
        o[2]["data"]["id"][0] = "vec3<float>"

    def row_count(o):
        o[2]["data"]["id"][1][0] = 3

    def byte_count(o):
        o[2]["data"]["id"][1][1] += b"\0"

    def version(o):
        o[1] = 3

    def tag(o):
        o[0] = "dials::af::other"

    def no_nrows(o):
        del o[2]["nrows"]

    def string_column(o):
        o[2]["data"]["s"] = ["std::string", [2, b""]]

    def shoebox_short(o):
        o[2]["data"]["shoebox"] = ["Shoebox<>", [2, b"\0" * 40]]

    def shoebox_bad_flag(o):
        header = struct.pack("<I6iB", 0, 0, 1, 0, 1, 0, 1, 7)
        o[2]["data"]["shoebox"] = ["Shoebox<>", [2, header * 2]]

    return [
        (unknown_key, "unknown header key"),
        (unknown_type, "unknown type 'vec3<float>'"),
        (row_count, "3 rows but the table has 2"),
        (byte_count, "9 bytes, 2 rows need 8"),
        (version, "version 3"),
        (tag, "not a DIALS reflection table"),
        (no_nrows, "bad nrows"),
        (string_column, "unknown type 'std::string'"),
        (shoebox_short, "shoebox blob"),
        (shoebox_bad_flag, "bad shoebox header"),
    ]


@pytest.mark.parametrize(("mutate", "message"), _mutations(), ids=lambda m: getattr(m, "__name__", ""))
def test_rejects_malformed_tables(tmp_path, mutate, message):
    obj = minimal_table(2)
    mutate(obj)
    path = tmp_path / "bad.refl"
    write_raw(path, obj)
    with pytest.raises(ValueError) as err:
        read_reflections(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


class _Boom:
    def __reduce__(self):
        raise AssertionError("must never be unpickled")


def test_rejects_pickle_without_unpickling(tmp_path):
    path = tmp_path / "strong.pickle"
    path.write_bytes(pickle.dumps({"nrows": 3, "data": [1, 2, 3]}, protocol=2))
    with pytest.raises(ValueError, match="pickle") as err:
        read_reflections(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(gzip.compress(pickle.dumps([1.5], protocol=4)))
    with pytest.raises(ValueError, match="pickle"):
        read_reflections(path)


@pytest.mark.parametrize("content", [b"", b"\xc1garbage", b"\x89HDF\r\n\x1a\n....", b"\x1f\x8bnot gzip"])
def test_rejects_non_msgpack(tmp_path, content):
    path = tmp_path / "junk.refl"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        read_reflections(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# --- atomic writes


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    original = refl._shoebox_blob_chunks

    def failing_chunks(sb, flag):
        for chunk in original(sb, flag):
            yield chunk
            raise OSError("disk full")

    monkeypatch.setattr(refl, "_CHUNK_BYTES", 256)
    monkeypatch.setattr(refl, "_shoebox_blob_chunks", failing_chunks)
    path = tmp_path / "strong.refl"
    with pytest.raises(OSError, match="disk full"):
        write_reflections(path, all_columns(200))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "strong.refl"
    write_reflections(path, all_columns(5))
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(refl.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        write_reflections(path, all_columns(9))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["strong.refl"]


def test_written_file_has_umask_permissions(tmp_path):
    path = tmp_path / "strong.refl"
    write_reflections(path, all_columns(3))
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    assert path.stat().st_mode == reference.stat().st_mode


# --- DIALS files


def npz_columns(npz) -> dict:
    cols = {name: npz[name] for name in npz["columns"] if name != "shoebox"}
    if "shoebox" in npz["columns"]:
        cols["shoebox"] = Shoeboxes(
            panel=npz["shoebox.panel"],
            bbox=npz["shoebox.bbox"],
            offsets=npz["shoebox.offsets"],
            data=npz["shoebox.data"],
            mask=npz["shoebox.mask"],
            background=npz["shoebox.background"],
        )
    return cols


@pytest.mark.shared
def test_dials_file_matches_spots_npz(shared_data):
    run = shared_data / A_SEED
    table = read_reflections(run / "strong.refl.xz")
    npz = np.load(run / "spots.npz")
    assert table.version == int(npz["refl_version"]) == 2
    assert list(table.columns) == list(npz["columns"])
    assert [column_type(table[c]) for c in table.columns] == list(npz["column_types"])
    assert table.identifiers == dict(
        zip(npz["identifiers.ids"].tolist(), npz["identifiers.values"], strict=True)
    )
    assert_tables_equal(table, npz_columns(npz))
    sb = table["shoebox"]
    np.testing.assert_array_equal([sb.shape(i) for i in range(len(sb))], npz["shoebox.shape"])


@pytest.mark.shared
def test_rewriting_dials_file_as_version_2_is_byte_identical(shared_data, tmp_path):
    run = shared_data / A_SEED
    original = lzma.decompress((run / "strong.refl.xz").read_bytes())
    info = json.loads((run / "refl_info.json").read_text())
    # refl_info.json records the sha256 of DIALS's uncompressed strong.refl.
    assert hashlib.sha256(original).hexdigest() == info["strong_refl_sha256"]
    table = read_reflections(run / "strong.refl.xz")
    path = tmp_path / "strong.refl"
    write_reflections(path, table.columns, table.identifiers, version=2)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["strong_refl_sha256"]
    # Version 1 differs only in the version byte and the shoebox flags and mask widths.
    write_reflections(path, table.columns, table.identifiers, version=1)
    v1 = read_reflections(path)
    assert v1.version == 1
    assert_tables_equal(v1, table.columns)


@pytest.mark.shared
def test_reads_every_real_dials_file(shared_data, tmp_path):
    files = sorted((shared_data / "real" / "dials_head_reference").glob("*/*/strong.refl.xz"))
    assert files, "no real DIALS reference files"
    for path in files:
        table = read_reflections(path)
        saved = re.search(r"Saved (\d+) reflections", (path.parent / "dials.find_spots.log").read_text())
        assert table.nrows == int(saved.group(1)), path
        # One identifier per experiment: the thaumatin grid is 19 stills, some without spots.
        assert table.version == 2 and set(np.unique(table["id"])) <= set(table.identifiers)
        assert {column_type(v) for v in table.columns.values()} >= {"int6", "Shoebox<>", "vec3<double>"}
        sb = table["shoebox"]
        np.testing.assert_array_equal(sb.bbox, table["bbox"])
        signal = np.add.reduceat((sb.mask & 5) == 5, sb.offsets[:-1]) if len(sb.data) else []
        np.testing.assert_array_equal(signal, table["n_signal"], err_msg=str(path))
        assert np.all(table["flags"] & 32)
        copy = tmp_path / "copy.refl"
        write_reflections(copy, table.columns, table.identifiers, version=2)
        assert copy.read_bytes() == lzma.decompress(path.read_bytes()), path


@pytest.mark.slow
def test_large_table_is_fast(tmp_path):
    n = 600_000
    cols = {"shoebox": make_shoeboxes(n, seed=11), "xyzobs.px.value": np.zeros((n, 3))}
    path = tmp_path / "big.refl"
    start = time.perf_counter()
    write_reflections(path, cols)
    table = read_reflections(path)
    elapsed = time.perf_counter() - start
    assert_tables_equal(table, cols)
    assert elapsed < 30, f"600k shoeboxes took {elapsed:.1f} s to write and read"
