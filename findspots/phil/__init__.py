"""A small PHIL parameter system (the subset of the DIALS/cctbx format that findspots needs).

Written from scratch from the behaviour described in SPEC.md; nothing here is specific to spot finding.

Text format::

    scope_name
      .help = "Scope help"          # attributes of a scope come before its brace
      .expert_level = 1
    {
      name = value                  # a definition
        .help = "first part"
                "second part"       # adjacent strings are joined with one space
        .type = int(value_min=1, allow_none=True)
        .multiple = True
      algorithm = *a b c            # a choice: the starred word is selected, no star = None
    }
    other.scope.name = 3            # dotted names are shorthand for nested scopes

Values in extracted parameters (``Scope.extract()``):

* ``None`` is Python ``None``; ``Auto`` (any case, unquoted) is the sentinel :data:`Auto`, a ``str`` subclass
  equal to ``"Auto"``; test it with ``value is Auto``. Both are only accepted where the type allows None.
* ``ints``/``floats``/``strings`` are lists, ``unit_cell`` is a tuple of six floats, ``space_group`` is an int
  (1..230) or the symbol text, ``choice`` is the selected option or None.
* ``.multiple`` definitions are lists of values (``[]`` when unset or None; a user value replaces the master
  default, later user values are appended). Assigning ``None`` empties the list.
* ``.multiple`` scopes are lists of scope objects, one per user-given instance (``[]`` by default).
  In a file each ``name { ... }`` block is one instance; a dotted assignment such as
  ``untrusted.circle=1,2,3`` (command line or file) always creates a new instance of its own, so
  ``untrusted.panel=1 untrusted.circle=1,2,3`` makes two instances: put one region in one block instead.
  A block that leaves every value at its default adds no instance (so a saved ``-c`` listing, which shows
  the template, can be read back unchanged).

Command-line names (``ArgumentInterpreter``) may be partial: ``nproc=4`` finds ``spotfinder.mp.nproc``.
Scores: 8 exact path, 4 path ends with "." + name, 3 path ends with name, 1 substring; the best must be
unique, apart from the two tie-breaks documented in ``ArgumentInterpreter.resolve`` (which warn).
"""

from __future__ import annotations

import ast
import copy
import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__all__ = [
    "Auto",
    "ArgumentInterpreter",
    "ChoiceType",
    "Definition",
    "ExtractedScope",
    "PhilError",
    "PhilType",
    "Scope",
    "make_type",
    "parse",
    "split_value",
    "to_dict",
    "tokenize",
]


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


# ----------------------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Token:
    """One lexical item: kind is "word", "{", "}", "=" or "nl" (newline or ';')."""

    kind: str
    text: str
    line: int
    quoted: bool = False


