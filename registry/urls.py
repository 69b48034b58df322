from django.urls import path, register_converter

from . import views
from .accounts import views as accounts
from .freezing import views as fz
from .interchange import views as ix
from .models import SECTIONS_BY_KEY
from .workflow import views as wf


class SectionKeyConverter:
    """Only the five section keys, so other ``patients/<pk>/<word>/`` pages stay free."""

    regex = "|".join(SECTIONS_BY_KEY)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SectionKeyConverter, "section")

app_name = "registry"
urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/history/", views.patient_history, name="patient_history"),
    path("patients/<int:pk>/print/", views.patient_print, name="patient_print"),
    path("crf/blank/", views.blank_crf, name="blank_crf"),
    path("patients/<int:pk>/<section:section_key>/", views.section_edit, name="section_edit"),
    # The study workflow: screening, follow-up calls, mRS interview, queries, locks, checks.
    path("screening/", wf.screening_list, name="screening_list"),
    path("screening/new/", wf.screening_create, name="screening_create"),
    path("screening/<int:pk>/enrol/", wf.screening_enrol, name="screening_enrol"),
    path("followup/", wf.followup_worklist, name="followup_worklist"),
    path("patients/<int:pk>/workflow/calls/", wf.patient_calls, name="patient_calls"),
    path("patients/<int:pk>/workflow/mrs/", wf.mrs_interview, name="mrs_interview"),
    path("patients/<int:pk>/workflow/query/", wf.query_create, name="query_create"),
    path("patients/<int:pk>/workflow/lock/", wf.patient_lock, name="patient_lock"),
    path("queries/", wf.query_list, name="query_list"),
    path("queries/<int:pk>/", wf.query_detail, name="query_detail"),
    path("checks/", wf.data_checks, name="data_checks"),
    # Import, export and the data dictionary.
    path("interchange/", ix.index, name="interchange"),
    path("interchange/import/", ix.import_upload, name="import_upload"),
    path("interchange/import/preview/", ix.import_preview, name="import_preview"),
    path("interchange/import/confirm/", ix.import_confirm, name="import_confirm"),
    path("interchange/import/changes.csv", ix.import_diff, name="import_diff"),
    path("interchange/export/", ix.export, name="export"),
    path("interchange/dictionary/", ix.data_dictionary, name="data_dictionary"),
    path("interchange/export-log/", ix.export_log, name="export_log"),
    # Data freezes: the rows of a manuscript's figures, kept unchanged.
    path("freezes/", fz.freeze_list, name="freeze_list"),
    path("freezes/<slug:name>/", fz.freeze_detail, name="freeze_detail"),
    path("freezes/<slug:name>/rows.csv", fz.freeze_download, name="freeze_download"),
    path("freezes/<slug:name>/delete/", fz.freeze_delete, name="freeze_delete"),
    # Accounts of one's sites (site and registry administrators).
    path("users/", accounts.account_list, name="account_list"),
    path("users/new/", accounts.account_create, name="account_create"),
    path("users/changes/", accounts.account_audit, name="account_audit"),
    path("users/<int:pk>/", accounts.account_edit, name="account_edit"),
    path("users/<int:pk>/active/", accounts.account_active, name="account_active"),
    path("users/<int:pk>/password/", accounts.account_password, name="account_password"),
]
