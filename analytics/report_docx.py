"""The study tables as a manuscript-ready Word document (python-docx).

Built from a ``study_tables`` result (the JSON contract, with
``tables.add_provenance``): a title page, a methods paragraph generated from the
methods the numbers were computed with (``analytics.methods``), every table as a real
Word table in journal style (horizontal rules only, footnotes under it) and Figures
1, 3 and 4 as 300-dpi PNG with captions.

A table is a ``DocTable``: its title, where its rows are in the result, its columns
(heading and the display text of a row, with ``analytics.formatting``) and its
footnote. A table of the contract added later is one more ``DocTable`` in ``TABLES``;
one whose key is absent from the result is left out.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import exposures as ex
from . import figures, flow, methods
from .exports import REGISTRY_NAME
from .formatting import (
    EN_DASH,
    NOT_ESTIMABLE,
    format_decimal,
    format_estimate,
    format_estimate_ci,
    format_n_percent,
    format_p,
)

FIGURE_DPI = 300


@dataclass(frozen=True)
class Column:
    """A column of a Word table: its heading and the text of a row's cell."""

    heading: object  # a (lazy) translatable string
    text: Callable[[dict], str]


@dataclass(frozen=True)
class DocTable:
    """A table of the report.

    Parameters
    ----------
    key : str
        Identifies the table (and its caption's anchor).
    title : str
        The caption above the table.
    rows : callable
        result -> list of row dicts, or None when the result has no such table.
    columns : tuple of Column
    footnote : callable
        result -> the text under the table (methods, notes).
    """

    key: str
    title: object
    rows: Callable[[dict], list[dict] | None]
    columns: tuple[Column, ...]
    footnote: Callable[[dict], str]


# -- the display text of a cell ---------------------------------------------------------------


def _count(key: str) -> Callable[[dict], str]:
    return lambda row: str(row[key])


def _of(k: str, n: str) -> Callable[[dict], str]:
    return lambda row: f"{row[k]} / {row[n]}"


def _number_needed(row: dict) -> str:
    if row.get("nnh"):
        return f"NNH {row['nnh']}"
    if row.get("nnt"):
        return f"NNT {row['nnt']}"
    return NOT_ESTIMABLE


def _percent_ci(estimate, ci) -> str:
    """A proportion in [0, 1] and its CI as percentages: "98.5 (92.0–100.0)"."""
    if estimate is None:
        return NOT_ESTIMABLE
    text = format_decimal(estimate * 100, 1)
    if ci is None:
        return text
    return f"{text} ({format_decimal(ci[0] * 100, 1)}{EN_DASH}{format_decimal(ci[1] * 100, 1)})"


def _rate_ci(row: dict) -> str:
    """An ``outcomes.rates`` row: percent and CI, both already in percent."""
    if row.get("percent") is None:
        return NOT_ESTIMABLE
    text = format_decimal(row["percent"], 1)
    ci = row.get("ci")
    return (
        text
        if ci is None
        else f"{text} ({format_decimal(ci[0], 1)}{EN_DASH}{format_decimal(ci[1], 1)})"
    )


def _median_iqr(row: dict) -> str:
    quartiles = f"{format_estimate(row['q1'])}{EN_DASH}{format_estimate(row['q3'])}"
    return f"{format_estimate(row['median'])} ({quartiles})"


def _notes(rows: list[dict], label: str = "label") -> list[str]:
    return [f"{row[label]}: {row['note']}" for row in rows if row.get("note")]


# -- where the rows are -----------------------------------------------------------------------


def _continuous_rows(result: dict) -> list[dict]:
    return [{"key": k, **v} for k, v in result["baseline"]["continuous"].items()]


