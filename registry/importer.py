"""Bulk import of interchange rows (CSV or .xlsx) into the registry, all or nothing.

Every row is validated with the models' own validators and ``clean()`` (the
rules the forms use) before anything is written. Problems are reported as
``row N, column C: message`` (N = 1-based data row). When every row is valid,
patients are created or updated by ``study_id`` in one transaction with bulk
operations (a constant number of queries per batch, none per row) and history
entries attributed to the importing user with the reason ``import of FILE``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from . import interchange, rules
from .choices import SectionStatus
from .models import SECTION_MODELS, Patient, PatientLock, Section, Site

BATCH = 500
PATIENT_FIELDS = ("site", "sex", "age_years")


def _clinical_fields() -> dict[type[Section], tuple[str, ...]]:
    # Read once per import: the model method walks _meta on every call.
    return {model: tuple(model.clinical_fields()) for model in SECTION_MODELS}


@dataclass(frozen=True)
class Problem:
    row: int | None  # 1-based data row; None for the header
    columns: tuple[str, ...]
    message: str

    def __str__(self) -> str:
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


def read_table(file, filename: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows as CSV text, from a CSV or .xlsx file (path or binary file)."""
    if isinstance(file, str | Path):
        with open(file, "rb") as handle:
            data = handle.read()
    else:
        data = file.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    if str(filename).lower().endswith(".xlsx") or data[:2] == b"PK":
        return _read_xlsx(data)
    text = data.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text, newline="")))
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
                    problems.append(Problem(number, (name,), str(exc)))
        rows.append(typed)
    return rows, problems, [name for _, name in present]


# ---------------------------------------------------------------- validation


@dataclass
class _Planned:
    """What one row will do: the patient and its sections (new or changed)."""

    number: int
    patient: Patient
    patient_new: bool
    patient_changed: bool
    sections_new: list[Section]
    sections_changed: list[Section]


def _rule_columns(message: str) -> tuple[str, ...] | None:
    for rule in rules.RULES:
        if str(rule.message) == message:
            return rule.fields
    return None


def _problems_from(error: ValidationError, number: int) -> list[Problem]:
    found = []
    for name, messages in error.message_dict.items():
        for message in messages:
            columns = _rule_columns(message)
            if columns is None:
                columns = () if name == "__all__" else (name,)
            found.append(Problem(number, columns, message))
    return found


def _status(section: Section, values: dict) -> str:
    if section.missing_for_completion(values):
        return SectionStatus.DRAFT
    return SectionStatus.COMPLETE


def _existing_patients(study_ids: list[str]) -> dict[str, Patient]:
    related = ["site", *(model.key for model in SECTION_MODELS)]
    found = {}
    for start in range(0, len(study_ids), BATCH):
        chunk = study_ids[start : start + BATCH]
        for patient in Patient.objects.filter(study_id__in=chunk).select_related(*related):
            found[patient.study_id] = patient
    return found


