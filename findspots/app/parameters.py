"""Command-line parameters of findspots: the master tree (spotfinder.phil) and argument parsing.

``parse_arguments(argv)`` handles, in command-line order:

* options: ``-c/--show-config``, ``-e/--expert-level N`` (``-e1``, ``-e 1``, ``--expert-level=1``),
  ``-a/--attributes-level N``, ``-v`` (repeatable, ``-vv``), ``--phil FILE`` (repeatable, ``-`` = stdin),
  ``-h/--help`` (``-hh`` shows expert level 1, ``-hhh`` level 2); short options combine (``-ce1``);
  ``--`` ends the options;
* PHIL files: positional arguments ending ``.phil .param .params .eff .def``;
* assignments ``name=value`` (partial names are resolved as described in :mod:`findspots.phil`);
* data: everything else; globs (``*``, ``?``, ``[``) are expanded and sorted.

With ``-c`` or ``-h`` the positional arguments are not interpreted at all (as in DIALS, the configuration
shown is the defaults), so ``params`` holds the defaults and ``data_args`` is empty.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from findspots import phil
from findspots.phil import PhilError

__all__ = [
    "MASTER_PHIL",
    "PHIL_EXTENSIONS",
    "ArgumentError",
    "ParsedArguments",
    "PhilError",
    "format_config",
    "master",
    "parse_arguments",
]

MASTER_PHIL = resources.files("findspots.phil").joinpath("spotfinder.phil")  # package data, also in a wheel
PHIL_EXTENSIONS = (".phil", ".param", ".params", ".eff", ".def")
_GLOB_CHARS = "*?["


class ArgumentError(PhilError):
    """A bad command-line option or data argument (one-line message)."""


@functools.lru_cache(maxsize=1)
def master() -> phil.Scope:
    """The parsed master tree (cached; treat as read-only and work on ``master().copy()``)."""
    return phil.parse(MASTER_PHIL.read_text(), source=MASTER_PHIL.name)


@dataclass
class ParsedArguments:
    """Result of parse_arguments: extracted parameters, data arguments and display options."""

    params: Any
    data_args: list[str]
    modified: str
    warnings: list[str]
    show_config: bool
    expert_level: int
    attributes_level: int
    verbosity: int
    help: int = 0  # how many -h were given (0: no help wanted)

    @property
    def show_help(self) -> bool:
        """True when -h/--help was given."""
        return self.help > 0


@dataclass
class _Options:
    show_config: bool = False
    help_count: int = 0
    verbose: int = 0
    expert_level: int | None = None
    attributes_level: int | None = None
    items: list[tuple[str, str]] = field(default_factory=list)  # ("phil", path) or ("arg", text), in order


def _level(option: str, text: str | None) -> int:
    if text is None:
        raise ArgumentError(f"Option {option} needs a value")
    if not text.isdigit():
        raise ArgumentError(f"Option {option} expects a non-negative integer, got {text!r}")
    return int(text)


_LONG_FLAGS = {"--show-config": "c", "--help": "h", "--verbose": "v"}
_LONG_VALUES = {"--expert-level": "e", "--attributes-level": "a", "--phil": "p"}


def _scan_options(argv: list[str]) -> _Options:
    """Separate options from positional arguments (kept in order)."""
    opts = _Options()
    args = iter(argv)
    for arg in args:
        if arg == "--":
            opts.items.extend(("arg", a) for a in args)
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _LONG_FLAGS and not eq:
                _set_flag(opts, _LONG_FLAGS[name])
            elif name in _LONG_VALUES:
                _set_value(opts, _LONG_VALUES[name], name, value if eq else next(args, None))
            else:
                raise ArgumentError(f"Unknown option: {arg}")
        elif arg.startswith("-") and len(arg) > 1:
            _scan_short(opts, arg, args)
        else:
            opts.items.append(("arg", arg))
    return opts


def _scan_short(opts: _Options, arg: str, args: Any) -> None:
    """Handle a cluster of short options such as -vv, -c, -e1, -ce 2."""
    for i, letter in enumerate(arg[1:], start=1):
        if letter in "chv":
            _set_flag(opts, letter)
        elif letter in "ea":
            rest = arg[i + 1 :]
            _set_value(opts, letter, f"-{letter}", rest if rest else next(args, None))
            return
        else:
            raise ArgumentError(f"Unknown option: -{letter} (in {arg})")


def _set_flag(opts: _Options, letter: str) -> None:
    if letter == "c":
        opts.show_config = True
    elif letter == "h":
        opts.help_count += 1
    else:
        opts.verbose += 1


def _set_value(opts: _Options, letter: str, option: str, value: str | None) -> None:
    if letter == "p":
        if value is None:
            raise ArgumentError(f"Option {option} needs a file name")
        opts.items.append(("phil", value))
    elif letter == "e":
        opts.expert_level = _level(option, value)
    else:
        opts.attributes_level = _level(option, value)


def _read_phil_file(path: str) -> tuple[str, str]:
    """Return (text, source name) of a PHIL file; '-' reads standard input."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(), path
    except OSError as exc:
        raise ArgumentError(f"Cannot read parameter file {path}: {exc.strerror or exc}") from None


