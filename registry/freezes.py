"""Data freezes: create, read (verified), compare and delete (``DataFreeze``).

A freeze is the interchange CSV of some patients exactly as the identifiable export
writes it (``registry.interchange.exporter``), kept gzip-compressed with the SHA-256 of
the CSV. Everything computed from a freeze reads it through :func:`freeze_database`:
the frozen rows loaded once into a database file of their own, keyed by the hash, on
which the analytics run the same queries as on the registry.

The services are keyword-only and decide access with ``registry.access`` (a user of
None is the server operator running a command).
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, transaction
from django.db.utils import load_backend
from django.utils import timezone
from django.utils.translation import gettext as _

from . import access
from .derived import door_dates_between
from .interchange import exporter
from .interchange.frozen import (  # noqa: F401 - the freezes' services, in one place
    PIECE_BYTES,
    FreezeTampered,
    freeze_csv,
    freeze_text_rows,
    freeze_typed_rows,
    freeze_verify,
    text_rows,
)
from .models import (
    SECTION_MODELS,
    DataFreeze,
    FreezeDeletion,
    Patient,
    PatientExclusion,
    Site,
    bulk,
)

# Patients read, converted and written at a time when a freeze is loaded into its
# database: what the load holds in memory.
LOAD_BATCH = 2_000


# -- create ------------------------------------------------------------------------------


def freeze_create(
    *,
    name: str,
    reason: str,
    user,
    site: Site | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> DataFreeze:
    """Freeze the interchange rows of the patients ``user`` may read (of ``site`` only
    when given; with ``date_from`` / ``date_to``, those whose door date, in the
    registry's time zone, is in that range, both days included), with the exclusions
    after enrolment in force.

    Raises ``ValidationError`` naming the field (a name already used or not a slug, no
    reason, ``date_to`` before ``date_from``), ``PermissionDenied`` without
    ``access.FREEZE`` or for another's site.
    """
    if date_from and date_to and date_to < date_from:
        raise ValidationError(
            {"date_to": _("The last door date is before the first: nothing would be frozen.")}
        )
    dates = {"from": date_from.isoformat() if date_from else None}
    dates["to"] = date_to.isoformat() if date_to else None
    patients = _door_dates(_scope(user, site), dates)
    freeze = DataFreeze(
        name=name,
        reason=(reason or "").strip(),
        created_by=user,
        created_at=timezone.now(),
        filters={"site": site.code if site is not None else None, **dates},
        n_patients=0,
        sha256="0" * 64,
        rows_gz=b"",
    )
    freeze.full_clean()
    with transaction.atomic():
        counted = _Counted(exporter.typed_rows(patients, deidentified=False))
        freeze.rows_gz, freeze.sha256 = _compressed(counted)
        freeze.n_patients, freeze.site_codes = counted.n, sorted(counted.sites)
        excluded = PatientExclusion.objects.filter(patient__in=patients, active=True)
        freeze.exclusions = dict(excluded.values_list("patient__study_id", "reason"))
        freeze.save()
    return freeze


def _door_dates(patients, dates: dict):
    """``patients`` within a freeze's range of door dates (ISO ``from`` / ``to``)."""

    def day(key: str) -> dt.date | None:
        return dt.date.fromisoformat(dates[key]) if dates.get(key) else None

    return door_dates_between(patients, day("from"), day("to"))


def _scope(user, site: Site | None):
    if user is None:
        patients = Patient.objects.all()
    else:
        access.require(access.has(user, access.FREEZE))
        patients = access.patients_for(user)
        if site is not None and not access.sites_for(user).filter(pk=site.pk).exists():
            raise PermissionDenied
    return patients if site is None else patients.filter(site=site)


class _Counted:
    """The typed rows, counting the patients and their sites as they pass."""

    def __init__(self, rows: Iterator[dict]):
        self.rows, self.n, self.sites = rows, 0, set()

    def __iter__(self) -> Iterator[dict]:
        for row in self.rows:
            self.n += 1
            self.sites.add(row["site"])
            yield row


def _compressed(rows) -> tuple[bytes, str]:
    """The CSV of ``rows`` gzip-compressed and its SHA-256, written piece by piece: the
    uncompressed text is never held whole."""
    digest, buffer = hashlib.sha256(), io.BytesIO()
    # mtime=0: the same rows give the same bytes.
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as stream:
        for piece in exporter.to_csv(exporter.out_columns(False), rows, 0):
            digest.update(piece)
            stream.write(piece)
    return buffer.getvalue(), digest.hexdigest()


# -- read ---------------------------------------------------------------------------------


def freezes_for(user):
    """The freezes ``user`` may read (``access.freezes_for``), without their rows."""
    return access.freezes_for(user).defer("rows_gz")


# -- compare -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueChange:
    """One value that differs: the CSV texts before and after ('' = not recorded)."""

    study_id: str
    column: str
    before: str
    after: str


@dataclass
class FreezeComparison:
    """What differs from ``before`` to ``after``: patients added and removed (study IDs)
    and every changed value, each sorted by study ID."""

    before: str
    after: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changes: list[ValueChange] = field(default_factory=list)

    @property
    def n_differences(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changes)


def freeze_compare(*, freeze: DataFreeze, other: DataFreeze | None = None, user=None):
    """Compare ``freeze`` with ``other`` or, without it, with the live data of the same
    scope (its site, the patients ``user`` may read).

    Both sides come in study ID order and are merged as they are read: memory holds
    the differences, never a table. Sides not in that order (study IDs ordered by a
    database collation unlike Python's) are compared by one short digest per
    patient instead, the first side read twice.
    """
    first = lambda: freeze_text_rows(freeze=freeze)  # noqa: E731
    if other is not None:
        second = lambda: freeze_text_rows(freeze=other)  # noqa: E731
        label = other.name
    else:
        site = freeze.filters.get("site")
        patients = _door_dates(_scope_for_compare(user, site), freeze.filters)
        second = lambda: text_rows(_live_pieces(patients))  # noqa: E731
        label = _("live data")
    return _compare(first, second, FreezeComparison(before=freeze.name, after=label))


def _scope_for_compare(user, site_code: str | None):
    patients = Patient.objects.all() if user is None else access.patients_for(user)
    return patients if site_code is None else patients.filter(site__code=site_code)


def _live_pieces(patients) -> Iterator[bytes]:
    rows = exporter.typed_rows(patients, deidentified=False)
    return exporter.to_csv(exporter.out_columns(False), rows, 0)


class _Unsorted(Exception):
    """A side whose study IDs are not in ascending order: it cannot be merged."""


def _ascending(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows, raising ``_Unsorted`` at a study ID not after the one before."""
    last = None
    for row in rows:
        if last is not None and row[0] <= last:
            raise _Unsorted
        last = row[0]
        yield row


def _compare(first, second, result: FreezeComparison) -> FreezeComparison:
    try:
        return _merged(first(), second(), result)
    except _Unsorted:
        result.added, result.removed, result.changes = [], [], []
        return _compare_by_digest(first, second, result)


def _merged(first: Iterator[list[str]], second: Iterator[list[str]], result):
    """Walk both sides in study ID order together, one row of each at a time."""
    header, header_after = next(first), next(second)
    before, after = _ascending(first), _ascending(second)
    old, new = next(before, None), next(after, None)
    while old is not None or new is not None:
        if new is None or (old is not None and old[0] < new[0]):
            result.removed.append(old[0])
            old = next(before, None)
        elif old is None or new[0] < old[0]:
            result.added.append(new[0])
            new = next(after, None)
        else:
            if old != new or header != header_after:
                result.changes += _value_changes(
                    header, old, dict(zip(header_after, new, strict=True))
                )
            old, new = next(before, None), next(after, None)
    return result


def _value_changes(header: list[str], row: list[str], after: dict[str, str]):
    """The values of ``row`` that differ in ``after`` (a column ``after`` lacks is '')."""
    return [
        ValueChange(row[0], name, text, after.get(name, ""))
        for name, text in zip(header, row, strict=True)
        if after.get(name, "") != text
    ]


def _digest(row: list[str]) -> bytes:
    """A short digest of one row's texts: what memory keeps of the first side."""
    return hashlib.blake2b("\x1f".join(row).encode(), digest_size=12).digest()


def _digests(rows: Iterator[list[str]]) -> tuple[list[str], dict[str, bytes]]:
    header = next(rows)
    return header, {row[0]: _digest(row) for row in rows}


def _compare_by_digest(first, second, result: FreezeComparison) -> FreezeComparison:
    header, before = _digests(first())
    rows = second()
    header_after = next(rows)
    changed: dict[str, dict[str, str]] = {}
    seen = set()
    for row in rows:
        study_id = row[0]
        seen.add(study_id)
        if study_id not in before:
            result.added.append(study_id)
        elif before[study_id] != _digest(row):
            changed[study_id] = dict(zip(header_after, row, strict=True))
    result.removed = sorted(set(before) - seen)
    result.added.sort()
    rows = first()
    next(rows)
    for row in rows:
        if row[0] in changed:
            result.changes += _value_changes(header, row, changed[row[0]])
    result.changes.sort(key=lambda change: change.study_id)
    return result


# -- delete --------------------------------------------------------------------------------


def freeze_delete(*, freeze: DataFreeze, user, reason: str) -> FreezeDeletion:
    """Delete ``freeze`` (``access.DELETE_FREEZE``), keeping who, when, why, its name and
    hash in a ``FreezeDeletion`` row."""
    if user is not None:
        access.require(access.has(user, access.DELETE_FREEZE))
    audit = FreezeDeletion(
        name=freeze.name,
        sha256=freeze.sha256,
        n_patients=freeze.n_patients,
        frozen_at=freeze.created_at,
        deleted_by=user,
        reason=(reason or "").strip(),
    )
    audit.full_clean(exclude=["deleted_at"])
    with transaction.atomic():
        audit.save()
        freeze.delete()
    return audit


# -- the frozen rows as a database -----------------------------------------------------------


def freeze_database(*, freeze: DataFreeze) -> str:
    """The database alias of ``freeze``'s rows, verified, loaded into a SQLite file of
    its own (``settings.FREEZE_CACHE_DIR``): the study tables, quality indicators and
    Word report run on it the queries they run on the registry, so the registry's
    definitions (derived values, variables) apply to the frozen rows unchanged.

    The file is named by the hash and the registry's tables (``cache_layout``): built
    once, then reused until an upgrade changes the tables; it is a cache that can be
    deleted at any time.
    """
    freeze_verify(freeze=freeze)
    directory = Path(settings.FREEZE_CACHE_DIR)
    path = directory / f"{freeze.sha256}-{cache_layout()}.sqlite3"
    alias = f"freeze_{freeze.sha256[:24]}"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        building = path.with_name(f"{path.name}.{os.getpid()}.building")
        building.unlink(missing_ok=True)
        _register(f"{alias}_building", building)
        try:
            _load(freeze, f"{alias}_building")
        finally:
            _unregister(f"{alias}_building")
        os.replace(building, path)
    _register(alias, path)
    return alias


def cache_layout() -> str:
    """A short digest of the registry's tables and their columns: a cache file built
    by another version of the registry (a table or column more or less) is not reused."""
    tables = sorted(
        (model._meta.db_table, *sorted(f.column for f in model._meta.concrete_fields))
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
    )
    return hashlib.sha256(repr(tables).encode()).hexdigest()[:12]


def _register(alias: str, path: Path) -> None:
    """Open ``path`` as ``alias`` in this thread. The connection is not added to the
    settings' databases: it is this thread's, opened where the freeze is read."""
    if not hasattr(connections._connections, alias):
        known = {"default": dict(connections.settings["default"]), alias: {"NAME": str(path)}}
        config = connections.configure_settings(known)[alias]
        config["ENGINE"] = "django.db.backends.sqlite3"
        connections[alias] = load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)


def _unregister(alias: str) -> None:
    if hasattr(connections._connections, alias):
        connections[alias].close()
        del connections[alias]


def _load(freeze: DataFreeze, alias: str) -> None:
    """Write the frozen rows into the empty database ``alias``, streamed
    ``LOAD_BATCH`` patients at a time through the registry's bulk writer, which also
    computes each patient's stored columns from its sections."""
    indexes = _create_tables(alias)
    sites = list(Site.objects.all())
    site_ids = {site.code: site.pk for site in sites}
    with bulk.writing(using=alias) as writer:
        Site.objects.using(alias).bulk_create(sites)
        excluded = []
        for batch in _batches(freeze_typed_rows(freeze=freeze), LOAD_BATCH, start=1):
            writer.patients_insert(patients=[_new_patient(pk, row, site_ids) for pk, row in batch])
            excluded += [
                (pk, r["study_id"]) for pk, r in batch if r["study_id"] in freeze.exclusions
            ]
        writer.insert(model=PatientExclusion, records=_exclusions(freeze, excluded))
    with connections[alias].cursor() as cursor:
        for sql in indexes:
            cursor.execute(str(sql))


def _create_tables(alias: str) -> list:
    """Create the registry's tables in ``alias``, and return their indexes' SQL: an
    index is built once after the rows are written rather than row by row."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        # A cache file being built is renamed into place only when complete, so a
        # crash loses nothing: no journal, no waiting for the disk.
        cursor.execute("PRAGMA journal_mode = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed and not model._meta.proxy:
                editor.create_model(model)
        indexes, editor.deferred_sql = editor.deferred_sql, []
    return indexes


def _batches(rows: Iterator[dict], size: int, start: int) -> Iterator[list[tuple[int, dict]]]:
    """The rows numbered from ``start``, ``size`` at a time."""
    batch = []
    for number, row in enumerate(rows, start=start):
        batch.append((number, row))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _new_patient(pk: int, row: dict, site_ids: dict[str, int]) -> bulk.NewPatient:
    """The patient ``pk`` of a frozen row and its sections. A section is written when
    it holds a value: the export shows an absent section and an empty one alike."""
    sections = {}
    for model, names in _section_fields().items():
        record = {attname: row.get(name) for name, attname in names}
        if any(value is not None for value in record.values()):
            sections[model] = record | _section_defaults(model)
    record = {
        "id": pk,
        "study_id": row["study_id"],
        "site_id": site_ids[row["site"]],
        "sex": row["sex"],
        "age_years": row["age_years"],
        "created_by_id": None,
    }
    return bulk.NewPatient(record, sections)


@functools.cache
def _section_fields() -> dict:
    """Each section model's clinical fields: (name in the row, column)."""
    return {
        model: [(name, model._meta.get_field(name).attname) for name in model.clinical_fields()]
        for model in SECTION_MODELS
    }


@functools.cache
def _section_defaults(model) -> dict:
    """A frozen section's own columns: those of a new section (the freeze keeps values,
    not the sections' workflow)."""
    return {
        name: model._meta.get_field(name).get_default()
        for name in ("status", "completed_at", "version")
    } | {"completed_by_id": None}


def _exclusions(freeze: DataFreeze, excluded: list[tuple[int, str]]) -> list[dict]:
    on = timezone.localdate(freeze.created_at)
    return [
        {
            "patient_id": pk,
            "reason": freeze.exclusions[study_id],
            "note": "frozen",
            "excluded_on": on,
            "active": True,
            "changed_by_id": None,
        }
        for pk, study_id in excluded
    ]
