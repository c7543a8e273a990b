"""Dataclasses stored as flat dicts of numpy arrays (checkpoint files), derived from their fields.

Every field of an :class:`ArrayRecord` dataclass is stored under its name (nested records and list items
under dotted names: ``panels.0.interior.keys``), so a new field travels without anyone writing code for it.
Supported field types: ``np.ndarray``, ``int``, ``float``, ``bool`` (each also ``| None``), ``list[X]`` and
other ArrayRecords; any other type raises TypeError when stored, so nothing is ever silently dropped.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache

import numpy as np

_SCALARS = {int: np.int64, float: np.float64, bool: np.bool_}


class ArrayRecord:
    """Mixin for dataclasses: ``to_arrays()`` and ``from_arrays()`` round trip every field."""

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as numpy arrays, keyed by dotted field names."""
        out: dict[str, np.ndarray] = {}
        _store(self, type(self), "", out)
        return out

    @classmethod
    def from_arrays(cls, arrays: typing.Mapping[str, np.ndarray]):
        """The record ``to_arrays`` stored (KeyError when an array is missing)."""
        return _load(cls, "", arrays)


@cache
def _fields(cls: type) -> tuple[tuple[str, object], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _optional(tp) -> object | None:
    """X for ``X | None``, else None."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _store(value, tp, key: str, out: dict[str, np.ndarray]) -> None:
    inner = _optional(tp)
    if inner in (np.ndarray, *_SCALARS):
        if value is not None:  # None is stored as an absent key
            _store(value, inner, key, out)
    elif tp is np.ndarray:
        out[key] = np.asarray(value)
    elif tp in _SCALARS:
        out[key] = np.array(value, _SCALARS[tp])
    elif typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        out[_join(key, "len")] = np.array(len(value), np.int64)
        for i, v in enumerate(value):
            _store(v, item, _join(key, str(i)), out)
    elif isinstance(tp, type) and issubclass(tp, ArrayRecord):
        for name, hint in _fields(tp):
            _store(getattr(value, name), hint, _join(key, name), out)
    else:
        raise TypeError(f"field {key!r} of type {tp} cannot be stored as arrays")


def _load(tp, key: str, arrays: typing.Mapping[str, np.ndarray]):
    inner = _optional(tp)
    if inner in (np.ndarray, *_SCALARS):
        return _load(inner, key, arrays) if key in arrays else None
    if tp is np.ndarray:
        return np.asarray(arrays[key])
    if tp in _SCALARS:
        return tp(arrays[key][()])
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return [_load(item, _join(key, str(i)), arrays) for i in range(int(arrays[_join(key, "len")]))]
    if isinstance(tp, type) and issubclass(tp, ArrayRecord):
        return tp(**{name: _load(hint, _join(key, name), arrays) for name, hint in _fields(tp)})
    raise TypeError(f"field {key!r} of type {tp} cannot be loaded from arrays")
