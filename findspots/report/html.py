"""Assembly of the one-file HTML page: inline CSS, figures as base64 PNG, no scripts, no network."""

from __future__ import annotations

import base64
import datetime
import html
import math
import os

from findspots import __version__
from findspots.report.data import (
    D_PERCENTILE,
    RESOLUTION_ESTIMATES,
    Analysis,
    ReportData,
)

MAX_INPUTS_LISTED = 200

CSS = """
:root { --fg:#1d2327; --muted:#5f6b73; --line:#dde3e8; --bg:#f5f7f9; --blue:#0072B2; --red:#D55E00;
        --green:#009E73; --orange:#E69F00; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif; }
header { background:#17324d; color:#fff; padding:18px 32px 16px; }
header h1 { margin:0; font-size:22px; font-weight:600; letter-spacing:.2px; }
header .sub { color:#c4d3e0; margin-top:4px; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:18px 24px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 20px 16px;
          margin:16px 0; }
h2 { font-size:17px; margin:2px 0 10px; font-weight:600; }
h3 { font-size:14px; margin:14px 0 6px; font-weight:600; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(160px,1fr)); gap:12px; margin:16px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card .v { font-size:24px; font-weight:650; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
.card .n { color:var(--muted); font-size:12px; }
.card.bad .v { color:var(--red); }
figure { margin:6px 0 0; }
figure img { max-width:100%; height:auto; display:block; margin:0 auto; border:1px solid #eef1f4; }
figcaption, .note { color:var(--muted); font-size:13px; margin-top:8px; }
ul.checks { margin:4px 0; padding-left:0; list-style:none; }
ul.checks li { padding:5px 10px; margin:4px 0; border-left:4px solid var(--orange); background:#fff8ec; }
ul.checks li.ok { border-color:var(--green); background:#eefaf5; }
ul.checks li.bad { border-color:var(--red); background:#fff1ea; }
table { border-collapse:collapse; font-size:13px; margin:4px 0 8px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#f0f3f6; font-weight:600; }
td.l, th.l { text-align:left; }
tr.none td { color:var(--red); }
tr.over td { background:#fbeef6; }
.bar { display:inline-block; height:9px; background:var(--blue); border-radius:2px; vertical-align:middle; }
pre { background:#f6f8fa; border:1px solid var(--line); border-radius:6px; padding:8px 12px;
      font-size:12.5px; overflow-x:auto; margin:4px 0; }
details summary { cursor:pointer; color:var(--blue); margin:6px 0; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(340px,1fr)); gap:8px 28px; }
.scroll { max-height:420px; overflow:auto; display:inline-block; border:1px solid var(--line); }
footer { color:var(--muted); font-size:12px; text-align:center; margin:20px 0; }
code { font-size:12.5px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _d(value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "∞"
    return f"{value:.2f}"


def _img(png: bytes | None, alt: str, error: str | None = None) -> str:
    if png is None:
        why = f": {error}" if error else ""
        return f'<p class="note">(figure not available{_e(why)})</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def checks(data: ReportData, a: Analysis) -> list[tuple[str, str]]:
    """(level, text) observations for the 'Things to check' list; level is ok, warn or bad."""
    out: list[tuple[str, str]] = []
    n_images = len(a.rows)
    none = [r for r in a.rows if r.spots == 0]
    over = [r for r in a.rows if r.over_limit]
    if a.n_spots == 0:
        out.append(("bad", "No spots were found on any image."))
    if none and a.n_spots:
        level = "bad" if len(none) > n_images / 2 else "warn"
        out.append((level, f"{len(none)} of {n_images} images have no spots: {_image_list(none)}."))
    if over:
        out.append(
            (
                "bad",
                f"{len(over)} image(s) have more strong pixels than max_strong_pixel_fraction="
                f"{data.max_strong_fraction} allows: {_image_list(over)}. Mask the beamstop/ice or raise "
                "sigma_strong.",
            )
        )
    if a.hot:
        out.append(
            (
                "warn",
                f"{len(a.hot)} spot(s) look like hot pixels (spanning every image of a sweep, or the same "
                "pixel on half of the stills); they are marked with red squares. A mask (untrusted pixels) "
                "removes them.",
            )
        )
    for ring, inside, expected in a.ice:
        out.append(
            (
                "warn",
                f"{inside} spots lie on the ice ring at {ring:.3f} Å, against about {expected:.0f} in the "
                "shells beside it: the crystal or the loop may be icy "
                "(spotfinder.filter.ice_rings.filter=True).",
            )
        )
    if a.n_spots and a.d95 is not None and a.d_detector < math.inf and a.d95 <= a.d_detector * 1.05:
        out.append(
            (
                "warn",
                f"Spots reach the detector edge (d95 {a.d95:.2f} Å, corner {a.d_detector:.2f} Å): the "
                "crystal may diffract further; consider moving the detector closer.",
            )
        )
    if not out:
        out.append(
            (
                "ok",
                "Nothing unusual: every image has spots, no image is near the strong-pixel limit, "
                "no ice-ring excess and no hot-pixel suspects.",
            )
        )
    return out


def _image_list(rows, limit: int = 12) -> str:
    several = len({r.sequence for r in rows}) > 1
    names = [f"{r.sequence}:{r.image}" if several else str(r.image) for r in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(names) + more


def _cards(data: ReportData, a: Analysis, render_s: float) -> str:
    spots_per = sorted(r.spots for r in a.rows)
    median = spots_per[len(spots_per) // 2] if spots_per else 0
    none = sum(1 for r in a.rows if r.spots == 0)
    total = data.timings.get("total", sum(data.timings.values()) if data.timings else None)
    cards = [
        ("spots", f"{a.n_spots:,}", f"on {len(a.rows):,} images", a.n_spots == 0),
        ("spots per image", f"{median:,}", f"median; max {max(spots_per, default=0):,}", False),
        (
            "d95, all spots",
            f"{_d(a.d95)} Å" if a.d95 is not None else "–",
            f"detector corner {_d(a.d_detector)} Å",
            False,
        ),
        ("images without spots", f"{none:,}", f"of {len(a.rows):,}", none > 0),
        ("strong pixels", f"{sum(r.strong for r in a.rows):,}", "all images", False),
    ]
    if total is not None:
        cards.append(("run time", f"{total:.1f} s", f"report {render_s:.1f} s", False))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card{" bad" if bad else ""}"><div class="k">{_e(k)}</div>'
            f'<div class="v">{_e(v)}</div><div class="n">{_e(n)}</div></div>'
            for k, v, n, bad in cards
        )
        + "</div>"
    )


def _sequence_table(a: Analysis) -> str:
    rows = []
    for s in a.sequences:
        kind = "stills" if s.still else f"{s.oscillation[0]:g}° + {s.oscillation[1]:g}°/image"
        rows.append(
            f'<tr><td>{s.index}</td><td class="l">{_e(s.template)}</td><td>{s.first}–{s.last}</td>'
            f'<td>{s.n_images}</td><td class="l">{_e(kind)}</td><td>{s.wavelength:.4f}</td>'
            f"<td>{s.spots:,}</td><td>{s.strong:,}</td><td>{_d(s.d95)}</td><td>{_d(s.d_detector)}</td></tr>"
        )
    return (
        '<table id="sequences"><tr><th>#</th><th class="l">template</th><th>images</th><th>processed</th>'
        '<th class="l">scan</th><th>λ (Å)</th><th>spots</th><th>strong pixels</th><th>d95 (Å)</th>'
        "<th>corner d (Å)</th></tr>" + "".join(rows) + "</table>"
    )


def _counts_table(data: ReportData, a: Analysis) -> str:
    if not data.counts:
        return f'<p class="note">{a.n_spots:,} spots written.</p>'
    top = max(max(data.counts.values(), default=1), 1)
    rows = "".join(
        f'<tr><td class="l">{_e(k)}</td><td>{v:,}</td>'
        f'<td class="l"><span class="bar" style="width:{max(1, round(160 * v / top))}px"></span></td></tr>'
        for k, v in data.counts.items()
    )
    return f'<table id="counts"><tr><th class="l">step</th><th>spots</th><th></th></tr>{rows}</table>'


def _timings_table(data: ReportData, render_s: float) -> str:
    timings = dict(data.timings)
    total = timings.get("total") or sum(timings.values()) or None
    rows = []
    for k, v in timings.items():
        share = f"{100 * v / total:.0f} %" if total and k != "total" else ""
        bar = (
            f'<span class="bar" style="width:{max(1, round(160 * v / total))}px"></span>'
            if total and k != "total"
            else ""
        )
        rows.append(
            f'<tr><td class="l">{_e(k)}</td><td>{v:.2f}</td><td>{share}</td><td class="l">{bar}</td></tr>'
        )
    rows.append(f'<tr><td class="l">this report (figures)</td><td>{render_s:.2f}</td><td></td><td></td></tr>')
    return (
        '<table id="timings"><tr><th class="l">stage</th><th>seconds</th><th>share</th><th></th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _image_table(a: Analysis) -> str:
    several = len(a.sequences) > 1
    rows = []
    for r in a.rows:
        cls = "none" if r.spots == 0 else ("over" if r.over_limit else "")
        seq = f"<td>{r.sequence}</td>" if several else ""
        no_ice = "–" if r.spots_no_ice is None else f"{r.spots_no_ice:,}"
        estimates = "".join(f"<td>{_d(r.estimates.get(n))}</td>" for n in RESOLUTION_ESTIMATES)
        rows.append(
            f'<tr class="{cls}">{seq}<td>{r.image}</td><td>{r.strong:,}</td><td>{r.spots:,}</td>'
            f"<td>{no_ice}</td>{estimates}</tr>"
        )
    head = "<th>sequence</th>" if several else ""
    return (
        f'<div class="scroll"><table id="images"><tr>{head}<th>image</th><th>strong pixels</th><th>spots</th>'
        "<th>off ice</th><th>estimated d_min (Å)</th><th>DISTL 1 (Å)</th><th>DISTL 2 (Å)</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def _grid_section(data: ReportData, pngs: dict[str, bytes], errors: dict[str, str]) -> str:
    """The grid scan's heat maps (only with ``ReportData.grid``)."""
    if not data.grid:
        return ""
    nx, ny = data.grid
    walk = "every odd row right to left (snake)" if data.grid_order == "snake" else "every row left to right"
    return f"""
<section id="grid"><h2>Grid scan</h2>
<figure>{_img(pngs.get("grid"), "heat maps of spots and resolution over the grid", errors.get("grid"))}
<figcaption>One cell per image of the {nx} × {ny} grid (output.grid={nx},{ny}): image i (from 0, in
processing order) at row i // {nx}, column i % {nx}, {_e(walk)}, row 0 at the bottom. Left: spots off
the ice rings (n_spots_no_ice); right: estimated_d_min (grey: no estimate, 10 or fewer spots off the
ice rings). The image with the most spots off the ice rings is outlined in blue; its name is above
the maps.</figcaption></figure></section>
"""


