"""Bulk import: every contract rule rejected with its row and column, all or nothing."""

import datetime as dt

import pytest
from django.core.management import call_command
from openpyxl import Workbook

from registry import rules
from registry.choices import SectionStatus
from registry.interchange import columns as interchange
from registry.interchange.importer import registry_import
from registry.models import (
    SECTION_MODELS,
    Admission,
    FollowUp,
    Imaging,
    Patient,
    PatientLock,
    Procedure,
    Site,
)

from .interchange_rows import VALID, csv_text, row, write_csv

pytestmark = pytest.mark.django_db


def run(tmp_path, rows, user=None, header=None, **kwargs):
    path = write_csv(tmp_path, rows, header=header)
    return registry_import(file=path, user=user, filename=path.name, **kwargs)


def problems_of(result) -> list[str]:
    return [str(p) for p in result.problems]


def has_problem(result, row_number, columns) -> bool:
    return any(p.row == row_number and set(p.columns) == set(columns) for p in result.problems)


# --- the happy path ----------------------------------------------------------------------


def test_a_valid_row_creates_a_patient_with_every_section_complete(tmp_path, site_a, admin_user):
    result = run(tmp_path, [row()], user=admin_user)
    assert result.ok, problems_of(result)
    assert (result.created, result.changed, result.unchanged) == (1, 0, 0)
    patient = Patient.objects.get(study_id="T-001")
    assert patient.site == site_a and patient.age_years == 63
    for key, section in patient.sections().items():
        assert section is not None, key
        assert section.status == SectionStatus.COMPLETE
        assert section.completed_by == admin_user
    assert patient.procedure.mtici_after_mt == "2a"
    assert patient.admission.door_time.isoformat() == "2020-06-01T05:00:00+00:00"


def test_history_entries_name_the_importing_user_and_the_file(tmp_path, site_a, admin_user):
    run(tmp_path, [row()], user=admin_user)
    entry = Admission.history.get()
    assert entry.history_user == admin_user
    assert entry.history_change_reason == "import of patients.csv"
    assert Patient.history.get().history_change_reason == "import of patients.csv"


def test_a_section_with_some_values_is_draft_and_an_empty_section_is_not_created(tmp_path, site_a):
    header = ["study_id", "site", "sex", "age_years", "door_time", "nihss_admission"]
    result = run(tmp_path, [row()], header=header)
    assert result.ok, problems_of(result)
    patient = Patient.objects.get()
    assert patient.admission.status == SectionStatus.DRAFT
    assert patient.admission.onset_time is None  # a missing column means blank
    assert not Imaging.objects.exists() and not FollowUp.objects.exists()


def test_a_blank_cell_means_not_recorded(tmp_path, site_a):
    result = run(tmp_path, [row(smoking="")])
    assert result.ok
    admission = Admission.objects.get()
    assert admission.smoking is None
    assert admission.status == SectionStatus.DRAFT


def test_an_offset_after_a_date_time_is_honoured(tmp_path, site_a):
    result = run(tmp_path, [row(onset_time="2020-06-01T01:00+00:00")])
    assert result.ok, problems_of(result)
    assert Admission.objects.get().onset_time == dt.datetime(2020, 6, 1, 1, 0, tzinfo=dt.UTC)


def test_a_dry_run_counts_but_writes_nothing(tmp_path, site_a):
    result = run(tmp_path, [row(), row(study_id="T-002")], dry_run=True)
    assert result.ok and result.created == 2
    assert not Patient.objects.exists()


# --- the header and the file's own consistency ------------------------------------------


def test_an_unknown_column_is_reported_and_nothing_is_written(tmp_path, site_a):
    header = [*interchange.column_names(), "favourite_colour"]
    result = run(tmp_path, [row()], header=header)
    assert problems_of(result) == ["header, column favourite_colour: unknown column."]
    assert not Patient.objects.exists()


def test_a_duplicated_column_is_reported(tmp_path, site_a):
    header = [*interchange.column_names(), "smoking"]
    result = run(tmp_path, [row()], header=header)
    assert problems_of(result) == ["header, column smoking: duplicated column."]


