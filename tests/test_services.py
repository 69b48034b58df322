"""The write services: validation, completion, reason for change, optimistic locking."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from registry import services
from registry.choices import SectionStatus
from registry.models import Admission, Patient

from .factories import ONSET, AdmissionFactory, PatientFactory

pytestmark = pytest.mark.django_db

ADMISSION = {
    "onset_time": ONSET,
    "door_time": ONSET + dt.timedelta(hours=3),
    "transfer": False,
    "nihss_admission": 12,
    "premorbid_mrs": 0,
    "admission_mrs": 4,
    "hypertension": True,
    "smoking": False,
    "diabetes": False,
    "myocardial_infarction": False,
    "atrial_fibrillation": True,
    "chronic_kidney_disease": False,
    "dysphagia": False,
    "iv_thrombolysis": False,
}


def save(patient, user, data=None, **kwargs):
    kwargs.setdefault("complete", False)
    return services.section_save(
        patient=patient, section_key="admission", user=user, data=data or {}, **kwargs
    )


def test_patient_create_records_who_created_it(nurse, site_a):
    patient = services.patient_create(
        user=nurse, site=site_a, study_id="CT-001", sex="female", age_years=71
    )
    assert patient.created_by == nurse
    assert patient.history.get().history_user == nurse


def test_patient_create_refuses_an_invalid_patient(nurse, site_a):
    with pytest.raises(ValidationError) as caught:
        services.patient_create(user=nurse, site=site_a, study_id="CT 1", sex="x", age_years=12)
    assert set(caught.value.message_dict) == {"study_id", "sex", "age_years"}
    assert not Patient.objects.exists()


def test_a_first_save_creates_a_draft_at_version_one(nurse, site_a):
    patient = PatientFactory(site=site_a)
    admission = save(patient, nurse, {"nihss_admission": 10}, expected_version=0)
    assert (admission.status, admission.version) == (SectionStatus.DRAFT, 1)
    assert admission.history.get().history_user == nurse


def test_mark_complete_records_who_and_when(nurse, site_a):
    patient = PatientFactory(site=site_a)
    admission = save(patient, nurse, ADMISSION, complete=True)
    assert admission.status == SectionStatus.COMPLETE
    assert admission.completed_by == nurse
    assert admission.completed_at is not None


def test_mark_complete_with_a_blank_field_is_refused(nurse, site_a):
    patient = PatientFactory(site=site_a)
    with pytest.raises(ValidationError) as caught:
        save(patient, nurse, {**ADMISSION, "diabetes": None}, complete=True)
    assert list(caught.value.message_dict) == ["diabetes"]
    assert not Admission.objects.exists()


def test_an_invalid_value_is_refused_before_saving(nurse, site_a):
    patient = PatientFactory(site=site_a)
    with pytest.raises(ValidationError) as caught:
        save(patient, nurse, {"nihss_admission": 43})
    assert "nihss_admission" in caught.value.message_dict


def test_every_save_bumps_the_version(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, {"nihss_admission": 10})
    admission = save(patient, nurse, {"nihss_admission": 11}, expected_version=1)
    assert admission.version == 2
    assert Admission.objects.get().version == 2


def test_changing_a_complete_section_requires_a_reason(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, ADMISSION, complete=True)
    with pytest.raises(ValidationError) as caught:
        save(patient, nurse, {"nihss_admission": 20}, complete=True)
    assert "reason_for_change" in caught.value.message_dict
    assert Admission.objects.get().nihss_admission == 12


def test_the_reason_for_change_is_stored_in_the_history(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, ADMISSION, complete=True)
    save(patient, nurse, {"nihss_admission": 20}, complete=True, reason="Typo, source: ED chart")
    latest = Admission.history.latest()
    assert latest.history_change_reason == "Typo, source: ED chart"
    assert latest.history_user == nurse
    assert latest.nihss_admission == 20


def test_reopening_a_complete_section_as_draft_requires_a_reason(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, ADMISSION, complete=True)
    with pytest.raises(ValidationError):
        save(patient, nurse, ADMISSION, complete=False)
    admission = save(patient, nurse, ADMISSION, complete=False, reason="Awaiting NIHSS check")
    assert admission.status == SectionStatus.DRAFT
    assert admission.completed_by is None


def test_an_unchanged_save_of_a_complete_section_needs_no_reason(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, ADMISSION, complete=True)
    admission = save(patient, nurse, ADMISSION, complete=True, expected_version=1)
    assert admission.version == 1
    assert Admission.history.count() == 1


def test_a_draft_changes_without_a_reason(nurse, site_a):
    AdmissionFactory(patient=PatientFactory(site=site_a))
    patient = Patient.objects.get()
    admission = save(patient, nurse, {"nihss_admission": 5})
    assert admission.nihss_admission == 5


def test_a_save_based_on_a_stale_version_is_refused_and_says_what_changed(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, {"nihss_admission": 10}, expected_version=0)
    # Two nurses opened version 1; the first saves NIHSS 14.
    save(patient, nurse, {"nihss_admission": 14}, expected_version=1)
    with pytest.raises(services.StaleVersion) as caught:
        save(patient, nurse, {"nihss_admission": 11}, expected_version=1)
    message = caught.value.messages[0]
    assert "NIHSS on admission: 14" in message
    assert caught.value.stored_version == 2
    assert Admission.objects.get().nihss_admission == 14


def test_creating_a_section_someone_else_created_meanwhile_is_refused(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, {"nihss_admission": 10}, expected_version=0)
    with pytest.raises(services.StaleVersion):
        save(patient, nurse, {"nihss_admission": 9}, expected_version=0)


def test_a_cross_section_rule_is_checked_on_save(nurse, site_a):
    patient = PatientFactory(site=site_a)
    save(patient, nurse, {"onset_time": ONSET, "door_time": ONSET + dt.timedelta(hours=2)})
    with pytest.raises(ValidationError) as caught:
        services.section_save(
            patient=patient,
            section_key="procedure",
            user=nurse,
            data={"groin_puncture_time": ONSET + dt.timedelta(hours=1)},
            complete=False,
        )
    assert "groin_puncture_time" in caught.value.message_dict
