"""Bulk import of interchange rows (CSV or .xlsx) into the registry, all or nothing.

Every row is validated with the models' own validators and ``clean()`` (the
rules the forms use). Problems are reported as ``row N, column C: message``
(N = 1-based data row). The file is streamed: read, checked and written
``CHUNK_ROWS`` rows at a time, in one transaction that is rolled back at the end
if any row has a problem (every problem of the file is then reported, and nothing
is kept). Patients are created or updated by ``study_id`` with bulk operations (a
constant number of queries per batch, none per row) and history entries
attributed to the importing user with the reason ``import of FILE``.

Speed (benchmarks/import_speed.py): the stored state of the file's patients is
read in one query per batch; each row is validated by ``full_clean()`` on one
reused instance per model, each field's ``clean()`` running once per distinct
value (``_Validator``); records and their history rows are written as parameter
rows by ``registry.models.bulk`` (``executemany``, or binary ``COPY`` on PostgreSQL).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from registry import access, rules
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
    # The rule's code for a warning (registry.rules, severity warning), else "".
    code: str = ""

    def __str__(self) -> str:
        if self.row is None and not self.columns:
            return self.message  # about the whole file, which the message names
        where = "header" if self.row is None else f"row {self.row}"
        if not self.columns:
            return f"{where}: {self.message}"
        label = "column" if len(self.columns) == 1 else "columns"
        code = f" [{self.code}]" if self.code else ""
        return f"{where}, {label} {', '.join(self.columns)}: {self.message}{code}"


BLANK_TEXT = "(blank)"


@dataclass(frozen=True)
class FieldChange:
    """One stored value the file changes (interchange column, typed values)."""

    field: str
    stored: object
    new: object
    completed: bool = False  # the value sits in a section stored as complete

    @property
    def stored_text(self) -> str:
        return self.text(self.stored)

    @property
    def new_text(self) -> str:
        return self.text(self.new)

    def text(self, value) -> str:
        if self.field == "site":
            return value or BLANK_TEXT
        column = interchange.by_name()[self.field]
        return interchange.format_value(column, value, neutralise=False) or BLANK_TEXT


@dataclass
class PatientChange:
    """Every value the file changes for one stored patient (``row`` of the file)."""

    row: int
    study_id: str
    fields: list[FieldChange] = field(default_factory=list)
    locked: bool = False

    def lines(self) -> list[str]:
        """``row N, study_id S: field F: stored -> new`` for each change."""
        found = []
        for change in self.fields:
            marks = [m for m, on in (("completed section", change.completed),) if on]
            if self.locked:
                marks.append("locked record")
            suffix = f" [{', '.join(marks)}]" if marks else ""
            found.append(
                f"row {self.row}, study_id {self.study_id}: field {change.field}: "
                f"{change.text(change.stored)} \u2192 {change.text(change.new)}{suffix}"
            )
        return found


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
    # Values a warning rule flags: reported, imported (refused with strict_warnings);
    # the first PROBLEM_LIMIT are kept, every one is counted in warning_tally.
    warnings: list[Problem] = field(default_factory=list)
    warning_tally: Counter = field(default_factory=Counter)
    # What the file changes in the stored patients, in file order.
    changes: list[PatientChange] = field(default_factory=list)
    # A digest of everything the import would write: the preview's is compared with
    # the confirmation's, which refuses to write anything else.
    plan_digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def warning_counts(self) -> dict[str, int]:
        """The number of warnings per rule code, most frequent first."""
        tally = self.warning_tally or Counter(w.code for w in self.warnings)
        return dict(tally.most_common())

    @property
    def warning_total(self) -> int:
        return sum(self.warning_counts.values())

    @property
    def nothing_to_do(self) -> bool:
        """A valid file whose every patient is already stored with these values."""
        return self.ok and self.created == 0 and self.changed == 0 and not self.sites_created

    def diff_lines(self) -> list[str]:
        return [line for change in self.changes for line in change.lines()]


# ---------------------------------------------------------------- reading files

NOT_UTF8 = (
    "the file is not UTF-8 text; save it as CSV UTF-8 "
    '(in Excel: Save As, "CSV UTF-8 (Comma delimited)") and upload it again.'
)
NOT_XLSX = (
    "the file is not a valid Excel .xlsx file; save it again from Excel as an "
    ".xlsx workbook or as CSV UTF-8."
)


PLAN_CHANGED = (
    "the registry changed since the preview, so the import would now write something "
    "else: review the new preview and confirm again."
)


class UnreadableFile(Exception):
    """The file cannot be imported as it is (not CSV UTF-8 nor an .xlsx workbook, or
    over a limit); the message says why and what to do."""


class OverBudget(Exception):
    """The time budget ran out at data row ``row`` (None: while reading a workbook)."""

    def __init__(self, row: int | None):
        super().__init__(row)
        self.row = row


@dataclass(frozen=True)
class Limits:
    """How much of a file the import reads (``settings.IMPORT_*``), and until when."""

    max_rows: int
    max_columns: int
    seconds: int | None = None  # the time budget (the web preview's); None: none
    deadline: float | None = None  # time.monotonic() at which the budget runs out
    xlsx_memory_mb: int = 1024

    @classmethod
    def from_settings(cls, *, seconds: int | None = None, max_rows: int | None = None) -> Limits:
        """``max_rows``: None for ``settings.IMPORT_MAX_ROWS``."""
        extra = getattr(settings, "IMPORT_EXTRA_COLUMNS", 10)
        return cls(
            max_rows=max_rows or getattr(settings, "IMPORT_MAX_ROWS", 200_000),
            max_columns=len(interchange.columns()) + extra,
            seconds=seconds,
            deadline=None if seconds is None else time.monotonic() + seconds,
            xlsx_memory_mb=getattr(settings, "IMPORT_XLSX_MEMORY_MB", 1024),
        )

    def check_time(self, row: int | None) -> None:
        """Raise :class:`OverBudget` once the deadline has passed (at data row ``row``)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OverBudget(row)

    def too_many_rows(self) -> str:
        return (
            f"the file has more than {self.max_rows:,} rows; split it into files of at "
            f"most {self.max_rows:,} rows and import them one after the other."
        )

    def too_many_columns(self, where: str) -> str:
        known = len(interchange.columns())
        return (
            f"{where} has values in more than {self.max_columns} columns (the interchange "
            f"has {known}); remove the extra columns."
        )


