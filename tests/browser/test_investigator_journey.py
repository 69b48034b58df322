"""Journey 3: an investigator reads the study's tables and figure, filters, downloads, and
cannot edit anything.

The data are what `make demo` loads (``seed_demo``: site SIS, the 85-patient SYNTHETIC cohort
shaped like the paper, one user per role), plus one patient of another site that the
investigator must never count. She signs in with the demo login the command prints.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from registry.management.commands.seed_demo import DEMO_USERS
from registry.models import Patient
from tests.factories import PatientFactory, SiteFactory

from .conftest import ARTIFACTS, assert_accessible, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABLES = ["Table I", "Table II", "Table III", "Table IV"]
LAPTOP = {"width": 1366, "height": 900}


def table_heading(page: Page, name: str):
    # "Table I" must not match "Table II": a word boundary after the numeral.
    return page.get_by_role("heading", name=re.compile(rf"^\s*{name}\b"))


def table_block(page: Page, name: str):
    """The part of the reports page that holds one table, its notes and its downloads."""
    return page.locator("section, article, .card, figure").filter(has=table_heading(page, name))


def download(page: Page, link, extension: str) -> Path:
    """Click a download link; the file arrives with the right name and is kept as an artifact."""
    with page.expect_download() as arrived:
        link.click()
    name = arrived.value.suggested_filename
    assert name.endswith(f".{extension}"), name
    path = ARTIFACTS / "downloads" / name
    arrived.value.save_as(path)
    assert path.stat().st_size > 0, name
    return path


def test_an_investigator_reads_filters_and_downloads_the_tables_but_cannot_edit(
    new_context, live_server
):
    call_command("seed_demo", stdout=io.StringIO())
    PatientFactory(study_id="OTHER-01", site=SiteFactory(code="OTHER"))
    password = {username: password for username, _, password in DEMO_USERS}["investigator"]
    # Investigators read the tables at a desk: a laptop screen rather than the nurses' tablet.
    page: Page = new_context(viewport=LAPTOP).new_page()
    login(page, live_server, "investigator", password)

    # The navigation offers the reports, and no way to create a patient.
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="New patient")).to_have_count(0)
    nav.get_by_role("link", name="Reports").click()

    for name in TABLES:
        expect(table_heading(page, name).first).to_be_visible()
    # Her site's 85 patients; the other site's patient is not counted.
    expect(page.get_by_text(re.compile(r"\b85 patients of your sites\b"))).to_be_visible()

    # The mRS (Grotta) chart is an image that actually loaded.
    chart = page.get_by_role("img", name=re.compile(r"mRS|Rankin|Grotta", re.I)).first
    chart.scroll_into_view_if_needed()
    expect(chart).to_be_visible()
    chart.evaluate(
        """img => img.complete && img.naturalWidth > 0 ? true
           : new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; })"""
    )
    size = chart.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 0 and size[1] > 0, size
    assert_accessible(page)
    screenshot(page, "investigator-report-full", docs="investigator-report", clip_to="#table1")
    chart.screenshot(path=ARTIFACTS / "investigator-mrs-chart.png")

    # A filter re-computes the page: posterior circulation only.
    before = page.locator("main").inner_text()
    circulation = page.get_by_label(re.compile(r"^\s*Circulation", re.I))
    circulation.select_option(label="Posterior")
    page.get_by_role("button", name="Recompute").click()
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(r"circulation=posterior"))
    expect(page.get_by_label(re.compile(r"^\s*Circulation", re.I))).to_have_value("posterior")
    for name in TABLES:
        expect(table_heading(page, name).first).to_be_visible()
    assert page.locator("main").inner_text() != before, "the filter changed nothing on the page"
    # Same template as scanned above: no second axe scan of this long page (about 4 s).
    screenshot(page, "investigator-report-filtered")

    # Downloads of Table I: the CSV and the xlsx arrive and parse.
    block = table_block(page, "Table I").last
    csv_path = download(page, block.get_by_role("link", name="CSV", exact=True), "csv")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    rows = {row["key"]: row for row in csv.DictReader(lines)}
    # The download honours the filter: the posterior-circulation patients with a 3-month mRS.
    posterior = Patient.objects.filter(
        imaging__circulation="posterior", followup__mrs_3m__isnull=False
    ).count()
    assert rows["age_70_plus"]["label"] == "Age >= 70 years"
    age = rows["age_70_plus"]
    assert int(age["n"]) + int(age["missing"]) == posterior, (posterior, age)

    xlsx_path = download(page, block.get_by_role("link", name="xlsx", exact=True), "xlsx")
    workbook = openpyxl.load_workbook(xlsx_path, read_only=True)
    # The first sheet says what the file was made from; the table follows it.
    assert workbook.sheetnames[0] == "About"
    cells = list(workbook[workbook.sheetnames[1]].iter_rows(values_only=True))
    header = next(row for row in cells if "label" in row)
    labels = [dict(zip(header, row, strict=False)).get("label") for row in cells]
    assert "Age >= 70 years" in labels, cells[:3]

    # No edit page answers: every form is refused with 403.
    patient = Patient.objects.get(study_id="DEMO-002")
    for path in ("/patients/new/", f"/patients/{patient.pk}/procedure/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403, (path, response.status)
        expect(page.get_by_role("heading", level=1)).to_have_text("Access denied")
    assert_accessible(page)

    # The overview reads, and offers no Start or Edit button.
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("DEMO-002")
    expect(page.get_by_role("link", name=re.compile(r"^(Start|Edit)\b"))).to_have_count(0)
