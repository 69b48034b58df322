"""Services of the study workflow: screening and enrolment, the 3-month
follow-up worklist, the structured mRS interview, data queries and locking.

Each service is keyword-only, checks who may act (``registry.access``), runs
``full_clean()`` before ``save()`` and records the acting user in the history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from registry import access, derived, rules, smrs
from registry.choices import FollowupMethod, SectionStatus
from registry.models import (
    AWAITING_ANSWER,
    CONSENT_GIVEN,
    FAILED_OUTCOMES,
    Admission,
    ConsentBy,
    ContactAttempt,
    ContactOutcome,
    DataQuery,
    FollowUp,
    LockMeaning,
    MrsInterview,
    Patient,
    PatientExclusion,
    PatientExclusionReason,
    PatientLock,
    QueryAction,
    QueryMessage,
    QueryStatus,
    ScreeningEntry,
    ScreeningExclusion,
    Site,
)
from registry.services import ensure_unlocked, section_save
from registry.smrs import QUESTION_KEYS
from registry.smrs import smrs_score as smrs_score  # the questionnaire's scoring, re-exported

# The window is a clinical rule, stated in registry.rules (the follow-up warning uses it).
FOLLOWUP_DAYS = rules.FOLLOWUP_DAYS
DEFAULT_WINDOW_DAYS = rules.DEFAULT_WINDOW_DAYS
LOST_AFTER_FAILED_ATTEMPTS = 3
window_days = rules.window_days


def _save(obj, user) -> None:
    obj.full_clean()
    obj._history_user = user if user is not None and user.is_authenticated else None
    obj.save()


# --- locking -----------------------------------------------------------------


@dataclass(frozen=True)
class LockChange:
    """What a lock or unlock did: ``changed`` is False when the record already was so."""

    lock: PatientLock | None
    changed: bool


def _signature(user, *, password: str, reason: str) -> str:
    """An electronic signature: the user's password again and a reason (the reason)."""
    errors = {}
    if not password or not user.check_password(password):
        errors["password"] = [_("The password is not correct: enter your own password.")]
    if not (reason or "").strip():
        errors["reason"] = [_("Give the reason.")]
    if errors:
        raise ValidationError(errors)
    return reason.strip()


def _set_lock(*, user, patient: Patient, locked: bool, reason: str, password: str) -> LockChange:
    access.require(access.has(user, access.LOCK))
    with transaction.atomic():
        lock = PatientLock.objects.select_for_update().filter(patient=patient).first()
        if (lock is not None and lock.locked) == locked:
            return LockChange(lock, changed=False)  # a repeated request: nothing to sign
        reason = _signature(user, password=password, reason=reason)
        lock = lock or PatientLock(patient=patient)
        lock.locked, lock.reason, lock.changed_by = locked, reason, user
        lock.meaning = LockMeaning.VERIFIED if locked else LockMeaning.REOPENED
        _save(lock, user)
    return LockChange(lock, changed=True)


def patient_lock(*, user, patient: Patient, reason: str, password: str) -> LockChange:
    """Lock the record after source data verification, signed (password and reason).

    A record already locked stays as it is (``changed`` False): a second click or a
    second tab never unlocks it.
    """
    return _set_lock(user=user, patient=patient, locked=True, reason=reason, password=password)


def patient_unlock(*, user, patient: Patient, reason: str, password: str) -> LockChange:
    """Reopen a locked record for correction, signed (password and reason)."""
    return _set_lock(user=user, patient=patient, locked=False, reason=reason, password=password)


# --- screening and enrolment ---------------------------------------------------


def screening_for(user) -> QuerySet[ScreeningEntry]:
    """Screening entries of the user's sites."""
    return access.screening_for(user).select_related("site", "patient")


def screening_log(
    *,
    user,
    site: Site,
    screening_date: dt.date,
    eligible: bool,
    exclusion_reason: str | None = None,
    consent_given_by: str | None = None,
    consent_date: dt.date | None = None,
    screening_number: str = "",
    note: str = "",
) -> ScreeningEntry:
    """Log one screened patient at ``site``."""
    access.require(access.editable_sites_for(user).filter(pk=site.pk).exists())
    entry = ScreeningEntry(
        site=site,
        screening_date=screening_date,
        eligible=eligible,
        exclusion_reason=exclusion_reason or None,
        consent_given_by=consent_given_by or None,
        consent_date=consent_date,
        screening_number=screening_number,
        note=note,
        created_by=user,
    )
    _save(entry, user)
    return entry