def _inputs(data: ReportData) -> str:
    items = data.inputs[:MAX_INPUTS_LISTED]
    more = len(data.inputs) - len(items)
    body = "\n".join(_e(i) for i in items) + (f"\n… and {more} more" if more > 0 else "")
    return f"<details><summary>{len(data.inputs):,} input argument(s)</summary><pre>{body}</pre></details>"


def page(
    data: ReportData,
    a: Analysis,
    pngs: dict[str, bytes],
    render_s: float,
    errors: dict[str, str] | None = None,
) -> str:
    """The complete HTML document (``errors``: why a figure is missing, by name)."""
    errors = errors or {}
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    names = ", ".join(os.path.basename(s.template) for s in a.sequences[:3])
    if len(a.sequences) > 3:
        names += f" and {len(a.sequences) - 3} more"
    check_items = "".join(f'<li class="{lv}">{_e(t)}</li>' for lv, t in checks(data, a))
    modified = data.modified_parameters.strip()
    modified_html = (
        f"<pre>{_e(modified)}</pre>" if modified else '<p class="note">All parameters at their defaults.</p>'
    )
    limit = a.sequences[0].strong_limit if a.sequences else None
    limit_text = (
        f"The strong-pixel limit (max_strong_pixel_fraction={data.max_strong_fraction}) is {limit:,} pixels "
        "per image; images over it are marked with purple triangles."
        if limit is not None
        else "No strong-pixel limit was set."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>findspots report: {_e(names)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>findspots report</h1>
<div class="sub">{_e(names)} · {len(a.rows):,} images in {len(a.sequences)} sequence(s) · findspots
{_e(__version__)} · {_e(now)}</div></header>
<main>
{_cards(data, a, render_s)}
<section id="checks"><h2>Things to check</h2><ul class="checks">{check_items}</ul></section>

<section id="per-image"><h2>Per image</h2>
<figure>{_img(pngs.get("per_image"), "spots, strong pixels, resolution per image", errors.get("per_image"))}
<figcaption>Top: spots per image, each spot counted on the image holding its centroid, and (dashed) those
off the ice rings, n_spots_no_ice of DIALS's per-image analysis; images without spots are shaded red
and marked ×. Middle: strong pixels per image (before joining into spots and filtering).
{_e(limit_text)} Bottom: the resolution estimates of DIALS's per-image analysis (as
dials.spot_counts_per_image and the find-spots server give them): estimated_d_min and DISTL methods 1
and 2, from the spots off the ice rings; an image with 10 or fewer such spots has none. The dashed line
is <b>d95</b> of all spots: the d-spacing at the {D_PERCENTILE:g}th percentile of their 1/d² (5 % lie
further out). They are measured from spots only, so they show how far out the spots go, not a
data-processing resolution limit (which needs merged I/σ).</figcaption></figure>
<details><summary>Per-image table</summary>{_image_table(a)}</details>
</section>
{_grid_section(data, pngs, errors)}
<section id="resolution"><h2>Spots against resolution</h2>
<figure>{_img(pngs.get("resolution"), "spot count against resolution", errors.get("resolution"))}
<figcaption>Spots in shells of equal width in 1/d² (equal detector areas near the beam), from the beam
centre (left) to the detector corner (dotted line). A smooth fall-off is diffraction; sharp peaks on the
blue bands are ice rings (hexagonal ice Ih, a = 4.498 Å, c = 7.338 Å, band width 0.002 Å⁻²). d is
computed from each centroid with the detector geometry, without the parallax correction.</figcaption>
</figure></section>

<section id="detector"><h2>Detector view</h2>
<figure>{_img(pngs.get("detector"), "detector image with spots", errors.get("detector"))}
<figcaption>The image with the most spots, log-scaled (dark = bright pixels, white = no counts, such as
the beamstop shadow); masked pixels (module gaps, untrusted or overloaded pixels) in orange; the spots
whose centroid lies on this image circled in blue; dashed green rings of constant resolution; the beam
centre as a red +. The numbered spots are enlarged below, linear scale, with their bounding box (blue)
and centroid (red +).</figcaption></figure></section>

<section id="spots"><h2>Spot intensities and sizes</h2>
<figure>{_img(pngs.get("spot_histograms"), "spot intensities and sizes", errors.get("spot_histograms"))}
<figcaption>Summed intensity (background not subtracted), pixels per spot and images spanned by each
spot's bounding box. In the scatter, real reflections form a band where intensity grows with size; hot
pixels sit apart (few pixels, spanning every image); red squares mark suspected ones.</figcaption>
</figure></section>

<section id="summary"><h2>Run summary</h2>
<div class="grid2"><div><h3>Spot filtering</h3>{_counts_table(data, a)}</div>
<div><h3>Timing</h3>{_timings_table(data, render_s)}</div></div>
<h3>Sequences</h3>{_sequence_table(a)}
<h3>Parameters changed from the defaults</h3>{modified_html}
<h3>Inputs</h3>{_inputs(data)}
</section>
</main>
<footer>Written by findspots {_e(__version__)}. This page is self-contained: figures are embedded, nothing is
loaded from the network. The same figures as PNG files: <code>output.plots=DIR</code>.</footer>
</body></html>
"""
