"""The study flow chart (the paper's Figure 1): counts and an SVG drawing.

``flow_from`` builds what the study tables' JSON carries under the key ``flow``;
``flow_counts`` counts it with two queries (the ``/flow/`` page), the study tables
from their own read of every patient with the same ``enrolment_annotations``.
``flow_svg`` draws the same counts, so the figure and the JSON always agree.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from django.db.models import Case, CharField, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils.translation import gettext as _

from registry.models import Patient, PatientExclusionReason, ScreeningEntry, ScreeningExclusion
from registry.workflow.services import screening_counts


def flow_counts(
    patients: QuerySet[Patient], screening: QuerySet[ScreeningEntry]
) -> dict[str, object]:
    """Counts of the flow chart, two queries.

    ``screened`` counts the screening log; ``enrolled`` counts the patient
    records (records imported without a screening entry included, and
    reported as ``enrolled_without_screening``). ``analysed_3m``: enrolled and
    analysed at 3 months (``enrolment_annotations``' ``e_analysed``);
    ``awaiting_3m`` = enrolled, not excluded, mRS not yet recorded.
    """
    return flow_from(screening_counts(screening), enrolment_counts(patients))


ENROLMENT_COLUMNS = ("e_exclusion", "e_screened", "e_analysed")


def enrolment_annotations() -> dict[str, object]:
    """What the flow chart counts of each enrolled patient, as database expressions.

    ``e_exclusion``: the reason of an exclusion in force (NULL if none).
    ``e_screened``: 1 when a screening entry led to the patient, else 0.
    ``e_analysed``: 1 when the patient is *analysed at 3 months*, else 0: no exclusion
    in force and the 3-month mRS recorded (the stored ``Patient.mrs_3m_missing``, whose
    one definition is ``registry.models.mrs_3m_missing``). The one definition of
    "analysed": the flow chart's ``analysed_3m`` and ``awaiting_3m`` come from it.

    Counted by ``enrolment_counts`` (the ``/flow/`` page) and, from the study
    tables' one read of every patient, by ``analytics.datasets.fetch_analysis``.
    The keys are ``ENROLMENT_COLUMNS``, in that order (``e_analysed`` reads
    ``e_exclusion``: the annotations are added in order).
    """
    return {
        "e_exclusion": Case(
            When(exclusion__active=True, then=F("exclusion__reason")),
            default=Value(None),
            output_field=CharField(),
        ),
        "e_screened": Case(
            When(screening__isnull=False, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        "e_analysed": Case(
            When(Q(e_exclusion__isnull=True, mrs_3m_missing=False), then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
    }


def enrolment_counts(patients: QuerySet[Patient]) -> dict[str, int]:
    """The enrolled patients' part of the flow chart, one query.

    ``patients`` includes those excluded after enrolment. Keys: ``enrolled``,
    ``from_screening`` (with a screening entry), ``excluded`` (an exclusion in
    force), ``analysed`` (analysed at 3 months: ``e_analysed``) and ``after_<reason>``
    for every ``PatientExclusionReason``.
    """
    return patients.annotate(**enrolment_annotations()).aggregate(
        enrolled=Count("pk"),
        from_screening=Count("pk", filter=Q(e_screened=1)),
        excluded=Count("pk", filter=Q(e_exclusion__isnull=False)),
        analysed=Count("pk", filter=Q(e_analysed=1)),
        **{
            f"after_{code}": Count("pk", filter=Q(e_exclusion=code))
            for code in PatientExclusionReason.values
        },
    )


def flow_from(s: dict[str, int], p: dict[str, int]) -> dict[str, object]:
    """The flow chart's counts from ``screening_counts`` and ``enrolment_counts``."""
    return {
        "screened": s["screened"],
        "excluded_at_screening": {
            "total": s["not_eligible"],
            **{code: s[f"reason_{code}"] for code in ScreeningExclusion.values},
        },
        "consent_refused": s["consent_refused"],
        "awaiting_enrolment": s["awaiting_enrolment"],
        "enrolled": p["enrolled"],
        "enrolled_without_screening": p["enrolled"] - p["from_screening"],
        "excluded_after_enrolment": {
            "total": p["excluded"],
            **{code: p[f"after_{code}"] for code in PatientExclusionReason.values},
        },
        "lost_to_followup": p[f"after_{PatientExclusionReason.LOST_TO_FOLLOWUP}"],
        "analysed_3m": p["analysed"],
        "awaiting_3m": p["enrolled"] - p["excluded"] - p["analysed"],
    }


# --- drawing ----------------------------------------------------------------------

WIDTH = 720
BOX_W = 300
SIDE_W = 330
LINE_H = 18
PAD = 10
MAIN_X = 20
SIDE_X = MAIN_X + BOX_W + 50


def _box(x: int, y: int, width: int, lines: list[str], bold_first: bool = True) -> str:
    height = PAD * 2 + LINE_H * len(lines)
    parts = [
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="4" '
        'fill="#ffffff" stroke="#212529" stroke-width="1.5"/>'
    ]
    for i, text in enumerate(lines):
        weight = ' font-weight="bold"' if bold_first and i == 0 else ""
        baseline = y + PAD + LINE_H * (i + 1) - 5
        parts.append(f'<text x="{x + PAD}" y="{baseline}"{weight}>{escape(text)}</text>')
    return "\n".join(parts)


def _height(lines: list[str]) -> int:
    return PAD * 2 + LINE_H * len(lines)


def _arrow(x1: int, y1: int, x2: int, y2: int) -> str:
    return (
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#212529" '
        'stroke-width="1.5" marker-end="url(#arrow)"/>'
    )


def _lines(counts: dict[str, object]) -> tuple[list[list[str]], list[list[str]]]:
    """The text of the main boxes (screened, enrolled, analysed) and of the side boxes."""
    screen_ex = counts["excluded_at_screening"]
    after_ex = counts["excluded_after_enrolment"]
    main = [
        [
            _("Screened (n = %(n)d)") % {"n": counts["screened"]},
            _("eligible, not yet enrolled: %(n)d") % {"n": counts["awaiting_enrolment"]},
        ],
        [
            _("Enrolled (n = %(n)d)") % {"n": counts["enrolled"]},
            _("without a screening entry: %(n)d") % {"n": counts["enrolled_without_screening"]},
        ],
        [
            _("Analysed at 3 months (n = %(n)d)") % {"n": counts["analysed_3m"]},
            _("awaiting the 3-month follow-up: %(n)d") % {"n": counts["awaiting_3m"]},
        ],
    ]
    side = [
        [
            _("Excluded (n = %(n)d)") % {"n": screen_ex["total"] + counts["consent_refused"]},
            *(
                f"{label}: {screen_ex[code]}"
                for code, label in ScreeningExclusion.choices
                if code in screen_ex
            ),
            _("Consent refused: %(n)d") % {"n": counts["consent_refused"]},
        ],
        [
            _("Excluded after enrolment (n = %(n)d)") % {"n": after_ex["total"]},
            *(f"{label}: {after_ex[code]}" for code, label in PatientExclusionReason.choices),
        ],
    ]
    return main, side


def layout(counts: dict[str, object]) -> tuple[list, list, int]:
    """Where each box and arrow of the chart goes, in pixels from the top left.

    Returns
    -------
    boxes, arrows, height
        ``(x, y, width, lines)`` per box, ``(x1, y1, x2, y2)`` per arrow and the
        drawing's height: one geometry for the SVG and the PNG.
    """
    main, side = _lines(counts)
    boxes, arrows, main_y = [], [], []
    y = 20
    for i, lines in enumerate(main):
        main_y.append(y)
        boxes.append((MAIN_X, y, BOX_W, lines))
        gap = max(_height(side[i]) + 30, 60) if i < len(side) else 0
        y += _height(lines) + gap
    centre = MAIN_X + BOX_W // 2
    for i in range(len(main) - 1):
        top = main_y[i] + _height(main[i])
        arrows.append((centre, top, centre, main_y[i + 1]))
        side_y = top + 15
        mid = side_y + _height(side[i]) // 2
        boxes.append((SIDE_X, side_y, SIDE_W, side[i]))
        arrows.append((centre, mid, SIDE_X, mid))
    return boxes, arrows, y + 10


def flow_svg(counts: dict[str, object]) -> str:
    """The flow chart as a self-contained SVG document (no script, no external file)."""
    boxes, arrows, height = layout(counts)
    parts = [_box(*box) for box in boxes] + [_arrow(*arrow) for arrow in arrows]
    title = escape(_("Flow chart of patient selection"))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{title}" '
        'font-family="sans-serif" font-size="13" fill="#212529">\n'
        f"<title>{title}</title>\n"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
        "</marker></defs>\n" + "\n".join(parts) + "\n</svg>\n"
    )


