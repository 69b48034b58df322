"""REDCap: the registry's data dictionary and records in REDCap's CSV, and their import.

The REDCap project is one record per patient, one instrument (form) per part of the
case-report form: ``patient`` (study ID, site, sex, age) and one per section, named by
the section's key. The record ID is the registry's study ID (``study_id``, the first
field), so a record keeps its identity both ways; a de-identified file has the
export's pseudonym (``pseudo_id``) instead. Each field's type, choices, validation,
range (``rules.RANGES``) and branching logic (``rules.BRANCHING``) are read from the
interchange columns; nothing here states a clinical rule.

A REDCap records export is imported by translating it into interchange rows (REDCap
variable names to registry columns, REDCap date-times to the interchange's) and
handing these to the native import, so every rule applies once. REDCap's own checks
(a variable the dictionary does not have, a code that is not one of its choices, a
missing record ID) are reported as the native import reports its problems.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from django.db import connections
from django.utils import timezone

from registry import rules
from registry.choices import SectionStatus
from registry.models import SECTION_MODELS

from . import columns as interchange
from . import csvcopy, exporter, importer
from .importer import ImportResult, Problem

# The data dictionary's 18 columns, spelled and ordered as REDCap writes and reads them.
DICTIONARY_HEADER = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
PATIENT_FORM = "patient"
# REDCap's validation types for the interchange's kinds of cells.
VALIDATION = {
    interchange.INTEGER: "integer",
    interchange.DATE: "date_ymd",
    interchange.DATETIME: "datetime_ymd",
}
# A category of more codes than this is a drop-down list, else radio buttons.
RADIO_MAX = 4
# REDCap's form status: 0 incomplete, 1 unverified, 2 complete.
COMPLETE_CODES = {SectionStatus.DRAFT: "0", SectionStatus.COMPLETE: "2"}
DATETIME_FORMAT = "%Y-%m-%d %H:%M"  # REDCap's datetime_ymd as its exports write it
# Privacy categories REDCap marks as identifiers: what the registry's own
# de-identified export drops (dates are REDCap's date-shifting options).
IDENTIFYING = (interchange.IDENTIFIER, interchange.FREE_TEXT)


def forms() -> tuple[str, ...]:
    """The REDCap instruments, in the case-report form's order."""
    return (PATIENT_FORM, *(model.key for model in SECTION_MODELS))


def form_of(column: exporter.OutColumn) -> str:
    source = column.source
    return PATIENT_FORM if source is None or source.section is None else source.section.key


def complete_name(form: str) -> str:
    return f"{form}_complete"


def redcap_columns(deidentified: bool) -> list[exporter.OutColumn]:
    """The export's columns grouped by instrument (REDCap keeps a form's fields together);
    the record ID first."""
    order = {form: index for index, form in enumerate(forms())}
    return sorted(exporter.out_columns(deidentified), key=lambda c: order[form_of(c)])


# ---------------------------------------------------------------- the data dictionary


def _choices(column: interchange.Column) -> str:
    return " | ".join(f"{code}, {label.replace('|', '/')}" for code, label in column.codes)


def _field_type(column: exporter.OutColumn) -> str:
    source = column.source
    if source is None or column.kind != source.kind:
        return "text"  # the pseudonym; offsets in minutes or days
    if column.kind == interchange.FLAG:
        return "yesno"
    if column.kind == interchange.CATEGORY:
        return "dropdown" if len(source.codes) > RADIO_MAX else "radio"
    return "text"


def branching_logic(name: str, present: Iterable[str]) -> str:
    """``[controller] = 'value'`` (joined by ``or``) for a field under an exclusive branch
    whose controller is in the file; '' otherwise. A non-exclusive branch gets none:
    REDCap would hide, and offer to erase, a value the registry allows."""
    branch = rules.BRANCHING.get(name)
    if branch is None or not branch.exclusive or branch.controller not in present:
        return ""
    values = ("1" if v is True else "0" if v is False else str(v) for v in branch.values)
    return " or ".join(f"[{branch.controller}] = '{value}'" for value in values)


