"""The command line writes the HTML report and PNG plots next to the spots, as a user runs it."""

from pathlib import Path

from findspots.app.cli import run
from findspots.output.refl import read_reflections

REPO = Path(__file__).resolve().parents[1]


def test_report_and_plots_from_a_run(tmp_path):
    images = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))
    report, plots = tmp_path / "report.html", tmp_path / "plots"
    argv = [
        *map(str, images),
        f"output.reflections={tmp_path / 's.refl'}",
        f"output.log={tmp_path / 'l'}",
        f"output.debug_log={tmp_path / 'd'}",
        f"output.report={report}",
        f"output.plots={plots}",
    ]
    assert run(argv) == 0
    page = report.read_text()
    assert len(read_reflections(tmp_path / "s.refl")["bbox"]) == 53
    assert "53" in page and page.count("data:image/png;base64,") >= 4
    assert "http://" not in page and "https://" not in page  # opens offline
    assert len(list(plots.glob("*.png"))) >= 4


def test_output_experiments_share_identifiers_with_the_table(tmp_path):
    import json

    images = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))
    refl, expt = tmp_path / "s.refl", tmp_path / "s.expt"
    argv = [
        *map(str, images),
        f"output.reflections={refl}",
        f"output.experiments={expt}",
        "output.report=None",
    ]
    assert run(argv) == 0
    table = read_reflections(refl)
    experiments = json.loads(expt.read_text())["experiment"]
    assert table.identifiers == {0: experiments[0]["identifier"]}
    # the experiments file is an input too, and gives the same spots
    again = tmp_path / "again.refl"
    assert run([str(expt), f"output.reflections={again}", "output.report=None"]) == 0
    assert len(read_reflections(again)["bbox"]) == len(table["bbox"]) == 53


def test_the_report_is_drawn_with_the_runs_nproc(tmp_path, monkeypatch):
    import findspots.report as report

    seen, build = [], report.build_figures

    def recorded(data, nproc=1):
        seen.append(nproc)
        return build(data, nproc)

    monkeypatch.setattr(report, "build_figures", recorded)
    image = REPO / "data" / "l_cysteine" / "l-cyst_01_00001.cbf.bz2"
    page = tmp_path / "report.html"
    argv = [str(image), "nproc=2", f"output.reflections={tmp_path / 's.refl'}", f"output.report={page}"]
    assert run([*argv, f"output.log={tmp_path / 'l'}", f"output.debug_log={tmp_path / 'd'}"]) == 0
    assert seen == [2] and page.read_text().count("data:image/png;base64,") == 4
