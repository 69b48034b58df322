"""The registry's clinical rules, each stated once.

Single-field ranges live in ``RANGES`` (model validators and database check
constraints are both built from it). Branching (a field that applies only
when another field has a given value) lives in ``BRANCHING``. Rules across
fields, within or across case-report-form sections, are ``Rule`` objects in
``RULES``. Each rule reads a flat mapping keyed by interchange column names,
so the model ``clean()``, the bulk import and the consistency checks all run
the very same code.

A rule has a severity. An *error* refuses the value. A *warning* marks a
plausible but suspicious value: a form saves it only once the nurse confirms it
with a reason (``registry.services.section_save``), an import reports it and
imports the row, the checks list it. Both kinds sit in ``RULES``, side by side.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.conf import settings
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
    "nihss_24h": (0, 42),
}

STUDY_ID_PATTERN = r"^[A-Za-z0-9-]{1,32}$"


@dataclass(frozen=True)
class Branch:
    """``field`` applies only when ``controller`` equals ``value`` (one of ``value``
    when it is a tuple)."""

    field: str
    controller: str
    value: object
    # The condition in words, as a nurse reads it next to the field.
    when: str = ""
    # False when a value outside the branch is still allowed (a death after the
    # 3-month contact is recorded although mRS at 3 months is not 6).
    exclusive: bool = True

    @property
    def values(self) -> tuple:
        """The controller's values under which the field applies."""
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def holds(self, values: Mapping[str, object]) -> bool:
        """Whether the controller has one of ``values`` in this patient's ``values``."""
        return values.get(self.controller) in self.values

    @property
    def value_text(self) -> str:
        """The controller's values as the interchange file writes them."""
        return ", ".join("1" if v is True else str(v) for v in self.values)


