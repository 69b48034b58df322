"""Reports pages: access per role, site isolation, drill-down, downloads, figures.

How fast they are is measured in ``benchmarks/`` (``benchmarks/pages.py``), not here."""

import csv
import io
import json
import re

import openpyxl
import pytest
from django.urls import reverse

from analytics import regression

from .analytics_cohort import build_cohort, bulk_cohort

pytestmark = pytest.mark.django_db

REPORT = reverse("analytics:report")


@pytest.fixture
def cohort(site_a, site_b):
    return build_cohort(site_a, site_b)


@pytest.fixture
def as_investigator(client, investigator):
    client.force_login(investigator)
    return client


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get(REPORT)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_study_nurses_may_not_see_reports(client, nurse):
    client.force_login(nurse)
    for url in (
        REPORT,
        reverse("analytics:patients") + "?cell=table1:female:exposed_n",
        reverse("analytics:download", args=["table1", "csv"]),
        reverse("analytics:figure", args=["mrs", "svg"]),
        reverse("analytics:published"),
    ):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("role_user", ["investigator", "monitor", "admin_user"])
def test_investigators_monitors_and_admins_see_reports(client, role_user, request, cohort):
    client.force_login(request.getfixturevalue(role_user))
    response = client.get(REPORT)
    assert response.status_code == 200
    assert "Table I" in response.content.decode()


def test_other_sites_patients_are_never_counted(as_investigator, cohort):
    response = as_investigator.get(REPORT)
    assert response.context["result"]["n_patients"] == 8
    # Site B is not a choice for a site-A investigator: refused, nothing computed or listed.
    response = as_investigator.get(REPORT, {"site": "B"})
    assert response.context["result"] is None
    assert "Select a valid choice" in response.content.decode()
    listing = as_investigator.get(
        reverse("analytics:patients"), {"cell": "baseline:patients", "site": "B"}
    )
    assert listing.status_code == 400
    listing = as_investigator.get(reverse("analytics:patients"), {"cell": "baseline:patients"})
    ids = [p["study_id"] for p in listing.context["page"]]
    assert ids and not [i for i in ids if i.startswith("B-")]


def test_filters_recompute_the_tables(as_investigator, cohort):
    response = as_investigator.get(REPORT, {"circulation": "posterior", "p_method": "wald"})
    result = response.context["result"]
    assert result["n_patients"] == 2
    assert result["table1"]["p_method"] == "wald"


def test_every_count_links_to_its_patients(as_investigator, cohort):
    content = as_investigator.get(REPORT).content.decode()
    assert "cell=table1%3Aage_70_plus%3Aexposed_events" in content
    response = as_investigator.get(
        reverse("analytics:patients"), {"cell": "table1:age_70_plus:exposed_events"}
    )
    assert response.status_code == 200
    assert [p["study_id"] for p in response.context["page"]] == ["A-01", "A-03"]
    assert reverse("registry:patient_detail", args=[response.context["page"][0]["pk"]]) in (
        response.content.decode()
    )


def test_drilldown_keeps_the_filters(as_investigator, cohort):
    response = as_investigator.get(
        reverse("analytics:patients"),
        {"cell": "table1:age_70_plus:exposed_events", "circulation": "posterior"},
    )
    assert [p["study_id"] for p in response.context["page"]] == ["A-03"]


def test_an_unknown_count_is_not_found(as_investigator, cohort):
    response = as_investigator.get(reverse("analytics:patients"), {"cell": "table9:x:y"})
    assert response.status_code == 404


def test_table_downloads_parse(as_investigator, cohort):
    response = as_investigator.get(reverse("analytics:download", args=["table1", "csv"]))
    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith("# table1\n")
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1].strip())))
    assert rows[0]["key"] == "age_70_plus" and rows[0]["exposed_events"] == "2"
    response = as_investigator.get(reverse("analytics:download", args=["all", "xlsx"]))
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert "table3" in workbook.sheetnames
    response = as_investigator.get(reverse("analytics:download", args=["all", "json"]))
    assert json.loads(response.content)["n_patients"] == 8
    assert (
        as_investigator.get(reverse("analytics:download", args=["nope", "csv"])).status_code == 404
    )


