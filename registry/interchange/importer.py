"""Bulk import of interchange rows (CSV or .xlsx) into the registry, all or nothing.

Every row is validated with the models' own validators and ``clean()`` (the
rules the forms use) before anything is written. Problems are reported as
``row N, column C: message`` (N = 1-based data row). When every row is valid,
patients are created or updated by ``study_id`` in one transaction with bulk
operations (a constant number of queries per batch, none per row) and history
entries attributed to the importing user with the reason ``import of FILE``.

Speed (benchmarks/import_speed.py): the stored state of the file's patients is
read in one query per batch; each row is validated by ``full_clean()`` on one
reused instance per model, each field's ``clean()`` running once per distinct
value (``_Validator``); records and their history rows are written as parameter
rows by ``registry.models.bulk`` (``executemany``, or binary ``COPY`` on PostgreSQL).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from registry import rules
from registry.choices import SectionStatus
from registry.models import SECTION_MODELS, Patient, PatientLock, Section, Site, bulk

from . import columns as interchange

BATCH = 500


@dataclass(frozen=True)
class Problem:
    row: int | None  # 1-based data row; None for the header
    columns: tuple[str, ...]
    message: str
    # A cell that could not be read: the model's checks of the blank left in its place
    # ("cannot be null") say nothing more and are dropped.
    unreadable: bool = False

    def __str__(self) -> str:
        if self.row is None and not self.columns:
            return self.message  # about the whole file, which the message names
        where = "header" if self.row is None else f"row {self.row}"
        if not self.columns:
            return f"{where}: {self.message}"
        label = "column" if len(self.columns) == 1 else "columns"
        return f"{where}, {label} {', '.join(self.columns)}: {self.message}"


@dataclass
class ImportResult:
    filename: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    sites_created: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- reading files

NOT_UTF8 = (
    "the file is not UTF-8 text; save it as CSV UTF-8 "
    '(in Excel: Save As, "CSV UTF-8 (Comma delimited)") and upload it again.'
)
NOT_XLSX = (
    "the file is not a valid Excel .xlsx file; save it again from Excel as an "
    ".xlsx workbook or as CSV UTF-8."
)


class UnreadableFile(Exception):
    """The file is neither CSV UTF-8 text nor an .xlsx workbook; the message says so."""


def read_table(file, filename: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows as CSV text, from a CSV or .xlsx file (path or binary file).

    Raises :class:`UnreadableFile` for a file that cannot be read as either. A
    CSV must be UTF-8 (with or without Excel's byte order mark): other encodings
    are refused rather than guessed, since a wrong guess silently garbles names.
    """
    if isinstance(file, str | Path):
        with open(file, "rb") as handle:
            data = handle.read()
    else:
        data = file.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    if str(filename).lower().endswith(".xlsx") or data[:2] == b"PK":
        try:
            return _read_xlsx(data)
        # A damaged or fake workbook makes openpyxl (zipfile, the XML parsers, its
        # own readers) raise almost any exception: each means "not an .xlsx file".
        except Exception as exc:
            raise UnreadableFile(NOT_XLSX) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(NOT_UTF8) from exc
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
        raise UnreadableFile(f"the file cannot be read as CSV ({exc}).") from exc
    return _header_and_body(table, lambda v: v.strip() != "")


def _header_and_body(table: list, filled) -> tuple[list, list]:
    """Header = first non-blank row; blank rows inside the body are kept (row numbers)."""
    nonblank = [i for i, row in enumerate(table) if any(filled(v) for v in row)]
    if not nonblank:
        return [], []
    return table[nonblank[0]], table[nonblank[0] + 1 : nonblank[-1] + 1]