BRANCHING: dict[str, Branch] = {
    b.field: b
    for b in (
        Branch("dwi_aspects", "circulation", "anterior", _("circulation is anterior")),
        Branch("pc_aspects", "circulation", "posterior", _("circulation is posterior")),
        Branch("mt_technique", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("mt_passes", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("mtici_after_mt", "mt_performed", True, _("mechanical thrombectomy was performed")),
        Branch("death_date", "mrs_3m", 6, _("mRS at 3 months is 6"), exclusive=False),
        Branch("needle_time", "iv_thrombolysis", True, _("IV thrombolysis was given")),
        Branch(
            "reperfusion_time",
            "final_mtici",
            ("2b", "2c", "3"),
            _("the final mTICI is 2b or better"),
        ),
    )
}


def field_applies(field: str, values: Mapping[str, object]) -> bool:
    """Whether ``field`` applies to a patient with these values."""
    branch = BRANCHING.get(field)
    return branch is None or branch.holds(values)


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


ERROR = "error"
WARNING = "warning"

# The 3-month follow-up: due this many days after onset (after the door when the onset
# is unknown), within FOLLOWUP_WINDOW_DAYS (setting, default 14) either side.
FOLLOWUP_DAYS = 90
DEFAULT_WINDOW_DAYS = 14


def window_days() -> int:
    """``settings.FOLLOWUP_WINDOW_DAYS`` (days either side of the due date), default 14."""
    return int(getattr(settings, "FOLLOWUP_WINDOW_DAYS", DEFAULT_WINDOW_DAYS))


def followup_window(onset, door, *, window: int | None = None):
    """``(due, first day, last day)`` of the 3-month follow-up, or None without a date."""
    start = onset or door
    if start is None:
        return None
    window = window_days() if window is None else window
    due = local_date(start) + dt.timedelta(days=FOLLOWUP_DAYS)
    span = dt.timedelta(days=window)
    return due, due - span, due + span


def followup_in_window(followup_date, onset, door, *, window: int | None = None) -> bool | None:
    """Whether a follow-up date lies in the 3-month window (None when it cannot say)."""
    found = followup_window(onset, door, window=window)
    if found is None or followup_date is None:
        return None
    return found[1] <= followup_date <= found[2]


@dataclass(frozen=True)
class Rule:
    """A rule over several fields.

    ``check`` receives the flat values and returns True when they satisfy the
    rule; it is called only when every field of ``requires`` has a value.
    The message is shown next to each field of ``fields`` that is on the
    form being saved (or named in the import error). ``severity`` is ``ERROR``
    (the value is refused) or ``WARNING`` (saved once confirmed with a reason).
    """

    code: str
    fields: tuple[str, ...]
    message: str
    check: Callable[[Mapping[str, object]], bool]
    requires: tuple[str, ...] = ()
    severity: str = ERROR

    @property
    def key(self) -> str:
        """Identifies the rule among ``RULES`` (several warnings share a code)."""
        return f"{self.code}__{self.fields[0]}"

    @property
    def is_warning(self) -> bool:
        return self.severity == WARNING

    @functools.cached_property
    def needed(self) -> tuple[str, ...]:
        """The fields that must have a value for the rule to be checked."""
        return self.requires or self.fields

    def violated(self, values: Mapping[str, object]) -> bool:
        # A plain loop: the checks run every rule over every patient of the registry.
        get = values.get
        for name in self.needed:
            if get(name) is None:
                return False
        return not self.check(values)

    def fingerprint(self, values: Mapping[str, object]) -> str:
        """A digest of the values the rule looks at: a confirmation holds until one changes."""
        text = "|".join(f"{name}={_canonical(values.get(name))}" for name in self.fields)
        return hashlib.sha256(f"{self.code}|{text}".encode()).hexdigest()


def _canonical(value) -> str:
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        value = value.astimezone(dt.UTC)
    return "" if value is None else str(value)


def _not_before(later: str, earlier: str, as_dates: bool = False):
    def check(v):
        a, b = v[later], v[earlier]
        if as_dates:
            a, b = local_date(a), local_date(b)
        return a >= b

    return check


# Every date and date-time of the case-report form (the future_date warning).
DATE_FIELDS = (
    "onset_time",
    "door_time",
    "groin_puncture_time",
    "procedure_end_time",
    "discharge_date",
    "followup_date",
    "death_date",
    "imaging_time",
    "needle_time",
    "reperfusion_time",
)

# Recorded when known, not required to mark a section complete: the quality-of-care
# times and the 24-hour NIHSS were added to the form after patients had been entered,
# whose sections stay complete without them (a file without these columns imports
# with the same statuses).
RECORDED_WHEN_KNOWN = frozenset({"imaging_time", "needle_time", "reperfusion_time", "nihss_24h"})


_CLOCK: list = [float("-inf"), None, None]  # read at (monotonic), now, local today


def _clock() -> tuple[dt.datetime, dt.date]:
    """Now and the registry's local date, read at most once a second: an import checks
    seven dates of every row against them (reading the clock each time cost more than
    all the other warnings together)."""
    moment = time.monotonic()
    if moment - _CLOCK[0] > 1.0:
        now = timezone.now()
        _CLOCK[:] = [moment, now, now.astimezone(timezone.get_default_timezone()).date()]
    return _CLOCK[1], _CLOCK[2]


def _not_in_future(name: str):
    def check(v):
        value = v[name]
        now, today = _clock()
        return value <= (now if isinstance(value, dt.datetime) else today)

    return check


def _future_rule(name: str) -> Rule:
    return Rule(
        "future_date",
        (name,),
        _("This date is in the future."),
        _not_in_future(name),
        severity=WARNING,
    )


def _at_most(later: str, earlier: str, limit: dt.timedelta):
    return lambda v: v[later] - v[earlier] <= limit


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
            "value": branch.value_text,
        },
        check=branch.holds,
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
        "imaging_after_door",
        ("imaging_time", "door_time"),
        _("Imaging time must not be before door time."),
        _not_before("imaging_time", "door_time"),
    ),
    Rule(
        "needle_after_door",
        ("needle_time", "door_time"),
        _("Needle time (thrombolytic bolus) must not be before door time."),
        _not_before("needle_time", "door_time"),
    ),
    Rule(
        "reperfusion_after_groin",
        ("reperfusion_time", "groin_puncture_time"),
        _("Reperfusion time must be after groin puncture time."),
        lambda v: v["reperfusion_time"] > v["groin_puncture_time"],
    ),
    Rule(
        "reperfusion_by_procedure_end",
        ("reperfusion_time", "procedure_end_time"),
        _("Reperfusion time must not be after the procedure end time."),
        _not_before("procedure_end_time", "reperfusion_time"),
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
    # --- warnings: plausible but suspicious; saved once confirmed with a reason ---
    *(_future_rule(name) for name in DATE_FIELDS),
    Rule(
        "onset_to_door_over_24h",
        ("door_time", "onset_time"),
        _("More than 24 hours from onset to door: check both times."),
        _at_most("door_time", "onset_time", dt.timedelta(hours=24)),
        severity=WARNING,
    ),
    Rule(
        "door_to_groin_over_6h",
        ("groin_puncture_time", "door_time"),
        _("More than 6 hours from door to groin puncture: check both times."),
        _at_most("groin_puncture_time", "door_time", dt.timedelta(hours=6)),
        severity=WARNING,
    ),
    Rule(
        "procedure_over_4h",
        ("procedure_end_time", "groin_puncture_time"),
        _("The procedure lasted more than 4 hours: check the groin puncture and end times."),
        _at_most("procedure_end_time", "groin_puncture_time", dt.timedelta(hours=4)),
        severity=WARNING,
    ),
    Rule(
        "followup_out_of_window",
        ("followup_date", "onset_time", "door_time"),
        _(
            "The 3-month follow-up date is outside 90 days ± the follow-up window after "
            "onset (after the door date when the onset is unknown)."
        ),
        lambda v: (
            followup_in_window(v["followup_date"], v.get("onset_time"), v.get("door_time"))
            is not False
        ),
        requires=("followup_date",),
        severity=WARNING,
    ),
    Rule(
        "mrs_3m_better_than_premorbid",
        ("mrs_3m", "premorbid_mrs"),
        _("The mRS at 3 months is better than before the stroke: possible, but rare."),
        lambda v: v["mrs_3m"] >= v["premorbid_mrs"],
        severity=WARNING,
    ),
    Rule(
        "death_date_without_mrs_6",
        ("death_date", "mrs_3m"),
        _("A death date is recorded but the mRS at 3 months is not 6 (dead)."),
        lambda v: v.get("mrs_3m") == 6,
        requires=("death_date",),
        severity=WARNING,
    ),
    Rule(
        "mrs_6_without_death_date",
        ("discharge_mrs", "death_date"),
        _("mRS 6 (dead) at discharge but no death date recorded."),
        lambda v: v["discharge_mrs"] != 6 or v.get("death_date") is not None,
        requires=("discharge_mrs",),
        severity=WARNING,
    ),
    Rule(
        "age_over_100",
        ("age_years",),
        _("Age over 100 years: check the age."),
        lambda v: v["age_years"] <= 100,
        severity=WARNING,
    ),
)


@functools.lru_cache(maxsize=64)
def rules_touching(fields: frozenset[str] | None, severity: str = ERROR) -> tuple[Rule, ...]:
    """The rules of ``severity`` with a field among ``fields`` (all for None); a form or
    an import asks for the same few sets of fields again and again."""
    return tuple(
        r
        for r in RULES
        if r.severity == severity and (fields is None or fields.intersection(r.fields))
    )


def violations(values: Mapping[str, object], fields: set[str] | None = None) -> list[Rule]:
    """Error rules broken by ``values``; only those touching ``fields`` when given."""
    touching = rules_touching(None if fields is None else frozenset(fields))
    return [rule for rule in touching if rule.violated(values)]


def warnings(values: Mapping[str, object], fields: set[str] | None = None) -> list[Rule]:
    """Warning rules raised by ``values``; only those touching ``fields`` when given."""
    touching = rules_touching(None if fields is None else frozenset(fields), WARNING)
    return [rule for rule in touching if rule.violated(values)]


def by_key(key: str) -> Rule | None:
    return _BY_KEY.get(key)


_BY_KEY = {rule.key: rule for rule in RULES}
