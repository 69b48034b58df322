"""Wall time and peak memory of the registry's commands, each a whole process.

Usage::

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_1m \\
        .venv/bin/python benchmarks/commands.py [--only NAME ...] [--repeat 1]

Each command runs as its own process (``manage.py ...``, start-up included); its
peak resident memory is the child's ``ru_maxrss`` from ``os.wait4``. Beside each
export, the *floor*: PostgreSQL writing the same rows and columns by
``COPY (SELECT ...) TO STDOUT WITH CSV`` to a client that discards them (what no
export can beat). The database is the one ``DATABASE_URL`` names (fill it with
``make_cohort.py``); ``restore`` and ``import`` are left out unless named with
``--only``, since they write: ``restore`` brings ``backup``'s file back into
``--restore-url`` and ``import`` reads ``--import-file`` (an ``export csv`` of the
cohort) into ``--import-url``, each an empty migrated database of its own (without
them, the ``DATABASE_URL`` one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = Path(os.environ.get("BENCH_OUT", "/tmp/bench"))  # where the files are written
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def exports() -> dict[str, list[str]]:
    found = {}
    for fmt in ("csv", "redcap", "dta", "xlsx"):
        for deid in (False, True):
            name = f"export {fmt}" + (" de-identified" if deid else "")
            target = OUT / f"export{'-deid' if deid else ''}.{fmt}"
            found[name] = [*MANAGE, "export_registry", "--format", fmt, "--output", str(target)]
            found[name] += ["--deidentified"] if deid else []
    return found


def analyses() -> dict[str, list[str]]:
    found = {}
    for fmt in ("json", "csv", "xlsx"):
        target = OUT / f"tables.{fmt}"
        found[f"study_tables ({fmt})"] = [
            *MANAGE,
            "study_tables",
            "--format",
            fmt,
            "--output",
            str(target),
        ]
    for fmt in ("json", "xlsx"):
        target = OUT / f"quality.{fmt}"
        found[f"quality_indicators ({fmt})"] = [
            *MANAGE,
            "quality_indicators",
            "--format",
            fmt,
            "--output",
            str(target),
        ]
    found["study_report (docx)"] = [*MANAGE, "study_report", "--output", str(OUT / "report.docx")]
    return found


def commands(import_file: str) -> dict[str, list[str]]:
    return {
        "manage.py help": [*MANAGE, "help"],
        "manage.py check": [*MANAGE, "check"],
        "export floor (COPY)": [sys.executable, str(Path(__file__)), "--floor"],
        **exports(),
        **analyses(),
        "check_data": [*MANAGE, "check_data", "--format", "json"],
        "backup": [*MANAGE, "backup", str(OUT / "registry.backup")],
        "restore": [*MANAGE, "restore", str(OUT / "registry.backup"), "--force"],
        "import": [*MANAGE, "import_registry", import_file, "--create-sites"],
    }


def measure(args: list[str], env: dict) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds (user + system), peak RSS in MB and exit status of one
    child process (CPU time says what the command costs on a machine others share)."""
    start = time.perf_counter()
    with open(OUT / "last.out", "wb") as out, open(OUT / "last.err", "wb") as err:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        # wait4 gives this child's own resource usage (its peak RSS in kB).
        _, status, usage = os.wait4(child.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - start
    return wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def floor() -> None:
    """The export's rows and columns written by PostgreSQL itself, discarded."""
    sys.path.insert(0, str(HERE))
    import _django

    _django.setup()
    from django.db import connection

    from registry.interchange.exporter import _lookups
    from registry.models import Patient

    query = Patient.objects.order_by("study_id").values(*_lookups().values()).query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        sql = cursor.mogrify(sql, params) if params else sql
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH CSV HEADER") as copy:
            size = sum(len(block) for block in copy)
    print(f"{size / 1e6:.0f} MB", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="a command's name (repeatable)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--import-file", default=str(OUT / "export.csv"))
    parser.add_argument("--import-url", help="database the import writes into")
    parser.add_argument("--restore-url", help="database the restore replaces")
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.floor:
        return floor()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1"}
    chosen = commands(options.import_file)
    names = options.only or [n for n in chosen if n not in ("restore", "import")]
    print(
        f"{'command':32} {'wall':>9} {'CPU':>9} {'peak RSS':>10}  (load {os.getloadavg()[0]:.1f})"
    )
    for name in names:
        scratch = {"import": options.import_url, "restore": options.restore_url}.get(name)
        child_env = {**env, "DATABASE_URL": scratch} if scratch else env
        for _ in range(options.repeat):
            wall, cpu, rss, status = measure(chosen[name], child_env)
            error = (OUT / "last.err").read_text()[-300:]
            note = "" if status == 0 else f"  exit {status}: {error}"
            print(f"{name:32} {wall:8.2f}s {cpu:8.2f}s {rss:8.0f} MB{note}", flush=True)


if __name__ == "__main__":
    main()
