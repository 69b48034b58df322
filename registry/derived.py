"""Derived values of the interchange contract, defined once as database expressions.

Every derived value is a three-valued expression on the ``Patient`` queryset:
True, False, or NULL when an input is not recorded. The patient overview, the
exports and the analytics all annotate querysets with these, so a definition
(e.g. "onset over 6 hours is strictly more than 6:00") exists only here and
the counting can happen inside the database.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import (
    BooleanField,
    Case,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.lookups import GreaterThan
from django.utils.translation import gettext_lazy as _

AGE_THRESHOLD = 70
ONSET_TO_DOOR_LIMIT = dt.timedelta(hours=6)
PROCEDURE_LIMIT = dt.timedelta(minutes=60)
DWI_ASPECTS_CUTOFF = 8
PC_ASPECTS_CUTOFF = 6
RECANALIZED_MTICI = ("2b", "2c", "3")
POOR_OUTCOME_MIN_MRS = 4  # poor outcome = mRS 4-6 at 3 months
GOOD_OUTCOME_MAX_MRS = 2
DEAD_MRS = 6


def _interval(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def tristate(condition, *inputs: str) -> Case:
    """True/False by ``condition``, NULL when any of ``inputs`` is not recorded."""
    missing = Q()
    for name in inputs:
        missing |= Q(**{f"{name}__isnull": True})
    return Case(
        When(missing, then=Value(None)),
        When(condition, then=Value(True)),
        default=Value(False),
        output_field=BooleanField(null=True),
    )


ONSET = "admission__onset_time"
DOOR = "admission__door_time"
GROIN = "procedure__groin_puncture_time"
END = "procedure__procedure_end_time"
MRS_3M = "followup__mrs_3m"

COMPLICATION_FLAGS = (
    "complications__new_infarct",
    "complications__ich",
    "complications__metabolic_acidosis",
)


def _any_complication() -> Case:
    any_yes = Q()
    all_no = Q()
    for name in COMPLICATION_FLAGS:
        any_yes |= Q(**{name: True})
        all_no &= Q(**{name: False})
    return Case(
        When(any_yes, then=Value(True)),
        When(all_no, then=Value(False)),
        default=Value(None),
        output_field=BooleanField(null=True),
    )


def intervals() -> dict[str, ExpressionWrapper]:
    """Durations between the timeline's time points (NULL when one is missing)."""
    return {
        "onset_to_door": _interval(DOOR, ONSET),
        "door_to_groin": _interval(GROIN, DOOR),
        "procedure_duration": _interval(END, GROIN),
    }


def flags() -> dict[str, Case]:
    """Derived yes/no values keyed by the names the study tables use."""
    return {
        "age_70_plus": tristate(Q(age_years__gte=AGE_THRESHOLD), "age_years"),
        "onset_over_6h": tristate(
            GreaterThan(_interval(DOOR, ONSET), ONSET_TO_DOOR_LIMIT), DOOR, ONSET
        ),
        "procedure_over_60min": tristate(
            GreaterThan(_interval(END, GROIN), PROCEDURE_LIMIT), END, GROIN
        ),
        "only_ris": tristate(Q(procedure__mt_performed=False), "procedure__mt_performed"),
        "any_complication": _any_complication(),
        "dwi_aspects_lt8": tristate(
            Q(imaging__dwi_aspects__lt=DWI_ASPECTS_CUTOFF), "imaging__dwi_aspects"
        ),
        "pc_aspects_lt6": tristate(
            Q(imaging__pc_aspects__lt=PC_ASPECTS_CUTOFF), "imaging__pc_aspects"
        ),
        "recanalized": tristate(
            Q(procedure__final_mtici__in=RECANALIZED_MTICI), "procedure__final_mtici"
        ),
        "poor_outcome_3m": tristate(Q(followup__mrs_3m__gte=POOR_OUTCOME_MIN_MRS), MRS_3M),
        "non_poor_3m": tristate(Q(followup__mrs_3m__lt=POOR_OUTCOME_MIN_MRS), MRS_3M),
        "good_outcome_3m": tristate(Q(followup__mrs_3m__lte=GOOD_OUTCOME_MAX_MRS), MRS_3M),
        "death_3m": tristate(Q(followup__mrs_3m=DEAD_MRS), MRS_3M),
    }


# The flags above read from the 3-month mRS (a sensitivity analysis drops them).
MRS_3M_FLAGS = ("poor_outcome_3m", "non_poor_3m", "good_outcome_3m", "death_3m")

LABELS = {
    "onset_to_door": _("onset to door"),
    "door_to_groin": _("door to groin puncture"),
    "procedure_duration": _("procedure time"),
    "age_70_plus": _("age >= 70 years"),
    "onset_over_6h": _("onset to door > 6 h"),
    "procedure_over_60min": _("procedure > 60 min"),
    "only_ris": _("only RIS (no MT)"),
    "any_complication": _("any complication"),
    "dwi_aspects_lt8": _("DWI-ASPECTS < 8"),
    "pc_aspects_lt6": _("pc-ASPECTS < 6"),
    "recanalized": _("successful recanalization (mTICI 2b-3)"),
    "poor_outcome_3m": _("poor outcome (mRS 4-6 at 3 months)"),
    "non_poor_3m": _("non-poor outcome (mRS 0-3 at 3 months)"),
    "good_outcome_3m": _("good outcome (mRS 0-2 at 3 months)"),
    "death_3m": _("death by 3 months"),
}


def annotate_derived(queryset: QuerySet, names: list[str] | None = None) -> QuerySet:
    """Annotate a ``Patient`` queryset with derived values (all, or ``names``)."""
    expressions = {**intervals(), **flags()}
    if names is not None:
        expressions = {name: expressions[name] for name in names}
    return queryset.annotate(**expressions)


def derived_values(patient) -> dict[str, object]:
    """The derived values of one patient, computed by the same expressions."""
    names = [*intervals(), *flags()]
    one = type(patient).objects.filter(pk=patient.pk)
    return annotate_derived(one).values(*names).get()


def door_dates_between(patients, date_from: dt.date | None, date_to: dt.date | None):
    """``patients`` whose door date, in the registry's time zone, is from ``date_from`` to
    ``date_to``, both days included (None: no bound). The study tables' date filter and a
    data freeze's range of door dates both count a patient's date this way."""
    from django.utils import timezone

    def start(day: dt.date) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min))

    if date_from:
        patients = patients.filter(admission__door_time__gte=start(date_from))
    if date_to:
        patients = patients.filter(admission__door_time__lt=start(date_to + dt.timedelta(days=1)))
    return patients