def test_a_missing_required_column_is_reported(tmp_path, site_a):
    header = [c for c in interchange.column_names() if c != "sex"]
    result = run(tmp_path, [row()], header=header)
    assert problems_of(result) == ["header, column sex: required column is missing."]


def test_a_duplicated_study_id_names_the_second_row(tmp_path, site_a):
    result = run(tmp_path, [row(), row(study_id="T-002"), row()])
    assert problems_of(result) == [
        "row 3, column study_id: T-001 is duplicated in the file (first in row 1)."
    ]


def test_an_unknown_site_is_reported_with_its_row(tmp_path, site_a):
    result = run(tmp_path, [row(), row(study_id="T-002", site="ZZ")])
    assert len(result.problems) == 1
    assert str(result.problems[0]).startswith("row 2, column site: unknown site code 'ZZ'")


def test_create_sites_creates_an_unknown_site_code(tmp_path, site_a):
    result = run(tmp_path, [row(site="NEW")], create_sites=True)
    assert result.ok and result.sites_created == ["NEW"]
    assert Patient.objects.get().site.code == "NEW"


@pytest.mark.parametrize(
    "column, value",
    [("study_id", "bad id!"), ("study_id", ""), ("sex", ""), ("age_years", ""), ("site", "")],
)
def test_a_required_or_malformed_patient_value_is_reported(tmp_path, site_a, column, value):
    result = run(tmp_path, [row(**{column: value})])
    assert has_problem(result, 1, [column]), problems_of(result)


# --- single-column rules: ranges, codes, encodings ---------------------------------------

# Values other fields need so that the tested field applies (branching).
APPLIES = {
    "pc_aspects": {"circulation": "posterior", "dwi_aspects": ""},
    "death_date": {"mrs_3m": "6"},
}


@pytest.mark.parametrize("column", sorted(rules.RANGES))
@pytest.mark.parametrize("side", ["below", "above"])
def test_a_value_outside_its_range_is_rejected_with_row_and_column(tmp_path, site_a, column, side):
    low, high = rules.RANGES[column]
    value = low - 1 if side == "below" else high + 1
    result = run(
        tmp_path, [row(), row(study_id="T-002", **APPLIES.get(column, {}), **{column: value})]
    )
    assert has_problem(result, 2, [column]), problems_of(result)
    assert not Patient.objects.exists()


CATEGORY_COLUMNS = [c.name for c in interchange.columns() if c.kind == interchange.CATEGORY]
FLAG_COLUMNS = [c.name for c in interchange.columns() if c.kind == interchange.FLAG]
DATE_COLUMNS = [
    c.name for c in interchange.columns() if c.kind in (interchange.DATE, interchange.DATETIME)
]


@pytest.mark.parametrize("column", CATEGORY_COLUMNS)
def test_an_unknown_code_is_rejected_with_row_and_column(tmp_path, site_a, column):
    result = run(tmp_path, [row(**{column: "Bogus"})])
    assert has_problem(result, 1, [column]), problems_of(result)
    assert "unknown code 'Bogus'" in problems_of(result)[0]


def test_codes_are_lower_case_only(tmp_path, site_a):
    result = run(tmp_path, [row(circulation="Anterior")])
    assert has_problem(result, 1, ["circulation"])


@pytest.mark.parametrize("column", FLAG_COLUMNS)
def test_a_flag_other_than_1_or_0_is_rejected(tmp_path, site_a, column):
    result = run(tmp_path, [row(**{column: "yes"})])
    assert has_problem(result, 1, [column]), problems_of(result)


@pytest.mark.parametrize("column", DATE_COLUMNS)
def test_a_date_not_in_iso_format_is_rejected(tmp_path, site_a, column):
    result = run(tmp_path, [row(**APPLIES.get(column, {}), **{column: "01/06/2020"})])
    assert has_problem(result, 1, [column]), problems_of(result)


def test_a_non_integer_is_rejected(tmp_path, site_a):
    result = run(tmp_path, [row(nihss_admission="12.5")])
    assert problems_of(result) == [
        "row 1, column nihss_admission: a whole number is expected, not '12.5'."
    ]


