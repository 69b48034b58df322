"""The data dictionary is generated from the models and covers every field."""

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from registry import rules
from registry.interchange import columns as interchange
from registry.interchange import dictionary
from registry.models import SECTION_MODELS, Patient

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "interchange-columns.md"


def names() -> list[str]:
    return [entry.name for entry in dictionary.entries()]


def test_every_clinical_field_of_every_section_model_is_in_the_dictionary():
    for model in SECTION_MODELS:
        for field in model.clinical_fields():
            assert field in names(), f"{model.__name__}.{field} is missing"


def test_the_patients_own_contract_fields_are_in_the_dictionary():
    patient_fields = {f.name for f in Patient._meta.concrete_fields}
    assert {"study_id", "site", "sex", "age_years"} <= patient_fields
    assert names()[:4] == ["study_id", "site", "sex", "age_years"]


def test_the_dictionary_follows_the_interchange_columns_exactly():
    assert names() == list(interchange.column_names())


@pytest.mark.skipif(not SPEC.exists(), reason="the shared spec is not checked out")
def test_the_interchange_columns_are_those_of_the_contract_in_its_order():
    text = SPEC.read_text()
    table = re.findall(r"^\| ([a-z0-9_]+) \|", text, flags=re.MULTILINE)
    # The contract's later columns follow the table, in the order its sentence gives.
    added = re.search(r"follow `death_date`, in this order: ([^.]+)\.", text)
    later = re.findall(r"`([a-z0-9_]+)`", added.group(1)) if added else []
    assert list(interchange.column_names()) == table[1:] + later  # [0]: the header


def test_an_entry_has_codes_with_labels_ranges_and_branching():
    entries = {e.name: e for e in dictionary.entries()}
    assert "anterior = Anterior" in entries["circulation"].codes
    assert entries["ich"].codes == "1 = yes; 0 = no"
    assert (entries["nihss_admission"].min, entries["nihss_admission"].max) == ("0", "42")
    assert entries["mt_passes"].applies_when == "mt_performed = 1"
    assert entries["pc_aspects"].applies_when == "circulation = posterior"
    assert entries["sich"].help_text.startswith("Symptomatic ICH")
    assert entries["sich"].section == "complications"
    for name, (low, high) in rules.RANGES.items():
        assert (entries[name].min, entries[name].max) == (str(low), str(high))


def test_the_command_prints_one_csv_row_per_variable(capsys):
    call_command("data_dictionary", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == names()
    assert list(rows[0]) == list(dictionary.FIELDS)


def test_the_command_prints_a_markdown_table(capsys):
    call_command("data_dictionary", "--format", "md")
    out = capsys.readouterr().out
    assert out.count("\n| ") == len(names()) + 1  # header + one line per variable
    assert "| mrs_3m | followup |" in out


def test_the_vietnamese_dictionary_translates_labels_but_never_names_or_codes(capsys):
    call_command("data_dictionary", "--format", "csv")
    english = {r["name"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    call_command("data_dictionary", "--format", "csv", "--language", "vi")
    vietnamese = {r["name"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert list(vietnamese) == list(english)
    assert english["door_time"]["label"] == "door time"
    assert vietnamese["door_time"]["label"] == "thời điểm nhập viện"
    for name, row in vietnamese.items():
        assert (row["section"], row["type"], row["min"], row["max"], row["privacy"]) == (
            english[name]["section"],
            english[name]["type"],
            english[name]["min"],
            english[name]["max"],
            english[name]["privacy"],
        )
        codes = [part.split("=")[0] for part in row["codes"].split("; ") if part]
        assert codes == [part.split("=")[0] for part in english[name]["codes"].split("; ") if part]