def patient_enrol_from_screening(
    *, user, entry: ScreeningEntry, study_id: str, sex: str, age_years: int
) -> Patient:
    """Create the patient record of an eligible, consented screening entry."""
    access.require(access.editable_sites_for(user).filter(pk=entry.site_id).exists())
    if not entry.eligible or not entry.consented:
        raise ValidationError(_("Only an eligible patient with consent is enrolled."))
    if entry.patient_id is not None:
        raise ValidationError(_("This screening entry is already enrolled."))
    with transaction.atomic():
        patient = Patient(
            study_id=study_id, site_id=entry.site_id, sex=sex, age_years=age_years, created_by=user
        )
        _save(patient, user)
        entry.patient = patient
        _save(entry, user)
    return patient


def patient_exclude(
    *, user, patient: Patient, reason: str, note: str = "", excluded_on: dt.date | None = None
) -> PatientExclusion:
    """Exclude an enrolled patient from the analysis (the record is kept)."""
    access.require(access.has(user, access.EXCLUDE))
    ensure_unlocked(patient)
    exclusion = PatientExclusion.objects.filter(patient=patient).first()
    if exclusion is None:
        exclusion = PatientExclusion(patient=patient)
    elif exclusion.active:
        raise ValidationError(_("The patient is already excluded."))
    exclusion.reason = reason
    exclusion.note = note
    exclusion.excluded_on = excluded_on or timezone.localdate()
    exclusion.active = True
    exclusion.changed_by = user
    _save(exclusion, user)
    return exclusion


def patient_exclusion_revoke(*, user, patient: Patient, note: str) -> PatientExclusion:
    """Take back an exclusion (the patient was reached after all); history keeps both."""
    access.require(access.has(user, access.EXCLUDE))
    ensure_unlocked(patient)
    if not (note or "").strip():
        raise ValidationError({"note": _("Say why the exclusion is taken back.")})
    exclusion = PatientExclusion.objects.filter(patient=patient, active=True).first()
    if exclusion is None:
        raise ValidationError(_("The patient is not excluded."))
    exclusion.active, exclusion.note, exclusion.changed_by = False, note.strip(), user
    _save(exclusion, user)
    return exclusion


@dataclass(frozen=True)
class ExclusionStep:
    """One step of a patient's exclusion history: excluded, or the exclusion taken back."""

    when: dt.datetime
    who: object  # the user, None when unknown
    excluded: bool
    reason: str  # the reason's label when excluded
    excluded_on: dt.date | None
    note: str


def exclusion_history(patient: Patient) -> list[ExclusionStep]:
    """Every exclusion and revocation of ``patient``, oldest first (one query)."""
    records = (
        PatientExclusion.history.filter(patient_id=patient.pk)
        .exclude(history_type="-")
        .select_related("history_user")
        .order_by("history_date", "history_id")
    )
    labels = dict(PatientExclusionReason.choices)
    return [
        ExclusionStep(
            when=record.history_date,
            who=record.history_user,
            excluded=record.active,
            reason=str(labels.get(record.reason, record.reason)) if record.active else "",
            excluded_on=record.excluded_on if record.active else None,
            note=record.note,
        )
        for record in records
    ]


def screening_counts(screening: QuerySet[ScreeningEntry]) -> dict[str, int]:
    """The screening log's part of the flow chart, one query."""
    return screening.aggregate(
        screened=Count("pk"),
        not_eligible=Count("pk", filter=Q(eligible=False)),
        consent_refused=Count("pk", filter=Q(eligible=True, consent_given_by=ConsentBy.REFUSED)),
        awaiting_enrolment=Count(
            "pk",
            filter=Q(eligible=True, patient__isnull=True)
            & (Q(consent_given_by__in=CONSENT_GIVEN) | Q(consent_given_by__isnull=True)),
        ),
        **{
            f"reason_{code}": Count("pk", filter=Q(eligible=False, exclusion_reason=code))
            for code in ScreeningExclusion.values
        },
    )


# --- 3-month follow-up ----------------------------------------------------------


@dataclass(frozen=True)
class FollowupDue:
    due: dt.date
    window_start: dt.date
    window_end: dt.date
    from_door: bool  # onset unknown: counted from the door date


def followup_due(patient: Patient, *, window: int | None = None) -> FollowupDue | None:
    """When the 3-month contact is due: onset + 90 days (door date without onset).

    None when neither time is recorded.
    """
    try:
        admission = patient.admission
    except Admission.DoesNotExist:
        return None
    return followup_due_from(admission.onset_time, admission.door_time, window=window)


