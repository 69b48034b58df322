"""Study workflow services: due dates and the worklist with a fixed ``today``, the
smRSq decision tree, the mRS interview, screening and enrolment, data queries and
record locks."""

import datetime as dt
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404

from registry import services, smrs
from registry.models import (
    ContactAttempt,
    DataQuery,
    FollowUp,
    MrsInterview,
    Patient,
    PatientExclusion,
    PatientLock,
    QueryStatus,
    ScreeningEntry,
)
from registry.workflow import services as workflow

from .factories import (
    PASSWORD,
    AdmissionFactory,
    ComplicationsFactory,
    PatientFactory,
    UserFactory,
    aware,
)

pytestmark = pytest.mark.django_db

# Onset 2026-01-10 in the registry's time zone: due 90 days later, 2026-04-10.
ONSET = aware(2026, 1, 10, 9, 0)
DUE = dt.date(2026, 4, 10)


def admitted(site, onset=ONSET, door=None, **kwargs):
    admission = AdmissionFactory(
        patient=PatientFactory(site=site, **kwargs),
        onset_time=onset,
        door_time=door or ((onset or ONSET) + dt.timedelta(hours=3)),
    )
    return admission.patient


# --- due date and window ------------------------------------------------------------


def test_followup_is_due_ninety_days_after_onset_with_a_fourteen_day_window(site_a):
    due = workflow.followup_due(admitted(site_a))
    assert (due.due, due.window_start, due.window_end) == (
        DUE,
        DUE - dt.timedelta(days=14),
        DUE + dt.timedelta(days=14),
    )
    assert due.from_door is False


def test_followup_counts_from_the_door_date_when_onset_is_unknown(site_a):
    due = workflow.followup_due(admitted(site_a, onset=None, door=aware(2026, 1, 12, 23, 30)))
    assert due.due == dt.date(2026, 4, 12)
    assert due.from_door is True


def test_onset_late_in_the_evening_counts_in_the_hospital_time_zone(site_a):
    # 23:30 in Ho Chi Minh City is 16:30 UTC the same day: the local date counts.
    due = workflow.followup_due(admitted(site_a, onset=aware(2026, 1, 10, 23, 30)))
    assert due.due == DUE


def test_followup_is_not_due_without_any_admission_time(site_a):
    assert workflow.followup_due(PatientFactory(site=site_a)) is None


def test_window_comes_from_the_setting(site_a, settings):
    settings.FOLLOWUP_WINDOW_DAYS = 7
    due = workflow.followup_due(admitted(site_a))
    assert due.window_end == DUE + dt.timedelta(days=7)


@pytest.mark.parametrize(
    ("today", "bucket"),
    [
        (DUE, "due_today"),
        (DUE - dt.timedelta(days=1), "this_week"),
        (DUE - dt.timedelta(days=7), "this_week"),
        (DUE - dt.timedelta(days=8), "later"),
        (DUE + dt.timedelta(days=1), "overdue"),
        (DUE + dt.timedelta(days=14), "overdue"),
        (DUE + dt.timedelta(days=15), "outside_window"),
    ],
)
def test_worklist_bucket_follows_today(site_a, nurse, today, bucket):
    patient = admitted(site_a)
    items = workflow.worklist(nurse, today)
    assert [i.patient for i in items[bucket]] == [patient]
    assert sum(len(v) for v in items.values()) == 1


def test_worklist_uses_the_local_date_when_today_is_not_given(site_a, nurse):
    patient = admitted(site_a)
    with mock.patch("registry.workflow.services.timezone.localdate", return_value=DUE):
        items = workflow.worklist(nurse)
    assert [i.patient for i in items["due_today"]] == [patient]


def test_worklist_shows_only_the_nurses_sites(site_a, site_b, nurse, nurse_b):
    mine = admitted(site_a)
    theirs = admitted(site_b)
    assert [i.patient for i in workflow.worklist(nurse, DUE)["due_today"]] == [mine]
    assert [i.patient for i in workflow.worklist(nurse_b, DUE)["due_today"]] == [theirs]


def test_admin_worklist_covers_every_site(site_a, site_b, admin_user):
    admitted(site_a)
    admitted(site_b)
    assert len(workflow.worklist(admin_user, DUE)["due_today"]) == 2


def test_monitor_reads_the_worklist_of_its_site_only(site_a, site_b, monitor):
    mine = admitted(site_a)
    admitted(site_b)
    assert [i.patient for i in workflow.worklist(monitor, DUE)["due_today"]] == [mine]