CHECK_EVERY = 256  # rows between two looks at the clock
BLANK: list[str] = []  # every blank line inside the table (they only keep row numbers)


def read_table(file, filename: str, limits: Limits | None = None) -> tuple[list, list]:
    """Header and data rows as CSV text, from a CSV or .xlsx file (path or binary file).

    Raises :class:`UnreadableFile` for a file that cannot be read as either, or with
    more rows or columns than ``limits`` allow (it is never read further than that),
    and :class:`OverBudget` once the limits' deadline passes. A CSV must be UTF-8
    (with or without Excel's byte order mark): other encodings are refused rather than
    guessed, since a wrong guess silently garbles names. A workbook is read by a
    process of its own (``registry.interchange.xlsx``).
    """
    header, body = stream_table(file, filename, limits)
    return header, list(body)


def stream_table(file, filename: str, limits: Limits | None = None) -> tuple[list, Iterator]:
    """:func:`read_table`'s header, and its data rows as an iterator read from the file
    as they are asked for (an import of a million rows never holds them all).

    The iterator raises :class:`UnreadableFile` or :class:`OverBudget` where the file
    stops being readable or within its limits.
    """
    limits = limits or Limits.from_settings()
    if not isinstance(file, str | Path):
        lines = _file_object_lines(file, filename, limits)
    else:
        with open(file, "rb") as handle:
            workbook = str(filename).lower().endswith(".xlsx") or handle.read(2) == b"PK"
        lines = _xlsx_lines(Path(file), limits) if workbook else _path_lines(Path(file), limits)
    header = next(lines, None)
    return header or [], lines


