"""``Patient.mrs_3m_missing``: the follow-up worklist's stored flag agrees with its
definition (``registry.models.mrs_3m_missing``) after every way a follow-up is written."""

import pytest
from django.db.models import F

from registry import services
from registry.interchange.importer import registry_import
from registry.models import FollowUp, Patient, mrs_3m_missing, patients_refresh_stored
from registry.workflow import services as workflow

from .factories import FollowUpFactory, PatientFactory, full_patient
from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db


def flags() -> dict[str, bool]:
    return dict(Patient.objects.values_list("study_id", "mrs_3m_missing"))


def assert_flags_agree_with_the_definition():
    wrong = Patient.objects.annotate(defined=mrs_3m_missing()).exclude(mrs_3m_missing=F("defined"))
    assert list(wrong.values_list("study_id", flat=True)) == []


def test_a_new_patient_has_no_3_month_mrs(site_a):
    PatientFactory(site=site_a, study_id="CT-001")
    assert flags() == {"CT-001": True}


def test_saving_the_3_month_mrs_takes_the_patient_off_the_worklist_and_blanking_it_back(
    nurse, site_a
):
    patient = full_patient(site=site_a, study_id="CT-001")
    assert flags() == {"CT-001": False}
    services.section_save(
        patient=patient, section_key="followup", user=nurse, data={"mrs_3m": None}, complete=False
    )
    assert flags() == {"CT-001": True}
    assert [i.patient.study_id for items in workflow.worklist(nurse).values() for i in items] == [
        "CT-001"
    ]
    services.section_save(
        patient=patient, section_key="followup", user=nurse, data={"mrs_3m": 3}, complete=False
    )
    assert flags() == {"CT-001": False}
    assert not any(workflow.worklist(nurse).values())


def test_deleting_the_follow_up_puts_the_patient_back_on_the_worklist(site_a):
    followup = FollowUpFactory(patient=PatientFactory(site=site_a, study_id="CT-001"))
    assert flags() == {"CT-001": False}
    FollowUp.objects.get(pk=followup.pk).delete()
    assert flags() == {"CT-001": True}


def test_an_import_stores_whether_each_patient_has_the_3_month_mrs(tmp_path, site_a, admin_user):
    rows = [row(study_id="T-001"), row(study_id="T-002", mrs_3m="")]
    path = write_csv(tmp_path, rows)
    assert registry_import(file=path, user=admin_user, filename=path.name).ok
    assert flags() == {"T-001": False, "T-002": True}
    # Re-imported with the mRS moved from one patient to the other.
    rows = [row(study_id="T-001", mrs_3m=""), row(study_id="T-002")]
    path = write_csv(tmp_path, rows, name="again.csv")
    result = registry_import(file=path, user=admin_user, filename=path.name)
    assert result.ok and result.changed == 2
    assert flags() == {"T-001": True, "T-002": False}
    assert_flags_agree_with_the_definition()


def test_the_refresh_restores_every_flag_as_the_data_migration_does(site_a):
    full_patient(site=site_a, study_id="CT-001")
    PatientFactory(site=site_a, study_id="CT-002")
    Patient.objects.filter(study_id="CT-001").update(mrs_3m_missing=True)
    Patient.objects.filter(study_id="CT-002").update(mrs_3m_missing=False)
    assert flags() == {"CT-001": True, "CT-002": False}  # both wrong
    assert patients_refresh_stored(patient_model=Patient, fields=("mrs_3m_missing",)) == 2
    assert flags() == {"CT-001": False, "CT-002": True}
    assert_flags_agree_with_the_definition()
