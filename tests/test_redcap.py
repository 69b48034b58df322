"""REDCap: the data dictionary, the records export, and the import of a REDCap export."""

import csv
import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from registry import rules
from registry.interchange import columns as interchange
from registry.interchange import redcap
from registry.interchange.exporter import registry_export
from registry.interchange.redcap import DICTIONARY_HEADER, redcap_import
from registry.models import Patient, Procedure

pytestmark = pytest.mark.django_db


def command_output(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def dictionary_frame(*args) -> pd.DataFrame:
    text = command_output("data_dictionary", "--format", "redcap", *args)
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def by_variable(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["Variable / Field Name"]: row for row in frame.to_dict("records")}


def read_rows(path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames), list(reader)


def write_rows(path, header: list[str], rows: list[dict]):
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def redcap_files(demo_cohort, tmp_path):
    """The cohort's REDCap records and data dictionary, as the registry writes them."""
    records = tmp_path / "records.csv"
    records.write_bytes(redcap.redcap_export(user=None, deidentified=False).content)
    dictionary = tmp_path / "dictionary.csv"
    dictionary.write_text(redcap.dictionary_csv(), encoding="utf-8")
    return records, dictionary


# ---------------------------------------------------------------- the data dictionary


def test_the_redcap_dictionary_loads_into_pandas_with_the_18_columns_in_redcaps_order():
    frame = dictionary_frame()
    assert list(frame.columns) == list(DICTIONARY_HEADER)
    assert len(DICTIONARY_HEADER) == 18
    assert sorted(frame["Variable / Field Name"]) == sorted(interchange.column_names())


def test_the_record_id_is_the_study_id_and_each_forms_fields_stay_together():
    frame = dictionary_frame()
    assert frame["Variable / Field Name"].iloc[0] == "study_id"
    forms = list(frame["Form Name"])
    runs = [form for k, form in enumerate(forms) if k == 0 or forms[k - 1] != form]
    assert runs == list(redcap.forms())


def test_field_types_validations_and_ranges_follow_the_columns_and_the_rules():
    fields = by_variable(dictionary_frame())
    for column in interchange.columns():
        field = fields[column.name]
        validation = field["Text Validation Type OR Show Slider Number"]
        if column.kind == interchange.FLAG:
            assert field["Field Type"] == "yesno"
        elif column.kind == interchange.CATEGORY:
            assert field["Field Type"] in ("radio", "dropdown")
            codes = [
                part.split(",")[0].strip() for part in field[redcap.DICTIONARY_HEADER[5]].split("|")
            ]
            assert codes == [code for code, _ in column.codes]
        elif column.kind == interchange.DATE:
            assert (field["Field Type"], validation) == ("text", "date_ymd")
        elif column.kind == interchange.DATETIME:
            assert (field["Field Type"], validation) == ("text", "datetime_ymd")
        elif column.kind == interchange.INTEGER:
            assert (field["Field Type"], validation) == ("text", "integer")
        low, high = rules.RANGES.get(column.name, ("", ""))
        assert (field["Text Validation Min"], field["Text Validation Max"]) == (str(low), str(high))


def test_choices_are_written_code_comma_label_separated_by_bars():
    fields = by_variable(dictionary_frame())
    assert (
        fields["circulation"][DICTIONARY_HEADER[5]] == "anterior, Anterior | posterior, Posterior"
    )


def test_branching_logic_is_written_in_redcaps_syntax_from_the_rules():
    fields = by_variable(dictionary_frame())
    logic = {name: row[DICTIONARY_HEADER[11]] for name, row in fields.items()}
    assert logic["dwi_aspects"] == "[circulation] = 'anterior'"
    assert logic["mt_passes"] == "[mt_performed] = '1'"
    assert logic["reperfusion_time"] == (
        "[final_mtici] = '2b' or [final_mtici] = '2c' or [final_mtici] = '3'"
    )
    # A death may be recorded whatever the 3-month mRS: REDCap must not hide it.
    assert not rules.BRANCHING["death_date"].exclusive and logic["death_date"] == ""
    assert {name for name, text in logic.items() if text} == {
        name for name, branch in rules.BRANCHING.items() if branch.exclusive
    }


def test_identifiers_and_required_fields_follow_the_privacy_categories_and_the_contract():
    fields = by_variable(dictionary_frame())
    identifiers = {name for name, row in fields.items() if row["Identifier?"] == "y"}
    assert identifiers == {
        c.name
        for c in interchange.columns()
        if c.privacy in (interchange.IDENTIFIER, interchange.FREE_TEXT)
    }
    required = {name for name, row in fields.items() if row["Required Field?"] == "y"}
    assert required == set(interchange.REQUIRED)


def test_the_deidentified_dictionary_describes_the_deidentified_records(demo_cohort):
    variables = list(dictionary_frame("--deidentified")["Variable / Field Name"])
    content = redcap.redcap_export(user=None, deidentified=True).content
    header = content.decode().splitlines()[0].split(",")
    completes = [redcap.complete_name(form) for form in redcap.forms()]
    assert variables[0] == header[0] == "pseudo_id"
    assert [name for name in header if name not in completes] == variables
    assert "study_id" not in header and "door_time" not in header


# ---------------------------------------------------------------- the records export


def test_the_records_export_has_the_record_id_first_and_each_forms_status_after_its_fields(
    redcap_files,
):
    records, _ = redcap_files
    header, rows = read_rows(records)
    assert header[0] == "study_id" and len(rows) == 85
    forms = by_variable(dictionary_frame())
    for form in redcap.forms():
        fields = [name for name in header if name in forms and forms[name]["Form Name"] == form]
        assert header.index(redcap.complete_name(form)) == header.index(fields[-1]) + 1
    statuses = {row[redcap.complete_name(m)] for row in rows for m in redcap.forms()}
    assert statuses <= {"", "0", "2"} and "2" in statuses


def test_a_draft_section_is_incomplete_and_a_complete_one_complete(redcap_files):
    records, _ = redcap_files
    _, rows = read_rows(records)
    for row in rows:
        procedure = Patient.objects.get(study_id=row["study_id"]).procedure
        expected = {"draft": "0", "complete": "2"}[procedure.status]
        assert row["procedure_complete"] == expected


def test_date_times_are_written_as_redcaps_datetime_ymd(redcap_files):
    records, _ = redcap_files
    _, rows = read_rows(records)
    door = next(row["door_time"] for row in rows if row["door_time"])
    assert len(door) == 16 and door[10] == " "


def test_the_export_page_offers_the_redcap_records(client, admin_user, demo_cohort):
    client.force_login(admin_user)
    url = reverse("registry:export")
    response = client.post(url, {"format": "redcap", "identifiable": "on"})
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-redcap.csv"')
    header = b"".join(response.streaming_content).decode().splitlines()[0].split(",")
    assert header[0] == "study_id" and "followup_complete" in header


def test_the_data_dictionary_page_downloads_the_redcap_dictionary(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("registry:data_dictionary"), {"format": "redcap"})
    assert response.status_code == 200
    frame = pd.read_csv(io.StringIO(response.content.decode()), dtype=str)
    assert list(frame.columns) == list(DICTIONARY_HEADER)


# ---------------------------------------------------------------- the import


def test_the_redcap_round_trip_of_the_demo_cohort_is_byte_identical(demo_cohort, tmp_path):
    Procedure.objects.filter(patient__study_id="DEMO-001").update(stent_device="=1+1 (odd name)")
    native = registry_export(user=None, fmt="csv", deidentified=False).content
    records, dictionary = tmp_path / "records.csv", tmp_path / "dictionary.csv"
    call_command(
        "export_registry", "--format", "redcap", "--output", str(records), stderr=io.StringIO()
    )
    dictionary.write_text(command_output("data_dictionary", "--format", "redcap"), encoding="utf-8")
    Patient.objects.all().delete()
    out = command_output(
        "import_registry", "--format", "redcap", str(records), "--dictionary", str(dictionary)
    )
    assert "85 patients were created" in out
    assert registry_export(user=None, fmt="csv", deidentified=False).content == native


def test_a_variable_named_otherwise_imports_through_the_mapping_file(redcap_files, tmp_path):
    records, dictionary = redcap_files
    rename_variable(records, dictionary, "nihss_admission", "nihss_in")
    result = redcap_import(file=records, dictionary=dictionary)
    assert not result.ok
    assert "variable nihss_in: not a registry column and not in the mapping file" in str(
        result.problems[0]
    )
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("redcap_variable,registry_column\nnihss_in,nihss_admission\n")
    result = redcap_import(file=records, dictionary=dictionary, mapping=mapping)
    assert result.ok and result.unchanged == 85, result.problems[:3]


def rename_variable(records, dictionary, old: str, new: str) -> None:
    header, rows = read_rows(records)
    write_rows(
        records,
        [new if n == old else n for n in header],
        [{(new if k == old else k): v for k, v in row.items()} for row in rows],
    )
    fields_header, fields = read_rows(dictionary)
    for field in fields:
        if field["Variable / Field Name"] == old:
            field["Variable / Field Name"] = new
    write_rows(dictionary, fields_header, fields)


def test_a_problem_of_a_mapped_variable_names_the_redcap_variable(redcap_files, tmp_path):
    records, dictionary = redcap_files
    rename_variable(records, dictionary, "nihss_admission", "nihss_in")
    header, rows = read_rows(records)
    rows[1]["nihss_in"] = "99"
    write_rows(records, header, rows)
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("redcap_variable,registry_column\nnihss_in,nihss_admission\n")
    result = redcap_import(file=records, dictionary=dictionary, mapping=mapping)
    assert [(p.row, p.columns) for p in result.problems] == [(2, ("nihss_in",))]
    assert str(rules.RANGES["nihss_admission"][1]) in result.problems[0].message


def test_a_code_outside_the_dictionarys_choices_is_a_problem_of_that_cell(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    rows[2]["sex"] = "x"
    rows[4]["hypertension"] = "2"
    write_rows(records, header, rows)
    before = registry_export(user=None, fmt="csv", deidentified=False).content
    result = redcap_import(file=records, dictionary=dictionary)
    assert [str(p) for p in result.problems] == [
        "row 3, column sex: code 'x' is not one of the choices of the data dictionary "
        "(male, female).",
        "row 5, column hypertension: code '2' is not one of the choices of the data "
        "dictionary (1, 0).",
    ]
    assert registry_export(user=None, fmt="csv", deidentified=False).content == before


def test_a_missing_record_id_is_a_problem_of_that_row(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    rows[6]["study_id"] = ""
    write_rows(records, header, rows)
    result = redcap_import(file=records, dictionary=dictionary)
    assert [str(p) for p in result.problems] == [
        "row 7, column study_id: the record ID is missing; every record needs one."
    ]


def test_a_records_file_without_the_record_id_column_is_refused(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    write_rows(records, header[1:], [{k: v for k, v in r.items() if k != "study_id"} for r in rows])
    result = redcap_import(file=records, dictionary=dictionary)
    assert [p.columns for p in result.problems] == [("study_id",)]
    assert "record ID column is missing" in result.problems[0].message


def test_a_column_that_is_not_in_the_dictionary_is_refused(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    write_rows(records, [*header, "weight_kg"], [{**row, "weight_kg": "70"} for row in rows])
    result = redcap_import(file=records, dictionary=dictionary)
    assert [str(p) for p in result.problems] == [
        "header, column weight_kg: not a variable of the data dictionary."
    ]


def test_repeating_instruments_are_refused_with_a_message_that_says_so(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    new = [header[0], "redcap_repeat_instrument", *header[1:]]
    write_rows(records, new, [{**row, "redcap_repeat_instrument": ""} for row in rows])
    result = redcap_import(file=records, dictionary=dictionary)
    assert result.problems[0].columns == ("redcap_repeat_instrument",)
    assert "repeating instruments and events are not supported" in result.problems[0].message


def test_a_bad_form_status_is_a_problem_of_that_cell(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    rows[0]["imaging_complete"] = "3"
    write_rows(records, header, rows)
    result = redcap_import(file=records, dictionary=dictionary)
    assert [(p.row, p.columns) for p in result.problems] == [(1, ("imaging_complete",))]


def test_a_mapping_to_a_column_the_registry_does_not_have_is_refused(redcap_files, tmp_path):
    records, dictionary = redcap_files
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("redcap_variable,registry_column\nsex,gender\n")
    result = redcap_import(file=records, dictionary=dictionary, mapping=mapping)
    assert [str(p) for p in result.problems] == [
        "mapping file, row 1: 'gender' is not a registry column."
    ]


def test_the_redcap_import_command_needs_the_dictionary(redcap_files):
    records, _ = redcap_files
    with pytest.raises(CommandError, match="--dictionary"):
        call_command("import_registry", "--format", "redcap", str(records))


def test_the_redcap_import_command_prints_the_problems_and_writes_nothing(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    rows[0]["sex"] = "x"
    write_rows(records, header, rows)
    Patient.objects.all().delete()
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "import_registry",
            "--format",
            "redcap",
            str(records),
            "--dictionary",
            str(dictionary),
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "row 1, column sex: code 'x'" in err.getvalue()
    assert not Patient.objects.exists()


def add_checkbox(records, dictionary) -> None:
    """A REDCap checkbox field ``consent`` (codes 1, 2) in the dictionary and the records."""
    fields_header, fields = read_rows(dictionary)
    extra = dict.fromkeys(fields_header, "")
    extra.update({"Variable / Field Name": "consent", "Form Name": "patient"})
    extra.update({"Field Type": "checkbox", "Field Label": "Consent"})
    extra[DICTIONARY_HEADER[5]] = "1, Data | 2, Contact"
    write_rows(dictionary, fields_header, [fields[0], extra, *fields[1:]])
    header, rows = read_rows(records)
    new = [header[0], "consent___1", "consent___2", *header[1:]]
    write_rows(records, new, [{**row, "consent___1": "1", "consent___2": "0"} for row in rows])


def test_a_checkbox_field_is_refused_unless_the_mapping_leaves_it_out(redcap_files, tmp_path):
    records, dictionary = redcap_files
    add_checkbox(records, dictionary)
    result = redcap_import(file=records, dictionary=dictionary)
    assert [str(p) for p in result.problems] == [
        "data dictionary, row 2, variable consent: a checkbox field cannot be imported into "
        "the registry; leave it out in the mapping file (consent,)."
    ]
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("redcap_variable,registry_column\nconsent,\n")
    result = redcap_import(file=records, dictionary=dictionary, mapping=mapping)
    assert result.ok and result.unchanged == 85, result.problems[:3]


def test_date_times_with_seconds_are_read_as_hospital_time(redcap_files):
    records, dictionary = redcap_files
    header, rows = read_rows(records)
    study_id, door = next((r["study_id"], r["door_time"]) for r in rows if r["door_time"])
    for row in rows:
        if row["door_time"]:
            row["door_time"] += ":00"
    write_rows(records, header, rows)
    result = redcap_import(file=records, dictionary=dictionary)
    assert result.ok and result.unchanged == 85, result.problems[:3]
    stored = Patient.objects.get(study_id=study_id).admission.door_time
    assert timezone.localtime(stored).strftime("%Y-%m-%d %H:%M") == door
