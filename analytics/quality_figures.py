"""The quality page's figures with matplotlib (object API on an Agg canvas, as
``analytics.figures``): a run chart of each time indicator's median by quarter per
site, and a funnel plot of each rate indicator."""

from __future__ import annotations

from django.utils.translation import gettext as _

from . import indicators as qi

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
RUN_CHARTS = tuple(f"run-{i.code}" for i in qi.TIME_INDICATORS)
FUNNELS = tuple(f"funnel-{i.code}" for i in qi.rate_indicators())
FIGURES = RUN_CHARTS + FUNNELS
# The titles' height, given: matplotlib would otherwise measure every tick label at
# each draw to keep the title clear of decorations these axes do not have on top.
TITLE_Y = 1.0


def run_chart(code: str, per_site: dict[str, dict[str, float]]):
    """Median minutes by quarter, one line per site."""
    from matplotlib.figure import Figure

    quarters = sorted({q for values in per_site.values() for q in values})
    figure = Figure(figsize=(9, 4))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.9)
    axes = figure.add_subplot()
    for site, values in sorted(per_site.items()):
        xs = [quarters.index(q) for q in sorted(values)]
        axes.plot(xs, [values[q] for q in sorted(values)], marker="o", markersize=3, label=site)
    step = max(1, len(quarters) // 12)
    axes.set_xticks(range(0, len(quarters), step), quarters[::step], rotation=30, fontsize=8)
    axes.set_ylabel(_("median minutes"))
    axes.set_title(_("%(indicator)s: median by quarter") % {"indicator": code}, y=TITLE_Y)
    if per_site:
        axes.legend(fontsize=7, ncols=5, frameon=False)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure


def funnel(code: str, entry: dict):
    """Each site's percent against its number of patients, the registry-wide percent and
    the 95 % and 99.8 % exact binomial control limits."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
    axes = figure.add_subplot()
    sizes = entry["sizes"]
    styles = {0.95: ("--", _("95% limits")), 0.998: (":", _("99.8% limits"))}
    for level, (low, high) in entry["limits"].items():
        style, label = styles[level]
        axes.plot(sizes, low, style, color="#555555", linewidth=1, label=label)
        axes.plot(sizes, high, style, color="#555555", linewidth=1)
    if entry["overall"] is not None:
        axes.axhline(entry["overall"], color="#1f77b4", linewidth=1, label=_("all sites"))
    sites = entry["sites"]  # those with patients: each has a percent
    # One artist for every site's point: a line per point costs a draw each.
    axes.plot(
        [row["denominator"] for row in sites],
        [row["percent"] for row in sites],
        "o",
        color="#d62728",
    )
    for row in sites:
        axes.annotate(
            row["site"],
            (row["denominator"], row["percent"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.set_xlabel(_("patients (denominator)"))
    axes.set_ylabel("%")
    axes.set_ylim(-2, 102)
    axes.set_title(_("%(indicator)s: funnel plot") % {"indicator": code}, y=TITLE_Y)
    axes.legend(fontsize=7, frameon=False)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure


def render(name: str, data: dict, fmt: str) -> bytes:
    """Figure ``name`` (``run-<code>`` or ``funnel-<code>``) of ``quality.page()``'s data.

    Drawn once, with fixed margins (a tight bounding box draws it twice) and in an SVG
    the text as text (not one path per glyph): 13 figures make up most of the page's
    time once its numbers are remembered."""
    import io

    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    _kind, _sep, code = name.partition("-")
    if name in RUN_CHARTS:
        figure = run_chart(code, data["run_charts"][code])
    elif name in FUNNELS:
        figure = funnel(code, data["funnels"][code])
    else:
        raise KeyError(name)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    return buffer.getvalue()
