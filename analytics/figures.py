"""The study's figures with matplotlib (Agg backend: no display, thread-safe use).

* Figure 3 as a Grotta chart: one horizontal bar per time point (admission,
  discharge, 3 months), stacked mRS 0-6 as percentages of the patients with the
  mRS recorded, each segment labelled.
* Figure 4: occlusion sites by 3 T MRI (red) and DSA (blue), grouped bars.

Both return ``bytes`` in SVG or PNG. Figures are built with the object API
(``Figure`` on an Agg canvas), never ``pyplot``'s global state: no display is
needed and concurrent requests do not share a current figure.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from . import exposures as ex
from .formatting import format_percent

# numpy, pandas, scipy, statsmodels and matplotlib are imported inside the functions
# that use them: commands and web workers that compute no statistics start without them.
if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
FIGURES = ("mrs", "occlusion_sites")

# mRS 0 (best) to 6 (dead): green through red, dead in dark grey, as in stroke trials.
MRS_COLOURS = ("#1a9850", "#66bd63", "#a6d96a", "#fee08b", "#fdae61", "#f46d43", "#4d4d4d")
MRI_COLOUR = "#d62728"  # red, as in the paper's Figure 4
DSA_COLOUR = "#1f77b4"  # blue


def _render(figure: Figure, fmt: str, dpi: int = 150) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {tuple(FORMATS)}")
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def grotta(mrs: dict[str, list[int]], labels: dict[str, str] | None = None) -> Figure:
    """Grotta chart of the mRS distributions.

    Parameters
    ----------
    mrs : dict
        Time point -> counts of mRS 0..6 (``study_tables()["outcomes"]["mrs"]``).
    labels : dict, optional
        Time point -> axis label.
    """
    from matplotlib.figure import Figure

    labels = labels or {tp: str(label) for tp, (_path, label) in ex.MRS_TIMEPOINTS.items()}
    timepoints = list(mrs)
    figure = Figure(figsize=(8, 0.9 * len(timepoints) + 1.6))
    axes = figure.add_subplot()
    # Admission on top, as read in a Grotta chart.
    positions = list(range(len(timepoints)))[::-1]
    for position, tp in zip(positions, timepoints, strict=True):
        counts = mrs[tp]
        total = sum(counts)
        left = 0.0
        for grade, n in enumerate(counts):
            share = n / total * 100 if total else 0.0
            axes.barh(
                position,
                share,
                left=left,
                color=MRS_COLOURS[grade],
                edgecolor="white",
                height=0.6,
                label=f"mRS {grade}" if position == positions[0] else None,
            )
            if share >= 4:
                colour = "white" if grade in (0, 5, 6) else "black"
                axes.text(
                    left + share / 2,
                    position,
                    format_percent(n, total, decimals=0),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour,
                )
            left += share
        axes.text(101, position, f"n = {total}", va="center", fontsize=8)
    axes.set_yticks(positions, [labels.get(tp, tp) for tp in timepoints])
    axes.set_xlim(0, 100)
    axes.set_xlabel("%")
    axes.set_title(_("Modified Rankin Scale"))
    axes.legend(ncols=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=8, frameon=False)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure


def occlusion_sites(sites: dict[str, dict[str, int]]) -> Figure:
    """Occlusion sites by 3 T MRI (red) and DSA (blue), grouped bars (Figure 4)."""
    from matplotlib.figure import Figure

    keys = list(ex.OCCLUSION_SITES)
    names = [str(ex.OCCLUSION_SITE_LABELS[k]) for k in keys]
    figure = Figure(figsize=(9, 4.5))
    axes = figure.add_subplot()
    width = 0.38
    xs = range(len(keys))
    for offset, method, colour, label in (
        (-width / 2, "mri", MRI_COLOUR, _("3 T MRI")),
        (width / 2, "dsa", DSA_COLOUR, _("DSA")),
    ):
        values = [sites[method][k] for k in keys]
        bars = axes.bar([x + offset for x in xs], values, width, color=colour, label=label)
        axes.bar_label(bars, fontsize=8, padding=2)
    axes.set_xticks(list(xs), names, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel(_("Patients"))
    axes.set_title(_("Occlusion sites: 3 T MRI vs DSA"))
    axes.legend(frameon=False)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure


def render(name: str, result: dict, fmt: str, *, dpi: int = 150) -> bytes:
    """Figure ``name`` ("mrs" or "occlusion_sites") of a ``study_tables`` result, a PNG
    at ``dpi`` dots per inch."""
    if name == "mrs":
        figure = grotta(result["outcomes"]["mrs"])
    elif name == "occlusion_sites":
        figure = occlusion_sites(result["occlusion_sites"])
    else:
        raise KeyError(name)
    return _render(figure, fmt, dpi)


def shift_chart(groups: dict[str, list[int]], labels: dict[str, str], fmt: str) -> bytes:
    """Grotta chart of one exposure's two groups at 3 months (the shift analysis)."""
    return _render(grotta(groups, labels), fmt)
