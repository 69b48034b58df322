"""Import, export and data-dictionary pages. Thin: access -> form -> service.

The import is two-step: the upload is validated as a dry run and previewed
(problems, or the counts of patients to create and change); only the
confirmation writes. Until then the file is kept in a private temporary
folder under a random token remembered in the session, and deleted on
confirmation, cancellation or a new upload.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import access

from . import dictionary
from .exporter import registry_export
from .forms import ExportForm, ImportUploadForm, max_upload_bytes
from .importer import registry_import

SESSION_KEY = "registry_import_pending"
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def upload_dir() -> Path:
    folder = Path(
        getattr(settings, "IMPORT_UPLOAD_DIR", None)
        or Path(tempfile.gettempdir()) / "registry-import-uploads"
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _pending(request) -> dict | None:
    pending = request.session.get(SESSION_KEY)
    if not pending or not TOKEN_RE.match(pending.get("token", "")):
        return None
    path = _pending_path(pending)
    return pending if path.is_file() else None


def _pending_path(pending: dict) -> Path:
    suffix = ".xlsx" if pending["filename"].lower().endswith(".xlsx") else ".csv"
    return upload_dir() / f"{pending['token']}{suffix}"


def _discard(request) -> None:
    pending = request.session.pop(SESSION_KEY, None)
    if pending and TOKEN_RE.match(pending.get("token", "")):
        _pending_path(pending).unlink(missing_ok=True)


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
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        _discard(request)
        upload = form.cleaned_data["file"]
        pending = {
            "token": secrets.token_hex(16),
            "filename": Path(upload.name).name,
            "create_sites": form.cleaned_data["create_sites"],
        }
        with open(_pending_path(pending), "wb") as stream:
            for chunk in upload.chunks():
                stream.write(chunk)
        request.session[SESSION_KEY] = pending
        return redirect("registry:import_preview")
    return render(
        request,
        "registry/interchange/import_upload.html",
        {"form": form, "max_bytes": max_upload_bytes()},
    )


def _run(request, pending: dict, *, dry_run: bool):
    return registry_import(
        file=_pending_path(pending),
        user=request.user,
        filename=pending["filename"],
        dry_run=dry_run,
        create_sites=pending["create_sites"],
    )


@require_GET
def import_preview(request):
    access.require(access.has(request.user, access.IMPORT))
    pending = _pending(request)
    if pending is None:
        messages.info(request, _("Upload a file to import."))
        return redirect("registry:import_upload")
    result = _run(request, pending, dry_run=True)
    return render(request, "registry/interchange/import_preview.html", {"result": result})


@require_POST
def import_confirm(request):
    access.require(access.has(request.user, access.IMPORT))
    pending = _pending(request)
    if pending is None:
        messages.info(request, _("Nothing to import: upload the file again."))
        return redirect("registry:import_upload")
    if request.POST.get("action") != "confirm":
        _discard(request)
        messages.info(request, _("Import cancelled; nothing was written."))
        return redirect("registry:import_upload")
    result = _run(request, pending, dry_run=False)
    _discard(request)
    if result.problems:  # the registry changed since the preview
        return render(request, "registry/interchange/import_preview.html", {"result": result})
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
        result = registry_export(
            user=request.user,
            fmt=data["format"],
            site=data["site"],
            deidentified=not data.get("identifiable", False),
            via="web",
        )
        response = HttpResponse(result.content, content_type=result.content_type)
        response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        return response
    return render(request, "registry/interchange/export.html", {"form": form})


@require_GET
def data_dictionary(request):
    fmt = request.GET.get("format")
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
