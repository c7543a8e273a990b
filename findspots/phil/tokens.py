"""PHIL lexing: text to tokens, and a command-line value to words."""

from __future__ import annotations

from dataclasses import dataclass

from findspots.phil.base import PhilError


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


def words_text(words: list[Token]) -> str:
    """Show value words as the user typed them (for error messages)."""
    return " ".join(repr(w.text) if w.quoted and (not w.text or " " in w.text) else w.text for w in words)
