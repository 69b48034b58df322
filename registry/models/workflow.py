"""The prospective study workflow: screening log, exclusions after enrolment,
follow-up contact attempts, the structured mRS interview, data queries and
record locks.

Every model keeps its history (simple-history): nothing here
is ever deleted, a change is a new historical row with who and when.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry import rules, smrs
from registry.choices import Language

from .crf import SECTION_MODELS, Patient, Site, choice_constraints
from .history import AuditedHistory

__all__ = [
    "AWAITING_ANSWER",
    "CONSENT_GIVEN",
    "FAILED_OUTCOMES",
    "query_field_choices",
    "ScreeningExclusion",
    "ConsentBy",
    "ScreeningEntry",
    "PatientExclusionReason",
    "PatientExclusion",
    "ContactOutcome",
    "ContactAttempt",
    "Respondent",
    "MrsInterview",
    "QueryStatus",
    "QueryAction",
    "DataQuery",
    "QueryMessage",
    "PatientLock",
    "LockMeaning",
    "WarningConfirmation",
]

MRS_LOW, MRS_HIGH = rules.RANGES["mrs_3m"]


class ScreeningExclusion(models.TextChoices):
    """The study's exclusion criteria at screening (the paper's Figure 1)."""

    TANDEM_LESION = "tandem_lesion", _("Tandem lesion")
    ICH_ON_ADMISSION = "ich_on_admission", _("ICH on admission")
    NO_SEVERE_STENOSIS = (
        "no_severe_stenosis_or_reocclusion",
        _("No severe stenosis or reocclusion after MT"),
    )
    SEVERE_COMORBIDITY = "severe_comorbidity", _("Severe or fatal comorbidity")


class ConsentBy(models.TextChoices):
    PATIENT = "patient", _("Given by the patient")
    REPRESENTATIVE = "representative", _("Given by a representative")
    REFUSED = "refused", _("Refused")


CONSENT_GIVEN = (ConsentBy.PATIENT, ConsentBy.REPRESENTATIVE)


def _user_fk(verbose_name, **kwargs) -> models.ForeignKey:
    kwargs.setdefault("null", True)
    kwargs.setdefault("blank", True)
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=verbose_name,
        on_delete=models.PROTECT,
        related_name="+",
        **kwargs,
    )


class ScreeningEntry(models.Model):
    """One screened patient, logged before (and whether or not) they are enrolled."""

    site = models.ForeignKey(Site, verbose_name=_("site"), on_delete=models.PROTECT)
    screening_date = models.DateField(_("screening date"))
    screening_number = models.CharField(
        _("screening log number"),
        max_length=32,
        blank=True,
        help_text=_("The site's own log number; no names or hospital numbers."),
    )
    eligible = models.BooleanField(_("eligible"))
    exclusion_reason = models.CharField(
        _("exclusion reason"),
        max_length=40,
        choices=ScreeningExclusion.choices,
        null=True,
        blank=True,
        help_text=_("Required when not eligible: the first exclusion criterion met."),
    )
    consent_given_by = models.CharField(
        _("consent"), max_length=20, choices=ConsentBy.choices, null=True, blank=True
    )
    consent_date = models.DateField(_("consent date"), null=True, blank=True)
    patient = models.OneToOneField(
        Patient,
        verbose_name=_("enrolled patient"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="screening",
    )
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = _user_fk(_("created by"))
    history = AuditedHistory()

    class Meta:
        ordering = ["-screening_date", "-pk"]
        verbose_name = _("screening log entry")
        verbose_name_plural = _("screening log")
        constraints = [
            *choice_constraints(exclusion_reason=ScreeningExclusion),
            *choice_constraints(consent_given_by=ConsentBy),
            models.CheckConstraint(
                condition=Q(eligible=True, exclusion_reason__isnull=True)
                | Q(eligible=False, exclusion_reason__isnull=False),
                name="screening_reason_iff_not_eligible",
            ),
            models.CheckConstraint(
                condition=Q(consent_date__isnull=True) | Q(consent_given_by__in=CONSENT_GIVEN),
                name="screening_consent_date_only_when_given",
            ),
            models.CheckConstraint(
                condition=Q(patient__isnull=True)
                | Q(eligible=True, consent_given_by__in=CONSENT_GIVEN),
                name="screening_enrolled_only_eligible_consented",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.site_id} {self.screening_date} {self.screening_number}".strip()

    @property
    def consented(self) -> bool:
        return self.consent_given_by in CONSENT_GIVEN

    @property
    def can_enrol(self) -> bool:
        return self.eligible and self.consented and self.patient_id is None

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list] = {}
        today = timezone.localdate()
        if self.screening_date and self.screening_date > today:
            errors.setdefault("screening_date", []).append(_("Must not be in the future."))
        if self.eligible and self.exclusion_reason:
            errors.setdefault("exclusion_reason", []).append(
                _("An eligible patient has no exclusion reason; leave it blank.")
            )
        if self.eligible is False and not self.exclusion_reason:
            errors.setdefault("exclusion_reason", []).append(
                _("Give the exclusion criterion met by this patient.")
            )
        if self.consented and not self.consent_date:
            errors.setdefault("consent_date", []).append(_("Give the date consent was given."))
        if not self.consented and self.consent_date:
            errors.setdefault("consent_date", []).append(
                _("A consent date is recorded only when consent was given.")
            )
        if self.consent_date and self.consent_date > today:
            errors.setdefault("consent_date", []).append(_("Must not be in the future."))
        if self.patient_id is not None and not (self.eligible and self.consented):
            errors.setdefault("patient", []).append(
                _("Only an eligible, consented patient is enrolled.")
            )
        if self.patient_id is not None and self.patient.site_id != self.site_id:
            errors.setdefault("patient", []).append(_("The patient belongs to another site."))
        if errors:
            raise ValidationError(errors)


class PatientExclusionReason(models.TextChoices):
    LOST_TO_FOLLOWUP = "lost_to_followup", _("Lost to follow-up")
    CONSENT_WITHDRAWN = "consent_withdrawn", _("Consent withdrawn")
    OTHER = "other", _("Other (see note)")


class PatientExclusion(models.Model):
    """An enrolled patient excluded from the analysis; the record itself stays.

    Revoking (the patient was reached after all) keeps the row with
    ``active = False``; the history shows both steps.
    """

    patient = models.OneToOneField(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="exclusion"
    )
    reason = models.CharField(_("reason"), max_length=20, choices=PatientExclusionReason.choices)
    note = models.TextField(_("note"), blank=True)
    excluded_on = models.DateField(_("excluded on"))
    active = models.BooleanField(_("in force"), default=True)
    changed_by = _user_fk(_("changed by"))
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)
    history = AuditedHistory()

    class Meta:
        verbose_name = _("exclusion after enrolment")
        verbose_name_plural = _("exclusions after enrolment")
        constraints = [
            *choice_constraints(reason=PatientExclusionReason),
            models.CheckConstraint(
                condition=~Q(reason=PatientExclusionReason.OTHER) | ~Q(note=""),
                name="patientexclusion_other_has_note",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} {self.get_reason_display()}"

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list] = {}
        if self.reason == PatientExclusionReason.OTHER and not self.note.strip():
            errors["note"] = [_("Explain the reason.")]
        if self.excluded_on and self.excluded_on > timezone.localdate():
            errors["excluded_on"] = [_("Must not be in the future.")]
        if errors:
            raise ValidationError(errors)


class ContactOutcome(models.TextChoices):
    REACHED = "reached", _("Reached")
    NO_ANSWER = "no_answer", _("No answer")
    WRONG_NUMBER = "wrong_number", _("Wrong number")
    REFUSED = "refused", _("Refused")


FAILED_OUTCOMES = (ContactOutcome.NO_ANSWER, ContactOutcome.WRONG_NUMBER, ContactOutcome.REFUSED)


class ContactAttempt(models.Model):
    """One attempt to reach the patient (or family) for the 3-month follow-up."""

    patient = models.ForeignKey(
        Patient,
        verbose_name=_("patient"),
        on_delete=models.PROTECT,
        related_name="contact_attempts",
    )
    attempt_date = models.DateField(_("date"))
    outcome = models.CharField(_("outcome"), max_length=20, choices=ContactOutcome.choices)
    by = _user_fk(_("by"))
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("logged at"), auto_now_add=True)
    history = AuditedHistory()

    class Meta:
        ordering = ["-attempt_date", "-pk"]
        verbose_name = _("contact attempt")
        constraints = [
            *choice_constraints(outcome=ContactOutcome),
        ]

    def __str__(self) -> str:
        return f"{self.patient} {self.attempt_date} {self.outcome}"

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES

    def clean(self) -> None:
        super().clean()
        if self.attempt_date and self.attempt_date > timezone.localdate():
            raise ValidationError({"attempt_date": _("Must not be in the future.")})


class Respondent(models.TextChoices):
    PATIENT = "patient", _("Patient")
    PROXY = "proxy", _("Relative or carer")


def _mrs_field(verbose_name, **kwargs) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        verbose_name,
        validators=[MinValueValidator(MRS_LOW), MaxValueValidator(MRS_HIGH)],
        **kwargs,
    )


class MrsInterview(models.Model):
    """The structured 3-month telephone interview (smRSq) and the score it gave.

    The answers are those of ``registry.smrs.QUESTIONS``; questions after the
    first "yes" are never asked and stay blank. The score written into the
    follow-up section is ``final_score``: the override when one was given.
    """

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="mrs_interviews"
    )
    interview_date = models.DateField(_("interview date"))
    respondent = models.CharField(_("respondent"), max_length=10, choices=Respondent.choices)
    dead = models.BooleanField(_("died"), null=True, blank=True)
    constant_care = models.BooleanField(_("bedridden / constant care"), null=True, blank=True)
    needs_help_bodily = models.BooleanField(
        _("help to walk or for bodily needs"), null=True, blank=True
    )
    needs_help_affairs = models.BooleanField(
        _("help to look after own affairs"), null=True, blank=True
    )
    limited_activities = models.BooleanField(
        _("unable to do all usual activities"), null=True, blank=True
    )
    symptoms = models.BooleanField(_("symptoms from the stroke"), null=True, blank=True)
    death_date = models.DateField(_("death date"), null=True, blank=True)
    derived_score = _mrs_field(_("questionnaire score"))
    override_score = _mrs_field(_("score given instead"), null=True, blank=True)
    override_reason = models.TextField(_("reason for the different score"), blank=True)
    # The questions as they were read: their language and the wording's version.
    language = models.CharField(
        _("language of the questions"),
        max_length=8,
        choices=Language.choices,
        default=Language.ENGLISH,
    )
    questionnaire_version = models.CharField(
        _("questionnaire version"), max_length=20, default=smrs.VERSION
    )
    by = _user_fk(_("interviewer"))
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    history = AuditedHistory()

    class Meta:
        ordering = ["-interview_date", "-pk"]
        verbose_name = _("mRS interview")
        constraints = [
            *choice_constraints(respondent=Respondent, language=Language),
            models.CheckConstraint(
                condition=Q(derived_score__gte=MRS_LOW, derived_score__lte=MRS_HIGH),
                name="mrsinterview_derived_score_range",
            ),
            models.CheckConstraint(
                condition=Q(override_score__isnull=True)
                | Q(override_score__gte=MRS_LOW, override_score__lte=MRS_HIGH),
                name="mrsinterview_override_score_range",
            ),
            models.CheckConstraint(
                condition=Q(override_score__isnull=True) | ~Q(override_reason=""),
                name="mrsinterview_override_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(dead=True) | Q(death_date__isnull=False),
                name="mrsinterview_dead_has_death_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} {self.interview_date} mRS {self.final_score}"

    def answers(self) -> dict[str, bool | None]:
        return {key: getattr(self, key) for key in smrs.QUESTION_KEYS}

    @property
    def final_score(self) -> int | None:
        return self.override_score if self.override_score is not None else self.derived_score

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list] = {}
        score = smrs.smrs_score(self.answers())
        if score is None:
            question = smrs.next_question(self.answers())
            errors.setdefault(question.key, []).append(_("Answer this question."))
        else:
            self.derived_score = score
        if self.override_score is not None:
            if self.override_score == score:
                self.override_score = None
            elif not self.override_reason.strip():
                errors.setdefault("override_reason", []).append(
                    _("Give the reason for a score different from the questionnaire.")
                )
            elif (self.override_score == MRS_HIGH) != (score == MRS_HIGH):
                errors.setdefault("override_score", []).append(
                    _("Death (mRS 6) is answered by the first question, not overridden.")
                )
        if self.dead and not self.death_date:
            errors.setdefault("death_date", []).append(_("Give the date of death."))
        if not self.dead and self.death_date:
            errors.setdefault("death_date", []).append(
                _("A death date is recorded only when the patient died.")
            )
        if self.death_date and self.interview_date and self.death_date > self.interview_date:
            errors.setdefault("death_date", []).append(
                _("The death date must not be after the interview date.")
            )
        if self.interview_date and self.interview_date > timezone.localdate():
            errors.setdefault("interview_date", []).append(_("Must not be in the future."))
        if errors:
            raise ValidationError(errors)


class QueryStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ANSWERED = "answered", _("Answered")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Re-opened")


AWAITING_ANSWER = (QueryStatus.OPEN, QueryStatus.REOPENED)


class QueryAction(models.TextChoices):
    RAISE = "raise", _("Raised")
    ANSWER = "answer", _("Answered")
    CLOSE = "close", _("Closed")
    REOPEN = "reopen", _("Re-opened")


def query_field_choices() -> list[tuple[str, str]]:
    """Interchange columns a query may point at (patient fields and section fields)."""

    names = ["study_id", "site", "sex", "age_years"]
    for model in SECTION_MODELS:
        names.extend(model.clinical_fields())
    return [(name, name) for name in names]


class DataQuery(models.Model):
    """A question about one value of one patient, raised by a monitor or investigator."""

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="queries"
    )
    field = models.CharField(
        _("field"), max_length=64, help_text=_("The interchange column the query is about.")
    )
    status = models.CharField(
        _("status"), max_length=10, choices=QueryStatus.choices, default=QueryStatus.OPEN
    )
    raised_by = _user_fk(_("raised by"), null=False, blank=False)
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditedHistory()

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name = _("data query")
        verbose_name_plural = _("data queries")
        constraints = [
            *choice_constraints(status=QueryStatus),
        ]

    def __str__(self) -> str:
        return f"{self.patient} {self.field} ({self.status})"

    def clean(self) -> None:
        super().clean()
        if self.field not in dict(query_field_choices()):
            raise ValidationError({"field": _("Not a column of the registry.")})


class QueryMessage(models.Model):
    """One message of a query's conversation, with the status step it made."""

    query = models.ForeignKey(
        DataQuery, verbose_name=_("query"), on_delete=models.PROTECT, related_name="messages"
    )
    author = _user_fk(_("author"), null=False, blank=False)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)
    action = models.CharField(_("action"), max_length=10, choices=QueryAction.choices)
    text = models.TextField(_("message"))
    history = AuditedHistory()

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("query message")
        constraints = [
            *choice_constraints(action=QueryAction),
        ]

    def __str__(self) -> str:
        return f"{self.query_id} {self.action} {self.created_at:%Y-%m-%d %H:%M}"


