"""The kinds of interchange cells and the text of a spreadsheet cell, without Django.

Free of Django so that a workbook can be read in a process of its own
(``registry.interchange.xlsx``); ``columns`` re-exports the names.
"""

from __future__ import annotations

import datetime as dt

TEXT, CATEGORY, INTEGER, FLAG, DATE, DATETIME = (
    "text",
    "category",
    "integer",
    "flag",
    "date",
    "date-time",
)
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def cell_text(kind: str | None, value: object) -> str:
    """CSV-equivalent text of a spreadsheet cell of a column of ``kind`` (openpyxl gives
    typed values; None for a column that is not the interchange's)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        if kind == DATE and value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.strftime(DATETIME_FORMAT if value.second == 0 else "%Y-%m-%dT%H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
