"""The registry at 1,000 to 1,000,000 patients: one table of timings and query counts.

Usage::

    .venv/bin/python benchmarks/run.py                        # everything (long: 1M!)
    .venv/bin/python benchmarks/run.py --sizes 1000,10000 --db sqlite
    .venv/bin/python benchmarks/run.py --db postgres --sizes 100000 --json out.json

Each (database, N) pair has its own database, created, migrated and filled with
``make_cohort.py`` on first use and reused afterwards (``--rebuild`` starts over):
PostgreSQL ``bench_1k``, ``bench_10k``, ... on ``--pg-url`` (default
postgres://postgres@127.0.0.1:5432), SQLite ``/tmp/bench/bench_<N>.sqlite3``.
SQLite stops at 100,000 patients. The measurements of one pair run in a child
process (Django is configured once per process, from ``DATABASE_URL``) that
prints JSON; this parent prints the table.

Measured, per pair:

- **study tables**: ``tables.study_tables()``, the code behind
  ``manage.py study_tables --format json`` (all tables and the regression) plus
  the JSON serialisation; wall seconds and SQL queries; the regression is fitted
  on every run (its remembered fit is forgotten first), as in a new process;
- **pandas lower bound**: the same counts and statistics computed from an
  in-memory DataFrame already holding every patient's study variables (loading
  it is not timed): pandas counting + the same ``tables``/``stats`` functions;
- **SQL floor**: one aggregate query joining the patient with its five sections
  and scanning them once (the least any whole-registry computation costs);
- **pages** (``pages.py``): server time and queries of the patient list (first
  page, filtered by site; then the nurse's landing page with its follow-up panels,
  a study-ID search, page 500, the follow-up-incomplete and any-section-incomplete
  filters), an overview, a section save and the report page;
- **import**: ``registry_import`` of 2,000 new interchange rows, in a
  transaction that is rolled back (the cohort stays at N); ``--repeat`` times:
  the median rows/s, then the first and the slowest import's.

Times are medians of ``--repeat`` runs after one warm-up run. Beside them, the peak
resident memory of the measuring process (all of the above in one process); each
command's own peak memory, as a process of its own, is ``commands.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

SQLITE_MAX = 100_000
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
IMPORT_ROWS = 2_000


def label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def database_url(db: str, n: int, pg_url: str) -> str:
    if db == "postgres":
        return f"{pg_url.rstrip('/')}/bench_{label(n)}"
    return f"sqlite:////tmp/bench/bench_{label(n)}.sqlite3"


# -- parent: databases and the table ----------------------------------------------------------


def _psql(pg_url: str, sql: str) -> str:
    result = subprocess.run(
        ["psql", f"{pg_url.rstrip('/')}/postgres", "-Atc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True)


def prepare(db: str, n: int, pg_url: str, rebuild: bool, sites: int) -> dict:
    """Environment of a child process whose database holds exactly ``n`` patients."""
    url = database_url(db, n, pg_url)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": url}
    env.pop("ANALYTICS_DATABASE_URL", None)
    if db == "postgres":
        name = url.rsplit("/", 1)[1]
        exists = _psql(pg_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"
        if exists and rebuild:
            _psql(pg_url, f'DROP DATABASE "{name}"')
            exists = False
        if not exists:
            _psql(pg_url, f'CREATE DATABASE "{name}"')
    else:
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if rebuild and path.exists():
            path.unlink()
        exists = path.exists()
    _manage(env, "migrate", "--noinput", "-v0")
    if not exists:
        print(f"# filling {url} with {n:,} patients", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, str(HERE / "make_cohort.py"), str(n), "--sites", str(sites)],
            env=env,
            check=True,
            stdout=sys.stderr,
        )
    return env


def run_child(env: dict, repeat: int, skip: list[str]) -> dict:
    args = [sys.executable, str(HERE / "run.py"), "--child", "--repeat", str(repeat)]
    for name in skip:
        args += ["--skip", name]
    result = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(result.stderr[-2000:] if result.returncode else "")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _fmt_seconds(value) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _fmt_ms(entry) -> str:
    if not entry or entry.get("ms") is None:
        return "n/a"
    return f"{entry['ms']:.0f} ms / {entry['queries']} q"


def _fmt_import(entry) -> str:
    if entry.get("rows_per_s") is None:
        return "n/a"
    first, slowest = entry.get("first_rows_per_s"), entry.get("slowest_rows_per_s")
    extra = "" if first is None else f" ({first:,.0f}; {slowest:,.0f})"
    return f"{entry['rows_per_s']:,.0f}{extra}"


def _diff(a, b) -> str:
    return "n/a" if a is None or b is None else f"{a - b:.2f} s"


def _ratio(a, b) -> str:
    return "n/a" if a is None or not b else f"{a / b:.1f}x"


def table(results: list[dict]) -> str:
    """One markdown table: a column per (database, N), a row per measurement."""
    heads = [f"{r['vendor']} {r['n_patients']:,}" for r in results]
    rows = [
        ("study tables (wall)", [_fmt_seconds(r["study"].get("seconds")) for r in results]),
        ("study tables (SQL statements / connections)", [_queries(r["study"]) for r in results]),
        ("pandas lower bound", [_fmt_seconds(r["pandas"].get("seconds")) for r in results]),
        (
            "ratio registry / pandas",
            [_ratio(r["study"].get("seconds"), r["pandas"].get("seconds")) for r in results],
        ),
        (
            "registry - pandas (data access)",
            [_diff(r["study"].get("seconds"), r["pandas"].get("seconds")) for r in results],
        ),
        ("SQL floor (one scan)", [_fmt_seconds(r["floor"].get("seconds")) for r in results]),
        (
            "ratio registry / floor",
            [_ratio(r["study"].get("seconds"), r["floor"].get("seconds")) for r in results],
        ),
        ("patient list (site, page 1)", [_fmt_ms(r["pages"].get("patient list")) for r in results]),
        *(
            (f"{name} (nurse)", [_fmt_ms(r["pages"].get(name)) for r in results])
            for name in (
                "patient list, landing",
                "patient list, search",
                "patient list, page 500",
                "patient list, follow-up incomplete",
                "patient list, any section incomplete",
            )
        ),
        ("patient overview", [_fmt_ms(r["pages"].get("overview")) for r in results]),
        ("section save", [_fmt_ms(r["pages"].get("section save")) for r in results]),
        ("report page", [_fmt_ms(r["pages"].get("report page")) for r in results]),
        (
            "import (rows/s: median; first, slowest)",
            [_fmt_import(r["import"]) for r in results],
        ),
    ]
    rows.append(
        (
            "peak RSS of the measuring process (MB)",
            [str(r.get("peak_rss_mb", "n/a")) for r in results],
        )
    )
    rows.append(
        (
            "machine load (1-min avg, start-end)",
            [f"{r['load'][0]}-{r['load'][1]}" if r.get("load") else "n/a" for r in results],
        )
    )
    lines = [
        "| measurement | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    notes = []
    for r in results:
        for part in ("study", "pandas", "floor", "pages", "import"):
            error = r[part].get("error")
            if error:
                notes.append(f"- {r['vendor']} {r['n_patients']:,} {part}: {error}")
            if part == "pandas" and r[part].get("counts_match") is False:
                notes.append(
                    f"- {r['vendor']} {r['n_patients']:,}: numpy counts differ from the SQL counts!"
                )
    return "\n".join(lines + ([""] + notes if notes else []))


def parent(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(DEFAULT_SIZES)
    dbs = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    results = []
    for db in dbs:
        for n in sizes:
            if db == "sqlite" and n > SQLITE_MAX:
                continue
            env = prepare(db, n, args.pg_url, args.rebuild, args.sites)
            print(f"# measuring {db} {n:,}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            repeat = args.repeat if n < 1_000_000 else min(args.repeat, args.repeat_1m)
            result = run_child(env, repeat, args.skip or [])
            print(f"#   done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            results.append(result)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


# -- child: the measurements of one database ---------------------------------------------------


def _queries(study: dict) -> str:
    if "queries" not in study:
        return "n/a"
    return f"{study['queries']} / {study.get('connections', 1)}"


def _median_time(function, repeat: int) -> tuple[float, object]:
    function()  # warm-up: plans, imports, caches
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def _count_other_connections() -> list[int]:
    """Statements of the read's other connections (``pgread._read_in_snapshot``, in
    threads with connections of their own), one number per connection used."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from analytics import pgread

    counted: list[int] = []
    original = pgread._read_in_snapshot

    def read_in_snapshot(alias, *args):
        with CaptureQueriesContext(connections[alias]) as captured:
            frame = original(alias, *args)
        counted.append(len(captured))
        return frame

    pgread._read_in_snapshot = read_in_snapshot
    return counted


