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
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import connections
from django.db.models import CharField, F, QuerySet, Value
from django.db.models.functions import MD5, Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access
from registry.models import ExportLog, Patient, Site

from . import columns as interchange
from . import csvcopy, xlsxsheet
from .frozen import freeze_typed_rows

FORMATS = ("csv", "xlsx", "dta", "redcap")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "redcap": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "dta": "application/x-stata-dta",
}
# The file name's ending, when it is not the format's name.
SUFFIXES = {"redcap": "-redcap.csv"}
PSEUDO_ID = "pseudo_id"
ANCHOR = "door_time"  # de-identified times count from the arrival at the hospital
# Patients read per query, and the size of the pieces sent: memory stays the same
# whatever the number of patients.
CHUNK_ROWS = 2_000
PIECE_BYTES = 256 * 1024
# An xlsx sheet holds 1,048,576 rows, the header included.
XLSX_MAX_ROWS = 1_048_575


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


def typed_rows(
    patients,
    *,
    deidentified: bool,
    chunk_size: int | None = None,
    extra: dict[str, str] | None = None,
) -> Iterator[dict]:
    """Typed interchange rows of a ``Patient`` queryset in the file's order, read through
    one cursor ``chunk_size`` rows at a time, so memory does not grow with the registry.
    ``extra``: more values read with each row (name -> ORM path), such as a section's
    status.

    The order is by study ID, or for a de-identified export by a keyed hash of the
    patient's id with a key drawn for this export: a random order, in which row k
    carries pseudonym k + 1 and nothing of the study ID's order shows.
    """
    paths = _lookups() | (extra or {})
    records = patients.order_by(_order(deidentified)).values_list(*paths.values())
    names = list(paths)
    for record in records.iterator(chunk_size=chunk_size or CHUNK_ROWS):
        yield dict(zip(names, record, strict=True))


def _order(deidentified: bool):
    """The file's order: by study ID, or by a keyed hash of the id with a key drawn for
    this export (``typed_rows``)."""
    if not deidentified:
        return F("study_id")
    key = Value(secrets.token_hex(16))
    return MD5(Concat(key, Cast("pk", output_field=CharField()), output_field=CharField()))


def deidentified_rows(rows: Iterator[dict], n: int, keep: tuple[str, ...] = ()) -> Iterator[dict]:
    """De-identified rows; the ``rows`` come in pseudonym order (``typed_rows``).
    ``keep``: values read besides the interchange columns, passed on as they are."""
    width = max(4, len(str(n)))
    plan = [(column, deidentified_treatment(column)) for column in interchange.columns()]
    for number, row in enumerate(rows, start=1):
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
        for name in keep:
            new[name] = row[name]
        yield new


def _offset(column: interchange.Column, value, door) -> int | None:
    """Minutes (date-times) or whole days (dates) from the door time; None if unknown."""
    if value is None or door is None:
        return None
    if column.kind == interchange.DATETIME:
        return round((value - door).total_seconds() / 60)
    return (value - timezone.localtime(door).date()).days


# -- the CSV written by PostgreSQL (csvcopy): to_csv's text, formatted by the server ------


def _copy_query(
    patients: QuerySet, *, deidentified: bool, n: int, formats=interchange.sql_formatter
) -> tuple[str, tuple]:
    """The ``SELECT`` of the CSV export on PostgreSQL and its parameters: the rows of
    ``typed_rows`` (one query, the same order), each cell written by the SQL twin of
    what ``to_csv`` and ``deidentified_rows`` write in Python. ``formats``: the SQL of
    a column's cell (``columns.sql_formatter``; ``_sql_stata`` for the Stata file)."""
    sql, params, values = copy_source(patients, deidentified=deidentified)
    cells = _copy_cells(values, deidentified=deidentified, n=n, formats=formats)
    return csvcopy.csv_select(cells, sql, order_by="source.export_order"), params


