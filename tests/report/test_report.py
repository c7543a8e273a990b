"""The HTML report and the PNG figures: content equals the reflection table, self-contained, robust."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np

from findspots.report import FIGURE_NAMES, ReportData, build_figures, image_counts, write_plots, write_report

from .conftest import DATA, PER_IMAGE, dials_strong_counts, spots_per_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tables (by id) as lists of rows of cell texts, the images' src, the list items and all text."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.checks: list[tuple[str, str]] = []
        self.cards: dict[str, str] = {}
        self.tags: set[str] = set()
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._li: list[str] | None = None
        self._li_class = ""
        self._card_key: str | None = None
        self._div: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "li":
            self._li, self._li_class = [], attrs.get("class", "")
        elif tag == "div" and attrs.get("class") in ("k", "v"):
            self._div = attrs["class"]

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._li is not None:
            self.checks.append((self._li_class, "".join(self._li)))
            self._li = None
        elif tag == "div":
            self._div = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._li is not None:
            self._li.append(data)
        if self._div == "k":
            self._card_key = data.strip()
        elif self._div == "v" and self._card_key:
            self.cards[self._card_key] = data.strip()


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("Å", "").strip())


def _decode(src: str) -> bytes:
    assert src.startswith("data:image/png;base64,")
    return base64.b64decode(src.split(",", 1)[1])


def _colours(png: bytes) -> int:
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len(np.unique(im.reshape(-1, 3), axis=0))


# ----------------------------------------------------------------------------------------------- content


def test_report_numbers_equal_the_reflection_table(lcyst_report, lcyst_table, lcyst_data):
    page = _Page(lcyst_report.read_text(encoding="utf-8"))
    n = len(lcyst_table["id"])
    assert _number(page.cards["spots"]) == n == 53
    per_image = spots_per_image(lcyst_table)
    # per-image table: image, strong pixels, spots, spots off ice, the three resolution estimates
    rows = page.tables["images"][1:]
    assert [int(r[0]) for r in rows] == list(range(1, 16))
    assert {int(r[0]): int(_number(r[2])) for r in rows} == {i: per_image.get(i, 0) for i in range(1, 16)}
    assert [int(_number(r[1])) for r in rows] == [c for _, _, c in lcyst_data.images]
    assert [int(r[3]) for r in rows] == json.loads(PER_IMAGE.read_text())["n_spots_no_ice"]  # DIALS 3.12's
    assert {tuple(r[4:]) for r in rows} == {("–", "–", "–")}  # no image has more than 10 spots off ice
    assert _number(page.cards["images without spots"]) == 2
    assert _number(page.cards["spots per image"]) == sorted(per_image.get(i, 0) for i in range(1, 16))[7]
    assert _number(page.cards["strong pixels"]) == sum(c for _, _, c in lcyst_data.images)
    # sequences table
    (seq,) = page.tables["sequences"][1:]
    assert seq[1].endswith("l-cyst_01_#####.cbf.bz2") and seq[2] == "1–15" and int(seq[3]) == 15
    assert int(_number(seq[6])) == n
    # filtering steps as given, ending with the rows written
    assert [(r[0], int(_number(r[1]))) for r in page.tables["counts"][1:]] == list(lcyst_data.counts.items())
    # timing: every stage and the report's own rendering time
    timings = {r[0]: r[1] for r in page.tables["timings"][1:]}
    assert timings["total"] == "2.10" and "this report (figures)" in timings
    assert "2 of 15 images have no spots: 3, 11." in [t for _, t in page.checks]
    text = lcyst_report.read_text(encoding="utf-8")
    assert "algorithm = dispersion" in text  # the modified parameters
    assert "95th percentile" in text  # how d95 is estimated is said on the page


def test_report_is_self_contained(lcyst_report):
    text = lcyst_report.read_text(encoding="utf-8")
    page = _Page(text)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert len(page.images) == 4
    for img in page.images:
        png = _decode(img["src"])
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000
        assert img["alt"]


def test_figures_have_content(lcyst_figures):
    from PIL import Image

    assert set(lcyst_figures.png) == set(FIGURE_NAMES) and not lcyst_figures.errors
    for name, png in lcyst_figures.png.items():
        width, height = Image.open(io.BytesIO(png)).size
        assert width == 1000 and 300 < height < 2000, name
        assert _colours(png) > 200, name
    # the detector view holds the log-scaled image: many grey levels
    det = np.asarray(Image.open(io.BytesIO(lcyst_figures.png["detector"])).convert("RGB"))
    grey = det[(det[..., 0] == det[..., 1]) & (det[..., 1] == det[..., 2])][:, 0]
    assert len(np.unique(grey)) > 64


def test_write_plots(lcyst_data, lcyst_figures, tmp_path):
    paths = write_plots(lcyst_data, tmp_path / "plots" / "new", lcyst_figures)
    assert [p.name for p in paths] == [f"{n}.png" for n in FIGURE_NAMES]
    for p in paths:
        assert p.read_bytes() == lcyst_figures.png[p.stem]


def test_write_report_renders_when_not_given_figures(lcyst_data, tmp_path):
    path = write_report(lcyst_data, tmp_path / "r.html")
    assert path.exists() and len(_Page(path.read_text()).images) == 4
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------------------ other runs


def test_report_of_a_real_run(lcyst_files, tmp_path):
    """Spot finding on the bundled sweep, then the report, as the command does it."""
    from findspots.app.parameters import parse_arguments
    from findspots.app.pipeline import find_spots
    from findspots.images import group_images

    args = parse_arguments([*lcyst_files, "nproc=1", f"output.report={tmp_path / 'x.html'}"])
    assert args.params.output.report == str(tmp_path / "x.html")
    sequences = group_images(lcyst_files)
    rows = find_spots(sequences, args.params)
    table = rows.table()
    data = ReportData(
        table=table,
        sequences=sequences,
        images=image_counts(rows.images),
        max_strong_fraction=args.params.spotfinder.filter.max_strong_pixel_fraction,
        counts={"written": len(rows)},
        modified_parameters=args.modified,
        inputs=lcyst_files,
        timings={"total": 1.0},
    )
    figures = build_figures(data)
    path = write_report(data, tmp_path / "x.html", figures)
    page = _Page(path.read_text())
    assert _number(page.cards["spots"]) == len(rows) == len(table["id"])
    strong = {im.frame + 1: im.count for im in rows.images[0]}
    assert {int(r[0]): int(_number(r[1])) for r in page.tables["images"][1:]} == strong
    per_image = spots_per_image(table)
    assert {int(r[0]): int(_number(r[2])) for r in page.tables["images"][1:]} == {
        i: per_image.get(i, 0) for i in strong
    }
    assert not figures.errors


def test_two_sequences(lcyst_files, tmp_path):
    """Both bundled sweeps: per-sequence rows, ids mapped to their sequence."""
    from findspots.images import group_images
    from findspots.output.refl import read_reflections

    files = sorted(str(p) for p in (DATA / "l_cysteine").glob("l-cyst_0*.cbf.bz2"))
    sequences = group_images(files)
    assert len(sequences) == 2
    ref = DATA / "reference"
    t1 = read_reflections(ref / "l_cysteine_sweep01" / "dispersion" / "strong.refl.xz")
    t2 = read_reflections(ref / "l_cysteine_sweep02" / "dispersion" / "strong.refl.xz")
    names = ("xyzobs.px.value", "bbox", "intensity.sum.value", "n_signal", "panel")
    table = {k: np.concatenate([np.asarray(t1[k]), np.asarray(t2[k])]) for k in names}
    table["id"] = np.r_[np.zeros(len(t1), np.int32), np.ones(len(t2), np.int32)]
    images = dials_strong_counts(ref / "l_cysteine_sweep01" / "dispersion" / "dials.find_spots.log", 0)
    images += dials_strong_counts(ref / "l_cysteine_sweep02" / "dispersion" / "dials.find_spots.log", 1)
    data = ReportData(table=table, sequences=sequences, images=images, inputs=files)
    figures = build_figures(data)
    assert not figures.errors
    page = _Page(write_report(data, tmp_path / "two.html", figures).read_text())
    seqs = page.tables["sequences"][1:]
    assert [int(_number(r[6])) for r in seqs] == [len(t1), len(t2)]
    rows = page.tables["images"][1:]  # sequence, image, strong, spots, d95
    assert len(rows) == 30 and {r[0] for r in rows} == {"0", "1"}
    for s, t in ((0, t1), (1, t2)):
        expected = spots_per_image(t)
        got = {int(r[1]): int(_number(r[3])) for r in rows if int(r[0]) == s}
        assert got == {i: expected.get(i, 0) for i in range(1, 16)}


def test_still_image(tmp_path):
    """A still (one experiment id per image): DIALS's spots on the bundled thaumatin grid image."""
    from findspots.images import group_images
    from findspots.output.refl import read_reflections

    sequences = group_images([str(DATA / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2")])
    assert sequences[0].is_still
    ref = read_reflections(DATA / "reference" / "thaumatin_grid" / "dispersion" / "strong.refl.xz")
    on = np.asarray(ref["id"]) == 1  # the grid's second image
    table = {
        k: np.asarray(ref[k])[on] for k in ("xyzobs.px.value", "bbox", "intensity.sum.value", "n_signal")
    }
    table["panel"] = np.asarray(ref["panel"])[on]
    table["id"] = np.zeros(int(on.sum()), np.int32)
    data = ReportData(table=table, sequences=sequences, images=[(0, 2, 11368)])
    figures = build_figures(data)
    assert set(figures.png) == set(FIGURE_NAMES) and not figures.errors
    page = _Page(write_report(data, tmp_path / "still.html", figures).read_text())
    assert [r[:3] for r in page.tables["images"][1:]] == [["2", "11,368", f"{int(on.sum()):,}"]]


def test_no_spots(lcyst_sequences, tmp_path):
    data = ReportData(table={}, sequences=lcyst_sequences, images=[(0, i, 5) for i in range(1, 16)])
    figures = build_figures(data)
    assert not figures.errors and set(figures.png) == set(FIGURE_NAMES)
    page = _Page(write_report(data, tmp_path / "none.html", figures).read_text())
    assert _number(page.cards["spots"]) == 0
    assert ("bad", "No spots were found on any image.") in page.checks


def test_a_failing_figure_leaves_the_rest(lcyst_data, tmp_path, monkeypatch):
    import findspots.report.detector as detector

    def broken(data, analysis):
        raise OSError("image file vanished")

    monkeypatch.setattr(detector, "detector_view", broken)
    figures = build_figures(lcyst_data)
    assert set(figures.png) == set(FIGURE_NAMES) - {"detector"}
    assert "vanished" in figures.errors["detector"]
    text = write_report(lcyst_data, tmp_path / "r.html", figures).read_text()
    assert "figure not available: OSError: image file vanished" in text
    assert len(_Page(text).images) == 3


# ------------------------------------------------------------------------------------------- parameters


def test_parameters():
    from findspots.app.parameters import parse_arguments

    out = parse_arguments(["x.cbf"]).params.output
    assert out.report == "findspots.html" and out.plots is None
    out = parse_arguments(["x.cbf", "output.report=None", "plots=figs"]).params.output
    assert out.report is None and out.plots == "figs"


def test_filter_masks_are_shaded(lcyst_data, tmp_path):
    """Masks passed in (e.g. a border) show on the detector view: more of it is shaded."""
    from dataclasses import replace

    from PIL import Image

    shape = lcyst_data.sequences[0].detector[0].shape
    border = np.zeros(shape, bool)
    border[300:-300, 300:-300] = True
    plain = build_figures(replace(lcyst_data, masks=None)).png["detector"]
    masked = build_figures(replace(lcyst_data, masks=[[border]])).png["detector"]

    def shaded(png):
        im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        return int((np.abs(im - (246, 200, 110)).max(axis=2) < 20).sum())  # the orange of masked pixels

    assert shaded(masked) > 2 * shaded(plain) > 0


# ----------------------------------------------------------------------------------------------- grid scan


def test_grid_heat_maps_hold_the_per_image_figures(lcyst_grid_data, lcyst_grid_report, tmp_path):
    from findspots.report import GRID_FIGURE, analyse, grid_inputs

    counts = json.loads(PER_IMAGE.read_text())["n_spots_no_ice"]  # DIALS 3.12's, images 1..15
    inputs = grid_inputs(lcyst_grid_data, analyse(lcyst_grid_data))
    # image i at row i // 5, column i % 5; image 14 (i = 13) has the most spots off the ice rings: 7
    assert inputs["no_ice"].tolist() == [counts[0:5], counts[5:10], counts[10:15]]
    assert np.isnan(inputs["d_min"]).all()  # no image has an estimate
    assert inputs["best"] == (2, 3) and inputs["best_label"].startswith("image 14 (row 2, column 3), 7 spots")
    snake = grid_inputs(replace(lcyst_grid_data, grid_order="snake"), analyse(lcyst_grid_data))
    assert snake["no_ice"].tolist() == [counts[0:5], counts[5:10][::-1], counts[10:15]]
    assert snake["best"] == (2, 3)
    # the page: the grid section with its figure; the plots: grid.png
    page = _Page(lcyst_grid_report.read_text(encoding="utf-8"))
    assert len(page.images) == 5
    assert "output.grid=5,3" in lcyst_grid_report.read_text(encoding="utf-8")
    paths = write_plots(lcyst_grid_data, tmp_path / "plots")
    assert paths[-1].name == f"{GRID_FIGURE}.png" and paths[-1].read_bytes().startswith(PNG_MAGIC)


def test_no_grid_without_the_per_image_analysis(lcyst_grid_data):
    from findspots.report import GRID_FIGURE

    figures = build_figures(replace(lcyst_grid_data, per_image=None))
    assert GRID_FIGURE not in figures.png and not figures.errors