def dictionary_row(column: exporter.OutColumn, present: Iterable[str]) -> dict[str, str]:
    """One field of the REDCap data dictionary, keyed by ``DICTIONARY_HEADER``."""
    source = column.source
    same = source is not None and column.kind == source.kind
    field_type = _field_type(column)
    low, high = rules.RANGES.get(source.name, ("", "")) if same else ("", "")
    row = dict.fromkeys(DICTIONARY_HEADER, "")
    row.update(
        {
            "Variable / Field Name": column.name,
            "Form Name": form_of(column),
            "Field Type": field_type,
            "Field Label": str(source.label) if same else column.label,
            "Choices, Calculations, OR Slider Labels": (
                _choices(source) if field_type in ("radio", "dropdown") else ""
            ),
            "Field Note": str(source.field.help_text or "") if same else "",
            "Text Validation Type OR Show Slider Number": VALIDATION.get(column.kind, ""),
            "Text Validation Min": str(low),
            "Text Validation Max": str(high),
            "Identifier?": "y" if same and source.privacy in IDENTIFYING else "",
            "Branching Logic (Show field only if...)": (
                branching_logic(source.name, present) if source is not None else ""
            ),
            "Required Field?": "y" if column.name in (*interchange.REQUIRED, "pseudo_id") else "",
        }
    )
    return row


def dictionary_rows(*, deidentified: bool = False) -> list[dict[str, str]]:
    """The REDCap data dictionary of the registry (of its de-identified export when
    ``deidentified``), one field per row."""
    found = redcap_columns(deidentified)
    present = {column.name for column in found}
    return [dictionary_row(column, present) for column in found]


def dictionary_csv(*, deidentified: bool = False) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=DICTIONARY_HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(dictionary_rows(deidentified=deidentified))
    return buffer.getvalue()


# ---------------------------------------------------------------- the records export


def _status_name(form: str) -> str:
    return f"__status_{form}"


def records_header(columns: list[exporter.OutColumn]) -> list[str]:
    """The fields of each instrument followed by its ``{form}_complete``."""
    header = []
    for form in forms():
        header.extend(c.name for c in columns if form_of(c) == form)
        header.append(complete_name(form))
    return header


def _value_writer(column: exporter.OutColumn):
    if column.kind == interchange.DATETIME:
        zone = timezone.get_current_timezone()
        return lambda value: (
            "" if value is None else value.astimezone(zone).strftime(DATETIME_FORMAT)
        )
    return exporter.formatter(column)


def _reading(name: str, text):
    return lambda row: text(row[name])


def _cell_writers(columns: list[exporter.OutColumn]) -> list:
    """For each cell of a records row: a function of the typed row giving its text."""
    writers = []
    for form in forms():
        for column in (c for c in columns if form_of(c) == form):
            writers.append(_reading(column.name, _value_writer(column)))
        if form == PATIENT_FORM:
            writers.append(lambda row: "2")  # a stored patient has every required field
        else:
            status = _status_name(form)
            writers.append(lambda row, status=status: COMPLETE_CODES.get(row[status], ""))
    return writers


def _statuses() -> dict[str, str]:
    return {_status_name(m.key): f"{m.key}__status" for m in SECTION_MODELS}


def records_chunks(
    patients, n: int, identifiable: bool, *, by_server: bool | None = None
) -> Iterator[bytes]:
    """REDCap's flat records CSV of ``patients`` in pieces, written as they are read:
    one row per record, the record ID first, each form's fields then its status.

    On PostgreSQL the server writes it (``records_by_server``), in the same bytes;
    ``by_server=False`` asks for the Python writer (None: the server where it can)."""
    if by_server is None:
        by_server = connections[patients.db].vendor == "postgresql"
    if by_server:
        return records_by_server(patients, n, identifiable)
    return _records_by_python(patients, n, identifiable)


