"""The registry's API URLs (under ``/api/``): the endpoints of ``v1/``, the OpenAPI
schema and its page. ``config/urls.py`` adds the study tables and the quality
indicators (``analytics.api``) to the same ``api`` namespace.

Each view is named by its dotted path and imported on its first request
(:class:`LazyApiView`): Django REST framework and drf-spectacular stay out of the
start-up of the pages' workers and of ``manage.py`` commands.
"""

from __future__ import annotations

from django.urls import path
from django.utils.functional import cached_property
from django.utils.module_loading import import_string

from registry.urls import SectionKeyConverter  # noqa: F401  (registers <section:...>)


class LazyApiView:
    """The view of the API class at ``dotted``, imported when first called or inspected.

    Every API view answers a missing or wrong token with 401 itself, so the pages'
    sign-in redirect does not apply (``login_required``); DRF checks CSRF itself for
    the session (``csrf_exempt``, as DRF's own ``as_view()`` says). ``cls`` and
    ``initkwargs`` are what the schema generator reads from a DRF view.
    """

    csrf_exempt = True
    login_required = False

    def __init__(self, dotted: str):
        self.dotted = dotted

    @cached_property
    def view(self):
        return import_string(self.dotted).as_view()

    @property
    def cls(self):
        return self.view.cls

    @property
    def initkwargs(self) -> dict:
        return self.view.initkwargs

    def __call__(self, request, *args, **kwargs):
        return self.view(request, *args, **kwargs)


def api_path(route: str, dotted: str, name: str):
    return path(route, LazyApiView(dotted), name=name)


VIEWS = "registry.api.views"
urlpatterns = [
    api_path("v1/sites/", f"{VIEWS}.SiteList", "sites"),
    api_path("v1/patients/", f"{VIEWS}.PatientList", "patients"),
    api_path("v1/patients/<int:pk>/", f"{VIEWS}.PatientDetail", "patient"),
    api_path("v1/patients/<int:pk>/<section:section_key>/", f"{VIEWS}.SectionDetail", "section"),
    api_path("v1/dictionary/", f"{VIEWS}.DataDictionary", "dictionary"),
    api_path("v1/freezes/", f"{VIEWS}.FreezeList", "freezes"),
    api_path("v1/freezes/<slug:name>/", f"{VIEWS}.FreezeDetail", "freeze"),
    api_path("v1/freezes/<slug:name>/download/", f"{VIEWS}.FreezeDownload", "freeze_download"),
    api_path("v1/freezes/<slug:name>/compare/", f"{VIEWS}.FreezeCompare", "freeze_compare"),
    api_path("schema/", f"{VIEWS}.Schema", "schema"),
    api_path("docs/", f"{VIEWS}.SchemaDocs", "docs"),
]
