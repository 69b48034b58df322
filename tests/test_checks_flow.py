"""Automatic consistency checks and the flow chart's counts."""

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analytics import flow
from registry import checks
from registry.models import Admission, FollowUp, Patient, PatientExclusion, ScreeningEntry

from .factories import (
    AdmissionFactory,
    ComplicationsFactory,
    FollowUpFactory,
    PatientFactory,
    full_patient,
)

pytestmark = pytest.mark.django_db


def broken_patient(site, study_id="BAD-1"):
    """Follow-up before discharge: saved around clean(), as an old import could have."""
    patient = PatientFactory(site=site, study_id=study_id)
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2020, 6, 12))
    FollowUp.objects.create(
        patient=patient, followup_date=dt.date(2020, 6, 1), mrs_3m=2, status="complete"
    )
    return patient


def test_consistency_check_lists_a_rule_violation_per_site_and_patient(site_a):
    full_patient(site=site_a, study_id="OK-1")
    broken_patient(site_a)
    report = checks.run_checks(Patient.objects.all())
    assert report.n_patients == 2
    grouped = report.by_site()
    assert list(grouped) == ["A"]
    assert list(grouped["A"]) == ["BAD-1"]
    codes = {(f.kind, f.code) for f in grouped["A"]["BAD-1"]}
    assert ("violation", "followup_after_discharge") in codes


def test_consistency_check_lists_missing_values_of_a_completed_section(site_a):
    broken_patient(site_a)
    report = checks.run_checks(Patient.objects.all())
    missing = {f.code for f in report.findings if f.kind == "missing"}
    assert missing == {"followup_method", "rehabilitation"}
    assert all(f.section == "followup" for f in report.findings if f.kind == "missing")


def test_draft_sections_are_not_listed_as_missing(site_a):
    AdmissionFactory(patient=PatientFactory(site=site_a), nihss_admission=None)
    report = checks.run_checks(Patient.objects.all())
    assert report.findings == []


def test_completeness_counts_applicable_fields_per_section_and_site(site_a, site_b):
    full_patient(site=site_a)
    patient_b = PatientFactory(site=site_b)
    AdmissionFactory(patient=patient_b, nihss_admission=None)
    report = checks.run_checks(Patient.objects.all())
    # needle_time does not apply: the typical patient had no IV thrombolysis.
    n_admission = len(Admission.clinical_fields()) - 1
    assert report.completeness["A"]["admission"].percent == 100.0
    assert report.completeness["A"]["imaging"].percent == 100.0
    assert report.completeness["B"]["admission"].percent == pytest.approx(
        100.0 * (n_admission - 1) / n_admission, abs=1e-9
    )
    assert report.completeness["B"]["followup"].percent == 0.0
    # pc_aspects does not apply to the anterior-circulation patient of site A.
    assert report.completeness["A"]["imaging"].applicable == 5


def test_checks_take_a_constant_number_of_queries(site_a, django_assert_num_queries):
    for i in range(4):
        full_patient(site=site_a, study_id=f"Q-{i}")
    # the sites, the completeness, the site's patients with their five sections
    with django_assert_num_queries(3):
        checks.run_checks(Patient.objects.all())
    for i in range(4, 8):
        full_patient(site=site_a, study_id=f"Q-{i}")
    with django_assert_num_queries(3):
        checks.run_checks(Patient.objects.all())


def test_check_data_command_prints_findings_and_fails_when_strict(site_a):
    broken_patient(site_a)
    out = StringIO()
    call_command("check_data", stdout=out)
    assert "followup_after_discharge" in out.getvalue()
    assert "BAD-1" in out.getvalue()
    out = StringIO()
    call_command("check_data", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["n_violations"] == 1
    with pytest.raises(CommandError) as error:
        call_command("check_data", "--strict", stdout=StringIO(), stderr=StringIO())
    assert error.value.returncode == 1


def _screen(site, **kwargs):
    defaults = {"site": site, "screening_date": dt.date(2026, 1, 1), "eligible": True}
    return ScreeningEntry.objects.create(**{**defaults, **kwargs})


def test_flow_counts_follow_the_paper_figure(site_a):
    for reason, n in (("tandem_lesion", 2), ("ich_on_admission", 1), ("severe_comorbidity", 3)):
        for _ in range(n):
            _screen(site_a, eligible=False, exclusion_reason=reason)
    _screen(site_a, consent_given_by="refused")
    _screen(site_a, consent_given_by="patient", consent_date=dt.date(2026, 1, 1))  # not enrolled
    analysed = FollowUpFactory(patient=PatientFactory(site=site_a)).patient
    _screen(
        site_a,
        consent_given_by="representative",
        consent_date=dt.date(2026, 1, 1),
        patient=analysed,
    )
    lost = PatientFactory(site=site_a)
    PatientExclusion.objects.create(
        patient=lost, reason="lost_to_followup", excluded_on=dt.date(2026, 5, 1)
    )
    PatientFactory(site=site_a)  # awaiting the 3-month follow-up, imported without screening
    counts = flow.flow_counts(Patient.objects.all(), ScreeningEntry.objects.all())
    assert counts == {
        "screened": 9,
        "excluded_at_screening": {
            "total": 6,
            "tandem_lesion": 2,
            "ich_on_admission": 1,
            "no_severe_stenosis_or_reocclusion": 0,
            "severe_comorbidity": 3,
        },
        "consent_refused": 1,
        "awaiting_enrolment": 1,
        "enrolled": 3,
        "enrolled_without_screening": 2,
        "excluded_after_enrolment": {
            "total": 1,
            "lost_to_followup": 1,
            "consent_withdrawn": 0,
            "other": 0,
        },
        "lost_to_followup": 1,
        "analysed_3m": 1,
        "awaiting_3m": 1,
    }


def test_revoked_exclusion_counts_as_enrolled_again(site_a):
    patient = FollowUpFactory(patient=PatientFactory(site=site_a)).patient
    PatientExclusion.objects.create(
        patient=patient, reason="lost_to_followup", excluded_on=dt.date(2026, 5, 1), active=False
    )
    counts = flow.flow_counts(Patient.objects.all(), ScreeningEntry.objects.none())
    assert (counts["lost_to_followup"], counts["analysed_3m"]) == (0, 1)


def test_flow_svg_draws_the_counts(site_a):
    _screen(site_a, eligible=False, exclusion_reason="tandem_lesion")
    svg = flow.flow_svg(flow.flow_counts(Patient.objects.all(), ScreeningEntry.objects.all()))
    assert svg.startswith("<svg")
    assert "Screened (n = 1)" in svg
    assert "Tandem lesion: 1" in svg
    assert "<script" not in svg