def copy_source(
    patients: QuerySet, *, deidentified: bool, extra: dict[str, str] | None = None
) -> tuple[str, tuple, dict[str, str]]:
    """The subquery of ``typed_rows``' values (``extra`` as there), its parameters and
    the SQL of each value in a ``csvcopy.csv_select`` over it (name -> SQL)."""
    paths = _lookups() | (extra or {})
    source = patients.order_by().values(
        **{f"v_{name}": F(path) for name, path in paths.items()},
        export_order=_order(deidentified),
    )
    sql, params = source.query.sql_with_params()
    quote = connections[patients.db].ops.quote_name
    values = {name: f"source.{quote('v_' + name)}" for name in paths}
    return sql, params, values


def _copy_cells(
    values: dict[str, str], *, deidentified: bool, n: int, formats=interchange.sql_formatter
) -> list[tuple[str, str]]:
    """Each exported column (``out_columns``) as (name, SQL of its text) over the SQL
    ``values`` of the interchange columns."""
    cells = []
    for column in interchange.columns():
        treatment = deidentified_treatment(column) if deidentified else KEPT
        value = values[column.name]
        if treatment == PSEUDONYM:
            cells.append((PSEUDO_ID, _sql_pseudonym(n)))
        elif treatment == OFFSET:
            cells.append((offset_name(column), _sql_offset(column, value, values[ANCHOR])))
        elif treatment == TOP_CODE:
            ceiling = int(interchange.TOP_CODED[column.name])
            cells.append((column.name, formats(column)(f"least({value}, {ceiling})")))
        elif treatment == KEPT:
            cells.append((column.name, formats(column)(value)))
    return cells


def _sql_pseudonym(n: int) -> str:
    """``deidentified_rows``' pseudonym: X and the row's number in the file's order, zero-padded
    to the width of ``n`` (at least 4 digits; a longer number is not cut)."""
    number = "(row_number() OVER (ORDER BY source.export_order))::text"
    width = max(4, len(str(n)))
    return f"'X' || lpad({number}, greatest({width}, length({number})), '0')"


def _sql_offset(column: interchange.Column, value: str, door: str) -> str:
    """``_offset`` in SQL: minutes, or whole days from the door time's date in the
    registry's time zone.

    Minutes are computed as Python does: the seconds as the nearest double, divided by
    60 in double precision, rounded half to even (``round`` of a double is C's ``rint``
    on PostgreSQL, as Python's ``round`` of a float).
    """
    if column.kind == interchange.DATETIME:
        seconds = f"extract(epoch FROM ({value}) - ({door}))::double precision"
        return f"round({seconds} / 60)::bigint::text"
    zone = interchange.sql_literal(timezone.get_current_timezone_name())
    return f"(({value}) - (({door}) AT TIME ZONE {zone})::date)::text"


def formatter(column: OutColumn):
    """The CSV text of an exported column's values (offsets and pseudonyms as numbers
    and text; every other column as the interchange writes it)."""
    if column.source is not None and column.kind == column.source.kind:
        return interchange.formatter(column.source)
    return lambda value: "" if value is None else str(value)


class Lines(list):
    """The csv module's output, kept as a list of lines until a piece is sent.

    The writer ends its lines with CRLF, so that it quotes a cell holding a lone
    carriage return as it quotes one holding a line feed (a reader would otherwise
    end the row there); the file's lines end with LF alone.
    """

    size = 0

    def writer(self):
        """A csv writer into these lines (the only one whose line ends ``write`` expects)."""
        return csv.writer(self, lineterminator="\r\n")

    def write(self, line: str) -> None:
        line = line[:-2] + "\n"
        self.append(line)
        self.size += len(line)

    def piece(self) -> bytes:
        text = "".join(self)
        self.clear()
        self.size = 0
        return text.encode("utf-8")


def to_csv(columns: list[OutColumn], rows: Iterable[dict], n: int) -> Iterator[bytes]:
    """The CSV in pieces of about ``PIECE_BYTES``, written as the rows arrive."""
    lines = Lines()
    writer = lines.writer()
    writer.writerow([c.name for c in columns])
    formats = [(c.name, formatter(c)) for c in columns]
    for row in rows:
        writer.writerow([text(row[name]) for name, text in formats])
        if lines.size >= PIECE_BYTES:
            yield lines.piece()
    yield lines.piece()