def _file_object_lines(file, filename: str, limits: Limits) -> Iterator[list[str]]:
    data = file.read()  # an upload, within IMPORT_MAX_UPLOAD_MB
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not (str(filename).lower().endswith(".xlsx") or data[:2] == b"PK"):
        yield from _csv_lines(io.BytesIO(data), limits)
        return
    handle, path = tempfile.mkstemp(suffix=".xlsx")  # mode 0600
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    del data
    try:
        yield from _xlsx_lines(Path(path), limits)
    finally:
        os.unlink(path)


def _path_lines(path: Path, limits: Limits) -> Iterator[list[str]]:
    with open(path, "rb") as handle:
        yield from _csv_lines(handle, limits)


def _csv_lines(binary, limits: Limits) -> Iterator[list[str]]:
    """The header (the first non-blank row), then the body of a CSV byte stream, row by row.

    Blank rows inside the body are kept as ``BLANK`` (they keep the row numbers), those
    after it are not; a row with values beyond ``limits.max_columns`` or a body longer
    than ``limits.max_rows`` stops the reading there.
    """
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    header, rows, blank_run = None, 0, 0
    try:
        for number, cells in enumerate(csv.reader(text), start=1):
            if number % CHECK_EVERY == 0:
                limits.check_time(rows)
            if not any(cell.strip() for cell in cells):
                blank_run += header is not None
                continue
            if len(cells) > limits.max_columns:
                if any(cell.strip() for cell in cells[limits.max_columns :]):
                    where = "the header" if header is None else f"row {rows + blank_run + 1}"
                    raise UnreadableFile(limits.too_many_columns(where))
                cells = cells[: limits.max_columns]
            if header is None:
                header = cells
                yield cells
                continue
            if rows + blank_run >= limits.max_rows:
                raise UnreadableFile(limits.too_many_rows())
            for _ in range(blank_run):
                yield BLANK
            rows += blank_run + 1
            blank_run = 0
            yield cells
    except UnicodeDecodeError as exc:
        raise UnreadableFile(NOT_UTF8) from exc
    except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
        raise UnreadableFile(f"the file cannot be read as CSV ({exc}).") from exc
    finally:
        text.detach()  # the caller closes the byte stream


def _xlsx_lines(path: Path, limits: Limits) -> Iterator[list[str]]:
    """The workbook's first sheet, converted to CSV by a process of its own."""
    handle, target = tempfile.mkstemp(suffix=".csv")  # mode 0600: it holds patient data
    os.close(handle)
    try:
        answer = _convert_workbook(path, Path(target), limits)
        if "unreadable" in answer:
            raise UnreadableFile(NOT_XLSX)
        if "refused" in answer:
            raise UnreadableFile(_workbook_refusal(answer["refused"], limits))
        yield from _path_lines(Path(target), limits)
    finally:
        os.unlink(target)


