"""Writing registry records in bulk: what ``save()`` and django-simple-history would
write, without a model instance per record.

Records are field values keyed by column (attname). They go to the database as
parameter rows: by binary ``COPY`` on PostgreSQL, by ``executemany`` elsewhere.
The import (``registry.interchange.importer``), the loading of a data freeze into its
own database (``registry.freezes``, ``using`` its alias) and the benchmark cohort
(``benchmarks/make_cohort.py``) write through here::

    with bulk.writing(attribution=bulk.Attribution(user=user, reason="import of x.csv")) as w:
        w.patients_insert(patients=[bulk.NewPatient(record, {Admission: admission})])
        w.update(model=FollowUp, records=changed)

Every column of a table written here gets its value from one known place, and
:func:`unwritten` names any that has none (a field added to a model: a test keeps
the list empty, and the writer refuses such a model):

- the record, for the columns of :func:`record_columns`;
- the writer: the moment of writing for ``auto_now`` / ``auto_now_add`` date-times,
  and a key the database numbers when the records carry none;
- the definitions of the patient's stored columns (``models.STORED``): computed from
  the sections inserted with a new patient, refreshed by SQL for a stored patient
  whose sections are written;
- the attribution, for the history rows' own columns; the rest of a history row is
  the record's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone

from registry.signals import sections_written

from .crf import (
    SECTION_MODELS,
    STORED_DERIVED,
    Patient,
    Section,
    patients_refresh_stored,
    stored_values_of,
)
from .workflow import PatientExclusion, ScreeningEntry

# The columns a record carries, for the models written here besides the sections.
RECORD_COLUMNS: dict[type[models.Model], tuple[str, ...]] = {
    Patient: ("study_id", "site_id", "sex", "age_years", "created_by_id"),
    ScreeningEntry: (
        "site_id",
        "screening_date",
        "screening_number",
        "eligible",
        "exclusion_reason",
        "consent_given_by",
        "consent_date",
        "patient_id",
        "note",
        "created_by_id",
    ),
    PatientExclusion: ("patient_id", "reason", "note", "excluded_on", "active", "changed_by_id"),
}
# A section's record: these and its clinical fields (Section.clinical_fields()).
SECTION_RECORD = ("patient_id", "status", "completed_at", "completed_by_id", "version")
# The history rows' own columns, from the attribution and the writer.
HISTORY_OWN = ("history_date", "history_change_reason", "history_type", "history_user_id")
# Where the keys the database gave are read back from, for the history and the sections.
NATURAL_KEYS = {Patient: "study_id"}

BATCH = 500  # keys read back per query
ROWS = 2000  # rows per executemany


@dataclass(frozen=True)
class Attribution:
    """Who writes and why: the user and change reason of every history row."""

    user: models.Model | None
    reason: str


@dataclass
class NewPatient:
    """A patient to insert (its record) with its sections' records, by model."""

    record: dict
    sections: dict[type[Section], dict] = field(default_factory=dict)


@cache  # asked once per field of every table a writer opens
def record_columns(model: type[models.Model]) -> tuple[str, ...]:
    """The columns a record of ``model`` carries (besides a key the caller numbers)."""
    if issubclass(model, Section):
        clinical = (model._meta.get_field(name).attname for name in model.clinical_fields())
        return (*SECTION_RECORD, *clinical)
    return RECORD_COLUMNS.get(model, ())


def _source(model: type[models.Model], field: models.Field) -> str | None:
    if field.primary_key and isinstance(field, models.AutoField):
        return "key"
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return "now"
    if model is Patient and field.name in STORED_DERIVED:
        return "definition"
    if field.attname in record_columns(model):
        return "record"
    return None


def columns(model: type[models.Model]) -> tuple[str, ...]:
    """Every column the writer writes for ``model``, but a key the database numbers."""
    return tuple(
        f.attname for f in model._meta.concrete_fields if _source(model, f) not in (None, "key")
    )


def history_columns(model: type[models.Model]) -> tuple[str, ...]:
    """Every column the writer writes for ``model``'s history, but its numbered key."""
    written = {f.attname for f in model._meta.concrete_fields if _source(model, f)}
    return tuple(
        f.attname
        for f in model.history.model._meta.concrete_fields
        if f.attname in written or f.attname in HISTORY_OWN
    )