def test_worklist_leaves_out_patients_with_a_recorded_mrs_or_an_exclusion(site_a, nurse):
    done = admitted(site_a)
    FollowUp.objects.create(patient=done, mrs_3m=2, followup_date=DUE)
    excluded = admitted(site_a)
    PatientExclusion.objects.create(patient=excluded, reason="lost_to_followup", excluded_on=DUE)
    waiting = admitted(site_a)
    items = workflow.worklist(nurse, DUE)
    assert [i.patient for i in items["due_today"]] == [waiting]


def test_worklist_item_shows_the_last_attempt(site_a, nurse):
    patient = admitted(site_a)
    ContactAttempt.objects.create(patient=patient, attempt_date=DUE, outcome="no_answer")
    last = ContactAttempt.objects.create(
        patient=patient, attempt_date=DUE + dt.timedelta(days=1), outcome="wrong_number"
    )
    item = workflow.worklist(nurse, DUE + dt.timedelta(days=2))["overdue"][0]
    assert (item.last_attempt_date, item.last_attempt_label) == (last.attempt_date, "Wrong number")
    assert item.failed_attempts == 2


def test_worklist_takes_a_constant_number_of_queries(site_a, nurse, django_assert_num_queries):
    for _ in range(5):
        patient = admitted(site_a)
        ContactAttempt.objects.create(patient=patient, attempt_date=DUE, outcome="no_answer")
    with django_assert_num_queries(2):  # the nurse's site keys; patients, attempts as subqueries
        workflow.worklist(nurse, DUE)


def _fail(patient, *days):
    for day in days:
        ContactAttempt.objects.create(
            patient=patient, attempt_date=DUE + dt.timedelta(days=day), outcome="no_answer"
        )


def test_three_failed_attempts_past_the_window_propose_lost_to_followup(site_a, nurse):
    patient = admitted(site_a)
    _fail(patient, 0, 3, 10)
    item = workflow.worklist(nurse, DUE + dt.timedelta(days=15))["outside_window"][0]
    assert item.propose_lost is True


def test_three_failed_attempts_within_the_window_do_not_yet_propose_lost(site_a, nurse):
    patient = admitted(site_a)
    _fail(patient, 0, 3, 10)
    item = workflow.worklist(nurse, DUE + dt.timedelta(days=14))["overdue"][0]
    assert item.propose_lost is False


def test_two_failed_attempts_past_the_window_do_not_propose_lost(site_a, nurse):
    patient = admitted(site_a)
    _fail(patient, 0, 3)
    item = workflow.worklist(nurse, DUE + dt.timedelta(days=20))["outside_window"][0]
    assert item.propose_lost is False


def test_contact_attempt_is_logged_by_the_nurse_and_refused_to_the_monitor(site_a, nurse, monitor):
    patient = admitted(site_a)
    attempt = workflow.contact_attempt_log(
        user=nurse, patient=patient, outcome="reached", attempt_date=DUE
    )
    assert attempt.by == nurse
    assert attempt.history.first().history_user == nurse
    with pytest.raises(PermissionDenied):
        workflow.contact_attempt_log(user=monitor, patient=patient, outcome="reached")


def test_contact_attempt_in_the_future_is_refused(site_a, nurse):
    with pytest.raises(ValidationError):
        workflow.contact_attempt_log(
            user=nurse,
            patient=admitted(site_a),
            outcome="reached",
            attempt_date=dt.date.today() + dt.timedelta(days=3),
        )


# --- the smRSq decision tree ---------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "score"),
    [
        ({"dead": True}, 6),
        ({"dead": False, "constant_care": True}, 5),
        ({"dead": False, "constant_care": False, "needs_help_bodily": True}, 4),
        (
            {
                "dead": False,
                "constant_care": False,
                "needs_help_bodily": False,
                "needs_help_affairs": True,
            },
            3,
        ),
        (
            {
                "dead": False,
                "constant_care": False,
                "needs_help_bodily": False,
                "needs_help_affairs": False,
                "limited_activities": True,
            },
            2,
        ),
        (
            {
                "dead": False,
                "constant_care": False,
                "needs_help_bodily": False,
                "needs_help_affairs": False,
                "limited_activities": False,
                "symptoms": True,
            },
            1,
        ),
        ({key: False for key in smrs.QUESTION_KEYS}, 0),
    ],
)
def test_each_questionnaire_path_gives_its_score(answers, score):
    assert workflow.smrs_score(answers) == score
    assert smrs.next_question(answers) is None
    assert smrs.answers_for_score(score) == answers