def _convert_workbook(source: Path, target: Path, limits: Limits) -> dict:
    """Run ``registry.interchange.xlsx`` on ``source``; its answer (a dict)."""
    remaining = None
    if limits.deadline is not None:
        remaining = max(1.0, limits.deadline - time.monotonic())
    request = {
        "source": str(source),
        "target": str(target),
        "kinds": {column.name: column.kind for column in interchange.columns()},
        "max_rows": limits.max_rows,
        "max_columns": limits.max_columns,
        "memory_mb": limits.xlsx_memory_mb,
        "seconds": remaining,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "registry.interchange.xlsx"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=settings.BASE_DIR,
            timeout=None if remaining is None else remaining + 2,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OverBudget(None) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:  # killed: over its CPU time or its memory
        if _out_of_time(done.returncode, limits):
            raise OverBudget(None)
        return {"refused": f"reading it needs more than {limits.xlsx_memory_mb} MB or its time"}
    answer = json.loads(lines[-1])
    if answer.get("refused", "").endswith("out of time"):
        raise OverBudget(None)
    return answer


def _out_of_time(returncode: int, limits: Limits) -> bool:
    """Whether a killed reader ran out of time rather than memory.

    Its CPU ceiling and the wall-clock timeout are both set from the same budget, so
    either may end a slow workbook first: both mean the budget is spent.
    """
    if returncode == -signal.SIGXCPU:
        return True
    return limits.deadline is not None and time.monotonic() >= limits.deadline


def _workbook_refusal(reason: str, limits: Limits) -> str:
    if reason.endswith(" columns"):
        return limits.too_many_columns(reason.split(" has ")[0])
    if reason.endswith(" rows"):
        return limits.too_many_rows()
    return (
        f"the workbook cannot be read here ({reason}); save its first sheet as "
        '"CSV UTF-8 (Comma delimited)" and import that file.'
    )


# Characters a cell must not hold: they cannot be stored (NUL) or are invisible and
# almost always a damaged file (other C0 and C1 controls, DEL); tab and line ends are text.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
PROBLEM_LIMIT = 10_000  # checking stops after this many problems (what a person reads)


def _control_problem(text: str) -> str | None:
    found = CONTROL_CHARACTERS.search(text)
    if found is None:
        return None
    return (
        f"contains the control character U+{ord(found.group()):04X} (position "
        f"{found.start() + 1}), which cannot be stored; remove it."
    )


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (for messages)."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def parse_table(
    header: list[str], body: Iterable[list[str]], limits: Limits | None = None
) -> tuple[list[dict], list[Problem], list[str]]:
    """Typed rows (all contract columns; None for a blank line) from CSV text; problems;
    the columns present.

    After ``PROBLEM_LIMIT`` problems the parsing stops with a problem about the whole
    file (listed first); past the ``limits``' deadline it raises :class:`OverBudget`.
    """
    parser = RowParser(header)
    if parser.problems:
        return [], parser.problems, parser.columns
    rows, problems = [], []
    for number, cells in enumerate(body, start=1):
        if limits is not None and number % CHECK_EVERY == 0:
            limits.check_time(number)
        if len(problems) >= PROBLEM_LIMIT:
            problems.insert(0, _stopped(number))
            break
        rows.append(parser.row(number, cells, problems))
    return rows, problems, parser.columns


def _stopped(number: int) -> Problem:
    stop = f"checking stopped at row {number:,} after {PROBLEM_LIMIT:,} problems; "
    return Problem(None, (), stop + "correct these and import it again.")


class RowParser:
    """Typed rows from the CSV text of a file whose header is ``header``.

    ``problems`` holds the header's (a wrong header makes every row meaningless);
    ``columns`` the interchange columns present.
    """

    def __init__(self, header: list[str]):
        header = list(header)
        while header and not str(header[-1]).strip():
            header.pop()  # spreadsheets often carry empty trailing columns
        if not header:
            self.problems = [Problem(None, (), "the file is empty (no header row).")]
            self.columns: list[str] = []
            return
        self.problems, present = _header_problems(header)
        self.columns = [name for _, name in present]
        known = interchange.by_name()
        # A cell's value depends only on its column and text: each distinct text of a
        # column is parsed once (codes, flags, scores and dates repeat a lot). The
        # remembered texts are bounded: free text (names, notes) must not pile up.
        self.parsers = [
            (index, name, interchange.parser(known[name]), {}) for index, name in present
        ]
        self.template = dict.fromkeys(interchange.column_names())
        self.width = len(header)

    def row(self, number: int, cells: list[str], problems: list[Problem]) -> dict | None:
        """Row ``number``'s typed values (None for a blank line); its problems appended."""
        if not any(cell.strip() for cell in cells):
            return None  # a blank line: skipped, but it keeps the row numbers
        if len(cells) > self.width and any(cell.strip() for cell in cells[self.width :]):
            problems.append(Problem(number, (), "more cells than header columns."))
        typed = self.template.copy()
        for index, name, parse, parsed in self.parsers:
            text = cells[index] if index < len(cells) else ""
            try:
                typed[name] = parsed[text]
            except KeyError:
                try:
                    value = _parse_cell(parse, text)
                except interchange.ParseError as exc:
                    problems.append(Problem(number, (name,), str(exc), unreadable=True))
                    continue
                if len(parsed) < PARSED_TEXTS:
                    parsed[text] = value
                typed[name] = value
        return typed