def _xlsx_cells(columns: list[OutColumn]) -> list[tuple[str, xlsxsheet.Cell]]:
    """Each column's cells in the workbook: flags 1 or 0 and integers as numbers, dates
    and date-times (in the registry's time zone) as Excel dates, everything else as the
    CSV's text (free text neutralised as there)."""
    zone = timezone.get_current_timezone()
    cells = []
    for index, column in enumerate(columns):
        if column.kind in (interchange.FLAG, interchange.INTEGER):
            cell = xlsxsheet.number_cell(index)
        elif column.kind == interchange.DATE:
            cell = xlsxsheet.date_cell(index)
        elif column.kind == interchange.DATETIME:
            cell = _local(xlsxsheet.datetime_cell(index), zone)
        else:
            cell = xlsxsheet.text_cell(index, formatter(column))
        cells.append((column.name, cell))
    return cells


def _local(cell: xlsxsheet.Cell, zone) -> xlsxsheet.Cell:
    return lambda value, row: cell(None if value is None else value.astimezone(zone), row)


def to_xlsx(columns: list[OutColumn], rows: Iterable[dict], n: int) -> Iterator[bytes]:
    """A workbook written row by row (``xlsxsheet``: no cell kept in memory) into a
    temporary file, then sent in pieces."""
    header = [c.name for c in columns]
    # The sheet's XML takes about 36 bytes a cell (2.0 GB at 1,000,000 patients) but up
    # to some 110 with long free text escaped: past 4 GiB it needs zip64.
    large = n * len(columns) * 110 >= 2**32
    with tempfile.TemporaryFile(suffix=".xlsx") as stream:
        xlsxsheet.write_sheet(stream, header, _xlsx_cells(columns), rows, large=large)
        stream.seek(0)
        yield from iter(lambda: stream.read(PIECE_BYTES), b"")


# Each kind of column in the Stata file: its numpy type in the frame given to pandas
# (the smallest that holds it; pandas writes byte, int, long and double from them) and
# the nullable type the server's CSV is parsed into.
STATA_DTYPES = {
    interchange.FLAG: ("int8", "Int8"),
    interchange.CATEGORY: ("int16", "Int16"),
    interchange.INTEGER: ("int32", "Int32"),
    interchange.DATETIME: ("datetime64[ns]", "Int64"),
    interchange.DATE: ("datetime64[ns]", "Int64"),
}
# Rows of the server's CSV parsed at once into the Stata columns (about 15 MB of text).
STATA_PARSE_ROWS = 50_000


class _StataColumn:
    """One column of the Stata file, filled chunk by chunk into a typed numpy array
    (no Python object per value except for text)."""

    def __init__(self, column: OutColumn, n: int):
        import numpy as np

        self.column = column
        kind = column.kind
        self.dtype = STATA_DTYPES.get(kind, ("object",))[0]
        self.values = np.zeros(n, dtype=self.dtype)
        self.missing = np.zeros(n, dtype=bool)
        if kind == interchange.CATEGORY:
            self.number = {code: k for k, (code, _) in enumerate(column.source.codes, start=1)}

    def fill(self, start: int, values: list) -> None:
        import numpy as np

        kind, stop = self.column.kind, start + len(values)
        if kind == interchange.DATETIME:
            local = [
                None if v is None else timezone.localtime(v).replace(tzinfo=None) for v in values
            ]
            self.values[start:stop] = np.array(local, dtype="datetime64[ns]")
        elif kind == interchange.DATE:
            self.values[start:stop] = np.array(values, dtype="datetime64[ns]")
        elif self.dtype == "object":
            self.values[start:stop] = ["" if v is None else str(v) for v in values]
        else:
            if kind == interchange.CATEGORY:
                values = [self.number.get(v) for v in values]
            self.missing[start:stop] = [v is None for v in values]
            self.values[start:stop] = [0 if v is None else int(v) for v in values]

    def fill_parsed(self, start: int, parsed) -> None:
        """Fill from a column of the server's CSV (``_sql_stata``) parsed by pandas:
        numbers as they are, date-times as local microseconds and dates as days since
        1970, text with '' for an empty cell."""
        import numpy as np

        stop, kind = start + len(parsed), self.column.kind
        if kind in (interchange.DATETIME, interchange.DATE):
            unit = "us" if kind == interchange.DATETIME else "D"
            ticks = parsed.to_numpy(dtype="int64", na_value=np.iinfo("int64").min)
            self.values[start:stop] = ticks.view(f"datetime64[{unit}]")
        elif self.dtype == "object":
            self.values[start:stop] = parsed.to_numpy(dtype=object)
        else:
            self.missing[start:stop] = parsed.isna().to_numpy()
            self.values[start:stop] = parsed.to_numpy(dtype=self.dtype, na_value=0)

    def series(self):
        import pandas as pd

        if self.column.kind in (interchange.FLAG, interchange.CATEGORY, interchange.INTEGER):
            return pd.arrays.IntegerArray(self.values, self.missing)
        return self.values

    def value_labels(self) -> dict[int, str] | None:
        if self.column.kind == interchange.FLAG:
            return {0: "no", 1: "yes"}
        if self.column.kind == interchange.CATEGORY:
            return {n: label for n, (_, label) in enumerate(self.column.source.codes, start=1)}
        return None