def test_figures_are_valid_svg_and_png(as_investigator, cohort):
    for name in ("mrs", "occlusion_sites"):
        svg = as_investigator.get(reverse("analytics:figure", args=[name, "svg"]))
        assert svg["Content-Type"] == "image/svg+xml"
        assert b"<svg" in svg.content[:2000]
        png = as_investigator.get(reverse("analytics:figure", args=[name, "png"]))
        assert png["Content-Type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_published_vs_registry_page(as_investigator, cohort):
    response = as_investigator.get(reverse("analytics:published"))
    assert response.status_code == 200
    summary = response.context["summary"]
    assert sum(summary.values()) == len(response.context["rows"])
    assert "92.9" in response.content.decode()


def test_no_inline_script(as_investigator, cohort):
    for url in (REPORT, reverse("analytics:published")):
        content = as_investigator.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", content), url
        assert " onclick=" not in content and "javascript:" not in content


@pytest.mark.parametrize("n_patients", [10, 300])
def test_report_page_query_count_does_not_grow(
    n_patients, client, site_a, investigator, django_assert_max_num_queries
):
    bulk_cohort(site_a, n_patients)
    client.force_login(investigator)
    with django_assert_max_num_queries(14):
        response = client.get(REPORT)
    assert response.context["result"]["n_patients"] == n_patients


def test_the_next_visit_reuses_the_remembered_regression_fit(
    client, site_a, investigator, settings
):
    bulk_cohort(site_a, 85)
    client.force_login(investigator)
    regression.fit.cache_clear()
    assert client.get(REPORT).status_code == 200
    assert client.get(REPORT, {"p_method": "wald"}).status_code == 200
    fits = regression.fit.cache_info()
    # The adjusted model and each covariate's crude model: each fitted once.
    models = 1 + len(settings.REGRESSION_DEFAULT_COVARIATES)
    assert (fits.misses, fits.hits) == (models, models)


def test_the_form_shows_the_default_covariates_checked(as_investigator, cohort, settings):
    content = as_investigator.get(REPORT).content.decode()
    for key in settings.REGRESSION_DEFAULT_COVARIATES:
        assert re.search(rf'value="{key}"[^>]*checked', content), key


def test_the_report_states_its_methods_in_plain_clinical_language(as_investigator, cohort):
    page = as_investigator.get(REPORT).content.decode()
    assert "95 % CI by the exact (Clopper–Pearson) method" in page
    assert "p: two-sided Fisher&#x27;s exact test." in page
    assert "Mean ± standard deviation" in page
    for jargon in ("ddof", "numpy", "percentile method", "Method: logit", "Method: firth"):
        assert jargon not in page, jargon
    wald = as_investigator.get(REPORT, {"p_method": "wald"}).content.decode()
    assert "p: Wald test of the risk ratio, as in the published paper." in wald


def _latest_change(site: str) -> str:
    from django.utils import timezone

    from registry.models import SECTIONS_BY_KEY, Patient

    patients = Patient.objects.filter(site__code=site)
    times = [p.created_at for p in patients]
    for model in SECTIONS_BY_KEY.values():
        times += [s.updated_at for s in model.objects.filter(patient__in=patients)]
    return timezone.localtime(max(times)).isoformat(timespec="seconds")


def test_a_workbook_says_what_it_was_made_from_on_its_about_sheet(as_investigator, cohort):
    response = as_investigator.get(
        reverse("analytics:download", args=["all", "xlsx"]),
        {"site": "A", "date_from": "2020-01-01", "circulation": "anterior"},
    )
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames[0] == "About"
    about = dict(workbook["About"].iter_rows(min_row=2, values_only=True))
    assert about["filter_site"] == "A" and about["filter_from"] == "2020-01-01"
    assert about["filter_to"] == "all" and about["filter_circulation"] == "anterior"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", about["generated_at"])
    assert about["data_as_of"] == _latest_change(site="A")
    assert "python" in about["software"] and "statsmodels" in about["software"]


def test_a_csv_stays_plain_and_its_file_name_carries_the_date_and_filters(as_investigator, cohort):
    response = as_investigator.get(
        reverse("analytics:download", args=["table1", "csv"]),
        {"site": "A", "date_to": "2030-12-31"},
    )
    assert response.content.decode().startswith("# table1\n")
    disposition = response["Content-Disposition"]
    match = re.search(r'filename="study-table1_(\d{4}-\d\d-\d\d)_\d{4}_(.*)\.csv"', disposition)
    assert match, disposition
    assert match.group(2) == "site-A_to-2030-12-31"


def test_the_flow_chart_downloads_as_svg_and_png_with_the_filters(as_investigator, cohort):
    svg = as_investigator.get(reverse("flow:svg"), {"site": "A", "download": "1"})
    assert svg["Content-Type"].startswith("image/svg+xml")
    assert b"Enrolled (n = 8)" in svg.content
    assert re.search(r'filename="study-flow-chart_.*_site-A\.svg"', svg["Content-Disposition"])
    png = as_investigator.get(reverse("flow:png"), {"download": "1"})
    assert png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png["Content-Disposition"].endswith('.png"')
    report = as_investigator.get(REPORT).content.decode()
    assert reverse("flow:png") in report
