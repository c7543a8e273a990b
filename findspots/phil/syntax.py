"""The untyped PHIL syntax tree: a recursive-descent parser from tokens to definitions and scopes.

Nothing here knows types: values and attributes stay as the words the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from findspots.phil.base import PhilError
from findspots.phil.tokens import Token, tokenize


@dataclass
class RawDef:
    """A definition as written: its name, value words, line and attribute words."""

    name: str
    words: list[Token]
    line: int
    attrs: dict[str, list[Token]] = field(default_factory=dict)


@dataclass
class RawScope:
    """A scope as written: its name, line, items and attribute words."""

    name: str
    line: int
    children: list[RawDef | RawScope] = field(default_factory=list)
    attrs: dict[str, list[Token]] = field(default_factory=dict)


# One component of a dotted parameter name (also the form of a choice option).
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
        if tok.quoted or not all(NAME_RE.fullmatch(p) for p in parts):
            raise self.error(f"invalid parameter name {tok.text!r}", tok.line)
        return parts

    def parse_body(self, closing: bool) -> list[RawDef | RawScope]:
        """Parse statements up to the matching '}' (closing=True) or the end of the text."""
        items: list[RawDef | RawScope] = []
        last_def: RawDef | None = None
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

    def parse_statement(self) -> tuple[RawDef | RawScope, RawDef | None]:
        """Parse 'name = value' or 'name [.attr = ...] { ... }' (dotted names become nested scopes)."""
        tok = self.peek()
        assert tok is not None
        parts = self.split_name(tok)
        self.pos += 1
        nxt = self.peek()
        if nxt is not None and nxt.kind == "=":
            self.pos += 1
            inner: RawDef | RawScope = RawDef(parts[-1], self.parse_value(tok), tok.line)
            last_def: RawDef | None = inner
        else:
            attrs: dict[str, list[Token]] = {}
            while (nxt := self.skip_newlines()) is not None and nxt.kind == "word":
                if not nxt.text.startswith("."):
                    break
                self.parse_attribute(attrs)
            if nxt is None or nxt.kind != "{":
                raise self.error(f"expected '=' or '{{' after {tok.text!r}", tok.line)
            self.pos += 1
            inner = RawScope(parts[-1], tok.line, self.parse_body(closing=True), attrs)
            last_def = None
        for name in reversed(parts[:-1]):
            inner = RawScope(name, tok.line, [inner])
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


def parse_raw(text: str, source: str) -> list[RawDef | RawScope]:
    """Parse PHIL text into the untyped syntax tree."""
    return _Parser(tokenize(text, source), source).parse_body(closing=False)