def _read_xlsx(data: bytes) -> tuple[list[str], list[list[str]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sheet = book.worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    book.close()
    header, rows = _header_and_body(rows, lambda v: v not in (None, ""))
    if not header:
        return [], []
    header = ["" if v is None else str(v).strip() for v in header]
    known = interchange.by_name()
    body = []
    for values in rows:
        cells = []
        for name, value in zip(header, values, strict=False):
            column = known.get(name)
            if column is None:
                cells.append("" if value is None else str(value))
            else:
                cells.append(interchange.cell_text(column, value))
        body.append(cells)
    return header, body


def parse_table(
    header: list[str], body: list[list[str]]
) -> tuple[list[dict], list[Problem], list[str]]:
    """Typed rows (all contract columns; None for a blank line) from CSV text; problems;
    the columns present."""
    problems: list[Problem] = []
    known = interchange.by_name()
    seen: set[str] = set()
    present: list[tuple[int, str]] = []
    header = list(header)
    while header and not str(header[-1]).strip():
        header.pop()  # spreadsheets often carry empty trailing columns
    if not header:
        return [], [Problem(None, (), "the file is empty (no header row).")], []
    for index, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff")
        if name not in known:
            problems.append(Problem(None, (name,), "unknown column."))
        elif name in seen:
            problems.append(Problem(None, (name,), "duplicated column."))
        else:
            seen.add(name)
            present.append((index, name))
    for name in interchange.REQUIRED:
        if name not in seen:
            problems.append(Problem(None, (name,), "required column is missing."))
    # A cell's value depends only on its column and text: each distinct text of a
    # column is parsed once (codes, flags, scores and dates repeat a lot).
    parsers = [(index, name, interchange.parser(known[name]), {}) for index, name in present]
    template = dict.fromkeys(interchange.column_names())
    width = len(header)
    rows = []
    for number, cells in enumerate(body, start=1):
        if not any(cell.strip() for cell in cells):
            rows.append(None)  # a blank line: skipped, but it keeps the row numbers
            continue
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            problems.append(Problem(number, (), "more cells than header columns."))
        typed = template.copy()
        for index, name, parse, parsed in parsers:
            text = cells[index] if index < len(cells) else ""
            try:
                typed[name] = parsed[text]
            except KeyError:
                try:
                    typed[name] = parsed[text] = parse(text)
                except interchange.ParseError as exc:
                    problems.append(Problem(number, (name,), str(exc), unreadable=True))
        rows.append(typed)
    return rows, problems, [name for _, name in present]


# ---------------------------------------------------------------- validation


class _Validator:
    """``full_clean()`` of one model, run on one reused instance per import.

    The model's rules run as for a form: every field's ``clean()`` (its
    validators, choices, null and blank), then the model's ``clean()`` with its
    cross-field rules. Uniqueness and constraints are checked once for the whole
    file (study IDs) and by the database on writing. Only the repetition is
    saved: a non-relation field's ``clean()`` depends on its value alone, so a
    value already found valid for that field in this import is given its
    cleaned value and excluded from ``clean_fields()`` instead of being checked
    again (an import repeats codes, flags and scores on every row).
    """

    def __init__(self, model: type[models.Model], exclude: Iterable[str]):
        self.instance = model()
        self.values = self.instance.__dict__  # where the model keeps field values
        self.exclude = frozenset(exclude)
        self.fields = [
            (f.name, f.attname, f.blank)
            for f in model._meta.fields
            if f.name not in self.exclude and not f.is_relation
        ]
        self.valid: dict[tuple, object] = {}  # (attname, type, value) -> cleaned value
        # The fields clean() may attach a cross-field rule's message to.
        if issubclass(model, Section):
            self.own = frozenset(model.clinical_fields())
        else:
            self.own = frozenset(f.name for f in model._meta.fields)

    def check(self, number: int) -> list[Problem]:
        """Problems of the values now set on ``instance`` (row ``number``)."""
        values, valid = self.values, self.valid
        exclude = set(self.exclude)
        unchecked = []
        for name, attname, blank in self.fields:
            value = values[attname]
            if value is None and blank:
                continue  # clean_fields() skips a blank value of a field that allows it
            key = (attname, value.__class__, value)
            try:
                values[attname] = valid[key]
                exclude.add(name)
            except KeyError:
                unchecked.append(key)
            except TypeError:  # an unhashable value: always checked
                pass
        try:
            self.instance.full_clean(
                exclude=exclude, validate_unique=False, validate_constraints=False
            )
        except ValidationError as exc:
            return _problems_from(exc, number, self.own)
        for key in unchecked:
            valid[key] = values[key[0]]
        return []


@dataclass
class _Planned:
    """What one row will do; records are field values keyed by column (attname)."""

    number: int
    study_id: str | None
    site: Site | None
    new: bool
    pk: int | None  # None for a new patient until it is inserted
    patient: dict | None  # the patient's record when new or changed, else None
    sections_new: list[tuple[type[Section], dict]]
    sections_changed: list[tuple[type[Section], dict]]

    @property
    def changes(self) -> bool:
        return self.patient is not None or bool(self.sections_new or self.sections_changed)


def _rule_columns(name: str, message: str, own: frozenset[str]) -> tuple[str, ...] | None:
    """The columns of the cross-field rule behind ``message`` attached to field ``name``.

    Several rules can share one message (the branch rules of one controller do), so
    the message alone does not tell them apart: ``Section.clean()`` attaches a rule's
    message to the first of the rule's fields that is on the section (``own``).
    """
    for rule in rules.RULES:
        if (
            str(rule.message) == message
            and next((n for n in rule.fields if n in own), None) == name
        ):
            return rule.fields
    return None


def _problems_from(error: ValidationError, number: int, own: frozenset[str]) -> list[Problem]:
    found = []
    for name, messages in error.message_dict.items():
        for message in messages:
            columns = _rule_columns(name, message, own)
            if columns is None:
                columns = () if name == "__all__" else (name,)
            found.append(Problem(number, columns, message))
    return found


PATIENT_STORED = ("id", "site_id", "sex", "age_years", "created_at", "created_by_id")
SECTION_STORED = ("version", "status", "completed_at", "completed_by")


class _Planner:
    """Validates each row and decides what it writes, from the stored state read at once."""

    def __init__(self, user, now):
        self.user_id = user.pk if user is not None else None
        self.now = now
        self.fields = {model: tuple(model.clinical_fields()) for model in SECTION_MODELS}
        self.patient = _Validator(Patient, ["site", "created_by"])
        self.sections = {
            model: _Validator(model, ["patient", "completed_by"]) for model in SECTION_MODELS
        }
        # Where each section's stored values sit in a row of _stored().
        self.slices, start = {}, len(PATIENT_STORED)
        for model in SECTION_MODELS:
            end = start + len(SECTION_STORED) + len(self.fields[model])
            self.slices[model] = slice(start, end)
            start = end

    def stored(self, study_ids: list[str]) -> dict[str, tuple]:
        """The stored patients with every section's values, one query per batch."""
        names = ["study_id", *PATIENT_STORED]
        for model in SECTION_MODELS:
            names += [f"{model.key}__{n}" for n in (*SECTION_STORED, *self.fields[model])]
        found = {}
        for start in range(0, len(study_ids), BATCH):
            chunk = study_ids[start : start + BATCH]
            for row in Patient.objects.filter(study_id__in=chunk).values_list(*names):
                found[row[0]] = row[1:]
        return found

    def plan(self, number: int, values: dict, stored: tuple | None, site: Site | None):
        problems: list[Problem] = []
        patient = self.patient.values
        patient["study_id"] = values["study_id"]
        patient["sex"] = values["sex"] or ""
        patient["age_years"] = values["age_years"]
        problems.extend(self.patient.check(number))
        sex, age_years = patient["sex"], patient["age_years"]
        site_id = site.pk if site is not None else None
        record = None
        if stored is None:
            record = {
                "study_id": patient["study_id"],
                "sex": sex,
                "age_years": age_years,
                "created_by_id": self.user_id,
            }
        elif stored[1:4] != (site_id, sex, age_years):
            record = {
                "id": stored[0],
                "study_id": patient["study_id"],
                "sex": sex,
                "age_years": age_years,
                "created_at": stored[4],
                "created_by_id": stored[5],
            }
        planned = _Planned(
            number,
            values["study_id"],
            site,
            stored is None,
            None if stored is None else stored[0],
            record,
            [],
            [],
        )
        for model in SECTION_MODELS:
            old = None if stored is None else stored[self.slices[model]]
            if old is not None and old[0] is None:
                old = None  # no such section stored (a LEFT JOIN's NULLs)
            found = self._plan_section(model, number, values, old, problems)
            if found is not None:
                (planned.sections_new if old is None else planned.sections_changed).append(
                    (model, found)
                )
        return planned, problems

    def _plan_section(self, model, number, values, old, problems) -> dict | None:
        names = self.fields[model]
        if old is None and all(values[name] is None for name in names):
            return None  # nothing recorded and nothing stored: no section
        validator = self.sections[model]
        section = validator.values
        for name in names:
            section[name] = values[name]
        instance = validator.instance
        status = (
            SectionStatus.DRAFT
            if instance.missing_for_completion(values)
            else SectionStatus.COMPLETE
        )
        section["status"] = status
        instance._patient_values = values  # clean() reads the whole row, not the database
        problems.extend(validator.check(number))
        cleaned = tuple(section[name] for name in names)
        if old is not None and old[1] == status and old[len(SECTION_STORED) :] == cleaned:
            return None  # unchanged
        record = dict(zip(names, cleaned, strict=True))
        record["status"] = status
        if status == SectionStatus.COMPLETE and (old is None or old[1] != status):
            record["completed_at"], record["completed_by_id"] = self.now, self.user_id
        elif status != SectionStatus.COMPLETE:
            record["completed_at"], record["completed_by_id"] = None, None
        else:
            record["completed_at"], record["completed_by_id"] = old[2], old[3]
        record["version"] = 1 if old is None else old[0] + 1
        return record


def _locked_problems(planned: list[_Planned]) -> list[Problem]:
    """A locked record is not changed by an import either."""
    changing = {p.pk: p for p in planned if not p.new and p.changes}
    keys = sorted(changing)
    locked = set()
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        locked.update(
            PatientLock.objects.filter(patient_id__in=chunk, locked=True).values_list(
                "patient_id", flat=True
            )
        )
    return [
        Problem(
            changing[pk].number,
            ("study_id",),
            f"{changing[pk].study_id} is locked; unlock it before changing it.",
        )
        for pk in sorted(locked)
    ]


def _dedupe(problems: Iterable[Problem]) -> list[Problem]:
    """Drop repeats: a rule across two sections is reported by both sections' clean().

    The columns are part of the key: rules sharing one message are different problems.
    """
    problems = list(problems)
    unreadable = {(p.row, p.columns) for p in problems if p.unreadable}
    seen, unique = set(), []
    for problem in problems:
        if not problem.unreadable and (problem.row, problem.columns) in unreadable:
            continue
        key = (problem.row, problem.columns, problem.message)
        if problem.row is None or key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique


# ---------------------------------------------------------------- the service


def registry_import(
    *,
    rows: list[dict] | None = None,
    file=None,
    user=None,
    filename: str = "",
    dry_run: bool = False,
    create_sites: bool = False,
) -> ImportResult:
    """Validate all rows, then (unless ``dry_run`` or any problem) write them at once.

    ``rows`` are typed interchange rows (as the demo generator makes them);
    ``file`` is a path or binary file of CSV or .xlsx text.
    """
    filename = str(filename or getattr(file, "name", "") or "rows")
    result = ImportResult(filename=Path(filename).name, dry_run=dry_run)
    if rows is None:
        try:
            header, body = read_table(file, filename)
        except UnreadableFile as exc:
            result.problems.append(Problem(None, (), str(exc)))
            return result
        rows, problems, _ = parse_table(header, body)
        result.problems.extend(problems)
    else:
        template = dict.fromkeys(interchange.column_names())
        rows = [{**template, **row} for row in rows]
    numbered = [(n, values) for n, values in enumerate(rows, start=1) if values is not None]
    result.rows = len(numbered)
    if any(p.row is None for p in result.problems):
        return result  # a wrong header makes every row meaningless

    # The file's own consistency: study_id unique, sites known.
    first_row: dict[str, int] = {}
    for number, values in numbered:
        study_id = values["study_id"]
        if study_id is None:
            continue
        if study_id in first_row:
            result.problems.append(
                Problem(
                    number,
                    ("study_id",),
                    f"{study_id} is duplicated in the file (first in row {first_row[study_id]}).",
                )
            )
        else:
            first_row[study_id] = number
    sites = {site.code: site for site in Site.objects.all()}
    new_sites: dict[str, Site] = {}
    for number, values in numbered:
        code = values["site"]
        if code is None:
            result.problems.append(Problem(number, ("site",), "required."))
        elif code not in sites and code not in new_sites:
            if create_sites:
                site = Site(code=code, name=code)
                try:
                    site.full_clean(validate_unique=False)
                except ValidationError as exc:
                    message = "; ".join(exc.message_dict.get("code", ["invalid site code."]))
                    result.problems.append(Problem(number, ("site",), message))
                    continue
                new_sites[code] = site
            else:
                result.problems.append(
                    Problem(
                        number,
                        ("site",),
                        f"unknown site code {code!r} (known: {', '.join(sorted(sites)) or 'none'};"
                        " --create-sites creates it).",
                    )
                )

    planner = _Planner(user, timezone.now())
    stored = planner.stored(sorted(first_row))
    planned: list[_Planned] = []
    for number, values in numbered:
        study_id = values["study_id"]
        if study_id is not None and first_row.get(study_id) != number:
            continue
        site = sites.get(values["site"]) or new_sites.get(values["site"])
        old = stored.get(study_id) if study_id else None
        plan, problems = planner.plan(number, values, old, site)
        result.problems.extend(problems)
        planned.append(plan)
    result.problems.extend(_locked_problems(planned))
    result.problems = _dedupe(result.problems)
    result.problems.sort(key=lambda p: p.row or 0)

    result.created = sum(1 for p in planned if p.new)
    result.changed = sum(1 for p in planned if not p.new and p.changes)
    result.unchanged = len(planned) - result.created - result.changed
    result.sites_created = sorted(new_sites)
    if result.problems or dry_run:
        return result
    _write(planned, new_sites, user, f"import of {result.filename}")
    return result


# ---------------------------------------------------------------- writing


def _write(planned: list[_Planned], new_sites: dict[str, Site], user, reason: str) -> None:
    """Insert and update the planned records and their history rows, in one transaction.

    What ``bulk_create_with_history`` / ``bulk_update_with_history`` write, without
    building a model and a historical model instance per record
    (``registry.models.bulk``).
    """
    attribution = bulk.Attribution(user=user, reason=reason)
    with bulk.writing(attribution=attribution) as writer:
        for site in new_sites.values():
            site.save()
        for plan in planned:
            if plan.patient is not None:
                plan.patient["site_id"] = plan.site.pk  # a new site has its key now
        writer.patients_insert(
            patients=[bulk.NewPatient(p.patient, dict(p.sections_new)) for p in planned if p.new]
        )
        stored = [plan for plan in planned if not plan.new]
        writer.update(
            model=Patient,
            records=[plan.patient for plan in stored if plan.patient is not None],
            columns=("site_id", "sex", "age_years"),
        )
        for model in SECTION_MODELS:
            writer.insert(model=model, records=_section_records(stored, "sections_new", model))
            writer.update(model=model, records=_section_records(stored, "sections_changed", model))


def _section_records(planned: list[_Planned], which: str, model: type[Section]) -> list[dict]:
    """The records of ``model`` in each plan's ``which`` sections, with their patient."""
    records = []
    for plan in planned:
        for section_model, record in getattr(plan, which):
            if section_model is model:
                record["patient_id"] = plan.pk
                records.append(record)
    return records
