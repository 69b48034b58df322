"""The registry's API URLs (under ``/api/``): the endpoints of ``v1/``, the OpenAPI
schema and its page. ``config/urls.py`` adds the study tables and the quality
indicators (``analytics.api``) to the same ``api`` namespace.

Every API view answers a missing or wrong token with 401 itself: the pages' sign-in
redirect does not apply (``login_not_required``).
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from registry.urls import SectionKeyConverter  # noqa: F401  (registers <section:...>)

from . import views


def api_path(route: str, view, name: str):
    return path(route, login_not_required(view.as_view()), name=name)


urlpatterns = [
    api_path("v1/sites/", views.SiteList, "sites"),
    api_path("v1/patients/", views.PatientList, "patients"),
    api_path("v1/patients/<int:pk>/", views.PatientDetail, "patient"),
    api_path("v1/patients/<int:pk>/<section:section_key>/", views.SectionDetail, "section"),
    api_path("v1/dictionary/", views.DataDictionary, "dictionary"),
    api_path("schema/", views.Schema, "schema"),
    api_path("docs/", views.SchemaDocs, "docs"),
]