def to_dta(columns: list[OutColumn], rows: Iterable[dict], n: int) -> Iterator[bytes]:
    """Stata 14+ (.dta 118): variable labels, value labels, Stata dates; the columns
    are typed numpy arrays filled chunk by chunk, never a list of row dictionaries."""
    stata = [_StataColumn(column, n) for column in columns]
    start, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK_ROWS:
            start = _fill(stata, start, batch)
            batch = []
    _fill(stata, start, batch)
    yield from _write_dta(stata)


def _sql_stata(column: interchange.Column):
    """The SQL of a cell of the server's CSV read into the Stata columns
    (``_StataColumn.fill_parsed``): a category's number, a date-time's local time in
    microseconds since 1970, a date's days since 1970, the text as stored."""
    if column.kind == interchange.CATEGORY:
        cases = " ".join(
            f"WHEN {interchange.sql_literal(str(code))} THEN {k}"
            for k, (code, _) in enumerate(column.codes, start=1)
        )
        return lambda value: f"CASE ({value})::text {cases} END"
    if column.kind == interchange.DATETIME:
        zone = interchange.sql_literal(timezone.get_current_timezone_name())
        return lambda value: (
            f"(extract(epoch FROM ({value}) AT TIME ZONE {zone}) * 1000000)::bigint"
        )
    if column.kind == interchange.DATE:
        return lambda value: f"(({value}) - DATE '1970-01-01')"
    return interchange.sql_formatter(column, neutralise=False)


def dta_by_server(patients: QuerySet, *, deidentified: bool, n: int) -> Iterator[bytes]:
    """``to_dta``'s file with the rows written by PostgreSQL as CSV of numbers
    (``_sql_stata``) and parsed by pandas in C, a slice of rows at a time, into the
    Stata columns: no Python object per value except for text."""
    import pandas as pd

    sql, params = _copy_query(patients, deidentified=deidentified, n=n, formats=_sql_stata)
    columns = out_columns(deidentified)
    pieces = csvcopy.copy_csv(sql, params, using=patients.db, piece_bytes=PIECE_BYTES)
    numeric = [c.name for c in columns if c.kind in STATA_DTYPES]
    parsed = pd.read_csv(
        _PieceStream(pieces),
        # Text parsed as categories: a site's code or a device's name repeated on many
        # rows is then one string object, not one per row.
        dtype={c.name: STATA_DTYPES.get(c.kind, ("", "category"))[1] for c in columns},
        keep_default_na=False,
        na_values=dict.fromkeys(numeric, [""]),
        chunksize=STATA_PARSE_ROWS,
        encoding="utf-8",
    )
    stata = [_StataColumn(column, n) for column in columns]
    start = 0
    with parsed:
        for chunk in parsed:
            for s in stata:
                s.fill_parsed(start, chunk[s.column.name])
            start += len(chunk)
    yield from _write_dta(stata)


