"""A small PHIL parameter system (the subset of the DIALS/cctbx format that findspots needs).

Written from scratch from the behaviour of DIALS/cctbx ``libtbx.phil`` (see ``docs/dials-behaviour.md#phil``);
nothing here is specific to spot finding.

Modules, in dependency order: :mod:`~findspots.phil.base` (``PhilError``, ``Auto``, extracted values),
:mod:`~findspots.phil.tokens` (lexer), :mod:`~findspots.phil.syntax` (untyped syntax tree),
:mod:`~findspots.phil.types` (``.type`` conversions), :mod:`~findspots.phil.tree` (typed tree: parse,
apply, extract, render), :mod:`~findspots.phil.arguments` (command-line names).

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

Command-line names (``ArgumentInterpreter``) may be partial: ``nproc=4`` finds ``spotfinder.mp.nproc``
(the scores and tie-breaks are in :mod:`~findspots.phil.arguments`).
"""

from findspots.phil.arguments import ArgumentInterpreter
from findspots.phil.base import Auto, ExtractedScope, PhilError, to_dict
from findspots.phil.tokens import split_value, tokenize
from findspots.phil.tree import Definition, Scope, parse
from findspots.phil.types import ChoiceType, PhilType, make_type

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