def flow_png(counts: dict[str, object], *, dpi: int = 150) -> bytes:
    """The same drawing as ``flow_svg`` (``layout``) as a PNG, with matplotlib.

    Parameters
    ----------
    counts : dict
        The flow chart's counts (``flow_from``).
    dpi : int
        Resolution; the drawing is ``WIDTH`` pixels wide at 100 dpi.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes, arrows, height = layout(counts)
    figure = Figure(figsize=(WIDTH / 100, height / 100))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, WIDTH)
    axes.set_ylim(height, 0)  # y downwards, as in the SVG
    axes.axis("off")
    for x, y, width, lines in boxes:
        axes.add_patch(
            FancyBboxPatch(
                (x, y),
                width,
                _height(lines),
                boxstyle="round,pad=0,rounding_size=4",
                facecolor="white",
                edgecolor="#212529",
                linewidth=1.1,
            )
        )
        for i, text in enumerate(lines):
            baseline = y + PAD + LINE_H * (i + 1) - 5
            weight = "bold" if i == 0 else "normal"
            axes.text(x + PAD, baseline, text, fontsize=9.4, weight=weight, color="#212529")
    for x1, y1, x2, y2 in arrows:
        axes.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                arrowstyle="-|>",
                mutation_scale=10,
                color="#212529",
                linewidth=1.1,
                shrinkA=0,
                shrinkB=0,
            )
        )
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
