"""Tests of the generic PHIL engine (findspots.phil), on small master trees."""

from __future__ import annotations

import ast
import copy
import pickle
from pathlib import Path

import pytest

from findspots import phil
from findspots.phil import Auto, PhilError

MASTER = """
# a comment line
top = 1
  .help = "A top-level"
          "integer."   # adjacent strings join with one space
  .type = int(value_min=0, value_max=10)
flag = False
  .type = bool
outer
  .help = "Outer scope."
  .expert_level = 1
{
  name = 'a b'
    .type = str
  hidden = 2.5
    .type = float(allow_none=True)
    .expert_level = 2
}
plain {
  pair = 3 3
    .help = "Two ints."
    .type = ints(size=2, value_min=0)
  cell = 4.498,4.498,7.338,90,90,120
    .type = unit_cell
  group = 194
    .type = space_group
  mode = *fast slow
    .type = choice
  blur = narrow wide
    .type = choice
  auto_int = Auto
    .type = int(value_min=1, allow_none=True)
  words = None
    .type = strings
  ranges = None
    .type = floats(size=2)
    .multiple = True
  with_default = 5
    .type = int
    .multiple = True
  region
    .multiple = True
  {
    panel = 0
      .type = int
    circle = None
      .type = ints(size=3)
  }
}
"""


@pytest.fixture
def master() -> phil.Scope:
    return phil.parse(MASTER, "test.phil")


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_extracts_typed_defaults(master: phil.Scope) -> None:
    p = master.extract()
    assert p.top == 1
    assert p.flag is False
    assert p.outer.name == "a b"
    assert p.outer.hidden == 2.5
    assert p.plain.pair == [3, 3]
    assert p.plain.cell == (4.498, 4.498, 7.338, 90.0, 90.0, 120.0)
    assert p.plain.group == 194
    assert p.plain.mode == "fast"
    assert p.plain.blur is None
    assert p.plain.auto_int is Auto
    assert p.plain.words is None
    assert p.plain.ranges == []
    assert p.plain.with_default == [5]
    assert p.plain.region == []


def test_help_strings_concatenate_with_a_space(master: phil.Scope) -> None:
    assert master.get("top").help == "A top-level integer."
    assert master.get("outer").help == "Outer scope."


def test_attributes_and_paths(master: phil.Scope) -> None:
    hidden = master.get("outer.hidden")
    assert isinstance(hidden, phil.Definition)
    assert hidden.path == "outer.hidden"
    assert hidden.expert_level == 2
    assert master.get("outer").expert_level == 1
    assert master.get("plain.ranges").multiple is True
    assert master.get("plain.region").multiple is True
    assert [d.path for d in master.iter_definitions()][:3] == ["top", "flag", "outer.name"]


def test_semicolons_dotted_names_and_comments() -> None:
    m = phil.parse("a.b.c = 1 ; a.b.d = 'x#y' # comment\ne = x#y\n  .type = str")
    p = m.extract()
    assert p.a.b.c == "1" and p.a.b.d == "x#y"
    assert p.e == "x#y"  # '#' inside a word is not a comment


def test_several_definitions_on_one_line() -> None:
    m = phil.parse("s { x = 1\n .type = int\n y = 2\n .type = int }")
    w = m.copy()
    w.apply_phil("s { x = 5 y = 6 }")
    assert w.extract().s.x == 5 and w.extract().s.y == 6


def test_escaped_quotes() -> None:
    m = phil.parse("""a = 'it\\'s'\nb = "say \\"hi\\""\nc = 'C:\\data\\mask'""")
    p = m.extract()
    assert p.a == "it's"
    assert p.b == 'say "hi"'
    assert p.c == "C:\\data\\mask"  # a backslash before anything but the quote is kept


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("a {\n b = 1\n", "missing '}'"),
        ("a = 1\n}", "unexpected '}'"),
        ("a = \n", "missing value for a"),
        ("a = 1\n .type = widget", "unknown type 'widget'"),
        ("a = 1\n .typo = int", "unknown attribute .typo"),
        ("a = 1\na = 2", "a is defined twice"),
        ("a = 0\n .type = int(value_min=1)", "a=0: value must be >= 1"),
        ("a = 'open", "unterminated quoted string"),
        ("a = 1\n .type = int(foo=1)", "does not take foo"),
        ("s\n", "expected '=' or '{' after 's'"),
        (".help = 'x'", "does not follow a definition"),
        ("a = *x *y\n .type = choice", "more than one option is selected"),
        ("a = 1\n .expert_level = high", "expected a non-negative integer"),
    ],
)
def test_master_syntax_errors(text: str, fragment: str) -> None:
    with pytest.raises(PhilError) as err:
        phil.parse(text, "bad.phil")
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("bad.phil")