def measure_study_tables(repeat: int) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.regression import fit
    from analytics.tables import strip_internal, study_tables

    others = _count_other_connections()

    def run():
        # As `manage.py study_tables` in a new process: the regression is fitted, not
        # taken from the fit remembered by the previous run.
        fit.cache_clear()
        others.clear()
        with CaptureQueriesContext(connection) as captured:
            text = json.dumps(strip_internal(study_tables(None)), default=str)
        return len(captured), list(others), text

    seconds, (queries, other_queries, text) = _median_time(run, repeat)
    return {
        "seconds": seconds,
        # Every statement Django logs (BEGIN and COMMIT included), all connections.
        "queries": queries + sum(other_queries),
        "connections": 1 + len(other_queries),
        "read_connections_setting": settings.ANALYTICS_READ_CONNECTIONS,
        "json_bytes": len(text),
    }


def sql_counts() -> dict[str, int]:
    """Every cell counted by the database itself, with conditional aggregation over
    the drill-down's per-patient SQL (``Cond.sql``): an independent check of the
    registry's numpy counts, and what the registry did before it counted in numpy."""
    from django.db import connection

    from analytics import cells, datasets

    inner, params = datasets.per_patient_sql(datasets.patients())
    conditions = cells.all_cells()
    selects = ", ".join(f"COUNT(CASE WHEN {c.sql} THEN 1 END)" for c in conditions.values())
    condition_params = [p for c in conditions.values() for p in c.params]
    sql = f"WITH per_patient AS MATERIALIZED ({inner}) SELECT {selects} FROM per_patient"
    with connection.cursor() as cursor:
        cursor.execute(sql, (*params, *condition_params))
        values = cursor.fetchone()
    return {cell: int(v or 0) for cell, v in zip(conditions, values, strict=True)}


