"""Import, export and data-dictionary pages. Thin: access -> form -> service.

The import is two-step: the upload is validated as a dry run within a time budget
and previewed (problems, warnings, and every value the file changes in stored
patients); only the confirmation writes. Until then the file waits in a private
folder (``uploads``), found again through a random token remembered in the session.
The confirmation writes exactly what was previewed: the same bytes (their SHA-256,
taken at upload) and the same plan (the preview's ``plan_digest``); anything else is
refused. A refused file's preview is kept: reloading it does not check the file again.
"""

from __future__ import annotations

import csv
import io

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import access
from registry.i18n import in_file_language

from . import dictionary, redcap, uploads
from . import export_log as log
from .exporter import ExportRefused
from .forms import ExportForm, ImportUploadForm, max_upload_bytes
from .importer import registry_import


@require_GET
def index(request):
    return render(
        request,
        "registry/interchange/index.html",
        {
            "may_import": access.has(request.user, access.IMPORT),
            "may_export": access.has(request.user, access.EXPORT),
        },
    )


@require_http_methods(["GET", "POST"])
def import_upload(request):
    access.require(access.has(request.user, access.IMPORT))
    form = ImportUploadForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        uploads.upload_discard(request.session)
        request.session[uploads.SESSION_KEY] = uploads.upload_save(
            upload=form.cleaned_data["file"],
            create_sites=form.cleaned_data.get("create_sites", False),
        )
        return redirect("registry:import_preview")
    context = {
        "form": form,
        "max_bytes": max_upload_bytes(),
        "max_rows": settings.IMPORT_MAX_ROWS,
        "seconds": settings.IMPORT_PREVIEW_SECONDS,
        "hours": settings.IMPORT_UPLOAD_MAX_AGE_HOURS,
    }
    return render(request, "registry/interchange/import_upload.html", context)


def _run(request, pending: dict, *, dry_run: bool, expected_plan: str | None = None):
    """The import of the pending file; a dry run within the preview's time budget."""
    result = registry_import(
        file=uploads.pending_path(pending),
        user=request.user,
        filename=pending["filename"],
        dry_run=dry_run,
        create_sites=pending["create_sites"],
        expected_plan=expected_plan,
        time_budget=settings.IMPORT_PREVIEW_SECONDS if dry_run else None,
    )
    _reconnect_if_lost()
    return result


def _reconnect_if_lost() -> None:
    """After a check of many seconds: a database restart meanwhile has closed the
    request's connection; what follows (saving the session) opens a new one instead
    of failing on it."""
    lost = connection.connection is not None and not connection.is_usable()
    if lost and not connection.in_atomic_block:
        connection.close()


# The preview page lists the changes of this many patients; the rest is downloaded.
PREVIEW_PATIENTS = 50


def _preview(request, result, pending: dict, status: int = 200):
    if result.problems:  # kept: a reload shows it without checking the file again
        refusal = uploads.Refusal.of(result)
        uploads.refusal_save(pending, refusal)
        return _refused(request, refusal, status)
    return render(
        request,
        "registry/interchange/import_preview.html",
        {
            "result": result,
            "digest": pending.get("digest", ""),
            "changes": result.changes[:PREVIEW_PATIENTS],
            "more_changes": max(0, len(result.changes) - PREVIEW_PATIENTS),
            "warnings": result.warnings[:PREVIEW_PATIENTS],
        },
        status=status,
    )


def _refused(request, refusal: uploads.Refusal, status: int = 200):
    """The first problems of a refused file, with their count."""
    context = {"result": refusal}
    return render(request, "registry/interchange/import_preview.html", context, status=status)


@require_GET
def import_preview(request):
    access.require(access.has(request.user, access.IMPORT))
    pending = uploads.pending_of(request.session)
    if pending is None:
        messages.info(request, _("Upload a file to import."))
        return redirect("registry:import_upload")
    refusal = uploads.refusal_load(pending)
    if refusal is not None:
        return _refused(request, refusal)
    return _preview(request, _run(request, pending, dry_run=True), pending)


@require_GET
def import_diff(request):
    """Every change the pending file makes, as CSV (the preview page shows the first)."""
    access.require(access.has(request.user, access.IMPORT))
    pending = uploads.pending_of(request.session)
    if pending is None:
        messages.info(request, _("Upload a file to import."))
        return redirect("registry:import_upload")
    if uploads.refusal_load(pending) is not None:
        return redirect("registry:import_preview")
    result = _run(request, pending, dry_run=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "study_id", "field", "stored", "new", "completed_section", "locked"])
    for patient in result.changes:
        for change in patient.fields:
            writer.writerow(
                [
                    patient.row,
                    patient.study_id,
                    change.field,
                    change.text(change.stored),
                    change.text(change.new),
                    int(change.completed),
                    int(patient.locked),
                ]
            )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="import-changes.csv"'
    return response


