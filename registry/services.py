"""Write operations on the registry: every change of clinical data goes through here.

Each service is keyword-only, validates with ``full_clean()`` before ``save()``
and records who made the change (and why, for a completed section) in the
django-simple-history audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import rules
from .choices import SectionStatus
from .display import field_label, value_in_words, words
from .models import SECTIONS_BY_KEY, Patient, PatientLock, Section, WarningConfirmation

# The audit table stores the reason in a 100-character column.
REASON_MAX_LENGTH = 100


class StaleVersion(ValidationError):
    """A save based on a copy of the section older than the stored one.

    ``stored`` holds the stored clinical values and ``base`` those of the version the
    user's form was built from (None when unknown): what :func:`section_conflict_merge`
    needs to give the user back the stored values and the fields both changed.
    """

    def __init__(self, message, *, stored_version: int, stored=None, base=None):
        super().__init__(message, code="stale_version")
        self.stored_version = stored_version
        self.stored = stored or {}
        self.base = base


class UnconfirmedWarnings(ValidationError):
    """Values a warning rule flags, not confirmed with a reason: nothing was saved.

    ``warnings`` are the rules (``registry.rules``) still to confirm; the messages
    sit next to the first of each rule's fields on the section.
    """

    def __init__(self, messages: dict[str, list[str]], *, warnings: list[rules.Rule]):
        super().__init__(messages, code="unconfirmed_warnings")
        self.warnings = warnings


class RecordLocked(PermissionDenied):
    """A change refused because the record is locked; ``lock`` says by whom and when."""

    def __init__(self, message, *, lock: PatientLock):
        super().__init__(message)
        self.lock = lock


def is_locked(patient: Patient) -> bool:
    """Whether the patient's record is locked (one query, none when prefetched)."""
    try:
        return patient.lock.locked
    except PatientLock.DoesNotExist:
        return False


def lock_in_force(patient: Patient) -> PatientLock | None:
    """The patient's lock when the record is locked, else None (read from the database)."""
    return (
        PatientLock.objects.filter(patient_id=patient.pk, locked=True)
        .select_related("changed_by")
        .first()
    )


def ensure_unlocked(patient: Patient) -> None:
    """Refuse any change to a locked record (forms, import, workflow services).

    Raises ``RecordLocked`` (a ``PermissionDenied``: a view answers 403) whose message
    names who locked the record and when; the import catches it per row.
    """
    lock = lock_in_force(patient)
    if lock is not None:
        raise RecordLocked(
            _(
                "The record of %(study_id)s is locked (%(meaning)s, by %(who)s on "
                "%(when)s); ask a monitor to unlock it."
            )
            % {
                "study_id": patient.study_id,
                "meaning": lock.get_meaning_display().lower(),
                "who": lock.changed_by.username if lock.changed_by else _("unknown"),
                "when": words(PatientLock._meta.get_field("changed_at"), lock.changed_at),
            },
            lock=lock,
        )


PATIENT_FIELDS = ("study_id", "sex", "age_years")


def patient_create(
    *, user, site, study_id: str, sex: str, age_years: int, confirmations=None
) -> Patient:
    """Register a new patient at ``site``; the caller has checked ``site`` is editable.

    An age a warning rule flags is registered only when confirmed (``confirmations``
    maps the rule's key to the reason, as for :func:`section_save`).
    """
    patient = Patient(study_id=study_id, site=site, sex=sex, age_years=age_years, created_by=user)
    patient.full_clean()
    confirmed = _confirm_warnings(
        patient_id=None,
        section="patient",
        values={name: getattr(patient, name) for name in PATIENT_FIELDS},
        own=set(PATIENT_FIELDS),
        user=user,
        confirmations=confirmations,
    )
    patient._history_user = user
    with transaction.atomic():
        patient.save()
        _store_confirmations(confirmed, patient, user)
    return patient


def _stored_section(patient: Patient, model: type[Section]) -> Section | None:
    # Lock the row so two saves of the same section cannot interleave (no-op on SQLite,
    # whose writes are serialised anyway).
    stored = model.objects.select_for_update().filter(patient=patient).first()
    if stored is not None:
        stored.patient = patient  # reuse the caller's patient (and its cached sections)
    return stored


def _conflict_message(model: type[Section], stored: Section, base) -> str:
    """What another user changed since ``base`` (label: stored value)."""
    changed = []
    for name in model.clinical_fields():
        if base is None or getattr(base, name) != getattr(stored, name):
            changed.append(f"{field_label(model, name)}: {value_in_words(model, name, stored)}")
    if base is not None and base.status != stored.status:
        changed.append(f"{field_label(model, 'status')}: {stored.get_status_display()}")
    detail = "; ".join(changed) if changed else _("no clinical value")
    return _(
        "This section was changed by someone else while you were editing it. "
        "The form now holds the stored values, with your changes; where you both "
        "changed a field, choose which value to keep. Now stored: %(detail)s."
    ) % {"detail": detail}


def _same(a, b) -> bool:
    # The date-time picker shows minutes only: seconds do not make a change.
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a.replace(second=0, microsecond=0) == b.replace(second=0, microsecond=0)
    return a == b


