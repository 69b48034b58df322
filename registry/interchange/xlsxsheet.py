"""A one-sheet xlsx workbook written as its XML, row by row, into a zip stream.

The registry's export writes up to 1,048,575 rows of some 60 cells: a library
spending several microseconds a cell (openpyxl's write-only mode about 7, XlsxWriter's
constant-memory mode about 3) needs minutes of CPU for it. Here each column's cells are
written by one small function chosen once, a row is one string, and the sheet is
deflated as it is written: memory does not grow with the rows.

The workbook holds only what the export needs: numbers, text written inline (never
read as a formula: no cell is written with a formula), dates and date-times as
numbers with a date format, as Excel stores them. No Django here.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable
from typing import BinaryIO

# A cell function: (value, row number as text) -> the cell's XML ('' for an empty cell).
Cell = Callable[[object, str], str]

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
DATE_STYLE, DATETIME_STYLE = 1, 2  # positions in STYLES' cellXfs
HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" '
        f'Type="{DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{RELS}">'
        f'<Relationship Id="rId1" Type="{DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{DOC_RELS}/styles" Target="styles.xml"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        f'<styleSheet xmlns="{MAIN}">'
        '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
        '<numFmt numFmtId="165" formatCode="yyyy-mm-dd&quot;T&quot;hh:mm"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        '</cellStyleXfs><cellXfs count="3">'
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
        "</cellStyles></styleSheet>"
    ),
}
# Excel's day 0 is 1899-12-30 (as openpyxl and Excel count: days after 1900-03-01).
EPOCH_ORDINAL = 693594
# Characters XML cannot hold are written as Excel's _xHHHH_ escape; a carriage return as
# a character reference, which a reader does not turn into a line feed.
_ILLEGAL = [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]
_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
    | {chr(c): f"_x{c:04X}_" for c in _ILLEGAL}
)
# Text that already looks like an escape keeps its underscore (Excel's _x005F_).
_LOOKS_ESCAPED = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
ROWS_PER_WRITE = 500
# Distinct values of a text column whose XML is kept (``text_cell``).
KNOWN_TEXTS = 4096
# Deflate's fastest level: the sheet's XML is repetitive (a sixth of its size at level
# 1: 317 MB for 2.0 GB at 1,000,000 patients); a higher level costs more CPU.
COMPRESS_LEVEL = 1


def letters(index: int) -> str:
    """The column's letters in a cell reference (0 -> A, 26 -> AA)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def number_cell(index: int) -> Cell:
    """Cells of an integer column (a bool is written as 1 or 0)."""
    column = letters(index)

    def cell(value, row: str) -> str:
        if value is None:
            return ""
        return f'<c r="{column}{row}"><v>{value:d}</v></c>'

    return cell


def text_cell(index: int, text: Callable[[object], str] = str) -> Cell:
    """Cells of a text column, written inline: ``text`` of each value that is not None
    ('' is an empty cell). The XML of the most frequent values (codes, device names) is
    kept rather than escaped anew on every row."""
    column = letters(index)
    known: dict[object, str] = {}

    def cell(value, row: str) -> str:
        if value is None:
            return ""
        inner = known.get(value)
        if inner is None:
            inner = _inline(text(value))
            if len(known) < KNOWN_TEXTS:
                known[value] = inner
        return f'<c r="{column}{row}" t="inlineStr">{inner}</c>' if inner else ""

    return cell


def _inline(text: str) -> str:
    return f"<is>{text_element(text)}</is>" if text else ""


def text_element(text: str) -> str:
    """The ``<t>`` element of ``text``, escaped, keeping its outer spaces."""
    if "_x" in text:
        text = _LOOKS_ESCAPED.sub(r"_x005F_\1", text)
    text = text.translate(_ESCAPES)
    if text[0].isspace() or text[-1].isspace():
        return f'<t xml:space="preserve">{text}</t>'
    return f"<t>{text}</t>"


def date_cell(index: int) -> Cell:
    """Cells of a ``datetime.date`` column: Excel's day number, shown yyyy-mm-dd."""
    column = letters(index)

    def cell(value, row: str) -> str:
        if value is None:
            return ""
        day = value.toordinal() - EPOCH_ORDINAL
        return f'<c r="{column}{row}" s="{DATE_STYLE}"><v>{day}</v></c>'

    return cell


def datetime_cell(index: int) -> Cell:
    """Cells of a naive local ``datetime`` column: Excel's day number and fraction of a
    day (the float openpyxl writes), shown yyyy-mm-ddThh:mm."""
    column = letters(index)

    def cell(value, row: str) -> str:
        if value is None:
            return ""
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        serial = value.toordinal() - EPOCH_ORDINAL + (seconds + value.microsecond / 10**6) / 86400
        return f'<c r="{column}{row}" s="{DATETIME_STYLE}"><v>{serial!r}</v></c>'

    return cell


def write_sheet(
    stream: BinaryIO,
    header: list[str],
    cells: list[tuple[object, Cell]],
    rows: Iterable,
    *,
    large: bool = False,
) -> None:
    """Write the workbook to ``stream``: one sheet named "registry", the ``header`` in
    row 1, then one row for each of ``rows``, its cells written by ``cells``: for each
    column, (key of its value in a row, its cell function). ``large``: the sheet's XML
    may pass 4 GiB (zip64)."""
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as book:
        for name, xml in PARTS.items():
            book.writestr(name, HEAD + xml)
        book.writestr("xl/workbook.xml", HEAD + _workbook())
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=large) as sheet:
            _write_rows(sheet, header, cells, rows)


def _workbook() -> str:
    return (
        f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}">'
        '<sheets><sheet name="registry" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


def _always(cell: Cell, index: int) -> Cell:
    """``cell``, written even when empty: every row then reaches the last column, which
    readers that go by the rows' cells (openpyxl's read-only mode) need for full rows."""
    column = letters(index)
    return lambda value, row: cell(value, row) or f'<c r="{column}{row}"/>'


def _write_rows(sheet: BinaryIO, header: list[str], cells: list[tuple[object, Cell]], rows):
    heading = [text_cell(k)(name, "1") for k, name in enumerate(header)]
    sheet.write(f'{HEAD}<worksheet xmlns="{MAIN}"><sheetData><row r="1">'.encode())
    pending = ["".join(heading), "</row>"]
    cells = [*cells[:-1], (cells[-1][0], _always(cells[-1][1], len(cells) - 1))]
    for number, values in enumerate(rows, start=2):
        row = str(number)
        pending.append(f'<row r="{row}">')
        pending.append("".join([cell(values[key], row) for key, cell in cells]))
        pending.append("</row>")
        if len(pending) >= 3 * ROWS_PER_WRITE:
            sheet.write("".join(pending).encode())
            pending.clear()
    pending.append("</sheetData></worksheet>")
    sheet.write("".join(pending).encode())
