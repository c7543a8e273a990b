"""The text ``dials.spot_counts_per_image`` prints: the per-image table and the overall block.

Both are ``tabulate(tablefmt="psql")`` tables of strings, so tabulate's reading of them applies: a column
whose every cell parses as an integer or a float is numeric (right-aligned, floats re-printed with
``format(value, "g")`` — "1.50" shows as "1.5" — and aligned on the decimal point); any other column is
text (left-aligned, header too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from findspots.output.histogram import psql_table


def _parses(cell: str, kind: type) -> bool:
    try:
        kind(cell)
    except ValueError:
        return False
    return True


def _digits_after_point(cell: str) -> int:
    """Characters after the decimal point (or after an exponent's "e"), −1 for an integer."""
    if _parses(cell, int):
        return -1
    pos = cell.rfind(".")
    pos = cell.lower().rfind("e") if pos < 0 else pos
    return len(cell) - pos - 1 if pos >= 0 else -1


def _column(cells: list[str]) -> tuple[list[str], str]:
    """A column's cells as tabulate prints them, and its alignment ("<" or ">")."""
    if all(_parses(c, int) for c in cells):
        return cells, ">"
    if not all(_parses(c, float) for c in cells):
        return cells, "<"
    cells = [format(float(c), "g") for c in cells]
    after = [_digits_after_point(c) for c in cells]
    most = max(after)
    return [c + " " * (most - a) for c, a in zip(cells, after, strict=True)], ">"


def tabulate_psql(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """String cells laid out as ``tabulate(rows, headers, tablefmt="psql")`` lays them out."""
    columns, aligns = [], []
    for j in range(len(headers)):
        cells, align = _column([row[j] for row in rows])
        columns.append(cells)
        aligns.append(align)
    return psql_table(headers, [list(r) for r in zip(*columns, strict=True)], aligns)


def _positive(values: Sequence[float]) -> bool:
    return all(v > 0 for v in values)


def per_image_text(figures: Mapping[str, list]) -> str:
    """The per-image table: image, #spots, #spots_no_ice, total_intensity, and each d_min column whose
    values are all positive (DISTL ones with their noisiness in brackets)."""
    n = len(figures["n_spots_total"])
    optional = [
        ("d_min", "estimated_d_min", None),
        ("d_min (distl method 1)", "d_min_distl_method_1", "noisiness_method_1"),
        ("d_min (distl method 2)", "d_min_distl_method_2", "noisiness_method_2"),
    ]
    shown = [(h, k, noise) for h, k, noise in optional if _positive(figures[k])]
    headers = ["image", "#spots", "#spots_no_ice", "total_intensity"] + [h for h, _, _ in shown]
    rows = []
    for i in range(n):
        row = [
            str(i + 1),
            str(figures["n_spots_total"][i]),
            str(figures["n_spots_no_ice"][i]),
            f"{figures['total_intensity'][i]:.0f}",
        ]
        for _, key, noise in shown:
            cell = f"{figures[key][i]:.2f}"
            row.append(cell if noise is None else f"{cell} ({figures[noise][i]:.2f})")
        rows.append(row)
    return tabulate_psql(headers, rows)


def overall_text(figures: Mapping[str, float]) -> str:
    """The "Overall statistics" block of the whole table's figures."""
    rows = [
        ["#spots", f"{figures['n_spots_total']:d}"],
        ["#spots_no_ice", f"{figures['n_spots_no_ice']:d}"],
        ["d_min", f"{figures['estimated_d_min']:.2f}"],
        [
            "d_min (distl method 1)",
            f"{figures['d_min_distl_method_1']:.2f} ({figures['noisiness_method_1']:.2f})",
        ],
        [
            "d_min (distl method 2)",
            f"{figures['d_min_distl_method_2']:.2f} ({figures['noisiness_method_2']:.2f})",
        ],
    ]
    return tabulate_psql(["Overall statistics", ""], rows)


def spot_counts_text(per_image: Mapping[str, list], overall: Mapping[str, float]) -> str:
    """Everything ``dials.spot_counts_per_image`` prints, newline-terminated."""
    return f"{per_image_text(per_image)}\n{overall_text(overall)}\n"