def _diagnostic_rows(table: dict) -> list[dict]:
    rows = [
        {"measure": str(name), "value": str(table[key]), "ci": ""}
        for key, name in (
            ("tp", _("True positive")),
            ("fp", _("False positive")),
            ("fn", _("False negative")),
            ("tn", _("True negative")),
        )
    ]
    for key, name in (
        ("sensitivity", _("Sensitivity, %")),
        ("specificity", _("Specificity, %")),
        ("ppv", _("Positive predictive value, %")),
        ("npv", _("Negative predictive value, %")),
    ):
        item = table[key]
        rows.append(
            {
                "measure": str(name),
                "value": _percent_ci(item["estimate"], item["ci"]),
                "ci": f"{item['k']} / {item['n']}",
            }
        )
    for key, name in (("lr_positive", _("LR+")), ("lr_negative", _("LR−"))):
        item = table[key]
        rows.append(
            {
                "measure": str(name),
                "value": format_estimate_ci(item["estimate"], item["ci"]),
                "ci": "",
            }
        )
    rows.append(
        {"measure": str(_("p (Fisher's exact test)")), "value": format_p(table["p"]), "ci": ""}
    )
    return rows


def _outcome_rows(result: dict) -> list[dict]:
    out = result["outcomes"]
    names = {
        "all": _("Recanalization (mTICI 2b–3), all"),
        "anterior": _("Recanalization (mTICI 2b–3), anterior circulation"),
        "posterior": _("Recanalization (mTICI 2b–3), posterior circulation"),
    }
    rows = [{"label": str(names[pop]), **share} for pop, share in out["recanalization"].items()]
    rows.append({"label": str(_("Death by 3 months (mRS 6)")), **out["death_3m"]})
    for tp, (_path, label) in ex.MRS_TIMEPOINTS.items():
        share = out["non_poor"][tp]
        rows.append(
            {"label": str(_("Non-poor outcome (mRS 0–3), %(when)s") % {"when": label}), **share}
        )
    return rows


def _mrs_rows(result: dict) -> list[dict]:
    out = result["outcomes"]
    return [
        {"label": str(label), "counts": out["mrs"][tp], "missing": out["mrs_missing"][tp]}
        for tp, (_path, label) in ex.MRS_TIMEPOINTS.items()
    ]


def _shift_rows(result: dict) -> list[dict] | None:
    if "shift" not in result:
        return None
    return [
        {**row, "label": row.get("label") or str(ex.label(row["key"]))}
        for row in result["shift"]["rows"]
    ]


def _rates_rows(result: dict) -> list[dict] | None:
    return result["outcomes"].get("rates")


def _regression_footnote(result: dict) -> str:
    reg = result["regression"]
    events = _("%(events)d events, %(epc)s events per covariate.") % {
        "events": reg["events"],
        "epc": format_estimate(reg["events_per_covariate"]),
    }
    return f"{methods.regression(reg)} {events}"


def _risk_footnote(table: str) -> Callable[[dict], str]:
    def footnote(result: dict) -> str:
        return " ".join([methods.risks(result["p_method"]), *_notes(result[table]["rows"])])

    return footnote


RISK_COLUMNS = (
    Column(gettext_lazy("n"), _count("n")),
    Column(gettext_lazy("Exposed: events / n"), _of("exposed_events", "exposed_n")),
    Column(gettext_lazy("Unexposed: events / n"), _of("unexposed_events", "unexposed_n")),
    Column(gettext_lazy("Events n (%)"), lambda r: format_n_percent(r["exposed_events"], r["n"])),
    Column(gettext_lazy("RR (95 % CI)"), lambda r: format_estimate_ci(r["rr"], r["rr_ci"])),
    Column(
        gettext_lazy("RD (95 % CI)"), lambda r: format_estimate_ci(r["rd"], r["rd_ci"], digits=2)
    ),
    Column(gettext_lazy("p"), lambda r: format_p(r["p"])),
    Column(gettext_lazy("NNH / NNT"), _number_needed),
)

DIAGNOSTIC_COLUMNS = (
    Column(gettext_lazy("Measure"), lambda r: r["measure"]),
    Column(gettext_lazy("Value (95 % CI)"), lambda r: r["value"]),
    Column(gettext_lazy("k / n"), lambda r: r["ci"]),
)

