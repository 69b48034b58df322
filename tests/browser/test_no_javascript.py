"""Journey 5: with JavaScript off, the nurse still completes a section.

The branching script does not run, so every field shows with its "Fill only if ..." note and
the server's rules decide; a value in a field that does not apply is refused next to it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import AdmissionFactory, PatientFactory

from .conftest import assert_accessible, login, open_patient, screenshot, scripts_blocked
from .forms import field, fill, message_next_to

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_without_javascript_a_nurse_completes_the_imaging_section(
    new_context, live_server, nurse, site_a
):
    patient = PatientFactory(study_id="CT-NOJS", site=site_a)
    AdmissionFactory(patient=patient)
    page: Page = new_context(java_script_enabled=False).new_page()
    login(page, live_server, "nurse_a", scan=False)

    open_patient(page, "CT-NOJS")
    page.get_by_role("link", name="Start Imaging").click()
    # Both ASPECTS are on screen, each saying when it applies.
    expect(field(page, "DWI-ASPECTS")).to_be_visible()
    expect(field(page, "pc-ASPECTS")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Fill only if Circulation = Posterior"))).to_be_visible()

    fill(
        page,
        {
            "Circulation": "Posterior",
            "3 T MRI/MRA diagnosis": "Stenosis",
            "3 T MRI occlusion site": "Basilar artery",
            "Clot on SWI (susceptibility vessel sign)": "No",
            "DWI-ASPECTS": "9",
            "pc-ASPECTS": "7",
        },
    )
    page.get_by_role("button", name="Mark complete").click()
    # DWI-ASPECTS does not apply to a posterior stroke: refused next to it, the rest kept.
    expect(message_next_to(page, "DWI-ASPECTS")).to_be_visible()
    expect(field(page, "pc-ASPECTS")).to_have_value("7")
    expect(field(page, "Circulation").locator("option:checked")).to_have_text("Posterior")
    screenshot(page, "no-javascript-imaging-refused")

    field(page, "DWI-ASPECTS").fill("")
    page.get_by_role("button", name="Mark complete").click()
    expect(
        page.get_by_role("status").filter(has_text="Imaging saved and marked complete")
    ).to_be_visible()
    expect(
        page.get_by_role("heading", name=re.compile(r"^Imaging\b")).locator(".badge")
    ).to_have_text("Complete")
    screenshot(page, "no-javascript-imaging-complete")

    # axe needs JavaScript: scan the same pages as they render without the site's scripts.
    scan = scripts_blocked(new_context(storage_state=page.context.storage_state())).new_page()
    for path in (f"/patients/{patient.pk}/imaging/", f"/patients/{patient.pk}/"):
        scan.goto(f"{live_server.url}{path}")
        assert_accessible(scan)
