"""Workflow screens: who may open what, the step-by-step questionnaire without
JavaScript, queries and locks through the web, the home panels."""

import datetime as dt
import re
from html import escape

import pytest
from django.template import Context, Template
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from registry import smrs
from registry.models import DataQuery, FollowUp, MrsInterview, Patient, PatientLock, ScreeningEntry
from registry.workflow import services as workflow

from .factories import (
    PASSWORD,
    AdmissionFactory,
    ComplicationsFactory,
    PatientFactory,
    full_patient,
)

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def recent(site_a):
    """A patient admitted 90 days ago, discharged: the 3-month call is due today."""
    onset = timezone.now() - dt.timedelta(days=90)
    patient = PatientFactory(site=site_a, study_id="CT-090")
    AdmissionFactory(patient=patient, onset_time=onset, door_time=onset + dt.timedelta(hours=2))
    ComplicationsFactory(patient=patient, discharge_date=timezone.localdate(onset))
    return patient


@pytest.fixture
def other_site_patient(site_b):
    return full_patient(site=site_b, study_id="B-001")


PATIENT_PAGES = ["patient_calls", "mrs_interview", "query_create", "patient_lock"]


@pytest.mark.parametrize("name", PATIENT_PAGES)
def test_another_sites_patient_is_not_found(client, nurse, monitor, other_site_patient, name):
    for user in (nurse, monitor):
        url = reverse(f"registry:{name}", args=[other_site_patient.pk])
        assert login(client, user).get(url).status_code == 404


@pytest.mark.parametrize(
    ("name", "nurse_status", "monitor_status"),
    [
        ("patient_calls", 200, 200),
        ("mrs_interview", 200, 403),
        ("query_create", 403, 200),
        ("patient_lock", 200, 200),
    ],
)
def test_patient_pages_per_role(client, nurse, monitor, recent, name, nurse_status, monitor_status):
    url = reverse(f"registry:{name}", args=[recent.pk])
    assert login(client, nurse).get(url).status_code == nurse_status
    assert login(client, monitor).get(url).status_code == monitor_status


@pytest.mark.parametrize(
    "name",
    [
        "registry:screening_list",
        "registry:followup_worklist",
        "registry:query_list",
        "registry:data_checks",
        "flow:chart",
    ],
)
def test_list_pages_open_for_the_monitor_without_inline_script(client, monitor, recent, name):
    response = login(client, monitor).get(reverse(name))
    assert response.status_code == 200
    assert "<script>" not in response.content.decode()


def test_flow_chart_is_for_report_readers(client, nurse, investigator):
    url = reverse("flow:svg")
    assert login(client, nurse).get(url).status_code == 403
    response = login(client, investigator).get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")


def test_worklist_page_lists_the_call_due_today(client, nurse, nurse_b, recent):
    response = login(client, nurse).get(reverse("registry:followup_worklist"))
    assert "CT-090" in text(response)
    assert f">{recent.site.code}</td>" in response.content.decode()  # its site's code
    assert "CT-090" not in text(login(client, nurse_b).get(reverse("registry:followup_worklist")))


def test_home_panels_show_due_calls_and_open_queries(nurse, monitor, recent):
    workflow.query_raise(user=monitor, patient=recent, field="door_time", text="Check")
    html = render_to_string(
        "registry/workflow/home_panels.html", workflow.home_panels_context(nurse)
    )
    assert "Calls due today" in html
    assert "CT-090" in html
    assert "Door time" in html  # the field's label, not its column code


def test_a_home_panel_counts_its_whole_bucket_and_says_it_shows_the_first(
    nurse, site_a, monkeypatch
):
    for study_id in ("CT-091", "CT-092", "CT-093"):
        PatientFactory(site=site_a, study_id=study_id)  # no onset or door time
    monkeypatch.setattr(workflow, "BUCKETS", ("no_date",))
    monkeypatch.setattr(workflow, "PANEL_LIMIT", 2)
    context = workflow.home_panels_context(nurse)
    assert [(p["total"], len(p["items"])) for p in context["followup_panels"]] == [(3, 2)]
    html = render_to_string("registry/workflow/home_panels.html", context)
    assert '<span class="badge text-bg-secondary">3</span>' in html
    assert "The first 2 of 3." in html


