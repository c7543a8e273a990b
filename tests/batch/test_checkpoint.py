"""Block results survive a checkpoint file: every field of every class, whatever fields are added."""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass

import numpy as np
import pytest

from findspots.batch.checkpoint import FORMAT, Checkpoints
from findspots.spotfinder.arrays import ArrayRecord
from findspots.spotfinder.blocks import BlockResult, PanelResult, SpotBoxes
from findspots.spotfinder.spots import Components
from findspots.spotfinder.strong import ImageStrong


def populated(tp, seed: int):
    """A value of type ``tp`` unlike any default: every field of a record gets one (recursively).

    Built from the dataclass fields, so a field added to a block class is filled and checked without
    changing this test; a field of a type the arrays cannot hold makes it fail here."""
    rng = np.random.default_rng(seed)
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType):
        return populated(next(a for a in args if a is not type(None)), seed)
    if tp is np.ndarray:
        return rng.integers(0, 1000, int(rng.integers(1, 6))).astype(np.int64)
    if tp is int:
        return int(rng.integers(7, 1000))
    if tp is float:
        return float(rng.random()) + 0.5
    if tp is bool:
        return True
    if typing.get_origin(tp) is list:
        return [populated(args[0], seed * 31 + i) for i in range(2)]
    assert dataclasses.is_dataclass(tp) and issubclass(tp, ArrayRecord), f"no example for {tp}"
    hints = typing.get_type_hints(tp)
    return tp(
        **{f.name: populated(hints[f.name], seed * 17 + i) for i, f in enumerate(dataclasses.fields(tp))}
    )


def assert_same(a, b, where="result"):
    """Equal, field by field through ``dataclasses.fields``, arrays with their dtype."""
    assert type(a) is type(b), where
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("cls", [BlockResult, PanelResult, Components, ImageStrong, SpotBoxes])
def test_every_field_round_trips_through_arrays(cls):
    record = populated(cls, 3)
    assert_same(cls.from_arrays(record.to_arrays()), record)


def test_every_field_round_trips_through_a_checkpoint_file(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    result = populated(BlockResult, 5)
    checkpoints.save("k", result)
    assert_same(checkpoints.load("k"), result)


def test_a_field_added_to_a_block_class_is_stored_without_more_code():
    @dataclass
    class Wider(PanelResult):
        extra: int = 0
        weights: list[np.ndarray] = dataclasses.field(default_factory=list)
        note: float | None = None

    record = populated(Wider, 9)
    arrays = record.to_arrays()
    assert {"extra", "weights.len", "weights.1", "note"} <= set(arrays)
    assert_same(Wider.from_arrays(arrays), record)


def test_none_round_trips_and_a_field_of_an_unknown_type_is_refused():
    image = ImageStrong(4, 17)
    assert "mean_background" not in image.to_arrays()
    assert_same(ImageStrong.from_arrays(image.to_arrays()), image)

    @dataclass
    class Odd(ArrayRecord):
        name: str

    with pytest.raises(TypeError, match="'name'"):
        Odd("x").to_arrays()


def test_a_checkpoint_of_another_format_is_recomputed_with_a_log_line(tmp_path, caplog):
    checkpoints = Checkpoints(tmp_path)
    # what format 1 wrote: hand-named columns and no format number
    np.savez(tmp_path / "old.npz", frames=np.array([0]), counts=np.array([3]), npanels=np.array(0))
    checkpoints.save("new", populated(BlockResult, 1))
    with np.load(tmp_path / "new.npz") as z:
        assert int(z["checkpoint_format"]) == FORMAT
    with caplog.at_level(logging.INFO, logger="findspots"):
        assert checkpoints.load("old") is None
    assert f"(format 1, not {FORMAT}): recomputing it" in caplog.text
    assert checkpoints.load("new") is not None
