"""Import speed: N synthetic rows through ``registry_import``; prints rows per second.

Targets: 10,000 rows in under 30 s on SQLite on a 2-core machine; at least 2,000
rows/s on PostgreSQL.

    .venv/bin/python benchmarks/import_speed.py [--rows N] [--keep]
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/import_speed.py --rows 10000

The configured database is used: ``DATABASE_URL`` when set, else SQLite in
``REGISTRY_VAR_DIR`` when set, else SQLite in a throw-away folder (never var/).
The database is migrated first. The rows are the synthetic demo cohort repeated
with study IDs unique to this run and dates moved by a day per repetition,
written to an interchange CSV file first so the timing includes reading and
parsing. Three imports are timed: new rows, the
same file again (nothing changes, no history), and a file in which every row
changed (an update and a history row per patient). The benchmark's patients
are deleted afterwards unless ``--keep``. Wall time and CPU time
(``time.process_time``) are both printed: the machine may be shared.
"""

import argparse
import csv
import datetime as dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("REGISTRY_VAR_DIR", tempfile.mkdtemp(prefix="registry-bench-"))
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from registry import demo  # noqa: E402
from registry.interchange import columns as interchange  # noqa: E402
from registry.interchange.importer import registry_import  # noqa: E402
from registry.models import SECTION_MODELS, Patient, Site, User  # noqa: E402


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = interchange.columns()
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([interchange.format_value(c, row[c.name]) for c in columns])
    return buffer.getvalue().encode()


def synthetic_rows(n: int, prefix: str) -> list[dict]:
    """The demo cohort repeated; each repetition's dates and times moved by one more day.

    Real files rarely repeat a date-time, so the timing should not profit from
    identical cells; the shift keeps every date rule (same intervals) satisfied.
    """
    rows = demo.synthetic_rows(n, prefix=prefix)
    cohort = len(demo.cohort_rows())
    moved = [
        c.name for c in interchange.columns() if c.kind in (interchange.DATE, interchange.DATETIME)
    ]
    for index, row in enumerate(rows):
        shift = dt.timedelta(days=index // cohort)
        for name in moved:
            if row[name] is not None:
                row[name] = row[name] + shift
    return rows


def changed(rows: list[dict]) -> list[dict]:
    """Every row with one valid change (the age moves by one year within 18-120)."""
    out = []
    for row in rows:
        row = dict(row)
        row["age_years"] = row["age_years"] + 1 if row["age_years"] < 120 else 119
        out.append(row)
    return out


def cleanup(prefix: str) -> None:
    patients = Patient.objects.filter(study_id__startswith=prefix)
    keys = list(patients.values_list("pk", flat=True))
    for model in (*SECTION_MODELS, Patient):
        field = "id" if model is Patient else "patient_id"
        for start in range(0, len(keys), 5000):
            chunk = keys[start : start + 5000]
            model.history.model.objects.filter(**{f"{field}__in": chunk}).delete()
    patients.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, help="rows (same as --rows)")
    parser.add_argument("--rows", type=int, default=None, help="rows to import (10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the imported patients")
    args = parser.parse_args()
    n = args.rows or args.n or 10_000

    call_command("migrate", verbosity=0)
    where = connection.settings_dict["NAME"]
    print(f"database: {connection.vendor} ({where}); {n} rows; load {os.getloadavg()[0]:.1f}")
    Site.objects.get_or_create(code=demo.SITE_CODE, defaults={"name": demo.SITE_NAME})
    user, _ = User.objects.get_or_create(username="bench_import", defaults={"role": "admin"})
    prefix = f"BENCH{int(time.time()) % 100000:05d}-"
    rows = synthetic_rows(n, prefix)
    folder = Path(tempfile.mkdtemp(prefix="registry-bench-csv-"))
    first, second = folder / "bench.csv", folder / "bench-changed.csv"
    first.write_bytes(csv_bytes(rows))
    second.write_bytes(csv_bytes(changed(rows)))

    try:
        for label, path, expected in (
            ("import of new rows", first, "created"),
            ("re-import, no change", first, "unchanged"),
            ("re-import, every row changed", second, "changed"),
        ):
            started, cpu = time.perf_counter(), time.process_time()
            result = registry_import(file=path, user=user, filename=path.name)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert result.ok and getattr(result, expected) == n, result.problems[:5]
            print(
                f"{label:30s} {n} rows in {elapsed:5.1f} s wall ({cpu:5.1f} s CPU): "
                f"{n / elapsed:6.0f} rows/s wall, {n / cpu:6.0f} rows/s CPU"
            )
    finally:
        if not args.keep:
            cleanup(prefix)
        for path in (first, second):
            path.unlink(missing_ok=True)
        folder.rmdir()


if __name__ == "__main__":
    main()
