"""What an inspector reads on the registry's pages: the export log, a patient's exclusion
history; nothing kept in a browser's cache; and a database that does not answer."""

import csv
import io

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from registry import services
from registry.choices import Role
from registry.interchange.exporter import registry_export
from registry.workflow import services as workflow

from .factories import UserFactory, full_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_admin_a(site_a):
    return UserFactory(username="siteadmin_a", role=Role.SITE_ADMIN, sites=[site_a])


def test_the_export_log_page_says_who_exported_what_when_and_identifiable_or_not(
    client, admin_user, site_admin_a, investigator, site_a, site_b
):
    full_patient(study_id="A-0001", site=site_a)
    registry_export(user=investigator, fmt="xlsx", site=site_a)
    registry_export(user=admin_user, fmt="csv", site=site_b, deidentified=False)
    registry_export(user=None, fmt="dta", deidentified=True, via="command")

    client.force_login(site_admin_a)
    page = client.get(reverse("registry:export_log")).content.decode()
    assert "investigator_a" in page and "xlsx" in page
    assert "registry_admin" not in page  # site B's export is not theirs to read
    assert "(command line)" in page  # the command exported every site, theirs too
    download = client.get(reverse("registry:export_log") + "?format=csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(download)))
    assert [(r["user"], r["format"], r["identifiable"]) for r in rows] == [
        ("", "dta", "0"),
        ("investigator_a", "xlsx", "0"),
    ]
    assert rows[1]["filters"] == '{"site": "A"}' and rows[1]["sites_covered"] == "A"

    client.force_login(admin_user)
    page = client.get(reverse("registry:export_log")).content.decode()
    assert "registry_admin" in page and "Identifiable" in page


def test_a_nurse_has_no_export_log(client, nurse):
    client.force_login(nurse)
    assert client.get(reverse("registry:export_log")).status_code == 403


def test_the_patients_page_shows_the_exclude_revoke_exclude_history(
    client, nurse, investigator, site_a
):
    patient = full_patient(study_id="A-0001", site=site_a)
    workflow.patient_exclude(user=nurse, patient=patient, reason="lost_to_followup")
    workflow.patient_exclusion_revoke(user=investigator, patient=patient, note="Reached the son.")
    workflow.patient_exclude(
        user=nurse, patient=patient, reason="consent_withdrawn", note="Called back."
    )
    client.force_login(nurse)
    page = client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    section = page[page.index('id="exclusion-history"') :]
    first = section.index("Excluded: Lost to follow-up")
    taken_back = section.index("Exclusion taken back")
    again = section.index("Excluded: Consent withdrawn")
    assert first < taken_back < again
    assert "Reached the son." in section and "investigator_a" in section


def test_a_patient_never_excluded_shows_no_exclusion_history(client, nurse, site_a):
    patient = full_patient(study_id="A-0001", site=site_a)
    client.force_login(nurse)
    page = client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    assert 'id="exclusion-history"' not in page


def test_downloads_and_the_admins_pages_are_not_cached_either(client, admin_user, site_a):
    full_patient(study_id="A-0001", site=site_a)
    client.force_login(admin_user)
    export = client.post(reverse("registry:export"), {"format": "csv", "identifiable": "on"})
    assert export.status_code == 200 and "no-store" in export["Cache-Control"]
    assert "no-store" in client.get(reverse("login"))["Cache-Control"]


def test_a_database_that_does_not_answer_keeps_the_nurses_typed_values(nurse, site_a, monkeypatch):
    patient = full_patient(study_id="A-0001", site=site_a)

    def unavailable(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "section_save", unavailable)
    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    typed = {"nihss_admission": "17", "premorbid_mrs": "1", "version": "1", "action": "save"}
    response = client.post(url, typed)
    assert response.status_code == 503
    assert response["Retry-After"] == "5" and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "The database is not answering" in page
    assert '<dt class="col-sm-4">NIHSS on admission</dt><dd class="col-sm-8">17</dd>' in page
    assert f'<form method="post" action="{url}">' in page
    assert '<input type="hidden" name="version" value="1">' in page


def test_a_session_the_database_could_not_save_is_the_same_503_not_a_bad_request(
    nurse, site_a, monkeypatch
):
    from django.contrib.sessions.backends.base import UpdateError
    from django.contrib.sessions.backends.db import SessionStore

    def save(self, must_create=False):
        try:
            raise OperationalError("terminating connection due to administrator command")
        except OperationalError:
            raise UpdateError from None

    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    monkeypatch.setattr(SessionStore, "save", save)
    response = client.post(reverse("registry:patient_create"), {"study_id": "A-0007"})
    assert response.status_code == 503
    assert '<dd class="col-sm-8">A-0007</dd>' in response.content.decode()


def test_a_page_read_while_the_database_is_away_says_to_reload(nurse, site_a, monkeypatch):
    from registry import forms

    def unavailable(*args, **kwargs):
        raise OperationalError("could not connect to server")

    # The patient list's filter (``PatientFilterForm.filter``) is where the page reads.
    monkeypatch.setattr(forms, "patients_incomplete", unavailable)
    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    response = client.get(reverse("registry:patient_list") + "?incomplete=any")
    assert response.status_code == 503
    assert "reload the page" in response.content.decode()


def test_any_other_server_error_is_still_the_plain_500_page(nurse, site_a, monkeypatch):
    from registry import views

    monkeypatch.setattr(views, "section_statuses", lambda patient: 1 / 0)
    full_patient(study_id="A-0001", site=site_a)
    client = Client(raise_request_exception=False)
    client.force_login(nurse)
    response = client.get(reverse("registry:patient_list"))
    assert response.status_code == 500
    assert "Server error" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model", ["exportlog", "apirequestlog", "apitoken", "freezedeletion"], ids=str
)
def test_an_audit_in_the_admin_is_listed_but_not_added_changed_or_deleted(client, model):
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from registry.admin import ReadOnlyAdmin

    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(reverse(f"admin:registry_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:registry_{model}_add")).status_code == 403
    request = RequestFactory().get("/")
    request.user = root
    found = [a for m, a in django_admin.site._registry.items() if m._meta.model_name == model]
    assert len(found) == 1 and isinstance(found[0], ReadOnlyAdmin)
    assert not any(
        allowed(request)
        for allowed in (
            found[0].has_add_permission,
            found[0].has_change_permission,
            found[0].has_delete_permission,
        )
    )