def test_questionnaire_has_no_score_until_the_path_is_answered():
    assert workflow.smrs_score({"dead": False, "constant_care": False}) is None
    assert smrs.next_question({"dead": False, "constant_care": False}).key == "needs_help_bodily"


def test_answers_after_the_first_yes_do_not_change_the_score():
    assert workflow.smrs_score({"dead": False, "constant_care": True, "symptoms": False}) == 5


# --- the mRS interview -----------------------------------------------------------------


def discharged(site):
    patient = admitted(site)
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2026, 1, 20))
    return patient


@pytest.mark.parametrize("score", range(6))
def test_interview_stores_answers_and_writes_the_score_to_the_followup(site_a, nurse, score):
    patient = discharged(site_a)
    interview = workflow.mrs_interview_record(
        user=nurse,
        patient=patient,
        answers=smrs.answers_for_score(score),
        interview_date=DUE,
        respondent="patient",
    )
    followup = FollowUp.objects.get(patient=patient)
    assert (interview.derived_score, followup.mrs_3m) == (score, score)
    assert followup.followup_date == DUE
    assert followup.followup_method == "telephone"
    assert followup.history.first().history_user == nurse


def test_death_sets_mrs_six_and_the_death_date(site_a, nurse):
    patient = discharged(site_a)
    workflow.mrs_interview_record(
        user=nurse,
        patient=patient,
        answers={"dead": True},
        interview_date=DUE,
        respondent="proxy",
        death_date=dt.date(2026, 3, 1),
    )
    followup = FollowUp.objects.get(patient=patient)
    assert (followup.mrs_3m, followup.death_date) == (6, dt.date(2026, 3, 1))


def test_death_without_a_date_is_refused(site_a, nurse):
    with pytest.raises(ValidationError) as error:
        workflow.mrs_interview_record(
            user=nurse,
            patient=discharged(site_a),
            answers={"dead": True},
            interview_date=DUE,
            respondent="proxy",
        )
    assert "death_date" in error.value.message_dict
    assert not MrsInterview.objects.exists()


def test_override_needs_a_reason_and_wins(site_a, nurse):
    patient = discharged(site_a)
    with pytest.raises(ValidationError):
        workflow.mrs_interview_record(
            user=nurse,
            patient=patient,
            answers=smrs.answers_for_score(2),
            interview_date=DUE,
            respondent="patient",
            override_score=3,
        )
    interview = workflow.mrs_interview_record(
        user=nurse,
        patient=patient,
        answers=smrs.answers_for_score(2),
        interview_date=DUE,
        respondent="patient",
        override_score=3,
        override_reason="Needs help with money since the stroke, said the daughter.",
    )
    assert (interview.derived_score, interview.final_score) == (2, 3)
    assert FollowUp.objects.get(patient=patient).mrs_3m == 3


def test_interview_that_breaks_a_registry_rule_is_refused_as_a_whole(site_a, nurse):
    patient = admitted(site_a)
    ComplicationsFactory(patient=patient, discharge_date=DUE)  # follow-up must be after
    with pytest.raises(ValidationError):
        workflow.mrs_interview_record(
            user=nurse,
            patient=patient,
            answers=smrs.answers_for_score(1),
            interview_date=DUE,
            respondent="patient",
        )
    assert not MrsInterview.objects.exists()
    assert not FollowUp.objects.exists()


def test_incomplete_questionnaire_is_refused(site_a, nurse):
    with pytest.raises(ValidationError):
        workflow.mrs_interview_record(
            user=nurse,
            patient=discharged(site_a),
            answers={"dead": False},
            interview_date=DUE,
            respondent="patient",
        )


def test_database_refuses_an_override_without_reason(site_a, nurse):
    patient = discharged(site_a)
    with pytest.raises(IntegrityError), transaction.atomic():
        MrsInterview.objects.create(
            patient=patient,
            interview_date=DUE,
            respondent="patient",
            derived_score=2,
            override_score=3,
        )


# --- screening and enrolment --------------------------------------------------------------


def test_eligible_consented_screening_entry_becomes_a_patient(site_a, nurse):
    entry = workflow.screening_log(
        user=nurse,
        site=site_a,
        screening_date=dt.date(2026, 1, 10),
        eligible=True,
        consent_given_by="representative",
        consent_date=dt.date(2026, 1, 10),
    )
    patient = workflow.patient_enrol_from_screening(
        user=nurse, entry=entry, study_id="CT-001", sex="female", age_years=71
    )
    entry.refresh_from_db()
    assert entry.patient == patient
    assert patient.site == site_a and patient.created_by == nurse


