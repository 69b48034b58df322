"""Write operations on the registry: every change of clinical data goes through here.

Each service is keyword-only, validates with ``full_clean()`` before ``save()``
and records who made the change (and why, for a completed section) in the
django-simple-history audit trail.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .choices import SectionStatus
from .display import field_label, value_in_words
from .models import SECTIONS_BY_KEY, Patient, PatientLock, Section

# The audit table stores the reason in a 100-character column.
REASON_MAX_LENGTH = 100


class StaleVersion(ValidationError):
    """A save based on a copy of the section older than the stored one."""

    def __init__(self, message, *, stored_version: int):
        super().__init__(message, code="stale_version")
        self.stored_version = stored_version


def is_locked(patient: Patient) -> bool:
    """Whether the patient's record is locked (one query, none when prefetched)."""
    try:
        return patient.lock.locked
    except PatientLock.DoesNotExist:
        return False


def ensure_unlocked(patient: Patient) -> None:
    """Refuse any change to a locked record (forms, import, workflow services).

    Raises ``PermissionDenied`` (a view answers 403) whose message says why;
    the import catches it per row like a ``ValidationError``.
    """
    if PatientLock.objects.filter(patient_id=patient.pk, locked=True).exists():
        raise PermissionDenied(
            _("The record of %(study_id)s is locked; ask a monitor to unlock it.")
            % {"study_id": patient.study_id}
        )


def patient_create(*, user, site, study_id: str, sex: str, age_years: int) -> Patient:
    """Register a new patient at ``site``; the caller has checked ``site`` is editable."""
    patient = Patient(study_id=study_id, site=site, sex=sex, age_years=age_years, created_by=user)
    patient.full_clean()
    patient._history_user = user
    with transaction.atomic():
        patient.save()
    return patient


def _stored_section(patient: Patient, model: type[Section]) -> Section | None:
    # Lock the row so two saves of the same section cannot interleave (no-op on SQLite,
    # whose writes are serialised anyway).
    stored = model.objects.select_for_update().filter(patient=patient).first()
    if stored is not None:
        stored.patient = patient  # reuse the caller's patient (and its cached sections)
    return stored


def _conflict_message(model: type[Section], stored: Section, expected_version: int) -> str:
    """What another user changed since ``expected_version`` (label: stored value)."""
    changed = []
    base = model.history.filter(patient_id=stored.pk, version=expected_version).first()
    for name in model.clinical_fields():
        if base is None or getattr(base, name) != getattr(stored, name):
            changed.append(f"{field_label(model, name)}: {value_in_words(model, name, stored)}")
    if base is not None and base.status != stored.status:
        changed.append(f"{field_label(model, 'status')}: {stored.get_status_display()}")
    detail = "; ".join(changed) if changed else _("no clinical value")
    return _(
        "This section was changed by someone else while you were editing it. "
        "Review the stored values and enter your change again. Now stored: %(detail)s."
    ) % {"detail": detail}


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
) -> Section:
    """Create or update one case-report-form section of ``patient``.

    ``data`` maps clinical field names to Python values (missing keys keep the
    stored value). ``complete`` marks the section complete (all applicable fields
    required) or keeps/returns it to draft. A section stored as complete changes
    only with a ``reason`` (kept in its history entry). ``expected_version`` is the
    version the user's form was built from (0 for a section not yet started); a
    different stored version means someone else saved in between and is refused.
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
        raise StaleVersion(
            _conflict_message(model, stored, expected_version), stored_version=stored_version
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
    instance.version = stored_version + 1
    instance._history_user = user
    if reason:
        instance._change_reason = reason
    instance.save()
    return instance
