"""An investigator opens the quality page, switches to one site and one quarter, and
follows a count to the patients behind it (the demo registry plus another site's
patient she must never see)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from registry.management.commands.seed_demo import DEMO_USERS
from tests.factories import PatientFactory, SiteFactory

from .conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_investigator_switches_site_and_quarter_and_follows_a_drilldown(
    new_context, live_server
):
    call_command("seed_demo", stdout=io.StringIO())
    PatientFactory(study_id="OTHER-01", site=SiteFactory(code="OTHER"))
    password = {username: password for username, _, password in DEMO_USERS}["investigator"]
    page: Page = new_context(viewport={"width": 1366, "height": 900}).new_page()
    login(page, live_server, "investigator", password)

    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Quality of care"
    ).click()
    expect(page.get_by_role("heading", name="Quality of care")).to_be_visible()
    expect(page.locator("#id_site option[value='OTHER']")).to_have_count(0)

    page.locator("#id_site").select_option("SIS")
    page.locator("#id_quarter").select_option("2020-Q3")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"site=SIS&quarter=2020-Q3"))
    expect(page.get_by_role("heading", name=re.compile(r"Site SIS · 2020-Q3"))).to_be_visible()
    screenshot(page, "quality-page", docs="quality-page", clip_to="#site-SIS")
    # The page's figures are drawn by requests of their own: let them finish, so none is
    # still reading the database when the test's data are flushed.
    page.wait_for_load_state("networkidle")

    row = page.locator("#site-SIS tr").filter(has_text="Door to groin puncture")
    count = row.locator("td").nth(1).get_by_role("link")
    expected = int(count.inner_text())
    count.click()
    expect(page.get_by_role("heading", name="Patients behind a count")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(expected)
    expect(page.get_by_text("OTHER-01")).to_have_count(0)
    page.wait_for_load_state("networkidle")