@require_POST
def import_confirm(request):
    access.require(access.has(request.user, access.IMPORT))
    pending = uploads.pending_of(request.session)
    if pending is None:
        messages.info(request, _("Nothing to import: upload the file again."))
        return redirect("registry:import_upload")
    refused = uploads.refusal_load(pending) is not None
    if request.POST.get("action") != "confirm" or refused:
        uploads.upload_discard(request.session)
        messages.info(request, _("Import cancelled; nothing was written."))
        return redirect("registry:import_upload")
    digest = pending.get("digest")
    if not digest or request.POST.get("digest") != digest or uploads.file_digest(pending) != digest:
        uploads.upload_discard(request.session)
        messages.error(
            request,
            _("The file is not the one previewed; nothing was written. Upload it again."),
        )
        return redirect("registry:import_upload")
    try:
        plan = request.POST.get("plan_digest", "")
        result = _run(request, pending, dry_run=False, expected_plan=plan)
    except BaseException:  # a failure leaves no file behind
        uploads.upload_discard(request.session)
        raise
    if result.problems:  # the registry changed since the preview: show the new one
        messages.warning(
            request,
            _(
                "Nothing was written: the registry changed since the preview, so the import "
                "would now write something else. Review the new preview and confirm again."
            ),
        )
        return _preview(request, _run(request, pending, dry_run=True), pending)
    uploads.upload_discard(request.session)
    messages.success(
        request,
        _(
            "Imported %(file)s: %(created)d patients created, %(changed)d changed, "
            "%(same)d unchanged."
        )
        % {
            "file": result.filename,
            "created": result.created,
            "changed": result.changed,
            "same": result.unchanged,
        },
    )
    return redirect("registry:interchange")


@require_http_methods(["GET", "POST"])
def export(request):
    access.require(access.has(request.user, access.EXPORT))
    form = ExportForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = redcap.export_for(data["format"])(
                user=request.user,
                site=data["site"],
                deidentified=not data.get("identifiable", False),
                via="web",
            )
        except ExportRefused as exc:
            form.add_error("format", str(exc))
        else:
            return _streamed(result)
    n_patients = access.patients_for(request.user).count()
    context = {"form": form, "n_patients": n_patients, "csv_mb": _csv_megabytes(n_patients)}
    return render(request, "registry/interchange/export.html", context)


def _streamed(result) -> StreamingHttpResponse:
    """The file sent while it is written: the browser's download shows its progress."""
    response = StreamingHttpResponse(
        _in_file_language(result.chunks()), content_type=result.content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    response["X-Export-Patients"] = str(result.n_patients)
    response["X-Accel-Buffering"] = "no"  # nginx passes each piece on as it comes
    return response


def _in_file_language(chunks):
    """The chunks written in the files' language: the response is written after the
    view has returned, outside any language the view set."""
    with in_file_language():
        yield from chunks


def _csv_megabytes(n_patients: int) -> int:
    """About how large the CSV of ``n_patients`` is (300 bytes a patient), at least 1."""
    return max(1, round(n_patients * 300 / 1_000_000))


# The REDCap data dictionaries: of the identifiable records, of the de-identified ones.
REDCAP_DICTIONARIES = {"redcap": False, "redcap-deidentified": True}


@require_GET
def data_dictionary(request):
    fmt = request.GET.get("format")
    if fmt in REDCAP_DICTIONARIES:
        deidentified = REDCAP_DICTIONARIES[fmt]
        with in_file_language():  # as the records export writes its labels
            text = redcap.dictionary_csv(deidentified=deidentified)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        name = f"{fmt}-data-dictionary.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    if fmt == "csv":
        response = HttpResponse(dictionary.as_csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="data-dictionary.csv"'
        return response
    if fmt == "md":
        response = HttpResponse(
            dictionary.as_markdown(), content_type="text/markdown; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="data-dictionary.md"'
        return response
    return render(
        request, "registry/interchange/dictionary.html", {"entries": dictionary.entries()}
    )


@require_GET
def export_log(request):
    """Who exported what, when, with which filters (CSV with ``?format=csv``)."""
    access.require(access.has(request.user, access.AUDIT))
    entries = log.export_log_for(request.user)
    if request.GET.get("format") == "csv":
        response = HttpResponse(log.export_log_csv(entries), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="export-log.csv"'
        return response
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "registry/interchange/export_log.html", {"page": page})
