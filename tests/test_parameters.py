"""Tests of the findspots parameter tree and command-line parsing (findspots.app.parameters)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from findspots import phil
from findspots.app.parameters import (
    ArgumentError,
    PhilError,
    format_config,
    master,
    parse_arguments,
)
from findspots.phil import Auto


def _params(*argv: str):
    return parse_arguments(list(argv)).params


def _definition(path: str) -> phil.Definition:
    node = master().get(path)
    assert isinstance(node, phil.Definition)
    return node


# ---------------------------------------------------------------------------------------------- the tree


def test_defaults_are_the_seeds() -> None:
    p = master().extract()
    assert p.output.reflections == "strong.pickle"
    assert p.output.shoeboxes is True
    assert p.output.experiments is None
    assert p.output.datablock is None
    assert p.output.log == "findspots.log"
    assert p.output.debug_log == "findspots.debug.log"
    assert p.maximum_trusted_value is None
    assert p.per_image_statistics is False
    assert p.verbosity == 1
    sf = p.spotfinder
    assert sf.lookup.mask is None
    assert (sf.write_hot_mask, sf.hot_mask_prefix, sf.force_2d) == (False, "hot_mask", False)
    assert sf.scan_range == [] and sf.exclude_images == [] and sf.exclude_images_multiple is None
    assert sf.region_of_interest is None and sf.compute_mean_background is False
    f = sf.filter
    assert f.min_spot_size is Auto
    assert f.max_spot_size == 100
    assert f.max_separation == 2.0
    assert f.max_strong_pixel_fraction == 0.25
    assert (f.background_gradient.filter, f.background_gradient.background_size) == (False, 2)
    assert f.background_gradient.gradient_cutoff == 4.0
    assert f.spot_density.filter is False
    assert (f.border, f.use_trusted_range, f.d_min, f.d_max) == (0, True, None, None)
    assert f.disable_parallax_correction is False
    assert f.resolution_range == [] and f.untrusted == []
    assert f.ice_rings.filter is False
    assert f.ice_rings.unit_cell == (4.498, 4.498, 7.338, 90.0, 90.0, 120.0)
    assert (f.ice_rings.space_group, f.ice_rings.width, f.ice_rings.d_min) == (194, 0.002, None)
    mp = sf.mp
    assert (mp.method, mp.njobs, mp.nproc, mp.chunksize, mp.min_chunksize) == ("none", 1, 1, Auto, 20)
    t = sf.threshold
    assert t.algorithm == "dispersion"
    d = t.dispersion
    assert (d.gain, d.kernel_size, d.sigma_background, d.sigma_strong) == (None, [3, 3], 6.0, 3.0)
    assert (d.min_local, d.global_threshold) == (2, 0.0)
    assert (t.radial_profile.n_iqr, t.radial_profile.blur, t.radial_profile.n_bins) == (6, None, 100)
    h = t.helen
    assert (h.exp_spot_dimension, h.global_threshold, h.min_blob_score, h.num_passes, h.debug) == (
        3,
        100.0,
        0.7,
        0,
        False,
    )


def test_choices_and_types() -> None:
    algorithm = _definition("spotfinder.threshold.algorithm")
    assert isinstance(algorithm.type, phil.ChoiceType)
    assert set(algorithm.type.options) == {"dispersion", "dispersion_extended", "radial_profile", "helen"}
    method = _definition("spotfinder.mp.method")
    assert isinstance(method.type, phil.ChoiceType)
    assert method.type.options == ["none", "drmaa", "sge", "lsf", "pbs", "slurm"]
    blur = _definition("spotfinder.threshold.radial_profile.blur")
    assert isinstance(blur.type, phil.ChoiceType)
    assert blur.type.options == ["narrow", "wide"]
    assert _definition("spotfinder.filter.min_spot_size").type.spec() == "int(value_min=1, allow_none=True)"
    assert _definition("spotfinder.exclude_images").type.spec() == "strings"
    assert _definition("spotfinder.exclude_images").multiple is True
    assert _definition("spotfinder.scan_range").multiple is True
    assert _definition("spotfinder.filter.resolution_range").multiple is True
    assert master().get("spotfinder.filter.untrusted").multiple is True


@pytest.mark.parametrize(
    "path, level",
    [
        ("maximum_trusted_value", 2),
        ("spotfinder.exclude_images", 1),
        ("spotfinder.exclude_images_multiple", 2),
        ("spotfinder.filter.max_separation", 1),
        ("spotfinder.threshold.dispersion.kernel_size", 1),
        ("spotfinder.filter.ice_rings.unit_cell", 1),
        ("spotfinder.threshold.helen.debug", 2),
        ("spotfinder.threshold.dispersion.global_threshold", 0),
    ],
)
def test_expert_levels(path: str, level: int) -> None:
    assert _definition(path).expert_level == level


def test_scope_expert_levels() -> None:
    assert master().get("spotfinder.filter.background_gradient").expert_level == 2
    assert master().get("spotfinder.filter.spot_density").expert_level == 2


def test_every_definition_has_a_type_and_new_ones_have_help() -> None:
    for path in [
        "output.experiments",
        "maximum_trusted_value",
        "spotfinder.exclude_images",
        "spotfinder.exclude_images_multiple",
        "spotfinder.filter.disable_parallax_correction",
        "spotfinder.threshold.radial_profile.n_iqr",
        "spotfinder.threshold.radial_profile.blur",
        "spotfinder.threshold.radial_profile.n_bins",
    ]:
        assert len(_definition(path).help) > 20, path
    assert "exp:start:end" in _definition("spotfinder.exclude_images").help


def test_master_is_cached() -> None:
    assert master() is master()


# ----------------------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "arg, path, value",
    [
        ("nproc=4", "spotfinder.mp.nproc", 4),
        ("min_spot_size=3", "spotfinder.filter.min_spot_size", 3),
        ("max_separation=3", "spotfinder.filter.max_separation", 3.0),
        ("algorithm=dispersion_extended", "spotfinder.threshold.algorithm", "dispersion_extended"),
        ("algorithm=dispersion", "spotfinder.threshold.algorithm", "dispersion"),
        ("gain=0.5", "spotfinder.threshold.dispersion.gain", 0.5),
        ("kernel_size=5,5", "spotfinder.threshold.dispersion.kernel_size", [5, 5]),
        ("mask=pixels.mask", "spotfinder.lookup.mask", "pixels.mask"),
        ("max_spot=5000", "spotfinder.filter.max_spot_size", 5000),
        ("d_max=10", "spotfinder.filter.d_max", 10.0),
        ("filter.d_min=2", "spotfinder.filter.d_min", 2.0),
        ("ice_rings.d_min=3", "spotfinder.filter.ice_rings.d_min", 3.0),
        ("experiments=out.expt", "output.experiments", "out.expt"),
        ("reflections=strong.refl", "output.reflections", "strong.refl"),
        ("spotfinder.mp.method=slurm", "spotfinder.mp.method", "slurm"),
        ("blur=wide", "spotfinder.threshold.radial_profile.blur", "wide"),
        ("chunksize=auto", "spotfinder.mp.chunksize", Auto),
        ("min_spot_size=None", "spotfinder.filter.min_spot_size", None),
        ("region_of_interest=0,100,0,200", "spotfinder.region_of_interest", [0, 100, 0, 200]),
        ("use_trusted_range=no", "spotfinder.filter.use_trusted_range", False),
    ],
)
def test_command_line_matching(arg: str, path: str, value: object) -> None:
    parsed = parse_arguments([arg])
    assert parsed.warnings == []
    node = parsed.params
    for name in path.split("."):
        node = getattr(node, name)
    assert node == value
    assert type(node) is type(value)


def test_d_min_takes_the_shallower_match_with_a_warning() -> None:
    parsed = parse_arguments(["d_min=2"])
    assert parsed.params.spotfinder.filter.d_min == 2.0
    assert parsed.params.spotfinder.filter.ice_rings.d_min is None
    assert len(parsed.warnings) == 1
    assert "spotfinder.filter.d_min" in parsed.warnings[0]
    assert "spotfinder.filter.ice_rings.d_min" in parsed.warnings[0]


def test_global_threshold_prefers_dispersion_over_helen() -> None:
    parsed = parse_arguments(["global_threshold=20"])
    assert parsed.params.spotfinder.threshold.dispersion.global_threshold == 20.0
    assert parsed.params.spotfinder.threshold.helen.global_threshold == 100.0
    assert len(parsed.warnings) == 1 and "helen.global_threshold" in parsed.warnings[0]
    explicit = parse_arguments(["helen.global_threshold=50"])
    assert explicit.params.spotfinder.threshold.helen.global_threshold == 50.0
    assert explicit.warnings == []


def test_filter_is_ambiguous() -> None:
    with pytest.raises(PhilError) as err:
        parse_arguments(["filter=True"])
    assert str(err.value) == (
        "Ambiguous parameter definition: filter. Best matches: spotfinder.filter.background_gradient.filter, "
        "spotfinder.filter.spot_density.filter, spotfinder.filter.ice_rings.filter"
    )


def test_typos_get_suggestions() -> None:
    with pytest.raises(PhilError) as err:
        parse_arguments(["sigma_strng=3"])
    assert str(err.value) == (
        "Unknown parameter: sigma_strng. Did you mean: spotfinder.threshold.dispersion.sigma_strong?"
    )
    with pytest.raises(PhilError, match=r"Did you mean: spotfinder\.mp\.nproc\?"):
        parse_arguments(["nprocs=2"])


def test_multiple_definitions_on_the_command_line() -> None:
    p = _params("scan_range=1,30", "scan_range=31,55", "exclude_images=0:1:10", "exclude_images=0:20:30")
    assert p.spotfinder.scan_range == [[1, 30], [31, 55]]
    assert p.spotfinder.exclude_images == [["0:1:10"], ["0:20:30"]]
    assert _params("resolution_range=3.9,3.8").spotfinder.filter.resolution_range == [[3.9, 3.8]]


def test_each_untrusted_assignment_creates_a_region() -> None:
    regions = _params(
        "untrusted.circle=100,100,10", "untrusted.rectangle=0,10,0,20"
    ).spotfinder.filter.untrusted
    assert len(regions) == 2
    assert (regions[0].panel, regions[0].circle, regions[0].rectangle) == (None, [100, 100, 10], None)
    assert (regions[1].circle, regions[1].rectangle) == (None, [0, 10, 0, 20])


def test_untrusted_blocks_from_a_phil_file(tmp_path: Path) -> None:
    f = tmp_path / "mask.phil"
    f.write_text(
        "spotfinder.filter {\n"
        "  untrusted {\n    panel = 1\n    circle = 100,100,10\n  }\n"
        "  untrusted {\n    polygon = 0 0 10 0 10 10\n  }\n"
        "}\n"
    )
    parsed = parse_arguments([str(f)])
    regions = parsed.params.spotfinder.filter.untrusted
    assert [(r.panel, r.circle, r.polygon) for r in regions] == [
        (1, [100, 100, 10], None),
        (None, None, [0, 0, 10, 0, 10, 10]),
    ]
    assert "untrusted {\n      panel = 1\n      circle = 100 100 10\n    }" in parsed.modified


@pytest.mark.parametrize(
    "arg, message",
    [
        ("nproc=0", "spotfinder.mp.nproc=0: value must be >= 1"),
        ("nproc=abc", "spotfinder.mp.nproc=abc: 'abc' is not an integer"),
        ("max_strong_pixel_fraction=2", "spotfinder.filter.max_strong_pixel_fraction=2: value must be <= 1"),
        ("max_spot_size=None", "spotfinder.filter.max_spot_size=None: None is not allowed"),
        ("kernel_size=3", "spotfinder.threshold.dispersion.kernel_size=3: expected 2 values, got 1"),
        ("algorithm=helium", "spotfinder.threshold.algorithm=helium: must be one of dispersion,"),
        ("force_2d=maybe", "spotfinder.force_2d=maybe: expected True or False"),
        ("exclude_images_multiple=1", "spotfinder.exclude_images_multiple=1: value must be >= 2"),
        ("pixel=-1,3", "spotfinder.filter.untrusted.pixel=-1,3: value must be >= 0"),
        ("n_bins=0", "spotfinder.threshold.radial_profile.n_bins=0: value must be >= 1"),
        ("space_group=0", "spotfinder.filter.ice_rings.space_group=0: space group number must be between"),
    ],
)
def test_bad_values_name_the_full_path(arg: str, message: str) -> None:
    with pytest.raises(PhilError) as err:
        parse_arguments([arg])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- files


def test_phil_file_then_command_line_in_order(tmp_path: Path) -> None:
    f = tmp_path / "settings.params"
    f.write_text("spotfinder.mp.nproc = 3\noutput { log = 'run.log' }\n")
    assert _params(str(f), "nproc=5").spotfinder.mp.nproc == 5
    p = _params("nproc=5", str(f))
    assert (p.spotfinder.mp.nproc, p.output.log) == (3, "run.log")


def test_phil_option_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "any_name.txt"
    f.write_text("spotfinder.filter.min_spot_size = 4\n")
    assert _params("--phil", str(f)).spotfinder.filter.min_spot_size == 4
    monkeypatch.setattr("sys.stdin", io.StringIO("spotfinder.filter.border = 7\n"))
    assert _params("--phil", "-").spotfinder.filter.border == 7


def test_unrecognised_definitions_in_a_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.phil"
    f.write_text("spotfinder.mp.nprc = 3\nbogus = 1\n")
    with pytest.raises(PhilError) as err:
        parse_arguments([str(f)])
    message = str(err.value)
    assert message.startswith(f"{f}: unrecognised parameter definitions: spotfinder.mp.nprc (did you mean ")
    assert "spotfinder.mp.nproc" in message
    assert message.endswith(", bogus")


def test_bad_value_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.phil"
    f.write_text("# settings\nspotfinder.mp.nproc = 0\n")
    with pytest.raises(PhilError, match=r"bad\.phil, line 2: spotfinder\.mp\.nproc=0: value must be >= 1$"):
        parse_arguments([str(f)])


def test_missing_phil_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="Parameter file not found: .*nothere.phil"):
        parse_arguments([str(tmp_path / "nothere.phil")])
    with pytest.raises(ArgumentError, match="Cannot read parameter file"):
        parse_arguments(["--phil", str(tmp_path / "nothere.txt")])


# ---------------------------------------------------------------------------------------------- data


def test_data_arguments_keep_order_and_expand_globs(tmp_path: Path) -> None:
    for name in ["img_0003.cbf", "img_0001.cbf", "img_0002.cbf", "other.txt"]:
        (tmp_path / name).write_text("")
    parsed = parse_arguments(["models.expt", str(tmp_path / "img_000[0-9].cbf"), "nproc=2", "x.cbf"])
    assert parsed.data_args == [
        "models.expt",
        str(tmp_path / "img_0001.cbf"),
        str(tmp_path / "img_0002.cbf"),
        str(tmp_path / "img_0003.cbf"),
        "x.cbf",
    ]
    assert parsed.params.spotfinder.mp.nproc == 2
    assert parse_arguments([str(tmp_path / "img_*.cbf")]).data_args[0].endswith("img_0001.cbf")


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    pattern = str(tmp_path / "none_*.cbf")
    with pytest.raises(PhilError, match="No files match: .*none_\\*\\.cbf"):
        parse_arguments([pattern])


def test_existing_files_and_urls_with_equals_are_data(tmp_path: Path) -> None:
    f = tmp_path / "a=b.cbf"
    f.write_text("")
    parsed = parse_arguments([str(f), "https://host/data?x=1"])
    assert parsed.data_args == [str(f), "https://host/data?x=1"]
    assert parsed.modified == ""


# ---------------------------------------------------------------------------------------------- options


def test_default_display_options() -> None:
    parsed = parse_arguments([])
    assert (parsed.show_config, parsed.show_help, parsed.expert_level, parsed.attributes_level) == (
        False,
        False,
        0,
        0,
    )
    assert parsed.verbosity == 1
    assert parsed.data_args == [] and parsed.warnings == [] and parsed.modified == ""


@pytest.mark.parametrize(
    "argv, expert, attributes",
    [
        (["-c"], 0, 0),
        (["-c", "-e1"], 1, 0),
        (["-c", "-e", "2"], 2, 0),
        (["--show-config", "--expert-level=2", "--attributes-level", "3"], 2, 3),
        (["-ce2", "-a1"], 2, 1),
        (["-c", "-a", "2"], 0, 2),
    ],
)
def test_show_config_options(argv: list[str], expert: int, attributes: int) -> None:
    parsed = parse_arguments(argv)
    assert parsed.show_config is True
    assert (parsed.expert_level, parsed.attributes_level) == (expert, attributes)


def test_show_config_ignores_other_arguments() -> None:
    parsed = parse_arguments(["-c", "nproc=abc", "image.cbf"])
    assert parsed.show_config is True
    assert parsed.data_args == []
    assert parsed.params == master().extract()


@pytest.mark.parametrize(
    "argv, expert, attributes",
    [(["-h"], 0, 0), (["-hh"], 1, 0), (["--help", "-h", "-h"], 2, 0), (["-h", "-vv"], 0, 2)],
)
def test_help_levels(argv: list[str], expert: int, attributes: int) -> None:
    parsed = parse_arguments(argv)
    assert parsed.show_help is True
    assert parsed.help == expert + 1
    assert (parsed.expert_level, parsed.attributes_level) == (expert, attributes)


def test_verbosity_adds_v_count_to_the_parameter() -> None:
    assert parse_arguments(["-v"]).verbosity == 2
    assert parse_arguments(["-vv", "--verbose"]).verbosity == 4
    assert parse_arguments(["verbosity=0", "-v"]).verbosity == 1
    assert parse_arguments(["verbosity=None"]).verbosity == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--frobnicate"], "Unknown option: --frobnicate"),
        (["-x"], "Unknown option: -x"),
        (["-e"], "Option -e needs a value"),
        (["-e", "high"], "Option -e expects a non-negative integer, got 'high'"),
        (["--phil"], "Option --phil needs a file name"),
    ],
)
def test_bad_options(argv: list[str], message: str) -> None:
    with pytest.raises(ArgumentError, match=f"^{message}"):
        parse_arguments(argv)


def test_double_dash_ends_options() -> None:
    assert parse_arguments(["--", "-weird.cbf"]).data_args == ["-weird.cbf"]


# ---------------------------------------------------------------------------------------------- rendering


def test_format_config_expert_level_0_hides_expert_items() -> None:
    text = format_config()
    assert text.startswith(
        "Showing configuration parameters with:\n  attributes_level = 0\n  expert_level = 0\n"
    )
    assert "    nproc = 1\n" in text
    assert "algorithm = *dispersion dispersion_extended radial_profile helen" in text
    assert "method = *none drmaa sge lsf pbs slurm" in text
    assert "min_spot_size = Auto" in text
    assert "reflections = 'strong.pickle'" in text
    for hidden in ["kernel_size", "max_separation", "maximum_trusted_value", "exclude_images", "helen {"]:
        assert hidden not in text
    assert ".help" not in text


def test_format_config_expert_level_1_and_2() -> None:
    e1 = format_config(expert_level=1)
    assert "kernel_size = 3 3" in e1
    assert "max_separation = 2" in e1
    assert "exclude_images = None" in e1
    assert "unit_cell = 4.498,4.498,7.338,90,90,120" in e1
    assert "maximum_trusted_value" not in e1 and "background_gradient" not in e1
    e2 = format_config(expert_level=2)
    assert "maximum_trusted_value = None" in e2
    assert "exclude_images_multiple = None" in e2
    assert "background_gradient {" in e2 and "helen {" in e2


def test_format_config_attribute_levels() -> None:
    a1 = format_config(attributes_level=1)
    assert '.help = "The number of processes to use per cluster job"' in a1
    assert ".type" not in a1
    a2 = format_config(expert_level=2, attributes_level=2)
    assert ".type = int(value_min=1, allow_none=True)" in a2
    assert ".type = choice" in a2
    a3 = format_config(expert_level=2, attributes_level=3)
    assert ".expert_level = 2" in a3 and ".multiple = True" in a3


def test_modified_shows_only_changed_values() -> None:
    parsed = parse_arguments(
        ["nproc=4", "min_spot_size=Auto", "kernel_size=3,3", "algorithm=dispersion_extended"]
    )
    assert parsed.modified.splitlines() == [
        "spotfinder {",
        "  mp {",
        "    nproc = 4",
        "  }",
        "  threshold {",
        "    algorithm = dispersion *dispersion_extended radial_profile helen",
        "  }",
        "}",
    ]


def test_modified_text_reads_back_to_the_same_params(tmp_path: Path) -> None:
    argv = ["nproc=4", "scan_range=1,5", "scan_range=7,9", "untrusted.circle=1,2,3", "output.log=a b.log"]
    parsed = parse_arguments(argv)
    f = tmp_path / "modified.phil"
    f.write_text(parsed.modified)
    assert parse_arguments([str(f)]).params == parsed.params


def test_round_trip_of_the_master() -> None:
    text = master().as_str(attributes_level=3)  # level 3 keeps every attribute, types included
    again = phil.parse(text, "again.phil")
    assert again.extract() == master().extract()
    assert again.as_str(attributes_level=3) == text
    for path in ["spotfinder.filter.min_spot_size", "spotfinder.threshold.dispersion.sigma_strong"]:
        new, old = again.get(path), master().get(path)
        assert (new.help, new.expert_level, new.type.spec()) == (old.help, old.expert_level, old.type.spec())


def test_saved_config_read_back_as_user_file_changes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "all.phil"
    f.write_text(master().as_str())  # includes the untrusted template block
    parsed = parse_arguments([str(f)])
    assert parsed.modified == ""
    assert parsed.params == master().extract()