def section_conflict_merge(
    *, stored: Mapping[str, object], base: Mapping[str, object] | None, submitted: Mapping
) -> tuple[dict[str, object], list[str]]:
    """What a refused (stale) form becomes: ``(values, fields both changed)``.

    A field the user did not change (same as in ``base``, the version the form was
    built from) takes the stored value; a field only the user changed keeps the
    user's value; a field both changed to different values keeps the user's value
    and is listed, for the user to choose explicitly. With no ``base`` every
    difference from the stored value is listed.
    """
    values, both = {}, []
    for name, mine in submitted.items():
        theirs = stored.get(name)
        original = theirs if base is None else base.get(name)
        if base is not None and _same(mine, original):
            values[name] = theirs
            continue
        values[name] = mine
        if not _same(mine, theirs) and (base is None or not _same(theirs, original)):
            both.append(name)
    return values, both


def _confirm_warnings(
    *, patient_id, section: str, values, own: set[str], user, confirmations
) -> list[WarningConfirmation]:
    """Confirmations to store for the warnings ``values`` raise on the fields ``own``.

    A warning already confirmed for the same values (fingerprint) is not asked again;
    one confirmed now needs a reason; any other raises :class:`UnconfirmedWarnings`.
    The confirmations are returned unsaved (a new patient has no key yet).
    """
    raised = rules.warnings(values, fields=own)
    if not raised:
        return []
    stored = set()
    if patient_id is not None:
        stored = set(
            WarningConfirmation.objects.filter(
                patient_id=patient_id, code__in={r.code for r in raised}
            ).values_list("code", "fingerprint")
        )
    confirmations = confirmations or {}
    new, messages, pending = [], {}, []
    for rule in raised:
        fingerprint = rule.fingerprint(values)
        if (rule.code, fingerprint) in stored:
            continue
        reason = (confirmations.get(rule.key) or "").strip()
        if reason:
            new.append(
                WarningConfirmation(
                    patient_id=patient_id,
                    section=section,
                    code=rule.code,
                    fields=",".join(rule.fields),
                    fingerprint=fingerprint,
                    reason=reason,
                    confirmed_by=user,
                )
            )
            continue
        name = next(n for n in rule.fields if n in own)
        message = str(rule.message)
        if rule.key in confirmations:
            message = f"{message} {_('Give a reason to confirm this value.')}"
        messages.setdefault(name, []).append(message)
        pending.append(rule)
    if pending:
        raise UnconfirmedWarnings(messages, warnings=pending)
    return new


def _store_confirmations(confirmations: list[WarningConfirmation], patient, user) -> None:
    for confirmation in confirmations:
        confirmation.patient = patient
        confirmation.full_clean()
        confirmation._history_user = user
        confirmation.save()


@transaction.atomic
def section_save(
    *,
    patient: Patient,
    section_key: str,
    user,
    data: dict,
    complete: bool,
    reason: str = "",
    expected_version: int | None = None,
    confirmations: Mapping[str, str] | None = None,
) -> Section:
    """Create or update one case-report-form section of ``patient``.

    ``data`` maps clinical field names to Python values (missing keys keep the
    stored value). ``complete`` marks the section complete (all applicable fields
    required) or keeps/returns it to draft. A section stored as complete changes
    only with a ``reason`` (kept in its history entry). ``expected_version`` is the
    version the user's form was built from (0 for a section not yet started); a
    different stored version means someone else saved in between and is refused.
    Values a warning rule flags are saved only when confirmed: ``confirmations`` maps
    the rule's ``key`` to the reason (see :func:`_confirm_warnings`).
    """
    ensure_unlocked(patient)  # a locked record is read-only for everyone
    model = SECTIONS_BY_KEY[section_key]
    unknown = set(data) - set(model.clinical_fields())
    if unknown:
        raise ValueError(f"not fields of {section_key}: {sorted(unknown)}")

    stored = _stored_section(patient, model)
    stored_version = stored.version if stored is not None else 0
    if expected_version is not None and expected_version != stored_version:
        if stored is None:
            raise StaleVersion(
                _("This section was deleted while you were editing it."), stored_version=0
            )
        base = model.history.filter(patient_id=stored.pk, version=expected_version).first()
        raise StaleVersion(
            _conflict_message(model, stored, base),
            stored_version=stored_version,
            stored=stored.values(),
            base=None if base is None else {n: getattr(base, n) for n in model.clinical_fields()},
        )

    instance = stored if stored is not None else model(patient=patient)
    before = instance.values() if stored is not None else None
    was_complete = stored is not None and stored.status == SectionStatus.COMPLETE
    for name, value in data.items():
        setattr(instance, name, value)
    new_status = SectionStatus.COMPLETE if complete else SectionStatus.DRAFT

    if stored is not None and instance.values() == before and stored.status == new_status:
        return stored  # Nothing changed: no new version, no reason needed.

    reason = (reason or "").strip()
    if was_complete and not reason:
        raise ValidationError(
            {"reason_for_change": _("This section is complete: give a reason for the change.")}
        )
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError(
            {
                "reason_for_change": _("Keep the reason under %(n)d characters.")
                % {"n": REASON_MAX_LENGTH}
            }
        )

    instance.status = new_status
    if complete:
        instance.completed_by = user
        instance.completed_at = timezone.now()
    else:
        instance.completed_by = None
        instance.completed_at = None
    instance.full_clean()
    confirmed = _confirm_warnings(
        patient_id=patient.pk,
        section=model.key,
        values=patient.flat_values(override=instance),
        own=set(model.clinical_fields()),
        user=user,
        confirmations=confirmations,
    )
    instance.version = stored_version + 1
    instance._history_user = user
    if reason:
        instance._change_reason = reason
    instance.save()
    _store_confirmations(confirmed, patient, user)
    return instance