class _PieceStream(io.RawIOBase):
    """The file-like view of an iterator of ``bytes`` pieces that pandas reads."""

    def __init__(self, pieces: Iterator[bytes]):
        self.pieces, self.rest = pieces, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.rest:
            self.rest = next(self.pieces, None)
            if self.rest is None:
                self.rest = b""
                return 0
        size = min(len(buffer), len(self.rest))
        buffer[:size] = self.rest[:size]
        self.rest = self.rest[size:]
        return size


def _write_dta(stata: list[_StataColumn]) -> Iterator[bytes]:
    """The .dta of the filled columns, written by pandas into a temporary file, then
    sent in pieces."""
    import pandas as pd

    columns = [s.column for s in stata]
    frame = pd.DataFrame({s.column.name: s.series() for s in stata}, copy=False)
    value_labels = {s.column.name: s.value_labels() for s in stata if s.value_labels()}
    for s in stata:
        del s.values, s.missing  # the frame holds them now
    with tempfile.NamedTemporaryFile(suffix=".dta") as stream:
        # DataFrame.to_stata's writer, made first: it keeps its own copy of the frame,
        # so the frame is let go before the rows are written.
        writer = pd.io.stata.StataWriterUTF8(
            stream,
            frame,
            write_index=False,
            version=118,
            convert_dates={
                c.name: "tc" if c.kind == interchange.DATETIME else "td"
                for c in columns
                if c.kind in (interchange.DATETIME, interchange.DATE)
            },
            variable_labels={c.name: c.label[:80] for c in columns},
            value_labels=value_labels,
            data_label="Stroke registry export",
        )
        del frame
        writer.write_file()
        del writer
        stream.seek(0)
        yield from iter(lambda: stream.read(PIECE_BYTES), b"")


def _fill(stata: list[_StataColumn], start: int, batch: list[dict]) -> int:
    for s in stata:
        s.fill(start, [row[s.column.name] for row in batch])
    return start + len(batch)


WRITERS = {"csv": to_csv, "xlsx": to_xlsx, "dta": to_dta}


class ExportRefused(ValueError):
    """An export that cannot be written in the asked format (the message says why
    and what to use instead)."""


@dataclass
class ExportFile:
    """A logged export whose rows are read only while its ``chunks()`` are consumed."""

    filename: str
    content_type: str
    n_patients: int
    identifiable: bool
    fmt: str
    patients: QuerySet
    # Writes a format this module does not (REDCap's records, ``redcap.redcap_export``):
    # (patients, number of patients, identifiable, by_server=) -> the file's pieces.
    writer: Callable[..., Iterator[bytes]] | None = None
    # The typed rows of a data freeze instead of the patients' (``registry.freezes``).
    frozen_rows: Callable[[], Iterable[dict]] | None = None

    def chunks(self, *, by_server: bool | None = None) -> Iterator[bytes]:
        """The file in pieces, written as the patients are read ``CHUNK_ROWS`` at a time.

        A CSV on PostgreSQL is written by the server (``csvcopy``), in the same bytes;
        ``by_server=False`` asks for the Python writer (None: the server where it can).
        """
        if self.writer is not None:
            return self.writer(
                self.patients, self.n_patients, self.identifiable, by_server=by_server
            )
        if by_server is None:
            by_server = (
                self.fmt in ("csv", "dta")
                and self.frozen_rows is None
                and connections[self.patients.db].vendor == "postgresql"
            )
        if by_server and self.fmt == "dta":
            return dta_by_server(
                self.patients, deidentified=not self.identifiable, n=self.n_patients
            )
        if by_server:
            sql, params = _copy_query(
                self.patients, deidentified=not self.identifiable, n=self.n_patients
            )
            return csvcopy.copy_csv(sql, params, using=self.patients.db, piece_bytes=PIECE_BYTES)
        columns = out_columns(not self.identifiable)
        if self.frozen_rows is not None:
            rows = iter(self.frozen_rows())
        else:
            rows = typed_rows(self.patients, deidentified=not self.identifiable)
        if not self.identifiable:
            rows = deidentified_rows(rows, self.n_patients)
        return WRITERS[self.fmt](columns, rows, self.n_patients)

    def write_to(self, stream) -> None:
        for piece in self.chunks():
            stream.write(piece)

    @property
    def content(self) -> bytes:
        """The whole file in memory: for small exports and tests only."""
        return b"".join(self.chunks())


