"""A locked record is read-only everywhere: the section forms and the bulk import."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from registry import services
from registry.interchange.importer import registry_import
from registry.models import Admission, Patient
from registry.workflow import services as workflow

from .factories import PASSWORD, AdmissionFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def locked(site_a, monitor):
    patient = PatientFactory(site=site_a, study_id="LOCK-1", age_years=63)
    AdmissionFactory(patient=patient, nihss_admission=18)
    workflow.patient_lock(user=monitor, patient=patient, reason="SDV done", password=PASSWORD)
    return patient


def test_section_save_refuses_a_locked_record(locked, nurse):
    with pytest.raises(PermissionDenied):
        services.section_save(
            patient=locked,
            section_key="admission",
            user=nurse,
            data={"nihss_admission": 10},
            complete=False,
        )
    assert Admission.objects.get(patient=locked).nihss_admission == 18


def test_section_form_of_a_locked_record_answers_forbidden(client, locked, nurse):
    client.force_login(nurse)
    url = reverse("registry:section_edit", args=[locked.pk, "admission"])
    response = client.post(url, {"nihss_admission": "10", "action": "draft", "version": "1"})
    assert response.status_code == 403
    assert Admission.objects.get(patient=locked).nihss_admission == 18


def test_section_save_works_again_after_unlocking(locked, nurse, monitor):
    workflow.patient_unlock(
        user=monitor, patient=locked, reason="Query on NIHSS", password=PASSWORD
    )
    services.section_save(
        patient=locked,
        section_key="admission",
        user=nurse,
        data={"nihss_admission": 10},
        complete=False,
    )
    assert Admission.objects.get(patient=locked).nihss_admission == 10


def test_import_refuses_to_change_a_locked_record(locked, site_a, nurse):
    row = {"study_id": "LOCK-1", "site": site_a.code, "sex": "male", "age_years": 70}
    result = registry_import(rows=[row], user=nurse)
    assert not result.ok
    assert any("locked" in problem.message for problem in result.problems)
    assert Patient.objects.get(pk=locked.pk).age_years == 63


def test_import_writes_other_rows_only_when_the_locked_one_is_left_out(locked, site_a, nurse):
    row = {"study_id": "NEW-1", "site": site_a.code, "sex": "female", "age_years": 50}
    result = registry_import(rows=[row], user=nurse)
    assert result.ok
    assert Patient.objects.filter(study_id="NEW-1").exists()