def followup_due_from(onset, door, *, window: int | None = None) -> FollowupDue | None:
    """:func:`followup_due` from the admission's onset and door times."""
    found = rules.followup_window(onset, door, window=window)
    if found is None:
        return None
    return FollowupDue(*found, onset is None)


BUCKETS = ("due_today", "this_week", "overdue", "outside_window")
BUCKET_LABELS = {
    "due_today": _("Calls due today"),
    "this_week": _("Coming this week"),
    "overdue": _("Overdue (still within the window)"),
    "outside_window": _("Outside the window"),
    "later": _("Later"),
    "no_date": _("No onset or door date"),
    "died_in_hospital": _("Died before discharge: record mRS 6 without calling"),
}
OTHER_BUCKETS = ("later", "no_date", "died_in_hospital")


@dataclass
class WorklistItem:
    patient: Patient
    due: FollowupDue | None
    bucket: str
    failed_attempts: int = 0
    last_attempt_date: dt.date | None = None
    last_attempt_outcome: str | None = None
    propose_lost: bool = False
    site_code: str = ""

    @property
    def last_attempt_label(self) -> str:
        return ContactOutcome(self.last_attempt_outcome).label if self.last_attempt_outcome else ""


def proposes_lost(due: FollowupDue | None, failed_attempts: int, today: dt.date) -> bool:
    """Three failed attempts and the window has passed: propose lost to follow-up."""
    return bool(
        due is not None and today > due.window_end and failed_attempts >= LOST_AFTER_FAILED_ATTEMPTS
    )


def bucket_for(due: FollowupDue | None, today: dt.date) -> str:
    if due is None:
        return "no_date"
    if due.due == today:
        return "due_today"
    if today < due.due:
        return "this_week" if due.due <= today + dt.timedelta(days=7) else "later"
    if today <= due.window_end:
        return "overdue"
    return "outside_window"


def _died_in_hospital(discharge_mrs: int | None) -> bool:
    # Nobody to call about: the 3-month mRS is 6, entered from the hospital record.
    return discharge_mrs == derived.DEAD_MRS