def _plan_row(number, values, patient, site, user, now, fields) -> tuple[_Planned, list[Problem]]:
    problems: list[Problem] = []
    new = patient is None
    if new:
        patient = Patient(study_id=values["study_id"], created_by=user)
    before = None if new else (patient.site_id, patient.sex, patient.age_years)
    patient.site = site
    patient.sex = values["sex"] or ""
    patient.age_years = values["age_years"]
    try:
        patient.full_clean(
            exclude=["site", "created_by"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        problems.extend(_problems_from(exc, number))
    patient_changed = not new and before != (patient.site_id, patient.sex, patient.age_years)

    sections_new, sections_changed = [], []
    existing = {} if new else patient.sections()
    for model in SECTION_MODELS:
        names = fields[model]
        mine = {name: values[name] for name in names}
        section = existing.get(model.key)
        if section is None and all(v is None for v in mine.values()):
            continue
        section_new = section is None
        if section_new:
            section = model(patient=patient)
        old = None if section_new else ({n: getattr(section, n) for n in names}, section.status)
        for name, value in mine.items():
            setattr(section, name, value)
        section.status = _status(section, values)
        section._patient_values = values
        try:
            section.full_clean(
                exclude=["patient", "completed_by"],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as exc:
            problems.extend(_problems_from(exc, number))
        if section_new:
            sections_new.append(section)
        elif old != (mine, section.status):
            sections_changed.append(section)
        else:
            continue
        section.updated_at = now
        if section.status == SectionStatus.COMPLETE and (section_new or old[1] != "complete"):
            section.completed_at, section.completed_by = now, user
        elif section.status != SectionStatus.COMPLETE:
            section.completed_at, section.completed_by = None, None
        if not section_new:
            section.version += 1
    planned = _Planned(number, patient, new, patient_changed, sections_new, sections_changed)
    return planned, problems


def _locked_problems(planned: list[_Planned]) -> list[Problem]:
    """A locked record (issue 5's data lock) is not changed by an import either."""
    changing = {
        p.patient.pk: p
        for p in planned
        if not p.patient_new and (p.patient_changed or p.sections_new or p.sections_changed)
    }
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
            f"{changing[pk].patient.study_id} is locked; unlock it before changing it.",
        )
        for pk in sorted(locked)
    ]


def _dedupe(problems: Iterable[Problem]) -> list[Problem]:
    seen, unique = set(), []
    for problem in problems:
        key = (problem.row, problem.message)
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
        header, body = read_table(file, filename)
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

    existing = _existing_patients(sorted(first_row))
    now = timezone.now()
    fields = _clinical_fields()
    planned: list[_Planned] = []
    for number, values in numbered:
        study_id = values["study_id"]
        if study_id is not None and first_row.get(study_id) != number:
            continue
        site = sites.get(values["site"]) or new_sites.get(values["site"])
        patient = existing.get(study_id) if study_id else None
        plan, problems = _plan_row(number, values, patient, site, user, now, fields)
        result.problems.extend(problems)
        planned.append(plan)
    result.problems.extend(_locked_problems(planned))
    result.problems = _dedupe(result.problems)
    result.problems.sort(key=lambda p: p.row or 0)

    result.created = sum(1 for p in planned if p.patient_new)
    result.changed = sum(
        1
        for p in planned
        if not p.patient_new and (p.patient_changed or p.sections_new or p.sections_changed)
    )
    result.unchanged = len(planned) - result.created - result.changed
    result.sites_created = sorted(new_sites)
    if result.problems or dry_run:
        return result
    _write(planned, new_sites, user, f"import of {result.filename}")
    return result


def _write(planned: list[_Planned], new_sites: dict[str, Site], user, reason: str) -> None:
    history = {"default_user": user, "default_change_reason": reason}
    now = timezone.now()
    with transaction.atomic():
        for site in new_sites.values():
            site.save()
        for plan in planned:  # the site object now has its primary key
            plan.patient.site = plan.patient.site
        new_patients = [p.patient for p in planned if p.patient_new]
        if new_patients:
            _fast_create(Patient, new_patients, user, reason, now, assign_keys=_patient_keys)
        changed_patients = [p.patient for p in planned if p.patient_changed]
        if changed_patients:
            bulk_update_with_history(
                changed_patients, Patient, list(PATIENT_FIELDS), batch_size=BATCH, **history
            )
        for model in SECTION_MODELS:
            created = [s for p in planned for s in p.sections_new if isinstance(s, model)]
            for section in created:
                section.patient = section.patient  # refresh patient_id after the insert
            if created:
                _fast_create(model, created, user, reason, now)
            changed = [s for p in planned for s in p.sections_changed if isinstance(s, model)]
            if changed:
                fields = [*model.clinical_fields(), *model.BOOKKEEPING[1:]]
                bulk_update_with_history(changed, model, fields, batch_size=BATCH, **history)


HISTORY_ONLY = ("history_date", "history_change_reason", "history_type", "history_user")


def _patient_keys(patients: list[Patient]) -> None:
    """Set the primary keys of freshly inserted patients (one query per batch)."""
    keys = {}
    study_ids = [p.study_id for p in patients]
    for start in range(0, len(study_ids), BATCH):
        chunk = study_ids[start : start + BATCH]
        keys.update(Patient.objects.filter(study_id__in=chunk).values_list("study_id", "pk"))
    for patient in patients:
        patient.pk = keys[patient.study_id]


def _fast_create(model, objs: list, user, reason: str, now, assign_keys=None) -> None:
    """INSERT the new records and their "created" history rows with ``executemany``.

    What ``bulk_create_with_history`` writes, without building a historical
    model instance and compiling an INSERT per batch for every record: the
    ORM's per-value cost made the import of 10,000 rows twice as slow. Values
    still pass through each field's ``pre_save`` and ``get_db_prep_save``.
    """
    history_model = model.history.model
    own = {
        "history_date": now,
        "history_change_reason": reason,
        "history_type": "+",
        "history_user": user.pk if user is not None else None,
    }
    main_fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)]
    history_fields = [
        f for f in history_model._meta.concrete_fields if not isinstance(f, models.AutoField)
    ]
    unknown = {f.name for f in history_fields if f.name.startswith("history_")} - set(own)
    if unknown:  # a history configuration this writer does not know: let the library do it
        bulk_create_with_history(
            objs, model, batch_size=BATCH, default_user=user, default_change_reason=reason
        )
        return
    for obj in objs:
        for main_field in main_fields:
            main_field.pre_save(obj, add=True)  # auto_now / auto_now_add
    main_rows = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in main_fields]
        for obj in objs
    ]
    _executemany(model._meta.db_table, main_fields, main_rows)
    if assign_keys is not None:
        assign_keys(objs)  # an auto primary key: the history rows need it
    history_rows = [
        [
            f.get_db_prep_save(
                own[f.name] if f.name in own else getattr(obj, f.attname), connection
            )
            for f in history_fields
        ]
        for obj in objs
    ]
    _executemany(history_model._meta.db_table, history_fields, history_rows)


def _executemany(table: str, fields, rows: list[list]) -> None:
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 2000):
            cursor.executemany(sql, rows[start : start + 2000])
