"""What a user sees when the database does not answer (e.g. while PostgreSQL restarts).

Django answers any uncaught error with the 500 page, which loses a form that was
being sent. A database that does not answer gets a 503 instead, rendered without the
database: it says nothing was saved (or may not have been), shows what was typed,
and sends it again with one button (same address, same values, same CSRF token).
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template import loader
from django.utils.cache import add_never_cache_headers
from django.views import defaults

DATABASE_ERRORS = (OperationalError, InterfaceError)
NOT_SHOWN = frozenset({"csrfmiddlewaretoken", "version", "action"})
RETRY_AFTER_SECONDS = 5


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    """``handler500``: the database's own page when the error is the database's."""
    if caused_by_database(sys.exc_info()[1]):
        return database_unavailable(request)
    return defaults.server_error(request, template_name)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    """``handler400``: the session could not be saved because the database is away
    (Django reports that as an interrupted session, 400): the database's page too."""
    if caused_by_database(exception):
        return database_unavailable(request)
    return defaults.bad_request(request, exception, template_name)


def caused_by_database(error: BaseException | None) -> bool:
    """Whether ``error`` is, or was raised while handling, a database error."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DATABASE_ERRORS):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def database_unavailable(request) -> HttpResponse:
    sent = list(request.POST.lists()) if request.method == "POST" else []
    context = {
        "action": request.get_full_path(),
        "sent": [(name, value) for name, values in sent for value in values],
        "typed": [
            (_label(name), ", ".join(values))
            for name, values in sent
            if name not in NOT_SHOWN and any(values)
        ],
        "files": list(request.FILES) if request.method == "POST" else [],
        "retry": RETRY_AFTER_SECONDS,
    }
    response = HttpResponse(loader.render_to_string("503_database.html", context), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    add_never_cache_headers(response)
    return response


def _label(name: str) -> str:
    """A field's label when it is a registry column (read from the models, not the
    database), else its name."""
    from .display import label
    from .interchange.columns import by_name

    column = by_name().get(name)
    return label(column.label) if column is not None else name