TABLES = (
    DocTable(
        "baseline_continuous",
        gettext_lazy("Baseline characteristics: continuous values"),
        _continuous_rows,
        (
            Column(gettext_lazy("Value"), lambda r: r["label"]),
            Column(gettext_lazy("n"), _count("n")),
            Column(
                gettext_lazy("Mean ± SD"),
                lambda r: f"{format_estimate(r['mean'])} ± {format_estimate(r['sd'])}",
            ),
            Column(
                gettext_lazy("Median (IQR)"),
                _median_iqr,
            ),
            Column(gettext_lazy("Not recorded"), _count("missing")),
        ),
        lambda result: methods.baseline(result["baseline"]["age"]["percentile_method"]),
    ),
    DocTable(
        "baseline",
        gettext_lazy("Baseline characteristics: n (%)"),
        lambda result: result["baseline"]["rows"],
        (
            Column(gettext_lazy("Characteristic"), lambda r: r["label"]),
            Column(gettext_lazy("n (%)"), lambda r: format_n_percent(r["n"], r["denominator"])),
            Column(gettext_lazy("Recorded"), _count("denominator")),
            Column(gettext_lazy("Not recorded"), _count("missing")),
        ),
        lambda result: methods.baseline(result["baseline"]["age"]["percentile_method"]),
    ),
    DocTable(
        "table1",
        gettext_lazy(
            "Table I. Association of pre- and post-procedural characteristics with poor "
            "outcome (mRS 4–6) at 3 months"
        ),
        lambda result: result["table1"]["rows"],
        (
            Column(
                gettext_lazy("Variable"),
                lambda r: (
                    r["label"] + ("" if r["population"] == "all" else f" ({r['population']})")
                ),
            ),
            *RISK_COLUMNS,
        ),
        _risk_footnote("table1"),
    ),
    DocTable(
        "shift",
        gettext_lazy("Shift analysis of the 3-month mRS (proportional-odds logistic model)"),
        _shift_rows,
        (
            Column(gettext_lazy("Variable"), lambda r: r["label"]),
            Column(gettext_lazy("n"), _count("n")),
            Column(
                gettext_lazy("Common OR (95 % CI)"),
                lambda r: format_estimate_ci(r["common_or"], r["ci"], digits=2),
            ),
            Column(gettext_lazy("p"), lambda r: format_p(r["p"])),
        ),
        lambda result: " ".join(
            [
                _(
                    "Common odds ratio of a worse mRS at 3 months among the exposed; "
                    "95 % CI and p by the Wald method."
                ),
                *_notes(_shift_rows(result) or []),
            ]
        ),
    ),
    DocTable(
        "table2",
        gettext_lazy("Table II. Occlusion diagnosed by 3 Tesla MRI against angiography (DSA)"),
        lambda result: _diagnostic_rows(result["table2"]),
        DIAGNOSTIC_COLUMNS,
        lambda result: methods.diagnostic(),
    ),
    DocTable(
        "table3",
        gettext_lazy("Table III. Stent design and DAPT against new infarcts and sICH"),
        lambda result: [
            {**r, "label": f"{r['label']} – {r['outcome_label']}"} for r in result["table3"]["rows"]
        ],
        (Column(gettext_lazy("Exposure – outcome"), lambda r: r["label"]), *RISK_COLUMNS),
        _risk_footnote("table3"),
    ),
    DocTable(
        "table4",
        gettext_lazy(
            "Table IV. Clot on susceptibility-weighted imaging (SWI) and the decision to perform MT"
        ),
        lambda result: _diagnostic_rows(result["table4"]),
        DIAGNOSTIC_COLUMNS,
        lambda result: methods.diagnostic(),
    ),
    DocTable(
        "outcomes",
        gettext_lazy("Outcomes"),
        _outcome_rows,
        (
            Column(gettext_lazy("Outcome"), lambda r: r["label"]),
            Column(gettext_lazy("n (%)"), lambda r: format_n_percent(r["n"], r["denominator"])),
            Column(gettext_lazy("Recorded"), _count("denominator")),
        ),
        lambda result: methods.outcomes(),
    ),
    DocTable(
        "rates",
        gettext_lazy("Outcome rates with 95 % confidence intervals"),
        _rates_rows,
        (
            Column(gettext_lazy("Outcome"), lambda r: r["key"]),
            Column(gettext_lazy("n / N"), _of("numerator", "denominator")),
            Column(gettext_lazy("% (95 % CI)"), _rate_ci),
        ),
        lambda result: _("95 % CI by the exact (Clopper–Pearson) method."),
    ),
    DocTable(
        "mrs",
        gettext_lazy("Modified Rankin Scale distribution"),
        _mrs_rows,
        (
            Column(gettext_lazy("Time point"), lambda r: r["label"]),
            *(Column(f"mRS {g}", lambda r, g=g: str(r["counts"][g])) for g in ex.MRS_GRADES),
            Column(gettext_lazy("Not recorded"), _count("missing")),
        ),
        lambda result: methods.outcomes(),
    ),
    DocTable(
        "regression",
        gettext_lazy("Multivariable logistic regression of poor outcome at 3 months"),
        lambda result: result["regression"]["terms"] if "regression" in result else None,
        (
            Column(gettext_lazy("Covariate"), lambda r: r["label"]),
            Column(
                gettext_lazy("Adjusted OR (95 % CI)"),
                lambda r: format_estimate_ci(r["or"], r["ci"], digits=2),
            ),
            Column(gettext_lazy("p"), lambda r: format_p(r["p"])),
        ),
        _regression_footnote,
    ),
)


