"""Import speed: N synthetic rows into an empty SQLite registry; prints rows per second.

Target (issue 3): 10,000 rows in under 30 s on SQLite on a 2-core machine.

    .venv/bin/python benchmarks/import_speed.py [N]

Runs in a throw-away database (a temporary REGISTRY_VAR_DIR), never in var/.
The rows are the synthetic demo cohort repeated with new study IDs, written to
an interchange CSV file first so the timing includes reading and parsing.
"""

import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("DATABASE_URL", None)
os.environ["REGISTRY_VAR_DIR"] = tempfile.mkdtemp(prefix="registry-bench-")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from registry import demo, interchange  # noqa: E402
from registry.importer import registry_import  # noqa: E402
from registry.models import Site, User  # noqa: E402


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = interchange.columns()
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([interchange.format_value(c, row[c.name]) for c in columns])
    return buffer.getvalue().encode()


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    Site.objects.create(code=demo.SITE_CODE, name=demo.SITE_NAME)
    user = User.objects.create(username="bench", role="admin")
    path = Path(os.environ["REGISTRY_VAR_DIR"]) / "bench.csv"
    path.write_bytes(csv_bytes(demo.synthetic_rows(n, prefix="BENCH-")))

    for label, expected in (
        ("import of new rows", "created"),
        ("re-import, no change", "unchanged"),
    ):
        started, cpu = time.perf_counter(), time.process_time()
        result = registry_import(file=path, user=user, filename=path.name)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.ok and getattr(result, expected) == n, result.problems[:5]
        print(
            f"{label}: {n} rows in {elapsed:.1f} s wall ({cpu:.1f} s CPU): "
            f"{n / elapsed:.0f} rows/s wall, {n / cpu:.0f} rows/s CPU"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