def test_phil_error_is_a_value_error_with_one_line() -> None:
    err = PhilError("first\nsecond")
    assert isinstance(err, ValueError)
    assert str(err) == "first second"


# ---------------------------------------------------------------------------------------------- types


def _convert(type_spec: str, value: str, path: str = "x.y") -> object:
    return phil.make_type(type_spec).from_words(phil.split_value(value), path)


@pytest.mark.parametrize("text", ["True", "true", "YES", "on", "1"])
def test_bool_true_words(text: str) -> None:
    assert _convert("bool", text) is True


@pytest.mark.parametrize("text", ["False", "false", "No", "OFF", "0"])
def test_bool_false_words(text: str) -> None:
    assert _convert("bool", text) is False


def test_bool_rejects_other_words() -> None:
    with pytest.raises(PhilError, match=r"^x\.y=maybe: expected True or False"):
        _convert("bool", "maybe")


def test_int_and_float_ranges() -> None:
    assert _convert("int(value_min=1)", "1") == 1
    assert _convert("float(value_min=0, value_max=1)", "0.25") == 0.25
    with pytest.raises(PhilError, match=r"^x\.y=0: value must be >= 1$"):
        _convert("int(value_min=1)", "0")
    with pytest.raises(PhilError, match=r"^x\.y=1.5: value must be <= 1$"):
        _convert("float(value_max=1)", "1.5")
    with pytest.raises(PhilError, match=r"^x\.y=abc: 'abc' is not an integer$"):
        _convert("int", "abc")
    with pytest.raises(PhilError, match="is not an integer"):
        _convert("int", "2.5")
    with pytest.raises(PhilError, match="is not a number"):
        _convert("float", "fast")
    with pytest.raises(PhilError, match="expected a single value"):
        _convert("int", "1 2")
    with pytest.raises(PhilError, match="nan is not allowed"):
        _convert("float", "nan")


def test_none_and_auto_follow_allow_none() -> None:
    assert _convert("int(allow_none=True)", "None") is None
    assert _convert("int(allow_none=True)", "auto") is Auto
    assert _convert("ints(size=2)", "None") is None  # list types allow None by default
    assert _convert("str", "None") is None
    assert _convert("str", "'None'") == "None"  # quoted: the text itself
    with pytest.raises(PhilError, match=r"^x\.y=None: None is not allowed"):
        _convert("int(value_min=1)", "None")
    with pytest.raises(PhilError, match="Auto is not allowed"):
        _convert("float", "Auto")


@pytest.mark.parametrize("text", ["3,3", "3 3", '"3 3"', "3, 3", "(3,3)"])
def test_ints_accept_commas_spaces_and_quotes(text: str) -> None:
    assert _convert("ints(size=2)", text) == [3, 3]


def test_number_lists_validate_size_and_values() -> None:
    assert _convert("floats", "0.5,1e3") == [0.5, 1000.0]
    assert _convert("ints(size_min=1, size_max=3)", "1 2") == [1, 2]
    with pytest.raises(PhilError, match=r"^x\.y=1,2,3: expected 2 values, got 3$"):
        _convert("ints(size=2)", "1,2,3")
    with pytest.raises(PhilError, match="expected at most 3 values, got 4"):
        _convert("ints(size_max=3)", "1 2 3 4")
    with pytest.raises(PhilError, match="value must be >= 0"):
        _convert("ints(value_min=0)", "5,-1")
    with pytest.raises(PhilError, match="'a' is not an integer"):
        _convert("ints", "1,a")


def test_str_and_strings() -> None:
    assert _convert("str", "'strong.pickle'") == "strong.pickle"
    assert _convert("str", "two words") == "two words"
    assert _convert("strings", "0:1:10 '1:20:30 x'") == ["0:1:10", "1:20:30 x"]