def table_cells(table: DocTable, result: dict) -> list[list[str]] | None:
    """The heading row and each row's cells of ``table`` as displayed; None when the
    result has no such table."""
    rows = table.rows(result)
    if rows is None:
        return None
    header = [str(column.heading) for column in table.columns]
    return [header, *([column.text(row) for column in table.columns] for row in rows)]


# -- the document -----------------------------------------------------------------------------


def methods_paragraph(result: dict) -> str:
    """The methods actually used, as one paragraph for the manuscript."""
    parts = [
        methods.baseline(result["baseline"]["age"]["percentile_method"]),
        _(
            "Each exposure was compared with the outcome by the risk ratio and the risk "
            "difference over the patients with both recorded."
        ),
        methods.risks(result["p_method"]),
        methods.diagnostic(),
    ]
    if "shift" in result:
        parts.append(
            _(
                "The 3-month mRS was analysed as an ordered outcome with a proportional-odds "
                "logistic model of each exposure (common odds ratio, Wald 95 % CI and p)."
            )
        )
    if "regression" in result:
        reg = result["regression"]
        covariates = ", ".join(str(ex.label(key)) for key in reg["covariates"])
        parts.append(
            _("Covariates of the regression: %(covariates)s.") % {"covariates": covariates}
        )
        parts.append(methods.regression(reg))
    parts.append(_missing_data(result))
    parts.append(methods.software())
    return " ".join(parts)


def _missing_data(result: dict) -> str:
    text = _(
        "Missing values were not imputed: each analysis used the patients with its "
        "variables recorded (n is given per row), and the 3-month analyses the patients "
        "with the 3-month mRS recorded; patients lost to follow-up stayed in every "
        "analysis that does not need the 3-month mRS."
    )
    if result.get("followup_window") == "strict":
        text += " " + _(
            "A 3-month mRS assessed outside the follow-up window counted as missing "
            "(sensitivity analysis)."
        )
    return text


def _filters_text(result: dict) -> str:
    names = {"site": _("site"), "from": _("door date from"), "to": _("door date to")}
    names["circulation"] = _("circulation")
    chosen = [f"{names.get(k, k)} {v}" for k, v in result["filters"].items() if v]
    return ", ".join(chosen) if chosen else _("none (every patient)")


def _title_page(document, result: dict) -> None:
    document.add_heading(REGISTRY_NAME, level=0)
    frozen = result.get("freeze")
    if frozen:
        document.add_paragraph(_("Study tables, computed from a data freeze of the registry"))
    else:
        document.add_paragraph(_("Study tables, regenerated from the registry"))
    lines = [(_("Data freeze"), _freeze_text(frozen))] if frozen else []
    for label, value in (
        *lines,
        (_("Filters"), _filters_text(result)),
        (_("Patients"), str(result["n_patients"])),
        (_("Data as of"), result.get("data_as_of") or NOT_ESTIMABLE),
        (_("Generated"), result["generated_at"]),
    ):
        paragraph = document.add_paragraph()
        paragraph.add_run(f"{label}: ").bold = True
        paragraph.add_run(value)
    document.add_page_break()


def _freeze_text(frozen: dict) -> str:
    """The freeze a report was computed from: name, time and hash."""
    return _("%(name)s, frozen at %(when)s, SHA-256 %(sha)s") % {
        "name": frozen["name"],
        "when": frozen["created_at"],
        "sha": frozen["sha256"],
    }


