"""Every clinical rule of the model, valid and invalid, by full_clean and by the database.

The database path (a queryset ``update()`` skips ``full_clean``) proves a bad value
cannot enter by any route: the check constraints refuse it.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry import rules
from registry.choices import SectionStatus
from registry.models import Patient, section_of_field

from .factories import (
    ONSET,
    AdmissionFactory,
    ComplicationsFactory,
    FollowUpFactory,
    ImagingFactory,
    PatientFactory,
    ProcedureFactory,
    SiteFactory,
    full_patient,
)

pytestmark = pytest.mark.django_db

FACTORIES = {
    "admission": AdmissionFactory,
    "imaging": ImagingFactory,
    "procedure": ProcedureFactory,
    "complications": ComplicationsFactory,
    "followup": FollowUpFactory,
}

# Values a field needs around it for its own range to be the only question.
RANGE_CONTEXT = {
    "pc_aspects": {"circulation": "posterior", "dwi_aspects": None},
    "mrs_3m": {"death_date": None},
}
SECTION_RANGES = [name for name in rules.RANGES if name != "age_years"]


def section_with(field: str, **values):
    """A valid saved section holding ``field``, with ``values`` set in memory only."""
    model = section_of_field(field)
    section = FACTORIES[model.key](**RANGE_CONTEXT.get(field, {}))
    for name, value in values.items():
        setattr(section, name, value)
    return section


def unsaved_patient(**values) -> Patient:
    return PatientFactory.build(site=SiteFactory(), **values)


def errors_of(instance) -> dict:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def assert_database_refuses(model, pk, **values):
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=pk).update(**values)


def _death_for_mrs(field, value):
    # mRS 6 at 3 months needs a death date, so the bound can be tested alone.
    if field == "mrs_3m" and value == 6:
        return {"death_date": dt.date(2020, 8, 1)}
    return {}


# --- Single-field ranges (rules.RANGES) ----------------------------------------------


@pytest.mark.parametrize("field", SECTION_RANGES)
def test_each_range_accepts_both_of_its_bounds(field):
    low, high = rules.RANGES[field]
    for value in (low, high):
        section = section_with(field, **{field: value, **_death_for_mrs(field, value)})
        section.full_clean()


@pytest.mark.parametrize("field", SECTION_RANGES)
def test_each_range_refuses_a_value_just_outside_it_by_full_clean(field):
    low, high = rules.RANGES[field]
    for value in (low - 1, high + 1):
        if value < 0:
            continue  # the positive integer field refuses it before the range does
        assert field in errors_of(section_with(field, **{field: value}))


@pytest.mark.parametrize("field", SECTION_RANGES)
def test_each_range_refuses_a_value_just_outside_it_in_the_database(field):
    low, high = rules.RANGES[field]
    section = section_with(field)
    for value in (low - 1, high + 1):
        extra = _death_for_mrs(field, value)
        assert_database_refuses(type(section), section.pk, **{field: value, **extra})


def test_negative_values_are_refused_by_full_clean():
    assert "nihss_admission" in errors_of(section_with("nihss_admission", nihss_admission=-1))


def test_patient_age_must_be_between_18_and_120():
    unsaved_patient(age_years=18).full_clean()
    unsaved_patient(age_years=120, study_id="P-OLD").full_clean()
    assert "age_years" in errors_of(unsaved_patient(age_years=17))
    assert "age_years" in errors_of(unsaved_patient(age_years=121))
    patient = PatientFactory()
    assert_database_refuses(Patient, patient.pk, age_years=17)
    assert_database_refuses(Patient, patient.pk, age_years=121)


def test_study_id_allows_only_letters_digits_and_hyphens():
    unsaved_patient(study_id="CT-001").full_clean()
    assert "study_id" in errors_of(unsaved_patient(study_id="CT 001"))
    patient = PatientFactory()
    assert_database_refuses(Patient, patient.pk, study_id="CT/001")


# --- Category codes --------------------------------------------------------------------

CODED = [
    ("imaging", "circulation", "anterior"),
    ("imaging", "mri_diagnosis", "stenosis"),
    ("imaging", "mri_site", "ba"),
    ("procedure", "anesthesia", "sedation"),
    ("procedure", "dsa_diagnosis", "stenosis"),
    ("procedure", "dsa_site", "va_intra"),
    ("procedure", "mt_technique", "combined"),
    ("procedure", "mtici_after_mt", "2b"),
    ("procedure", "stent_type", "balloon_expandable"),
    ("procedure", "final_mtici", "2c"),
    ("followup", "followup_method", "clinic"),
]


@pytest.mark.parametrize(("section", "field", "code"), CODED)
def test_each_category_accepts_its_codes_and_refuses_others(section, field, code):
    record = FACTORIES[section](**{field: code})
    record.full_clean()
    setattr(record, field, "unknown")
    assert field in errors_of(record)
    assert_database_refuses(type(record), record.pk, **{field: "unknown"})


def test_sex_accepts_only_male_or_female():
    assert "sex" in errors_of(unsaved_patient(sex="other"))
    patient = PatientFactory(sex="female")
    assert_database_refuses(Patient, patient.pk, sex="other")


# --- Branching (rules.BRANCHING) -------------------------------------------------------


def test_dwi_aspects_is_accepted_for_anterior_circulation():
    ImagingFactory(circulation="anterior", dwi_aspects=7).full_clean()


def test_dwi_aspects_is_refused_for_posterior_circulation():
    imaging = ImagingFactory(circulation="anterior", dwi_aspects=7)
    imaging.circulation = "posterior"
    assert "dwi_aspects" in errors_of(imaging)
    assert_database_refuses(type(imaging), imaging.pk, circulation="posterior")


def test_pc_aspects_is_accepted_for_posterior_circulation():
    ImagingFactory(circulation="posterior", dwi_aspects=None, pc_aspects=6).full_clean()


def test_pc_aspects_is_refused_for_anterior_circulation():
    imaging = ImagingFactory(circulation="anterior")
    imaging.pc_aspects = 6
    assert "pc_aspects" in errors_of(imaging)
    assert_database_refuses(type(imaging), imaging.pk, pc_aspects=7)


@pytest.mark.parametrize("field", ["mt_technique", "mt_passes", "mtici_after_mt"])
@pytest.mark.parametrize("mt_performed", [False, None])
def test_mt_details_are_refused_unless_mt_was_performed(field, mt_performed):
    procedure = ProcedureFactory(mt_performed=True)
    procedure.full_clean()
    procedure.mt_performed = mt_performed
    assert field in errors_of(procedure)
    assert_database_refuses(type(procedure), procedure.pk, mt_performed=mt_performed)


@pytest.mark.parametrize("field", ["mt_technique", "mt_passes", "mtici_after_mt"])
def test_mt_details_are_refused_by_full_clean_when_mt_is_not_recorded(field):
    procedure = ProcedureFactory(mt_performed=True)
    procedure.mt_performed = None
    assert field in errors_of(procedure)


def test_only_ris_without_mt_details_is_valid():
    ProcedureFactory(
        mt_performed=False, mt_technique=None, mt_passes=None, mtici_after_mt=None
    ).full_clean()


# --- Rules within a section --------------------------------------------------------------


def test_sich_requires_ich():
    ComplicationsFactory(ich=True, sich=True).full_clean()
    complications = ComplicationsFactory(ich=False, sich=False)
    complications.sich = True
    assert "sich" in errors_of(complications)
    assert_database_refuses(type(complications), complications.pk, sich=True)


def test_procedure_end_must_be_after_groin_puncture():
    procedure = ProcedureFactory()
    procedure.procedure_end_time = procedure.groin_puncture_time
    assert "procedure_end_time" in errors_of(procedure)
    assert_database_refuses(
        type(procedure), procedure.pk, procedure_end_time=procedure.groin_puncture_time
    )


def test_door_time_equal_to_onset_is_valid():
    AdmissionFactory(door_time=ONSET).full_clean()


def test_door_time_before_onset_is_refused():
    admission = AdmissionFactory()
    admission.door_time = ONSET - dt.timedelta(minutes=1)
    assert "door_time" in errors_of(admission)
    assert_database_refuses(type(admission), admission.pk, door_time=ONSET - dt.timedelta(hours=1))


def test_mrs_6_at_three_months_requires_a_death_date():
    FollowUpFactory(mrs_3m=6, death_date=dt.date(2020, 7, 1)).full_clean()
    followup = FollowUpFactory(mrs_3m=5)
    followup.mrs_3m = 6
    assert "mrs_3m" in errors_of(followup)
    assert_database_refuses(type(followup), followup.pk, mrs_3m=6)


# --- Rules across sections -----------------------------------------------------------------


def test_groin_puncture_before_door_is_refused_on_the_procedure():
    admission = AdmissionFactory()
    procedure = ProcedureFactory.build(
        patient=admission.patient, groin_puncture_time=admission.door_time - dt.timedelta(hours=1)
    )
    errors = errors_of(procedure)
    assert "Groin puncture time must not be before door time." in errors["groin_puncture_time"]


def test_door_moved_after_groin_puncture_is_refused_on_the_admission():
    patient = full_patient()
    admission = patient.admission
    admission.door_time = patient.procedure.groin_puncture_time + dt.timedelta(minutes=5)
    assert "door_time" in errors_of(admission)


def test_groin_puncture_at_door_time_is_valid():
    admission = AdmissionFactory()
    ProcedureFactory.build(
        patient=admission.patient,
        groin_puncture_time=admission.door_time,
        procedure_end_time=admission.door_time + dt.timedelta(minutes=30),
    ).full_clean()


def test_discharge_before_the_door_date_is_refused():
    admission = AdmissionFactory()
    complications = ComplicationsFactory.build(
        patient=admission.patient, discharge_date=dt.date(2020, 5, 31)
    )
    assert "discharge_date" in errors_of(complications)


def test_discharge_on_the_door_date_is_valid():
    admission = AdmissionFactory()
    ComplicationsFactory.build(
        patient=admission.patient, discharge_date=dt.date(2020, 6, 1)
    ).full_clean()


def test_follow_up_on_the_discharge_date_is_refused():
    complications = ComplicationsFactory()
    followup = FollowUpFactory.build(
        patient=complications.patient, followup_date=complications.discharge_date
    )
    assert "followup_date" in errors_of(followup)


def test_death_before_the_door_date_is_refused():
    admission = AdmissionFactory()
    followup = FollowUpFactory.build(
        patient=admission.patient, mrs_3m=6, death_date=dt.date(2020, 5, 1)
    )
    assert "death_date" in errors_of(followup)


def test_death_by_follow_up_without_mrs_6_is_refused():
    followup = FollowUpFactory.build(
        patient=PatientFactory(), mrs_3m=4, death_date=dt.date(2020, 8, 1)
    )
    assert "mrs_3m" in errors_of(followup)


def test_death_after_the_follow_up_without_mrs_6_is_valid():
    FollowUpFactory.build(
        patient=PatientFactory(), mrs_3m=4, death_date=dt.date(2020, 10, 1)
    ).full_clean()


def test_mrs_6_with_a_death_after_the_follow_up_is_refused():
    followup = FollowUpFactory.build(
        patient=PatientFactory(), mrs_3m=6, death_date=dt.date(2020, 10, 1)
    )
    assert "mrs_3m" in errors_of(followup)


def test_a_whole_consistent_patient_is_valid():
    patient = full_patient()
    for section in patient.sections().values():
        section.full_clean()


# --- Completeness ----------------------------------------------------------------------------


def test_complete_requires_every_applicable_field():
    admission = AdmissionFactory(diabetes=None)
    admission.status = SectionStatus.COMPLETE
    errors = errors_of(admission)
    assert list(errors) == ["diabetes"]


def test_draft_accepts_blank_fields():
    AdmissionFactory(diabetes=None, nihss_admission=None).full_clean()


def test_complete_does_not_require_mt_details_when_mt_was_not_performed():
    procedure = ProcedureFactory(
        mt_performed=False, mt_technique=None, mt_passes=None, mtici_after_mt=None
    )
    procedure.status = SectionStatus.COMPLETE
    procedure.full_clean()


def test_complete_requires_mt_details_when_mt_was_performed():
    procedure = ProcedureFactory(mt_performed=True, mt_passes=None)
    procedure.status = SectionStatus.COMPLETE
    assert list(errors_of(procedure)) == ["mt_passes"]


def test_complete_requires_the_aspects_of_the_patients_circulation_only():
    imaging = ImagingFactory(circulation="posterior", dwi_aspects=None, pc_aspects=None)
    imaging.status = SectionStatus.COMPLETE
    assert list(errors_of(imaging)) == ["pc_aspects"]
    imaging.pc_aspects = 8
    imaging.full_clean()


def test_complete_does_not_require_a_death_date_for_a_living_patient():
    followup = FollowUpFactory(mrs_3m=2, death_date=None)
    followup.status = SectionStatus.COMPLETE
    followup.full_clean()


def test_database_refuses_sich_when_ich_is_not_recorded():
    complications = ComplicationsFactory(ich=False, sich=False)
    assert_database_refuses(type(complications), complications.pk, ich=None, sich=True)


def test_database_refuses_dwi_aspects_when_circulation_is_not_recorded():
    imaging = ImagingFactory(circulation="anterior", dwi_aspects=7)
    assert_database_refuses(type(imaging), imaging.pk, circulation=None)