def test_unit_cell_and_space_group() -> None:
    assert _convert("unit_cell", "10 20 30 90 90 90") == (10.0, 20.0, 30.0, 90.0, 90.0, 90.0)
    with pytest.raises(PhilError, match="expected 6 numbers"):
        _convert("unit_cell", "10,20,30")
    with pytest.raises(PhilError, match="angles between 0 and 180"):
        _convert("unit_cell", "10,20,30,90,90,190")
    assert _convert("space_group", "19") == 19
    assert _convert("space_group", "P 63/m m c") == "P 63/m m c"
    assert _convert("space_group", "'P 21 21 21'") == "P 21 21 21"
    with pytest.raises(PhilError, match="between 1 and 230"):
        _convert("space_group", "231")


def test_type_spec_rendering() -> None:
    assert phil.make_type("int(value_min=1,allow_none=True)").spec() == "int(value_min=1, allow_none=True)"
    assert phil.make_type("bool").spec() == "bool"


def test_auto_sentinel_survives_copy_and_pickle() -> None:
    assert Auto == "Auto"
    assert repr(Auto) == "Auto"
    assert copy.deepcopy(Auto) is Auto
    assert pickle.loads(pickle.dumps(Auto)) is Auto


def test_extracted_params_pickle(master: phil.Scope) -> None:
    p = master.extract()
    q = pickle.loads(pickle.dumps(p))
    assert q == p
    assert q.plain.auto_int is Auto


def test_to_dict(master: phil.Scope) -> None:
    d = phil.to_dict(master.extract())
    assert d["plain"]["pair"] == [3, 3]
    assert d["plain"]["region"] == []


# ---------------------------------------------------------------------------------------------- choices


