"""Derived values: each threshold at its boundary, and missing inputs give missing."""

import datetime as dt

import pytest

from registry.derived import derived_values

from .factories import ONSET, AdmissionFactory, FollowUpFactory, PatientFactory, ProcedureFactory

pytestmark = pytest.mark.django_db


def test_onset_exactly_six_hours_is_not_over_six_hours():
    admission = AdmissionFactory(door_time=ONSET + dt.timedelta(hours=6))
    assert derived_values(admission.patient)["onset_over_6h"] is False


def test_onset_one_second_past_six_hours_is_over_six_hours():
    admission = AdmissionFactory(door_time=ONSET + dt.timedelta(hours=6, seconds=1))
    assert derived_values(admission.patient)["onset_over_6h"] is True


def test_onset_over_six_hours_is_missing_without_onset_time():
    admission = AdmissionFactory(onset_time=None)
    assert derived_values(admission.patient)["onset_over_6h"] is None


def test_procedure_of_sixty_minutes_is_not_over_sixty_minutes():
    procedure = ProcedureFactory(
        procedure_end_time=ProcedureFactory.groin_puncture_time + dt.timedelta(minutes=60)
    )
    values = derived_values(procedure.patient)
    assert values["procedure_over_60min"] is False
    assert values["procedure_duration"] == dt.timedelta(minutes=60)


@pytest.mark.parametrize(
    ("mrs", "poor", "non_poor", "good", "death"),
    [(2, False, True, True, False), (3, False, True, False, False), (4, True, False, False, False)],
)
def test_outcome_categories_follow_mrs_at_three_months(mrs, poor, non_poor, good, death):
    followup = FollowUpFactory(mrs_3m=mrs)
    values = derived_values(followup.patient)
    assert (values["poor_outcome_3m"], values["non_poor_3m"]) == (poor, non_poor)
    assert (values["good_outcome_3m"], values["death_3m"]) == (good, death)


def test_age_seventy_is_seventy_plus():
    assert derived_values(PatientFactory(age_years=70))["age_70_plus"] is True
    assert derived_values(PatientFactory(age_years=69))["age_70_plus"] is False
