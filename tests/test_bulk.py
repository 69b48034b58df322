"""registry.models.bulk: the one writer of records in bulk (the import, the benchmark
cohort) writes every column of its tables and their history, as ``save()`` and
simple-history would, on SQLite and on PostgreSQL."""

import datetime as dt
import itertools

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import F

from registry.choices import SectionStatus
from registry.models import (
    ALL_SECTIONS_COMPLETE,
    SECTION_MODELS,
    Admission,
    FollowUp,
    Patient,
    PatientExclusion,
    ScreeningEntry,
    bulk,
    mrs_3m_missing,
    section_bit,
    sections_complete,
)
from registry.models.crf import section_has

from .factories import PatientFactory

WRITTEN = (Patient, *SECTION_MODELS, ScreeningEntry, PatientExclusion)
ONSET = dt.datetime(2020, 6, 1, 1, 0, tzinfo=dt.UTC)
DOOR = dt.datetime(2020, 6, 1, 5, 30, 15, 250, tzinfo=dt.UTC)


def concrete(model) -> set[str]:
    return {f.attname for f in model._meta.concrete_fields}


def patient(study_id: str, site, **values) -> dict:
    record = {"study_id": study_id, "site_id": site.pk, "sex": "male", "age_years": 60}
    return {"created_by_id": None, **record, **values}


def section(model, *, status=SectionStatus.DRAFT, **values) -> dict:
    """A record of ``model`` with every column blank but those given."""
    record = dict.fromkeys(bulk.record_columns(model))
    record.update(status=status, version=1)
    return {**record, **values}


# ---------------------------------------------------------------- every column


@pytest.mark.parametrize("model", WRITTEN, ids=lambda model: model.__name__)
def test_the_writer_writes_every_column_of_the_model_and_of_its_history(model):
    numbered = {model._meta.pk.attname} if isinstance(model._meta.pk, models.AutoField) else set()
    assert set(bulk.columns(model)) | numbered == concrete(model)
    history = model.history.model
    assert set(bulk.history_columns(model)) | {history._meta.pk.attname} == concrete(history)
    assert bulk.unwritten(model) == []


@pytest.mark.django_db
def test_a_field_the_writer_does_not_know_fails_the_comparison_and_the_writer(monkeypatch, site_a):
    nationality = models.CharField(max_length=20, default="")
    nationality.set_attributes_from_name("nationality")
    fields = (*Patient._meta.concrete_fields, nationality)
    monkeypatch.setattr(Patient._meta, "concrete_fields", fields)
    assert set(bulk.columns(Patient)) | {"id"} != concrete(Patient)
    assert bulk.unwritten(Patient) == ["nationality"]
    with pytest.raises(ImproperlyConfigured), bulk.writing() as writer:
        writer.patients_insert(patients=[bulk.NewPatient(patient("B-1", site_a))])


def test_a_history_column_the_writer_does_not_know_fails_the_comparison(monkeypatch):
    history = Admission.history.model
    note = models.TextField(default="")
    note.set_attributes_from_name("history_note")
    monkeypatch.setattr(history._meta, "concrete_fields", (*history._meta.concrete_fields, note))
    assert bulk.unwritten(Admission) == ["HistoricalAdmission.history_note"]


# ---------------------------------------------------------------- writing


@pytest.mark.django_db
def test_new_patients_are_written_with_their_sections_stored_columns_and_history(
    site_a, admin_user
):
    admission = section(
        Admission,
        status=SectionStatus.COMPLETE,
        onset_time=ONSET,
        door_time=DOOR,
        hypertension=True,
        nihss_admission=18,
        completed_at=ONSET,
        completed_by_id=admin_user.pk,
    )
    followup = section(FollowUp, mrs_3m=2, followup_date=dt.date(2020, 9, 1))
    attribution = bulk.Attribution(user=admin_user, reason="import of x.csv")
    with bulk.writing(attribution=attribution) as writer:
        writer.patients_insert(
            patients=[
                bulk.NewPatient(
                    patient("B-1", site_a, created_by_id=admin_user.pk),
                    {Admission: admission, FollowUp: followup},
                ),
                bulk.NewPatient(patient("B-2", site_a, sex="female")),
            ]
        )
    stored = {p.study_id: p for p in Patient.objects.all()}
    assert [(p.sex, p.created_at, p.created_by) for p in stored.values()] == [
        ("male", writer.now, admin_user),
        ("female", writer.now, None),
    ]
    assert [(p.mrs_3m_missing, p.sections_complete) for p in stored.values()] == [
        (False, section_bit("admission")),
        (True, 0),
    ]
    written = Admission.objects.get(patient=stored["B-1"])
    assert (written.onset_time, written.door_time, written.hypertension) == (ONSET, DOOR, True)
    assert (written.nihss_admission, written.transfer, written.status) == (18, None, "complete")
    assert (written.completed_at, written.completed_by, written.updated_at) == (
        ONSET,
        admin_user,
        writer.now,
    )
    assert FollowUp.objects.values_list("followup_date", "mrs_3m").get() == (dt.date(2020, 9, 1), 2)
    for model in (Patient, Admission, FollowUp):
        rows = model.history.values_list(
            "history_type", "history_user", "history_change_reason", "history_date"
        )
        assert set(rows) == {("+", admin_user.pk, "import of x.csv", writer.now)}
    assert Patient.history.count() == 2
    assert Admission.history.values_list("onset_time", "door_time").get() == (ONSET, DOOR)


@pytest.mark.django_db
def test_keys_given_by_the_caller_are_written_and_the_database_numbers_on_after_them(site_a):
    with bulk.writing() as writer:
        writer.patients_insert(
            patients=[
                bulk.NewPatient(patient("B-1", site_a, id=1000), {Admission: section(Admission)})
            ]
        )
    assert Admission.objects.get().patient_id == 1000
    assert Patient.history.count() == Admission.history.count() == 0  # no attribution
    assert PatientFactory(site=site_a).pk > 1000


