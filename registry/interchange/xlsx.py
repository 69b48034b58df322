"""An .xlsx workbook read into interchange CSV text, in a process of its own.

A workbook is a zip of XML: a few hundred kilobytes can unpack into millions of cells,
or one row of a million cells that openpyxl parses whole (measured: a 100 KB file, one
row, 12 s and 700 MB). So the first sheet is read here, in read-only streaming mode,
by a separate Python process with a memory ceiling, a CPU ceiling and (for the web
preview) a wall-clock limit: whatever the workbook holds, the server's own process
neither stalls nor grows. The rows come back as a UTF-8 CSV file that the importer
reads as it reads any CSV. Over ``max_rows`` non-blank rows or ``max_columns``
columns the reading stops and the file is refused.

Free of Django: run as ``python -m registry.interchange.xlsx`` with a JSON request on
standard input; it answers one JSON line on standard output.
"""

from __future__ import annotations

import csv
import json
import sys
import time

from registry.interchange.kinds import cell_text

CHECK_EVERY = 256  # rows between two looks at the clock


class Refused(Exception):
    """The workbook is over a limit or unreadable; the message says which and what to do."""


def convert(
    source: str,
    target: str,
    *,
    kinds: dict,
    max_rows: int,
    max_columns: int,
    deadline: float | None = None,
) -> int:
    """Write the first sheet of ``source`` as CSV into ``target``; the data rows read.

    ``kinds`` maps the interchange's column names to their kind (typed cells become
    their contract text); blank rows inside the table are kept (row numbers), blank
    rows after it are not.
    """
    from openpyxl import load_workbook

    book = load_workbook(source, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        with open(target, "w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            rows = _copy_rows(sheet, writer, kinds, max_rows, max_columns, deadline)
    finally:
        book.close()
    return rows


def _copy_rows(sheet, writer, kinds, max_rows, max_columns, deadline) -> int:
    header, blank_run, rows = None, 0, 0
    for number, values in enumerate(sheet.iter_rows(values_only=True, max_col=max_columns + 1)):
        if deadline is not None and number % CHECK_EVERY == 0 and time.monotonic() > deadline:
            raise Refused(f"stopped after {rows:,} rows: out of time")
        cells = list(values)
        if all(value in (None, "") for value in cells):
            blank_run += header is not None
            continue
        if len(cells) > max_columns and cells[max_columns] not in (None, ""):
            where = "the header" if header is None else f"row {rows + blank_run + 1}"
            raise Refused(f"{where} has more than {max_columns} columns")
        if header is None:
            header = ["" if v is None else str(v).strip() for v in cells[:max_columns]]
            writer.writerow(header)
            continue
        rows += blank_run + 1
        if rows > max_rows:
            raise Refused(f"more than {max_rows:,} rows")
        writer.writerows([[]] * blank_run)
        blank_run = 0
        while cells and cells[-1] in (None, ""):
            cells.pop()  # read-only rows are padded to max_col: keep the CSV small
        writer.writerow(
            [cell_text(kinds.get(name), value) for name, value in zip(header, cells, strict=False)]
        )
    return rows


def _limit_resources(memory_mb: int, cpu_seconds: int | None) -> None:
    try:
        import resource
    except ImportError:  # not a Unix system: the wall-clock limit still holds
        return
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def main() -> int:
    request = json.loads(sys.stdin.read())
    seconds = request.get("seconds")
    deadline = None if seconds is None else time.monotonic() + seconds
    _limit_resources(request["memory_mb"], None if seconds is None else int(seconds) + 2)
    try:
        rows = convert(
            request["source"],
            request["target"],
            kinds=request["kinds"],
            max_rows=request["max_rows"],
            max_columns=request["max_columns"],
            deadline=deadline,
        )
    except Refused as exc:
        answer = {"refused": str(exc)}
    except MemoryError:
        answer = {"refused": f"reading it needs more than {request['memory_mb']} MB"}
    except Exception as exc:  # a damaged or fake workbook: zipfile, XML, openpyxl errors
        answer = {"unreadable": f"{type(exc).__name__}: {exc}"[:300]}
    else:
        answer = {"rows": rows}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