def test_enrolment_uses_the_patient_rules(site_a, nurse):
    entry = ScreeningEntry.objects.create(
        site=site_a,
        screening_date=dt.date(2026, 1, 10),
        eligible=True,
        consent_given_by="patient",
        consent_date=dt.date(2026, 1, 10),
    )
    with pytest.raises(ValidationError) as error:
        workflow.patient_enrol_from_screening(
            user=nurse, entry=entry, study_id="CT 1", sex="female", age_years=12
        )
    assert {"study_id", "age_years"} <= set(error.value.message_dict)
    assert not Patient.objects.exists()


def test_not_eligible_needs_a_reason_and_is_never_enrolled(site_a, nurse):
    with pytest.raises(ValidationError):
        workflow.screening_log(
            user=nurse, site=site_a, screening_date=dt.date(2026, 1, 10), eligible=False
        )
    entry = workflow.screening_log(
        user=nurse,
        site=site_a,
        screening_date=dt.date(2026, 1, 10),
        eligible=False,
        exclusion_reason="tandem_lesion",
    )
    with pytest.raises(ValidationError):
        workflow.patient_enrol_from_screening(
            user=nurse, entry=entry, study_id="CT-002", sex="male", age_years=60
        )


def test_refused_consent_is_not_enrolled(site_a, nurse):
    entry = workflow.screening_log(
        user=nurse,
        site=site_a,
        screening_date=dt.date(2026, 1, 10),
        eligible=True,
        consent_given_by="refused",
    )
    with pytest.raises(ValidationError):
        workflow.patient_enrol_from_screening(
            user=nurse, entry=entry, study_id="CT-003", sex="male", age_years=60
        )


def test_consent_given_needs_its_date(site_a, nurse):
    with pytest.raises(ValidationError) as error:
        workflow.screening_log(
            user=nurse,
            site=site_a,
            screening_date=dt.date(2026, 1, 10),
            eligible=True,
            consent_given_by="patient",
        )
    assert "consent_date" in error.value.message_dict


def test_screening_at_another_site_is_forbidden(site_b, nurse, monitor):
    for user in (nurse, monitor):
        with pytest.raises(PermissionDenied):
            workflow.screening_log(
                user=user,
                site=site_b,
                screening_date=dt.date(2026, 1, 10),
                eligible=False,
                exclusion_reason="severe_comorbidity",
            )


