"""Fill the configured database with N synthetic, valid patients, fast.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/make_cohort.py 1000000 --sites 20

    DEBUG=1 DATABASE_URL=sqlite:////tmp/bench/n100k.sqlite3 \\
        .venv/bin/python benchmarks/make_cohort.py 100000

The database must be migrated first (``manage.py migrate``). Patients are
appended after any already present (ids and study IDs continue), so running
twice with 500,000 gives 1,000,000.

The patients, their case-report-form sections, the screening log and the
exclusions after enrolment are drawn by ``registry.synthetic`` (valid under every
model rule; a few unknown onsets, follow-ups not yet due and patients lost to
follow-up, as in real registries). ``--check`` (default 200) re-reads that many
random patients through the ORM and runs ``full_clean()`` on every record as a proof.

Rows are written without the ORM, in one transaction, by ``registry.models.bulk``
(binary ``COPY`` on PostgreSQL, ``executemany`` on SQLite), which also computes
each patient's stored columns from its sections. The django-simple-history tables
are *not* filled: a benchmark cohort has no edit history (a real registry's
history tables grow with edits, not with the number of patients, and no page or
table reads them in bulk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402

CHUNK = 200_000


class Columns:
    """Columns of one table: numpy arrays keyed by database column, with null masks."""

    def __init__(self, n: int):
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.kinds: dict[str, str] = {}
        self.nulls: dict[str, np.ndarray | None] = {}

    def add(self, column: str, kind: str, values, null: np.ndarray | None = None) -> None:
        """``kind``: int, bool, str, datetime (local naive datetime64[m]), date, now."""
        if np.isscalar(values) or values is None:
            values = np.full(self.n, values, dtype=object)
        self.values[column] = np.asarray(values)
        self.kinds[column] = kind
        self.nulls[column] = None if null is None or not null.any() else null


def _kind(values: np.ndarray) -> str:
    """The writer's kind of a drawn column (see Columns.add), from its numpy type."""
    if values.dtype.kind == "M":
        return "date" if np.datetime_data(values.dtype)[0] == "D" else "datetime"
    return {"b": "bool", "i": "int"}.get(values.dtype.kind, "str")


def _columns(model, table, site_ids: dict[str, int]) -> Columns:
    """A drawn table (registry.synthetic.Table) as the writer's columns: database
    column names, sites by id, the time of writing in the automatic date-times."""
    cols = Columns(table.n)
    for name, values in table.values.items():
        field = model._meta.get_field(name)
        if field.name == "site":
            values = pd.Series(values).map(site_ids).to_numpy(dtype=np.int64)
        cols.add(field.column, _kind(values), values, null=table.blank[name])
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            cols.add(field.column, "now", None)
    return cols


def generate(rng, n: int, first_id: int, site_ids, site_codes) -> dict[str, Columns]:
    """Columns for ``n`` patients with ids ``first_id...``, keyed by model name."""
    from registry import synthetic
    from registry.models import SECTION_MODELS, Patient, PatientExclusion, ScreeningEntry

    cohort = synthetic.draw(rng, n, first_id=first_id, sites=site_codes)
    sites = dict(zip(site_codes, site_ids, strict=True))
    tables = {"Patient": _columns(Patient, cohort.patients(), sites)}
    for model in SECTION_MODELS:
        rows, complete = cohort.section(model)
        tables[model.__name__] = _columns(model, rows, sites)
        _bookkeeping(tables[model.__name__], complete=complete)
    tables["ScreeningEntry"] = _columns(ScreeningEntry, cohort.screening_log(), sites)
    tables["PatientExclusion"] = _columns(PatientExclusion, cohort.exclusions(), sites)
    return tables


def _bookkeeping(cols: Columns, complete: np.ndarray) -> None:
    cols.add("status", "str", np.where(complete, "complete", "draft").astype(object))
    cols.add("completed_at", "now", None, null=~complete)
    cols.add("updated_at", "now", None)
    cols.add("version", "int", np.ones(cols.n, dtype=np.int64))


# --- writing -------------------------------------------------------------------


def _python(cols: Columns, name: str, now: dt.datetime) -> list:
    """One column as the values of its model field (None for NULL)."""
    kind, values, null = cols.kinds[name], cols.values[name], cols.nulls[name]
    if kind == "now":
        out = [now] * cols.n
    elif kind == "datetime":
        from django.conf import settings

        local = pd.DatetimeIndex(values.astype("datetime64[s]")).tz_localize(settings.TIME_ZONE)
        out = list(local.tz_convert("UTC").to_pydatetime())
    elif kind == "date":
        out = values.astype("datetime64[D]").tolist()
    elif kind == "bool":
        out = values.astype(bool).tolist()
    elif kind == "int":
        out = values.astype(np.int64).tolist()
    else:
        out = list(values)
    if null is not None:
        for index in np.flatnonzero(null).tolist():
            out[index] = None
    return out