PARSED_TEXTS = 1_000  # distinct texts of a column whose parsed value is remembered


def _parse_cell(parse, text: str):
    control = _control_problem(text)
    if control is not None:
        raise interchange.ParseError(control)
    return parse(text)


def _header_problems(header: list[str]) -> tuple[list[Problem], list[tuple[int, str]]]:
    """The header's problems, and the (index, name) of each interchange column in it."""
    problems: list[Problem] = []
    known = interchange.by_name()
    seen: set[str] = set()
    present: list[tuple[int, str]] = []
    for index, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff")
        if name not in known:
            problems.append(Problem(None, (printable(name),), "unknown column."))
        elif name in seen:
            problems.append(Problem(None, (name,), "duplicated column."))
        else:
            seen.add(name)
            present.append((index, name))
    for name in interchange.REQUIRED:
        if name not in seen:
            problems.append(Problem(None, (name,), "required column is missing."))
    return problems, present


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
        if len(valid) < VALID_VALUES:  # distinct dates and times must not pile up
            for key in unchecked:
                valid[key] = values[key[0]]
        return []


VALID_VALUES = 20_000  # (field, value) pairs a _Validator remembers as valid


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
    diff: list[FieldChange] = field(default_factory=list)

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

    def __init__(self, user, now, site_codes: dict[int, str] | None = None):
        self.user_id = user.pk if user is not None else None
        self.now = now
        self.site_codes = site_codes or {}
        self.warnings: list[Problem] = []
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
        self.warnings.extend(_row_warnings(number, values))
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
        if stored is not None:
            planned.diff = self._patient_diff(stored, site, sex, age_years)
        for model in SECTION_MODELS:
            old = None if stored is None else stored[self.slices[model]]
            if old is not None and old[0] is None:
                old = None  # no such section stored (a LEFT JOIN's NULLs)
            found = self._plan_section(model, number, values, old, problems)
            if stored is not None and found is not None:
                planned.diff.extend(self._section_diff(model, old, found))
            if found is not None:
                (planned.sections_new if old is None else planned.sections_changed).append(
                    (model, found)
                )
        return planned, problems

    def _patient_diff(self, stored: tuple, site, sex, age_years) -> list[FieldChange]:
        site_codes = self.site_codes
        before = {"site": site_codes.get(stored[1]), "sex": stored[2], "age_years": stored[3]}
        after = {
            "site": site.code if site is not None else None,
            "sex": sex,
            "age_years": age_years,
        }
        return [FieldChange(n, before[n], after[n]) for n in before if before[n] != after[n]]

    def _section_diff(self, model, old: tuple | None, record: dict) -> list[FieldChange]:
        names = self.fields[model]
        if old is None:  # a section new to a stored patient: each value it brings
            return [FieldChange(n, None, record[n]) for n in names if record[n] is not None]
        completed = old[1] == SectionStatus.COMPLETE
        before = old[len(SECTION_STORED) :]
        return [
            FieldChange(name, was, record[name], completed)
            for name, was in zip(names, before, strict=True)
            if was != record[name]
        ]

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


def _row_warnings(number: int, values: dict) -> list[Problem]:
    """The warning rules (``registry.rules``) a row's values raise."""
    return [
        Problem(number, rule.fields, str(rule.message), code=rule.code)
        for rule in rules.warnings(values)
    ]