def _records_by_python(patients, n: int, identifiable: bool) -> Iterator[bytes]:
    columns = redcap_columns(not identifiable)
    statuses = _statuses()
    rows = exporter.typed_rows(patients, deidentified=not identifiable, extra=statuses)
    if not identifiable:
        rows = exporter.deidentified_rows(rows, n, keep=tuple(statuses))
    writers = _cell_writers(columns)
    lines = exporter.Lines()
    writer = lines.writer()
    writer.writerow(records_header(columns))
    for row in rows:
        writer.writerow([text(row) for text in writers])
        if lines.size >= exporter.PIECE_BYTES:
            yield lines.piece()
    yield lines.piece()


# -- the records written by PostgreSQL (csvcopy): _cell_writers' text, formatted by the server


def _sql_value(column: interchange.Column):
    """``_value_writer`` in SQL (of an interchange column kept as it is)."""
    if column.kind == interchange.DATETIME:
        zone = interchange.sql_literal(timezone.get_current_timezone_name())
        pattern = interchange.sql_literal(interchange.TO_CHAR[DATETIME_FORMAT])
        return lambda value: f"to_char(({value}) AT TIME ZONE {zone}, {pattern})"
    return interchange.sql_formatter(column)


def _sql_complete(status: str) -> str:
    """``COMPLETE_CODES`` of a section's status in SQL (NULL: not started)."""
    codes = " ".join(
        f"WHEN {interchange.sql_literal(str(k))} THEN {interchange.sql_literal(v)}"
        for k, v in COMPLETE_CODES.items()
    )
    return f"CASE {status} {codes} END"


def _sql_cells(cells: list[tuple[str, str]], values: dict[str, str]) -> list[tuple[str, str]]:
    """The exported cells (name, SQL) in ``records_header``'s order, with each form's status."""
    of_form = {column.name: form_of(column) for column in exporter.out_columns(True)}
    of_form |= {column.name: form_of(column) for column in exporter.out_columns(False)}
    ordered = []
    for form in forms():
        ordered.extend(cell for cell in cells if of_form[cell[0]] == form)
        if form == PATIENT_FORM:
            ordered.append((complete_name(form), "'2'"))
        else:
            ordered.append((complete_name(form), _sql_complete(values[_status_name(form)])))
    return ordered


def records_by_server(patients, n: int, identifiable: bool) -> Iterator[bytes]:
    """``records_chunks`` written by PostgreSQL: one ``COPY`` whose cells are the SQL
    twins of ``_cell_writers`` over the rows (and order) of ``typed_rows``."""
    deidentified = not identifiable
    sql, params, values = exporter.copy_source(
        patients, deidentified=deidentified, extra=_statuses()
    )
    cells = exporter._copy_cells(values, deidentified=deidentified, n=n, formats=_sql_value)
    select = csvcopy.csv_select(_sql_cells(cells, values), sql, order_by="source.export_order")
    return csvcopy.copy_csv(select, params, using=patients.db, piece_bytes=exporter.PIECE_BYTES)


def redcap_export(**options) -> exporter.ExportFile:
    """The REDCap records export: :func:`exporter.registry_export` (who may take it,
    de-identification, the export log) with REDCap's records as the file."""
    return exporter.registry_export(fmt="redcap", writer=records_chunks, **options)


def export_for(fmt: str):
    """The function that takes an export in format ``fmt`` (``exporter.FORMATS``)."""
    return redcap_export if fmt == "redcap" else partial(exporter.registry_export, fmt=fmt)


# ---------------------------------------------------------------- the import

