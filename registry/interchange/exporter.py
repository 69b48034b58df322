"""Exports of the registry for analysis: interchange CSV, Excel and Stata.

One query reads every exported patient with all sections (the number of
queries does not grow with the number of patients). An identifiable export
(with study IDs and calendar dates) needs ``access.EXPORT_IDENTIFIABLE``;
everyone else allowed to export gets the de-identified table, built from each
column's declared category (``columns.PRIVACY``): identifiers and free text are
dropped (a per-export pseudonym stands in for the study ID), dates and times
become whole days or minutes from the door time, ages are top-coded
(``columns.TOP_CODED``), clinical values are kept. Every export is written to
the ``ExportLog``.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import tempfile
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.utils import timezone

from registry import access
from registry.models import ExportLog, Patient, Site

from . import columns as interchange

FORMATS = ("csv", "xlsx", "dta")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "dta": "application/x-stata-dta",
}
PSEUDO_ID = "pseudo_id"
ANCHOR = "door_time"  # de-identified times count from the arrival at the hospital


def offset_name(column: interchange.Column) -> str:
    """Name of the de-identified column replacing a date or date-time column."""
    stem = column.name.removesuffix("_time").removesuffix("_date")
    unit = "min" if column.kind == interchange.DATETIME else "days"
    return f"{stem}_{unit}_from_door"


@dataclass(frozen=True)
class OutColumn:
    """A column of an export: an interchange column, a pseudonym or an offset."""

    name: str
    kind: str
    label: str
    source: interchange.Column | None = None


# What the de-identified export does with a column (deidentified_treatment).
PSEUDONYM, DROPPED, OFFSET, TOP_CODE, KEPT = "pseudonym", "dropped", "offset", "top-coded", "kept"


def deidentified_treatment(column: interchange.Column) -> str:
    """What the de-identified export does with ``column``: ``PSEUDONYM``, ``DROPPED``,
    ``OFFSET``, ``TOP_CODE`` or ``KEPT``, from its privacy category."""
    privacy = column.privacy
    if privacy not in interchange.PRIVACY_CATEGORIES:
        raise ImproperlyConfigured(
            f"interchange column {column.name!r} has no privacy category "
            "(registry/interchange/columns.py, PRIVACY): nothing is exported de-identified"
        )
    if column.name == "study_id":
        return PSEUDONYM
    if privacy in (interchange.IDENTIFIER, interchange.FREE_TEXT) or column.name == ANCHOR:
        return DROPPED
    if column.kind in (interchange.DATE, interchange.DATETIME):
        return OFFSET
    if column.name in interchange.TOP_CODED:
        return TOP_CODE
    return KEPT


def out_columns(deidentified: bool) -> list[OutColumn]:
    found = []
    for column in interchange.columns():
        treatment = deidentified_treatment(column) if deidentified else KEPT
        if treatment == PSEUDONYM:
            found.append(OutColumn(PSEUDO_ID, interchange.TEXT, "pseudonym (this export only)"))
        elif treatment == OFFSET:
            unit = "minutes" if column.kind == interchange.DATETIME else "whole days"
            label = f"{column.label}: {unit} from door time"
            found.append(OutColumn(offset_name(column), interchange.INTEGER, label[:80], column))
        elif treatment == TOP_CODE:
            ceiling = interchange.TOP_CODED[column.name]
            label = f"{column.label} ({ceiling} = {ceiling} or more)"
            found.append(OutColumn(column.name, column.kind, label[:80], column))
        elif treatment == KEPT:
            found.append(OutColumn(column.name, column.kind, column.label, column))
    return found


def _lookups() -> dict[str, str]:
    """ORM path of each interchange column, for a single ``values()`` query."""
    paths = {}
    for column in interchange.columns():
        if column.section is None:
            paths[column.name] = "site__code" if column.name == "site" else column.name
        else:
            paths[column.name] = f"{column.section.key}__{column.name}"
    return paths


def typed_rows(patients) -> list[dict]:
    """Typed interchange rows of a ``Patient`` queryset, ordered by study ID (one query)."""
    paths = _lookups()
    records = patients.order_by("study_id").values(*paths.values())
    return [{name: record[path] for name, path in paths.items()} for record in records]


def _deidentify(rows: list[dict]) -> list[dict]:
    pseudonyms = list(range(1, len(rows) + 1))
    secrets.SystemRandom().shuffle(pseudonyms)
    width = max(4, len(str(len(rows))))
    plan = [(column, deidentified_treatment(column)) for column in interchange.columns()]
    out = []
    for row, number in zip(rows, pseudonyms, strict=True):
        door = row[ANCHOR]
        new = {}
        for column, treatment in plan:
            value = row[column.name]
            if treatment == PSEUDONYM:
                new[PSEUDO_ID] = f"X{number:0{width}d}"
            elif treatment == OFFSET:
                new[offset_name(column)] = _offset(column, value, door)
            elif treatment == TOP_CODE:
                ceiling = interchange.TOP_CODED[column.name]
                new[column.name] = None if value is None else min(value, ceiling)
            elif treatment == KEPT:
                new[column.name] = value
        out.append(new)
    out.sort(key=lambda r: r[PSEUDO_ID])
    return out


def _offset(column: interchange.Column, value, door) -> int | None:
    """Minutes (date-times) or whole days (dates) from the door time; None if unknown."""
    if value is None or door is None:
        return None
    if column.kind == interchange.DATETIME:
        return round((value - door).total_seconds() / 60)
    return (value - timezone.localtime(door).date()).days


def _text(column: OutColumn, value) -> str:
    if column.source is not None and column.kind == column.source.kind:
        return interchange.format_value(column.source, value)
    return "" if value is None else str(value)


def to_csv(columns: list[OutColumn], rows: list[dict]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([_text(c, row[c.name]) for c in columns])
    return buffer.getvalue().encode("utf-8")


def to_xlsx(columns: list[OutColumn], rows: list[dict]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet("registry")
    sheet.append([c.name for c in columns])
    for row in rows:
        cells = []
        for column in columns:
            value = row[column.name]
            if value is None:
                cells.append(None)
            elif column.kind == interchange.FLAG:
                cells.append(1 if value else 0)
            elif column.kind == interchange.DATETIME:
                cell = WriteOnlyCell(sheet, timezone.localtime(value).replace(tzinfo=None))
                cell.number_format = 'yyyy-mm-dd"T"hh:mm'
                cells.append(cell)
            elif column.kind == interchange.DATE:
                cell = WriteOnlyCell(sheet, value)
                cell.number_format = "yyyy-mm-dd"
                cells.append(cell)
            elif column.kind == interchange.INTEGER:
                cells.append(value)
            else:
                cells.append(_text(column, value))
        sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def to_dta(columns: list[OutColumn], rows: list[dict]) -> bytes:
    """Stata 14+ (.dta 118): variable labels, value labels, Stata dates."""
    import pandas as pd

    data, value_labels, convert_dates = {}, {}, {}
    for column in columns:
        values = [row[column.name] for row in rows]
        if column.kind == interchange.FLAG:
            data[column.name] = pd.array([None if v is None else int(v) for v in values], "Int8")
            value_labels[column.name] = {0: "no", 1: "yes"}
        elif column.kind == interchange.CATEGORY:
            codes = column.source.codes
            number = {code: n for n, (code, _) in enumerate(codes, start=1)}
            data[column.name] = pd.array([number.get(v) for v in values], "Int16")
            value_labels[column.name] = {n: label for n, (_, label) in enumerate(codes, start=1)}
        elif column.kind == interchange.INTEGER:
            data[column.name] = pd.array(values, "Int32")
        elif column.kind == interchange.DATETIME:
            local = [
                None if v is None else timezone.localtime(v).replace(tzinfo=None) for v in values
            ]
            data[column.name] = pd.to_datetime(pd.Series(local, dtype="object"))
            convert_dates[column.name] = "tc"
        elif column.kind == interchange.DATE:
            data[column.name] = pd.to_datetime(pd.Series(values, dtype="object"))
            convert_dates[column.name] = "td"
        else:
            data[column.name] = pd.Series(
                ["" if v is None else str(v) for v in values], dtype=object
            )
    frame = pd.DataFrame(data)
    labels = {c.name: c.label[:80] for c in columns}
    handle, path = tempfile.mkstemp(suffix=".dta")
    os.close(handle)
    try:
        frame.to_stata(
            path,
            write_index=False,
            version=118,
            convert_dates=convert_dates,
            variable_labels=labels,
            value_labels=value_labels,
            data_label="Stroke registry export",
        )
        with open(path, "rb") as stream:
            return stream.read()
    finally:
        os.unlink(path)


WRITERS = {"csv": to_csv, "xlsx": to_xlsx, "dta": to_dta}


@dataclass
class ExportFile:
    content: bytes
    filename: str
    content_type: str
    n_patients: int
    identifiable: bool


def registry_export(
    *,
    user,
    fmt: str = "csv",
    site: Site | None = None,
    deidentified: bool | None = None,
    via: str = "web",
) -> ExportFile:
    """The export file for ``user``; de-identified unless an admin asks otherwise.

    ``user`` None means the server operator running the command (no web
    account: everything is readable from the shell anyway); it is logged.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if user is not None:
        access.require(access.has(user, access.EXPORT))
        if deidentified is None:
            deidentified = not access.has(user, access.EXPORT_IDENTIFIABLE)
        if not deidentified:
            access.require(access.has(user, access.EXPORT_IDENTIFIABLE))
        patients = access.patients_for(user)
    else:
        deidentified = bool(deidentified)
        patients = Patient.objects.all()
    if site is not None:
        if user is not None and not access.sites_for(user).filter(pk=site.pk).exists():
            raise PermissionDenied
        patients = patients.filter(site=site)
    rows = typed_rows(patients)
    if deidentified:
        rows = _deidentify(rows)
    columns = out_columns(deidentified)
    content = WRITERS[fmt](columns, rows)
    log = ExportLog.objects.create(
        user=user,
        format=fmt,
        identifiable=not deidentified,
        site=site,
        filters={"site": site.code if site is not None else None},
        n_patients=len(rows),
        via=via,
    )
    if site is not None:
        log.sites.set([site])
    else:
        log.sites.set(access.sites_for(user) if user is not None else Site.objects.all())
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    kind = "deidentified" if deidentified else "identifiable"
    scope = f"-{site.code}" if site is not None else ""
    return ExportFile(
        content=content,
        filename=f"registry{scope}-{kind}-{stamp}.{fmt}",
        content_type=CONTENT_TYPES[fmt],
        n_patients=len(rows),
        identifiable=not deidentified,
    )
