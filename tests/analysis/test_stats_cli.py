"""findspots-stats: options, split JSON files and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from findspots.app.stats import run

FOLDER = Path(__file__).resolve().parents[2] / "data" / "reference" / "l_cysteine_sweep02" / "per_image"
EXPT, REFL = str(FOLDER / "models.expt"), str(FOLDER / "strong.refl.xz")


def test_split_json_writes_one_list_per_figure(tmp_path, capsys):
    out = tmp_path / "stats.json"
    assert run([EXPT, REFL, f"json={out}", "split_json=True"]) == 0
    joint = json.loads(out.read_text())
    assert json.loads((tmp_path / "stats_n_spots_total.json").read_text()) == joint["n_spots_total"]
    assert len(joint["n_spots_total"]) == 15


def test_id_keeps_one_experiment(capsys):
    assert run([EXPT, REFL, "id=1"]) == 0  # no experiment 1: every image empty
    assert "|      15 |        0 |               0 |                 0 |" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys):
    cases = [
        ([EXPT], 2, "expected an experiment file and one reflection file"),
        ([EXPT, str(tmp_path / "none.refl")], 2, "none.refl: no such reflection file"),
        ([str(tmp_path / "none.expt"), REFL], 1, "none.expt: no such file"),
        ([EXPT, REFL, "colour=red"], 2, "colour=red: unknown option"),
        ([EXPT, REFL, "split_json=maybe"], 2, "split_json=maybe: expected True or False"),
        ([EXPT, EXPT], 2, "models.expt: not a readable reflection table"),
    ]
    for argv, code, message in cases:
        assert run(argv) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
