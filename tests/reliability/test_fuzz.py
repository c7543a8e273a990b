"""Fuzzing, bounded in time: random and mutated inputs to the byte-offset decoder, the CBF header parser
(also whole files, also compressed), the input loader and the parameter parser give a result or their
one clean error (ImageError, PhilError/ParameterError), never another exception, never a hang.

The number of examples per test is ``FINDSPOTS_FUZZ_EXAMPLES`` (default 150; the whole module takes
about half a minute). A longer local campaign: ``FINDSPOTS_FUZZ_EXAMPLES=5000 pytest tests/reliability``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import signal
import string
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from findspots.app.parameters import master, parse_arguments
from findspots.errors import FindSpotsError
from findspots.images import ImageError
from findspots.images.byte_offset import decode_byte_offset
from findspots.images.cbf import read_raw
from findspots.images.cbf_header import parse_header
from findspots.images.cbf_models import models_from_header
from findspots.phil import PhilError
from reliability.cbftools import MINI_HEADER, encode_byte_offset, mini_cbf, real_cbf

EXAMPLES = int(os.environ.get("FINDSPOTS_FUZZ_EXAMPLES", "150"))
TIME_LIMIT = 30 + EXAMPLES // 5  # seconds per test: more means a hang
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
DTYPES = [np.int32, np.uint32, np.int16, np.uint16, np.int8, np.uint8]


@pytest.fixture(autouse=True)
def no_hang():
    """A test running past TIME_LIMIT fails (SIGALRM) instead of hanging CI."""

    def expired(signum, frame):
        raise TimeoutError(f"fuzz test ran past {TIME_LIMIT} s: a hang?")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TIME_LIMIT)
    decode_byte_offset(b"\x01", 1, np.int32)  # compile the decoder outside the per-example deadline
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------------- byte-offset decoding


@st.composite
def int_arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    info = np.iinfo(dtype)
    # mostly small steps, sometimes the extremes, to exercise every escape length
    element = st.one_of(st.integers(-300, 300), st.integers(int(info.min), int(info.max)))
    values = draw(st.lists(element, max_size=300))
    return np.clip(np.array(values, np.int64), info.min, info.max).astype(dtype)


@FUZZ
@given(int_arrays())
def test_byte_offset_round_trip(values):
    decoded = decode_byte_offset(encode_byte_offset(values), values.size, values.dtype)
    assert decoded.dtype == values.dtype
    np.testing.assert_array_equal(decoded, values)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 500), st.sampled_from(DTYPES))
def test_byte_offset_random_streams(stream, count, dtype):
    try:
        out = decode_byte_offset(stream, count, dtype)
    except ImageError as err:
        assert "corrupt CBF" in str(err)
        return
    assert out.shape == (count,) and out.dtype == dtype


@FUZZ
@given(int_arrays(), st.data())
def test_byte_offset_truncated_streams_always_fail(values, data):
    stream = encode_byte_offset(values)
    assume(len(stream) > 0)
    cut = data.draw(st.integers(1, len(stream)))
    with pytest.raises(ImageError, match="corrupt CBF: (decoded|the byte-offset data)"):
        decode_byte_offset(stream[: len(stream) - cut], values.size, values.dtype)


@FUZZ
@given(int_arrays(), st.data())
def test_byte_offset_mutated_streams(values, data):
    stream = bytearray(encode_byte_offset(values))
    assume(len(stream) > 0)
    for _ in range(data.draw(st.integers(1, 5))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(
            st.sampled_from([0x80, 0x00, 0x7F, 0xFF])
        )
    try:
        out = decode_byte_offset(bytes(stream), values.size, values.dtype)
    except ImageError:
        return
    assert out.shape == values.shape and out.dtype == values.dtype  # in-range damage: only an MD5 tells


# -------------------------------------------------------------------------------------- CBF headers

_REAL = real_cbf(1)
REAL_HEADER = _REAL[: _REAL.index(b"\x0c\x1a\x04\xd5")]
MINI = mini_cbf(np.arange(600, dtype=np.int32).reshape(20, 30) - 3)
MINI_HEADER_BYTES = MINI[: MINI.index(b"\x0c\x1a\x04\xd5")]
TOKENS = [
    b"-",
    b"0",
    b"-0.0",
    b"nan",
    b"inf",
    b"1e999",
    b"-1e999",
    b"1e-320",
    b"?",
    b".",
    b"'",
    b'"',
    b";",
    b"\r\n",
    b"\n;\n",
    b"loop_\n",
    b"_axis.id ",
    b"data_x\n",
    b"# ",
    b"e",
    b"x",
    b"\x00",
    b"\xff",
    b" 0 0 0 ",
]


@st.composite
def mutated(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 10))):
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            data[i : i + 1] = bytes([draw(st.integers(0, 255))])
        elif kind == 1:
            del data[i : i + draw(st.integers(1, 300))]
        elif kind == 2:
            data[i:i] = draw(st.sampled_from(TOKENS))
        else:  # a number's first character replaced: 160.00 -> -60.00, 060.00, .60.00 ...
            j = data.find(b" ", i)
            if 0 <= j < len(data) - 1:
                data[j + 1 : j + 2] = draw(st.sampled_from([b"-", b"0", b"9", b".", b"e"]))
    return bytes(data)


def _models_or_image_error(header: bytes) -> None:
    parsed = parse_header("fuzz.cbf", header)
    try:
        detector, beam, goniometer, scan = models_from_header(parsed)
    except ImageError:
        return
    for panel in detector:  # models that come out are finite: NaN geometry would split sweeps
        assert np.isfinite(panel.origin).all() and np.isfinite(panel.fast_axis).all()
    assert np.isfinite(beam.wavelength) and np.isfinite(goniometer.rotation_axis).all()
    assert np.isfinite([scan.start_angle, scan.angle_increment]).all()


@FUZZ
@given(mutated(REAL_HEADER))
def test_full_cbf_header_mutations(header):
    _models_or_image_error(header)


@FUZZ
@given(mutated(MINI_HEADER_BYTES))
def test_mini_cbf_header_mutations(header):
    _models_or_image_error(header)


@FUZZ
@given(
    st.lists(st.sampled_from(MINI_HEADER), max_size=12),
    st.lists(st.text(string.printable, max_size=30), max_size=4),
)
def test_mini_header_lines_missing_or_random(lines, extra):
    header = mini_cbf(np.zeros((2, 3), np.int32), tuple(lines) + tuple(f"# {e}" for e in extra))
    _models_or_image_error(header[: header.index(b"\x0c\x1a\x04\xd5")])


@FUZZ
@given(st.binary(max_size=2000))
def test_random_header_bytes(header):
    _models_or_image_error(header)


# -------------------------------------------------------------------------------- whole image files


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _read_raw_or_image_error(path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        arr = read_raw(str(path))
    except ImageError as err:
        assert str(path) in str(err)
        return
    assert arr.ndim == 2 and arr.dtype.kind in "iu"


@FUZZ
@given(mutated(MINI))
def test_whole_mini_cbf_mutations(fuzz_dir, data):
    _read_raw_or_image_error(fuzz_dir / "image_00001.cbf", data)


@FUZZ
@given(st.sampled_from(["gz", "bz2"]), st.data())
def test_compressed_cbf_mutations(fuzz_dir, codec, data):
    packed = gzip.compress(MINI) if codec == "gz" else bz2.compress(MINI)
    _read_raw_or_image_error(fuzz_dir / f"image_00001.cbf.{codec}", data.draw(mutated(packed)))


@FUZZ
@given(
    st.one_of(st.binary(max_size=600), mutated(MINI)), st.sampled_from(["cbf", "img", "h5", "expt", "json"])
)
def test_input_loader_on_random_files(fuzz_dir, data, suffix):
    """Any file given on the command line is loaded or refused with an ImageError naming it."""
    from findspots.images.inputs import load_inputs

    path = fuzz_dir / f"random_00001.{suffix}"
    path.write_bytes(data)
    try:
        load_inputs([str(path)])
    except ImageError as err:
        assert "random_00001" in str(err) or "no images" in str(err)


# -------------------------------------------------------------------------------------- parameters


def _all_names() -> list[str]:
    names = []
    for line in master().as_str(expert_level=3).splitlines():
        stripped = line.strip()
        if "=" in stripped and not stripped.startswith("."):
            names.append(stripped.split("=")[0].strip())
    return sorted(set(names)) or ["sigma_strong"]


NAMES = _all_names()
VALUES = [
    "1",
    "0",
    "-1",
    "2.5",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "None",
    "Auto",
    "True",
    "False",
    "yes",
    "",
    "3,3",
    "1 2",
    "0,5000,0,10",
    "*dispersion",
    "radial_profile",
    "'quoted'",
    '"x',
    "{",
    "}",
    "a=b",
    "$(ls)",
]
VALUE = st.one_of(st.sampled_from(VALUES), st.text(string.printable, max_size=12))


@st.composite
def argv(draw):
    args = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 3))
        if kind <= 1:
            name = draw(st.sampled_from(NAMES))
            if kind == 1:  # a partial or mistyped name
                name = name.split(".")[-1] if "." in name else name
                name = draw(st.sampled_from([name, name[:-1], name + "x", name.upper()]))
            args.append(f"{name}={draw(VALUE)}")
        elif kind == 2:
            args.append(
                draw(st.sampled_from(["-v", "-vv", "-c", "-e", "-e1", "-a", "-x", "--phil", "--", "-"]))
            )
        else:
            args.append(draw(st.text(string.printable, max_size=15).filter(lambda a: "*" not in a)))
    return args


@FUZZ
@given(argv(), st.text(string.printable, max_size=40))
def test_parameter_parser(args, stdin):
    from findspots.app.pipeline import check_parameters

    try:
        with mock.patch("sys.stdin", io.StringIO(stdin)):  # for --phil -
            parsed = parse_arguments(args)
    except PhilError:
        return
    try:
        check_parameters(parsed.params)  # what the command checks before reading any image
    except (PhilError, FindSpotsError):
        pass


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                NAMES + ["{", "}", "=", "\n", ".type", "=*", "#", "'", '"', "spotfinder {", "include"]
            ),
            VALUE,
        ),
        max_size=30,
    )
)
def test_phil_text(words):
    text = " ".join(words)
    working = master().copy()
    try:
        working.apply_phil(text, "fuzz.phil")
        working.extract()
    except PhilError as err:
        assert "fuzz.phil" in str(err) or "=" in str(err) or "parameter" in str(err).lower()


# --------------------------------------------------------------------------------- experiment JSON


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> dict:
    """A valid experiment list of three real images (as DIALS writes them), as a JSON dict."""
    import json

    from findspots.images.expt import write_experiments
    from findspots.images.inputs import load_inputs
    from reliability.cbftools import L_CYST

    folder = tmp_path_factory.mktemp("expt")
    write_experiments(str(folder / "imported.expt"), load_inputs([str(p) for p in L_CYST[:3]]))
    return json.loads((folder / "imported.expt").read_text())


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
        st.sampled_from(["ExperimentList", "ImageSequence", "Detector", "#####", "x_#####.cbf"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated_json(draw, original):
    import copy

    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 4))):
        node, key = None, None
        current = data
        while isinstance(current, (dict, list)) and current and draw(st.integers(0, 3)):
            keys = list(current) if isinstance(current, dict) else list(range(len(current)))
            node, key = current, draw(st.sampled_from(keys))
            current = current[key]
        if node is None:
            continue
        if draw(st.booleans()) and isinstance(node, dict):
            del node[key]
        else:
            node[key] = draw(JSON_VALUES)
    return data


@FUZZ
@given(st.data())
def test_experiment_json_mutations(fuzz_dir, experiments, data):
    """Experiment files are validated: an ImageError naming the file, or sequences with finite models."""
    import json

    from findspots.images.inputs import load_inputs

    path = fuzz_dir / "mutated.expt"
    path.write_text(json.dumps(data.draw(mutated_json(experiments))))
    try:
        sequences = load_inputs([str(path)])
    except ImageError as err:
        assert "mutated.expt" in str(err)
        return
    for seq in sequences:
        assert np.isfinite(seq.beam.wavelength) and np.isfinite(seq.beam.direction).all()
        for panel in seq.detector:
            assert np.isfinite(panel.origin).all() and np.isfinite(panel.fast_axis).all()
