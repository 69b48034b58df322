"""registry/synthetic.py: every column declared once, the typical patient valid and
complete, and a drawn cohort (the benchmarks') valid under every model rule."""

import datetime as dt

import numpy as np
import pytest

from analytics import datasets
from registry import rules, synthetic
from registry.choices import SectionStatus
from registry.interchange import columns as interchange
from registry.models import (
    ALL_SECTIONS_COMPLETE,
    SECTION_MODELS,
    Patient,
    PatientExclusion,
    ScreeningEntry,
)

from .drawn_cohort import write
from .factories import full_patient


def test_every_interchange_column_is_declared_in_contract_order():
    # A field added to a model is an interchange column: declare how it is drawn.
    assert tuple(synthetic.FIELDS) == interchange.column_names()


def test_a_time_is_declared_after_a_column_that_comes_before_it():
    names = list(synthetic.FIELDS)
    for name, spec in synthetic.FIELDS.items():
        if spec.after:
            assert names.index(spec.after) < names.index(name), name


@pytest.mark.django_db
def test_the_typical_patient_is_valid_and_complete():
    patient = full_patient()
    patient.full_clean()
    for section in patient.sections().values():
        section.status = SectionStatus.COMPLETE
        section.full_clean()


def test_a_plan_overrides_columns_and_the_rest_is_the_typical_patient():
    onset = dt.datetime(2021, 3, 1, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    row = synthetic.row(circulation="posterior", onset_time=onset, mt_performed=False)
    typical = synthetic.row()
    assert row["hypertension"] == typical["hypertension"]
    # Times follow the planned onset at the typical delays; dates are hospital dates.
    assert row["door_time"] == onset + (typical["door_time"] - typical["onset_time"])
    assert row["discharge_date"] == dt.date(2021, 3, 13)
    # Branching: only the posterior score, no MT details.
    assert (row["dwi_aspects"], row["pc_aspects"]) == (None, synthetic.FIELDS["pc_aspects"].typical)
    assert row["mt_technique"] is row["mt_passes"] is row["mtici_after_mt"] is None


def test_a_plan_naming_no_column_is_refused():
    with pytest.raises(ValueError, match="not interchange columns: nihss"):
        synthetic.row(nihss=12)


@pytest.mark.django_db
def test_a_drawn_cohort_passes_full_clean_and_its_flow_chart_adds_up():
    write(synthetic.draw(np.random.default_rng(7), 400, sites=("S001", "S002", "S003")))
    # Every patient, section, screening entry and exclusion through full_clean().
    patients = Patient.objects.select_related("site", *(m.key for m in SECTION_MODELS))
    for patient in patients:
        patient.full_clean()
        for section in patient.sections().values():
            if section is not None:
                section.full_clean()
    for record in [*ScreeningEntry.objects.all(), *PatientExclusion.objects.all()]:
        record.full_clean()
    assert Patient.objects.count() == 400
    assert ScreeningEntry.objects.filter(patient__isnull=False).count() == 400
    assert ScreeningEntry.objects.count() == 400 + 60  # 15 % screened, not enrolled
    flow = datasets.flow()
    assert flow["enrolled_without_screening"] == 0
    assert flow["excluded_at_screening"]["total"] == 48  # 12 % of 400
    assert flow["consent_refused"] == 12  # 3 %
    excluded = PatientExclusion.objects.filter(active=True, reason="lost_to_followup").count()
    assert 0 < excluded == flow["excluded_after_enrolment"]["total"]
    # Some follow-ups not yet due or lost, some sections left incomplete, as in real
    # registries (the worklist and the list's "section incomplete" filter have work).
    assert 0 < Patient.objects.filter(mrs_3m_missing=True).count() < 400
    incomplete = Patient.objects.exclude(sections_complete=ALL_SECTIONS_COMPLETE).count()
    assert 0 < incomplete < 400


def test_a_drawn_cohort_has_plausible_times_and_keeps_to_its_ranges():
    cohort = synthetic.draw(np.random.default_rng(1), 20_000, sites=("S001", "S002"))
    minutes = {
        "onset to door": cohort["door_time"] - cohort["onset_time"],
        "door to groin": cohort["groin_puncture_time"] - cohort["door_time"],
        "procedure": cohort["procedure_end_time"] - cohort["groin_puncture_time"],
    }
    medians = {name: float(np.median(d.astype(int))) for name, d in minutes.items()}
    assert 180 < medians["onset to door"] < 300
    assert 45 < medians["door to groin"] < 75
    assert 55 < medians["procedure"] < 85
    for name, (low, high) in rules.RANGES.items():
        recorded = cohort[name][~cohort.blank[name]]
        assert low <= recorded.min() and recorded.max() <= high, name