class LockMeaning(models.TextChoices):
    """What an electronic signature on a lock or an unlock means (21 CFR Part 11)."""

    VERIFIED = "source_data_verified", _("Source data verified")
    REOPENED = "reopened_for_correction", _("Reopened for correction")


class PatientLock(models.Model):
    """The lock state of a patient's record; every lock and unlock is a history row.

    Each change is signed: the user re-entered their password, gave a reason, and
    the row says what the signature means (``meaning``).
    """

    patient = models.OneToOneField(
        Patient, verbose_name=_("patient"), on_delete=models.PROTECT, related_name="lock"
    )
    locked = models.BooleanField(_("locked"), default=True)
    reason = models.TextField(_("reason"))
    meaning = models.CharField(
        _("meaning of the signature"), max_length=32, choices=LockMeaning.choices
    )
    changed_by = _user_fk(_("signed by"))
    changed_at = models.DateTimeField(_("signed at"), auto_now=True)
    history = AuditedHistory()

    class Meta:
        verbose_name = _("record lock")
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="patientlock_has_reason"),
            *choice_constraints(meaning=LockMeaning),
            models.CheckConstraint(
                condition=Q(locked=True, meaning=LockMeaning.VERIFIED)
                | Q(locked=False, meaning=LockMeaning.REOPENED),
                name="patientlock_meaning_matches_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} {'locked' if self.locked else 'unlocked'}"

    def clean(self) -> None:
        super().clean()
        if not self.reason.strip():
            raise ValidationError({"reason": _("Give the reason.")})


class WarningConfirmation(models.Model):
    """A nurse's confirmation of a value a warning rule (``registry.rules``) flagged.

    ``fingerprint`` is the rule's digest of the values it looked at: the warning is
    not asked again while they stay the same. Rows are never changed; a new value
    confirmed again is a new row (and the history keeps every row).
    """

    patient = models.ForeignKey(
        Patient,
        verbose_name=_("patient"),
        on_delete=models.CASCADE,
        related_name="warning_confirmations",
    )
    section = models.CharField(_("section"), max_length=20)
    code = models.CharField(_("warning"), max_length=64)
    fields = models.CharField(_("fields"), max_length=200)
    fingerprint = models.CharField(_("values confirmed"), max_length=64)
    reason = models.TextField(_("reason"))
    confirmed_by = _user_fk(_("confirmed by"))
    confirmed_at = models.DateTimeField(_("confirmed at"), default=timezone.now)
    history = AuditedHistory()

    class Meta:
        ordering = ["-confirmed_at", "-pk"]
        verbose_name = _("warning confirmation")
        indexes = [models.Index(fields=["patient", "code"], name="warnconf_patient_code_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="warningconfirmation_has_reason")
        ]

    def __str__(self) -> str:
        return f"{self.patient} {self.code}"

    def clean(self) -> None:
        super().clean()
        if not self.reason.strip():
            raise ValidationError({"reason": _("Give the reason.")})
