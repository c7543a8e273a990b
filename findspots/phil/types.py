"""PHIL definition types (``.type = ...``): value words to Python values, validation, and back to text."""

from __future__ import annotations

import ast
import math
import re
from typing import Any

from findspots.phil.base import Auto, PhilError
from findspots.phil.syntax import NAME_RE
from findspots.phil.tokens import Token, words_text


def _format_number(x: int | float) -> str:
    """Shortest text for a number that parses back to the same value (2.0 is written 2)."""
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


_BARE_WORD_RE = re.compile(r"[^\s{}=;#\"'*]+")


def _format_word(text: str) -> str:
    """A string as a PHIL word: bare when it reads back as itself, otherwise quoted."""
    if _BARE_WORD_RE.fullmatch(text) and text.lower() not in ("none", "auto") and not text.startswith("."):
        return text
    return quote(text)


def quote(text: str) -> str:
    """Quote text for PHIL, preferring a quote character that needs no escape."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("'", "\\'") + "'"


class PhilType:
    """Base class of definition types: converts value words to Python values and back."""

    name = ""
    allow_none_default = True
    arg_names: tuple[str, ...] = ()

    def __init__(self, **args: Any) -> None:
        unknown = set(args) - set(self.arg_names) - {"allow_none"}
        if unknown:
            raise PhilError(f"type {self.name} does not take {', '.join(sorted(unknown))}")
        self.args = args
        self.allow_none = bool(args.get("allow_none", self.allow_none_default))

    def spec(self) -> str:
        """The type as written in a .type attribute."""
        if not self.args:
            return self.name
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({inner})"

    def from_words(self, words: list[Token], path: str, *, master: bool = False) -> Any:
        """Convert value words to a Python value, validating it; errors name the path and value."""
        if len(words) == 1 and not words[0].quoted and words[0].text.lower() in ("none", "auto"):
            text = words[0].text
            if not self.allow_none:
                raise PhilError(f"{path}={text}: {text} is not allowed (type {self.spec()})")
            return None if text.lower() == "none" else Auto
        return self.convert(words, path, words_text(words))

    def convert(self, words: list[Token], path: str, raw: str) -> Any:
        raise NotImplementedError

    def to_text(self, value: Any) -> str:
        """Render a (non-None, non-Auto) value as PHIL value text."""
        raise NotImplementedError


def _single(words: list[Token], path: str, raw: str) -> str:
    if len(words) != 1:
        raise PhilError(f"{path}={raw}: expected a single value")
    return words[0].text


class BoolType(PhilType):
    """bool: true/yes/on/1 or false/no/off/0, any case."""

    name = "bool"
    _TRUE = ("true", "yes", "on", "1")
    _FALSE = ("false", "no", "off", "0")

    def convert(self, words: list[Token], path: str, raw: str) -> bool:
        text = _single(words, path, raw).lower()
        if text in self._TRUE:
            return True
        if text in self._FALSE:
            return False
        raise PhilError(f"{path}={raw}: expected True or False (also yes/no, on/off, 1/0)")

    def to_text(self, value: Any) -> str:
        return "True" if value else "False"


def _to_number(kind: type, text: str, path: str, raw: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise PhilError(f"{path}={raw}: {text!r} is not {what}") from None
    if kind is float and math.isnan(value):
        raise PhilError(f"{path}={raw}: nan is not allowed")
    return value


def _check_range(value: int | float, args: dict[str, Any], path: str, raw: str) -> None:
    lo, hi = args.get("value_min"), args.get("value_max")
    if lo is not None and value < lo:
        raise PhilError(f"{path}={raw}: value must be >= {_format_number(lo)}")
    if hi is not None and value > hi:
        raise PhilError(f"{path}={raw}: value must be <= {_format_number(hi)}")


class NumberType(PhilType):
    """int or float, with optional value_min/value_max (inclusive); None only with allow_none=True."""

    arg_names = ("value_min", "value_max")
    allow_none_default = False

    def __init__(self, name: str, kind: type, **args: Any) -> None:
        self.name = name
        self.kind = kind
        super().__init__(**args)

    def convert(self, words: list[Token], path: str, raw: str) -> int | float:
        value = _to_number(self.kind, _single(words, path, raw), path, raw)
        _check_range(value, self.args, path, raw)
        return value

    def to_text(self, value: Any) -> str:
        return _format_number(value)


def _number_items(words: list[Token]) -> list[str]:
    """Items of a number list: '3,3', '3 3', '"3 3"' and '(3, 3)' all give ['3', '3']."""
    text = " ".join(w.text for w in words)
    return text.translate(str.maketrans(",()[]", "     ")).split()


class NumberListType(PhilType):
    """ints or floats: a list with optional size/size_min/size_max and per-item value_min/value_max."""

    arg_names = ("size", "size_min", "size_max", "value_min", "value_max")

    def __init__(self, name: str, kind: type, **args: Any) -> None:
        self.name = name
        self.kind = kind
        super().__init__(**args)

    def convert(self, words: list[Token], path: str, raw: str) -> list:
        values = [_to_number(self.kind, item, path, raw) for item in _number_items(words)]
        self.check_size(len(values), path, raw)
        for value in values:
            _check_range(value, self.args, path, raw)
        return values

    def check_size(self, n: int, path: str, raw: str) -> None:
        size, lo, hi = self.args.get("size"), self.args.get("size_min"), self.args.get("size_max")
        if size is not None and n != size:
            raise PhilError(f"{path}={raw}: expected {size} values, got {n}")
        if lo is not None and n < lo:
            raise PhilError(f"{path}={raw}: expected at least {lo} values, got {n}")
        if hi is not None and n > hi:
            raise PhilError(f"{path}={raw}: expected at most {hi} values, got {n}")

    def to_text(self, value: Any) -> str:
        return " ".join(_format_number(v) for v in value)


class StrType(PhilType):
    """str: the words joined by single spaces (quotes removed)."""

    name = "str"

    def __init__(self, name: str = "str", **args: Any) -> None:
        self.name = name
        super().__init__(**args)

    def convert(self, words: list[Token], path: str, raw: str) -> str:
        return " ".join(w.text for w in words)

    def to_text(self, value: Any) -> str:
        return quote(value)


class StringsType(PhilType):
    """strings: a list with one item per word (a quoted word is one item)."""

    name = "strings"

    def convert(self, words: list[Token], path: str, raw: str) -> list[str]:
        return [w.text for w in words]

    def to_text(self, value: Any) -> str:
        return " ".join(_format_word(v) for v in value)


class ChoiceType(PhilType):
    """choice: one of a fixed list of options (from the master's words); None when nothing is selected."""

    name = "choice"
    arg_names = ("multi",)

    def __init__(self, **args: Any) -> None:
        super().__init__(**args)
        if args.get("multi"):
            raise PhilError("choice(multi=True) is not supported")
        self.options: list[str] = []

    def from_words(self, words: list[Token], path: str, *, master: bool = False) -> Any:
        if master:
            return self.set_options(words, path)
        single = words[0].text if len(words) == 1 and not words[0].quoted else ""
        # An option may itself be called "none" (mp.method); only otherwise is None the literal.
        if single.lower() == "none" and single.lstrip("*") not in self.options:
            return None
        return self.select(words, path, words_text(words))

    def set_options(self, words: list[Token], path: str) -> str | None:
        """Take the option list from master words; return the starred option (or None)."""
        names = [w.text.lstrip("*") for w in words]
        starred = [n for w, n in zip(words, names, strict=True) if w.text.startswith("*")]
        bad = [n for n in names if not NAME_RE.fullmatch(n)]
        if bad or len(set(names)) != len(names):
            raise PhilError(f"{path}: invalid or repeated choice options: {' '.join(names)}")
        if len(starred) > 1:
            raise PhilError(f"{path}: more than one option is selected")
        self.options = names
        return starred[0] if starred else None

    def select(self, words: list[Token], path: str, raw: str) -> str | None:
        names = [w.text.lstrip("*") for w in words]
        starred = [n for w, n in zip(words, names, strict=True) if w.text.startswith("*")]
        unknown = [n for n in names if n not in self.options]
        if unknown or len(starred) > 1:
            raise PhilError(f"{path}={raw}: must be one of {', '.join(self.options)}")
        if starred:
            return starred[0]
        if len(names) == 1:
            return names[0]
        return None  # a rendered tree with no selection, e.g. "narrow wide"

    def to_text(self, value: Any) -> str:
        return " ".join(("*" if o == value else "") + o for o in self.options)


class UnitCellType(PhilType):
    """unit_cell: six numbers a, b, c (> 0) and alpha, beta, gamma (0 < angle < 180) as a tuple."""

    name = "unit_cell"

    def convert(self, words: list[Token], path: str, raw: str) -> tuple[float, ...]:
        items = _number_items(words)
        if len(items) != 6:
            raise PhilError(f"{path}={raw}: expected 6 numbers (a, b, c, alpha, beta, gamma)")
        values = tuple(float(_to_number(float, item, path, raw)) for item in items)
        if min(values[:3]) <= 0 or not all(0 < v < 180 for v in values[3:]):
            raise PhilError(f"{path}={raw}: cell lengths must be > 0 and angles between 0 and 180")
        return values

    def to_text(self, value: Any) -> str:
        return ",".join(_format_number(v) for v in value)


class SpaceGroupType(PhilType):
    """space_group: a number 1..230 (kept as int) or a symbol (kept as text, not checked)."""

    name = "space_group"

    def convert(self, words: list[Token], path: str, raw: str) -> int | str:
        text = " ".join(w.text for w in words).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            number = int(text)
            if not 1 <= number <= 230:
                raise PhilError(f"{path}={raw}: space group number must be between 1 and 230")
            return number
        if not text:
            raise PhilError(f"{path}={raw}: empty space group")
        return text

    def to_text(self, value: Any) -> str:
        return str(value) if isinstance(value, int) else _format_word(value)


def _parse_type_args(inner: str, where: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in inner.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not NAME_RE.fullmatch(key.strip()):
            raise PhilError(f"{where}: bad type argument {part!r}")
        try:
            args[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise PhilError(f"{where}: bad type argument {part!r}") from None
    return args


def make_type(spec: str, where: str = "") -> PhilType:
    """Build a type from its .type text, e.g. 'int(value_min=1, allow_none=True)'."""
    match = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", spec, flags=re.S)
    if not match:
        raise PhilError(f"{where}: bad type {spec!r}")
    name, args = match.group(1), _parse_type_args(match.group(2) or "", where)
    factories = {
        "bool": lambda: BoolType(**args),
        "int": lambda: NumberType("int", int, **args),
        "float": lambda: NumberType("float", float, **args),
        "ints": lambda: NumberListType("ints", int, **args),
        "floats": lambda: NumberListType("floats", float, **args),
        "str": lambda: StrType("str", **args),
        "path": lambda: StrType("path", **args),
        "strings": lambda: StringsType(**args),
        "choice": lambda: ChoiceType(**args),
        "unit_cell": lambda: UnitCellType(**args),
        "space_group": lambda: SpaceGroupType(**args),
    }
    if name not in factories:
        raise PhilError(f"{where}: unknown type {name!r}")
    try:
        return factories[name]()
    except PhilError as exc:
        raise PhilError(f"{where}: {exc}") from None