def _read_quoted(text: str, start: int, line: int, source: str) -> tuple[str, int, int]:
    """Read a quoted string starting at text[start]; return (value, index after it, line after it)."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        # Only an escaped quote is special, so Windows paths keep their backslashes.
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == quote:
            chars.append(quote)
            i += 2
            continue
        if ch == quote:
            return "".join(chars), i + 1, line
        if ch == "\n":
            line += 1
        chars.append(ch)
        i += 1
    raise PhilError(f"{source}, line {line}: unterminated quoted string")


def tokenize(text: str, source: str = "<string>") -> list[Token]:
    """Split PHIL text into tokens; '#' at the start of a token comments out the rest of the line."""
    tokens: list[Token] = []
    i, line = 0, 1
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            tokens.append(Token("nl", "\n", line))
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif ch == ";":
            tokens.append(Token("nl", ";", line))
            i += 1
        elif ch in "{}=":
            tokens.append(Token(ch, ch, line))
            i += 1
        elif ch in "\"'":
            value, i, new_line = _read_quoted(text, i, line, source)
            tokens.append(Token("word", value, line, quoted=True))
            line = new_line
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in "{}=;":
                j += 1
            tokens.append(Token("word", text[i:j], line))
            i = j
    return tokens


def split_value(raw: str) -> list[Token]:
    """Split a command-line value into words: whitespace separates, quotes group, nothing else is special."""
    words: list[Token] = []
    i = 0
    while i < len(raw):
        if raw[i].isspace():
            i += 1
        elif raw[i] in "\"'":
            value, i, _ = _read_quoted(raw, i, 1, "command line")
            words.append(Token("word", value, 1, quoted=True))
        else:
            j = i
            while j < len(raw) and not raw[j].isspace():
                j += 1
            words.append(Token("word", raw[i:j], 1))
            i = j
    return words


def _words_text(words: list[Token]) -> str:
    """Show value words as the user typed them (for error messages)."""
    return " ".join(repr(w.text) if w.quoted and (not w.text or " " in w.text) else w.text for w in words)


# ----------------------------------------------------------------------------------------------------------
# Syntax tree (untyped)


@dataclass
class _RawDef:
    name: str
    words: list[Token]
    line: int
    attrs: dict[str, list[Token]] = field(default_factory=dict)


@dataclass
class _RawScope:
    name: str
    line: int
    children: list[_RawDef | _RawScope] = field(default_factory=list)
    attrs: dict[str, list[Token]] = field(default_factory=dict)


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Parser:
    """Recursive-descent parser from tokens to the untyped syntax tree."""

    def __init__(self, tokens: list[Token], source: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def error(self, message: str, line: int | None = None) -> PhilError:
        if line is None:
            tok = self.peek()
            line = tok.line if tok else (self.tokens[-1].line if self.tokens else 1)
        return PhilError(f"{self.source}, line {line}: {message}")

    def peek(self, ahead: int = 0) -> Token | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def skip_newlines(self) -> Token | None:
        while (tok := self.peek()) is not None and tok.kind == "nl":
            self.pos += 1
        return self.peek()

    def split_name(self, tok: Token) -> list[str]:
        parts = tok.text.split(".")
        if tok.quoted or not all(_NAME_RE.fullmatch(p) for p in parts):
            raise self.error(f"invalid parameter name {tok.text!r}", tok.line)
        return parts

    def parse_body(self, closing: bool) -> list[_RawDef | _RawScope]:
        """Parse statements up to the matching '}' (closing=True) or the end of the text."""
        items: list[_RawDef | _RawScope] = []
        last_def: _RawDef | None = None
        while True:
            tok = self.skip_newlines()
            if tok is None:
                if closing:
                    raise self.error("missing '}'")
                return items
            if tok.kind == "}":
                if not closing:
                    raise self.error("unexpected '}'", tok.line)
                self.pos += 1
                return items
            if tok.kind != "word" or tok.quoted:
                raise self.error(f"unexpected {tok.text!r}", tok.line)
            if tok.text.startswith("."):
                if last_def is None:
                    raise self.error(f"attribute {tok.text} does not follow a definition", tok.line)
                self.parse_attribute(last_def.attrs)
                continue
            item, last_def = self.parse_statement()
            items.append(item)

    def parse_statement(self) -> tuple[_RawDef | _RawScope, _RawDef | None]:
        """Parse 'name = value' or 'name [.attr = ...] { ... }' (dotted names become nested scopes)."""
        tok = self.peek()
        assert tok is not None
        parts = self.split_name(tok)
        self.pos += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "=":
            self.pos += 1
            inner: _RawDef | _RawScope = _RawDef(parts[-1], self.parse_value(tok), tok.line)
            last_def: _RawDef | None = inner
        else:
            attrs: dict[str, list[Token]] = {}
            while (nxt := self.skip_newlines()) is not None and nxt.kind == "word":
                if not nxt.text.startswith("."):
                    break
                self.parse_attribute(attrs)
            if nxt is None or nxt.kind != "{":
                raise self.error(f"expected '=' or '{{' after {tok.text!r}", tok.line)
            self.pos += 1
            inner = _RawScope(parts[-1], tok.line, self.parse_body(closing=True), attrs)
            last_def = None
        for name in reversed(parts[:-1]):
            inner = _RawScope(name, tok.line, [inner])
        return inner, last_def

    def parse_value(self, name_tok: Token) -> list[Token]:
        """Value words of a definition: the rest of the line (or the next line if this one is empty)."""
        words: list[Token] = []
        while (tok := self.peek()) is not None and tok.kind not in "{}=":
            if tok.kind == "nl":
                if words or tok.text == ";":
                    break
                self.pos += 1
                continue
            nxt = self.peek(1)
            if not tok.quoted and nxt is not None and nxt.kind in "={":
                break  # the next statement starts on this line
            words.append(tok)
            self.pos += 1
        if not words:
            raise self.error(f"missing value for {name_tok.text}", name_tok.line)
        return words

    def parse_attribute(self, attrs: dict[str, list[Token]]) -> None:
        """Parse '.name = value'; values continue over lines with adjacent quoted strings or open '('."""
        tok = self.peek()
        assert tok is not None
        name = tok.text[1:]
        self.pos += 1
        if (eq := self.peek()) is None or eq.kind != "=":
            raise self.error(f"expected '=' after {tok.text}", tok.line)
        self.pos += 1
        words: list[Token] = []
        depth = 0
        while (cur := self.peek()) is not None and cur.kind not in "{}":
            if cur.kind == "nl":
                if depth > 0 or (cur.text == "\n" and self.continues_string(words)):
                    self.pos += 1
                    continue
                break
            if cur.kind == "=" and depth == 0:
                raise self.error(f"unexpected '=' in attribute {tok.text}", cur.line)
            nxt = self.peek(1)
            if depth == 0 and words and not cur.quoted and nxt is not None and nxt.kind == "=":
                break
            words.append(cur)
            if not cur.quoted:
                depth += cur.text.count("(") - cur.text.count(")")
            self.pos += 1
        if not words:
            raise self.error(f"missing value for attribute {tok.text}", tok.line)
        attrs[name] = words

    def continues_string(self, words: list[Token]) -> bool:
        """True if the words so far are quoted and the next non-blank line starts with a quoted string."""
        if not words or not words[-1].quoted:
            return False
        i = self.pos
        while i < len(self.tokens) and self.tokens[i].kind == "nl" and self.tokens[i].text == "\n":
            i += 1
        return i < len(self.tokens) and self.tokens[i].kind == "word" and self.tokens[i].quoted


def _parse_raw(text: str, source: str) -> list[_RawDef | _RawScope]:
    """Parse PHIL text into the untyped syntax tree."""
    return _Parser(tokenize(text, source), source).parse_body(closing=False)


# ----------------------------------------------------------------------------------------------------------
# Types


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
    return _quote(text)


def _quote(text: str) -> str:
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
        return self.convert(words, path, _words_text(words))

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
        return _quote(value)


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
        return self.select(words, path, _words_text(words))

    def set_options(self, words: list[Token], path: str) -> str | None:
        """Take the option list from master words; return the starred option (or None)."""
        names = [w.text.lstrip("*") for w in words]
        starred = [n for w, n in zip(words, names, strict=True) if w.text.startswith("*")]
        bad = [n for n in names if not _NAME_RE.fullmatch(n)]
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
        if not eq or not _NAME_RE.fullmatch(key.strip()):
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


# ----------------------------------------------------------------------------------------------------------
# Typed tree

_KNOWN_ATTRIBUTES = {
    "help", "type", "multiple", "expert_level", "optional", "short_caption", "caption", "style",
    "input_size", "deprecated", "alias", "call", "sequential_format", "disable_add", "disable_delete",
}  # fmt: skip


def _join_words(words: list[Token]) -> str:
    return " ".join(w.text for w in words)


def _attr_bool(words: list[Token], where: str) -> bool:
    try:
        return BoolType().convert(words, where, _words_text(words))
    except PhilError:
        raise PhilError(f"{where}: expected True or False, got {_words_text(words)}") from None


def _attr_int(words: list[Token], where: str) -> int:
    text = _join_words(words)
    if not re.fullmatch(r"\d+", text):
        raise PhilError(f"{where}: expected a non-negative integer, got {text}")
    return int(text)


@dataclass
class _Attributes:
    """Attributes shared by definitions and scopes."""

    help: str = ""
    expert_level: int = 0
    multiple: bool = False
    optional: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, attrs: dict[str, list[Token]], where: str) -> _Attributes:
        out = cls()
        for name, words in attrs.items():
            here = f"{where}: .{name}"
            if name not in _KNOWN_ATTRIBUTES:
                raise PhilError(f"{where}: unknown attribute .{name}")
            if name == "help":
                out.help = _join_words(words)
            elif name == "expert_level":
                out.expert_level = _attr_int(words, here)
            elif name == "multiple":
                out.multiple = _attr_bool(words, here)
            elif name == "optional":
                out.optional = _attr_bool(words, here)
            elif name != "type":
                out.extra[name] = " ".join(_quote(w.text) if w.quoted else w.text for w in words)
        return out


@dataclass
class Definition:
    """A typed parameter with its master default and its current value(s)."""

    name: str
    path: str
    type: PhilType
    default: Any
    attributes: _Attributes
    value: Any = None
    values: list | None = None  # user values of a .multiple definition; None = not set

    @property
    def multiple(self) -> bool:
        return self.attributes.multiple

    @property
    def expert_level(self) -> int:
        return self.attributes.expert_level

    @property
    def help(self) -> str:
        return self.attributes.help

    def assign(self, words: list[Token]) -> None:
        """Set (or for .multiple, add) a value given as words; raises PhilError if invalid."""
        value = self.type.from_words(words, self.path)
        if not self.multiple:
            self.value = value
        elif value is None:
            self.values = []
        else:
            self.values = [*(self.values or []), value]

    def current(self) -> Any:
        """The current value; for .multiple, the list of values (without None)."""
        if not self.multiple:
            return self.value
        if self.values is not None:
            return list(self.values)
        return [] if self.default is None else [self.default]

    def is_changed(self) -> bool:
        """True if the current value differs from the master default."""
        if self.multiple:
            defaults = [] if self.default is None else [self.default]
            return self.values is not None and self.current() != defaults
        return self.value != self.default or type(self.value) is not type(self.default)

    def extract(self) -> Any:
        """The Python value for extracted parameters."""
        return copy.deepcopy(self.current())

    def value_text(self, value: Any) -> str:
        """Render one value (None and Auto included) as PHIL text."""
        if value is None:
            return self.type.to_text(None) if isinstance(self.type, ChoiceType) else "None"
        if value is Auto:
            return "Auto"
        return self.type.to_text(value)


@dataclass
class Scope:
    """A scope of definitions and sub-scopes; a .multiple scope also holds its user instances."""

    name: str
    path: str
    attributes: _Attributes
    children: list[Definition | Scope] = field(default_factory=list)
    instances: list[Scope] = field(default_factory=list)

    @property
    def multiple(self) -> bool:
        return self.attributes.multiple

    @property
    def expert_level(self) -> int:
        return self.attributes.expert_level

    @property
    def help(self) -> str:
        return self.attributes.help

    def copy(self) -> Scope:
        """An independent deep copy (use one per set of user arguments; the master stays untouched)."""
        return copy.deepcopy(self)

    def child(self, name: str) -> Definition | Scope | None:
        """The direct child with this name, or None."""
        return next((c for c in self.children if c.name == name), None)

    def get(self, path: str) -> Definition | Scope:
        """The object at a dotted path relative to this scope (templates for .multiple scopes)."""
        node: Definition | Scope = self
        for name in path.split("."):
            found = node.child(name) if isinstance(node, Scope) else None
            if found is None:
                raise PhilError(f"No such parameter: {path}")
            node = found
        return node

    def iter_definitions(self) -> Iterator[Definition]:
        """All definitions of the master structure, depth first, in tree order."""
        for c in self.children:
            if isinstance(c, Definition):
                yield c
            else:
                yield from c.iter_definitions()

    def new_instance(self) -> Scope:
        """Add and return a fresh instance of this .multiple scope, with master defaults."""
        inst = copy.deepcopy(self)
        inst.instances = []
        self.instances.append(inst)
        return inst

    def extract(self) -> ExtractedScope:
        """Nested attribute objects holding the current values."""
        out = ExtractedScope()
        for c in self.children:
            if isinstance(c, Scope) and c.multiple:
                setattr(out, c.name, [inst.extract() for inst in c.instances])
            else:
                setattr(out, c.name, c.extract())
        return out

    def apply_phil(self, text: str, source: str = "<string>") -> None:
        """Apply user PHIL text; unrecognised definitions raise one PhilError naming the source and them."""
        unknown: list[str] = []
        _apply_items(self, _parse_raw(text, source), unknown, source)
        if unknown:
            paths = [d.path for d in self.iter_definitions()]
            described = []
            for name in unknown:
                close = _close_paths(name, paths)
                described.append(f"{name} (did you mean {' or '.join(close)}?)" if close else name)
            raise PhilError(f"{source}: unrecognised parameter definitions: {', '.join(described)}")

    def as_str(self, expert_level: int | None = None, attributes_level: int = 0) -> str:
        """Render as PHIL text, showing items with expert level <= expert_level (None = all)."""
        lines: list[str] = []
        for c in self.children:
            _render(c, lines, 0, 0, expert_level, attributes_level)
        return "".join(line + "\n" for line in lines)

    def diff_str(self) -> str:
        """PHIL text of only the definitions whose value differs from the master default ('' if none)."""
        lines: list[str] = []
        for c in self.children:
            _render_diff(c, lines, 0)
        return "".join(line + "\n" for line in lines)


def _build(items: list[_RawDef | _RawScope], parent: str, source: str) -> list[Definition | Scope]:
    """Build typed master nodes from syntax-tree items."""
    out: list[Definition | Scope] = []
    for item in _merge_scopes(items):
        path = f"{parent}.{item.name}" if parent else item.name
        if any(o.name == item.name for o in out):
            raise PhilError(f"{source}, line {item.line}: {path} is defined twice")
        if isinstance(item, _RawScope):
            attrs = _Attributes.from_raw(item.attrs, f"{source}, line {item.line}: {path}")
            out.append(Scope(item.name, path, attrs, _build(item.children, path, source)))
        else:
            out.append(_build_definition(item, path, source))
    return out


def _merge_scopes(items: list[_RawDef | _RawScope]) -> list[_RawDef | _RawScope]:
    """Join repeated scopes of the same name (as 'a.b = 1' and 'a.c = 2' give) into the first one."""
    out: list[_RawDef | _RawScope] = []
    scopes: dict[str, _RawScope] = {}
    for item in items:
        if isinstance(item, _RawScope) and item.name in scopes:
            scopes[item.name].children.extend(item.children)
            scopes[item.name].attrs.update(item.attrs)
            continue
        if isinstance(item, _RawScope):
            # A copy, because later blocks are added to it.
            item = _RawScope(item.name, item.line, list(item.children), dict(item.attrs))
            scopes[item.name] = item
        out.append(item)
    return out


def _build_definition(item: _RawDef, path: str, source: str) -> Definition:
    where = f"{source}, line {item.line}: {path}"
    attrs = _Attributes.from_raw(item.attrs, where)
    type_words = item.attrs.get("type")
    ptype = make_type("".join(w.text for w in type_words) if type_words else "str", where)
    try:
        default = ptype.from_words(item.words, path, master=True)
    except PhilError as exc:
        raise PhilError(f"{source}, line {item.line}: {exc}") from None
    return Definition(item.name, path, ptype, default, attrs, value=copy.deepcopy(default))


def parse(text: str, source: str = "<string>") -> Scope:
    """Parse master PHIL text (with types and attributes) into a root Scope."""
    return Scope("", "", _Attributes(), _build(_parse_raw(text, source), "", source))


# ----------------------------------------------------------------------------------------------------------
# Applying user values


def _apply_items(target: Scope, items: list[_RawDef | _RawScope], unknown: list[str], source: str) -> None:
    """Apply syntax-tree items onto a working scope, collecting unknown paths."""
    for item in items:
        node = target.child(item.name)
        where = f"{target.path}.{item.name}" if target.path else item.name
        if isinstance(item, _RawDef):
            if isinstance(node, Definition):
                try:
                    node.assign(item.words)
                except PhilError as exc:
                    raise PhilError(f"{source}, line {item.line}: {exc}") from None
            else:
                unknown.append(where)
        elif isinstance(node, Scope) and node.multiple:
            instance = node.new_instance()
            _apply_items(instance, item.children, unknown, source)
            if not instance.diff_str():
                # All defaults (e.g. the template in a saved -c listing): not a real instance.
                node.instances.remove(instance)
        elif isinstance(node, Scope):
            _apply_items(node, item.children, unknown, source)
        else:
            unknown.append(where)


def _render_attributes(node: Definition | Scope, indent: str, level: int) -> list[str]:
    """Attribute lines: help at level >= 1, type at >= 2, everything at >= 3."""
    attrs, lines = node.attributes, []
    if level >= 1 and attrs.help:
        lines.extend(_help_lines(attrs.help, indent))
    if level >= 2 and isinstance(node, Definition):
        lines.append(f"{indent}.type = {node.type.spec()}")
    if level >= 3:
        if attrs.multiple:
            lines.append(f"{indent}.multiple = True")
        if attrs.optional is not None:
            lines.append(f"{indent}.optional = {attrs.optional}")
        lines.extend(f"{indent}.{k} = {v}" for k, v in attrs.extra.items())
        if attrs.expert_level:
            lines.append(f"{indent}.expert_level = {attrs.expert_level}")
    return lines


def _help_chunks(text: str, width: int) -> list[str]:
    """Split help at single spaces so that joining the chunks with ' ' gives the text back exactly."""
    chunks = []
    while len(text) > width:
        cut = text.rfind(" ", 1, width + 1)
        if cut <= 0:
            cut = text.find(" ", width)
            if cut <= 0:
                break
        chunks.append(text[:cut])
        text = text[cut + 1 :]
    chunks.append(text)
    return chunks


def _help_lines(text: str, indent: str) -> list[str]:
    width = max(30, 79 - len(indent) - 10)
    chunks = [_quote_help(c) for c in _help_chunks(text, width)]
    pad = " " * len(f"{indent}.help = ")
    return [f"{indent}.help = {chunks[0]}"] + [pad + c for c in chunks[1:]]


def _quote_help(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _render(
    node: Definition | Scope, lines: list[str], depth: int, level: int, max_e: int | None, attrs: int
) -> None:
    """Append the lines of one node (respecting the expert-level filter)."""
    level = max(level, node.expert_level)
    if max_e is not None and level > max_e:
        return
    indent = "  " * depth
    if isinstance(node, Definition):
        values = node.current() if node.multiple else [node.value]
        for value in values or [None]:
            lines.append(f"{indent}{node.name} = {node.value_text(value)}".rstrip())
        lines.extend(_render_attributes(node, indent + "  ", attrs))
        return
    for scope in (node.instances or [node]) if node.multiple else [node]:
        body: list[str] = []
        for c in scope.children:
            _render(c, body, depth + 1, level, max_e, attrs)
        if scope.children and not body:
            continue  # every child is hidden at this expert level
        _render_scope_lines(scope, lines, body, indent, attrs)


def _render_scope_lines(scope: Scope, lines: list[str], body: list[str], indent: str, attrs: int) -> None:
    header = _render_attributes(scope, indent + "  ", attrs)
    if header:
        lines.append(f"{indent}{scope.name}")
        lines.extend(header)
        lines.append(f"{indent}{{")
    else:
        lines.append(f"{indent}{scope.name} {{")
    lines.extend(body)
    lines.append(f"{indent}}}")


def _render_diff(node: Definition | Scope, lines: list[str], depth: int) -> None:
    indent = "  " * depth
    if isinstance(node, Definition):
        if node.is_changed():
            for value in (node.current() if node.multiple else [node.value]) or [None]:
                lines.append(f"{indent}{node.name} = {node.value_text(value)}".rstrip())
        return
    for scope in node.instances if node.multiple else [node]:
        body: list[str] = []
        for c in scope.children:
            _render_diff(c, body, depth + 1)
        if body:
            _render_scope_lines(scope, lines, body, indent, 0)


# ----------------------------------------------------------------------------------------------------------
# Command-line argument interpreter


def _close_paths(text: str, paths: list[str]) -> list[str]:
    """Up to five paths whose last components, or whole text, closely resemble the given name."""
    n = text.count(".") + 1
    tails: dict[str, list[str]] = {}
    for p in paths:
        tails.setdefault(".".join(p.split(".")[-n:]), []).append(p)
    found = [p for t in difflib.get_close_matches(text, list(tails), n=5, cutoff=0.75) for p in tails[t]]
    found += difflib.get_close_matches(text, paths, n=3, cutoff=0.75)
    return list(dict.fromkeys(found))[:5]


def _score(path: str, text: str) -> int:
    """Match quality of a definition path for a command-line name (SPEC 7.1)."""
    if path == text:
        return 8
    if path.endswith("." + text):
        return 4
    if path.endswith(text):
        return 3
    return 1 if text in path else 0


class ArgumentInterpreter:
    """Resolves command-line 'name=value' arguments against a master tree's definition paths."""

    def __init__(self, master: Scope) -> None:
        self.master = master
        self.definitions = list(master.iter_definitions())

    def resolve(self, text: str) -> tuple[Definition, str | None]:
        """Return the master definition for a (possibly partial) name and a warning, or raise PhilError.

        The best score must be unique. If several tie, one is still chosen (with a warning) when it is
        strictly shallower than all the others, or else when it is the only one outside the scopes of
        alternative algorithms, i.e. scopes named after a non-default option of a sibling choice
        (so ``global_threshold`` means ``threshold.dispersion.global_threshold``, not ``helen``'s).
        """
        text = text.strip()
        scored = [(d, _score(d.path, text)) for d in self.definitions] if text else []
        best = max((s for _, s in scored), default=0)
        if best == 0:
            raise PhilError(self.unknown_message(text))
        tied = [d for d, s in scored if s == best]
        if len(tied) == 1:
            return tied[0], None
        chosen = self.break_tie(tied)
        names = ", ".join(d.path for d in tied)
        if chosen is None:
            raise PhilError(f"Ambiguous parameter definition: {text}. Best matches: {names}")
        others = ", ".join(d.path for d in tied if d is not chosen)
        warning = (
            f"Ambiguous parameter {text} taken as {chosen.path} (it also matches {others}); "
            f"give the full path to choose another"
        )
        return chosen, warning

    def break_tie(self, tied: list[Definition]) -> Definition | None:
        """The single preferred definition among equally scored ones, or None."""
        depths = [d.path.count(".") for d in tied]
        shallow = [d for d, n in zip(tied, depths, strict=True) if n == min(depths)]
        if len(shallow) == 1:
            return shallow[0]
        preferred = [d for d in tied if not self.in_alternative_scope(d)]
        return preferred[0] if len(preferred) == 1 else None

    def in_alternative_scope(self, definition: Definition) -> bool:
        """True if an enclosing scope is named after a non-default option of a choice beside it."""
        parts = definition.path.split(".")
        for i in range(len(parts) - 1):
            parent = self.master.get(".".join(parts[:i])) if i > 0 else self.master
            assert isinstance(parent, Scope)
            for sibling in parent.children:
                if (
                    isinstance(sibling, Definition)
                    and isinstance(sibling.type, ChoiceType)
                    and parts[i] in sibling.type.options
                    and sibling.default != parts[i]
                ):
                    return True
        return False

    def unknown_message(self, text: str) -> str:
        """'Unknown parameter: x' with close matches (by last components and by full path)."""
        suggestions = _close_paths(text, [d.path for d in self.definitions])
        if not suggestions:
            return f"Unknown parameter: {text}"
        return f"Unknown parameter: {text}. Did you mean: {', '.join(suggestions)}?"

    def assign(self, working: Scope, argument: str) -> str | None:
        """Apply one 'name=value' argument to a working copy of the master; return a warning or None."""
        name, eq, raw = argument.partition("=")
        if not eq:
            raise PhilError(f"Not a parameter assignment: {argument}")
        definition, warning = self.resolve(name)
        words = split_value(raw)
        if not words:
            raise PhilError(f"{definition.path}=: missing value")
        item: _RawDef | _RawScope = _RawDef(definition.name, words, 1)
        for part in reversed(definition.path.split(".")[:-1]):
            item = _RawScope(part, 1, [item])
        unknown: list[str] = []
        try:
            _apply_items(working, [item], unknown, "command line")
        except PhilError as exc:
            raise PhilError(str(exc).removeprefix("command line, line 1: ")) from None
        assert not unknown, unknown  # the path came from the master itself
        return warning
