"""Bounded uploads: files built to stall a worker, checked as the web preview checks them.

    .venv/bin/python benchmarks/upload_limits.py [--seconds 30]

Builds in a throw-away folder:

- ``rows-150000.xlsx``: 150,000 rows of the four required columns (a few hundred KB);
- ``columns-1000000.csv``: a header of 1,000,000 columns (about 7 MB);
- ``one-row-1000000.xlsx``: one row of 1,000,000 cells (about 100 KB, 24 MB unpacked);
- ``nul.csv``: one valid row whose free text holds a NUL byte;

and checks each with ``registry_import(dry_run=True, time_budget=SECONDS)`` on a
throw-away SQLite database, in a fresh Python process per file (so that each peak is its
own). Prints per file: its size, the wall-clock seconds, the peak resident memory of that
process and of the workbook reader it started (``getrusage``), and the first problem the
preview would show.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_django(folder: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("REGISTRY_VAR_DIR", str(folder))
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from registry.models import Site

    Site.objects.get_or_create(code="LOAD", defaults={"name": "Load-test hospital"})


def rows_workbook(path: Path, rows: int) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("patients")
    sheet.append(["study_id", "site", "sex", "age_years"])
    for n in range(rows):
        sheet.append([f"U{n:06d}", "LOAD", "male" if n % 2 else "female", 40 + n % 50])
    book.save(path)
    return path


def one_row_workbook(path: Path, cells: int) -> Path:
    from openpyxl import Workbook

    Workbook().save(path)
    xml = "".join(f"<c><v>{n % 10}</v></c>" for n in range(cells))  # columns 1, 2, ...: no r=""
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
        'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
        f"{xml}</row></sheetData></worksheet>"
    )
    with zipfile.ZipFile(path) as source:
        members = {item: source.read(item.filename) for item in source.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item, data in members.items():
            target.writestr(item, sheet.encode() if item.filename.endswith("sheet1.xml") else data)
    return path


def build(folder: Path) -> list[Path]:
    wide = folder / "columns-1000000.csv"
    wide.write_text(",".join(f"c{n}" for n in range(1_000_000)) + "\n1\n")
    nul = folder / "nul.csv"
    nul.write_text("study_id,site,sex,age_years,stent_device\nN-1,LOAD,male,60,Acclino\x00 4.0\n")
    return [
        rows_workbook(folder / "rows-150000.xlsx", 150_000),
        wide,
        one_row_workbook(folder / "one-row-1000000.xlsx", 1_000_000),
        nul,
    ]


def check_one(path: Path, seconds: int) -> dict:
    """Run in a process of its own: the preview's check of one file."""
    _setup_django(path.parent)
    from registry.interchange.importer import registry_import

    started = time.perf_counter()
    result = registry_import(file=path, filename=path.name, dry_run=True, time_budget=seconds)
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reader_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "rows": result.rows,
        "problems": len(result.problems),
        "first": str(result.problems[0]) if result.problems else "no problem",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(check_one(args.one, args.seconds)))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="registry-upload-limits-"))
    files = build(folder)
    _setup_django(folder)  # migrate once, before the timed runs
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; budget {args.seconds} s"
    )
    for path in files:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(path), "--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            env={**os.environ, "REGISTRY_VAR_DIR": str(folder)},
        )
        if done.returncode != 0:
            print(f"{path.name}: failed\n{done.stderr[-2000:]}")
            return 1
        out = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{path.name}: {path.stat().st_size / 1024:,.0f} KB, {out['seconds']:.1f} s, "
            f"peak RSS {out['rss_mb']:.0f} MB (workbook reader {out['reader_mb']:.0f} MB), "
            f"{out['problems']} problem(s): {out['first'][:110]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
