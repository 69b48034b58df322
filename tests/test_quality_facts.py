"""Each patient's stored quality facts (``registry.models.QualityFacts``) follow the
sections they come from, whichever way the sections are written."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from analytics import datasets, quality
from analytics import indicators as qi
from registry.choices import SectionStatus
from registry.models import (
    SECTION_MODELS,
    Admission,
    FollowUp,
    Patient,
    Procedure,
    QualityFacts,
    bulk,
)

from .analytics_cohort import make_patient
from .drawn_cohort import awkward_cohort
from .factories import aware
from .test_bulk import patient, section

pytestmark = pytest.mark.django_db


def stored() -> dict[int, tuple]:
    return {row[0]: row[1:] for row in QualityFacts.objects.values_list("pk", *quality.facts())}


def computed() -> dict[int, tuple]:
    """The facts as their definitions give them from the sections now."""
    expressions = quality.facts()
    rows = Patient.objects.annotate(**expressions).values_list("pk", *expressions)
    return {row[0]: row[1:] for row in rows}


def facts_of(patient_) -> dict:
    return QualityFacts.objects.filter(pk=patient_.pk).values(*quality.facts()).get()


def test_the_model_keeps_one_interval_per_time_indicator_and_every_fact():
    columns = {f.column for f in QualityFacts._meta.concrete_fields} - {"patient_id"}
    assert columns == set(quality.facts())
    assert {f"s_{i.code}" for i in qi.TIME_INDICATORS} < columns


def test_a_cohort_written_in_bulk_has_the_facts_its_sections_give():
    awkward_cohort()
    assert len(stored()) == Patient.objects.count() > 100
    assert stored() == computed()


def test_saving_a_section_writes_the_patients_facts_again(site_a):
    awkward_cohort()
    admission = Admission.objects.exclude(door_time=None).exclude(imaging_time=None).first()
    before = facts_of(admission.patient)
    admission.door_time -= dt.timedelta(minutes=10)
    admission.save()
    after = facts_of(admission.patient)
    assert after["s_door_to_imaging"] == before["s_door_to_imaging"] + 600
    assert stored() == computed()


def test_deleting_a_section_writes_the_patients_facts_again():
    awkward_cohort()
    procedure = Procedure.objects.exclude(groin_puncture_time=None).first()
    owner = procedure.patient
    assert facts_of(owner)["s_door_to_groin"] is not None
    procedure.delete()
    assert facts_of(owner)["s_door_to_groin"] is None
    assert stored() == computed()


def test_deleting_a_patient_deletes_its_facts(site_a):
    gone = make_patient(site_a, study_id="GONE-1")
    assert gone.pk in stored()
    for model in SECTION_MODELS:
        model.objects.filter(patient=gone).delete()
    gone.delete()
    assert gone.pk not in stored()


def test_the_bulk_writer_writes_the_facts_of_new_patients_and_of_those_it_updates(
    site_a, admin_user
):
    door = aware(2024, 2, 1, 8, 0)
    admission = section(Admission, onset_time=door - dt.timedelta(hours=2), door_time=door)
    procedure = section(
        Procedure, groin_puncture_time=door + dt.timedelta(minutes=70), final_mtici="2b"
    )
    attribution = bulk.Attribution(user=admin_user, reason="import of x.csv")
    with bulk.writing(attribution=attribution) as writer:
        writer.patients_insert(
            patients=[
                bulk.NewPatient(
                    patient("N-1", site_a), {Admission: admission, Procedure: procedure}
                ),
                bulk.NewPatient(patient("N-2", site_a)),
            ]
        )
    first = Patient.objects.get(study_id="N-1")
    assert facts_of(first)["s_door_to_groin"] == 70 * 60
    followup = section(FollowUp, status=SectionStatus.COMPLETE, mrs_3m=1, patient_id=first.pk)
    with bulk.writing(attribution=attribution) as writer:
        writer.insert(model=FollowUp, records=[followup])
    recorded = 1 << list(quality.MASKS).index("mrs_3m_recorded")
    assert facts_of(first)["conditions"] & recorded
    stored_admission = Admission.objects.get(patient=first)
    changed = section(
        Admission,
        patient_id=first.pk,
        onset_time=stored_admission.onset_time,
        door_time=door + dt.timedelta(minutes=10),
        version=2,
    )
    with bulk.writing(attribution=attribution) as writer:
        writer.update(model=Admission, records=[changed])
    assert facts_of(first)["s_door_to_groin"] == 60 * 60
    assert stored() == computed()


def test_refresh_facts_writes_again_the_rows_changed_by_hand():
    awkward_cohort()
    QualityFacts.objects.update(conditions=0, s_door_to_groin=None)
    QualityFacts.objects.filter(pk__in=list(stored())[:5]).delete()
    assert stored() != computed()
    call_command("quality_indicators", "--refresh-facts", stdout=io.StringIO())
    assert stored() == computed()


def test_the_indicators_count_a_patient_whose_facts_row_is_missing_as_having_no_section(
    site_a,
):
    awkward_cohort()
    QualityFacts.objects.all().delete()
    cols = quality.columns(quality.read(None, None))
    assert len(cols.pk) == datasets.patients(None, None).count() > 100
    assert not any(mask.any() for mask in cols.masks.values())
