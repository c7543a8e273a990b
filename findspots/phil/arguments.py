"""The command-line argument interpreter: ``name=value`` with partial names, resolved against a master tree.

Scores: 8 exact path, 4 path ends with "." + name, 3 path ends with name, 1 substring; the best must be
unique, apart from the two tie-breaks documented in ``ArgumentInterpreter.resolve`` (which warn).
"""

from __future__ import annotations

from findspots.phil.base import PhilError
from findspots.phil.syntax import RawDef, RawScope
from findspots.phil.tokens import split_value
from findspots.phil.tree import Definition, Scope, apply_items, close_paths
from findspots.phil.types import ChoiceType


def _score(path: str, text: str) -> int:
    """Match quality of a definition path for a command-line name (docs/dials-behaviour.md#command-line)."""
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
        suggestions = close_paths(text, [d.path for d in self.definitions])
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
        item: RawDef | RawScope = RawDef(definition.name, words, 1)
        for part in reversed(definition.path.split(".")[:-1]):
            item = RawScope(part, 1, [item])
        unknown: list[str] = []
        try:
            apply_items(working, [item], unknown, "command line")
        except PhilError as exc:
            raise PhilError(str(exc).removeprefix("command line, line 1: ")) from None
        assert not unknown, unknown  # the path came from the master itself
        return warning
