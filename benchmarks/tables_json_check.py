"""Check that a change leaves the study tables' JSON byte for byte as it was.

Usage (the configured database, e.g. the demo cohort or a benchmark cohort)::

    DEBUG=1 .venv/bin/python benchmarks/tables_json_check.py save /tmp/tables-before
    # ... change the code ...
    DEBUG=1 .venv/bin/python benchmarks/tables_json_check.py compare /tmp/tables-before

``save`` writes the output of ``manage.py study_tables --format json`` for a few
option sets (the defaults, Wald p-values, continuous covariates, the strict follow-up
window, one circulation), without its ``generated_at`` line, the only line that
changes from run to run. ``compare`` runs the same commands and prints, for each
option set, ``identical`` or the first line that differs; it exits with status 1 when
one differs. Each command is a process of its own, so nothing remembered in memory
is reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OPTION_SETS = {
    "default": [],
    "wald": ["--p-method", "wald"],
    "continuous": ["--covariates", "age_years,nihss_admission,onset_to_door_hours"],
    "strict": ["--followup-window", "strict"],
    "anterior": ["--circulation", "anterior"],
}


def tables_json(options: list[str]) -> str:
    """The command's JSON without its ``generated_at`` line."""
    command = [sys.executable, "manage.py", "study_tables", "--format", "json", *options]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    lines = output.stdout.splitlines(keepends=True)
    return "".join(line for line in lines if '"generated_at"' not in line)


def first_difference(before: str, after: str) -> str | None:
    """The first differing line, before and after; None when identical."""
    if before == after:
        return None
    old, new = before.splitlines(), after.splitlines()
    for number, (a, b) in enumerate(zip(old, new, strict=False), start=1):
        if a != b:
            return f"line {number}: {a.strip()!r} -> {b.strip()!r}"
    return f"{len(old)} lines -> {len(new)} lines"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    differ = False
    for name, options in OPTION_SETS.items():
        path = args.directory / f"{name}.json"
        current = tables_json(options)
        if args.action == "save":
            path.write_text(current)
            print(f"{name}: saved {path}")
            continue
        difference = first_difference(path.read_text(), current)
        differ |= difference is not None
        print(f"{name}: {difference or 'identical'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
