"""The data freezes' pages: list and create, compare, download, delete (thin views over
``registry.freezes``)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from registry import access, freezes
from registry.forms import FreezeDeleteForm, FreezeForm

# Changed values shown on the comparison page (the command lists them all).
CHANGES_SHOWN = 1_000


def freeze_list(request):
    """The freezes the user may read, with their hash; a form to freeze the data."""
    access.require(access.has(request.user, access.FREEZE))
    sites = access.sites_for(request.user)
    form = FreezeForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            freeze = freezes.freeze_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(
                request,
                _("Data frozen as “%(name)s”: %(n)s patients, SHA-256 %(sha)s.")
                % {"name": freeze.name, "n": freeze.n_patients, "sha": freeze.sha256},
            )
            return redirect("registry:freeze_detail", name=freeze.name)
    context = {
        "freezes": freezes.freezes_for(request.user).select_related("created_by"),
        "form": form,
        "may_delete": access.has(request.user, access.DELETE_FREEZE),
    }
    return render(request, "registry/freezes/list.html", context)


def freeze_detail(request, name: str):
    """One freeze compared with the live data or, with ``?with=OTHER``, another freeze."""
    freeze = access.get_freeze(request.user, name)
    other = None
    if request.GET.get("with"):
        other = access.get_freeze(request.user, request.GET["with"])
    try:
        comparison = freezes.freeze_compare(freeze=freeze, other=other, user=request.user)
    except freezes.FreezeTampered as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    context = {
        "freeze": freeze,
        "other": other,
        "others": freezes.freezes_for(request.user).exclude(pk=freeze.pk),
        "comparison": comparison,
        "changes": comparison.changes[:CHANGES_SHOWN],
        "may_delete": access.has(request.user, access.DELETE_FREEZE),
    }
    return render(request, "registry/freezes/detail.html", context)


def freeze_download(request, name: str):
    """Exactly the frozen rows (interchange CSV), verified against the hash."""
    freeze = access.get_freeze(request.user, name)
    try:
        pieces = freezes.freeze_csv(freeze=freeze)
    except freezes.FreezeTampered as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(pieces, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="freeze-{freeze.name}.csv"'
    response["X-Freeze-SHA256"] = freeze.sha256
    return response


def freeze_delete(request, name: str):
    """Delete a freeze with a reason (the registry administrator's; audited)."""
    freeze = access.get_freeze(request.user, name)
    access.require(access.has(request.user, access.DELETE_FREEZE))
    form = FreezeDeleteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        freezes.freeze_delete(freeze=freeze, user=request.user, reason=form.cleaned_data["reason"])
        messages.success(request, _("The data freeze “%(name)s” was deleted.") % {"name": name})
        return redirect("registry:freeze_list")
    return render(request, "registry/freezes/delete.html", {"freeze": freeze, "form": form})
