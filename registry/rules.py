"""The registry's clinical rules, each stated once.

Single-field ranges live in ``RANGES`` (model validators and database check
constraints are both built from it). Branching (a field that applies only
when another field has a given value) lives in ``BRANCHING``. Rules across
fields, within or across case-report-form sections, are ``Rule`` objects in
``RULES``. Each rule reads a flat mapping keyed by interchange column names,
so the model ``clean()``, the bulk import and the consistency checks all run
the very same code.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Inclusive integer ranges of the interchange contract.
RANGES: dict[str, tuple[int, int]] = {
    "age_years": (18, 120),
    "nihss_admission": (0, 42),
    "premorbid_mrs": (0, 5),
    "admission_mrs": (0, 5),
    "dwi_aspects": (0, 10),
    "pc_aspects": (0, 10),
    "mt_passes": (1, 10),
    "residual_stenosis_pct": (0, 100),
    "discharge_mrs": (0, 6),
    "mrs_3m": (0, 6),
}

STUDY_ID_PATTERN = r"^[A-Za-z0-9-]{1,32}$"


@dataclass(frozen=True)
class Branch:
    """``field`` applies only when ``controller`` equals ``value``."""

    field: str
    controller: str
    value: object
    # The condition in words, as a nurse reads it next to the field.
    when: str = ""
    # False when a value outside the branch is still allowed (a death after the
    # 3-month contact is recorded although mRS at 3 months is not 6).
    exclusive: bool = True


BRANCHING: dict[str, Branch] = {
    b.field: b
    for b in (
        Branch("dwi_aspects", "circulation", "anterior", _("circulation is anterior")),
        Branch("pc_aspects", "circulation", "posterior", _("circulation is posterior")),
        Branch("mt_technique", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("mt_passes", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("mtici_after_mt", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("death_date", "mrs_3m", 6, _("mRS at 3 months is 6"), exclusive=False),
    )
}


def field_applies(field: str, values: Mapping[str, object]) -> bool:
    """Whether ``field`` applies to a patient with these values."""
    branch = BRANCHING.get(field)
    return branch is None or values.get(branch.controller) == branch.value


def local_date(value: dt.datetime | dt.date) -> dt.date:
    """The hospital-local calendar date of a date-time (dates pass through).

    Hospital-local is the registry's ``TIME_ZONE``, whoever is looking: the rule
    must not change with a viewer's zone (and the default zone is cached, where
    the current one is a thread-local look-up on every one of an import's rows).
    """
    if isinstance(value, dt.datetime):
        # timezone.is_aware() + localtime(), without their repeated offset look-ups:
        # this runs for every date rule of every imported row (~5 % of an import).
        if value.utcoffset() is not None:
            value = value.astimezone(timezone.get_default_timezone())
        return value.date()
    return value


@dataclass(frozen=True)
class Rule:
    """A rule over several fields.

    ``check`` receives the flat values and returns True when they satisfy the
    rule; it is called only when every field of ``requires`` has a value.
    The message is shown next to each field of ``fields`` that is on the
    form being saved (or named in the import error).
    """

    code: str
    fields: tuple[str, ...]
    message: str
    check: Callable[[Mapping[str, object]], bool]
    requires: tuple[str, ...] = ()

    def violated(self, values: Mapping[str, object]) -> bool:
        needed = self.requires or self.fields
        if any(values.get(name) is None for name in needed):
            return False
        return not self.check(values)


def _not_before(later: str, earlier: str, as_dates: bool = False):
    def check(v):
        a, b = v[later], v[earlier]
        if as_dates:
            a, b = local_date(a), local_date(b)
        return a >= b

    return check


def _death_mrs_consistent(v: Mapping[str, object]) -> bool:
    # mRS 6 at 3 months if and only if a death date on or before the follow-up.
    mrs, death, followup = v.get("mrs_3m"), v.get("death_date"), v.get("followup_date")
    died_by_followup = death is not None and (followup is None or death <= followup)
    if mrs == 6:
        return died_by_followup
    return not died_by_followup


def _branch_rule(branch: Branch) -> Rule:
    return Rule(
        code=f"{branch.field}_only_when_{branch.controller}",
        fields=(branch.field, branch.controller),
        message=_(
            "Leave this blank: it is recorded only when %(when)s (%(controller)s = %(value)s)."
        )
        % {
            "when": branch.when,
            "controller": branch.controller,
            "value": "1" if branch.value is True else branch.value,
        },
        check=lambda v, b=branch: v.get(b.controller) == b.value,
        requires=(branch.field,),
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "door_after_onset",
        ("door_time", "onset_time"),
        _("Door time must not be before onset time."),
        _not_before("door_time", "onset_time"),
    ),
    Rule(
        "groin_after_door",
        ("groin_puncture_time", "door_time"),
        _("Groin puncture time must not be before door time."),
        _not_before("groin_puncture_time", "door_time"),
    ),
    Rule(
        "end_after_groin",
        ("procedure_end_time", "groin_puncture_time"),
        _("Procedure end time must be after groin puncture time."),
        lambda v: v["procedure_end_time"] > v["groin_puncture_time"],
    ),
    Rule(
        "discharge_after_door",
        ("discharge_date", "door_time"),
        _("Discharge date must not be before the door date."),
        _not_before("discharge_date", "door_time", as_dates=True),
    ),
    Rule(
        "followup_after_discharge",
        ("followup_date", "discharge_date"),
        _("Follow-up date must be after the discharge date."),
        lambda v: v["followup_date"] > v["discharge_date"],
    ),
    Rule(
        "death_after_door",
        ("death_date", "door_time"),
        _("Death date must not be before the door date."),
        _not_before("death_date", "door_time", as_dates=True),
    ),
    Rule(
        "sich_requires_ich",
        ("sich", "ich"),
        _("Symptomatic ICH (sICH = 1) requires ICH = 1."),
        lambda v: v.get("sich") is not True or v.get("ich") is True,
        requires=("sich",),
    ),
    Rule(
        "mrs6_iff_death",
        ("mrs_3m", "death_date"),
        _(
            "mRS 6 at 3 months requires a death date on or before the follow-up date, "
            "and a death on or before the follow-up requires mRS 6."
        ),
        _death_mrs_consistent,
        requires=("mrs_3m",),
    ),
    *(_branch_rule(b) for b in BRANCHING.values() if b.exclusive),
)


@functools.lru_cache(maxsize=32)
def rules_touching(fields: frozenset[str] | None) -> tuple[Rule, ...]:
    """The rules with a field among ``fields`` (all rules for None); a form or an
    import asks for the same few sets of fields again and again."""
    return tuple(r for r in RULES if fields is None or fields.intersection(r.fields))


def violations(values: Mapping[str, object], fields: set[str] | None = None) -> list[Rule]:
    """Rules broken by ``values``; only those touching ``fields`` when given."""
    touching = rules_touching(None if fields is None else frozenset(fields))
    return [rule for rule in touching if rule.violated(values)]
