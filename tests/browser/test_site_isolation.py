"""Journey 4: a nurse of site B cannot open site A's patient, even by typing its address."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.factories import AdmissionFactory, PatientFactory

from .conftest import assert_accessible, login, patient_table, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_nurse_of_site_b_gets_not_found_for_a_site_a_patient_typed_into_the_address_bar(
    page: Page, live_server, site_a, nurse_b
):
    hidden = PatientFactory(study_id="A-SECRET-01", site=site_a)
    AdmissionFactory(patient=hidden)
    login(page, live_server, "nurse_b")

    # Not listed, not found by searching its study ID.
    page.get_by_role("search").get_by_label("Study ID").fill("A-SECRET-01")
    page.get_by_role("button", name="Search").click()
    expect(patient_table(page)).to_contain_text("No patient matches.")
    expect(page.get_by_text("A-SECRET-01", exact=True)).to_have_count(0)

    # Typing the addresses of its overview, a section form and its history: 404 each time,
    # and nothing of the patient on the page.
    for path in ("", "admission/", "history/"):
        response = page.goto(f"{live_server.url}/patients/{hidden.pk}/{path}")
        assert response.status == 404, (path, response.status)
        expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
        expect(page.locator("body")).not_to_contain_text("A-SECRET-01")
    assert_accessible(page)
    screenshot(page, "site-isolation-404")
