"""``Patient.sections_complete``: the list's "section incomplete" filter reads a stored
column; it agrees with its definition (``registry.models.sections_complete``) after
every way a section is written."""

import importlib

import pytest
from django.db import connection, transaction
from django.db.models import F

from registry import services
from registry.choices import SectionStatus
from registry.interchange.importer import registry_import
from registry.models import (
    ALL_SECTIONS_COMPLETE,
    SECTION_MODELS,
    Patient,
    patients_incomplete,
    patients_refresh_stored,
    section_bit,
    sections_complete,
)

from .factories import AdmissionFactory, PatientFactory, full_patient
from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db

FOLLOWUP, ADMISSION = section_bit("followup"), section_bit("admission")


def stored() -> dict[str, int]:
    return dict(Patient.objects.values_list("study_id", "sections_complete"))


def assert_stored_agrees_with_the_definition():
    wrong = Patient.objects.annotate(defined=sections_complete()).exclude(
        sections_complete=F("defined")
    )
    assert list(wrong.values_list("study_id", "sections_complete", "defined")) == []


def test_every_section_has_its_own_bit_and_all_of_them_make_the_constant():
    bits = [section_bit(model.key) for model in SECTION_MODELS]
    assert bits == [1, 2, 4, 8, 16]
    assert sum(bits) == ALL_SECTIONS_COMPLETE


def test_a_new_patient_has_no_section_complete(site_a):
    PatientFactory(site=site_a, study_id="CT-001")
    assert stored() == {"CT-001": 0}


def test_completing_a_section_sets_its_bit_and_reopening_clears_it(nurse, site_a):
    patient = full_patient(site=site_a, study_id="CT-001")
    assert stored() == {"CT-001": 0}  # the factories write drafts
    services.section_save(
        patient=patient, section_key="followup", user=nurse, data={}, complete=True
    )
    assert stored() == {"CT-001": FOLLOWUP}
    services.section_save(
        patient=patient, section_key="admission", user=nurse, data={}, complete=True
    )
    assert stored() == {"CT-001": FOLLOWUP | ADMISSION}
    services.section_save(
        patient=patient,
        section_key="followup",
        user=nurse,
        data={},
        complete=False,
        reason="mRS to be asked again",
    )
    assert stored() == {"CT-001": ADMISSION}
    assert_stored_agrees_with_the_definition()


def test_deleting_a_complete_section_clears_its_bit(site_a):
    admission = AdmissionFactory(
        patient=PatientFactory(site=site_a, study_id="CT-001"), status=SectionStatus.COMPLETE
    )
    assert stored() == {"CT-001": ADMISSION}
    admission.delete()
    assert stored() == {"CT-001": 0}


def test_saving_a_stale_copy_of_the_patient_keeps_the_stored_columns(site_a):
    patient = PatientFactory(site=site_a, study_id="CT-001")
    stale = Patient.objects.get(pk=patient.pk)
    AdmissionFactory(patient=patient, status=SectionStatus.COMPLETE)
    stale.age_years = 70
    stale.save()
    assert Patient.objects.values_list("age_years", "sections_complete").get() == (70, ADMISSION)


def test_an_import_stores_which_sections_are_complete(tmp_path, site_a, admin_user):
    rows = [row(study_id="T-001"), row(study_id="T-002", mrs_3m="")]
    path = write_csv(tmp_path, rows)
    assert registry_import(file=path, user=admin_user, filename=path.name).ok
    assert stored() == {"T-001": ALL_SECTIONS_COMPLETE, "T-002": ALL_SECTIONS_COMPLETE - FOLLOWUP}
    # Re-imported with the mRS moved from one patient to the other.
    rows = [row(study_id="T-001", mrs_3m=""), row(study_id="T-002")]
    path = write_csv(tmp_path, rows, name="again.csv")
    result = registry_import(file=path, user=admin_user, filename=path.name)
    assert result.ok and result.changed == 2
    assert stored() == {"T-001": ALL_SECTIONS_COMPLETE - FOLLOWUP, "T-002": ALL_SECTIONS_COMPLETE}
    assert_stored_agrees_with_the_definition()


def test_the_refresh_restores_every_column_as_the_data_migration_does(site_a):
    full_patient(site=site_a, study_id="CT-001")
    AdmissionFactory(
        patient=PatientFactory(site=site_a, study_id="CT-002"), status=SectionStatus.COMPLETE
    )
    Patient.objects.update(sections_complete=ALL_SECTIONS_COMPLETE)  # both wrong
    assert patients_refresh_stored(patient_model=Patient, fields=("sections_complete",)) == 2
    assert stored() == {"CT-001": 0, "CT-002": ADMISSION}
    assert_stored_agrees_with_the_definition()


def test_the_filter_keeps_patients_with_any_of_the_sections_incomplete(site_a):
    for study_id, bits in [("CT-1", ALL_SECTIONS_COMPLETE), ("CT-2", FOLLOWUP), ("CT-3", 0)]:
        PatientFactory(site=site_a, study_id=study_id)
        Patient.objects.filter(study_id=study_id).update(sections_complete=bits)

    def kept(keys):
        kept = patients_incomplete(Patient.objects.all(), keys)
        return sorted(kept.values_list("study_id", flat=True))

    assert kept(["followup"]) == ["CT-3"]
    assert kept(["admission"]) == ["CT-2", "CT-3"]
    assert kept(["admission", "followup"]) == ["CT-2", "CT-3"]
    assert kept([model.key for model in SECTION_MODELS]) == ["CT-2", "CT-3"]


def _other_site_indexes(cursor, keep: str) -> list[str]:
    """The patient table's plain indexes on its site, but ``keep`` (not constraints')."""
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'registry_patient' "
        "AND indexdef LIKE '%%(site_id%%' AND indexname <> %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        [keep],
    )
    return [name for (name,) in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner settings are PostgreSQL's")
def test_the_filter_can_read_the_partial_index(site_a):
    migration = importlib.import_module("registry.migrations.0010_patient_incomplete_idx")
    (index,) = [op.index for op in migration.Migration.operations if hasattr(op, "index")]
    for n in range(20):
        PatientFactory(site=site_a, study_id=f"CT-{n:03d}")
    query = patients_incomplete(Patient.objects.filter(site=site_a), ["followup"]).values("pk")
    with transaction.atomic(), connection.cursor() as cursor:
        # A few rows: the planner would scan them, or any index on the site, as its
        # statistics of the moment say. Without those choices (the other indexes
        # dropped inside this transaction, then restored by its rollback) it can read
        # the patients only through an index whose condition the query implies.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for other in _other_site_indexes(cursor, index.name):
            cursor.execute(f'DROP INDEX "{other}"')
        plan = query.explain()
        transaction.set_rollback(True)
    assert index.name in plan, plan
    assert query.count() == 20