def measure_pandas(repeat: int, registry_counts: dict | None) -> dict:
    """The same numbers from columns already in memory (the lower bound).

    The per-patient columns are fetched once, untimed (``datasets.fetch_columns``);
    timed: every count (numpy) and the same statistics (``analytics.tables`` /
    ``stats``) as the registry, i.e. the registry minus its data access.
    """
    import dataclasses

    from analytics import cells, datasets, regression, tables
    from analytics import exposures as ex

    loaded = datasets.fetch_columns(datasets.patients())
    covariates = tables.default_covariates()
    conditions = cells.all_cells()

    def run():
        columns = dataclasses.replace(loaded, _masks={})  # nothing remembered between runs
        regression.fit.cache_clear()  # the regression fitted each time, as by the registry
        counts = cells.count_columns(columns, conditions)
        result = {
            "baseline": tables.baseline(counts, columns.continuous),
            "table1": tables.table1(counts),
            "table2": tables.diagnostic(counts, ex.TABLE2),
            "table3": tables.table3(counts),
            "table4": tables.diagnostic(counts, ex.TABLE4),
            "outcomes": tables.outcomes(counts),
            "occlusion_sites": tables.occlusion_sites(counts),
            "regression": tables.regression(
                columns.binary([ex.TABLE1_OUTCOME, *covariates]), covariates
            ),
        }
        return counts, result

    seconds, (counts, _result) = _median_time(run, repeat)
    out = {"seconds": seconds, "cells": len(counts)}
    if registry_counts is not None:
        out["counts_match"] = counts == registry_counts
        if not out["counts_match"]:
            out["differ"] = [k for k in counts if counts[k] != registry_counts.get(k)][:5]
    return out


def floor_sql() -> str:
    from registry.models import SECTION_MODELS, Patient

    patient = Patient._meta.db_table
    joins = "\n".join(
        f'LEFT JOIN "{m._meta.db_table}" ON "{m._meta.db_table}"."patient_id" = "{patient}"."id"'
        for m in SECTION_MODELS
    )
    return f"""
        SELECT COUNT(*), AVG("{patient}"."age_years"),
               COUNT("registry_admission"."door_time"),
               COUNT(*) FILTER (WHERE "registry_imaging"."circulation" = 'posterior'),
               COUNT("registry_procedure"."final_mtici"),
               COUNT(*) FILTER (WHERE "registry_complications"."ich"),
               COUNT(*) FILTER (WHERE "registry_followup"."mrs_3m" >= 4)
        FROM "{patient}"
        {joins}
    """