@pytest.mark.django_db
def test_sections_written_for_a_stored_patient_refresh_its_stored_columns(site_a, admin_user):
    stored = PatientFactory(site=site_a, study_id="CT-1")
    attribution = bulk.Attribution(user=admin_user, reason="import of x.csv")
    complete = section(FollowUp, status=SectionStatus.COMPLETE, mrs_3m=3, patient_id=stored.pk)
    with bulk.writing(attribution=attribution) as writer:
        writer.insert(model=FollowUp, records=[complete])
    assert Patient.objects.values_list("mrs_3m_missing", "sections_complete").get() == (
        False,
        section_bit("followup"),
    )
    reopened = section(FollowUp, mrs_3m=None, version=2, patient_id=stored.pk)
    with bulk.writing(attribution=attribution) as second:
        second.update(model=FollowUp, records=[reopened])
    assert Patient.objects.values_list("mrs_3m_missing", "sections_complete").get() == (True, 0)
    assert FollowUp.objects.values_list("status", "version", "updated_at").get() == (
        "draft",
        2,
        second.now,
    )
    history = FollowUp.history.order_by("history_id").values_list("history_type", "mrs_3m")
    assert list(history) == [("+", 3), ("~", None)]


@pytest.mark.django_db
def test_an_update_writes_the_columns_asked_and_the_whole_record_to_the_history(site_a, admin_user):
    stored = PatientFactory(site=site_a, study_id="CT-1", sex="male", age_years=50)
    record = {
        "id": stored.pk,
        "study_id": "CT-1",
        "site_id": site_a.pk,
        "sex": "female",
        "age_years": 51,
        "created_at": stored.created_at,
        "created_by_id": None,
    }
    with bulk.writing(attribution=bulk.Attribution(user=None, reason="fix")) as writer:
        writer.update(model=Patient, records=[record], columns=("age_years",))
    assert Patient.objects.values_list("sex", "age_years").get() == ("male", 51)
    last = stored.history.latest("history_id")
    assert (last.history_type, last.sex, last.age_years, last.created_at) == (
        "~",
        "female",
        51,
        stored.created_at,
    )


@pytest.mark.django_db
def test_nothing_is_written_when_the_block_fails(site_a):
    with pytest.raises(RuntimeError), bulk.writing() as writer:
        writer.patients_insert(patients=[bulk.NewPatient(patient("B-1", site_a))])
        raise RuntimeError("stop")
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_patients_are_inserted_only_with_their_sections(site_a):
    with pytest.raises(ValueError), bulk.writing() as writer:
        writer.insert(model=Patient, records=[patient("B-1", site_a)])


@pytest.mark.django_db
def test_screening_entries_are_numbered_by_the_database(site_a):
    entry = {
        "site_id": site_a.pk,
        "screening_date": dt.date(2020, 6, 1),
        "screening_number": "",
        "eligible": False,
        "exclusion_reason": "tandem_lesion",
        "consent_given_by": None,
        "consent_date": None,
        "patient_id": None,
        "note": "",
        "created_by_id": None,
    }
    with bulk.writing() as writer:
        writer.insert(model=ScreeningEntry, records=[entry, dict(entry)])
    assert ScreeningEntry.objects.filter(created_at=writer.now).count() == 2


# ---------------------------------------------------------------- stored columns


def pairwise_states(states: list) -> list[tuple]:
    """Four sections' states in which every two sections meet in every pair of states
    (the orthogonal array L9): 9 patients where all combinations would take 81."""
    size = len(states)
    return [
        tuple(states[i] for i in (a, b, (a + b) % size, (a + 2 * b) % size))
        for a, b in itertools.product(range(size), repeat=2)
    ]


@pytest.mark.django_db
def test_the_stored_columns_computed_for_new_patients_agree_with_their_sql_definitions(site_a):
    """Sections absent, draft or complete (and the follow-up's mRS recorded or not):
    the columns computed in Python equal those the SQL gives."""
    others = [model for model in SECTION_MODELS if model is not FollowUp]
    followups = [None, (SectionStatus.DRAFT, None), (SectionStatus.DRAFT, 3)]
    followups.append((SectionStatus.COMPLETE, 3))
    states = pairwise_states([None, SectionStatus.DRAFT, SectionStatus.COMPLETE])
    states.append((SectionStatus.COMPLETE,) * len(others))  # with a complete follow-up: all
    patients = []
    for number, (statuses, followup) in enumerate(itertools.product(states, followups)):
        sections = {m: section(m, status=s) for m, s in zip(others, statuses, strict=True) if s}
        if followup is not None:
            sections[FollowUp] = section(FollowUp, status=followup[0], mrs_3m=followup[1])
        patients.append(bulk.NewPatient(patient(f"B-{number}", site_a), sections))
    with bulk.writing() as writer:
        writer.patients_insert(patients=patients)
    wrong = Patient.objects.annotate(missing=mrs_3m_missing(), bits=sections_complete()).exclude(
        mrs_3m_missing=F("missing"), sections_complete=F("bits")
    )
    assert list(wrong.values_list("study_id", flat=True)) == []
    assert Patient.objects.count() == 10 * 4
    assert Patient.objects.filter(mrs_3m_missing=False).count() == 10 * 2
    assert Patient.objects.filter(sections_complete=ALL_SECTIONS_COMPLETE).count() == 1


def test_a_fact_without_a_python_form_is_refused():
    with pytest.raises(ValueError):
        section_has("followup", mrs_3m__gte=4)