def test_too_long_free_text_is_rejected(tmp_path, site_a):
    result = run(tmp_path, [row(stent_device="x" * 201)])
    assert has_problem(result, 1, ["stent_device"])


# --- cross-field rules -------------------------------------------------------------------

RULE_CASES = {
    "door_after_onset": {"door_time": "2020-06-01T07:00"},
    "groin_after_door": {"groin_puncture_time": "2020-06-01T11:00"},
    "end_after_groin": {"procedure_end_time": "2020-06-01T13:00", "reperfusion_time": ""},
    "imaging_after_door": {"imaging_time": "2020-06-01T11:30"},
    "needle_after_door": {"iv_thrombolysis": "1", "needle_time": "2020-06-01T11:30"},
    "reperfusion_after_groin": {"reperfusion_time": "2020-06-01T12:30"},
    "reperfusion_by_procedure_end": {"reperfusion_time": "2020-06-01T14:00"},
    "needle_time_only_when_iv_thrombolysis": {"needle_time": "2020-06-01T12:30"},
    "reperfusion_time_only_when_final_mtici": {"final_mtici": "2a"},
    "discharge_after_door": {"discharge_date": "2020-05-31"},
    "followup_after_discharge": {"followup_date": "2020-06-12"},
    "death_after_door": {"mrs_3m": "6", "death_date": "2020-05-30"},
    "sich_requires_ich": {"sich": "1", "ich": "0"},
    "mrs6_iff_death": {"mrs_3m": "6", "death_date": ""},
    "dwi_aspects_only_when_circulation": {"circulation": "posterior", "pc_aspects": "8"},
    "pc_aspects_only_when_circulation": {"pc_aspects": "8"},
    "mt_technique_only_when_mt_performed": {
        "mt_performed": "0",
        "mt_passes": "",
        "mtici_after_mt": "",
    },
    "mt_passes_only_when_mt_performed": {
        "mt_performed": "0",
        "mt_technique": "",
        "mtici_after_mt": "",
    },
    "mtici_after_mt_only_when_mt_performed": {
        "mt_performed": "0",
        "mt_technique": "",
        "mt_passes": "",
    },
}


def test_every_cross_field_rule_has_an_import_case():
    assert set(RULE_CASES) == {rule.code for rule in rules.RULES if not rule.is_warning}


@pytest.mark.parametrize("code", sorted(RULE_CASES))
def test_a_broken_cross_field_rule_names_the_row_and_the_columns_involved(tmp_path, site_a, code):
    rule = next(r for r in rules.RULES if r.code == code)
    result = run(tmp_path, [row(), row(study_id="T-002", **RULE_CASES[code])])
    assert has_problem(result, 2, rule.fields), problems_of(result)
    assert len(result.problems) == 1, problems_of(result)
    label = "columns " + ", ".join(rule.fields)
    assert problems_of(result)[0] == f"row 2, {label}: {rule.message}"
    assert not Patient.objects.exists()


def test_branch_rules_sharing_one_message_each_name_their_own_column(tmp_path, site_a):
    result = run(tmp_path, [row(mt_performed="0", mtici_after_mt="")])
    assert sorted(p.columns for p in result.problems) == [
        ("mt_passes", "mt_performed"),
        ("mt_technique", "mt_performed"),
    ], problems_of(result)


# --- all or nothing, re-import -----------------------------------------------------------


def test_one_bad_row_among_good_ones_writes_nothing(tmp_path, site_a):
    rows = [row(study_id=f"T-{n:03d}") for n in range(1, 6)]
    rows[3]["mrs_3m"] = "9"
    result = run(tmp_path, rows)
    assert [p.row for p in result.problems] == [4]
    assert not Patient.objects.exists()
    assert not Admission.objects.exists()


