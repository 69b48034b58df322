"""Pages computed from a data freeze: ``?freeze=NAME`` on the study tables' and the
quality indicators' pages, downloads and figures (``datasets.source``), and on their
API endpoints (``analytics.api``)."""

from __future__ import annotations

import functools

from django.http import Http404, HttpResponse

from registry import access
from registry.freezes import FreezeTampered

from . import datasets


def freeze_for_request(request):
    """The freeze named by ``?freeze=NAME`` that the user may read (404), or None."""
    return readable_freeze(request.user, request.GET.get("freeze"))


def readable_freeze(user, name: str | None):
    """The freeze ``name`` if ``user`` may read it, None without a name; 404 for a freeze
    that does not exist, holds another site's rows, or to a user without ``FREEZE``."""
    if not name:
        return None
    if not access.has(user, access.FREEZE):
        raise Http404
    return access.get_freeze(user, name)


def from_freeze(view):
    """Compute ``view`` from the data freeze of ``?freeze=NAME`` when given
    (``request.freeze``; 404 for a freeze the user may not read, 409 for a tampered
    one), else from the live registry (``request.freeze`` None)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        request.freeze = freeze_for_request(request)
        try:
            with datasets.source(request.freeze):
                return view(request, *args, **kwargs)
        except FreezeTampered as exc:
            return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")

    return wrapped