CHOICE_TYPES = ("radio", "dropdown", "yesno", "truefalse")
BINARY_CHOICES = ("1", "0")
# Field types that hold no value of their own, or none the registry can take.
NO_VALUE = ("descriptive",)
UNSUPPORTED = ("checkbox", "file", "signature")
# Columns of a REDCap export that are not fields: the repeating and longitudinal ones
# are refused, the others left out.
REPEATING = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")
LEFT_OUT = ("redcap_data_access_group", "redcap_survey_identifier")
REDCAP_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}(:\d{2})?)$")
MAPPING_HEADER = ("redcap_variable", "registry_column")


@dataclass(frozen=True)
class Field:
    """One variable of a REDCap data dictionary (``row``: its data row in that file)."""

    variable: str
    form: str
    field_type: str
    choices: tuple[str, ...]
    row: int


def _dictionary_problem(row: int | None, variable: str, message: str) -> Problem:
    where = "data dictionary" if row is None else f"data dictionary, row {row}"
    if variable:
        where += f", variable {variable}"
    return Problem(None, (), f"{where}: {message}")


def _codes(field_type: str, text: str) -> tuple[str, ...]:
    if field_type in ("yesno", "truefalse"):
        return BINARY_CHOICES
    if field_type not in CHOICE_TYPES:
        return ()
    return tuple(part.split(",", 1)[0].strip() for part in text.split("|") if part.strip())


def read_dictionary(file, filename: str = "") -> tuple[list[Field], list[Problem]]:
    """The variables of a REDCap data dictionary (CSV) and its problems."""
    try:
        header, body = importer.read_table(file, filename or str(file))
    except importer.UnreadableFile as exc:
        return [], [_dictionary_problem(None, "", str(exc))]
    header = [h.strip() for h in header]
    needed = DICTIONARY_HEADER[:6]
    missing = [name for name in needed if name not in header]
    if missing:
        message = f"the header has no column {', '.join(repr(m) for m in missing)}; " + (
            "use the data dictionary as REDCap downloads it."
        )
        return [], [_dictionary_problem(None, "", message)]
    at = {name: header.index(name) for name in needed}
    fields = []
    for number, cells in enumerate(body, start=1):
        cells = list(cells) + [""] * (len(header) - len(cells))
        variable = cells[at["Variable / Field Name"]].strip()
        if not variable:
            continue
        field_type = cells[at["Field Type"]].strip().lower()
        choices = cells[at["Choices, Calculations, OR Slider Labels"]]
        fields.append(
            Field(
                variable,
                cells[at["Form Name"]].strip(),
                field_type,
                _codes(field_type, choices),
                number,
            )
        )
    if not fields:
        return [], [_dictionary_problem(None, "", "it has no variable.")]
    return fields, []


def read_mapping(file, filename: str = "") -> tuple[dict[str, str | None], list[Problem]]:
    """REDCap variable -> registry column (None: left out) from a two-column CSV with
    the header ``redcap_variable,registry_column``."""
    if file is None:
        return {}, []
    where = "mapping file"
    try:
        header, body = importer.read_table(file, filename or str(file))
    except importer.UnreadableFile as exc:
        return {}, [Problem(None, (), f"{where}: {exc}")]
    if tuple(h.strip() for h in header[:2]) != MAPPING_HEADER:
        message = f"{where}: the header must be {','.join(MAPPING_HEADER)}."
        return {}, [Problem(None, (), message)]
    known = interchange.by_name()
    mapping: dict[str, str | None] = {}
    problems = []
    for number, cells in enumerate(body, start=1):
        cells = [c.strip() for c in cells] + ["", ""]
        variable, column = cells[0], cells[1]
        if not variable:
            continue
        if column and column not in known:
            problems.append(
                Problem(None, (), f"{where}, row {number}: {column!r} is not a registry column.")
            )
        elif variable in mapping:
            problems.append(
                Problem(None, (), f"{where}, row {number}: {variable} is mapped twice.")
            )
        mapping[variable] = column or None
    return mapping, problems