def test_screening_through_the_web_leads_to_enrolment(client, nurse, site_a):
    login(client, nurse)
    today = timezone.localdate().isoformat()
    response = client.post(
        reverse("registry:screening_create"),
        {
            "site": site_a.pk,
            "screening_date": today,
            "eligible": "yes",
            "consent_given_by": "patient",
            "consent_date": today,
        },
    )
    entry = ScreeningEntry.objects.get()
    assert response["Location"] == reverse("registry:screening_enrol", args=[entry.pk])
    response = client.post(
        response["Location"], {"study_id": "CT-100", "sex": "female", "age_years": "66"}
    )
    patient = Patient.objects.get(study_id="CT-100")
    assert response["Location"] == reverse("registry:patient_detail", args=[patient.pk])


def test_monitor_cannot_log_screening(client, monitor):
    assert login(client, monitor).get(reverse("registry:screening_create")).status_code == 403


def question(key: str) -> str:
    """The question as the page shows it (HTML-escaped)."""
    return escape(str(smrs.BY_KEY[key].text))


def test_questionnaire_leads_question_by_question_and_saves(client, nurse, recent):
    login(client, nurse)
    url = reverse("registry:mrs_interview", args=[recent.pk])
    response = client.get(url)
    assert question("dead") in text(response)
    response = client.get(url, {"q": "dead", "answer": "no"})
    assert question("constant_care") in text(response)
    response = client.get(url, {"a_dead": "no", "q": "constant_care", "answer": "no"})
    assert question("needs_help_bodily") in text(response)
    response = client.get(
        url, {"a_dead": "no", "a_constant_care": "no", "q": "needs_help_bodily", "answer": "yes"}
    )
    assert "mRS 4" in text(response)
    response = client.post(
        url,
        {
            "a_dead": "no",
            "a_constant_care": "no",
            "a_needs_help_bodily": "yes",
            "interview_date": timezone.localdate().isoformat(),
            "respondent": "proxy",
        },
    )
    assert response.status_code == 302
    assert FollowUp.objects.get(patient=recent).mrs_3m == 4
    interview = MrsInterview.objects.get()
    assert interview.answers() == {
        "dead": False,
        "constant_care": False,
        "needs_help_bodily": True,
        "needs_help_affairs": None,
        "limited_activities": None,
        "symptoms": None,
    }


def test_questionnaire_back_button_forgets_the_last_answer(client, nurse, recent):
    login(client, nurse)
    url = reverse("registry:mrs_interview", args=[recent.pk])
    response = client.get(url, {"a_dead": "no", "a_constant_care": "yes", "back": "1"})
    assert question("constant_care") in text(response)


def test_death_needs_a_date_on_the_last_step(client, nurse, recent):
    login(client, nurse)
    url = reverse("registry:mrs_interview", args=[recent.pk])
    data = {"a_dead": "yes", "interview_date": timezone.localdate().isoformat()}
    response = client.post(url, {**data, "respondent": "proxy"})
    assert response.status_code == 200
    assert not MrsInterview.objects.exists()
    death = (timezone.localdate() - dt.timedelta(days=10)).isoformat()
    response = client.post(url, {**data, "respondent": "proxy", "death_date": death})
    assert response.status_code == 302
    assert FollowUp.objects.get(patient=recent).mrs_3m == 6


def test_query_through_the_web(client, nurse, monitor, recent):
    login(client, monitor)
    response = client.post(
        reverse("registry:query_create", args=[recent.pk]),
        {"field": "door_time", "text": "Please check door time against the ambulance sheet."},
    )
    query = DataQuery.objects.get()
    detail = reverse("registry:query_detail", args=[query.pk])
    assert response["Location"] == detail
    login(client, nurse)
    assert client.post(detail, {"action": "close", "text": "x"}).status_code == 403
    assert client.post(detail, {"action": "answer", "text": "Corrected."}).status_code == 302
    login(client, monitor)
    assert client.post(detail, {"action": "close", "text": "OK"}).status_code == 302
    query.refresh_from_db()
    assert query.status == "closed"