def _attempts_annotation() -> dict[str, Subquery]:
    attempts = ContactAttempt.objects.filter(patient=OuterRef("pk"))
    latest = attempts.order_by("-attempt_date", "-pk")
    failed = (
        attempts.filter(outcome__in=FAILED_OUTCOMES)
        .values("patient")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return {
        "failed_attempts": Coalesce(Subquery(failed), 0),
        "last_attempt_date": Subquery(latest.values("attempt_date")[:1]),
        "last_attempt_outcome": Subquery(latest.values("outcome")[:1]),
    }


def worklist(user, today: dt.date | None = None) -> dict[str, list[WorklistItem]]:
    """The follow-up calls of the user's sites, by bucket, soonest first.

    A patient is on the worklist until the 3-month mRS is recorded or the
    patient is excluded. One query whatever the number of patients (the
    attempts are counted by subqueries).
    """
    today = today or timezone.localdate()
    window = window_days()
    patients = (
        access.patients_for(user)
        # Stored by models.patients_refresh_stored: found by a partial index.
        .filter(mrs_3m_missing=True)
        .exclude(exclusion__active=True)
        # Only what the buckets and the worklist tables read, the related values as
        # annotations, rather than a patient, site, admission and complications instance
        # per patient on the list.
        .only("study_id")
        .annotate(
            w_site_code=F("site__code"),
            w_onset=F("admission__onset_time"),
            w_door=F("admission__door_time"),
            w_discharge_mrs=F("complications__discharge_mrs"),
            **_attempts_annotation(),
        )
    )
    result: dict[str, list[WorklistItem]] = {name: [] for name in (*BUCKETS, *OTHER_BUCKETS)}
    for patient in patients:
        due = followup_due_from(patient.w_onset, patient.w_door, window=window)
        died = _died_in_hospital(patient.w_discharge_mrs)
        bucket = "died_in_hospital" if died else bucket_for(due, today)
        item = WorklistItem(
            patient,
            due,
            bucket,
            failed_attempts=patient.failed_attempts,
            last_attempt_date=patient.last_attempt_date,
            last_attempt_outcome=patient.last_attempt_outcome,
            propose_lost=proposes_lost(due, patient.failed_attempts, today),
            site_code=patient.w_site_code,
        )
        result[item.bucket].append(item)
    for items in result.values():
        items.sort(key=lambda i: (i.due.due if i.due else dt.date.max, i.patient.study_id))
    return result


def contact_attempt_log(
    *,
    user,
    patient: Patient,
    outcome: str,
    attempt_date: dt.date | None = None,
    note: str = "",
    confirm_repeat: bool = False,
) -> ContactAttempt:
    """Log one attempt; the same outcome on the same day again only when confirmed
    (``confirm_repeat``): a second click must not count as a second failed call."""
    access.require(access.has(user, access.EDIT_CLINICAL))
    ensure_unlocked(patient)
    attempt = ContactAttempt(
        patient=patient,
        attempt_date=attempt_date or timezone.localdate(),
        outcome=outcome,
        by=user,
        note=note,
    )
    same = ContactAttempt.objects.filter(
        patient=patient, attempt_date=attempt.attempt_date, outcome=outcome
    )
    if not confirm_repeat and same.exists():
        raise ValidationError(
            {
                "confirm_repeat": _(
                    "An attempt with this outcome is already logged for this day. Tick "
                    "the box to log another one."
                )
            }
        )
    _save(attempt, user)
    return attempt


AUDIT_REASON_INTERVIEW = gettext_noop("3-month mRS interview")


def mrs_interview_record(
    *,
    user,
    patient: Patient,
    answers: dict[str, bool | None],
    interview_date: dt.date,
    respondent: str,
    death_date: dt.date | None = None,
    override_score: int | None = None,
    override_reason: str = "",
    out_of_window_reason: str = "",
    warnings_reason: str = "",
    language: str | None = None,
) -> MrsInterview:
    """Store the questionnaire and write its score into the 3-month follow-up.

    ``language`` is the language the questions were read in (default: the current
    one); the interview stores it with the questionnaire's version (``smrs.VERSION``).

    The follow-up section is validated by its own ``full_clean()`` (the
    registry's rules: mRS 6 needs the death date, follow-up after discharge...),
    so an interview that would break a rule is refused as a whole. An interview
    outside the 3-month window is refused unless ``out_of_window_reason`` confirms
    it; any other warning the follow-up raises is confirmed by ``warnings_reason``.
    """
    access.require(access.has(user, access.EDIT_CLINICAL))
    ensure_unlocked(patient)
    confirmations = _interview_confirmations(
        patient, interview_date, out_of_window_reason, warnings_reason
    )
    interview = MrsInterview(
        patient=patient,
        interview_date=interview_date,
        respondent=respondent,
        death_date=death_date,
        override_score=override_score,
        override_reason=override_reason or "",
        language=language or translation.get_language(),
        questionnaire_version=smrs.VERSION,
        by=user,
        derived_score=0,
        **{key: answers.get(key) for key in QUESTION_KEYS},
    )
    stored = FollowUp.objects.filter(patient=patient).first()
    data: dict[str, object] = {
        "followup_date": interview_date,
        "followup_method": FollowupMethod.TELEPHONE,
    }
    with transaction.atomic():
        _save(interview, user)
        data["mrs_3m"] = interview.final_score
        if interview.dead:
            data["death_date"] = death_date
        section_save(
            patient=patient,
            section_key=FollowUp.key,
            user=user,
            data=data,
            complete=bool(stored and stored.status == SectionStatus.COMPLETE),
            # Stored in the audit trail's one language; the history page translates it.
            reason=AUDIT_REASON_INTERVIEW,
            confirmations=confirmations,
        )
    return interview


OUT_OF_WINDOW = next(r for r in rules.RULES if r.code == "followup_out_of_window")


def _interview_confirmations(
    patient: Patient, interview_date, out_of_window_reason: str, warnings_reason: str
) -> dict[str, str]:
    """The follow-up's warning confirmations an interview brings (rule key -> reason).

    An interview date outside the 3-month window needs its own reason: the score of
    an out-of-window assessment is not the study's 3-month outcome.
    """
    confirmations = {}
    if warnings_reason.strip():
        confirmations = {r.key: warnings_reason for r in rules.RULES if r.is_warning}
    confirmations.pop(OUT_OF_WINDOW.key, None)
    due = followup_due(patient)
    if due is None or interview_date is None:
        return confirmations
    if not due.window_start <= interview_date <= due.window_end:
        if not out_of_window_reason.strip():
            raise ValidationError(
                {
                    "interview_date": _(
                        "%(date)s is outside the 3-month window (%(start)s to %(end)s). "
                        "Confirm an out-of-window assessment with a reason, or interview "
                        "within the window."
                    )
                    % {
                        "date": date_format(interview_date, "SHORT_DATE_FORMAT"),
                        "start": date_format(due.window_start, "SHORT_DATE_FORMAT"),
                        "end": date_format(due.window_end, "SHORT_DATE_FORMAT"),
                    }
                }
            )
        confirmations[OUT_OF_WINDOW.key] = out_of_window_reason
    return confirmations


# --- data queries ---------------------------------------------------------------


def queries_for(user) -> QuerySet[DataQuery]:
    """Queries on patients the user may read."""
    return DataQuery.objects.filter(patient__in=access.patients_for(user)).select_related(
        "patient", "patient__site", "raised_by"
    )


def _message(query: DataQuery, user, action: str, text: str) -> QueryMessage:
    message = QueryMessage(query=query, author=user, action=action, text=text)
    _save(message, user)
    return message


def _step(query: DataQuery, *, user, allowed_from, to: str, action: str, text: str) -> DataQuery:
    if not (text or "").strip():
        raise ValidationError({"text": _("Write a message.")})
    with transaction.atomic():
        query = DataQuery.objects.select_for_update().get(pk=query.pk)
        if query.status not in allowed_from:
            raise ValidationError(
                _("A query that is %(status)s cannot be %(action)s.")
                % {"status": query.get_status_display(), "action": QueryAction(action).label}
            )
        query.status = to
        _save(query, user)
        _message(query, user, action, text.strip())
    return query


def query_raise(*, user, patient: Patient, field: str, text: str) -> DataQuery:
    """Open a query on ``field`` of ``patient`` (monitor, investigator, admin)."""
    access.require(access.has(user, access.RAISE_QUERY))
    access.get_patient(user, patient.pk)  # other site: 404
    if not (text or "").strip():
        raise ValidationError({"text": _("Write a message.")})
    with transaction.atomic():
        query = DataQuery(patient=patient, field=field, raised_by=user)
        _save(query, user)
        _message(query, user, QueryAction.RAISE, text.strip())
    return query


def query_answer(*, user, query: DataQuery, text: str) -> DataQuery:
    """The nurse answers (and has corrected the value in the form if needed)."""
    access.require(access.has(user, access.ANSWER_QUERY))
    return _step(
        query,
        user=user,
        allowed_from=AWAITING_ANSWER,
        to=QueryStatus.ANSWERED,
        action=QueryAction.ANSWER,
        text=text,
    )


def query_close(*, user, query: DataQuery, text: str) -> DataQuery:
    access.require(access.can_close_query(user, query))
    return _step(
        query,
        user=user,
        allowed_from=(QueryStatus.OPEN, QueryStatus.ANSWERED, QueryStatus.REOPENED),
        to=QueryStatus.CLOSED,
        action=QueryAction.CLOSE,
        text=text,
    )


def query_reopen(*, user, query: DataQuery, text: str) -> DataQuery:
    access.require(access.can_close_query(user, query))
    return _step(
        query,
        user=user,
        allowed_from=(QueryStatus.ANSWERED, QueryStatus.CLOSED),
        to=QueryStatus.REOPENED,
        action=QueryAction.REOPEN,
        text=text,
    )


def open_queries_for(user) -> QuerySet[DataQuery]:
    """What waits for this user: answers to give (nurse) or answers to review (raiser)."""
    queries = queries_for(user)
    if access.has(user, access.CLOSE_ANY_QUERY):
        return queries.exclude(status=QueryStatus.CLOSED)
    if access.has(user, access.ANSWER_QUERY):
        return queries.filter(status__in=AWAITING_ANSWER)
    return queries.filter(raised_by=user, status=QueryStatus.ANSWERED)


def open_queries_by_field(patient: Patient) -> dict[str, list[DataQuery]]:
    """Unclosed queries of one patient keyed by field (shown next to the field)."""
    found: dict[str, list[DataQuery]] = {}
    for query in patient.queries.exclude(status=QueryStatus.CLOSED):
        found.setdefault(query.field, []).append(query)
    return found


# --- home page -------------------------------------------------------------------


PANEL_LIMIT = 50


def home_panels_context(user, today: dt.date | None = None) -> dict[str, object]:
    """Context of ``registry/workflow/home_panels.html`` for the home page."""
    context: dict[str, object] = {"workflow_panels": False}
    if not user.is_authenticated:
        return context
    panels = []
    if access.has(user, access.EDIT_CLINICAL):
        items = worklist(user, today)
        # The badge counts the whole bucket; the panel lists its first PANEL_LIMIT.
        panels = [
            {
                "key": name,
                "label": BUCKET_LABELS[name],
                "items": items[name][:PANEL_LIMIT],
                "total": len(items[name]),
            }
            for name in BUCKETS
        ]
    context.update(
        workflow_panels=True,
        followup_panels=panels,
        open_queries=list(open_queries_for(user)[:PANEL_LIMIT]),
    )
    return context
