"""The per-image spot-count histogram (docs/dials-behaviour.md#log-histogram) and the per-image table
(docs/dials-behaviour.md#per-image-table)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from findspots.output.histogram import per_image_table, spot_histogram
from findspots.output.refl import read_reflections

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LOG_GLOBS = ("p300k_60/dials_reference/*", "p6m_5/dials_reference/*", "real/dials_head_reference/*/*")
RUNS = sorted(
    str(log.parent.relative_to(SHARED_DATA))
    for pattern in LOG_GLOBS
    for log in SHARED_DATA.glob(f"{pattern}/dials.find_spots.log")
)


def log_histogram(log: str) -> str:
    """The histogram block of a DIALS log: the lines after its title, up to the blank line."""
    lines = log.split("\n")
    start = lines.index("Histogram of per-image spot count for imageset 0:") + 1
    return "\n".join(lines[start : lines.index("", start)])


def run_z(run: Path) -> np.ndarray:
    """The z centroids of a reference run, from spots.npz, strong.refl.xz or the run it is identical to."""
    if (run / "spots.npz").exists():
        return np.load(run / "spots.npz")["xyzobs.px.value"][:, 2]
    if (run / "strong.refl.xz").exists():
        return read_reflections(run / "strong.refl.xz")["xyzobs.px.value"][:, 2]
    same = re.search(r"\.\./(\w+)/", (run / "IDENTICAL_TO.txt").read_text()).group(1)
    return run_z(run.parent / same)


@pytest.mark.shared
@pytest.mark.parametrize("run", RUNS or [pytest.param("", marks=pytest.mark.skip(reason="no shared data"))])
def test_histogram_matches_dials_log(shared_data, run):
    log = (shared_data / run / "dials.find_spots.log").read_text()
    expected = log_histogram(log)
    assert spot_histogram(run_z(shared_data / run)) == expected
    # The image count DIALS prints is the span of the processed images, not the imageset length.
    ranges = [(int(a), int(b)) for a, b in re.findall(r"Finding spots in image (\d+) to (\d+)", log)]
    span = max(b for _, b in ranges) - min(a for a, _ in ranges) + 1
    if span > 1:
        assert f" spots found on {span} images " in expected


@pytest.mark.shared
def test_every_reference_log_is_covered(shared_data):
    assert len(RUNS) >= 18


def test_no_spots():
    assert spot_histogram(np.array([])) == "\n"


def test_single_image():
    assert spot_histogram(np.full(7, 3.5)) == "7 spots found on 1 image"
    assert spot_histogram(np.array([2.1, 2.9])) == "2 spots found on 1 image"


def test_two_images_rounds_half_up_and_keeps_trailing_spaces():
    # 20 spots on image 1 and 1 on image 2: the second column scales to exactly 0.5, shown as one star.
    z = np.array([0.5] * 20 + [1.5])
    expected = ["21 spots found on 2 images (max 20 / bin)"] + ["* "] * 9 + ["**", "12"]
    assert spot_histogram(z) == "\n".join(expected)


def test_footer_padding_and_label_centring():
    def footer(last_image: int) -> str:
        return spot_histogram(np.arange(last_image) + 0.5).split("\n")[-1]

    assert footer(2) == "12"
    assert footer(8) == "1      8"  # padding 6 < 7: spaces only
    assert footer(9) == "1 image 9"
    assert footer(10) == "1 image 10"  # padding 7: label fits exactly
    assert footer(15) == "1   image    15"  # odd spare space goes to the right
    assert footer(100) == "1" + " " * 25 + "image" + " " * 26 + "100"  # 60 columns


def test_width_is_capped_at_60_columns():
    z = np.repeat(np.arange(200) + 0.5, 3)
    lines = spot_histogram(z).split("\n")
    assert lines[0] == "600 spots found on 200 images (max 12 / bin)"
    assert len(lines) == 12 and all(len(line) == 60 for line in lines[1:])
    assert lines[-1].startswith("1 ") and lines[-1].endswith(" 200")


def test_jitter_alternates_by_row_order():
    # Even rows move down 0.25, odd rows up: edges are at 1.17 and 1.83, so z=1.2 lands in column 1 on
    # an odd row (1.45) and in column 0 on an even row (0.95).
    z = np.array([0.5, 1.2, 1.5, 2.5])
    assert spot_histogram(z).split("\n")[:2] == ["4 spots found on 3 images (max 2 / bin)", " * "]
    assert spot_histogram(z[[1, 0, 2, 3]]).split("\n")[1] == "*  "


def test_image_count_override():
    z = np.arange(5) + 0.5
    assert spot_histogram(z, 5) == spot_histogram(z)
    assert spot_histogram(z, 10).split("\n")[0] == "5 spots found on 10 images (max 1 / bin)"
    assert spot_histogram(z, 1) == "5 spots found on 1 image"


def test_accepts_sequences():
    assert spot_histogram([0.5, 1.5, 1.5]) == spot_histogram(np.array([0.5, 1.5, 1.5]))


def test_per_image_table_layout():
    table = per_image_table([(1, 120, 118, 12345.4), (2, 5, 3, 0.6)])
    assert table == "\n".join(
        [
            "+---------+----------+-----------------+-------------------+",
            "|   image |   #spots |   #spots_no_ice |   total_intensity |",
            "|---------+----------+-----------------+-------------------|",
            "|       1 |      120 |             118 |             12345 |",
            "|       2 |        5 |               3 |                 1 |",
            "+---------+----------+-----------------+-------------------+",
        ]
    )


def test_per_image_table_widens_for_long_values():
    lines = per_image_table([(1, 12345678901, 0, -2.5e12)]).split("\n")
    assert lines[1] == "|   image |      #spots |   #spots_no_ice |   total_intensity |"
    assert lines[3] == "|       1 | 12345678901 |               0 |    -2500000000000 |"
    assert len({len(line) for line in lines}) == 1


def test_per_image_table_empty():
    assert per_image_table([]).split("\n") == [
        "+---------+----------+-----------------+-------------------+",
        "|   image |   #spots |   #spots_no_ice |   total_intensity |",
        "|---------+----------+-----------------+-------------------|",
        "+---------+----------+-----------------+-------------------+",
    ]
