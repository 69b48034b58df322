"""Reports: the study's tables live from the registry, with drill-down and downloads.

Thin views: access check (``registry.access``) -> filters form -> ``tables`` /
``figures`` / ``exports`` -> response. Only the user's sites are ever counted.
"""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access
from registry.choices import Language
from registry.i18n import in_file_language
from registry.workflow.services import screening_for

from . import datasets, exports, figures, flow, methods, published, report_docx
from . import exposures as ex
from .forms import form_for
from .freezing import from_freeze
from .tables import (
    P_METHODS,
    add_provenance,
    figure_data,
    shift_figure_data,
    strip_internal,
    study_tables,
)

PAGE_SIZE = 100
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _options(request):
    access.require(access.has(request.user, access.VIEW_REPORTS))
    form = form_for(request)
    filters, p_method, covariates = form.options()
    params = {**filters.as_query(), "p_method": p_method, "covariates": covariates}
    if getattr(request, "freeze", None) is not None:  # the links read the same freeze
        params["freeze"] = request.freeze.name
    return form, filters, p_method, covariates, params


def _refused(form) -> HttpResponseBadRequest | None:
    """A 400 naming the filters' errors when the form was sent invalid: nothing is
    computed then (not even from every patient, which the defaults would give)."""
    if not form.refused():
        return None
    errors = "; ".join(str(e) for field in form.errors.values() for e in field)
    return HttpResponseBadRequest(
        _("The filters are not valid: %(errors)s") % {"errors": errors},
        content_type="text/plain; charset=utf-8",
    )


def _context(form, filters, p_method, covariates, params, **extra):
    return {
        "form": form,
        "filters": filters,
        "p_method": p_method,
        "covariates": covariates,
        "filter_params": params,
        "drill_params": filters.as_query(),
        **extra,
    }


@from_freeze
def report(request):
    """Every table of the study laid out like the paper, and the figures."""
    form, filters, p_method, covariates, params = _options(request)
    result = None
    if not form.refused():
        result = study_tables(
            request.user, filters, p_method=p_method, covariates=covariates, freeze=request.freeze
        )
    context = _context(
        form,
        filters,
        p_method,
        covariates,
        params,
        result=result,
        methods=methods.footnotes(result) if result else {},
        mrs_timepoints=[(tp, label) for tp, (_path, label) in ex.MRS_TIMEPOINTS.items()],
        occlusion_sites=[(s, ex.OCCLUSION_SITE_LABELS[s]) for s in ex.OCCLUSION_SITES],
        recanalization_labels={
            "all": _("All"),
            "anterior": _("Anterior circulation"),
            "posterior": _("Posterior circulation"),
        },
        rate_labels=ex.OUTCOME_RATES,
        sheets=exports.SHEETS,
        figure_names=figures.FIGURES,
        interviews_by_language=_interviews_by_language(request.user, filters),
    )
    return render(request, "analytics/report.html", context)


def _interviews_by_language(user, filters) -> list[tuple[str, int]]:
    """(language, count) of the mRS interviews, each language named in itself."""
    counts = datasets.mrs_interviews_by_language(user, filters)
    return [(name, counts[code]) for code, name in Language.choices if code in counts]


def _describe_cell(cell: str) -> str:
    """A reader's description of a drill-down cell, e.g. "Table I - Women - exposed_n"."""
    parts = cell.split(":")
    names = {
        "baseline": _("Baseline"),
        "table1": _("Table I"),
        "table2": _("Table II"),
        "table3": _("Table III"),
        "table4": _("Table IV"),
        "outcomes": _("Outcomes"),
        "occlusion_sites": _("Occlusion sites"),
    }
    cells = {
        "exposed_n": _("exposed"),
        "exposed_events": _("exposed with the outcome"),
        "unexposed_n": _("unexposed"),
        "unexposed_events": _("unexposed with the outcome"),
        "missing": _("not recorded"),
        "n": _("yes"),
        "denominator": _("recorded"),
        "tp": _("true positive"),
        "fp": _("false positive"),
        "fn": _("false negative"),
        "tn": _("true negative"),
        "analysed": _("analysed"),
        "missing_outcome": _("outcome not recorded"),
    }
    words = [str(names.get(parts[0], parts[0]))]
    for part in parts[1:]:
        if part in cells:
            words.append(str(cells[part]))
        elif part in ex.LABELS:
            words.append(str(ex.label(part)))
        elif part in ex.OCCLUSION_SITE_LABELS:
            words.append(str(ex.OCCLUSION_SITE_LABELS[part]))
        else:
            words.append(part)
    return " · ".join(words)


def patients(request):
    """Drill-down: the patients behind one count, with the report's filters."""
    form, filters, p_method, covariates, params = _options(request)
    if refused := _refused(form):
        return refused
    cell = request.GET.get("cell", "")
    queryset = datasets.patients(request.user, filters)
    try:
        rows = datasets.drilldown(queryset, cell)
    except KeyError as exc:
        raise Http404(_("No such count.")) from exc
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = _context(
        form,
        filters,
        p_method,
        covariates,
        params,
        cell=cell,
        description=_describe_cell(cell),
        page=page,
    )
    return render(request, "analytics/patients.html", context)