def test_a_reimport_of_the_same_file_changes_nothing_and_adds_no_history(tmp_path, site_a):
    rows = [row(study_id=f"T-{n:03d}") for n in range(1, 4)]
    run(tmp_path, rows)
    counts = [m.history.count() for m in (Patient, *SECTION_MODELS)]
    versions = list(Procedure.objects.values_list("version", flat=True))
    result = run(tmp_path, rows)
    assert (result.created, result.changed, result.unchanged) == (0, 0, 3)
    assert [m.history.count() for m in (Patient, *SECTION_MODELS)] == counts
    assert list(Procedure.objects.values_list("version", flat=True)) == versions


def test_a_changed_value_updates_only_its_section_with_one_history_entry(tmp_path, site_a):
    run(tmp_path, [row()])
    result = run(tmp_path, [row(mrs_3m="3")])
    assert (result.created, result.changed) == (0, 1)
    assert FollowUp.objects.get().mrs_3m == 3
    assert FollowUp.history.count() == 2
    assert Admission.history.count() == 1
    assert FollowUp.objects.get().version == 2


def test_a_locked_record_is_not_changed_by_an_import(tmp_path, site_a):
    run(tmp_path, [row()])
    PatientLock.objects.create(
        patient=Patient.objects.get(), locked=True, reason="SDV", meaning="source_data_verified"
    )
    result = run(tmp_path, [row(mrs_3m="3")])
    assert problems_of(result) == [
        "row 1, column study_id: T-001 is locked; unlock it before changing it."
    ]
    assert FollowUp.objects.get().mrs_3m == 2


# --- Excel and the command ---------------------------------------------------------------


def test_an_xlsx_file_with_typed_cells_imports_like_the_csv(tmp_path, site_a):
    book = Workbook()
    sheet = book.active
    names = list(interchange.column_names())
    sheet.append(names)
    typed = {
        "age_years": 63,
        "onset_time": dt.datetime(2020, 6, 1, 8, 0),
        "door_time": dt.datetime(2020, 6, 1, 12, 0),
        "discharge_date": dt.datetime(2020, 6, 12),
        "followup_date": dt.date(2020, 8, 30),
        "hypertension": 1,
        "smoking": False,
        "nihss_admission": 18.0,
    }
    sheet.append([typed.get(name, VALID[name] or None) for name in names])
    path = tmp_path / "patients.xlsx"
    book.save(path)
    result = registry_import(file=path, filename=path.name)
    assert result.ok, problems_of(result)
    csv_result = run(tmp_path, [row()])
    assert (csv_result.created, csv_result.unchanged) == (0, 1)


def test_the_command_prints_every_problem_and_exits_with_status_1(tmp_path, site_a, capsys):
    path = write_csv(tmp_path, [row(age_years="17"), row(study_id="T-002", sex="x")])
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_registry", str(path))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "row 1, column age_years:" in err
    assert "row 2, column sex: unknown code 'x'" in err
    assert not Patient.objects.exists()


def test_the_command_imports_with_the_user_and_create_sites(tmp_path, db, admin_user, capsys):
    path = write_csv(tmp_path, [row(site="XX")])
    call_command("import_registry", str(path), "--user", admin_user.username, "--create-sites")
    assert "1 patients were created" in capsys.readouterr().out
    assert Site.objects.filter(code="XX").exists()
    assert Patient.history.get().history_user == admin_user


def test_the_command_dry_run_writes_nothing(tmp_path, site_a, capsys):
    path = write_csv(tmp_path, [row()])
    call_command("import_registry", str(path), "--dry-run")
    assert "Dry run" in capsys.readouterr().out
    assert not Patient.objects.exists()


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(tmp_path, site_a):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + csv_text([row()]).replace("\n", "\r\n")).encode("utf-8"))
    assert registry_import(file=path, filename=path.name).ok


def test_excel_csv_utf8_with_a_bom_keeps_vietnamese_text(tmp_path, site_a):
    path = tmp_path / "excel-utf8.csv"
    text = csv_text([row(stent_device="Solitaire, bác sĩ Nguyễn Hữu")])
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # Excel's "CSV UTF-8"
    result = registry_import(file=path, filename=path.name)
    assert result.ok, problems_of(result)
    assert Procedure.objects.get().stent_device == "Solitaire, bác sĩ Nguyễn Hữu"