def test_database_refuses_an_exclusion_reason_code_it_does_not_know(site_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        ScreeningEntry.objects.create(
            site=site_a, screening_date=dt.date(2026, 1, 10), eligible=False, exclusion_reason="x"
        )


def test_exclusion_after_enrolment_keeps_the_record(site_a, nurse):
    patient = admitted(site_a)
    workflow.patient_exclude(user=nurse, patient=patient, reason="lost_to_followup")
    assert Patient.objects.filter(pk=patient.pk).exists()
    workflow.patient_exclusion_revoke(user=nurse, patient=patient, note="Reached the son.")
    exclusion = PatientExclusion.objects.get(patient=patient)
    assert exclusion.active is False
    assert exclusion.history.count() == 2


# --- data queries -----------------------------------------------------------------------------


def test_query_life_cycle_keeps_every_message_and_status(site_a, nurse, monitor):
    patient = admitted(site_a)
    query = workflow.query_raise(
        user=monitor, patient=patient, field="door_time", text="Check against the ambulance sheet."
    )
    assert query.status == QueryStatus.OPEN
    query = workflow.query_answer(user=nurse, query=query, text="Corrected to 10:40.")
    assert query.status == QueryStatus.ANSWERED
    query = workflow.query_reopen(user=monitor, query=query, text="Sheet says 10:35.")
    assert query.status == QueryStatus.REOPENED
    query = workflow.query_answer(user=nurse, query=query, text="Now 10:35.")
    query = workflow.query_close(user=monitor, query=query, text="Thank you.")
    assert query.status == QueryStatus.CLOSED
    steps = [(m.action, m.author) for m in query.messages.all()]
    assert steps == [
        ("raise", monitor),
        ("answer", nurse),
        ("reopen", monitor),
        ("answer", nurse),
        ("close", monitor),
    ]
    assert query.history.count() == 5


def test_nurse_cannot_raise_or_close_a_query(site_a, nurse, investigator):
    patient = admitted(site_a)
    with pytest.raises(PermissionDenied):
        workflow.query_raise(user=nurse, patient=patient, field="door_time", text="?")
    query = workflow.query_raise(
        user=investigator, patient=patient, field="nihss_admission", text="NIHSS 18?"
    )
    with pytest.raises(PermissionDenied):
        workflow.query_close(user=nurse, query=query, text="done")


def test_monitor_cannot_answer_a_query(site_a, monitor):
    query = workflow.query_raise(
        user=monitor, patient=admitted(site_a), field="door_time", text="?"
    )
    with pytest.raises(PermissionDenied):
        workflow.query_answer(user=monitor, query=query, text="self-answer")


def test_only_the_raiser_closes_a_query(site_a, monitor, investigator):
    query = workflow.query_raise(
        user=monitor, patient=admitted(site_a), field="door_time", text="?"
    )
    with pytest.raises(PermissionDenied):
        workflow.query_close(user=investigator, query=query, text="closing")


def test_answered_query_cannot_be_answered_again(site_a, nurse, monitor):
    query = workflow.query_raise(
        user=monitor, patient=admitted(site_a), field="door_time", text="?"
    )
    workflow.query_answer(user=nurse, query=query, text="ok")
    with pytest.raises(ValidationError):
        workflow.query_answer(user=nurse, query=query, text="again")


def test_query_on_an_unknown_field_is_refused(site_a, monitor):
    with pytest.raises(ValidationError):
        workflow.query_raise(user=monitor, patient=admitted(site_a), field="shoe_size", text="?")
    assert not DataQuery.objects.exists()


def test_query_on_another_sites_patient_is_not_found(site_b, monitor):
    with pytest.raises(Http404):
        workflow.query_raise(user=monitor, patient=admitted(site_b), field="door_time", text="?")


def test_open_queries_wait_for_the_nurse_and_answers_for_the_raiser(site_a, nurse, monitor):
    query = workflow.query_raise(
        user=monitor, patient=admitted(site_a), field="door_time", text="?"
    )
    assert list(workflow.open_queries_for(nurse)) == [query]
    assert list(workflow.open_queries_for(monitor)) == []
    workflow.query_answer(user=nurse, query=query, text="ok")
    assert list(workflow.open_queries_for(nurse)) == []
    assert list(workflow.open_queries_for(monitor)) == [query]


# --- locking ------------------------------------------------------------------------------------


def test_lock_and_unlock_are_in_the_audit_trail(site_a, monitor):
    patient = admitted(site_a)
    workflow.patient_lock(user=monitor, patient=patient, reason="SDV done", password=PASSWORD)
    assert services.is_locked(patient)
    with pytest.raises(ValidationError):
        workflow.patient_unlock(user=monitor, patient=patient, reason="  ", password=PASSWORD)
    workflow.patient_unlock(
        user=monitor, patient=patient, reason="Query on door time", password=PASSWORD
    )
    patient.refresh_from_db()
    lock = PatientLock.objects.get(patient=patient)
    assert not lock.locked
    trail = [(h.locked, h.reason, h.history_user) for h in lock.history.order_by("history_id")]
    assert trail == [(True, "SDV done", monitor), (False, "Query on door time", monitor)]


def test_nurse_cannot_lock(site_a, nurse):
    with pytest.raises(PermissionDenied):
        workflow.patient_lock(user=nurse, patient=admitted(site_a), reason="x", password=PASSWORD)


def test_locked_record_refuses_workflow_changes(site_a, nurse, investigator):
    patient = discharged(site_a)
    workflow.patient_lock(user=investigator, patient=patient, reason="SDV", password=PASSWORD)
    with pytest.raises(PermissionDenied):
        services.ensure_unlocked(patient)
    with pytest.raises(PermissionDenied):
        workflow.contact_attempt_log(user=nurse, patient=patient, outcome="reached")
    with pytest.raises(PermissionDenied):
        workflow.mrs_interview_record(
            user=nurse,
            patient=patient,
            answers=smrs.answers_for_score(1),
            interview_date=DUE,
            respondent="patient",
        )
    with pytest.raises(PermissionDenied):
        workflow.patient_exclude(user=nurse, patient=patient, reason="lost_to_followup")


def test_admin_can_lock_any_site(site_b):
    admin = UserFactory(role="admin")
    change = workflow.patient_lock(
        user=admin, patient=admitted(site_b), reason="SDV", password=PASSWORD
    )
    assert change.changed


def test_patient_who_died_before_discharge_is_not_on_the_call_lists(site_a, nurse):
    patient = admitted(site_a)
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2026, 1, 20), discharge_mrs=6)
    items = workflow.worklist(nurse, DUE)
    assert [i.patient for i in items["died_in_hospital"]] == [patient]
    assert not any(items[name] for name in workflow.BUCKETS)