def _changes(planned: list[_Planned], locked_rows: set[int]) -> list[PatientChange]:
    return [
        PatientChange(p.number, p.study_id, p.diff, locked=p.number in locked_rows)
        for p in planned
        if not p.new and p.diff
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

CHUNK_ROWS = 5_000  # rows checked, then written, together


class _Undo(Exception):
    """Leaves the import's transaction without keeping anything (a refusal, a dry run)."""


def registry_import(
    *,
    rows: Iterable[dict] | None = None,
    file=None,
    table: tuple[list[str], list[list[str]]] | None = None,
    user=None,
    filename: str = "",
    dry_run: bool = False,
    create_sites: bool = False,
    strict_warnings: bool = False,
    expected_plan: str | None = None,
    time_budget: int | None = None,
    max_rows: int | None = None,
) -> ImportResult:
    """Check every row and write them all, or (on any problem, or ``dry_run``) nothing.

    ``rows`` are typed interchange rows (as the demo generator makes them); ``file`` is a
    path or binary file of CSV or .xlsx text, read within ``Limits.from_settings()`` (rows,
    columns; ``max_rows`` overrides ``settings.IMPORT_MAX_ROWS``); ``table`` is a header and
    rows of interchange CSV text already read (a REDCap file translated by
    ``registry.interchange.redcap``). With ``time_budget`` (seconds), refused when reading
    and checking it takes longer. The file is read and checked ``CHUNK_ROWS`` rows at a
    time, and each chunk is written while no problem has been found, in one transaction that
    is rolled back at the end if any row of the file has a problem: every problem of the
    file is reported (up to ``PROBLEM_LIMIT``) and nothing is kept. Values a warning rule
    flags are reported (``result.warnings``) and imported, or refused as problems with
    ``strict_warnings``. ``expected_plan``: the ``plan_digest`` of the preview the user
    confirmed; anything else to write (the registry changed since) is refused. A ``user``
    without ``access.ALL_SITES`` imports into their own sites only.
    """
    filename = str(filename or getattr(file, "name", "") or "rows")
    result = ImportResult(filename=Path(filename).name, dry_run=dry_run)
    limits = Limits.from_settings(seconds=time_budget, max_rows=max_rows)
    run = _Run(result, user, limits, create_sites=create_sites, strict_warnings=strict_warnings)
    try:
        return _import(run, rows, table if table is not None else file, expected_plan)
    except OverBudget as exc:
        where = "" if exc.row is None else f" (stopped at row {exc.row:,})"
        message = (
            f"the file could not be checked within {limits.seconds} seconds{where}; split "
            "it into smaller files, or have it imported on the server with "
            "manage.py import_registry."
        )
        result.problems.insert(0, Problem(None, (), message))
        return result
    except UnreadableFile as exc:  # found part-way through the file: only this is said
        refused = ImportResult(filename=result.filename, dry_run=dry_run)
        refused.problems.append(Problem(None, (), str(exc)))
        return refused


def _import(run: _Run, rows, file, expected_plan) -> ImportResult:
    """:func:`registry_import`'s reading, checking and writing, chunk by chunk."""
    result = run.result
    numbered = _typed_rows(run, rows, file)
    if numbered is None:
        return result  # the file or its header cannot be read: nothing else is
    attribution = bulk.Attribution(user=run.user, reason=f"import of {result.filename}")
    try:
        with bulk.writing(attribution=attribution) as writer:
            for chunk in _chunks(numbered, CHUNK_ROWS):
                planned = run.check(chunk)
                if not result.problems and not result.dry_run:
                    run.write(planned, writer)
                if run.stopped:
                    break
            run.finish(expected_plan)
            if result.problems or result.dry_run:
                raise _Undo
    except _Undo:
        pass
    return result


def _typed_rows(run: _Run, rows, file) -> Iterator[tuple[int, dict, list]] | None:
    """(number, typed values, parse problems) of each non-blank row, read as needed;
    None when the file or its header cannot be read (the problems say why)."""
    result = run.result
    if rows is not None:
        template = dict.fromkeys(interchange.column_names())
        return ((n, {**template, **row}, []) for n, row in enumerate(rows, start=1))
    try:
        if isinstance(file, tuple):  # already read: (header, body)
            header, body = file
        else:
            header, body = stream_table(file, result.filename, run.limits)
    except UnreadableFile as exc:
        result.problems.append(Problem(None, (), str(exc)))
        return None
    parser = RowParser(header)
    if parser.problems:  # a wrong header makes every row meaningless
        result.problems.extend(parser.problems)
        return None
    return _parsed(parser, body, run.limits)


def _parsed(parser: RowParser, body, limits: Limits) -> Iterator[tuple[int, dict, list]]:
    for number, cells in enumerate(body, start=1):
        if number % CHECK_EVERY == 0:
            limits.check_time(number)
        problems: list[Problem] = []
        values = parser.row(number, cells, problems)
        if values is not None:
            yield number, values, problems


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Run:
    """One import, checked chunk by chunk: what spans its chunks (the file's study IDs,
    its sites, the counts, the changes to stored patients and the digest of the plan).

    Only the study IDs (to find those the file repeats), the changes to stored
    patients and the first ``PROBLEM_LIMIT`` problems and warnings grow with the file.
    """

    def __init__(self, result, user, limits, *, create_sites, strict_warnings):
        self.result, self.user, self.limits = result, user, limits
        self.create_sites, self.strict_warnings = create_sites, strict_warnings
        self.scoped = user is not None and not access.has(user, access.ALL_SITES)
        found = access.sites_for(user) if self.scoped else Site.objects.all()
        self.sites = {site.code: site for site in found}
        self.yours = {site.pk for site in self.sites.values()}
        self.new_sites: dict[str, Site] = {}
        self.planner = _Planner(user, timezone.now(), {s.pk: c for c, s in self.sites.items()})
        self.first_row: dict[str, int] = {}
        self.digest = hashlib.sha256()
        self.stopped = False

    def check(self, chunk: list[tuple[int, dict, list]]) -> list[_Planned]:
        """Check the rows of ``chunk``; what they would write (nothing is written)."""
        self.result.rows += len(chunk)
        problems: list[Problem] = []
        firsts = []
        for number, values, parsed in chunk:
            problems.extend(parsed)
            if self._first(number, values, problems):
                firsts.append((number, values))
            self._site(number, values["site"], problems)
        planned = self._plan(firsts, problems)
        locked = _locked_problems(planned)
        problems.extend(locked)
        warnings, self.planner.warnings = self.planner.warnings, []
        if self.strict_warnings:
            problems.extend(warnings)
        self._keep_warnings(warnings)
        self._keep_problems(_dedupe(problems), [number for number, _, _ in chunk])
        self._count(planned, {p.row for p in locked})
        return planned

    def _first(self, number: int, values: dict, problems: list[Problem]) -> bool:
        """Whether row ``number`` is its study ID's first (a repeat is a problem)."""
        study_id = values["study_id"]
        if study_id is None:
            return True
        first = self.first_row.setdefault(study_id, number)
        if first != number:
            message = f"{study_id} is duplicated in the file (first in row {first})."
            problems.append(Problem(number, ("study_id",), message))
        return first == number

    def _site(self, number: int, code: str | None, problems: list[Problem]) -> None:
        if code is None:
            problems.append(Problem(number, ("site",), "required."))
        elif code in self.sites or code in self.new_sites:
            return
        elif not self.create_sites or self.scoped:
            message = _unknown_site(code, self.sites, self.scoped)
            problems.append(Problem(number, ("site",), message))
        else:
            site = Site(code=code, name=code)
            try:
                site.full_clean(validate_unique=False)
            except ValidationError as exc:
                message = "; ".join(exc.message_dict.get("code", ["invalid site code."]))
                problems.append(Problem(number, ("site",), message))
                return
            self.new_sites[code] = site

    def _plan(self, firsts: list[tuple[int, dict]], problems: list[Problem]) -> list[_Planned]:
        ids = sorted(values["study_id"] for _, values in firsts if values["study_id"])
        stored = self.planner.stored(ids)
        planned = []
        for number, values in firsts:
            if number % CHECK_EVERY == 0:
                self.limits.check_time(number)
            study_id = values["study_id"]
            site = self.sites.get(values["site"]) or self.new_sites.get(values["site"])
            old = stored.get(study_id) if study_id else None
            if old is not None and old[1] not in self.yours:  # PATIENT_STORED: the site
                message = f"{study_id} is the study ID of a patient of a site that is not yours."
                problems.append(Problem(number, ("study_id",), message))
                continue
            plan, found = self.planner.plan(number, values, old, site)
            problems.extend(found)
            planned.append(plan)
        return planned

    def _keep_warnings(self, warnings: list[Problem]) -> None:
        kept = self.result.warnings
        kept.extend(warnings[: max(0, PROBLEM_LIMIT - len(kept))])
        self.result.warning_tally.update(w.code for w in warnings)

    def _keep_problems(self, problems: list[Problem], numbers: list[int]) -> None:
        """Add the chunk's problems in row order, up to ``PROBLEM_LIMIT``: checking stops
        at the first row reached with that many problems already found."""
        by_row: dict[int | None, list[Problem]] = {}
        for problem in problems:
            by_row.setdefault(problem.row, []).append(problem)
        kept = self.result.problems
        for number in numbers:
            if len(kept) >= PROBLEM_LIMIT:
                kept.insert(0, _stopped(number))
                self.stopped = True
                return
            kept.extend(by_row.get(number, ()))

    def _count(self, planned: list[_Planned], locked_rows: set[int]) -> None:
        result, digest = self.result, self.digest
        changes = _changes(planned, locked_rows)
        result.changes.extend(changes)
        changed = {change.row: change for change in changes}
        for plan in planned:
            result.created += plan.new
            result.changed += not plan.new and plan.changes
            result.unchanged += not plan.new and not plan.changes
            if plan.new:
                digest.update(f"+{plan.study_id}\n".encode())
            elif plan.number in changed:
                for line in changed[plan.number].lines():
                    digest.update(f"{line}\n".encode())

    def finish(self, expected_plan: str | None) -> None:
        result = self.result
        result.sites_created = sorted(self.new_sites)
        self.digest.update(",".join(result.sites_created).encode())
        result.plan_digest = self.digest.hexdigest()
        if expected_plan is not None and expected_plan != result.plan_digest:
            result.problems.append(Problem(None, (), PLAN_CHANGED))

    def write(self, planned: list[_Planned], writer: bulk.Writer) -> None:
        """Insert and update the chunk's records and their history rows (inside the
        import's one transaction).

        What ``bulk_create_with_history`` / ``bulk_update_with_history`` write, without
        building a model and a historical model instance per record
        (``registry.models.bulk``).
        """
        for site in self.new_sites.values():
            if site.pk is None:
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


def _unknown_site(code: str, sites: dict[str, Site], scoped: bool) -> str:
    known = ", ".join(sorted(sites)) or "none"
    if scoped:  # whether another site has that code is not theirs to know
        return f"{code!r} is not one of your sites ({known})."
    return f"unknown site code {code!r} (known: {known}; --create-sites creates it)."


# ---------------------------------------------------------------- writing


def _section_records(planned: list[_Planned], which: str, model: type[Section]) -> list[dict]:
    """The records of ``model`` in each plan's ``which`` sections, with their patient."""
    records = []
    for plan in planned:
        for section_model, record in getattr(plan, which):
            if section_model is model:
                record["patient_id"] = plan.pk
                records.append(record)
    return records
