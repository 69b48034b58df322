"""Hand-built cohorts for the analytics tests: every count is known in advance."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from registry import rules, synthetic
from registry.models import SECTIONS_BY_KEY, Patient, patients_sections_written, section_of_field

from .factories import ONSET, TYPICAL, full_patient


def make_patient(site, *, age=63, sex="male", drop=(), study_id=None, **fields) -> Patient:
    """A full, valid patient of ``site`` with ``fields`` (interchange names) overridden.

    ``drop`` names sections to delete (e.g. ``("followup",)``: never filled in).
    """
    extra = {"study_id": study_id} if study_id else {}
    patient = full_patient(site=site, age_years=age, sex=sex, **extra)
    by_section = defaultdict(dict)
    for name in rules.RECORDED_WHEN_KNOWN - set(fields):
        # A quality-of-care time follows the time it is drawn after, as in the factories.
        spec = synthetic.FIELDS[name]
        if fields.get(spec.after) is not None and TYPICAL[name] is not None:
            fields[name] = fields[spec.after] + spec.typical
    for name, value in fields.items():
        by_section[section_of_field(name)][name] = value
    for model, values in by_section.items():
        model.objects.filter(pk=patient.pk).update(**values)
    for key in drop:
        SECTIONS_BY_KEY[key].objects.filter(pk=patient.pk).delete()
    # The updates above bypass Section.save(): store what they changed, as the writers do.
    patients_sections_written(patient_ids=[patient.pk])
    return patient


def posterior(**fields) -> dict:
    """Imaging values of a posterior-circulation patient (pc-ASPECTS, no DWI-ASPECTS)."""
    return {"circulation": "posterior", "dwi_aspects": None, "pc_aspects": 8, **fields}


def dead(**fields) -> dict:
    return {"mrs_3m": 6, "death_date": dt.date(2020, 7, 1), **fields}


def onset_hours(hours: float) -> dict:
    return {"door_time": ONSET + dt.timedelta(hours=hours)}


# The small cohort of site A (and two patients of site B that site A must never see).
# Patient: (study_id, age, sex, fields). Outcome mRS at 3 months drives Table I.
COHORT_A = [
    ("A-01", 75, "female", {"mrs_3m": 5, "smoking": True, **onset_hours(7)}),
    ("A-02", 72, "male", {"mrs_3m": 2}),
    ("A-03", 80, "female", {**posterior(pc_aspects=4), **dead()}),
    ("A-04", 50, "male", {"mrs_3m": 4, "dwi_aspects": 6, "smoking": True}),
    ("A-05", 55, "male", {**posterior(), "mrs_3m": 1, "stent_type": "balloon_expandable"}),
    ("A-06", 60, "female", {"mrs_3m": 0, "smoking": None}),
    ("A-07", 65, "male", {"mrs_3m": None}),
]
COHORT_A_NO_FOLLOWUP = ("A-08", 45, "male", {"ich": True, "sich": True})
COHORT_B = [
    ("B-01", 90, "female", {"mrs_3m": 5}),
    ("B-02", 91, "female", {"mrs_3m": 5}),
]


def build_cohort(site_a, site_b) -> dict[str, Patient]:
    made = {}
    for study_id, age, sex, fields in COHORT_A:
        made[study_id] = make_patient(site_a, study_id=study_id, age=age, sex=sex, **fields)
    study_id, age, sex, fields = COHORT_A_NO_FOLLOWUP
    made[study_id] = make_patient(
        site_a, study_id=study_id, age=age, sex=sex, drop=("followup",), **fields
    )
    for study_id, age, sex, fields in COHORT_B:
        made[study_id] = make_patient(site_b, study_id=study_id, age=age, sex=sex, **fields)
    return made


def bulk_cohort(site, n: int, prefix: str = "BULK") -> None:
    """``n`` varied, valid patients of ``site`` inserted with a handful of bulk queries
    (no history records: only for counting and timing tests)."""
    from .factories import (
        AdmissionFactory,
        ComplicationsFactory,
        FollowUpFactory,
        ImagingFactory,
        PatientFactory,
        ProcedureFactory,
    )

    patients = [
        PatientFactory.build(
            study_id=f"{prefix}-{i:05d}",
            site=site,
            age_years=30 + (i * 7) % 60,
            sex="female" if i % 3 == 0 else "male",
        )
        for i in range(n)
    ]
    Patient.objects.bulk_create(patients)
    patients = list(Patient.objects.filter(study_id__startswith=f"{prefix}-").order_by("pk"))
    sections = {model: [] for model in SECTIONS_BY_KEY.values()}
    for i, patient in enumerate(patients):
        is_posterior = i % 4 == 0
        mrs = i % 7
        sections[SECTIONS_BY_KEY["admission"]].append(
            AdmissionFactory.build(
                patient=patient,
                door_time=ONSET + dt.timedelta(hours=2 + i % 8),
                smoking=i % 2 == 0,
                diabetes=i % 5 == 0,
            )
        )
        sections[SECTIONS_BY_KEY["imaging"]].append(
            ImagingFactory.build(
                patient=patient,
                circulation="posterior" if is_posterior else "anterior",
                dwi_aspects=None if is_posterior else 5 + i % 6,
                pc_aspects=4 + i % 6 if is_posterior else None,
                mri_diagnosis="stenosis" if i % 6 == 0 else "occlusion",
                swi_clot=i % 3 != 0,
            )
        )
        sections[SECTIONS_BY_KEY["procedure"]].append(
            ProcedureFactory.build(
                patient=patient,
                stent_type="self_expanding" if i % 3 else "balloon_expandable",
                dapt_loading=i % 9 != 0,
            )
        )
        sections[SECTIONS_BY_KEY["complications"]].append(
            ComplicationsFactory.build(patient=patient, new_infarct=i % 11 == 0)
        )
        sections[SECTIONS_BY_KEY["followup"]].append(
            FollowUpFactory.build(
                patient=patient,
                mrs_3m=mrs,
                death_date=dt.date(2020, 7, 1) if mrs == 6 else None,
                rehabilitation=i % 8 != 0,
            )
        )
    for model, objects in sections.items():
        model.objects.bulk_create(objects)
    patients_sections_written(patient_ids=[patient.pk for patient in patients])
