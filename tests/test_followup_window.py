"""The 3-month window enforced where the number is born (the mRS interview) and counted
in the study tables, with a strict sensitivity analysis."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from analytics.datasets import Filters
from analytics.tables import study_tables
from registry import smrs
from registry.models import FollowUp, MrsInterview
from registry.workflow import services as workflow

from .factories import AdmissionFactory, ComplicationsFactory, PatientFactory, aware, full_patient

pytestmark = pytest.mark.django_db

ONSET = aware(2026, 1, 10, 9, 0)


@pytest.fixture
def discharged(site_a):
    patient = PatientFactory(site=site_a, study_id="WIN-1")
    AdmissionFactory(patient=patient, onset_time=ONSET, door_time=ONSET + dt.timedelta(hours=2))
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2026, 1, 20), discharge_mrs=3)
    return patient


def interview(patient, nurse, day, **kwargs):
    return workflow.mrs_interview_record(
        user=nurse,
        patient=patient,
        answers=smrs.answers_for_score(2),
        interview_date=day,
        respondent="patient",
        **kwargs,
    )


def test_an_interview_17_days_after_onset_is_refused_without_a_reason(discharged, nurse):
    with pytest.raises(ValidationError) as refused:
        interview(discharged, nurse, dt.date(2026, 1, 27))
    assert "outside the 3-month window (2026-03-27 to 2026-04-24)" in str(refused.value)
    assert not MrsInterview.objects.exists()
    assert not FollowUp.objects.filter(patient=discharged).exists()


def test_an_out_of_window_interview_confirmed_with_a_reason_is_kept_with_the_reason(
    discharged, nurse
):
    interview(discharged, nurse, dt.date(2026, 1, 27), out_of_window_reason="Moving abroad")
    assert FollowUp.objects.get(patient=discharged).mrs_3m == 2
    confirmation = discharged.warning_confirmations.get()
    assert (confirmation.code, confirmation.reason) == ("followup_out_of_window", "Moving abroad")


def test_an_interview_inside_the_window_needs_no_reason(discharged, nurse):
    interview(discharged, nurse, dt.date(2026, 4, 10))
    assert FollowUp.objects.get(patient=discharged).followup_date == dt.date(2026, 4, 10)


def test_the_questionnaire_does_not_start_before_the_window_without_a_reason(
    client, discharged, nurse
):
    recent = PatientFactory(site=discharged.site, study_id="WIN-2")
    onset = timezone.now() - dt.timedelta(days=17)
    AdmissionFactory(patient=recent, onset_time=onset, door_time=onset + dt.timedelta(hours=2))
    client.force_login(nurse)
    url = reverse("registry:mrs_interview", args=[recent.pk])
    gate = client.get(url).content.decode()
    assert "The 3-month window opens on" in gate
    assert "Has the patient died" not in gate
    started = client.get(url, {"oow_start": "1", "oow_reason": "Moving abroad"}).content.decode()
    assert "Has the patient died" in started
    assert 'name="oow_reason" value="Moving abroad"' in started


def test_the_finish_step_has_no_interview_date_of_today_before_the_window(discharged):
    from registry.workflow.forms import InterviewFinishForm

    due = workflow.followup_due(discharged)
    early = InterviewFinishForm(due=due, today=dt.date(2026, 1, 27))
    assert early.fields["interview_date"].initial is None
    inside = InterviewFinishForm(due=due, today=dt.date(2026, 4, 10))
    assert inside.fields["interview_date"].initial == dt.date(2026, 4, 10)


# --- the study tables ------------------------------------------------------------------------


def early_followup(patient, mrs):
    followup = patient.followup
    followup.followup_date = patient.admission.onset_time.date() + dt.timedelta(days=17)
    followup.mrs_3m = mrs
    followup.death_date = followup.followup_date if mrs == 6 else None
    followup.save()


def test_the_study_tables_count_the_followups_in_and_out_of_the_window(site_a):
    early = full_patient(site=site_a, study_id="EARLY-17")
    early_followup(early, 5)
    for number in range(2):
        full_patient(site=site_a, study_id=f"IN-{number}")
    result = study_tables()
    assert result["followup"] == {"in_window": 2, "out_of_window": 1, "window_days": 14}
    # As the study did: the out-of-window mRS counts.
    assert result["outcomes"]["mrs_missing"]["month3"] == 0


def test_the_strict_window_counts_an_out_of_window_mrs_as_missing(site_a):
    early = full_patient(site=site_a, study_id="EARLY-17")
    early_followup(early, 5)
    full_patient(site=site_a, study_id="IN-0")
    recorded = study_tables()
    strict = study_tables(filters=Filters(followup_window="strict"))
    assert strict["followup"] == recorded["followup"]
    assert strict["outcomes"]["mrs_missing"]["month3"] == 1
    assert recorded["table1"] != strict["table1"]


def test_the_command_takes_the_strict_window(site_a, capsys):
    import json

    early = full_patient(site=site_a, study_id="EARLY-17")
    early_followup(early, 5)
    call_command("study_tables", "--followup-window", "strict")
    result = json.loads(capsys.readouterr().out)
    assert result["followup"]["out_of_window"] == 1
    assert result["outcomes"]["mrs_missing"]["month3"] == 1