def unwritten(model: type[models.Model]) -> list[str]:
    """Columns of ``model`` and of its history that the writer gives no value."""
    missing = [f.attname for f in model._meta.concrete_fields if _source(model, f) is None]
    history = model.history.model
    known = {*history_columns(model), history._meta.pk.attname}
    missing += [
        f"{history.__name__}.{f.attname}"
        for f in history._meta.concrete_fields
        if f.attname not in known
    ]
    return missing


@contextmanager
def writing(
    *, attribution: Attribution | None = None, using: str = DEFAULT_DB_ALIAS
) -> Iterator[Writer]:
    """A :class:`Writer` on the database ``using`` whose writes form one transaction,
    finished on leaving.

    With ``attribution``, every record written gets its history row (``+`` inserted,
    ``~`` updated), as a save would; without, none (a synthetic cohort has no edits).
    """
    writer = Writer(attribution=attribution, using=using)
    with transaction.atomic(using=using):
        yield writer
        writer.finish()


class Writer:
    """Inserts and updates records (converted to database values in place)."""

    def __init__(self, *, attribution: Attribution | None, using: str = DEFAULT_DB_ALIAS):
        self.using, self.connection = using, connections[using]
        self.now = timezone.now()
        self.attribution = attribution
        self.history = attribution is not None and getattr(settings, "SIMPLE_HISTORY_ENABLED", True)
        self._tables: dict[type[models.Model], _Table] = {}
        self._refresh: set[int] = set()  # stored patients whose sections were written
        self._numbered: dict[type[models.Model], None] = {}  # keys given by the caller

    def patients_insert(self, *, patients: Sequence[NewPatient]) -> None:
        """INSERT new patients and their sections; each patient's stored columns come
        from its sections, by their definitions. A patient record without its key
        gets the database's, read back by study ID. ``signals.sections_written`` is
        sent for these patients."""
        for patient in patients:
            sections = {model.key: record for model, record in patient.sections.items()}
            patient.record.update(stored_values_of(sections))
        self._insert(Patient, [patient.record for patient in patients])
        for model in SECTION_MODELS:
            records = []
            for patient in patients:
                record = patient.sections.get(model)
                if record is not None:
                    record["patient_id"] = patient.record["id"]
                    records.append(record)
            self._insert(model, records)
        # Told now rather than at the end: a million new patients' keys are not kept.
        written = [patient.record["id"] for patient in patients]
        sections_written.send(Writer, patient_ids=written, using=self.using)

    def insert(self, *, model: type[models.Model], records: list[dict]) -> None:
        """INSERT records of ``model`` (a section of a stored patient, a screening
        entry...; patients with :meth:`patients_insert`)."""
        if model is Patient:
            raise ValueError("patients are inserted with their sections: patients_insert()")
        if issubclass(model, Section):
            self._refresh.update(record["patient_id"] for record in records)
        self._insert(model, records)

    def update(
        self, *, model: type[models.Model], records: list[dict], columns: Sequence[str] = ()
    ) -> None:
        """UPDATE ``columns`` (by default every column) of the records, found by their
        primary key; a record carries every column, which its history row repeats."""
        if not records:
            return
        table = self._table(model)
        key = model._meta.pk.attname
        columns = [c for c in columns or table.columns if c != key]
        for name in table.at_update:
            if name not in columns:
                columns.append(name)
            for record in records:
                record[name] = self.now
        if issubclass(model, Section):
            self._refresh.update(record[key] for record in records)
        table.to_db(records)
        rows = _values(records, [*columns, key])
        _update(self.connection, table.name, columns, key, rows, table.types)
        self._history(table, records, "~")

    def finish(self) -> None:
        """Refresh the stored columns of the stored patients whose sections were
        written, tell other apps which patients' sections were written
        (``signals.sections_written``), and move the key sequences past keys the
        caller gave."""
        if self._refresh:
            patients_refresh_stored(patient_ids=sorted(self._refresh), using=self.using)
        if self._refresh:
            sections_written.send(Writer, patient_ids=sorted(self._refresh), using=self.using)
        if self._numbered:
            ops = self.connection.ops
            with self.connection.cursor() as cursor:
                for sql in ops.sequence_reset_sql(no_style(), list(self._numbered)):
                    cursor.execute(sql)

    def _table(self, model: type[models.Model]) -> _Table:
        if model not in self._tables:
            self._tables[model] = _Table(model, self)
        return self._tables[model]

    def _insert(self, model: type[models.Model], records: list[dict]) -> None:
        if not records:
            return
        table = self._table(model)
        key = model._meta.pk.attname
        names = list(table.columns)
        numbered = key not in names and key not in records[0]  # by the database
        if not numbered and key not in names:
            names.insert(0, key)
            self._numbered[model] = None
        # The history and a patient's sections need the keys the database gives.
        read_keys = numbered and (self.history or model is Patient)
        if read_keys and model not in NATURAL_KEYS:
            raise ValueError(f"{model.__name__} records need their keys for their history")
        for name in table.at_insert:
            for record in records:
                record[name] = self.now
        table.to_db(records)
        types = [table.types[n] for n in names]
        _insert(self.connection, table.name, names, _values(records, names), types)
        if read_keys:
            _read_keys(model, records, self.using)
        self._history(table, records, "+")

    def _history(self, table: _Table, records: list[dict], history_type: str) -> None:
        if not self.history:
            return
        own = table.history_own[history_type]
        rows = [row + own for row in _values(records, table.tracked)]
        names, types = table.history_columns, table.history_types
        _insert(self.connection, table.history_name, names, rows, types)


