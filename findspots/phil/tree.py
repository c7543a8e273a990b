"""The typed PHIL tree: build it from master text, apply user text to a copy, extract values, render text."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from findspots.phil.base import Auto, ExtractedScope, PhilError
from findspots.phil.syntax import RawDef, RawScope, parse_raw
from findspots.phil.tokens import Token, words_text
from findspots.phil.types import BoolType, ChoiceType, PhilType, make_type, quote

_KNOWN_ATTRIBUTES = {
    "help", "type", "multiple", "expert_level", "optional", "short_caption", "caption", "style",
    "input_size", "deprecated", "alias", "call", "sequential_format", "disable_add", "disable_delete",
}  # fmt: skip


def _join_words(words: list[Token]) -> str:
    return " ".join(w.text for w in words)


def _attr_bool(words: list[Token], where: str) -> bool:
    try:
        return BoolType().convert(words, where, words_text(words))
    except PhilError:
        raise PhilError(f"{where}: expected True or False, got {words_text(words)}") from None


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
                out.extra[name] = " ".join(quote(w.text) if w.quoted else w.text for w in words)
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
        apply_items(self, parse_raw(text, source), unknown, source)
        if unknown:
            paths = [d.path for d in self.iter_definitions()]
            described = []
            for name in unknown:
                close = close_paths(name, paths)
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


def _build(items: list[RawDef | RawScope], parent: str, source: str) -> list[Definition | Scope]:
    """Build typed master nodes from syntax-tree items."""
    out: list[Definition | Scope] = []
    for item in _merge_scopes(items):
        path = f"{parent}.{item.name}" if parent else item.name
        if any(o.name == item.name for o in out):
            raise PhilError(f"{source}, line {item.line}: {path} is defined twice")
        if isinstance(item, RawScope):
            attrs = _Attributes.from_raw(item.attrs, f"{source}, line {item.line}: {path}")
            out.append(Scope(item.name, path, attrs, _build(item.children, path, source)))
        else:
            out.append(_build_definition(item, path, source))
    return out


def _merge_scopes(items: list[RawDef | RawScope]) -> list[RawDef | RawScope]:
    """Join repeated scopes of the same name (as 'a.b = 1' and 'a.c = 2' give) into the first one."""
    out: list[RawDef | RawScope] = []
    scopes: dict[str, RawScope] = {}
    for item in items:
        if isinstance(item, RawScope) and item.name in scopes:
            scopes[item.name].children.extend(item.children)
            scopes[item.name].attrs.update(item.attrs)
            continue
        if isinstance(item, RawScope):
            # A copy, because later blocks are added to it.
            item = RawScope(item.name, item.line, list(item.children), dict(item.attrs))
            scopes[item.name] = item
        out.append(item)
    return out


def _build_definition(item: RawDef, path: str, source: str) -> Definition:
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
    return Scope("", "", _Attributes(), _build(parse_raw(text, source), "", source))


def apply_items(target: Scope, items: list[RawDef | RawScope], unknown: list[str], source: str) -> None:
    """Apply syntax-tree items onto a working scope, collecting unknown paths."""
    for item in items:
        node = target.child(item.name)
        where = f"{target.path}.{item.name}" if target.path else item.name
        if isinstance(item, RawDef):
            if isinstance(node, Definition):
                try:
                    node.assign(item.words)
                except PhilError as exc:
                    raise PhilError(f"{source}, line {item.line}: {exc}") from None
            else:
                unknown.append(where)
        elif isinstance(node, Scope) and node.multiple:
            instance = node.new_instance()
            apply_items(instance, item.children, unknown, source)
            if not instance.diff_str():
                # All defaults (e.g. the template in a saved -c listing): not a real instance.
                node.instances.remove(instance)
        elif isinstance(node, Scope):
            apply_items(node, item.children, unknown, source)
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


def close_paths(text: str, paths: list[str]) -> list[str]:
    """Up to five paths whose last components, or whole text, closely resemble the given name."""
    n = text.count(".") + 1
    tails: dict[str, list[str]] = {}
    for p in paths:
        tails.setdefault(".".join(p.split(".")[-n:]), []).append(p)
    found = [p for t in difflib.get_close_matches(text, list(tails), n=5, cutoff=0.75) for p in tails[t]]
    found += difflib.get_close_matches(text, paths, n=3, cutoff=0.75)
    return list(dict.fromkeys(found))[:5]