def measure_floor(repeat: int) -> dict:
    from django.db import connection

    sql = floor_sql()

    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()

    seconds, row = _median_time(run, repeat)
    return {"seconds": seconds, "n": row[0]}


def measure_import(repeat: int, rows: int = IMPORT_ROWS) -> dict:
    """Rows per second of ``repeat`` imports of the same new file, each rolled back:
    the median, and the first and the slowest (a single import of 2,000 rows lasts
    about a second, so one measurement is at the mercy of the machine)."""
    import csv
    import io
    import tempfile

    from django.db import transaction

    from registry import demo
    from registry.interchange import columns as interchange
    from registry.interchange.importer import registry_import
    from registry.models import Site, User

    def csv_bytes(data) -> bytes:
        # As benchmarks/import_speed.py: the interchange CSV, so parsing is timed too.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = interchange.columns()
        writer.writerow([c.name for c in columns])
        for row in data:
            writer.writerow([interchange.format_value(c, row[c.name]) for c in columns])
        return buffer.getvalue().encode()

    def once(path) -> float:
        with transaction.atomic():
            Site.objects.get_or_create(code=demo.SITE_CODE, defaults={"name": demo.SITE_NAME})
            user, _ = User.objects.get_or_create(
                username="bench_import", defaults={"role": "admin"}
            )
            started = time.perf_counter()
            result = registry_import(file=path, user=user, filename=path.name)
            seconds = time.perf_counter() - started
            transaction.set_rollback(True)
        if not (result.ok and result.created == rows):
            raise RuntimeError(f"import failed: {result.problems[:3]}")
        return seconds

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.csv"
        path.write_bytes(csv_bytes(demo.synthetic_rows(rows, prefix="IMPBENCH-")))
        times = [once(path) for _ in range(max(repeat, 1))]
    return {
        "rows": rows,
        "seconds": statistics.median(times),
        "rows_per_s": rows / statistics.median(times),
        "first_rows_per_s": rows / times[0],
        "slowest_rows_per_s": rows / max(times),
    }


def child(args) -> None:
    import _django

    _django.setup()
    from django.db import connection
    from django.urls import reverse

    from registry.models import Patient

    skip = set(args.skip or [])
    if connection.vendor == "postgresql":
        # As autovacuum would: the previous run's rolled-back import leaves dead rows
        # and stale statistics behind (which mislead the planner and JIT).
        from registry.models import SECTION_MODELS

        with connection.cursor() as cursor:
            for model in (Patient, *SECTION_MODELS):
                cursor.execute(f'VACUUM (ANALYZE) "{model._meta.db_table}"')
    out = {"vendor": connection.vendor, "n_patients": Patient.objects.count()}
    load_before = os.getloadavg()[0]

    def attempt(name, function, *fargs):
        if name in skip:
            return {}
        try:
            return function(*fargs)
        except Exception as error:  # noqa: BLE001 - reported in the table, not fatal
            return {"error": f"{type(error).__name__}: {error}"[:300]}

    out["study"] = attempt("study", measure_study_tables, args.repeat)
    registry_counts = None
    if "pandas" not in skip:
        try:
            registry_counts = sql_counts()
        except Exception:  # noqa: BLE001
            registry_counts = None
    out["pandas"] = attempt("pandas", measure_pandas, args.repeat, registry_counts)
    out["floor"] = attempt("floor", measure_floor, args.repeat)
    from pages import measure_pages

    try:
        report_url = reverse("analytics:report")
    except Exception:  # noqa: BLE001 - no report page yet
        report_url = None
    if "report" in skip:
        report_url = None
    pages = attempt("pages", measure_pages, max(args.repeat, 3), report_url)
    for result in pages.values():
        if isinstance(result, dict):
            result.pop("sql", None)
            result.pop("sql_ms", None)
    out["pages"] = pages
    out["import"] = attempt("import", measure_import, args.repeat)
    out["load"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    import resource

    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out, default=str))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated patient counts (default 1k..1M)")
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    parser.add_argument(
        "--repeat-1m", type=int, default=1, help="timed runs at 1,000,000 patients and more"
    )
    parser.add_argument("--rebuild", action="store_true", help="drop and refill the databases")
    parser.add_argument(
        "--skip",
        action="append",
        choices=("study", "pandas", "floor", "pages", "report", "import"),
        help="leave a measurement out (repeatable)",
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
