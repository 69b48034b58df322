"""Warnings beside the errors: a plausible but suspicious value is saved only once a nurse
confirms it with a reason; the import reports it and imports the row; the checks list it."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from registry import rules, services
from registry.checks import run_checks
from registry.models import Admission, Patient

from .factories import AdmissionFactory, PatientFactory, aware, full_patient
from .interchange_rows import row, write_csv

pytestmark = pytest.mark.django_db

WARNING_CODES = {
    "future_date",
    "onset_to_door_over_24h",
    "door_to_groin_over_6h",
    "procedure_over_4h",
    "followup_out_of_window",
    "mrs_3m_better_than_premorbid",
    "death_date_without_mrs_6",
    "mrs_6_without_death_date",
    "age_over_100",
}


def six_months_ahead() -> dt.datetime:
    return timezone.now().replace(microsecond=0, second=0) + dt.timedelta(days=182)


def save_admission(patient, nurse, **data):
    return services.section_save(
        patient=patient, section_key="admission", user=nurse, complete=False, **data
    )


def test_every_warning_of_the_issue_is_a_rule_of_severity_warning_beside_the_errors():
    codes = {rule.code for rule in rules.RULES if rule.is_warning}
    assert codes == WARNING_CODES
    assert {rule.severity for rule in rules.RULES} == {rules.ERROR, rules.WARNING}


def test_onset_and_door_six_months_in_the_future_are_refused_until_confirmed(site_a, nurse):
    patient = PatientFactory(site=site_a)
    onset = six_months_ahead()
    values = {"onset_time": onset, "door_time": onset + dt.timedelta(hours=2)}
    with pytest.raises(services.UnconfirmedWarnings) as refused:
        save_admission(patient, nurse, data=values)
    assert {r.code for r in refused.value.warnings} == {"future_date"}
    assert set(refused.value.message_dict) == {"onset_time", "door_time"}
    assert not Admission.objects.filter(patient=patient).exists()


def test_a_49_hour_onset_to_door_gap_is_refused_until_confirmed_with_a_reason(site_a, nurse):
    patient = PatientFactory(site=site_a)
    onset = aware(2026, 1, 10, 8, 0)
    values = {"onset_time": onset, "door_time": onset + dt.timedelta(hours=49)}
    with pytest.raises(services.UnconfirmedWarnings) as refused:
        save_admission(patient, nurse, data=values)
    (rule,) = refused.value.warnings
    assert rule.code == "onset_to_door_over_24h"
    ticked_without_reason = {rule.key: "  "}
    with pytest.raises(services.UnconfirmedWarnings) as again:
        save_admission(patient, nurse, data=values, confirmations=ticked_without_reason)
    assert "Give a reason to confirm this value." in str(again.value)

    save_admission(patient, nurse, data=values, confirmations={rule.key: "Found at home"})
    confirmation = patient.warning_confirmations.get()
    assert (confirmation.code, confirmation.reason, confirmation.confirmed_by) == (
        "onset_to_door_over_24h",
        "Found at home",
        nurse,
    )
    assert confirmation.section == "admission"


def test_a_confirmed_value_is_not_asked_again_until_a_value_it_looked_at_changes(site_a, nurse):
    patient = PatientFactory(site=site_a)
    onset = aware(2026, 1, 10, 8, 0)
    late = {"onset_time": onset, "door_time": onset + dt.timedelta(hours=49)}
    key = "onset_to_door_over_24h__door_time"
    save_admission(patient, nurse, data=late, confirmations={key: "Found at home"})
    version = Admission.objects.get(patient=patient).version
    save_admission(patient, nurse, data={"nihss_admission": 12}, expected_version=version)
    later = {"door_time": onset + dt.timedelta(hours=50)}
    with pytest.raises(services.UnconfirmedWarnings):
        save_admission(patient, nurse, data=later, expected_version=version + 1)


def test_the_form_shows_the_warning_next_to_the_field_and_saves_once_confirmed(
    client, site_a, nurse
):
    patient = PatientFactory(site=site_a)
    client.force_login(nurse)
    url = reverse("registry:section_edit", args=[patient.pk, "admission"])
    data = {
        "onset_time": "2026-01-10T08:00",
        "door_time": "2026-01-12T09:00",
        "version": "0",
        "action": "draft",
    }
    page = client.post(url, data)
    assert page.status_code == 200
    html = page.content.decode()
    assert "More than 24 hours from onset to door" in html
    assert "I confirm this value" in html
    assert not Admission.objects.filter(patient=patient).exists()
    key = "onset_to_door_over_24h__door_time"
    confirmed = {**data, f"confirm_{key}": "on", f"confirm_{key}_reason": "Found at home"}
    assert client.post(url, confirmed).status_code == 302
    assert Admission.objects.get(patient=patient).door_time == aware(2026, 1, 12, 9, 0)


def test_the_history_tab_and_the_checks_page_show_the_confirmation(client, site_a, nurse):
    patient = PatientFactory(site=site_a, study_id="LATE-1")
    onset = aware(2026, 1, 10, 8, 0)
    save_admission(
        patient,
        nurse,
        data={"onset_time": onset, "door_time": onset + dt.timedelta(hours=49)},
        confirmations={"onset_to_door_over_24h__door_time": "Found at home"},
    )
    client.force_login(nurse)
    history = client.get(reverse("registry:patient_history", args=[patient.pk])).content.decode()
    assert "Warning confirmed" in history and "Found at home" in history
    checks = client.get(reverse("registry:data_checks")).content.decode()
    assert "LATE-1" in checks and "Found at home" in checks


def check_data_json(capsys) -> dict:
    call_command("check_data", "--format", "json")
    return json.loads(capsys.readouterr().out)


def test_check_data_lists_future_dates_an_out_of_window_followup_and_a_49_hour_gap(capsys, site_a):
    onset = aware(2025, 1, 10, 8, 0)
    AdmissionFactory(
        patient=PatientFactory(site=site_a, study_id="GAP-49"),
        onset_time=onset,
        door_time=onset + dt.timedelta(hours=49),
    )
    future = six_months_ahead()
    AdmissionFactory(
        patient=PatientFactory(site=site_a, study_id="FUTURE-1"),
        onset_time=future,
        door_time=future + dt.timedelta(hours=1),
    )
    early = full_patient(site=site_a, study_id="EARLY-17")
    early.followup.followup_date = early.admission.onset_time.date() + dt.timedelta(days=17)
    early.followup.save()
    early.complications.discharge_date = early.followup.followup_date - dt.timedelta(days=1)
    early.complications.save()

    report = check_data_json(capsys)
    warnings = {
        (f["study_id"], f["code"], tuple(f["fields"]))
        for f in report["findings"]
        if f["kind"] == "warning"
    }
    assert ("GAP-49", "onset_to_door_over_24h", ("door_time", "onset_time")) in warnings
    assert ("FUTURE-1", "future_date", ("onset_time",)) in warnings
    assert ("FUTURE-1", "future_date", ("door_time",)) in warnings
    assert ("EARLY-17", "followup_out_of_window", ("followup_date", "onset_time", "door_time")) in (
        warnings
    )
    assert report["n_warnings"] == len([f for f in report["findings"] if f["kind"] == "warning"])


def test_check_data_lists_no_warning_on_a_clean_registry(capsys, site_a):
    for number in range(3):
        full_patient(site=site_a, study_id=f"CLEAN-{number}")
    report = check_data_json(capsys)
    assert [f for f in report["findings"] if f["kind"] == "warning"] == []
    assert report["n_warnings"] == 0


def test_a_warning_confirmed_for_the_same_values_is_reported_with_its_confirmation(site_a, nurse):
    patient = PatientFactory(site=site_a)
    onset = aware(2026, 1, 10, 8, 0)
    save_admission(
        patient,
        nurse,
        data={"onset_time": onset, "door_time": onset + dt.timedelta(hours=49)},
        confirmations={"onset_to_door_over_24h__door_time": "Found at home"},
    )
    (finding,) = [f for f in run_checks(Patient.objects.all()).findings if f.kind == "warning"]
    assert finding.confirmation.reason == "Found at home"
    assert finding.confirmation.by == nurse.username


# --- the import: reported per row and column, imported; refused with --strict-warnings ----

WARNING_CASES = {
    "future_date": {"followup_date": (timezone.localdate() + dt.timedelta(days=40)).isoformat()},
    "onset_to_door_over_24h": {"onset_time": "2020-05-30T08:00"},
    "door_to_groin_over_6h": {
        "groin_puncture_time": "2020-06-01T20:00",
        "procedure_end_time": "2020-06-01T21:00",
        "reperfusion_time": "2020-06-01T20:30",
    },
    "procedure_over_4h": {"procedure_end_time": "2020-06-01T18:00"},
    "followup_out_of_window": {"followup_date": "2020-06-18", "discharge_date": "2020-06-10"},
    "mrs_3m_better_than_premorbid": {"premorbid_mrs": "3", "mrs_3m": "1"},
    "death_date_without_mrs_6": {"death_date": "2020-09-10"},
    # Died in hospital, the follow-up not yet entered (mRS 6 at 3 months needs the date).
    "mrs_6_without_death_date": {"discharge_mrs": "6", "mrs_3m": "", "death_date": ""},
    "age_over_100": {"age_years": "104"},
}


def test_every_warning_rule_has_an_import_case():
    assert set(WARNING_CASES) == WARNING_CODES


@pytest.mark.parametrize("code", sorted(WARNING_CASES))
def test_the_import_reports_a_warning_by_row_and_column_and_imports_the_row(tmp_path, site_a, code):
    path = write_csv(tmp_path, [row(), row(study_id="T-002", **WARNING_CASES[code])])
    result = services_import(path)
    assert result.ok, [str(p) for p in result.problems]
    found = [w for w in result.warnings if w.code == code]
    assert [w.row for w in found] == [2]
    rule = next(r for r in rules.RULES if r.code == code and set(r.fields) == set(found[0].columns))
    assert str(found[0]) == f"row 2, columns {', '.join(rule.fields)}: {rule.message} [{code}]" or (
        str(found[0]) == f"row 2, column {rule.fields[0]}: {rule.message} [{code}]"
    )
    assert result.warning_counts[code] == 1
    assert Patient.objects.filter(study_id="T-002").exists()


def services_import(path, **kwargs):
    from registry.interchange.importer import registry_import

    return registry_import(file=path, filename=path.name, **kwargs)


def test_strict_warnings_refuse_the_file_and_write_nothing(tmp_path, site_a, capsys):
    path = write_csv(tmp_path, [row(age_years="104")])
    with pytest.raises(SystemExit):
        call_command("import_registry", str(path), "--strict-warnings")
    assert "row 1, column age_years: Age over 100 years" in capsys.readouterr().err
    assert not Patient.objects.exists()


def test_the_import_summary_counts_the_warnings_per_code(tmp_path, site_a, capsys):
    path = write_csv(
        tmp_path,
        [row(age_years="104"), row(study_id="T-002", age_years="101"), row(study_id="T-003")],
    )
    call_command("import_registry", str(path))
    out = capsys.readouterr()
    assert "2 warning(s), imported as they are: age_over_100 2." in out.out
    assert "warning: row 2, column age_years: Age over 100 years" in out.err
    assert Patient.objects.count() == 3


def test_registering_a_patient_over_100_asks_for_a_confirmation_of_the_age(client, site_a, nurse):
    client.force_login(nurse)
    url = reverse("registry:patient_create")
    data = {"study_id": "OLD-1", "site": site_a.pk, "sex": "female", "age_years": "104"}
    page = client.post(url, data)
    assert page.status_code == 200
    assert "Age over 100 years" in page.content.decode()
    assert not Patient.objects.exists()
    key = "age_over_100__age_years"
    confirmed = {**data, f"confirm_{key}": "on", f"confirm_{key}_reason": "ID card checked"}
    assert client.post(url, confirmed).status_code == 302
    patient = Patient.objects.get(study_id="OLD-1")
    assert patient.warning_confirmations.get().reason == "ID card checked"
