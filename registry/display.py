"""Recorded values in words: labels, choice labels, Yes/No/Not recorded, mRS in words.

Used by the patient overview, the History tab and the services' messages, so a
coded value reads the same everywhere.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .choices import MRS_LABELS

MRS_FIELDS = frozenset({"premorbid_mrs", "admission_mrs", "discharge_mrs", "mrs_3m"})
NOT_RECORDED = _("Not recorded")
YES = _("Yes")
NO = _("No")


def label(verbose_name) -> str:
    """A field's label: capitalised, except a leading abbreviation (mRS, mTICI, pc-ASPECTS)."""
    text = str(verbose_name)
    first_word = text.split(" ", 1)[0]
    if any(char.isupper() for char in first_word[1:]):
        return text
    return capfirst(text)


# For labels built once at import (form classes): translated when rendered, not before.
lazy_label = lazy(label, str)


def field_label(model, name: str) -> str:
    return label(model._meta.get_field(name).verbose_name)


def column_label(name: str) -> str:
    """The label of an interchange column (a patient or section field), as on the forms."""
    from .models import Patient, section_of_field

    model = section_of_field(name)
    if model is None:
        try:
            return field_label(Patient, name)
        except Exception:  # not a field: the column's own name is all there is
            return name
    return field_label(model, name)


# What happened to a record, in the registry's words (django-simple-history's own
# labels have no Vietnamese).
HISTORY_ACTIONS = {"+": _("Created"), "~": _("Changed"), "-": _("Deleted")}


def reason_words(reason: str | None) -> str:
    """A change's reason as the page reads it: the reasons the registry writes itself are
    stored in English and translated here; a reason someone typed is shown as typed."""
    return gettext(reason) if reason else ""


def words(field: models.Field, value) -> str:
    """One stored value of ``field`` as a nurse would read it."""
    if value is None or value == "":
        return str(NOT_RECORDED)
    if isinstance(field, models.BooleanField):
        return str(YES if value else NO)
    if field.name in MRS_FIELDS and value in MRS_LABELS:
        return str(MRS_LABELS[value])
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return date_format(value, "SHORT_DATETIME_FORMAT")
    if isinstance(value, dt.date):
        return date_format(value, "SHORT_DATE_FORMAT")
    return str(value)


def value_in_words(model, name: str, obj) -> str:
    field = model._meta.get_field(name)
    return words(field, getattr(obj, field.attname))


def history_entries(patient) -> list[dict]:
    """Audit trail of a patient and its sections, newest first, in words.

    One query per audited model (plus the sites), whatever the number of entries:
    each record is compared with the previous record of the same row.
    """
    from .models import SECTION_MODELS, Patient, Site

    entries = []
    sites = Site.objects.in_bulk()
    audited = [(Patient, {"id": patient.pk}, ["study_id", "site", "sex", "age_years"])]
    for model in SECTION_MODELS:
        audited.append((model, {"patient_id": patient.pk}, ["status", *model.clinical_fields()]))
    for model, lookup, names in audited:
        records = (
            model.history.filter(**lookup)
            .select_related("history_user")
            .order_by("history_date", "history_id")
        )
        previous = None
        for record in records:
            changes = []
            if record.history_type != "-":
                for name in names:
                    field = model._meta.get_field(name)
                    new = getattr(record, field.attname)
                    old = getattr(previous, field.attname) if previous is not None else None
                    if (
                        previous is not None
                        and old == new
                        or previous is None
                        and new
                        in (
                            None,
                            "",
                        )
                    ):
                        continue
                    changes.append(
                        {
                            "label": field_label(model, name),
                            "old": _site_words(sites, old) if name == "site" else words(field, old),
                            "new": _site_words(sites, new) if name == "site" else words(field, new),
                        }
                    )
            entries.append(
                {
                    "when": record.history_date,
                    "who": record.history_user,
                    "section": capfirst(model._meta.verbose_name),
                    "action": HISTORY_ACTIONS[record.history_type],
                    "created": record.history_type == "+",
                    "changes": changes,
                    "reason": reason_words(record.history_change_reason),
                }
            )
            previous = record
    entries.extend(_confirmation_entries(patient))
    entries.sort(key=lambda entry: entry["when"], reverse=True)
    return entries


def _confirmation_entries(patient) -> list[dict]:
    """Each warning a nurse confirmed: the rule's message, the values, who and why."""
    from . import rules
    from .models import SECTIONS_BY_KEY, WarningConfirmation

    entries = []
    confirmations = WarningConfirmation.objects.filter(patient=patient).select_related(
        "confirmed_by"
    )
    for confirmation in confirmations:
        rule = rules.by_key(f"{confirmation.code}__{confirmation.fields.split(',')[0]}")
        model = SECTIONS_BY_KEY.get(confirmation.section)
        entries.append(
            {
                "when": confirmation.confirmed_at,
                "who": confirmation.confirmed_by,
                "section": capfirst(model._meta.verbose_name) if model else confirmation.section,
                "action": _("Warning confirmed"),
                "created": True,
                "changes": [],
                "warning": rule.message if rule is not None else confirmation.code,
                "reason": confirmation.reason,
            }
        )
    return entries


def _site_words(sites, site_id) -> str:
    return str(sites[site_id]) if site_id in sites else str(NOT_RECORDED)
