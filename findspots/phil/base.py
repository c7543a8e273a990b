"""Shared by every PHIL module: the one-line error type, the ``Auto`` literal, extracted parameter objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class PhilError(ValueError):
    """A PHIL syntax, type, validation or lookup error; the message is always a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


class _AutoType(str):
    """Type of the PHIL literal ``Auto`` (a singleton that survives copying and pickling)."""

    _instance: _AutoType | None = None

    def __new__(cls) -> _AutoType:
        if cls._instance is None:
            cls._instance = super().__new__(cls, "Auto")
        return cls._instance

    def __repr__(self) -> str:
        return "Auto"

    def __reduce__(self) -> tuple[type, tuple]:
        return (_AutoType, ())

    def __copy__(self) -> _AutoType:
        return self

    def __deepcopy__(self, memo: dict) -> _AutoType:
        return self


Auto = _AutoType()


class ExtractedScope(SimpleNamespace):
    """Extracted values of one scope: attribute access, equality and a readable repr."""


def to_dict(obj: Any) -> Any:
    """Convert extracted parameters (nested scopes and lists of scopes) to plain dicts and lists."""
    if isinstance(obj, ExtractedScope):
        return {k: to_dict(v) for k, v in vars(obj).items()}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj
