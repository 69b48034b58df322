"""The interchange format (shared/spec/interchange-columns.md): columns, parse, format.

Everything here is read from the models: the column list is the patient's
fields followed by each section's clinical fields (the models declare them in
contract order), a column's type comes from its model field, the allowed
codes from the field's choices. Ranges and cross-field rules are not checked
here: the model validators and ``clean()`` do that, for the forms and the
import alike.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.db import models
from django.utils import timezone

from registry import rules
from registry.models import SECTION_MODELS, Patient, Section

from .kinds import CATEGORY, DATE, DATETIME, DATETIME_FORMAT, FLAG, INTEGER, TEXT

PATIENT_COLUMNS = ("study_id", "site", "sex", "age_years")
REQUIRED = PATIENT_COLUMNS
# Columns added to the contract after its first edition: at the end of a file, after
# death_date, whichever section holds them; a file without them still imports.
APPENDED = ("imaging_time", "needle_time", "reperfusion_time", "nihss_24h")

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?$")
INTEGER_RE = re.compile(r"^[+-]?\d+$")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- what each column tells about a person (the de-identification policy) -----------------
IDENTIFIER = "identifier"  # names the patient or links the row to them: never de-identified
QUASI_IDENTIFIER = "quasi_identifier"  # identifies with other data: generalised (dates, age)
FREE_TEXT = "free_text"  # whatever was typed, which may name anyone: never de-identified
CLINICAL = "clinical"  # a coded or measured clinical value: kept
PRIVACY_CATEGORIES = (IDENTIFIER, QUASI_IDENTIFIER, FREE_TEXT, CLINICAL)

# Every interchange column's category, stated here once: the de-identified export applies
# it (exporter.deidentified_treatment) and the data dictionary shows it. A column missing
# here stops the de-identified export rather than letting it leave the hospital.
PRIVACY: dict[str, str] = {
    "study_id": IDENTIFIER,  # replaced by a pseudonym valid for one export file
    "site": QUASI_IDENTIFIER,
    "sex": QUASI_IDENTIFIER,
    "age_years": QUASI_IDENTIFIER,  # top-coded (TOP_CODED)
    "onset_time": QUASI_IDENTIFIER,  # dates and times: offsets from the door time
    "door_time": QUASI_IDENTIFIER,  # the anchor of every offset: dropped
    "transfer": CLINICAL,
    "nihss_admission": CLINICAL,
    "premorbid_mrs": CLINICAL,
    "admission_mrs": CLINICAL,
    "hypertension": CLINICAL,
    "smoking": CLINICAL,
    "diabetes": CLINICAL,
    "myocardial_infarction": CLINICAL,
    "atrial_fibrillation": CLINICAL,
    "chronic_kidney_disease": CLINICAL,
    "dysphagia": CLINICAL,
    "iv_thrombolysis": CLINICAL,
    "circulation": CLINICAL,
    "mri_diagnosis": CLINICAL,
    "mri_site": CLINICAL,
    "swi_clot": CLINICAL,
    "dwi_aspects": CLINICAL,
    "pc_aspects": CLINICAL,
    "anesthesia": CLINICAL,
    "groin_puncture_time": QUASI_IDENTIFIER,
    "procedure_end_time": QUASI_IDENTIFIER,
    "dsa_diagnosis": CLINICAL,
    "dsa_site": CLINICAL,
    "mt_performed": CLINICAL,
    "mt_technique": CLINICAL,
    "mt_passes": CLINICAL,
    "mtici_after_mt": CLINICAL,
    "stent_type": CLINICAL,
    "stent_device": FREE_TEXT,
    "post_dilation": CLINICAL,
    "residual_stenosis_pct": CLINICAL,
    "dapt_loading": CLINICAL,
    "final_mtici": CLINICAL,
    "ich": CLINICAL,
    "sich": CLINICAL,
    "new_infarct": CLINICAL,
    "cerebral_swelling": CLINICAL,
    "decompressive_craniectomy": CLINICAL,
    "metabolic_acidosis": CLINICAL,
    "discharge_date": QUASI_IDENTIFIER,
    "discharge_mrs": CLINICAL,
    "followup_date": QUASI_IDENTIFIER,
    "mrs_3m": CLINICAL,
    "followup_method": CLINICAL,
    "rehabilitation": CLINICAL,
    "death_date": QUASI_IDENTIFIER,
    "imaging_time": QUASI_IDENTIFIER,
    "needle_time": QUASI_IDENTIFIER,
    "reperfusion_time": QUASI_IDENTIFIER,
    "nihss_24h": CLINICAL,
}
# Quasi-identifying numbers shown only up to a ceiling in the de-identified export:
# ages of 90 and over become 90 (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)).
TOP_CODED: dict[str, int] = {"age_years": 90}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    field: models.Field
    section: type[Section] | None  # None for the patient's own columns

    @property
    def label(self) -> str:
        return str(self.field.verbose_name)

    @property
    def codes(self) -> list[tuple[str, str]]:
        """Allowed codes with their labels (categories only)."""
        return [(str(code), str(label)) for code, label in self.field.flatchoices]

    @property
    def privacy(self) -> str | None:
        """Identifier, quasi-identifier, free text or clinical (``PRIVACY``); None if
        undeclared."""
        return PRIVACY.get(self.name)

    @property
    def free_text(self) -> bool:
        """Free text a person typed (the only cells neutralised against CSV injection)."""
        return self.kind == TEXT and self.name not in PATIENT_COLUMNS


def _kind(field: models.Field) -> str:
    if isinstance(field, models.DateTimeField):
        return DATETIME
    if isinstance(field, models.DateField):
        return DATE
    if isinstance(field, models.BooleanField):
        return FLAG
    if field.choices:
        return CATEGORY
    if isinstance(field, models.IntegerField):
        return INTEGER
    return TEXT


@cache
def columns() -> tuple[Column, ...]:
    """Every interchange column, in contract order."""
    found = [
        Column(name, _kind(Patient._meta.get_field(name)), Patient._meta.get_field(name), None)
        for name in PATIENT_COLUMNS
    ]
    appended = {}
    for model in SECTION_MODELS:
        for name in model.clinical_fields():
            field = model._meta.get_field(name)
            column = Column(name, _kind(field), field, model)
            if name in APPENDED:
                appended[name] = column
            else:
                found.append(column)
    return tuple(found) + tuple(appended[name] for name in APPENDED)


def undeclared_columns() -> list[str]:
    """Columns without a privacy category: the de-identified export refuses to run."""
    return [c.name for c in columns() if c.privacy not in PRIVACY_CATEGORIES]


@cache
def column_names() -> tuple[str, ...]:
    return tuple(c.name for c in columns())


@cache
def by_name() -> dict[str, Column]:
    return {c.name: c for c in columns()}


@cache
def _allowed_codes(name: str) -> tuple[str, ...]:
    return tuple(str(code) for code, _ in by_name()[name].field.flatchoices)


class ParseError(ValueError):
    """A cell that is not in the contract's encoding; the message says what is expected."""


def parse(column: Column, text: str) -> object:
    """The typed value of one CSV cell (None for blank = not recorded)."""
    return parser(column)(text)


@cache
def parser(column: Column):
    """The function that parses one cell of ``column`` (what :func:`parse` does).

    Built once per column so that a bulk import does not dispatch on the kind
    of every cell.
    """
    kind = column.kind
    if kind == FLAG:
        return _parse_flag
    if kind == INTEGER:
        return _integer_parser(rules.RANGES.get(column.name))
    if kind == CATEGORY:
        return _category_parser(_allowed_codes(column.name))
    if kind == DATE:
        return _parse_date
    if kind == DATETIME:
        return _parse_datetime
    return _parse_free_text if column.free_text else _parse_text


def _parse_flag(text: str) -> bool | None:
    text = text.strip()
    if text == "":
        return None
    if text == "1":
        return True
    if text == "0":
        return False
    raise ParseError(f"use 1 (yes), 0 (no) or blank (not recorded), not {text!r}.")


def _integer_parser(bounds: tuple[int, int] | None):
    if bounds is None:
        expected = "a whole number is expected"
    else:
        expected = f"must be a whole number between {bounds[0]} and {bounds[1]}"

    def parse_integer(text: str) -> int | None:
        text = text.strip()
        if text == "":
            return None
        if not INTEGER_RE.match(text):
            raise ParseError(f"a whole number is expected, not {text!r}.")
        try:
            return int(text)
        except ValueError:  # over sys.get_int_max_str_digits() (4,300) digits
            raise ParseError(
                f"{expected}, not a number of {len(text.lstrip('+-'))} digits ({text[:12]}...)."
            ) from None

    return parse_integer