def _mapping_rule(field: Field, column: str, taken: dict[str, str]) -> str | None:
    """Why ``field`` cannot be imported into registry ``column`` (None: it can)."""
    name = field.variable
    if field.field_type in UNSUPPORTED:
        return (
            f"a {field.field_type} field cannot be imported into the registry; leave it out "
            f"in the mapping file ({name},)."
        )
    if column not in interchange.by_name():
        return (
            "not a registry column and not in the mapping file; map it "
            f"({name},REGISTRY_COLUMN) or leave it out ({name},)."
        )
    if column in taken:
        return f"{column} is already the registry column of {taken[column]}."
    return None


def _plan(fields: list[Field], mapping: dict[str, str | None]) -> tuple[dict, list[Problem]]:
    """REDCap variable -> registry column (None: left out), and the dictionary's problems."""
    plan: dict[str, str | None] = {}
    problems = []
    taken: dict[str, str] = {}  # registry column -> the variable imported into it
    for field in fields:
        column = mapping.get(field.variable, field.variable)
        if field.field_type in NO_VALUE or column is None:
            plan[field.variable] = None
            continue
        rule = _mapping_rule(field, column, taken)
        if rule is None:
            taken[column] = field.variable
        else:
            problems.append(_dictionary_problem(field.row, field.variable, rule))
        plan[field.variable] = column
    record = fields[0]
    if plan.get(record.variable) != "study_id":
        rule = "the first variable is the record ID and must map to study_id."
        problems.append(_dictionary_problem(record.row, record.variable, rule))
    return plan, problems


@dataclass
class _Translation:
    """What the REDCap header becomes: interchange columns and their sources."""

    header: list[str]  # interchange column names
    # Per interchange column: its REDCap column's index, field and cell translator.
    sources: list[tuple[int, Field, object]]
    statuses: list[tuple[int, str]]  # (index, {form}_complete name)
    problems: list[Problem]


def _translate_header(header: list[str], fields: list[Field], plan: dict) -> _Translation:
    by_variable = {field.variable: field for field in fields}
    form_names = {f.form for f in fields}
    checkboxes = {f.variable for f in fields if f.field_type == "checkbox"}
    done = _Translation([], [], [], [])
    for index, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff")
        if not name:
            continue
        field = by_variable.get(name)
        if field is not None:
            column = plan.get(name)
            if column is not None:
                datetime = interchange.by_name()[column].kind == interchange.DATETIME
                done.header.append(column)
                done.sources.append((index, field, _datetime_cell if datetime else _cell))
        elif name.endswith("_complete") and name.removesuffix("_complete") in form_names:
            done.statuses.append((index, name))
        elif name in REPEATING:
            message = (
                "repeating instruments and events are not supported; export one row per "
                "record (a project without events or repeating instruments)."
            )
            done.problems.append(Problem(None, (name,), message))
        elif not (
            name in LEFT_OUT
            or name.split("___")[0] in checkboxes
            or name.removesuffix("_timestamp") in form_names
        ):
            done.problems.append(
                Problem(None, (importer.printable(name),), "not a variable of the data dictionary.")
            )
    record = fields[0].variable
    if record not in (raw.strip().lstrip("\ufeff") for raw in header):
        message = "the record ID column is missing (the first variable of the data dictionary)."
        done.problems.append(Problem(None, (record,), message))
    return done


def _cell(field: Field, text: str, number: int, problems: list[Problem]) -> str:
    """The interchange text of one REDCap cell; a code outside the field's choices is
    reported (and passed on, so the row is still checked as a whole)."""
    value = text.strip()
    if value and field.choices and value not in field.choices:
        problems.append(
            Problem(
                number,
                (field.variable,),
                f"code {value!r} is not one of the choices of the data dictionary "
                f"({', '.join(field.choices)}).",
            )
        )
    return text


def _datetime_cell(field: Field, text: str, number: int, problems: list[Problem]) -> str:
    """REDCap's ``YYYY-MM-DD HH:MM`` as the interchange's ``YYYY-MM-DDTHH:MM``."""
    found = REDCAP_DATETIME.match(text.strip())
    return f"{found.group(1)}T{found.group(2)}" if found else text


