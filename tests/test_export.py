"""Exports: the round trip, Stata labels, de-identification, CSV injection, access, queries."""

import csv
import io

import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from registry import demo
from registry.interchange import columns as interchange
from registry.interchange.exporter import offset_name, registry_export
from registry.interchange.importer import registry_import
from registry.models import ExportLog, Patient, Procedure

from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db


def csv_rows(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def test_export_import_export_gives_byte_identical_csv(demo_cohort, tmp_path):
    Procedure.objects.filter(patient__study_id="DEMO-001").update(stent_device="=1+1 (odd name)")
    first = registry_export(user=None, fmt="csv", deidentified=False).content
    Patient.objects.all().delete()
    path = tmp_path / "export.csv"
    path.write_bytes(first)
    result = registry_import(file=path, filename=path.name)
    assert result.ok and result.created == 85, result.problems[:3]
    assert Procedure.objects.get(patient__study_id="DEMO-001").stent_device == "=1+1 (odd name)"
    second = registry_export(user=None, fmt="csv", deidentified=False).content
    assert second == first


def test_the_csv_has_exactly_the_interchange_columns_in_contract_order(demo_cohort):
    content = registry_export(user=None, fmt="csv", deidentified=False).content
    header = content.decode().splitlines()[0].split(",")
    assert header == list(interchange.column_names())
    assert len(csv_rows(content)) == 85


def test_the_xlsx_export_reimports_without_changes(demo_cohort, tmp_path):
    content = registry_export(user=None, fmt="xlsx", deidentified=False).content
    path = tmp_path / "export.xlsx"
    path.write_bytes(content)
    result = registry_import(file=path, filename=path.name)
    assert result.ok, result.problems[:3]
    assert (result.created, result.changed, result.unchanged) == (0, 0, 85)
    header = next(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    assert list(header) == list(interchange.column_names())


def test_the_stata_file_has_variable_labels_value_labels_and_dates(demo_cohort, tmp_path):
    path = tmp_path / "export.dta"
    path.write_bytes(registry_export(user=None, fmt="dta", deidentified=False).content)
    frame = pd.read_stata(path)
    assert len(frame) == 85
    assert list(frame.columns) == list(interchange.column_names())
    with pd.io.stata.StataReader(path) as reader:
        variable_labels = reader.variable_labels()
        value_labels = reader.value_labels()
    assert variable_labels["age_years"] == "age (years)"
    assert variable_labels["swi_clot"] == "clot on SWI (susceptibility vessel sign)"
    for column in interchange.columns():
        if column.kind in (interchange.FLAG, interchange.CATEGORY):
            assert column.name in value_labels, column.name
    assert set(value_labels["ich"].values()) == {"no", "yes"}
    assert set(value_labels["circulation"].values()) == {"Anterior", "Posterior"}
    assert str(frame["door_time"].dtype).startswith("datetime64")
    assert str(frame["discharge_date"].dtype).startswith("datetime64")
    first = frame.set_index("study_id").loc["DEMO-001"]
    assert first["circulation"] in ("Anterior", "Posterior")
    assert first["admission_mrs"] == 5


def test_a_deidentified_csv_has_no_study_id_and_no_dates(demo_cohort):
    content = registry_export(user=None, fmt="csv", deidentified=True).content
    rows = csv_rows(content)
    header = list(rows[0])
    assert "study_id" not in header and "pseudo_id" in header
    dated = [c for c in interchange.columns() if c.kind in (interchange.DATE, interchange.DATETIME)]
    assert not set(c.name for c in dated) & set(header)
    assert "door_time" not in header and "onset_min_from_door" in header
    assert {"age_years", "site"} <= set(header)
    text = content.decode()
    assert "DEMO-" not in text
    assert not any(year in text for year in ("2019-", "2020-", "2021-"))
    assert all(r["onset_min_from_door"].lstrip("-").isdigit() for r in rows)
    assert sorted(r["pseudo_id"] for r in rows) == [f"X{n:04d}" for n in range(1, 86)]
    assert [offset_name(c) for c in dated if c.name != "door_time"] == [
        "onset_min_from_door",
        "groin_puncture_min_from_door",
        "procedure_end_min_from_door",
        "discharge_days_from_door",
        "followup_days_from_door",
        "death_days_from_door",
        "imaging_min_from_door",
        "needle_min_from_door",
        "reperfusion_min_from_door",
    ]


def test_deidentified_offsets_count_minutes_and_days_from_the_door(site_a, tmp_path):
    path = write_csv(tmp_path, [row()])
    assert registry_import(file=path, filename=path.name).ok
    (exported,) = csv_rows(registry_export(user=None, fmt="csv", deidentified=True).content)
    assert exported["onset_min_from_door"] == "-240"
    assert exported["groin_puncture_min_from_door"] == "60"
    assert exported["procedure_end_min_from_door"] == "110"
    assert exported["discharge_days_from_door"] == "11"
    assert exported["death_days_from_door"] == ""


def test_a_deidentified_stata_file_has_no_study_id_and_no_dates(demo_cohort, tmp_path):
    path = tmp_path / "export.dta"
    path.write_bytes(registry_export(user=None, fmt="dta", deidentified=True).content)
    frame = pd.read_stata(path)
    assert "study_id" not in frame.columns
    assert not any(str(t).startswith("datetime") for t in frame.dtypes)


def test_pseudonyms_differ_between_exports(demo_cohort):
    def mapping():
        content = registry_export(user=None, fmt="csv", deidentified=True).content
        return [(r["pseudo_id"], r["age_years"], r["nihss_admission"]) for r in csv_rows(content)]

    assert mapping() != mapping()


def test_formula_like_free_text_is_neutralised_in_csv_and_xlsx(site_a, tmp_path):
    path = write_csv(tmp_path, [row(stent_device='=HYPERLINK("http://x","y")')])
    assert registry_import(file=path, filename=path.name).ok
    (exported,) = csv_rows(registry_export(user=None, fmt="csv", deidentified=False).content)
    assert exported["stent_device"] == '\'=HYPERLINK("http://x","y")'
    assert exported["study_id"] == "T-001"
    xlsx = tmp_path / "x.xlsx"
    xlsx.write_bytes(registry_export(user=None, fmt="xlsx", deidentified=False).content)
    values = list(load_workbook(xlsx).active.iter_rows(values_only=True))
    column = list(values[0]).index("stent_device")
    assert values[1][column].startswith("'=")


@pytest.mark.parametrize("text", ["+1", "-1", "@SUM(A1)", "\tx"])
def test_every_formula_prefix_is_neutralised(text):
    column = interchange.by_name()["stent_device"]
    assert interchange.format_value(column, text) == "'" + text
    assert interchange.parse(column, "'" + text) == text


def test_a_lone_carriage_return_in_free_text_is_quoted_and_reads_back(demo_cohort):
    first = Procedure.objects.order_by("pk").first()
    Procedure.objects.filter(pk=first.pk).update(stent_device="carriage\rreturn")
    content = registry_export(user=None, fmt="csv", deidentified=False).content
    assert b'"carriage\rreturn"' in content
    assert "carriage\rreturn" in [r["stent_device"] for r in csv_rows(content)]


def test_an_investigator_gets_a_deidentified_export_by_default_and_it_is_logged(
    demo_cohort, investigator
):
    investigator.sites.add(*[p.site for p in Patient.objects.all()[:1]])
    export = registry_export(user=investigator, fmt="csv")
    assert not export.identifiable
    assert "study_id" not in csv_rows(export.content)[0]
    log = ExportLog.objects.get()
    assert (log.user, log.identifiable, log.n_patients, log.format) == (
        investigator,
        False,
        85,
        "csv",
    )


def test_an_identifiable_export_is_forbidden_to_an_investigator(demo_cohort, investigator):
    with pytest.raises(PermissionDenied):
        registry_export(user=investigator, fmt="csv", deidentified=False)
    assert not ExportLog.objects.exists()


@pytest.mark.parametrize("role_fixture", ["nurse", "monitor"])
def test_roles_without_export_rights_get_no_export(demo_cohort, request, role_fixture):
    with pytest.raises(PermissionDenied):
        registry_export(user=request.getfixturevalue(role_fixture), fmt="csv")


def test_an_admins_identifiable_export_is_audited_with_who(demo_cohort, admin_user):
    export = registry_export(user=admin_user, fmt="csv", deidentified=False, via="web")
    assert export.identifiable
    log = ExportLog.objects.get()
    assert (log.user, log.identifiable, log.via) == (admin_user, True, "web")


def test_an_investigator_exports_only_patients_of_their_sites(demo_cohort, investigator):
    export = registry_export(user=investigator, fmt="csv")
    assert export.n_patients == 0  # investigator_a belongs to site A, the cohort to SIS


def test_the_number_of_queries_does_not_grow_with_the_number_of_patients(site_a, tmp_path):
    def queries_for(n):
        Patient.objects.all().delete()
        rows = [row(study_id=f"Q-{i:03d}") for i in range(n)]
        assert registry_import(file=write_csv(tmp_path, rows), filename="q.csv").ok
        with CaptureQueriesContext(connection) as context:
            registry_export(user=None, fmt="csv", deidentified=False)
        return len(context.captured_queries)

    assert queries_for(2) == queries_for(40)


def test_the_export_command_writes_a_file_and_logs_it(demo_cohort, tmp_path):
    out = tmp_path / "all.csv"
    call_command("export_registry", "--output", str(out), "--site", demo.SITE_CODE)
    assert len(csv_rows(out.read_bytes())) == 85
    log = ExportLog.objects.get()
    assert (log.via, log.identifiable, log.site.code) == ("command", True, demo.SITE_CODE)


def test_the_export_command_writes_to_its_output_file_or_else_to_standard_output(
    demo_cohort, tmp_path, capsysbinary
):
    out = tmp_path / "all.csv"
    call_command("export_registry", "--output", str(out))
    assert capsysbinary.readouterr().out == b""
    call_command("export_registry")
    assert capsysbinary.readouterr().out == out.read_bytes()


def test_the_export_command_as_an_investigator_is_deidentified(demo_cohort, investigator, tmp_path):
    out = tmp_path / "x.csv"
    call_command("export_registry", "--user", investigator.username, "--output", str(out))
    assert "study_id" not in out.read_text().splitlines()[0].split(",")
    log = ExportLog.objects.get()
    assert (log.user, log.identifiable) == (investigator, False)


def test_the_export_command_writes_stata(demo_cohort, tmp_path):
    out = tmp_path / "all.dta"
    call_command("export_registry", "--format", "dta", "--deidentified", "--output", str(out))
    assert len(pd.read_stata(out)) == 85


def test_the_export_command_writes_to_its_output_file_only(demo_cohort, tmp_path, capsysbinary):
    out = tmp_path / "all.csv"
    call_command("export_registry", "--output", str(out))
    assert capsysbinary.readouterr().out == b""
    assert len(csv_rows(out.read_bytes())) == 85


def test_the_export_command_without_an_output_file_writes_to_standard_output(
    demo_cohort, capsysbinary
):
    call_command("export_registry")
    assert len(csv_rows(capsysbinary.readouterr().out)) == 85
