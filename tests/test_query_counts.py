"""Every page and the study tables use a constant number of SQL queries, whatever N.

Each is run on a small (5) and a larger (60) cohort: the count must stay under the
same budget for both and must not grow from the small to the larger cohort. The
budgets are today's counts (sessions, the user, 2FA devices, the page's own
queries); a change that adds a query per patient fails here long before it shows
at 1,000,000 patients (benchmarks/run.py).
"""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.choices import Role
from registry.models import Patient

from .factories import SiteFactory, UserFactory, full_patient

SIZES = (5, 60)

# Today's counts (+1 of headroom): list 13 (the user's site keys, the count, the page's
# keys, then its patients: docs/performance.md), overview 8 and report 11 (each with the
# user's site keys; the report also counts the mRS interviews per language),
# study_tables 2 (the patients' columns with the flow chart's enrolment, and the
# screening log's counts), the list's landing page 14 (the list and
# the follow-up panels), the worklist page 8.
BUDGET = {
    "patient_list": 14,
    "overview": 9,
    "report": 12,
    "study_tables": 3,
    "landing": 15,
    "worklist": 9,
}


def _cohort(site, n: int) -> list:
    return [full_patient(site=site) for _ in range(n)]


@pytest.fixture
def site(db):
    return SiteFactory(code="A")


@pytest.fixture
def nurse_client(client, site):
    client.force_login(UserFactory(role=Role.DATA_ENTRY, sites=[site]))
    return client


@pytest.fixture
def investigator_client(client, site):
    client.force_login(UserFactory(role=Role.INVESTIGATOR, sites=[site]))
    return client


def _queries(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured)


def _get(client, url, **params):
    def request():
        response = client.get(url, params)
        assert response.status_code == 200, response.status_code

    return request


@pytest.mark.parametrize("n", SIZES)
def test_the_patient_list_filtered_by_site_uses_a_constant_number_of_queries(
    nurse_client, site, n, django_assert_max_num_queries
):
    _cohort(site, n)
    with django_assert_max_num_queries(BUDGET["patient_list"]):
        response = nurse_client.get(reverse("registry:patient_list"), {"site": site.pk})
    assert response.status_code == 200


@pytest.mark.parametrize("n", SIZES)
def test_the_patient_overview_uses_a_constant_number_of_queries(
    nurse_client, site, n, django_assert_max_num_queries
):
    patients = _cohort(site, n)
    with django_assert_max_num_queries(BUDGET["overview"]):
        response = nurse_client.get(reverse("registry:patient_detail", args=[patients[-1].pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("n", SIZES)
def test_the_report_page_uses_a_constant_number_of_queries(
    investigator_client, site, n, django_assert_max_num_queries
):
    _cohort(site, n)
    with django_assert_max_num_queries(BUDGET["report"]):
        response = investigator_client.get(reverse("analytics:report"))
    assert response.status_code == 200


@pytest.mark.parametrize("n", SIZES)
def test_the_study_tables_command_uses_a_constant_number_of_queries(
    site, n, django_assert_max_num_queries
):
    _cohort(site, n)
    out = io.StringIO()
    with django_assert_max_num_queries(BUDGET["study_tables"]):
        call_command("study_tables", "--format", "json", stdout=out)
    assert f'"n_patients": {n}' in out.getvalue()


def test_the_landing_list_and_the_worklist_issue_as_many_queries_for_60_patients_as_for_5(
    nurse_client, site
):
    """The follow-up panels and the worklist page read only some columns of each
    patient (``.only()``): a template reading another one would add a query per patient."""

    def add_to_worklist(n: int) -> None:
        for patient in _cohort(site, n):
            patient.followup.delete()  # no 3-month mRS: on the worklist

    pages = (reverse("registry:patient_list"), reverse("registry:followup_worklist"))
    add_to_worklist(SIZES[0])
    few = [_queries(_get(nurse_client, url)) for url in pages]
    add_to_worklist(SIZES[1] - SIZES[0])
    many = [_queries(_get(nurse_client, url)) for url in pages]
    assert few == many
    assert many[0] <= BUDGET["landing"] and many[1] <= BUDGET["worklist"]
    page = nurse_client.get(pages[1]).content.decode()
    assert all(p.study_id in page for p in Patient.objects.all())


def test_no_page_issues_more_queries_for_more_patients(nurse_client, site):
    """The same requests on 5 and then 60 patients issue exactly as many queries."""
    first = _cohort(site, SIZES[0])
    reader = Client()
    reader.force_login(UserFactory(role=Role.INVESTIGATOR, sites=[site]))
    list_url = reverse("registry:patient_list")
    overview_url = reverse("registry:patient_detail", args=[first[0].pk])

    def measure() -> dict[str, int]:
        return {
            "patient_list": _queries(_get(nurse_client, list_url, site=site.pk)),
            "overview": _queries(_get(nurse_client, overview_url)),
            "report": _queries(_get(reader, reverse("analytics:report"))),
            "study_tables": _queries(
                lambda: call_command("study_tables", "--format", "json", stdout=io.StringIO())
            ),
        }

    small = measure()
    _cohort(site, SIZES[1] - SIZES[0])
    larger = measure()
    assert larger == small
