"""Synthetic patients: how every case-report-form field is drawn, stated once.

``FIELDS`` holds one :class:`Draw` per interchange column, in contract order:

- ``typical``: the value of the *typical patient*, one valid and complete patient
  of the study. The tests' factories and interchange rows are this patient, and
  the demo cohort (``registry.demo``) takes from it every column its plan leaves
  open: all its patients had hypertension, a pre-procedural mRS of 5, DAPT loading
  and a telephone follow-up, as this patient has (``tests/test_demo.py`` checks
  the published counts).
- ``many``: how the column is drawn for ``n`` patients at once with numpy
  (:func:`draw`; the benchmark cohorts of ``benchmarks/make_cohort.py``).

Two rules hold for every draw instead of being restated per field: a field
outside its branch (``rules.BRANCHING``) is blank, and a time that ``rules.RULES``
orders after another is declared ``after`` it and drawn as a delay, so that the
typical delays also place a time the demo does not plan.

numpy is imported by the vectorised path only: ``seed_demo`` and the factories do
without it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry import rules

Many = Callable[["Cohort"], Any]  # the column's values for the cohort's n patients

# The typical patient's onset, in the study hospital's time (UTC+7).
ONSET = dt.datetime(2020, 6, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
# Drawn onsets spread over ten years from this hospital-local time.
FIRST_ONSET, ONSET_YEARS = "2016-01-01T00:00", 10

ANTERIOR_SITES = ("ica_extra", "ica_intra", "m1", "m2")
POSTERIOR_SITES = ("va_extra", "va_intra", "ba")
MTICI = ("0", "1", "2a", "2b", "2c", "3")
SELF_EXPANDING_DEVICES = ("Acclino 4.0 x 25", "Enterprise 4.5 x 22", "Neuroform Atlas 3.0 x 21")
BALLOON_DEVICES = ("Apollo 2.5 x 13", "Integrity 2.25 x 12")

# Sections written but left blank in a share of patients: those lost to follow-up,
# who are then excluded from the analysis (Cohort.exclusions()).
LEFT_BLANK = {"followup": 0.02}
# Sections not written yet in a share of patients: the 3-month visit is not due.
NOT_STARTED = {"followup": 0.01}
# Screened and not enrolled, as shares of the enrolled: not eligible (a criterion of
# the paper's Figure 1, weighted in ScreeningExclusion's order), consent refused.
NOT_ELIGIBLE, CONSENT_REFUSED = 0.12, 0.03
EXCLUSION_WEIGHTS = (0.35, 0.3, 0.25, 0.1)
# Consent of the enrolled, in CONSENT_GIVEN's order: the patient, a representative.
CONSENT_WEIGHTS = (0.3, 0.7)


@dataclass(frozen=True)
class Draw:
    """How one interchange column is drawn."""

    typical: object
    many: Many
    # A time drawn after this column (a rules.RULES order): ``typical`` is then the
    # delay, a timedelta, and ``many`` gives whole minutes (date-times) or days (dates).
    after: str = ""
    # Share of patients in whom the field is not recorded although it applies.
    unknown: float = 0.0


# --- the vocabulary of the draws -----------------------------------------------


def share(p: float) -> Many:
    """Yes in a share ``p`` of patients."""
    return lambda c: c.rng.random(c.n) < p


def pick(options, p=None) -> Many:
    """One of ``options``: a mapping of each to its weight, or a sequence of options
    with the weights ``p`` (equal by default)."""
    return lambda c: _choose(c.rng, options, c.n, p)


def _choose(rng, options, size: int, p=None):
    import numpy as np

    if isinstance(options, dict):
        options, p = tuple(options), tuple(options.values())
    values = np.asarray(options)
    if values.dtype.kind == "U":
        values = values.astype(object)
    return values[rng.choice(len(values), size=size, p=p)]


def normal(mean: float, sd: float, low=None, high=None) -> Many:
    """Whole numbers around ``mean``, within ``low``-``high`` when given (and always
    within the column's ``rules.RANGES``)."""

    def many(c):
        import numpy as np

        values = np.rint(c.rng.normal(mean, sd, c.n))
        if low is not None or high is not None:
            values = np.clip(values, low, high)
        return values.astype(np.int64)

    return many


def lognormal(median: float, sigma: float, low: int, high: int) -> Many:
    """Whole numbers skewed to the right, as delays are: ``low``-``high``."""

    def many(c):
        import numpy as np

        values = np.exp(c.rng.normal(np.log(median), sigma, c.n))
        return np.clip(np.rint(values), low, high).astype(np.int64)

    return many


def uniform(low: int, high: int) -> Many:
    """Whole numbers from ``low`` to ``high``, equally likely."""
    return lambda c: c.rng.integers(low, high + 1, c.n)


def by(column: str, **cases: Many) -> Many:
    """Drawn by ``cases[value of column]``."""

    def many(c):
        import numpy as np

        out = np.empty(c.n, dtype=object)
        for value, case in cases.items():
            chosen = c[column] == value
            out[chosen] = case(c)[chosen]
        return out

    return many


def same_as(column: str, p: float, otherwise: Many) -> Many:
    """The value of ``column`` in a share ``p`` of patients, ``otherwise`` in the rest."""

    def many(c):
        import numpy as np

        return np.where(c.rng.random(c.n) < p, c[column], otherwise(c))

    return many


def only_with(flag: str, p: float) -> Many:
    """Yes in a share ``p`` of the patients with ``flag`` (a rule requires it)."""
    return lambda c: c[flag] & (c.rng.random(c.n) < p)


def site_weights(k: int):
    """Unequal site sizes (a few large centres, many small), largest first."""
    import numpy as np

    w = 1.0 / np.arange(1, k + 1) ** 0.5
    return w / w.sum()


def _sites(c):
    return pick(c.sites, p=site_weights(len(c.sites)))(c)


def _study_ids(c):
    # Site-prefixed, as multi-centre registries number them: the list's order.
    import numpy as np

    numbers = np.strings.zfill(c.ids.astype(str), 8)
    return np.strings.add(np.strings.add(c["site"].astype(str), "-"), numbers).astype(object)


def _onsets(c):
    import numpy as np

    minutes = c.rng.integers(0, ONSET_YEARS * 365 * 24 * 60, c.n)
    return np.datetime64(FIRST_ONSET, "m") + minutes.astype("timedelta64[m]")


def _other_diagnosis(c):
    import numpy as np

    return np.where(c["mri_diagnosis"] == "occlusion", "stenosis", "occlusion").astype(object)


def _mrs_3m(c):
    # Who died in hospital is dead at 3 months.
    import numpy as np

    later = pick(range(7), p=(0.15, 0.15, 0.15, 0.15, 0.15, 0.12, 0.13))(c)
    return np.where(c["discharge_mrs"] == 6, 6, later)


def _death_delays(c):
    # Days after the door date: by discharge for who died in hospital (mRS 6 at
    # discharge), by the follow-up for the others (mRS 6 iff a death by then).
    import numpy as np

    door = c["door_time"].astype("datetime64[D]")
    last = np.where(c["discharge_mrs"] == 6, c["discharge_date"], c["followup_date"])
    span = (last - door).astype(np.int64)
    return np.floor(c.rng.random(c.n) * (span + 1)).astype(np.int64)


def _door_to_groin(c):
    # Minutes: a median of 60-100 by site (the first site the fastest) that improves
    # by a third over the ten years of onsets, as a centre's quality programme does.
    import numpy as np

    rank = np.searchsorted(np.asarray(sorted(c.sites), dtype=object), c["site"])
    site_median = 60 + 40 * rank / max(len(c.sites) - 1, 1)
    elapsed = (c["onset_time"] - np.datetime64(FIRST_ONSET, "m")).astype(np.int64)
    progress = elapsed / (ONSET_YEARS * 365 * 24 * 60)
    median = site_median * (1.2 - 0.4 * progress)
    values = np.exp(np.log(median) + c.rng.normal(0, 0.45, c.n))
    return np.clip(np.rint(values), 10, 600).astype(np.int64)


def _between(c, later: str, earlier: str):
    """Whole minutes from ``earlier`` to ``later`` (both drawn)."""
    import numpy as np

    return (c[later] - c[earlier]).astype("timedelta64[m]").astype(np.int64)


def _door_to_imaging(c):
    # Before the groin puncture, which imaging decides.
    import numpy as np

    delay = lognormal(20, 0.6, 3, 240)(c)
    return np.maximum(np.minimum(delay, _between(c, "groin_puncture_time", "door_time") - 5), 0)


def _door_to_needle(c):
    # The bolus goes before the groin puncture, about an hour after the door.
    import numpy as np

    delay = lognormal(50, 0.45, 10, 240)(c)
    return np.maximum(np.minimum(delay, _between(c, "groin_puncture_time", "door_time")), 0)


def _groin_to_reperfusion(c):
    # Within the procedure: after the puncture, by its end.
    import numpy as np

    delay = lognormal(30, 0.5, 5, 240)(c)
    return np.maximum(
        np.minimum(delay, _between(c, "procedure_end_time", "groin_puncture_time")), 1
    )


_SITES_BY_CIRCULATION = {"anterior": pick(ANTERIOR_SITES), "posterior": pick(POSTERIOR_SITES)}

FIELDS: dict[str, Draw] = {
    "study_id": Draw("T-001", _study_ids),
    "site": Draw("A", _sites),
    "sex": Draw("male", pick({"female": 0.4, "male": 0.6})),
    "age_years": Draw(63, normal(64, 13, high=100)),
    # Admission
    "onset_time": Draw(ONSET, _onsets, unknown=0.03),
    "door_time": Draw(dt.timedelta(hours=4), lognormal(240, 0.7, 20, 24 * 60), after="onset_time"),
    "transfer": Draw(False, share(0.4)),
    "nihss_admission": Draw(18, normal(15, 6)),
    "premorbid_mrs": Draw(0, pick(range(6), p=(0.6, 0.2, 0.1, 0.05, 0.03, 0.02))),
    "admission_mrs": Draw(5, pick(range(6), p=(0.01, 0.02, 0.05, 0.12, 0.35, 0.45))),
    "hypertension": Draw(True, share(0.65)),
    "smoking": Draw(False, share(0.3)),
    "diabetes": Draw(False, share(0.2)),
    "myocardial_infarction": Draw(False, share(0.08)),
    "atrial_fibrillation": Draw(False, share(0.15)),
    "chronic_kidney_disease": Draw(False, share(0.07)),
    "dysphagia": Draw(False, share(0.3)),
    "iv_thrombolysis": Draw(False, share(0.25)),
    # Imaging
    "circulation": Draw("anterior", pick({"anterior": 0.75, "posterior": 0.25})),
    "mri_diagnosis": Draw("occlusion", pick({"occlusion": 0.8, "stenosis": 0.2})),
    "mri_site": Draw(
        "m1",
        by(
            "circulation",
            anterior=pick(ANTERIOR_SITES, p=(0.1, 0.25, 0.45, 0.2)),
            posterior=pick(POSTERIOR_SITES, p=(0.15, 0.35, 0.5)),
        ),
    ),
    "swi_clot": Draw(True, share(0.6)),
    "dwi_aspects": Draw(8, normal(8, 1.8)),
    "pc_aspects": Draw(7, normal(7, 2)),
    # Procedure
    "anesthesia": Draw("general", pick({"sedation": 0.6, "general": 0.4})),
    "groin_puncture_time": Draw(dt.timedelta(hours=1), _door_to_groin, after="door_time"),
    "procedure_end_time": Draw(
        dt.timedelta(minutes=50), normal(70, 30, low=15, high=300), after="groin_puncture_time"
    ),
    "dsa_diagnosis": Draw("occlusion", same_as("mri_diagnosis", 0.9, _other_diagnosis)),
    "dsa_site": Draw("m1", same_as("mri_site", 0.9, by("circulation", **_SITES_BY_CIRCULATION))),
    "mt_performed": Draw(True, share(0.7)),
    "mt_technique": Draw(
        "aspiration",
        pick({"aspiration": 0.4, "stent_retriever": 0.35, "combined": 0.25}),
    ),
    "mt_passes": Draw(2, pick(range(1, 6), p=(0.4, 0.3, 0.15, 0.1, 0.05))),
    "mtici_after_mt": Draw("2a", pick(MTICI, p=(0.2, 0.2, 0.3, 0.15, 0.1, 0.05))),
    "stent_type": Draw(
        "self_expanding", pick({"self_expanding": 0.55, "balloon_expandable": 0.45})
    ),
    "stent_device": Draw(
        "Acclino 4.0 x 25",
        by(
            "stent_type",
            self_expanding=pick(SELF_EXPANDING_DEVICES),
            balloon_expandable=pick(BALLOON_DEVICES),
        ),
    ),
    "post_dilation": Draw(False, share(0.2)),
    "residual_stenosis_pct": Draw(10, normal(15, 12)),
    "dapt_loading": Draw(True, share(0.7)),
    "final_mtici": Draw("3", pick(MTICI, p=(0.03, 0.03, 0.06, 0.28, 0.2, 0.4))),
    # Complications and discharge
    "ich": Draw(False, share(0.18)),
    "sich": Draw(False, only_with("ich", 0.4)),
    "new_infarct": Draw(False, share(0.2)),
    "cerebral_swelling": Draw(False, share(0.1)),
    "decompressive_craniectomy": Draw(False, only_with("cerebral_swelling", 0.3)),
    "metabolic_acidosis": Draw(False, share(0.04)),
    "discharge_date": Draw(dt.timedelta(days=11), uniform(2, 30), after="door_time"),
    "discharge_mrs": Draw(4, pick(range(7), p=(0.12, 0.16, 0.16, 0.16, 0.16, 0.16, 0.08))),
    # 3-month follow-up
    "followup_date": Draw(dt.timedelta(days=79), uniform(80, 100), after="discharge_date"),
    "mrs_3m": Draw(2, _mrs_3m),
    "followup_method": Draw("telephone", pick({"telephone": 0.7, "clinic": 0.3})),
    "rehabilitation": Draw(True, share(0.5)),
    "death_date": Draw(dt.timedelta(days=30), _death_delays, after="door_time"),
    # Columns appended to the contract (quality of care); recorded when known.
    "imaging_time": Draw(
        dt.timedelta(minutes=20), _door_to_imaging, after="door_time", unknown=0.05
    ),
    "needle_time": Draw(dt.timedelta(minutes=45), _door_to_needle, after="door_time", unknown=0.05),
    "reperfusion_time": Draw(
        dt.timedelta(minutes=15), _groin_to_reperfusion, after="groin_puncture_time", unknown=0.1
    ),
    "nihss_24h": Draw(10, normal(10, 7), unknown=0.1),
}


# --- one patient ------------------------------------------------------------------


def _is_date(name: str) -> bool:
    from registry.interchange.columns import DATE, by_name

    return by_name()[name].kind == DATE


def _later(name: str, anchor, delay: dt.timedelta):
    if anchor is None:
        return None
    if _is_date(name):
        return rules.local_date(anchor) + delay
    return anchor + delay


def row(**planned) -> dict[str, object]:
    """One patient's typed interchange row: the ``planned`` values, the typical
    patient's for every other column (a time at its typical delay after the one it
    follows), and blank where a field is outside its branch. ``row()`` is the
    typical patient."""
    unknown = set(planned) - set(FIELDS)
    if unknown:
        raise ValueError(f"not interchange columns: {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    for name, spec in FIELDS.items():  # contract order: a time after the one it follows
        if name in planned:
            values[name] = planned[name]
        elif spec.after:
            values[name] = _later(name, values[spec.after], spec.typical)
        else:
            values[name] = spec.typical
    return {name: v if rules.field_applies(name, values) else None for name, v in values.items()}


# --- many patients (numpy) ------------------------------------------------------------


class Table:
    """Drawn rows of one table: numpy arrays keyed by model field name, with the
    masks of the blank cells."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: dict[str, Any] = {}
        self.blank: dict[str, Any] = {}

    def add(self, name: str, values, blank=None) -> None:
        import numpy as np

        values = np.full(self.n, values) if np.isscalar(values) else np.asarray(values)
        self.values[name] = values.astype(object) if values.dtype.kind == "U" else values
        self.blank[name] = np.zeros(self.n, dtype=bool) if blank is None else blank

    def python(self, name: str) -> list:
        """A column as Python values (aware date-times in the registry's zone; None
        for blank), as the ORM takes them."""
        import numpy as np
        from django.utils import timezone

        values = self.values[name]
        if values.dtype.kind == "M" and np.datetime_data(values.dtype)[0] != "D":
            zone = timezone.get_default_timezone()
            found = [timezone.make_aware(v, zone) for v in values.astype("datetime64[m]").tolist()]
        else:
            found = values.tolist()
        return [None if b else v for v, b in zip(found, self.blank[name].tolist(), strict=True)]

    def records(self) -> list[dict[str, object]]:
        columns = {name: self.python(name) for name in self.values}
        return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


class Cohort(Table):
    """``n`` synthetic patients (:func:`draw`). Date-times are hospital-local wall
    clock (``datetime64[m]``), dates ``datetime64[D]``; the values hold even where
    blank, so that what follows a blank onset still follows the onset."""

    def __init__(self, rng, ids, sites) -> None:
        super().__init__(len(ids))
        self.rng, self.ids, self.sites = rng, ids, tuple(sites)
        self.missing: dict[str, Any] = {}
        self.left_blank = {key: rng.random(self.n) < p for key, p in LEFT_BLANK.items()}
        self.not_started = {key: rng.random(self.n) < p for key, p in NOT_STARTED.items()}

    def __getitem__(self, name: str):
        """A column's values, drawn on first use (a draw reads the columns it needs)."""
        if name not in self.values:
            self.values[name] = self._draw(name)
        return self.values[name]

    def _draw(self, name: str):
        import numpy as np

        spec = FIELDS[name]
        values = spec.many(self)
        if spec.after:
            unit = "D" if _is_date(name) else "m"
            start = self[spec.after].astype(f"datetime64[{unit}]")
            values = start + values.astype(f"timedelta64[{unit}]")
        if name in rules.RANGES:
            values = np.clip(values, *rules.RANGES[name])
        return values

    def mark_blanks(self) -> None:
        """Blank what is not recorded, and every field outside its branch."""
        import numpy as np

        from registry.models import section_of_field

        none = np.zeros(self.n, dtype=bool)
        for name, spec in FIELDS.items():  # contract order: a controller comes first
            section = section_of_field(name)
            missing = self.rng.random(self.n) < spec.unknown if spec.unknown else none
            if section is not None and section.key in self.left_blank:
                missing = missing | self.left_blank[section.key]
            self.missing[name] = self.blank[name] = missing
            branch = rules.BRANCHING.get(name)
            if branch is not None:
                chosen = np.isin(self[branch.controller], np.asarray(branch.values, dtype=object))
                applies = chosen & ~self.blank[branch.controller]
                self.blank[name] = missing | ~applies

    def present(self, key: str):
        """Patients with section ``key`` written."""
        import numpy as np

        return ~self.not_started.get(key, np.zeros(self.n, dtype=bool))

    def complete(self, key: str):
        """Patients whose section ``key`` has every applicable field recorded."""
        import numpy as np

        from registry.models import SECTIONS_BY_KEY

        fields = SECTIONS_BY_KEY[key].clinical_fields()
        required = [name for name in fields if name not in rules.RECORDED_WHEN_KNOWN]
        return ~np.any([self.missing[name] for name in required], axis=0)

    def patients(self) -> Table:
        """The patient table. The columns stored from the sections are left to
        whoever writes it (``registry.models.bulk`` computes them by their definition)."""
        from registry.interchange.columns import PATIENT_COLUMNS

        table = Table(self.n)
        table.add("id", self.ids)
        for name in PATIENT_COLUMNS:
            table.add(name, self[name], self.blank[name])
        return table

    def section(self, model) -> tuple[Table, Any]:
        """A section's table (the patients who have it) and which of its rows are complete."""
        present = self.present(model.key)
        table = Table(int(present.sum()))
        table.add("patient_id", self.ids[present])
        for name in model.clinical_fields():
            table.add(name, self[name][present], self.blank[name][present])
        return table, self.complete(model.key)[present]

    def screening_log(self) -> Table:
        """An entry for every patient (eligible, consent given, enrolled), then the
        screened patients not enrolled: eligible and refusing, or not eligible."""
        import numpy as np

        from registry.models import CONSENT_GIVEN, ConsentBy, ScreeningExclusion

        n, refused = self.n, int(round(self.n * CONSENT_REFUSED))
        extra = refused + int(round(self.n * NOT_ELIGIBLE))
        enrolled = np.arange(n + extra) < n
        eligible = np.arange(n + extra) < n + refused
        doors = self["door_time"].astype("datetime64[D]")
        dates = np.concatenate([doors, doors[self.rng.integers(0, max(n, 1), extra)]])
        reasons = _choose(self.rng, ScreeningExclusion.values, n + extra, EXCLUSION_WEIGHTS)
        consent = _choose(self.rng, CONSENT_GIVEN, n, CONSENT_WEIGHTS)
        log = Table(n + extra)
        log.add("site", np.concatenate([self["site"], _choose(self.rng, self.sites, extra)]))
        log.add("screening_date", dates)
        log.add("screening_number", "")
        log.add("eligible", eligible)
        log.add("exclusion_reason", reasons, blank=eligible)
        log.add("consent_given_by", _then(consent, extra, ConsentBy.REFUSED), blank=~eligible)
        log.add("consent_date", dates, blank=~enrolled)
        log.add("patient_id", _then(self.ids, extra, 0), blank=~enrolled)
        log.add("note", "")
        return log

    def exclusions(self) -> Table:
        """The patients lost to follow-up, excluded from the analysis (in force) on
        their planned follow-up date, today at the latest."""
        import numpy as np
        from django.utils import timezone

        from registry.models import PatientExclusionReason

        lost = self.left_blank["followup"] & self.present("followup")
        today = np.datetime64(timezone.localdate(), "D")
        rows = Table(int(lost.sum()))
        rows.add("patient_id", self.ids[lost])
        rows.add("reason", PatientExclusionReason.LOST_TO_FOLLOWUP.value)
        rows.add("note", "")
        rows.add("excluded_on", np.minimum(self["followup_date"][lost], today))
        return rows


def _then(values, extra: int, value):
    """``values`` followed by ``value`` ``extra`` times."""
    import numpy as np

    return np.concatenate([values, np.full(extra, value, dtype=values.dtype)])


def draw(rng, n: int, *, first_id: int = 1, sites=("S001",)) -> Cohort:
    """``n`` synthetic patients with ids from ``first_id``, spread over ``sites``
    (codes; unequal sizes, the first largest), drawn with the numpy Generator
    ``rng``: valid under every model rule, each section complete when every
    applicable field is recorded."""
    import numpy as np

    cohort = Cohort(rng, np.arange(first_id, first_id + n, dtype=np.int64), sites)
    for name in FIELDS:
        cohort[name]  # drawn on first use
    cohort.mark_blanks()
    return cohort