class _Table:
    """What the writer needs of one model: its columns, their conversions and types,
    and its history's."""

    def __init__(self, model: type[models.Model], writer: Writer):
        missing = unwritten(model)
        if missing:
            raise ImproperlyConfigured(f"registry.models.bulk gives no value to {missing}")
        fields = model._meta.concrete_fields
        connection = writer.connection
        self.name = model._meta.db_table
        self.columns = columns(model)
        self.at_insert = [f.attname for f in fields if _source(model, f) == "now"]
        self.at_update = [f.attname for f in fields if getattr(f, "auto_now", False)]
        self.converters = [
            (f.attname, c) for f in fields if (c := _to_db(f, connection)) is not None
        ]
        self.types = {f.attname: _db_type(f, connection) for f in fields}
        self._history_setup(model, writer)

    def _history_setup(self, model: type[models.Model], writer: Writer) -> None:
        history = model.history.model
        by_name = {f.attname: f for f in history._meta.concrete_fields}
        if not set(HISTORY_OWN) <= set(by_name):
            raise ImproperlyConfigured(f"registry.models.bulk cannot write {history.__name__}")
        self.history_name = history._meta.db_table
        self.tracked = [c for c in history_columns(model) if c not in HISTORY_OWN]
        self.history_columns = [*self.tracked, *HISTORY_OWN]
        self.history_types = [_db_type(by_name[c], writer.connection) for c in self.history_columns]
        self.history_own = {}
        if not writer.history:
            return
        own = {
            "history_date": writer.now,
            "history_change_reason": writer.attribution.reason,
            "history_user_id": getattr(writer.attribution.user, "pk", None),
        }
        for kind in ("+", "~"):  # the history rows' own values, as the database takes them
            own["history_type"] = kind
            self.history_own[kind] = tuple(
                by_name[c].get_db_prep_save(own[c], writer.connection) for c in HISTORY_OWN
            )

    def to_db(self, records: list[dict]) -> None:
        for record in records:
            for attname, convert in self.converters:
                if attname in record:
                    record[attname] = convert(record[attname])


def _read_keys(model: type[models.Model], records: list[dict], using: str) -> None:
    """Set the keys the database gave to records just inserted (one query per batch)."""
    natural = NATURAL_KEYS[model]
    key = model._meta.pk.attname
    found = {}
    values = [record[natural] for record in records]
    for start in range(0, len(values), BATCH):
        chunk = values[start : start + BATCH]
        found.update(
            model.objects.using(using)
            .filter(**{f"{natural}__in": chunk})
            .values_list(natural, "pk")
        )
    for record in records:
        record[key] = found[record[natural]]