def test_choice_selection(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("plain.mode = slow\nplain.blur = *wide")
    p = w.extract()
    assert p.plain.mode == "slow"
    assert p.plain.blur == "wide"
    w.apply_phil("plain.mode = None")
    assert w.extract().plain.mode is None


def test_choice_rejects_unknown_options(master: phil.Scope) -> None:
    w = master.copy()
    with pytest.raises(PhilError, match=r"plain\.mode=medium: must be one of fast, slow$"):
        w.apply_phil("plain.mode = medium", "user.phil")


def test_choice_option_named_none() -> None:
    m = phil.parse("method = *none sge\n .type = choice")
    w = m.copy()
    w.apply_phil("method = sge")
    w.apply_phil("method = none")
    assert w.extract().method == "none"


# ---------------------------------------------------------------------------------------------- user values


def test_user_values_replace_defaults_and_do_not_touch_the_master(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("top = 7\nouter { name = other }\nplain.pair = 1,2")
    p = w.extract()
    assert (p.top, p.outer.name, p.plain.pair) == (7, "other", [1, 2])
    assert master.extract().top == 1


def test_multiple_definitions_accumulate_and_replace_the_default(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("plain { ranges = 1,2\n ranges = 3 4\n with_default = 9 }")
    p = w.extract()
    assert p.plain.ranges == [[1.0, 2.0], [3.0, 4.0]]
    assert p.plain.with_default == [9]  # replaces [5], does not append to it
    w.apply_phil("plain.with_default = 10")
    assert w.extract().plain.with_default == [9, 10]
    w.apply_phil("plain.ranges = None")
    assert w.extract().plain.ranges == []


def test_multiple_scope_one_instance_per_block(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("plain {\n region { panel = 1\n circle = 1,2,3 }\n region { circle = 4 5 6 }\n}")
    regions = w.extract().plain.region
    assert [(r.panel, r.circle) for r in regions] == [(1, [1, 2, 3]), (0, [4, 5, 6])]
    # the template is untouched, so new instances start from defaults
    w.apply_phil("plain.region.panel = 3")
    assert [r.panel for r in w.extract().plain.region] == [1, 0, 3]


def test_dotted_assignments_each_create_an_instance(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("plain.region.panel = 2\nplain.region.circle = 1,1,1")
    regions = w.extract().plain.region
    assert [(r.panel, r.circle) for r in regions] == [(2, None), (0, [1, 1, 1])]


def test_block_of_defaults_adds_no_instance(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil("plain.region { panel = 0\n circle = None }")
    assert w.extract().plain.region == []


def test_unrecognised_definitions_name_source_and_paths(master: phil.Scope) -> None:
    w = master.copy()
    with pytest.raises(PhilError) as err:
        w.apply_phil("top = 2\nplain.pari = 1,2\nnowhere { x = 1 }", "mine.phil")
    assert str(err.value) == (
        "mine.phil: unrecognised parameter definitions: plain.pari (did you mean plain.pair?), nowhere"
    )


def test_user_value_errors_name_file_line_and_path(master: phil.Scope) -> None:
    w = master.copy()
    with pytest.raises(PhilError, match=r"^mine\.phil, line 2: top=11: value must be <= 10$"):
        w.apply_phil("flag = yes\ntop = 11", "mine.phil")


# ---------------------------------------------------------------------------------------------- rendering


def test_render_values_only(master: phil.Scope) -> None:
    text = master.as_str(expert_level=0)
    assert text.splitlines()[:3] == ["top = 1", "flag = False", "plain {"]
    assert "outer" not in text  # expert level 1 scope
    assert "  pair = 3 3" in text
    assert "  cell = 4.498,4.498,7.338,90,90,120" in text
    assert "  mode = *fast slow" in text
    assert "  blur = narrow wide" in text
    assert "  auto_int = Auto" in text
    assert "  ranges = None" in text
    assert "  with_default = 5" in text
    assert ".help" not in text


def test_expert_level_is_inherited_by_children(master: phil.Scope) -> None:
    e1 = master.as_str(expert_level=1)
    assert "outer {" in e1 and "name = 'a b'" in e1
    assert "hidden" not in e1
    assert "hidden = 2.5" in master.as_str(expert_level=2)
    assert "hidden = 2.5" in master.as_str()  # None: everything


def test_attributes_levels(master: phil.Scope) -> None:
    a1 = master.as_str(attributes_level=1)
    assert 'top = 1\n  .help = "A top-level integer."\nflag = False\n' in a1
    assert ".type" not in a1
    a2 = master.as_str(attributes_level=2)
    assert "  .type = int(value_min=0, value_max=10)" in a2
    assert ".expert_level" not in a2 and ".multiple" not in a2
    a3 = master.as_str(attributes_level=3)
    assert 'outer\n  .help = "Outer scope."\n  .expert_level = 1\n{' in a3
    assert "    .multiple = True" in a3
    assert "    .expert_level = 2" in a3


def test_round_trip_of_master_rendering(master: phil.Scope) -> None:
    again = phil.parse(master.as_str(attributes_level=3), "again.phil")
    assert again.extract() == master.extract()
    assert again.as_str(attributes_level=3) == master.as_str(attributes_level=3)


def test_long_help_wraps_and_round_trips() -> None:
    words = "word " * 40 + " two  spaces and trailing  "
    m = phil.parse(f'a = 1\n  .help = "{words}"\n  .type = int')
    text = m.as_str(attributes_level=1)
    assert len(text.splitlines()) > 2
    assert all(len(line) <= 80 for line in text.splitlines())
    assert phil.parse(text).get("a").help == words


def test_round_trip_of_working_values(master: phil.Scope) -> None:
    w = master.copy()
    w.apply_phil(
        'outer.name = "it\'s"\nplain { ranges = 1 2\n ranges = 3 4\n region { circle = 1 2 3 }\n'
        " words = a 'b c'\n group = 'P 1'\n auto_int = 4\n blur = wide }"
    )
    again = master.copy()
    again.apply_phil(w.as_str())
    assert again.extract() == w.extract()


def test_diff_shows_only_changed_values(master: phil.Scope) -> None:
    w = master.copy()
    assert w.diff_str() == ""
    w.apply_phil("top = 1\nflag = True\nplain { mode = slow\n ranges = 1 2\n region { panel = 4 } }")
    assert w.diff_str().splitlines() == [
        "flag = True",
        "plain {",
        "  mode = fast *slow",
        "  ranges = 1 2",
        "  region {",
        "    panel = 4",
        "  }",
        "}",
    ]


# ---------------------------------------------------------------------------------------------- interpreter

INTERP_MASTER = """
alpha {
  d_min = None
    .type = float(allow_none=True)
  inner { d_min = None
    .type = float(allow_none=True) }
  one { filter = False
    .type = bool }
  two { filter = False
    .type = bool }
  mask = None
    .type = str
  write_mask = False
    .type = bool
  size_limit = 1
    .type = int
}
threshold {
  algorithm = *fast slow
    .type = choice
  fast { level = 0
    .type = float }
  slow { level = 0
    .type = float }
}
mask2 = None
  .type = str
"""


@pytest.fixture
def interp() -> phil.ArgumentInterpreter:
    return phil.ArgumentInterpreter(phil.parse(INTERP_MASTER))


def _path(interp: phil.ArgumentInterpreter, text: str) -> str:
    return interp.resolve(text)[0].path


def test_scores_prefer_exact_then_dotted_suffix_then_suffix_then_substring(
    interp: phil.ArgumentInterpreter,
) -> None:
    assert _path(interp, "alpha.mask") == "alpha.mask"  # 8 beats the 3 of alpha.write_mask
    assert _path(interp, "mask") == "alpha.mask"  # 4 ('.mask') beats 3 (write_mask) and 1 (mask2)
    assert _path(interp, "_mask") == "alpha.write_mask"  # 3
    assert _path(interp, "size_lim") == "alpha.size_limit"  # 1
    assert interp.resolve("mask")[1] is None


def test_shallowest_of_tied_matches_is_chosen_with_a_warning(interp: phil.ArgumentInterpreter) -> None:
    definition, warning = interp.resolve("d_min")
    assert definition.path == "alpha.d_min"
    assert warning is not None and "alpha.d_min" in warning and "alpha.inner.d_min" in warning


def test_equal_depth_ties_are_ambiguous(interp: phil.ArgumentInterpreter) -> None:
    with pytest.raises(PhilError) as err:
        interp.resolve("filter")
    assert (
        str(err.value)
        == "Ambiguous parameter definition: filter. Best matches: alpha.one.filter, alpha.two.filter"
    )


def test_scope_of_a_non_default_choice_option_loses_ties(interp: phil.ArgumentInterpreter) -> None:
    definition, warning = interp.resolve("level")
    assert definition.path == "threshold.fast.level"
    assert warning is not None and "threshold.slow.level" in warning
    assert _path(interp, "slow.level") == "threshold.slow.level"


def test_unknown_names_get_suggestions(interp: phil.ArgumentInterpreter) -> None:
    with pytest.raises(PhilError) as err:
        interp.resolve("size_limt")
    assert str(err.value) == "Unknown parameter: size_limt. Did you mean: alpha.size_limit?"
    with pytest.raises(PhilError) as err:
        interp.resolve("zzz")
    assert str(err.value) == "Unknown parameter: zzz"


def test_assign_applies_to_the_working_copy(interp: phil.ArgumentInterpreter) -> None:
    w = interp.master.copy()
    assert interp.assign(w, "size_limit=5") is None
    assert interp.assign(w, "mask='my file.mask'") is None
    p = w.extract()
    assert p.alpha.size_limit == 5
    assert p.alpha.mask == "my file.mask"
    assert interp.master.extract().alpha.size_limit == 1


def test_assign_errors(interp: phil.ArgumentInterpreter) -> None:
    w = interp.master.copy()
    with pytest.raises(PhilError, match=r"^alpha\.size_limit=: missing value$"):
        interp.assign(w, "size_limit=")
    with pytest.raises(PhilError, match=r"^alpha\.size_limit=x: 'x' is not an integer$"):
        interp.assign(w, "size_limit=x")
    with pytest.raises(PhilError, match="Not a parameter assignment"):
        interp.assign(w, "size_limit")


# ---------------------------------------------------------------------------------------------- package


def test_package_exports_the_public_api() -> None:
    assert sorted(phil.__all__) == sorted(
        ["Auto", "ArgumentInterpreter", "ChoiceType", "Definition", "ExtractedScope", "PhilError", "PhilType",
         "Scope", "make_type", "parse", "split_value", "to_dict", "tokenize"]
    )  # fmt: skip


def test_modules_share_only_public_names() -> None:
    """No phil module imports a sibling's private (underscore) name."""
    private = {}
    for path in sorted(Path(phil.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("findspots.phil"):
                names = [a.name for a in node.names if a.name.startswith("_")]
                if names:
                    private[path.name] = names
    assert private == {}