@from_freeze
def download(request, table: str, fmt: str):
    """One table (or ``all``) as CSV or xlsx; the whole contract as JSON."""
    form, filters, p_method, covariates, params = _options(request)
    if refused := _refused(form):
        return refused
    if table not in (*exports.SHEETS, "all") or fmt not in ("csv", "xlsx", "json", "docx"):
        raise Http404
    if fmt in ("json", "docx") and table != "all":
        raise Http404
    with in_file_language():
        return _download_response(request, table, fmt, filters, p_method, covariates)


def _download_response(request, table, fmt, filters, p_method, covariates) -> HttpResponse:
    result = strip_internal(
        study_tables(
            request.user, filters, p_method=p_method, covariates=covariates, freeze=request.freeze
        )
    )
    result = add_provenance(result, request.user, filters)
    if fmt == "docx":
        response = HttpResponse(report_docx.build(result), content_type=DOCX)
    elif fmt == "json":
        response = HttpResponse(
            json.dumps(result, indent=2, ensure_ascii=False), content_type="application/json"
        )
    else:
        frames = exports.table_frames(result)
        if table != "all":
            frames = {table: frames[table]}
        if fmt == "csv":
            response = HttpResponse(exports.to_csv(frames), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(
                exports.to_xlsx(frames, exports.about(result)),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
    name = exports.file_name(f"study-{table}", fmt, result["filters"], result["generated_at"])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@from_freeze
def figure(request, name: str, fmt: str):
    """Figure 3 (Grotta chart of the mRS) or Figure 4 (occlusion sites) as SVG or PNG."""
    form, filters, p_method, covariates, params = _options(request)
    if refused := _refused(form):
        return refused
    if name not in figures.FIGURES or fmt not in figures.FORMATS:
        raise Http404
    data = figure_data(request.user, filters)
    response = HttpResponse(figures.render(name, data, fmt), content_type=figures.FORMATS[fmt])
    if request.GET.get("download"):
        now = timezone.localtime().isoformat(timespec="seconds")
        file = exports.file_name(f"study-{name}", fmt, filters.as_contract(), now)
        response["Content-Disposition"] = f'attachment; filename="{file}"'
    return response


@from_freeze
def shift_figure(request, key: str, fmt: str):
    """The Grotta chart of one Table I exposure's two groups at 3 months (SVG or PNG)."""
    form, filters, p_method, covariates, params = _options(request)
    if fmt not in figures.FORMATS:
        raise Http404
    try:
        groups = shift_figure_data(request.user, filters, key)
    except KeyError as exc:
        raise Http404(_("No such exposure.")) from exc
    labels = {"exposed": _("%(exposure)s: yes") % {"exposure": ex.label(key)}}
    labels["unexposed"] = _("%(exposure)s: no") % {"exposure": ex.label(key)}
    response = HttpResponse(
        figures.shift_chart(groups, labels, fmt),
        content_type=figures.FORMATS[fmt],
    )
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="study-shift-{key}.{fmt}"'
    return response


@from_freeze
def published_vs_registry(request):
    """Each number printed in the paper beside the registry's value."""
    form, filters, p_method, covariates, params = _options(request)
    if refused := _refused(form):
        return refused
    result = study_tables(request.user, filters, p_method=p_method, covariates=covariates)
    other_method = next(m for m in P_METHODS if m != p_method)
    other = study_tables(request.user, filters, p_method=other_method, include_regression=False)
    rows = published.compare(result, other)
    context = _context(
        form,
        filters,
        p_method,
        covariates,
        params,
        rows=rows,
        summary=published.summary(rows),
        n_patients=result["n_patients"],
    )
    return render(request, "analytics/published.html", context)


# --- the flow chart (the paper's Figure 1) ---


def _flow_counts(user, filters=None) -> dict:
    if filters is None:
        return flow.flow_counts(access.patients_for(user), screening_for(user))
    return datasets.flow(user, filters)


def flow_chart(request):
    access.require(access.has(request.user, access.VIEW_REPORTS))
    return render(request, "analytics/flow_chart.html", {"counts": _flow_counts(request.user)})


@from_freeze
def flow_chart_figure(request, fmt: str):
    """Figure 1 as SVG or PNG, with the report's filters; ``?download=1`` as a file."""
    form, filters, p_method, covariates, params = _options(request)
    if refused := _refused(form):
        return refused
    counts = _flow_counts(request.user, filters)
    if fmt == "svg":
        body, content_type = flow.flow_svg(counts), "image/svg+xml; charset=utf-8"
    else:
        body, content_type = flow.flow_png(counts), "image/png"
    response = HttpResponse(body, content_type=content_type)
    if request.GET.get("download"):
        now = timezone.localtime().isoformat(timespec="seconds")
        name = exports.file_name("study-flow-chart", fmt, filters.as_contract(), now)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def flow_chart_svg(request):
    return flow_chart_figure(request, "svg")


def flow_chart_png(request):
    return flow_chart_figure(request, "png")