PLAIN_TYPES = {  # values the database driver takes as they are (after the field's clean())
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "ForeignKey",
    "IntegerField",
    "OneToOneField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SlugField",
    "SmallIntegerField",
    "TextField",
}


def _to_db(field: models.Field, connection):
    """``get_db_prep_save`` for a cleaned value of ``field``; None when it is the value."""
    kind = field.get_internal_type()
    if kind in PLAIN_TYPES:
        return None
    postgresql = connection.vendor == "postgresql"  # psycopg adapts dates and aware date-times
    if kind == "DateTimeField":
        adapt = connection.ops.adapt_datetimefield_value

        def datetime_to_db(value):
            if value is None:
                return None
            if value.utcoffset() is None:  # naive: the field makes it aware (and warns)
                return field.get_db_prep_save(value, connection)
            return value if postgresql else adapt(value)

        return datetime_to_db if postgresql else _repeating(datetime_to_db)
    if kind == "DateField":
        if postgresql:
            return None
        adapt = connection.ops.adapt_datefield_value
        return lambda value: None if value is None else adapt(value)
    return lambda value: field.get_db_prep_save(value, connection)


def _repeating(convert):
    """``convert`` remembering its last value: the records of a batch share their
    moment of writing (and of completion), one object converted once rather than
    once per record."""
    last = [object(), None]

    def converted(value):
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return converted


def _db_type(field: models.Field, connection) -> str:
    """The column's type name as PostgreSQL's binary COPY wants it (no length)."""
    name = field.db_type(connection) or ""
    name = name.split("(")[0].strip()
    return {"timestamp with time zone": "timestamptz", "double precision": "float8"}.get(name, name)


def _values(records: list[dict], names: Sequence[str]) -> list[tuple]:
    get = itemgetter(*names)
    if len(names) == 1:
        return [(get(record),) for record in records]
    return list(map(get, records))


def _insert(
    connection, table: str, names: Sequence[str], rows: list[tuple], types: Sequence[str]
) -> None:
    """INSERT the rows: binary ``COPY`` on PostgreSQL (``types`` of the columns), else
    ``executemany``."""
    quote = connection.ops.quote_name
    listed = ", ".join(quote(c) for c in names)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"COPY {quote(table)} ({listed}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types(list(types))
                for row in rows:
                    copy.write_row(row)
            return
        sql = f"INSERT INTO {quote(table)} ({listed}) VALUES ({', '.join(['%s'] * len(names))})"
        for start in range(0, len(rows), ROWS):
            cursor.executemany(sql, rows[start : start + ROWS])


def _update(
    connection, table: str, names: Sequence[str], key: str, rows: list[tuple], types: dict
) -> None:
    """UPDATE the columns ``names`` by ``key`` (the last value of each row): on
    PostgreSQL one ``UPDATE ... FROM`` a temporary table filled by binary ``COPY``, else
    ``executemany``."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            temp = quote(f"bulk_{table}")
            listed = ", ".join(quote(c) for c in [*names, key])
            cursor.execute(
                f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS "
                f"SELECT {listed} FROM {quote(table)} WITH NO DATA"
            )
            sql = f"COPY {temp} ({listed}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types([types[c] for c in [*names, key]])
                for row in rows:
                    copy.write_row(row)
            assignments = ", ".join(f"{quote(c)} = {temp}.{quote(c)}" for c in names)
            cursor.execute(
                f"UPDATE {quote(table)} SET {assignments} FROM {temp} "
                f"WHERE {quote(table)}.{quote(key)} = {temp}.{quote(key)}"
            )
            cursor.execute(f"DROP TABLE {temp}")
            return
        sql = "UPDATE {} SET {} WHERE {} = %s".format(
            quote(table), ", ".join(f"{quote(c)} = %s" for c in names), quote(key)
        )
        for start in range(0, len(rows), ROWS):
            cursor.executemany(sql, rows[start : start + ROWS])