def registry_export(
    *,
    user,
    fmt: str = "csv",
    site: Site | None = None,
    deidentified: bool | None = None,
    via: str = "web",
    writer: Callable[[QuerySet, int, bool], Iterator[bytes]] | None = None,
    freeze=None,
) -> ExportFile:
    """The export file for ``user``; de-identified unless an admin asks otherwise.

    ``user`` None means the server operator running the command (no web
    account: everything is readable from the shell anyway); it is logged. The export
    is logged here, when it is taken; its rows are read while the file is written.
    Raises ``ExportRefused`` when the format cannot hold the rows (xlsx). ``writer``
    writes a format of another module (``redcap.redcap_export``).

    ``freeze``: the rows of this ``DataFreeze`` (verified, ``FreezeTampered``) instead
    of the live registry's, those of ``site`` only when given; the file name and the
    log name the freeze and its hash.
    """
    if fmt not in FORMATS or (writer is None and fmt not in WRITERS):
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(WRITERS)}")
    deidentified, patients = _scope(user, site, deidentified)
    out_columns(deidentified)  # an undeclared privacy category stops the export here
    frozen_rows = None
    if freeze is not None and writer is not None:
        raise ExportRefused(
            _("A data freeze is exported as CSV, Stata (dta) or xlsx, not in this format.")
        )
    if freeze is not None:
        frozen_rows = _frozen_rows(freeze, site, deidentified)
        n = sum(1 for _row in frozen_rows())
    else:
        n = patients.count()
    if fmt == "xlsx" and n > XLSX_MAX_ROWS:
        raise ExportRefused(
            _(
                "An xlsx sheet holds at most %(max)s rows and this export has %(n)s "
                "patients: choose CSV or Stata (dta), or one site."
            )
            % {"max": f"{XLSX_MAX_ROWS:,}", "n": f"{n:,}"}
        )
    _log(user, fmt, site, deidentified, n, via, freeze)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    kind = "deidentified" if deidentified else "identifiable"
    scope = f"-{site.code}" if site is not None else ""
    if freeze is not None:
        scope = f"-freeze-{freeze.name}{scope}"
    return ExportFile(
        filename=f"registry{scope}-{kind}-{stamp}{SUFFIXES.get(fmt, '.' + fmt)}",
        content_type=CONTENT_TYPES[fmt],
        n_patients=n,
        identifiable=not deidentified,
        fmt=fmt,
        patients=patients,
        writer=writer,
        frozen_rows=frozen_rows,
    )


def _frozen_rows(freeze, site: Site | None, deidentified: bool):
    """The typed rows of ``freeze`` (of ``site`` only), a function that reads them anew
    each call. De-identified, in a random order: the pseudonyms must not follow the
    study IDs, so those rows are held in memory to be shuffled."""

    def rows():
        found = (
            r for r in freeze_typed_rows(freeze=freeze) if site is None or r["site"] == site.code
        )
        if not deidentified:
            return found
        shuffled = list(found)
        secrets.SystemRandom().shuffle(shuffled)
        return shuffled

    return rows


def _scope(user, site: Site | None, deidentified: bool | None):
    """Whether the export is de-identified, and the patients it may contain."""
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
    return deidentified, patients


def _log(
    user, fmt: str, site: Site | None, deidentified: bool, n: int, via: str, freeze=None
) -> None:
    filters = {"site": site.code if site is not None else None}
    if freeze is not None:
        filters["freeze"] = {"name": freeze.name, "sha256": freeze.sha256}
    log = ExportLog.objects.create(
        user=user,
        format=fmt,
        identifiable=not deidentified,
        site=site,
        filters=filters,
        n_patients=n,
        via=via,
    )
    if site is not None:
        log.sites.set([site])
    else:
        log.sites.set(access.sites_for(user) if user is not None else Site.objects.all())