def _is_assignment(arg: str) -> bool:
    # a URL with "=" in its query is data, but name=tcp://HOST:PORT (input.stream) is an assignment
    url = "://" in arg and not re.match(r"[A-Za-z_][\w.]*=", arg)
    return "=" in arg and not url and not os.path.exists(arg)


def _expand_data(arg: str) -> list[str]:
    """A data argument, or the sorted files matching it if it is a glob pattern."""
    if os.path.exists(arg) or "://" in arg or not any(c in arg for c in _GLOB_CHARS):
        return [arg]
    matches = sorted(glob.glob(arg))
    if not matches:
        raise ArgumentError(f"No files match: {arg}; check the directory and the pattern")
    return matches


# The parameters whose code understands Auto. PHIL (as libtbx's) accepts Auto for any parameter;
# anywhere else it would reach the spot finder as a value it cannot use (d_min=Auto crashed it).
AUTO_ALLOWED = frozenset(
    {
        "verbosity",
        "spotfinder.filter.min_spot_size",
        "spotfinder.mp.nproc",
        "spotfinder.mp.chunksize",
        "spotfinder.threshold.dispersion.global_threshold",
    }
)


def _check_auto(values: Any, path: str = "") -> None:
    """ArgumentError for Auto given to a parameter without an automatic value."""
    if isinstance(values, dict):
        for key, value in values.items():
            _check_auto(value, f"{path}.{key}" if path else key)
    elif isinstance(values, list):
        for value in values:
            _check_auto(value, path)
    elif values is phil.Auto and path not in AUTO_ALLOWED:
        raise ArgumentError(f"{path}=Auto: this parameter has no automatic value; give a value or None")


def _base_verbosity(value: Any) -> int:
    if value is phil.Auto:
        return 1
    return value if isinstance(value, int) else 0


def parse_arguments(argv: list[str]) -> ParsedArguments:
    """Interpret command-line arguments (without the program name); bad ones raise PhilError."""
    opts = _scan_options(argv)
    show_help = opts.help_count > 0
    expert_level = opts.expert_level
    if expert_level is None:
        expert_level = opts.help_count - 1 if show_help else 0
    attributes_level = opts.attributes_level
    if attributes_level is None:
        attributes_level = opts.verbose if show_help else 0
    working = master().copy()
    warnings: list[str] = []
    data_args: list[str] = []
    if not (opts.show_config or show_help):
        data_args = _apply_items(working, opts.items, warnings)
    params = working.extract()
    _check_auto(phil.to_dict(params))
    return ParsedArguments(
        params=params,
        data_args=data_args,
        modified=working.diff_str(),
        warnings=warnings,
        show_config=opts.show_config,
        expert_level=expert_level,
        attributes_level=attributes_level,
        verbosity=_base_verbosity(params.verbosity) + opts.verbose,
        help=opts.help_count,
    )


def _apply_items(working: phil.Scope, items: list[tuple[str, str]], warnings: list[str]) -> list[str]:
    """Apply PHIL files and assignments in order; return the data arguments."""
    interpreter = phil.ArgumentInterpreter(master())
    data_args: list[str] = []
    for kind, arg in items:
        if kind == "arg" and _is_assignment(arg):
            warning = interpreter.assign(working, arg)
            if warning:
                warnings.append(warning)
        elif kind == "phil" or arg.lower().endswith(PHIL_EXTENSIONS):
            if kind == "arg" and not os.path.isfile(arg):
                raise ArgumentError(f"Parameter file not found: {arg}; check the path")
            working.apply_phil(*_read_phil_file(arg))
        else:
            data_args.extend(_expand_data(arg))
    return data_args


def format_config(expert_level: int = 0, attributes_level: int = 0) -> str:
    """The text printed by -c: a header then the default parameter tree."""
    header = (
        "Showing configuration parameters with:\n"
        f"  attributes_level = {attributes_level}\n"
        f"  expert_level = {expert_level}\n"
        "\n"
    )
    return header + master().as_str(expert_level=expert_level, attributes_level=attributes_level)