# Excel's "CSV" on a Vietnamese Windows is Windows-1258: "Nguyễn Hữu" is written as
# base letters with combining tone marks, which cp1258 encodes (it has no "ễ" or "ữ").
CP1258_NAME = "Nguy\u00ea\u0303n H\u01b0\u0303u"


def run_command(path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_registry", str(path))
    assert exit_info.value.code == 1
    return capsys.readouterr().err


def test_the_command_refuses_a_csv_that_is_not_utf8_and_writes_nothing(tmp_path, site_a, capsys):
    path = tmp_path / "windows-1258.csv"
    path.write_bytes(csv_text([row(stent_device=CP1258_NAME)]).encode("cp1258"))
    err = run_command(path, capsys)
    assert "the file is not UTF-8 text; save it as CSV UTF-8" in err
    assert "nothing was written" in err
    assert not Patient.objects.exists()


def test_the_command_refuses_a_fake_xlsx_and_writes_nothing(tmp_path, site_a, capsys):
    path = tmp_path / "patients.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not a workbook")
    err = run_command(path, capsys)
    assert "not a valid Excel .xlsx file" in err
    assert not Patient.objects.exists()


def test_the_command_refuses_a_csv_renamed_to_xlsx(tmp_path, site_a, capsys):
    path = tmp_path / "renamed.xlsx"
    path.write_text(csv_text([row()]), encoding="utf-8")
    assert "not a valid Excel .xlsx file" in run_command(path, capsys)
    assert not Patient.objects.exists()


def test_the_command_refuses_a_number_of_5000_digits_naming_its_row_and_column(
    tmp_path, site_a, capsys
):
    path = write_csv(tmp_path, [row(), row(study_id="T-002", age_years="9" * 5000)])
    err = run_command(path, capsys)
    assert "row 2, column age_years: must be a whole number between 18 and 120" in err
    assert "9" * 100 not in err  # the number is not echoed whole
    # One problem for the unreadable cell, not a second one about the blank left in its place.
    assert "cannot be null" not in err
    assert not Patient.objects.exists()


def test_a_cell_over_the_csv_field_limit_is_a_problem_of_the_file(tmp_path, site_a):
    path = write_csv(tmp_path, [row(stent_device="x" * 200_000)])
    result = registry_import(file=path, filename=path.name)
    assert [(p.row, p.columns) for p in result.problems] == [(None, ())]
    assert "the file cannot be read as CSV" in str(result.problems[0])


def test_the_parser_turns_a_number_too_long_for_int_into_a_parse_error():
    column = interchange.by_name()["nihss_admission"]
    with pytest.raises(interchange.ParseError, match="whole number between 0 and 42"):
        interchange.parse(column, "-" + "1" * 5000)


def test_blank_lines_are_skipped_but_keep_the_row_numbers(tmp_path, site_a):
    text = csv_text([row(), row(study_id="T-002", age_years="200")])
    lines = text.splitlines()
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join([lines[0], lines[1], ",,,", lines[2], "", ""]) + "\n")
    result = registry_import(file=path, filename=path.name)
    assert [p.row for p in result.problems] == [3]
    assert result.rows == 2


def test_a_cell_beyond_the_header_is_reported(tmp_path, site_a):
    path = tmp_path / "extra.csv"
    path.write_text(csv_text([row()]).rstrip("\n") + ",surprise\n")
    result = registry_import(file=path, filename=path.name)
    assert problems_of(result) == ["row 1: more cells than header columns."]


def test_the_number_of_queries_does_not_grow_with_the_number_of_rows(tmp_path, site_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(prefix, n, **overrides):
        rows = [row(study_id=f"{prefix}-{i:03d}", **overrides) for i in range(n)]
        with CaptureQueriesContext(connection) as context:
            assert run(tmp_path, rows).ok
        return len(context.captured_queries)

    assert queries_for("S", 3) == queries_for("L", 60)  # creating
    assert queries_for("S", 3, mrs_3m="1") == queries_for("L", 60, mrs_3m="1")  # updating
