"""The /quality/ page: each reader sees only their sites; another site answers 404;
drill-down, downloads and figures."""

import pytest
from django.urls import reverse

from registry.choices import Role

from .analytics_cohort import make_patient
from .factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def investigator_a(site_a, site_b):
    make_patient(site_a, study_id="QA-1")
    make_patient(site_b, study_id="QB-1")
    return UserFactory(role=Role.INVESTIGATOR, sites=[site_a])


def test_the_page_shows_only_the_readers_sites(client, investigator_a):
    client.force_login(investigator_a)
    page = client.get(reverse("quality:page")).content.decode()
    assert 'id="site-A"' in page and 'id="site-B"' not in page
    assert 'value="B"' not in page


def test_another_sites_code_answers_404(client, investigator_a):
    client.force_login(investigator_a)
    assert client.get(reverse("quality:page"), {"site": "B"}).status_code == 404
    assert (
        client.get(
            reverse("quality:patients"), {"site": "B", "code": "sich", "part": "denominator"}
        ).status_code
        == 404
    )


def test_a_nurse_is_refused(client, site_a):
    client.force_login(UserFactory(role=Role.DATA_ENTRY, sites=[site_a]))
    assert client.get(reverse("quality:page")).status_code == 403


def test_the_drilldown_lists_the_readers_patients_only(client, investigator_a):
    client.force_login(investigator_a)
    page = client.get(
        reverse("quality:patients"), {"code": "door_to_groin", "part": "n"}
    ).content.decode()
    assert "QA-1" in page and "QB-1" not in page
    unknown = client.get(reverse("quality:patients"), {"code": "nothing", "part": "n"})
    assert unknown.status_code == 404


def test_a_quarter_limits_the_table_and_the_downloads(client, investigator_a):
    client.force_login(investigator_a)
    # The typical patient's door is on 2020-06-01: nobody in 2021-Q1.
    page = client.get(reverse("quality:page"), {"quarter": "2021-Q1"}).content.decode()
    assert "2021-Q1" in page
    csv = client.get(reverse("quality:download", args=["csv"]), {"quarter": "2020-Q2"})
    assert csv.status_code == 200 and "door_to_groin" in csv.content.decode()
    assert client.get(reverse("quality:page"), {"quarter": "2021-Q9"}).status_code == 404


@pytest.mark.parametrize("name", ["run-door_to_groin", "funnel-reperfusion_mtici_2b_3"])
@pytest.mark.parametrize("fmt, start", [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_figures_come_as_svg_and_png(client, investigator_a, name, fmt, start):
    client.force_login(investigator_a)
    response = client.get(reverse("quality:figure", args=[name, fmt]))
    assert response.status_code == 200 and response.content.startswith(start)
