"""The checks in chunks of patients, and the checks page one page of findings at a time."""

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import checks, services
from registry.models import FollowUp, Patient

from .factories import AdmissionFactory, ComplicationsFactory, PatientFactory, aware, full_patient

pytestmark = pytest.mark.django_db


def broken_patient(site, study_id):
    """Follow-up before discharge (a violation) with two values missing in the section."""
    patient = PatientFactory(site=site, study_id=study_id)
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2020, 6, 12))
    FollowUp.objects.create(
        patient=patient, followup_date=dt.date(2020, 6, 1), mrs_3m=2, status="complete"
    )
    return patient


def late_patient(site, study_id, nurse, reason=None):
    """49 hours from onset to door: a warning, confirmed when ``reason`` is given."""
    patient = PatientFactory(site=site, study_id=study_id)
    onset = aware(2026, 1, 10, 8, 0)
    if reason is None:  # saved around the form, as an old import could have
        door = onset + dt.timedelta(hours=49)
        return AdmissionFactory(patient=patient, onset_time=onset, door_time=door).patient
    services.section_save(
        patient=patient,
        section_key="admission",
        user=nurse,
        complete=False,
        data={"onset_time": onset, "door_time": onset + dt.timedelta(hours=49)},
        confirmations={"onset_to_door_over_24h__door_time": reason},
    )
    return patient


def registry_of_15(site, nurse):
    """P-01 to P-15; with chunks of 7, P-07 ends the first chunk and P-08 starts the next."""
    for i in range(1, 16):
        study_id = f"P-{i:02d}"
        if i in (7, 14):
            broken_patient(site, study_id)
        elif i in (8, 15):
            late_patient(site, study_id, nurse, reason="Found at home" if i == 8 else None)
        else:
            full_patient(site=site, study_id=study_id)


def as_rows(report) -> list[dict]:
    return [f.as_dict() for f in report.findings]


def test_findings_either_side_of_a_chunk_boundary_are_all_found(site_a, nurse):
    registry_of_15(site_a, nurse)
    report = checks.run_checks(Patient.objects.all(), chunk_size=7)
    found = {(f["study_id"], f["kind"]) for f in as_rows(report)}
    assert {("P-07", "violation"), ("P-07", "missing"), ("P-08", "warning")} <= found
    assert {("P-14", "violation"), ("P-15", "warning")} <= found
    (confirmed,) = [f for f in report.findings if f.confirmation is not None]
    assert (confirmed.study_id, confirmed.confirmation.reason) == ("P-08", "Found at home")
    assert report.n_patients == 15


def test_the_findings_are_the_same_whatever_the_chunk_size(site_a, site_b, nurse):
    registry_of_15(site_a, nurse)
    broken_patient(site_b, "B-01")
    reports = [checks.run_checks(Patient.objects.all(), chunk_size=n) for n in (1, 7, 10_000)]
    assert as_rows(reports[0]) == as_rows(reports[1]) == as_rows(reports[2])
    assert {r.n_patients for r in reports} == {16}
    assert [f.site for f in reports[0].findings][-1] == "B"


def test_check_data_json_is_the_same_whatever_the_chunk_size(site_a, nurse):
    registry_of_15(site_a, nurse)
    outputs = []
    for size in ("1", "7", "10000"):
        out = StringIO()
        call_command("check_data", "--format", "json", "--chunk-size", size, stdout=out)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    data = json.loads(outputs[0])
    assert (data["n_patients"], data["n_violations"], data["n_warnings"]) == (15, 2, 2)
    assert data["findings"] == as_rows(checks.run_checks(Patient.objects.all()))


def walk_pages(patients, **kwargs) -> list[checks.CheckPage]:
    pages = [checks.check_page(patients, **kwargs)]
    while pages[-1].next_site is not None:
        last = pages[-1]
        pages.append(
            checks.check_page(patients, site=last.next_site, after=last.next_after, **kwargs)
        )
    return pages


def test_the_pages_list_every_finding_once_whole_patients_at_a_time(site_a, site_b, nurse):
    registry_of_15(site_a, nurse)
    broken_patient(site_b, "B-01")
    broken_patient(site_b, "B-02")
    patients = Patient.objects.all()
    pages = walk_pages(patients, per_page=2, max_patients=5)
    paged = [f.as_dict() for page in pages for f in page.findings]
    assert paged == as_rows(checks.run_checks(patients))
    for page in pages:
        assert len({f.site for f in page.findings}) <= 1
        assert page.n_patients <= 5
    # A patient's three findings are not split: a page of two findings holds all three.
    assert any(len(page.findings) == 3 for page in pages)


def test_a_page_keeps_only_the_kind_and_the_rule_asked_for(site_a, nurse):
    registry_of_15(site_a, nurse)
    patients = Patient.objects.all()
    warnings = [f for p in walk_pages(patients, kind="warning") for f in p.findings]
    assert {(f.study_id, f.kind) for f in warnings} == {("P-08", "warning"), ("P-15", "warning")}
    ruled = [f for p in walk_pages(patients, code="followup_after_discharge") for f in p.findings]
    assert [f.study_id for f in ruled] == ["P-07", "P-14"]


def page_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("registry:data_checks"))
    assert response.status_code == 200
    return len(captured), response.content.decode()


def test_the_checks_page_takes_the_same_number_of_queries_for_more_patients(
    client, monitor, site_a, nurse
):
    registry_of_15(site_a, nurse)
    client.force_login(monitor)
    few, _ = page_queries(client)
    for i in range(20, 30):
        broken_patient(site_a, f"P-{i}")
        AdmissionFactory(patient=PatientFactory(site=site_a, study_id=f"Q-{i}"))
    more, page = page_queries(client)
    assert few == more
    assert "P-29" in page


def test_the_next_page_link_leads_to_the_following_findings(client, monitor, site_a):
    for i in range(30):
        broken_patient(site_a, f"P-{i:02d}")  # three findings each: 17 patients fill a page
    client.force_login(monitor)
    first = client.get(reverse("registry:data_checks")).content.decode()
    assert ">P-16</a>" in first and ">P-17</a>" not in first
    second = client.get(reverse("registry:data_checks"), {"at": "A", "after": "P-16"})
    text = second.content.decode()
    assert ">P-17</a>" in text and ">P-29</a>" in text and ">P-16</a>" not in text


def test_the_checks_page_lists_only_the_users_sites_and_the_site_asked_for(
    client, nurse, admin_user, site_a, site_b
):
    broken_patient(site_a, "A-BAD")
    broken_patient(site_b, "B-BAD")
    client.force_login(nurse)
    page = client.get(reverse("registry:data_checks")).content.decode()
    assert "A-BAD" in page and "B-BAD" not in page
    client.force_login(admin_user)
    page = client.get(reverse("registry:data_checks"), {"site": "B"}).content.decode()
    assert "B-BAD" in page and "A-BAD" not in page