def test_query_of_another_site_is_not_found(client, nurse_b, monitor, recent):
    query = workflow.query_raise(user=monitor, patient=recent, field="door_time", text="?")
    url = reverse("registry:query_detail", args=[query.pk])
    assert login(client, nurse_b).get(url).status_code == 404


def test_lock_through_the_web_and_nurse_forbidden(client, nurse, monitor, recent):
    url = reverse("registry:patient_lock", args=[recent.pk])
    signed = {"reason": "SDV", "password": PASSWORD}
    assert login(client, nurse).post(url, {"action": "lock", **signed}).status_code == 403
    assert login(client, monitor).post(url, {"action": "lock", **signed}).status_code == 302
    assert PatientLock.objects.get(patient=recent).locked
    response = client.post(url, {"action": "unlock", "reason": "", "password": PASSWORD})
    assert response.status_code == 200  # unlock needs a reason
    assert PatientLock.objects.get(patient=recent).locked
    client.post(url, {"action": "unlock", "reason": "Correction requested", "password": PASSWORD})
    assert not PatientLock.objects.get(patient=recent).locked


def test_locked_record_refuses_a_contact_attempt_from_the_web(client, nurse, monitor, recent):
    workflow.patient_lock(user=monitor, patient=recent, reason="SDV", password=PASSWORD)
    response = login(client, nurse).post(
        reverse("registry:patient_calls", args=[recent.pk]),
        {
            "action": "attempt",
            "attempt-attempt_date": timezone.localdate().isoformat(),
            "attempt-outcome": "reached",
        },
    )
    assert response.status_code == 403


def test_checks_page_lists_a_violation(client, monitor, site_a):
    patient = PatientFactory(site=site_a, study_id="BAD-9")
    ComplicationsFactory(patient=patient, discharge_date=dt.date(2020, 6, 12))
    FollowUp.objects.create(patient=patient, followup_date=dt.date(2020, 6, 1), mrs_3m=2)
    page = text(login(client, monitor).get(reverse("registry:data_checks")))
    assert "BAD-9" in page
    assert "Follow-up date must be after the discharge date." in page


def test_home_panels_tag_renders_for_the_signed_in_nurse(rf, nurse, recent):
    request = rf.get("/")
    request.user = nurse
    html = Template("{% load workflow_tags %}{% workflow_home_panels %}").render(
        Context({"request": request})
    )
    assert "CT-090" in html


def test_field_queries_tag_shows_the_open_query_next_to_the_field(rf, nurse, monitor, recent):
    workflow.query_raise(user=monitor, patient=recent, field="door_time", text="Check")
    template = Template(
        '{% load workflow_tags %}{% field_queries patient "door_time" %}|'
        '{% field_queries patient "onset_time" %}'
    )
    request = rf.get("/")
    request.user = nurse
    door, onset = template.render(Context({"request": request, "patient": recent})).split("|")
    assert "query: Open" in door
    assert "query" not in onset
    request.user = monitor
    html = template.render(Context({"request": request, "patient": recent}))
    assert "raise a query" in html


def test_home_page_shows_the_nurses_calls_and_hides_them_on_a_search(client, nurse, recent):
    login(client, nurse)
    home = client.get(reverse("registry:home"), follow=True)
    assert "Calls due today" in text(home)
    assert reverse("registry:followup_worklist") in text(home)  # the navigation link
    search = client.get(reverse("registry:patient_list"), {"q": "CT-090"})
    assert "Calls due today" not in text(search)


def test_nurse_sees_an_open_query_next_to_the_field_it_is_about(client, nurse, monitor, site_a):
    patient = full_patient(site=site_a)
    query = workflow.query_raise(
        user=monitor, patient=patient, field="door_time", text="Check the ambulance sheet."
    )
    client.force_login(nurse)
    html = client.get(reverse("registry:section_edit", args=[patient.pk, "admission"])).content
    page = html.decode()
    link = reverse("registry:query_detail", args=[query.pk])
    assert link in page
    # The badge sits after the door time input and before the next field's input.
    assert page.index('name="door_time"') < page.index(link) < page.index('name="transfer"')
    other = client.get(reverse("registry:section_edit", args=[patient.pk, "imaging"])).content
    assert link not in other.decode()
