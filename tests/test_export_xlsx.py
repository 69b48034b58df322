"""The xlsx export read back holds what the CSV export holds, cell for cell."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from registry.interchange import columns as interchange
from registry.interchange import exporter, xlsxsheet
from registry.interchange.exporter import out_columns, registry_export
from registry.models import Patient

from .drawn_cohort import awkward_cohort

pytestmark = pytest.mark.django_db

EDGES = [
    "=1+1",
    "=HYPERLINK(1)",
    "-4",
    "@x",
    "\tindented",
    "two\nlines",
    "carriage\rreturn",
    "crlf\r\nend",
    "Nguyễn Văn Ánh — ổn định",
    "  spaced  ",
    "<b>&amp;</b>",
    "'quoted'",
    "",
    "long text " * 20,  # the field's 200 characters, ending with a space
]


@pytest.fixture
def fixed_key(monkeypatch):
    """The de-identified order's key, the same for the CSV and the xlsx compared."""
    monkeypatch.setattr(exporter.secrets, "token_hex", lambda n: "5e" * n)


def edge_cohort() -> None:
    """The awkward cohort with the formula-like and long texts of ``EDGES``, its times in
    whole seconds (openpyxl reads a time back to the millisecond)."""
    awkward_cohort(texts=EDGES, whole_seconds=True)


def as_csv_text(kind: str, value) -> str:
    """A cell read back from the workbook as the CSV writes its value."""
    if value is None:
        return ""
    if kind == interchange.DATETIME:
        return value.strftime(interchange.DATETIME_FORMAT)
    if kind == interchange.DATE:
        return value.date().isoformat()
    return str(value)


def both_files(deidentified: bool, tmp_path) -> tuple[list[list[str]], list[tuple]]:
    """The CSV's rows and the xlsx's rows (values as openpyxl reads them)."""
    export = registry_export(user=None, fmt="csv", deidentified=deidentified)
    text = export.content.decode("utf-8")
    path = tmp_path / "registry.xlsx"
    registry_export(user=None, fmt="xlsx", deidentified=deidentified).write_to(path.open("wb"))
    book = load_workbook(path, read_only=True)
    sheet_rows = list(book["registry"].iter_rows(values_only=True))
    book.close()
    return list(csv.reader(io.StringIO(text, newline=""))), sheet_rows


@pytest.mark.parametrize("deidentified", [False, True])
def test_the_workbook_read_back_holds_the_csvs_values_cell_for_cell(
    deidentified, tmp_path, fixed_key
):
    edge_cohort()
    csv_rows, sheet_rows = both_files(deidentified, tmp_path)
    kinds = [c.kind for c in out_columns(deidentified)]
    assert list(sheet_rows[0]) == csv_rows[0]
    assert len(sheet_rows) == len(csv_rows) == Patient.objects.count() + 1
    read_back = [
        [as_csv_text(k, v) for k, v in zip(kinds, row, strict=True)] for row in sheet_rows[1:]
    ]
    assert read_back == csv_rows[1:]


def test_numbers_and_dates_are_typed_cells_and_free_text_is_never_a_formula(tmp_path):
    edge_cohort()
    path = tmp_path / "registry.xlsx"
    registry_export(user=None, fmt="xlsx", deidentified=False).write_to(path.open("wb"))
    sheet = load_workbook(path)["registry"]
    header = [cell.value for cell in sheet[1]]
    column = {name: k for k, name in enumerate(header)}
    devices = [row[column["stent_device"]] for row in sheet.iter_rows(min_row=2)]
    assert "'=1+1" in [cell.value for cell in devices]
    assert {cell.data_type for cell in devices} <= {"s", "n"}
    ages = [row[column["age_years"]].value for row in sheet.iter_rows(min_row=2)]
    assert all(isinstance(age, int) for age in ages if age is not None)
    doors = [row[column["door_time"]].value for row in sheet.iter_rows(min_row=2)]
    assert all(isinstance(door, dt.datetime) for door in doors if door is not None)


def test_text_that_looks_like_a_formula_is_kept_as_text_by_the_sheet_writer(tmp_path):
    path = tmp_path / "sheet.xlsx"
    cells = [(0, xlsxsheet.text_cell(0)), (1, xlsxsheet.number_cell(1))]
    rows = [["=1+1", 7], ["  x & <y>\r", None], ["", True]]
    with path.open("wb") as stream:
        xlsxsheet.write_sheet(stream, ["text", "number"], cells, rows, large=True)
    sheet = load_workbook(path)["registry"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values == [["text", "number"], ["=1+1", 7], ["  x & <y>\r", None], [None, 1]]
    assert sheet["A2"].data_type == "s"


def test_column_letters_go_past_z_as_in_a_spreadsheet():
    assert [xlsxsheet.letters(k) for k in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