def _status_problem(number: int, name: str, text: str) -> Problem | None:
    if text.strip() in ("", "0", "1", "2"):
        return None
    return Problem(
        number,
        (name,),
        f"use 0 (incomplete), 1 (unverified), 2 (complete) or blank, not {text.strip()!r}.",
    )


def _translate_body(body: list[list[str]], done: _Translation, record: str) -> list[list[str]]:
    """The interchange rows of the REDCap rows (the same row numbers)."""
    record_at = next(index for index, field, _ in done.sources if field.variable == record)
    width = max(index for index, _ in [*done.statuses, *((i, f) for i, f, _ in done.sources)]) + 1
    rows = []
    for number, cells in enumerate(body, start=1):
        if not any(cell.strip() for cell in cells):
            rows.append(importer.BLANK)
            continue
        cells = list(cells) + [""] * (width - len(cells))
        row = [cell(field, cells[i], number, done.problems) for i, field, cell in done.sources]
        for index, name in done.statuses:
            problem = _status_problem(number, name, cells[index])
            if problem is not None:
                done.problems.append(problem)
        if not cells[record_at].strip():
            message = "the record ID is missing; every record needs one."
            done.problems.append(Problem(number, (record,), message))
        rows.append(row)
    return rows


def _renamed(problems: Iterable[Problem], names: dict[str, str], seen: set) -> list[Problem]:
    """The native import's problems in REDCap's variable names, less those of a cell
    already reported by the REDCap checks (``seen``: (row, columns))."""
    found = []
    for problem in problems:
        columns = tuple(names.get(c, c) for c in problem.columns)
        if problem.row is not None and (problem.row, columns) in seen:
            continue
        found.append(dataclasses.replace(problem, columns=columns))
    return found


def redcap_import(
    *,
    file,
    dictionary,
    mapping=None,
    user=None,
    filename: str = "",
    dry_run: bool = False,
    create_sites: bool = False,
    strict_warnings: bool = False,
) -> ImportResult:
    """Import a REDCap records export (CSV) described by its data ``dictionary`` (CSV),
    with a ``mapping`` file (CSV) for variables named otherwise than the registry's
    columns; all or nothing, as :func:`importer.registry_import`."""
    filename = Path(str(filename or getattr(file, "name", "") or file)).name
    result = ImportResult(filename=filename, dry_run=dry_run)
    fields, problems = read_dictionary(dictionary)
    names, more = read_mapping(mapping)
    problems += more
    if not problems:
        plan, problems = _plan(fields, names)
    if problems:
        result.problems = problems
        return result
    limits = importer.Limits.from_settings()
    limits = dataclasses.replace(limits, max_columns=limits.max_columns + 3 * len(fields))
    try:
        header, body = importer.read_table(file, filename, limits)
    except importer.UnreadableFile as exc:
        result.problems = [Problem(None, (), str(exc))]
        return result
    done = _translate_header(header, fields, plan)
    if done.problems:
        result.problems = done.problems
        return result
    rows = _translate_body(body, done, fields[0].variable)
    body.clear()  # the REDCap text is not needed any more: memory for the native import
    native = importer.registry_import(
        table=(done.header, rows),
        user=user,
        filename=filename,
        dry_run=dry_run or bool(done.problems),
        create_sites=create_sites,
        strict_warnings=strict_warnings,
    )
    names_back = {
        column: field.variable
        for column, (_, field, _) in zip(done.header, done.sources, strict=True)
    }
    seen = {(p.row, p.columns) for p in done.problems}
    native.problems = sorted(
        done.problems + _renamed(native.problems, names_back, seen), key=lambda p: p.row or 0
    )
    native.warnings = _renamed(native.warnings, names_back, set())
    native.dry_run = dry_run
    return native
