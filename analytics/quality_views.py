"""The /quality/ page: quality of care per site and quarter, its drill-down, downloads
and figures. Thin views: access check (``registry.access``) -> options -> ``quality``
/ ``quality_figures`` / ``exports`` -> response. Only the user's sites are counted; a
site the user may not read answers 404."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from registry import access

from . import datasets, exports, quality, quality_figures
from .freezing import from_freeze

PAGE_SIZE = 100
QUARTER_RE = re.compile(r"^(\d{4})-Q([1-4])$")
LABELS = {
    "door_to_imaging": _("Door to imaging"),
    "door_to_needle": _("Door to needle"),
    "door_to_groin": _("Door to groin puncture"),
    "imaging_to_groin": _("Imaging to groin puncture"),
    "groin_to_reperfusion": _("Groin puncture to reperfusion"),
    "onset_to_reperfusion": _("Onset to reperfusion"),
    "reperfusion_mtici_2b_3": _("Reperfusion (final mTICI 2b-3)"),
    "first_pass_reperfusion": _("First-pass reperfusion"),
    "sich": _("Symptomatic ICH"),
    "mrs_0_2_3m": _("mRS 0-2 at 3 months"),
    "mortality_3m": _("Mortality at 3 months"),
    "followup_3m_complete": _("3-month follow-up complete"),
    "minimum_dataset_complete": _("Minimum dataset complete"),
}
AWARDS = {"gold": _("gold"), "platinum": _("platinum"), "diamond": _("diamond")}


def _quarter_bounds(label: str) -> tuple[dt.date, dt.date]:
    year, number = (int(part) for part in QUARTER_RE.match(label).groups())
    first = dt.date(year, 3 * number - 2, 1)
    after = dt.date(year + (number == 4), 1 if number == 4 else 3 * number + 1, 1)
    return first, after - dt.timedelta(days=1)


def _options(request) -> tuple[datasets.Filters, str | None]:
    """The site and quarter asked for (404 for a site the user may not read)."""
    access.require(access.has(request.user, access.VIEW_QUALITY))
    site = request.GET.get("site") or None
    if site is not None and site not in quality.readable_sites(request.user, None):
        raise Http404
    quarter = request.GET.get("quarter") or None
    if quarter is not None and not QUARTER_RE.match(quarter):
        raise Http404
    return datasets.Filters(site=site), quarter


def _display(rows: list[dict]) -> list[dict]:
    """The rows by site, each with its indicators' labels."""
    by_site: dict = {}
    for row in rows:
        shown = {**row, "label": LABELS[row["code"]], "award_label": AWARDS.get(row.get("award"))}
        if row["kind"] == "time":
            shown["within_list"] = sorted(row["within"].items(), key=lambda item: int(item[0]))
        by_site.setdefault(row["site"], []).append(shown)
    return [{"site": site, "rows": site_rows} for site, site_rows in by_site.items()]


@from_freeze
def page(request):
    """The indicators per site for the chosen quarter (or every quarter), run charts and
    funnel plots."""
    filters, quarter = _options(request)
    data = quality.page(request.user, filters, quarter=quarter)
    context = {
        "filters": filters,
        "quarter": quarter,
        "quarters": data["quarters"],
        "sites": quality.readable_sites(request.user, None),
        "tables": _display(data["rows"]),
        "run_charts": quality_figures.RUN_CHARTS,
        "funnels": quality_figures.FUNNELS,
        "query": request.GET.urlencode(),
        "freeze": request.freeze,
    }
    return render(request, "analytics/quality.html", context)


def patients(request):
    """Drill-down: the patients behind one count of the page."""
    filters, quarter = _options(request)
    code, part = request.GET.get("code", ""), request.GET.get("part", "")
    threshold = request.GET.get("threshold")
    cols = quality.columns(quality.read(request.user, filters))
    try:
        if threshold is not None and not threshold.isdigit():
            raise KeyError(threshold)
        pks = quality.patients_of(
            cols, code, part, site=filters.site, period=quarter, threshold=threshold
        )
    except KeyError as exc:
        raise Http404(_("No such count.")) from exc
    rows = datasets.patient_rows(datasets.patients(request.user, filters).filter(pk__in=pks))
    description = f"{LABELS.get(code, code)} · {part}" + (f" ≤ {threshold}" if threshold else "")
    context = {
        "filters": filters,
        "quarter": quarter,
        "description": description,
        "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
    }
    return render(request, "analytics/quality_patients.html", context)


@from_freeze
def download(request, fmt: str):
    """The page's numbers as CSV, xlsx or the contract's JSON."""
    filters, quarter = _options(request)
    if fmt not in ("csv", "xlsx", "json"):
        raise Http404
    if quarter:
        first, last = _quarter_bounds(quarter)
        filters = dataclasses.replace(filters, date_from=first, date_to=last)
    result = quality.quality_indicators(request.user, filters, period="all", freeze=request.freeze)
    if fmt == "json":
        body, kind = json.dumps(result, indent=2, ensure_ascii=False), "application/json"
    elif fmt == "csv":
        body, kind = exports.to_csv(exports.quality_frames(result)), "text/csv; charset=utf-8"
    else:
        body = exports.to_xlsx(exports.quality_frames(result))
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = HttpResponse(body, content_type=kind)
    response["Content-Disposition"] = f'attachment; filename="quality-indicators.{fmt}"'
    return response


@from_freeze
def figure(request, name: str, fmt: str):
    """A run chart or a funnel plot as SVG or PNG."""
    filters, quarter = _options(request)
    if name not in quality_figures.FIGURES or fmt not in quality_figures.FORMATS:
        raise Http404
    data = quality.page(request.user, filters, quarter=quarter)
    response = HttpResponse(
        quality_figures.render(name, data, fmt), content_type=quality_figures.FORMATS[fmt]
    )
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="quality-{name}.{fmt}"'
    return response