def _category_parser(allowed: tuple[str, ...]):
    def parse_category(text: str) -> str | None:
        text = text.strip()
        if text == "":
            return None
        if text not in allowed:
            raise ParseError(f"unknown code {text!r}; allowed: {', '.join(allowed)}.")
        return text

    return parse_category


def _parse_date(text: str) -> dt.date | None:
    text = text.strip()
    if text == "":
        return None
    try:
        if not DATE_RE.match(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ParseError(f"a date YYYY-MM-DD is expected, not {text!r}.") from None


def _parse_datetime(text: str) -> dt.datetime | None:
    text = text.strip()
    if text == "":
        return None
    try:
        if not DATETIME_RE.match(text):
            raise ValueError
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(
            f"a date-time YYYY-MM-DDTHH:MM (hospital time, optional offset such as "
            f"+07:00) is expected, not {text!r}."
        ) from None
    if timezone.is_naive(value):  # hospital time: the registry's TIME_ZONE
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


def _parse_text(text: str) -> str | None:
    text = text.strip()
    return None if text == "" else text


def _parse_free_text(text: str) -> str | None:
    text = text.strip()
    if text == "":
        return None
    if text[0] == "'" and text[1:2] and text[1] in FORMULA_PREFIXES:
        return text[1:]  # undo the export's CSV-injection guard
    return text


def format_value(column: Column, value: object, *, neutralise: bool = True) -> str:
    """The CSV text of a typed value ('' for not recorded)."""
    return formatter(column, neutralise=neutralise)(value)


def formatter(column: Column, *, neutralise: bool = True) -> Callable[[object], str]:
    """``format_value`` of one column as a function of the value alone: what depends on
    the column (and the time zone) is decided once, for writers of many rows."""
    kind = column.kind
    if kind == FLAG:
        return lambda value: "" if value is None else "1" if value else "0"
    if kind == DATETIME:
        zone = timezone.get_current_timezone()
        return lambda value: (
            "" if value is None else value.astimezone(zone).strftime(DATETIME_FORMAT)
        )
    if kind == DATE:
        return lambda value: "" if value is None else value.isoformat()
    if neutralise and column.free_text:
        return _neutralised
    return lambda value: "" if value is None else str(value)


def _neutralised(value: object) -> str:
    """Free text that a spreadsheet would run as a formula starts with a quote."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


# ``DATETIME_FORMAT`` (and REDCap's) in PostgreSQL's ``to_char`` (a format without its
# translation here stops the COPY export rather than letting it write other text than
# ``formatter``).
TO_CHAR = {
    "%Y-%m-%dT%H:%M": 'YYYY-MM-DD"T"HH24:MI',
    "%Y-%m-%d %H:%M": "YYYY-MM-DD HH24:MI",
}


def sql_literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal (standard-conforming strings)."""
    return "'" + text.replace("'", "''") + "'"


def sql_formatter(column: Column, *, neutralise: bool = True) -> Callable[[str], str]:
    """``formatter`` as PostgreSQL: the SQL giving, from the SQL of a value, the text
    ``formatter`` writes for it, NULL where it writes '' (``COPY ... (FORMAT csv)``
    writes NULL as an empty field, as the csv module writes '')."""
    kind = column.kind
    if kind == FLAG:
        return lambda value: f"CASE WHEN {value} THEN '1' WHEN NOT {value} THEN '0' END"
    if kind == DATETIME:
        zone = sql_literal(timezone.get_current_timezone_name())
        pattern = sql_literal(TO_CHAR[DATETIME_FORMAT])
        return lambda value: f"to_char(({value}) AT TIME ZONE {zone}, {pattern})"
    if kind == DATE:
        return lambda value: f"to_char({value}, 'YYYY-MM-DD')"
    if neutralise and column.free_text:
        return _sql_neutralised
    return lambda value: f"NULLIF(({value})::text, '')"


def _sql_neutralised(value: str) -> str:
    """``_neutralised`` in SQL."""
    prefixes = ", ".join(sql_literal(p) for p in FORMULA_PREFIXES)
    text = f"NULLIF(({value})::text, '')"
    return f"CASE WHEN left({text}, 1) IN ({prefixes}) THEN '''' || {text} ELSE {text} END"
