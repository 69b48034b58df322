"""De-identification by a declared policy: each interchange column's category decides
what the de-identified export keeps (columns.PRIVACY, exporter.deidentified_treatment)."""

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from registry.interchange import columns as interchange
from registry.interchange import dictionary, exporter
from registry.interchange.exporter import registry_export
from registry.interchange.importer import registry_import

from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db
DOCS = Path(__file__).resolve().parent.parent / "docs" / "import-export.md"


def exported(deidentified=True, fmt="csv") -> list[dict]:
    content = registry_export(user=None, fmt=fmt, deidentified=deidentified).content
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def test_every_interchange_column_declares_its_privacy_category():
    undeclared = interchange.undeclared_columns()
    assert undeclared == [], (
        "declare these columns' category in registry/interchange/columns.py (PRIVACY)"
    )
    stale = set(interchange.PRIVACY) - set(interchange.column_names())
    assert stale == set(), "PRIVACY names columns that do not exist"


def test_an_undeclared_column_stops_the_deidentified_export_and_not_the_identifiable_one(
    site_a, tmp_path, monkeypatch
):
    assert registry_import(file=write_csv(tmp_path, [row()]), filename="p.csv").ok
    monkeypatch.delitem(interchange.PRIVACY, "nihss_admission")
    with pytest.raises(ImproperlyConfigured, match="nihss_admission"):
        registry_export(user=None, fmt="csv", deidentified=True)
    assert exported(deidentified=False)[0]["nihss_admission"] == "18"


def test_free_text_leaves_only_in_the_identifiable_export(site_a, tmp_path):
    path = write_csv(tmp_path, [row(stent_device="Acclino 4.0 x 25, Mrs Lan's husband")])
    assert registry_import(file=path, filename=path.name).ok
    (deidentified,) = exported()
    assert "stent_device" not in deidentified
    assert "Mrs Lan" not in str(deidentified)
    assert exported(deidentified=False)[0]["stent_device"].endswith("husband")


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "dta"])
def test_ages_of_90_and_over_are_top_coded_to_90(site_a, tmp_path, fmt):
    rows = [row(study_id="T-089", age_years=89), row(study_id="T-097", age_years=97)]
    rows.append(row(study_id="T-120", age_years=120))
    assert registry_import(file=write_csv(tmp_path, rows), filename="p.csv").ok
    content = registry_export(user=None, fmt=fmt, deidentified=True).content
    if fmt == "csv":
        ages = sorted(int(r["age_years"]) for r in exported())
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        (tmp_path / "x.xlsx").write_bytes(content)
        sheet = load_workbook(tmp_path / "x.xlsx").worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        index = values[0].index("age_years")
        ages = sorted(v[index] for v in values[1:])
    else:
        import pandas as pd

        (tmp_path / "x.dta").write_bytes(content)
        ages = sorted(pd.read_stata(tmp_path / "x.dta")["age_years"].astype(int))
    assert ages == [89, 90, 90]
    identifiable = sorted(int(r["age_years"]) for r in exported(deidentified=False))
    assert identifiable == [89, 97, 120]


def test_the_deidentified_export_keeps_exactly_what_the_policy_says(site_a, tmp_path):
    assert registry_import(file=write_csv(tmp_path, [row()]), filename="p.csv").ok
    (out,) = exported()
    for column in interchange.columns():
        treatment = exporter.deidentified_treatment(column)
        if treatment in (exporter.KEPT, exporter.TOP_CODE):
            assert column.name in out, column.name
        elif treatment == exporter.OFFSET:
            assert column.name not in out and exporter.offset_name(column) in out
        else:
            assert column.name not in out, column.name
    assert re.fullmatch(r"X\d{4}", out["pseudo_id"])
    dates = [value for value in out.values() if re.search(r"\d{4}-\d{2}-\d{2}", value)]
    assert dates == []


def test_the_data_dictionary_shows_each_columns_category_and_treatment(client, nurse):
    entries = {entry.name: entry for entry in dictionary.entries()}
    assert entries["study_id"].privacy == "identifier"
    assert entries["stent_device"].privacy == "free_text"
    assert entries["stent_device"].deidentified_export == "dropped"
    assert entries["age_years"].deidentified_export == "top-coded: 90 means 90 or more"
    assert entries["discharge_date"].deidentified_export.startswith("discharge_days_from_door")
    assert entries["nihss_admission"].privacy == "clinical"
    header = dictionary.as_csv().splitlines()[0]
    assert header.endswith(",privacy,deidentified_export")
    client.force_login(nurse)
    page = client.get("/interchange/dictionary/").content.decode()
    assert "quasi_identifier" in page and "top-coded" in page


def test_the_operators_documentation_lists_every_column_with_its_treatment():
    text = DOCS.read_text()
    table = text[text.index("| column | category |") :]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    assert set(rows) == set(interchange.column_names())
    for column in interchange.columns():
        name, category, identifiable, deidentified = rows[column.name]
        assert category == column.privacy.replace("_", "-"), column.name
        assert identifiable == "kept", column.name
        assert deidentified.startswith(exporter.deidentified_treatment(column)), column.name