def records(model, cols: Columns, now: dt.datetime) -> list[dict]:
    """The table's rows as records for registry.models.bulk; a column not generated
    gets the field's default, or NULL."""
    from registry.models import bulk

    key = model._meta.pk.attname
    names = [key] if key in cols.values else []
    names += [name for name in bulk.record_columns(model) if name != key]
    fields = {f.attname: f for f in model._meta.concrete_fields}
    columns = []
    for name in names:
        field = fields[name]
        if name in cols.values:
            columns.append(_python(cols, name, now))
        elif field.has_default() and not callable(field.default):
            columns.append([field.get_default()] * cols.n)
        elif field.null:
            columns.append([None] * cols.n)
        else:
            raise SystemExit(f"make_cohort: no generator for required {model.__name__}.{name}")
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def new_patients(tables: dict[str, Columns], now: dt.datetime) -> list:
    """The patients of ``tables`` with their sections, for ``Writer.patients_insert``."""
    from registry.models import SECTION_MODELS, Patient, bulk

    sections = {
        model: {r["patient_id"]: r for r in records(model, tables[model.__name__], now)}
        for model in SECTION_MODELS
    }
    return [
        bulk.NewPatient(
            patient,
            {m: rows[patient["id"]] for m, rows in sections.items() if patient["id"] in rows},
        )
        for patient in records(Patient, tables["Patient"], now)
    ]


def ensure_sites(k: int):
    from registry.models import Site

    for i in range(1, k + 1):
        Site.objects.get_or_create(code=f"S{i:03d}", defaults={"name": f"Hospital {i:03d}"})
    sites = list(Site.objects.filter(code__regex=r"^S[0-9]{3}$").order_by("code")[:k])
    return [s.pk for s in sites], [s.code for s in sites]


def make_cohort(n: int, sites: int = 20, seed: int = 7, quiet: bool = False) -> float:
    """Append ``n`` patients; returns the seconds taken."""
    from django.db import connection
    from django.db.models import Max

    from registry.models import SECTION_MODELS, Patient, PatientExclusion, ScreeningEntry, bulk

    started = time.perf_counter()
    vendor = connection.vendor
    site_ids, site_codes = ensure_sites(sites)
    first = (Patient.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    models = {m.__name__: m for m in (Patient, *SECTION_MODELS, ScreeningEntry, PatientExclusion)}
    rng = np.random.default_rng([seed, first])
    # No attribution: the cohort's history tables stay empty.
    with bulk.writing() as writer:
        done = 0
        while done < n:
            size = min(CHUNK, n - done)
            tables = generate(rng, size, first + done, site_ids, site_codes)
            writer.patients_insert(patients=new_patients(tables, writer.now))
            for name, cols in tables.items():
                model = models[name]
                if model is not Patient and model not in SECTION_MODELS:
                    writer.insert(model=model, records=records(model, cols, writer.now))
            done += size
            if not quiet:
                print(f"  {done:,} patients ({time.perf_counter() - started:.1f} s)", flush=True)
    if vendor == "postgresql":
        # Fresh statistics and visibility map, as autovacuum would leave them.
        with connection.cursor() as cursor:
            for model in models.values():
                cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.perf_counter() - started


def check_sample(k: int, seed: int = 7) -> int:
    """Run ``full_clean()`` on every record of ``k`` random patients; returns the count."""
    from registry.models import Patient, PatientExclusion, ScreeningEntry

    ids = list(Patient.objects.values_list("id", flat=True).order_by("id"))
    if not ids:
        return 0
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(k, len(ids)), replace=False).tolist()
    for patient in Patient.objects.filter(id__in=chosen).select_related(
        "site", "admission", "imaging", "procedure", "complications", "followup"
    ):
        patient.full_clean()
        for section in patient.sections().values():
            if section is not None:
                section.full_clean()
    # The screening log (enrolled or not) and the exclusions, as many again.
    for entry in ScreeningEntry.objects.order_by("?")[:k]:
        entry.full_clean()
    for exclusion in PatientExclusion.objects.order_by("?")[:k]:
        exclusion.full_clean()
    return len(chosen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of patients to add")
    parser.add_argument("--sites", type=int, default=20, help="number of sites (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--check", type=int, default=200, help="patients re-validated with full_clean()"
    )
    args = parser.parse_args(argv)
    _django.setup()
    from django.db import connection

    print(f"make_cohort: {args.n:,} patients, {args.sites} sites, {connection.vendor}")
    seconds = make_cohort(args.n, sites=args.sites, seed=args.seed)
    print(f"make_cohort: {args.n:,} patients in {seconds:.1f} s ({args.n / seconds:,.0f}/s)")
    if args.check:
        checked = check_sample(args.check, seed=args.seed)
        print(f"make_cohort: full_clean() passed on {checked} random patients")


if __name__ == "__main__":
    main()