def _borders(element, **edges) -> None:
    """Set the borders of a table (``w:tblBorders``) or a cell (``w:tcBorders``)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tag = "w:tblBorders" if element.tag == qn("w:tblPr") else "w:tcBorders"
    borders = element.find(qn(tag))
    if borders is None:
        borders = OxmlElement(tag)
        element.append(borders)
    for edge, value in edges.items():
        node = OxmlElement(f"w:{edge}")
        node.set(qn("w:val"), value)
        if value != "nil":
            node.set(qn("w:sz"), "8")
            node.set(qn("w:color"), "000000")
        borders.append(node)


def _column_widths(document, columns: int) -> list[int]:
    """The first column (the labels) a quarter of the text width, the others equal."""
    section = document.sections[-1]
    text_width = section.page_width - section.left_margin - section.right_margin
    first = text_width // 4 if columns > 2 else text_width // 2
    rest = (text_width - first) // max(columns - 1, 1)
    return [first] + [rest] * (columns - 1)


def _landscape(document) -> None:
    """A new section in landscape: the wide tables (Table I has nine columns) fit."""
    from docx.enum.section import WD_ORIENT, WD_SECTION

    section = document.add_section(WD_SECTION.NEW_PAGE)
    width, height = section.page_width, section.page_height
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = max(width, height), min(width, height)


def _add_table(document, table: DocTable, cells: list[list[str]], footnote: str) -> None:
    from docx.shared import Pt

    document.add_paragraph(str(table.title), style="Caption")
    word = document.add_table(rows=len(cells), cols=len(cells[0]))
    word.autofit = False
    widths = _column_widths(document, len(cells[0]))
    # Journal style: a rule above and below the table and under the heading, no other.
    properties = word._tbl.tblPr
    nil = {edge: "nil" for edge in ("left", "right", "insideH", "insideV")}
    _borders(properties, top="single", bottom="single", **nil)
    for i, row in enumerate(cells):
        for j, text in enumerate(row):
            cell = word.cell(i, j)
            cell.text = text
            cell.width = widths[j]
            cell.paragraphs[0].paragraph_format.space_after = Pt(1)
            for run in cell.paragraphs[0].runs:
                run.font.size = Pt(8)
                run.bold = i == 0
            if i == 0:
                _borders(cell._tc.get_or_add_tcPr(), bottom="single")
    note = document.add_paragraph(footnote)
    for run in note.runs:
        run.font.size = Pt(7.5)


def _add_figure(document, png: bytes, caption: str) -> None:
    from docx.shared import Inches

    document.add_picture(io.BytesIO(png), width=Inches(6.3))
    document.add_paragraph(caption, style="Caption")


def figure_images(result: dict) -> list[tuple[bytes, str]]:
    """Figures 1, 3 and 4 as 300-dpi PNG, with their captions."""
    return [
        (
            flow.flow_png(result["flow"], dpi=FIGURE_DPI),
            _("Figure 1. Flow chart of patient selection."),
        ),
        (
            figures.render("mrs", result, "png", dpi=FIGURE_DPI),
            _(
                "Figure 3. Modified Rankin Scale at admission, discharge and 3 months "
                "(percentages of the patients with the mRS recorded)."
            ),
        ),
        (
            figures.render("occlusion_sites", result, "png", dpi=FIGURE_DPI),
            _("Figure 4. Occlusion sites on 3 Tesla MRI (red) and angiography (blue)."),
        ),
    ]


def build(result: dict) -> bytes:
    """The Word document (``.docx`` bytes) of a ``study_tables`` result.

    Parameters
    ----------
    result : dict
        ``strip_internal(study_tables(...))`` with ``tables.add_provenance``.
    """
    from docx import Document

    document = Document()
    _title_page(document, result)
    document.add_heading(_("Methods"), level=1)
    document.add_paragraph(methods_paragraph(result))
    _landscape(document)
    document.add_heading(_("Results"), level=1)
    for table in TABLES:
        cells = table_cells(table, result)
        if cells is not None:
            _add_table(document, table, cells, table.footnote(result))
    document.add_heading(_("Figures"), level=1)
    for png, caption in figure_images(result):
        _add_figure(document, png, caption)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
